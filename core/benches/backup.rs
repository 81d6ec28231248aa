//! The backup benchmark: a full backup of a record of about 10,000 resources to a
//! file, and a restore of it into a fresh profile; then to the reference endpoint
//! (SQLite, loopback): a whole backup, increments after a few new readings each, and a
//! restore of the whole chain from the recovery code alone. Run with
//! `make bench-backup`, which builds the endpoint first. Prints a table and writes it
//! to `target/bench-backup.md`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use carry_core::net::CallOptions;
use carry_core::{backup, ImportOptions, Profile, Reading};
use common::{copies_of_jene, ms, percentile, serve, RawKeyStore};

/// New readings between one incremental backup and the next.
const READINGS_PER_INCREMENT: usize = 10;

const COPIES: u64 = 17;
const RUNS: usize = 5;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn main() {
    let shared = std::env::var_os("SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared"));
    let work = tempfile::tempdir().expect("work dir");
    let p = Profile::create(&work.path().join("p"), "Jene", &RawKeyStore).expect("profile");
    p.import_file(
        &copies_of_jene(&shared, work.path(), COPIES),
        ImportOptions::default(),
    )
    .expect("import");
    let n = p.stats().expect("stats").resources;
    let code = backup::recovery_code(&p).expect("code");
    let vault_bytes = std::fs::metadata(work.path().join("p/vault.db")).map_or(0, |m| m.len());
    let mut backups: Vec<Duration> = Vec::new();
    let mut restores: Vec<Duration> = Vec::new();
    let mut size = 0;
    for i in 0..RUNS {
        let file = work.path().join(format!("b{i}.carry"));
        let t = Instant::now();
        let r = backup::backup_to_file(&p, &file).expect("backup");
        backups.push(t.elapsed());
        size = r.bytes;
        let t = Instant::now();
        let q = carry_core::restore::from_file(
            &work.path().join(format!("r{i}")),
            &file,
            &code,
            &RawKeyStore,
        )
        .expect("restore");
        restores.push(t.elapsed());
        assert_eq!(q.stats().expect("stats").resources, n);
    }

    // To the endpoint: a whole backup, then increments, then a restore of the chain.
    let server = serve(&format!("sqlite://{}", work.path().join("ep.db").display()));
    let p = Arc::new(p);
    carry_core::share::set_endpoint(&p, &server.url).expect("endpoint");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let opts = CallOptions::default();
    let mut fulls: Vec<Duration> = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let r = rt
            .block_on(backup::backup_to_endpoint(
                p.clone(),
                &server.url,
                &opts,
                true,
            ))
            .expect("full backup to the endpoint");
        fulls.push(t.elapsed());
        assert_eq!(r.kind, "full");
    }
    let mut incs: Vec<Duration> = Vec::new();
    let mut inc_size = 0;
    for i in 0..RUNS {
        for j in 0..READINGS_PER_INCREMENT {
            let kg = format!("{}.{}kg", 60 + i, j);
            p.add_reading(&Reading::parse("weight", &kg).expect("reading"), None)
                .expect("add");
        }
        let t = Instant::now();
        let r = rt
            .block_on(backup::backup_to_endpoint(
                p.clone(),
                &server.url,
                &opts,
                false,
            ))
            .expect("incremental backup");
        incs.push(t.elapsed());
        assert_eq!(r.kind, "incremental");
        inc_size = r.bytes;
    }
    let t = Instant::now();
    let q = rt
        .block_on(carry_core::restore::from_endpoint(
            &work.path().join("from-endpoint"),
            &server.url,
            &code,
            Arc::new(RawKeyStore),
        ))
        .expect("restore from the endpoint");
    let chain_restore = t.elapsed();
    assert_eq!(
        q.stats().expect("stats").resources,
        p.stats().expect("stats").resources
    );

    let out = format!(
        "Backup benchmark: a {n}-resource record (vault file {:.1} MB), {RUNS} runs.\n\n\
         | figure | median | fastest |\n|---|---|---|\n\
         | full backup to a file | {} | {} |\n\
         | restore into a fresh profile (with integrity and audit checks) | {} | {} |\n\
         | backup size | {:.1} MB | |\n\
         | full backup to the endpoint (seal and upload) | {} | {} |\n\
         | incremental backup to the endpoint, {READINGS_PER_INCREMENT} new readings | {} | {} |\n\
         | incremental backup size | {:.1} KB | |\n\
         | restore from the endpoint: the full backup and {RUNS} increments | {} | |\n",
        vault_bytes as f64 / 1e6,
        ms(percentile(&mut backups, 0.5)),
        ms(percentile(&mut backups, 0.0)),
        ms(percentile(&mut restores, 0.5)),
        ms(percentile(&mut restores, 0.0)),
        size as f64 / 1e6,
        ms(percentile(&mut fulls, 0.5)),
        ms(percentile(&mut fulls, 0.0)),
        ms(percentile(&mut incs, 0.5)),
        ms(percentile(&mut incs, 0.0)),
        inc_size as f64 / 1e3,
        ms(chain_restore),
    );
    print!("{out}");
    let _ = std::fs::write(root().join("target/bench-backup.md"), &out);
}
