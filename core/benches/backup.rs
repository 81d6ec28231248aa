//! The backup benchmark: a full backup of a record of about 10,000 resources to a
//! file, and a restore of it into a fresh profile. Run with `make bench-backup`.
//! Prints a table and writes it to `target/bench-backup.md`.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use carry_core::{backup, ImportOptions, Profile};
use common::{copies_of_jene, ms, percentile, RawKeyStore};

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
        let q = backup::restore_from_file(
            &work.path().join(format!("r{i}")),
            &file,
            &code,
            &RawKeyStore,
        )
        .expect("restore");
        restores.push(t.elapsed());
        assert_eq!(q.stats().expect("stats").resources, n);
    }
    let out = format!(
        "Backup benchmark: a {n}-resource record (vault file {:.1} MB), {RUNS} runs.\n\n\
         | figure | median | fastest |\n|---|---|---|\n\
         | full backup to a file | {} | {} |\n\
         | restore into a fresh profile (with integrity and audit checks) | {} | {} |\n\
         | backup size | {:.1} MB | |\n",
        vault_bytes as f64 / 1e6,
        ms(percentile(&mut backups, 0.5)),
        ms(percentile(&mut backups, 0.0)),
        ms(percentile(&mut restores, 0.5)),
        ms(percentile(&mut restores, 0.0)),
        size as f64 / 1e6,
    );
    print!("{out}");
    let _ = std::fs::write(root().join("target/bench-backup.md"), &out);
}
