//! Vault benchmarks for the DESIGN.md "Performance targets": import throughput against
//! plain SQLite, unlock, timeline paging, full-text search and peak import memory.
//!
//! Run with `make bench`, i.e.
//! `cargo bench -p carry-core --features plaintext-baseline --bench vault`;
//! `CARRY_BENCH_ONLY=import` stops after the import figures;
//! `CARRY_BENCH_SIZES=100000` imports only the sizes listed (comma-separated);
//! `CARRY_BENCH_PRAGMAS="PRAGMA …;"` runs on each new profile's writer connection, to
//! measure a setting against the shipped one.
//! The harness prints a markdown table and writes it to `target/bench-vault.md`.
//!
//! Test records are built from the shared Synthea patients: variant `k` (one per copy
//! and patient) has every UUID's last 12 hex digits XOR-ed with `k`, so no two entries
//! collide (the patients share a few Organizations) while their `urn:uuid:` references
//! still resolve. All generated data lives in a temp dir.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;

use carry_core::{Category, ImportOptions, ImportProgress, KeyStore, PassphraseKeyStore};
use carry_core::{Profile, TimelineQuery};
use common::{ms, percentile, rewrite_uuids, RawKeyStore};
use serde::Deserialize;
use serde_json::value::RawValue;
use tempfile::TempDir;

/// Record sizes, in resources. Unlock, queries and memory use the largest.
const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
const LARGEST: usize = SIZES[SIZES.len() - 1];
/// Set in a child process to measure the peak memory of one import (`import:<path>`),
/// or to open a profile cold and read its first page (`cold:<folder>`).
const CHILD_ENV: &str = "CARRY_BENCH_CHILD";
/// The record size a cold start opens, and how many cold starts are timed.
const COLD_SIZE: usize = 10_000;
const COLD_RUNS: usize = 10;
const PASSPHRASE: &str = "bench-pass";
/// Timed samples per query figure.
const QUERY_RUNS: usize = 500;
/// Unlock samples with the raw-key store, and with the passphrase (PBKDF2) store.
const UNLOCK_RUNS: usize = 20;
const PBKDF2_UNLOCK_RUNS: usize = 5;
/// Timeline page size, and pages fetched per category before moving to the next one.
const PAGE: u32 = 50;
const PAGES_PER_WALK: usize = 5;
const WALK: [Option<Category>; 4] = [
    None,
    Some(Category::VitalSigns),
    Some(Category::TestResults),
    Some(Category::Encounters),
];
/// Search terms present in the Synthea patients, comma-separated.
const SEARCH_TERMS: &str = "glucose,blood pressure,diabetes,encounter,hypertension,\
                            body weight,influenza,cholesterol";

/// One line of the results table: figure, result, and the target with whether it was met.
type Row = (String, String, Option<(&'static str, bool)>);

/// A profile and the folder it lives in (the profile is dropped first).
struct Kept {
    profile: Profile,
    _dir: TempDir,
}

/// A Bundle's entries, kept as their exact text.
#[derive(Deserialize)]
struct Entries<'a> {
    #[serde(borrow)]
    entry: Vec<&'a RawValue>,
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        return child(&spec);
    }
    let started = Instant::now();
    let machine = machine();
    let work = tempfile::tempdir().expect("create the benchmark temp dir");
    let fixtures = fixture_paths();
    eprintln!("generating records of {SIZES:?} resources");
    let files = generate(&fixtures, work.path());
    let mut rows = Vec::new();
    let (enc, plain) = bench_import(&files, work.path(), &mut rows);
    if std::env::var("CARRY_BENCH_ONLY").is_ok_and(|v| v == "import") {
        // Only the import figures, to compare two builds quickly.
        println!("{}", render(&machine, &rows, started.elapsed()));
        return;
    }
    bench_unlock(&enc.profile, &mut rows);
    bench_queries(&enc.profile, &plain.profile, &mut rows);
    drop((enc, plain));
    bench_cold_start(&files, work.path(), &mut rows);
    let largest = fixtures
        .iter()
        .max_by_key(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("at least one Synthea fixture");
    bench_memory(largest, &files, &mut rows);
    let table = render(&machine, &rows, started.elapsed());
    println!("{table}");
    let out = target_dir().join("bench-vault.md");
    fs::write(&out, &table).expect("write target/bench-vault.md");
    eprintln!("written to {}", out.display());
}

// ---------------------------------------------------------------------------------
// Test data

/// The shared Synthea patients, sorted by name.
fn fixture_paths() -> Vec<PathBuf> {
    let dir = workspace().join("../shared/fixtures/fhir/synthea");
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("list the Synthea fixtures").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no fixtures in {}", dir.display());
    paths
}

/// Write one transaction Bundle per size into `dir`, each exactly that many resources:
/// copies 0, 1, 2… of all the patients, truncated at the size.
fn generate(fixtures: &[PathBuf], dir: &Path) -> Vec<(usize, PathBuf)> {
    let texts: Vec<String> = fixtures
        .iter()
        .map(|p| fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())))
        .collect();
    let mut outs: Vec<(usize, PathBuf, BufWriter<File>)> = SIZES
        .iter()
        .map(|&n| {
            let path = dir.join(format!("synthea-{n}.json"));
            let mut w = BufWriter::new(File::create(&path).expect("create a generated Bundle"));
            w.write_all(b"{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[\n")
                .expect("write a generated Bundle");
            (n, path, w)
        })
        .collect();
    let mut written = 0usize;
    'copies: for copy in 0u64.. {
        for (i, text) in texts.iter().enumerate() {
            let rewritten = rewrite_uuids(text, copy * texts.len() as u64 + i as u64);
            let bundle: Entries<'_> =
                serde_json::from_str(&rewritten).expect("a Synthea fixture is a Bundle");
            for entry in bundle.entry {
                if written == LARGEST {
                    break 'copies;
                }
                for (n, _, w) in outs.iter_mut().filter(|(n, _, _)| written < *n) {
                    let sep: &[u8] = if written == 0 { b"" } else { b",\n" };
                    w.write_all(sep)
                        .and_then(|()| w.write_all(entry.get().as_bytes()))
                        .unwrap_or_else(|e| panic!("write the {n}-resource Bundle: {e}"));
                }
                written += 1;
            }
        }
    }
    let finish = |(n, path, mut w): (usize, PathBuf, BufWriter<File>)| {
        w.write_all(b"\n]}\n")
            .and_then(|()| w.flush())
            .expect("finish a generated Bundle");
        (n, path)
    };
    outs.into_iter().map(finish).collect()
}

// ---------------------------------------------------------------------------------
// Import

/// Whether this run measures profiles without the change-tracking triggers of schemas
/// 7 and 8 (`CARRY_BENCH_NO_TRIGGERS=1`), to separate what they cost.
fn no_change_tracking() -> bool {
    std::env::var("CARRY_BENCH_NO_TRIGGERS").is_ok_and(|v| v == "1")
}

/// A fresh profile in a new folder under `work`: encrypted, or the plaintext yardstick.
fn new_profile(work: &Path, encrypted: bool, key_store: &dyn KeyStore) -> Kept {
    let dir = tempfile::tempdir_in(work).expect("create a profile folder");
    let profile = if encrypted {
        Profile::create(dir.path(), "bench", key_store)
    } else {
        Profile::create_plaintext(dir.path(), "bench")
    };
    let profile = profile.expect("create a profile");
    if no_change_tracking() {
        carry_core::backup::without_change_tracking(&profile)
            .expect("drop the change-tracking triggers");
    }
    if let Ok(pragmas) = std::env::var("CARRY_BENCH_PRAGMAS") {
        // Settings to measure against the shipped ones, on the writer's connection.
        profile
            .vault()
            .write(|c| Ok(c.execute_batch(&pragmas)?))
            .expect("apply CARRY_BENCH_PRAGMAS");
    }
    Kept { profile, _dir: dir }
}

/// Import `path` (holding `n` resources) and return resources per second.
fn timed_import(profile: &Profile, path: &Path, n: usize) -> f64 {
    let t = Instant::now();
    let report = profile.import_file(path, ImportOptions::default());
    let secs = t.elapsed().as_secs_f64();
    let report = report.expect("import a generated Bundle");
    assert!(
        report.imported == n as u64 && report.rejected.is_empty(),
        "expected {n} new resources, got {report:?}"
    );
    n as f64 / secs
}

/// Import throughput per size, encrypted and plain alternately, best run of each.
/// Returns the encrypted (passphrase) and plain profiles of the largest size.
fn bench_import(files: &[(usize, PathBuf)], work: &Path, rows: &mut Vec<Row>) -> (Kept, Kept) {
    let key_store = PassphraseKeyStore::new(PASSPHRASE).expect("a passphrase key store");
    let mut kept = None;
    let only: Option<Vec<usize>> = std::env::var("CARRY_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect());
    let chosen = |n: &usize| only.as_ref().is_none_or(|o| o.contains(n));
    for (n, path) in files.iter().filter(|(n, _)| chosen(n)) {
        let runs = if *n >= 100_000 { 2 } else { 3 };
        let (mut best_enc, mut best_plain) = (0f64, 0f64);
        let mut best_yard = 0f64;
        for run in 1..=runs {
            let enc = new_profile(work, true, &key_store);
            let rate_enc = timed_import(&enc.profile, path, *n);
            let plain = new_profile(work, false, &key_store);
            let rate_plain = timed_import(&plain.profile, path, *n);
            let rate_yard = yardstick_import(work, path, *n);
            let ratio = rate_enc / rate_plain;
            eprintln!(
                "import {n}, run {run}: {rate_enc:.0} vs {rate_plain:.0}/s, {ratio:.2}×; \
                 yardstick {rate_yard:.0}/s"
            );
            best_enc = best_enc.max(rate_enc);
            best_plain = best_plain.max(rate_plain);
            best_yard = best_yard.max(rate_yard);
            kept = Some((enc, plain));
        }
        let (ratio, size) = (best_enc / best_plain, label(*n));
        for (what, best) in [
            ("encrypted", best_enc),
            ("plain SQLite", best_plain),
            ("yardstick (simplest pipeline, plain SQLite)", best_yard),
        ] {
            let rate = format!("{:.1}k resources/s (best of {runs})", best / 1e3);
            rows.push((format!("Import {size}, {what}"), rate, None));
        }
        let (figure, target) = (format!("Import {size}, encrypted / plain"), "≥ 0.80×");
        rows.push((figure, format!("{ratio:.2}×"), Some((target, ratio >= 0.8))));
        let yard = best_enc / best_yard;
        let (figure, target) = (format!("Import {size}, encrypted / yardstick"), "≥ 0.50×");
        rows.push((figure, format!("{yard:.2}×"), Some((target, yard >= 0.5))));
    }
    kept.expect("at least one record size")
}

/// What the yardstick keeps of each resource: its type, id and a clinical date.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "resourceType", borrow)]
    resource_type: &'a str,
    #[serde(borrow)]
    id: Option<&'a str>,
    #[serde(rename = "effectiveDateTime", borrow)]
    effective: Option<&'a str>,
    #[serde(rename = "onsetDateTime", borrow)]
    onset: Option<&'a str>,
    #[serde(rename = "authoredOn", borrow)]
    authored: Option<&'a str>,
    #[serde(borrow)]
    date: Option<&'a str>,
}

/// One Bundle entry, for the yardstick.
#[derive(Deserialize)]
struct YardEntry<'a> {
    #[serde(borrow)]
    resource: &'a RawValue,
}

/// A Bundle, for the yardstick.
#[derive(Deserialize)]
struct YardBundle<'a> {
    #[serde(borrow)]
    entry: Vec<YardEntry<'a>>,
}

/// The simplest store of the same resources, written by us as a yardstick of what this
/// machine can do: plain SQLite (WAL, one transaction, one prepared statement), each
/// resource parsed once for its type, id and date, and its raw JSON inserted beside
/// them with one index on type and id. No encryption, minifying, analysis, labels,
/// search text, grouping or change tracking. Returns resources per second.
fn yardstick_import(work: &Path, path: &Path, n: usize) -> f64 {
    let dir = tempfile::tempdir_in(work).expect("create a yardstick folder");
    let t = Instant::now();
    let text = fs::read_to_string(path).expect("read a generated Bundle");
    let bundle: YardBundle<'_> = serde_json::from_str(&text).expect("a generated Bundle");
    let mut conn = rusqlite::Connection::open(dir.path().join("yard.db")).expect("open SQLite");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE r (id INTEGER PRIMARY KEY, rtype TEXT NOT NULL, rid TEXT, date TEXT,
                         json TEXT NOT NULL);
         CREATE INDEX r_type ON r (rtype, rid);",
    )
    .expect("create the yardstick table");
    let tx = conn.transaction().expect("begin");
    {
        let mut insert = tx
            .prepare("INSERT INTO r (rtype, rid, date, json) VALUES (?1, ?2, ?3, ?4)")
            .expect("prepare the insert");
        for e in &bundle.entry {
            let raw = e.resource.get();
            let h: Head<'_> = serde_json::from_str(raw).expect("a resource");
            let date = h.effective.or(h.onset).or(h.authored).or(h.date);
            insert
                .execute(rusqlite::params![h.resource_type, h.id, date, raw])
                .expect("insert a resource");
        }
    }
    tx.commit().expect("commit");
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(bundle.entry.len(), n, "the yardstick read every entry");
    n as f64 / secs
}

// ---------------------------------------------------------------------------------
// Unlock and queries

/// Lock, then time `unlock` followed by the first query (a timeline page of one).
fn timed_unlock(profile: &Profile, key_store: &dyn KeyStore) -> Duration {
    profile.lock();
    let t = Instant::now();
    profile.unlock(key_store).expect("unlock the vault");
    let first = TimelineQuery {
        limit: Some(1),
        ..Default::default()
    };
    let page = profile.timeline(&first).expect("the first timeline page");
    let elapsed = t.elapsed();
    assert_eq!(page.items.len(), 1, "the vault holds resources");
    elapsed
}

/// Unlock at the largest size: the vault alone (raw-key store, which the target is
/// about), then the whole unlock with PBKDF2 (passphrase store).
fn bench_unlock(profile: &Profile, rows: &mut Vec<Row>) {
    let size = label(LARGEST);
    let passphrase = PassphraseKeyStore::new(PASSPHRASE).expect("a passphrase key store");
    let samples = |store: &dyn KeyStore, runs| -> Vec<Duration> {
        profile.rewrap(store).expect("rewrap the vault key");
        (0..runs).map(|_| timed_unlock(profile, store)).collect()
    };
    let mut raw = samples(&RawKeyStore, UNLOCK_RUNS);
    let mut full = samples(&passphrase, PBKDF2_UNLOCK_RUNS);
    let (first, p50) = (raw[0], percentile(&mut raw, 0.5));
    let under_20 = |d: Duration| Some(("< 20 ms", d < Duration::from_millis(20)));
    let what = format!("Unlock {size}, raw key: open + verify + first query");
    let figure = format!("{what}, p50 of {UNLOCK_RUNS}");
    rows.push((figure, ms(p50), under_20(p50)));
    let figure = format!("{what}, first after the import");
    rows.push((figure, ms(first), under_20(first)));
    let figure =
        format!("Unlock {size}, passphrase (PBKDF2, 600k rounds), p50 of {PBKDF2_UNLOCK_RUNS}");
    rows.push((figure, ms(percentile(&mut full, 0.5)), None));
}

/// `QUERY_RUNS` timeline pages: walks of `PAGES_PER_WALK` pages per category filter,
/// each walk going on from the cursor where that category's last walk stopped.
fn timeline_samples(profile: &Profile) -> Vec<Duration> {
    let mut cursors: Vec<Option<String>> = vec![None; WALK.len()];
    let mut out = Vec::with_capacity(QUERY_RUNS);
    while out.len() < QUERY_RUNS {
        for (category, cursor) in WALK.iter().zip(cursors.iter_mut()) {
            for _ in 0..PAGES_PER_WALK {
                let q = TimelineQuery {
                    categories: category.iter().copied().collect(),
                    limit: Some(PAGE),
                    cursor: cursor.take(),
                    ..Default::default()
                };
                let t = Instant::now();
                let page = profile.timeline(&q).expect("a timeline page");
                out.push(t.elapsed());
                assert!(!page.items.is_empty(), "{category:?} has items");
                *cursor = page.next_cursor;
                if cursor.is_none() {
                    break;
                }
            }
        }
    }
    out.truncate(QUERY_RUNS);
    out
}

/// `QUERY_RUNS` searches (best 50 matches) over the rotating `SEARCH_TERMS`.
fn search_samples(profile: &Profile) -> Vec<Duration> {
    let terms: Vec<&str> = SEARCH_TERMS.split(',').collect();
    let search = |term: &str| {
        let t = Instant::now();
        let items = profile.search(term, None).expect("a search");
        let elapsed = t.elapsed();
        assert!(!items.is_empty(), "'{term}' is in the Synthea data");
        elapsed
    };
    let term = |i: usize| terms[i % terms.len()];
    let samples: Vec<Duration> = (0..QUERY_RUNS).map(|i| search(term(i))).collect();
    // Which terms cost the most: the p99 is theirs.
    let slowest: Vec<String> = terms
        .iter()
        .enumerate()
        .map(|(t, word)| {
            let worst = samples.iter().skip(t).step_by(terms.len()).max();
            format!("{word} {}", worst.map_or_else(String::new, |d| ms(*d)))
        })
        .collect();
    eprintln!("search, slowest per term: {}", slowest.join(", "));
    samples
}

/// Timeline and search at the largest size, p50 / p99, on the encrypted vault and on
/// the plain yardstick (for comparison: the targets are for the encrypted vault).
fn bench_queries(enc: &Profile, plain: &Profile, rows: &mut Vec<Row>) {
    let size = label(LARGEST);
    for (name, profile) in [("encrypted", enc), ("plain", plain)] {
        // One untimed pass opens the reader connections and warms their caches.
        let _ = (timeline_samples(profile), search_samples(profile));
        let (tl, se) = (timeline_samples(profile), search_samples(profile));
        let figures = [
            (format!("Timeline page of {PAGE}"), tl, "p99 < 2 ms", 2),
            ("Search".to_owned(), se, "p99 < 20 ms", 20),
        ];
        for (figure, mut samples, target, limit_ms) in figures {
            let p50 = percentile(&mut samples, 0.5);
            let p99 = percentile(&mut samples, 0.99);
            let met = p99 < Duration::from_millis(limit_ms);
            let target = (name == "encrypted").then_some((target, met));
            let figure = format!("{figure} at {size}, {name}, p50 / p99 of {QUERY_RUNS}");
            rows.push((figure, format!("{} / {}", ms(p50), ms(p99)), target));
        }
    }
}

// ---------------------------------------------------------------------------------
// Cold start

/// The child process of a cold start: open the profile with a raw key (what an app's
/// platform key store gives back), read the first timeline page, and say so.
fn cold_child(dir: &Path) {
    let profile = Profile::open(dir, &RawKeyStore).expect("open the profile");
    let first = TimelineQuery {
        limit: Some(PAGE),
        ..Default::default()
    };
    let page = profile.timeline(&first).expect("the first timeline page");
    assert_eq!(page.items.len(), PAGE as usize, "a full first page");
    println!("ready");
}

/// A cold start as an app pays it: a new process loads the library, opens a profile
/// of `COLD_SIZE` resources with a raw-key store and reads its first page; timed from
/// the spawn until the child says the page is read (so it includes starting a process,
/// which an app has already paid). The profile's files were just written, so they are
/// in the OS's cache, as they are for an app opened again.
fn bench_cold_start(files: &[(usize, PathBuf)], work: &Path, rows: &mut Vec<Row>) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let Some((_, path)) = files.iter().find(|(n, _)| *n == COLD_SIZE) else {
        return;
    };
    let dir = tempfile::tempdir_in(work).expect("create a profile folder");
    {
        let profile = Profile::create(dir.path(), "cold", &RawKeyStore).expect("create");
        timed_import(&profile, path, COLD_SIZE);
    }
    let exe = std::env::current_exe().expect("the harness's own path");
    let mut samples: Vec<Duration> = (0..COLD_RUNS)
        .map(|_| {
            let t = Instant::now();
            let mut child = Command::new(&exe)
                .env(CHILD_ENV, format!("cold:{}", dir.path().display()))
                .stdout(Stdio::piped())
                .spawn()
                .expect("run the cold-start child");
            let mut line = String::new();
            let stdout = child.stdout.take().expect("the child's output");
            BufReader::new(stdout)
                .read_line(&mut line)
                .expect("read the child's output");
            let elapsed = t.elapsed();
            assert_eq!(line.trim(), "ready", "the cold-start child failed");
            assert!(child.wait().expect("wait for the child").success());
            elapsed
        })
        .collect();
    let first = samples[0];
    let p50 = percentile(&mut samples, 0.5);
    let max = samples.iter().copied().max().unwrap_or_default();
    let figure = format!(
        "Cold start, {}: new process to the first page of {PAGE} (raw key), p50 of {COLD_RUNS}",
        label(COLD_SIZE)
    );
    let met = p50 < Duration::from_millis(50);
    let result = format!("{} (first {}, slowest {})", ms(p50), ms(first), ms(max));
    rows.push((figure, result, Some(("< 50 ms", met))));
}

// ---------------------------------------------------------------------------------
// Peak memory

/// The child process: import one file into a fresh encrypted profile and print the
/// resources imported and the peak resident set size (KiB) before the import, when
/// half the file was read, and after.
fn child(spec: &str) {
    if let Some(dir) = spec.strip_prefix("cold:") {
        return cold_child(Path::new(dir));
    }
    let path = spec
        .strip_prefix("import:")
        .expect("CARRY_BENCH_CHILD=import:<path> or cold:<folder>");
    let dir = tempfile::tempdir().expect("create a profile folder");
    let key_store = PassphraseKeyStore::new(PASSPHRASE).expect("a passphrase key store");
    let profile = Profile::create(dir.path(), "bench", &key_store).expect("create a profile");
    let before = vm_hwm_kib();
    // The peak once half the file is read: a streamed import adds little after it.
    let halfway = AtomicU64::new(0);
    let progress = |p: ImportProgress| {
        if halfway.load(Ordering::Relaxed) == 0 && p.bytes_read * 2 >= p.bytes_total {
            halfway.store(vm_hwm_kib(), Ordering::Relaxed);
        }
    };
    let options = ImportOptions {
        progress: Some(&progress),
        cancel: None,
    };
    let report = profile.import_file(Path::new(path), options);
    let imported = report.expect("import a file").imported;
    let (halfway, after) = (halfway.into_inner(), vm_hwm_kib());
    println!("{imported} {before} {halfway} {after}");
}

/// `VmHWM` (peak resident set size) of this process, in KiB.
fn vm_hwm_kib() -> u64 {
    proc_field("/proc/self/status", "VmHWM")
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// Peak memory of importing the largest Synthea file and the generated records of 10k
/// resources and more, each in a process of its own.
fn bench_memory(largest: &Path, files: &[(usize, PathBuf)], rows: &mut Vec<Row>) {
    let exe = std::env::current_exe().expect("the harness's own path");
    let mut cases = vec![(None, largest.to_path_buf())];
    cases.extend(
        files
            .iter()
            .filter(|(n, _)| *n >= 10_000)
            .map(|(n, p)| (Some(*n), p.clone())),
    );
    let mut peaks = Vec::new();
    for (size, path) in cases {
        let out = Command::new(&exe)
            .env(CHILD_ENV, format!("import:{}", path.display()))
            .output()
            .expect("run the memory child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "the memory child failed: {stderr}");
        let fields: Vec<u64> = stdout
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        let [imported, before, halfway, after] = fields[..] else {
            panic!("the memory child printed '{stdout}'")
        };
        let mb = fs::metadata(&path).map_or(0.0, |m| m.len() as f64 / 1e6);
        let what = match size {
            None => format!("largest Synthea file ({imported} resources, {mb:.1} MB)"),
            Some(n) => format!("{} record ({mb:.0} MB)", label(n)),
        };
        let mib = |kib: u64| kib as f64 / 1024.0;
        let result = format!(
            "{:.1} MiB ({:.1} before the import, {:.1} half-way)",
            mib(after),
            mib(before),
            mib(halfway)
        );
        rows.push((format!("Peak memory importing the {what}"), result, None));
        peaks.push((halfway, after));
    }
    let [.., (_, ten_k), (halfway, hundred_k)] = peaks[..] else {
        return;
    };
    // Flat across sizes: a record of 10× the resources peaks at most 1.25× as high.
    let flat = hundred_k as f64 <= 1.25 * ten_k as f64;
    if let Some(last) = rows.last_mut() {
        last.2 = Some(("flat: 100k ≤ 1.25× 10k", flat));
    }
    // Flat within the largest import: its second half raises the peak by at most 5%.
    let growth = (hundred_k as f64 / halfway as f64 - 1.0) * 100.0;
    let (size, target) = (label(LARGEST), Some(("≤ +5%", growth <= 5.0)));
    let figure = format!("Peak memory growth over the second half of the {size} import");
    rows.push((figure, format!("{growth:+.1}%"), target));
}

// ---------------------------------------------------------------------------------
// Reporting

/// `1k`, `10k`, `100k`.
fn label(n: usize) -> String {
    format!("{}k", n / 1000)
}

/// The value of `key` in a `/proc` file of `key: value` lines, without a `kB` unit.
fn proc_field(file: &str, key: &str) -> Option<String> {
    let text = fs::read_to_string(file).ok()?;
    let line = text
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim() == key));
    Some(line?.1.trim().trim_end_matches("kB").trim().to_owned())
}

/// The machine: CPU model, logical CPUs (as `nproc` counts them), memory, and the
/// load average when the run starts (other work on the machine skews the figures).
fn machine() -> String {
    let model = proc_field("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib: f64 = proc_field("/proc/meminfo", "MemTotal")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let loadavg = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = loadavg.split_whitespace().next().unwrap_or("?");
    let gib = mem_kib / (1 << 20) as f64;
    format!("{model}, {cpus} CPUs (nproc), {gib:.0} GiB RAM; 1-minute load {load} at the start")
}

/// The results as markdown: a heading line, the machine, and the table.
fn render(machine: &str, rows: &[Row], total: Duration) -> String {
    let date = time::OffsetDateTime::now_utc().date();
    let mut s = format!("Carry vault benchmarks, {date}. Machine: {machine}.\n\n");
    if no_change_tracking() {
        s += "Profiles without the change-tracking triggers (CARRY_BENCH_NO_TRIGGERS=1).\n\n";
    }
    s += "| Figure | Result | Target | Verdict |\n|---|---|---|---|\n";
    for (figure, result, target) in rows {
        let (target, verdict) = match target {
            Some((t, true)) => (*t, "met"),
            Some((t, false)) => (*t, "**missed**"),
            None => ("—", "—"),
        };
        s += &format!("| {figure} | {result} | {target} | {verdict} |\n");
    }
    s + &format!("\nTotal bench time: {:.0} s\n", total.as_secs_f64())
}

/// The workspace root.
fn workspace() -> PathBuf {
    let core = Path::new(env!("CARGO_MANIFEST_DIR"));
    core.parent().unwrap_or(core).to_path_buf()
}

/// The workspace's target folder (`CARGO_TARGET_DIR` when set).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}
