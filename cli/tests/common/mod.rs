//! Helpers shared by the CLI's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub const PASS: &str = "a long test passphrase";

pub fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared")
        .join(rel)
}

pub fn carry(home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_carry"));
    c.arg("--home")
        .arg(home)
        .args(args)
        .env("CARRY_PASSPHRASE", PASS)
        .env_remove("CARRY_LOG");
    c
}

pub fn run(home: &Path, args: &[&str]) -> Output {
    carry(home, args)
        .stdin(Stdio::null())
        .output()
        .expect("run carry")
}

pub fn json(home: &Path, args: &[&str]) -> Value {
    let out = run(home, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

pub fn new_home() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("home");
    let out = run(&home, &["init", "--name", "Test Person"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (d, home)
}

pub fn resources(home: &Path) -> u64 {
    json(home, &["stats", "--json"])["resources"]
        .as_u64()
        .unwrap()
}

/// The reference endpoint's binary, built beside `carry` by `cargo test --workspace`.
pub fn endpoint_bin() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_carry")).with_file_name("carry-endpoint");
    assert!(
        p.exists(),
        "{} is missing: build it with cargo build -p carry-endpoint",
        p.display()
    );
    p
}

/// A running `carry-endpoint serve`, stopped on drop.
pub struct Endpoint {
    /// The server process.
    pub child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `carry-endpoint` with `args` to completion; panics on failure.
pub fn endpoint(args: &[&str]) -> String {
    let out = Command::new(endpoint_bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "carry-endpoint {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Serve the database at `db` with extra `args` on a free port.
pub fn serve(db: &str, args: &[&str]) -> Endpoint {
    use std::io::BufRead;
    let mut child = Command::new(endpoint_bin())
        .args(["serve", "--db", db, "--listen", "127.0.0.1:0"])
        .args(args)
        .env("CARRY_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string();
    Endpoint { child, base }
}
