//! The first vaults a process opens, opened at the same moment from many threads.
//!
//! SQLCipher finishes its own set-up after SQLite reports itself initialised, so a
//! thread that keys a database in that window used to fail with "An error occurred
//! with PRAGMA key". The race exists once per process, so the test runs itself again
//! as fresh child processes and races their first opens.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
mod common;

use std::process::Command;
use std::sync::{Arc, Barrier};

const CHILD: &str = "CARRY_FIRST_OPEN_CHILD";
const PROCESSES: usize = 150;
const THREADS: usize = 16;

#[test]
fn first_opens_in_parallel_all_succeed() {
    if std::env::var_os(CHILD).is_some() {
        race();
        return;
    }
    let root = tempfile::tempdir().expect("temp dir");
    for i in 0..THREADS {
        carry_core::vault::Vault::create(
            &root.path().join(format!("vault-{i}")),
            &common::PlainKeyStore,
        )
        .expect("create a vault");
    }
    let exe = std::env::current_exe().expect("test binary");
    let mut failed = Vec::new();
    for _ in 0..PROCESSES {
        let out = Command::new(&exe)
            .args([
                "first_opens_in_parallel_all_succeed",
                "--exact",
                "--nocapture",
            ])
            .env(CHILD, root.path())
            .output()
            .expect("run the child");
        if !out.status.success() {
            failed.push(String::from_utf8_lossy(&out.stdout).into_owned());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {PROCESSES} processes failed; the first:\n{}",
        failed.len(),
        failed[0]
    );
}

/// In this fresh process, open the vaults in `CHILD` on threads released together.
fn race() {
    let root = std::path::PathBuf::from(std::env::var_os(CHILD).expect("the vaults' folder"));
    let start = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|i| {
            let dir = root.join(format!("vault-{i}"));
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                carry_core::vault::Vault::open(&dir, &common::PlainKeyStore)
                    .err()
                    .map(|e| e.to_string())
            })
        })
        .collect();
    let errors: Vec<String> = threads
        .into_iter()
        .filter_map(|t| t.join().expect("thread"))
        .collect();
    assert!(
        errors.is_empty(),
        "{} vaults failed: {}",
        errors.len(),
        errors[0]
    );
}
