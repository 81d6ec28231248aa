//! The sync benchmark: one patient's record of about 10,000 resources on the
//! reference endpoint (SQLite, SMART sign-in) over loopback, pulled into a fresh
//! encrypted profile; then a sync with no changes; then the endpoint's throughput for
//! one search page. Run with `make bench-sync`, which builds the endpoint first.
//! Prints a table and writes it to `target/bench-sync.md`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use carry_core::sync::{self, AuthKind, NewSource, ProviderKind, SyncOptions};
use carry_core::Profile;
use common::{copies_of_jene, ms, percentile, RawKeyStore, JENE_ID};

/// Copies of the patient's record (each with fresh ids, the same Patient).
const COPIES: u64 = 17;
const SYNC_RUNS: usize = 3;
const LOAD_SECONDS: u64 = 5;
const LOAD_CLIENTS: usize = 4;
const TOKEN: &str = "bench-static-token-0123456789";

struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn endpoint_bin() -> PathBuf {
    let p = root().join("target/release/carry-endpoint");
    assert!(
        p.exists(),
        "{} is missing: run `make bench-sync`",
        p.display()
    );
    p
}

fn serve(db: &str, args: &[&str]) -> Server {
    let mut child = Command::new(endpoint_bin())
        .args(["serve", "--db", db, "--listen", "127.0.0.1:0"])
        .args(args)
        .env("CARRY_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the endpoint");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the endpoint's first line");
    let base = line.trim().trim_start_matches("listening on ").to_string();
    Server(child, base)
}

fn main() {
    let shared = std::env::var_os("SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared"));
    let work = tempfile::tempdir().expect("work dir");
    let db = format!("sqlite://{}", work.path().join("ep.db").display());
    let bundle = copies_of_jene(&shared, work.path(), COPIES);
    let seeded = Command::new(endpoint_bin())
        .args(["seed", "--db", &db, "--tenant", "gp", "--from"])
        .arg(&bundle)
        .output()
        .expect("seed");
    assert!(
        seeded.status.success(),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    let n: u64 = String::from_utf8_lossy(&seeded.stdout)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("the seed count");
    // The seed counts the Patient once per copy; the tenant holds it once.
    let n = n - (COPIES - 1);
    let server = serve(&db, &[]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut full = Vec::new();
    let mut again = Vec::new();
    for _ in 0..SYNC_RUNS {
        let dir = tempfile::tempdir_in(work.path()).expect("profile dir");
        let profile =
            Arc::new(Profile::create(dir.path(), "bench", &RawKeyStore).expect("profile"));
        sync::add_source(
            &profile,
            &NewSource {
                name: "gp".into(),
                kind: ProviderKind::Gp,
                base_url: format!("{}/gp/fhir", server.1),
                auth: AuthKind::Smart {
                    client_id: sync::DEFAULT_CLIENT_ID.into(),
                    scope: sync::DEFAULT_SCOPE.into(),
                },
                patient_id: None,
                push: Some(false),
                api: sync::Api::Fhir,
            },
        )
        .expect("add the source");
        rt.block_on(async {
            let start = sync::begin_login(&profile, "gp", "carry://callback")
                .await
                .expect("begin");
            let back = sync::sandbox_consent(&start.authorize_url, JENE_ID)
                .await
                .expect("consent");
            sync::complete_login(&profile, "gp", &back)
                .await
                .expect("complete");
            let t = Instant::now();
            let r = sync::sync(&profile, None, &SyncOptions::default())
                .await
                .expect("sync");
            full.push((t.elapsed(), r[0].fetched, r[0].requests));
            let t = Instant::now();
            let r = sync::sync(&profile, None, &SyncOptions::default())
                .await
                .expect("sync");
            again.push((t.elapsed(), r[0].fetched, r[0].requests));
        });
        assert_eq!(full.last().map(|f| f.1), Some(n), "every resource once");
    }
    full.sort();
    again.sort();
    let (best, fetched, requests) = full[0];
    let (median, ..) = full[full.len() / 2];
    rows.push((
        format!("sync {n} resources into a new encrypted profile (best / median of {SYNC_RUNS})"),
        format!(
            "{:.2} s / {:.2} s = {:.0} resources/s ({fetched} fetched, {requests} requests)",
            best.as_secs_f64(),
            median.as_secs_f64(),
            n as f64 / best.as_secs_f64()
        ),
    ));
    let (t, fetched, requests) = again[again.len() / 2];
    rows.push((
        "second sync, nothing changed (median)".into(),
        format!("{} ({fetched} resources, {requests} requests)", ms(t)),
    ));
    drop(server);

    // Throughput of one search page with a static token (no token lookup).
    let server = serve(&db, &["--auth", &format!("bearer:{TOKEN}")]);
    let url = format!(
        "{}/gp/fhir/Observation?patient={JENE_ID}&_count=50",
        server.1
    );
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let handles: Vec<_> = (0..LOAD_CLIENTS)
        .map(|_| {
            let (url, stop) = (url.clone(), stop.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
                let mut lat = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let mut r = agent
                        .get(&url)
                        .header("authorization", &format!("Bearer {TOKEN}"))
                        .call()
                        .expect("search");
                    let _ = r.body_mut().read_to_vec().expect("body");
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(LOAD_SECONDS));
    stop.store(true, Ordering::Relaxed);
    let mut lat: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("client"))
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    rows.push((
        format!("endpoint: search page of 50 Observations, {LOAD_CLIENTS} keep-alive clients for {LOAD_SECONDS} s"),
        format!(
            "{:.0} requests/s; latency p50 {} / p99 {}",
            lat.len() as f64 / elapsed,
            ms(percentile(&mut lat, 0.5)),
            ms(percentile(&mut lat, 0.99))
        ),
    ));
    drop(server);

    let mut table = String::from("| figure | result |\n|---|---|\n");
    for (f, r) in &rows {
        table.push_str(&format!("| {f} | {r} |\n"));
    }
    print!("{table}");
    let _ = std::fs::write(root().join("target/bench-sync.md"), &table);
}
