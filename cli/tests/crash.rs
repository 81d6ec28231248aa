//! Crash consistency: `carry` is SIGKILLed at random moments during five operations,
//! and every kill must leave a profile as sound as one that was never interrupted.
//!
//! The operations are importing a large Synthea bundle; a provider sync against a
//! local endpoint tenant; a carer's `carry sync` applying the record a patient granted
//! (envelope apply); the patient's `carry revoke`, with the carer's sync that
//! applies the revocation; and `carry amend`, which replaces a reading that reached a
//! provider (the old one out and queued to be taken back there, the new one in). Each runs once uninterrupted first, to measure how long it
//! takes and what it ends with. Then, for each kill point, the state before it (the
//! profiles and the endpoint's database, copied while nothing has them open) is copied
//! into a fresh folder, the operation is started and killed after a delay drawn
//! between zero and that duration, and the test checks that:
//!
//! - the vault opens and `carry check` (SQLite's integrity check) passes;
//! - the audit chain verifies (`carry audit --verify --json` says ok);
//! - the record is a state the operation passes through, with nothing half applied: a
//!   file all in or all out; a sync holding whole pages of the provider's answer, in
//!   order, each resource exactly as sent; a carer's copy absent, empty (the grant
//!   came, its records not yet) or exactly the patient's `view-as` bundle; a grant
//!   active or revoked;
//! - rerunning the operation converges on exactly what the uninterrupted run made.
//!
//! `CARRY_CRASH_POINTS` kill points (default 10, `make crash-test` runs 100) are spread
//! over the five operations. The delays come from a xorshift generator seeded by
//! `CARRY_CRASH_SEED` (default [`DEFAULT_SEED`]) as fractions of each measured run;
//! the seed is printed, so a failure replays at the same points (as far as the
//! machine's timing allows).
//!
//! A carer's grant and its copy live in two vaults, written one after the other. A
//! grant whose copy's vault is not there (not made yet, or already deleted by a
//! revocation) is not listed, and the next sync completes the change; a shared record
//! that is listed but cannot be opened fails the test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::*;

/// The seed when `CARRY_CRASH_SEED` is not set.
const DEFAULT_SEED: u64 = 0xC0FF_EE15_CA55_E77E;
/// Kill points when `CARRY_CRASH_POINTS` is not set.
const DEFAULT_POINTS: u64 = 10;

/// The operations, in the order the points are dealt out.
const IMPORT: u64 = 0;
const SYNC: u64 = 1;
const APPLY: u64 = 2;
const REVOKE: u64 = 3;
const AMEND: u64 = 4;
/// How many operations share the kill points.
const OPERATIONS: u64 = 5;

/// The large file imported (the largest fixture, 2.7 MB in 589 resources).
const BIG_FILE: &str =
    "fixtures/fhir/synthea/sotf-Jene_Cummings_8a2bb726-2f79-4940-a134-a374eef39af7.json";
/// The provider's patient (2.2 MB: several pages of `$everything`).
const SYNC_FILE: &str =
    "fixtures/fhir/synthea/sotf-Vida_Schultz_440ffe72-a553-4ade-9f76-55a6bbd208a9.json";
const SYNC_PATIENT: &str = "02f19698-ca4a-4a67-b343-0819ff6fce66";
/// The patient who shares her record with a carer.
const SHARE_FILE: &str =
    "fixtures/fhir/synthea/sotf-Ned_Hintz_e4b9259d-0f54-48d1-a35d-b526729a4dfe.json";
const ALL_CATEGORIES: &str = "conditions,medications,allergies,immunisations,test-results,\
     vital-signs,procedures,encounters,appointments,documents,care-plans,social-care,administrative,other";
/// The largest page the endpoint serves here (`--max-count`): fewer than the sync
/// engine asks for, so that the provider's record spans several pages, as with
/// servers that cap their pages.
const PAGE: usize = 100;
/// The page size the sync engine asks for (`crates/carry-sync/src/sync/pull.rs`).
const ENGINE_PAGE: usize = 500;

// ---------------------------------------------------------------------------------
// The plan: how many points, which seed, which delays.

struct Plan {
    points: u64,
    seed: u64,
}

fn plan() -> Plan {
    let points = match std::env::var("CARRY_CRASH_POINTS") {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("CARRY_CRASH_POINTS={v} is not a number")),
        Err(_) => DEFAULT_POINTS,
    };
    let seed = match std::env::var("CARRY_CRASH_SEED") {
        Ok(v) => {
            let t = v.trim();
            match t.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => t.parse(),
            }
            .unwrap_or_else(|_| panic!("CARRY_CRASH_SEED={v} is not a number"))
        }
        Err(_) => DEFAULT_SEED,
    };
    Plan { points, seed }
}

impl Plan {
    /// The points for operation `op`: an even share, the remainder to the first ones.
    fn points_for(&self, op: u64) -> u64 {
        self.points / OPERATIONS + u64::from(op < self.points % OPERATIONS)
    }

    /// The delays for operation `op`, each its own stream of the seed.
    fn rng(&self, op: u64) -> XorShift {
        XorShift::new(self.seed, op)
    }

    fn announce(&self, what: &str, op: u64) {
        println!(
            "crash: {what}: {} of {} kill points, seed {:#x} (replay: CARRY_CRASH_SEED={:#x})",
            self.points_for(op),
            self.points,
            self.seed,
            self.seed
        );
    }
}

/// xorshift64, started from a splitmix64 of the seed and the stream number.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64, stream: u64) -> XorShift {
        let mut z = seed
            .wrapping_add(stream.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        XorShift((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A delay between zero and `max`: the same fraction of it for the same seed, so
    /// a replay kills at the same point of a run that takes longer or shorter.
    fn delay(&mut self, max: Duration) -> Duration {
        let fraction = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        max.mul_f64(fraction)
    }
}

/// What the points of one operation found, for the summary line.
#[derive(Default)]
struct Tally {
    states: BTreeMap<String, u64>,
    landed: u64,
    points: u64,
}

impl Tally {
    fn add(&mut self, state: &str, landed: bool) {
        *self.states.entry(state.to_string()).or_insert(0) += 1;
        self.landed += u64::from(landed);
        self.points += 1;
    }

    fn print(&self, what: &str, started: Instant) {
        let states: Vec<String> = self
            .states
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        println!(
            "crash: {what}: {} points, {} killed mid-run, the rest had finished; states: {}; \
             all sound and converged ({:.1} s)",
            self.points,
            self.landed,
            if states.is_empty() {
                "none".to_string()
            } else {
                states.join(", ")
            },
            started.elapsed().as_secs_f64()
        );
    }
}

// ---------------------------------------------------------------------------------
// Processes: the CLI killed or timed, and an endpoint that keeps its port.

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Run `carry` in `home`, requiring success.
fn must(home: &Path, args: &[&str], ctx: &str) -> Output {
    let out = run(home, args);
    assert!(
        out.status.success(),
        "{ctx}: carry {args:?} exited {:?}: {}",
        out.status.code(),
        text(&out)
    );
    out
}

/// Run `carry ... --json` in `home`, requiring success; its output.
fn must_json(home: &Path, args: &[&str], ctx: &str) -> Value {
    let out = must(home, args, ctx);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{ctx}: carry {args:?}: not JSON ({e}): {}", text(&out)))
}

/// Run `cmd` to the end; how long it took, and its output.
fn timed(mut cmd: Command) -> (Duration, Output) {
    let start = Instant::now();
    let out = cmd.stdin(Stdio::null()).output().expect("run carry");
    (start.elapsed(), out)
}

/// Start `cmd` and SIGKILL it after `delay` unless it finished first. Returns whether
/// the kill landed (the process was still running).
fn kill_after(mut cmd: Command, delay: Duration) -> bool {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start carry");
    let deadline = Instant::now() + delay;
    loop {
        if child.try_wait().expect("poll carry").is_some() {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(2)));
    }
    let _ = child.kill();
    let status = child.wait().expect("wait for carry");
    status.signal() == Some(9)
}

/// Ports handed out in this process.
static PORTS: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// A loopback port for an endpoint restarted at every point on a copy of its
/// database, so the URLs the profiles hold stay valid. It is below the kernel's
/// ephemeral range (32768 and up by default), so no other test's port-0 listener or
/// outgoing connection takes it between restarts.
fn fixed_port() -> u16 {
    let mut taken = PORTS.lock().unwrap_or_else(|p| p.into_inner());
    let start = 20_000 + u16::try_from(std::process::id() % 500).unwrap_or(0) * 20;
    for p in (start..32_000).chain(20_000..start) {
        if !taken.contains(&p) && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            taken.push(p);
            return p;
        }
    }
    panic!("no free loopback port between 20000 and 32000");
}

/// `carry-endpoint serve` on a fixed port, stopped on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve_at(db: &Path, port: u16) -> Server {
    let url = format!("sqlite://{}", db.display());
    let listen = format!("127.0.0.1:{port}");
    for _ in 0..50 {
        let mut child = Command::new(endpoint_bin())
            .args(["serve", "--db", &url, "--listen", &listen])
            .args(["--max-count", &PAGE.to_string()])
            .env("CARRY_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start carry-endpoint");
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = std::io::BufReader::new(out).read_line(&mut line);
        }
        if line.starts_with("listening on ") {
            return Server(child);
        }
        // The port is not free yet: try again shortly.
        let _ = child.kill();
        let _ = child.wait();
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("carry-endpoint could not listen on {listen}");
}

fn base_of(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// Envelopes waiting at the relay.
fn relay_rows(db: &Path) -> i64 {
    let c = rusqlite::Connection::open(db).expect("open the endpoint database");
    c.query_row("SELECT count(*) FROM relay_envelopes", [], |r| r.get(0))
        .expect("count relay envelopes")
}

// ---------------------------------------------------------------------------------
// State: copies, checks and the record as exported.

/// Copy the folder `from` to `to`, files and subfolders (vaults with their -wal and
/// -shm files, key files, endpoint databases). Nothing may have them open.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("make a folder");
    for e in std::fs::read_dir(from).expect("read a folder") {
        let e = e.expect("read a folder entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("a file type").is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy a file");
        }
    }
}

/// The vault opens, passes SQLite's integrity check, and its audit chain verifies.
fn sound(home: &Path, ctx: &str) {
    must(home, &["check"], ctx);
    let audit = must_json(home, &["audit", "--verify", "--json"], ctx);
    assert_eq!(audit["ok"], true, "{ctx}: the audit chain: {audit}");
}

/// The record in `home` (or the record shared with it by `profile`) as exported:
/// its Bundle entries; when a shared record cannot be opened, what `carry` said.
fn exported(home: &Path, profile: Option<&str>, ctx: &str) -> Result<Vec<Value>, String> {
    let file = home.with_extension(format!("{}.export.json", profile.unwrap_or("own")));
    let file_arg = file.to_str().expect("a UTF-8 path");
    let mut args = Vec::new();
    if let Some(p) = profile {
        args.extend(["--profile", p]);
    }
    args.extend(["export", "--out", file_arg]);
    let out = run(home, &args);
    if !out.status.success() {
        assert!(profile.is_some(), "{ctx}: export: {}", text(&out));
        return Err(format!(
            "exit {:?}: {}",
            out.status.code(),
            text(&out).trim()
        ));
    }
    let bundle: Value =
        serde_json::from_slice(&std::fs::read(&file).expect("read the export")).expect("JSON");
    let _ = std::fs::remove_file(&file);
    Ok(bundle["entry"].as_array().cloned().unwrap_or_default())
}

/// Each entry whole (fullUrl and resource), as JSON text.
fn entries(e: &[Value]) -> BTreeSet<String> {
    e.iter().map(Value::to_string).collect()
}

/// Each entry's resource, as JSON text.
fn resources_of(e: &[Value]) -> BTreeSet<String> {
    e.iter().map(|e| e["resource"].to_string()).collect()
}

/// `Type/id` of a resource.
fn key(r: &Value) -> String {
    format!(
        "{}/{}",
        r["resourceType"].as_str().unwrap_or("?"),
        r["id"].as_str().unwrap_or("?")
    )
}

fn keys_of(e: &[Value]) -> BTreeSet<String> {
    e.iter().map(|e| key(&e["resource"])).collect()
}

fn count_of(home: &Path, args: &[&str], ctx: &str) -> usize {
    must_json(home, args, ctx)
        .as_array()
        .map(Vec::len)
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------
// Import.

#[test]
fn a_killed_import_leaves_the_file_all_in_or_all_out_and_a_rerun_converges() {
    let plan = plan();
    let started = Instant::now();
    plan.announce("import", IMPORT);
    let d = tempfile::tempdir().expect("a temporary folder");
    let big = shared(BIG_FILE);
    let big = big.to_str().expect("a UTF-8 path");

    // Before: a profile holding one reading of its own.
    let before_home = d.path().join("before");
    must(&before_home, &["init", "--name", "Jene Cummings"], "setup");
    must(&before_home, &["add", "bp", "120/80"], "setup");
    let before = entries(&exported(&before_home, None, "setup").expect("the record"));

    // After: the same with the file imported, uninterrupted.
    let reference = d.path().join("reference");
    copy_tree(&before_home, &reference);
    let (took, out) = timed(carry(&reference, &["import", big]));
    assert!(out.status.success(), "import: {}", text(&out));
    let after = entries(&exported(&reference, None, "reference").expect("the record"));
    assert!(
        after.len() > before.len() + 500,
        "the file was imported: {} resources",
        after.len()
    );
    println!(
        "crash: import: uninterrupted {} ms, {} -> {} resources",
        took.as_millis(),
        before.len(),
        after.len()
    );

    let mut rng = plan.rng(IMPORT);
    let mut tally = Tally::default();
    let n = plan.points_for(IMPORT);
    for i in 0..n {
        let delay = rng.delay(took);
        let ctx = format!(
            "import point {}/{n} (seed {:#x}, killed at {} of {} ms)",
            i + 1,
            plan.seed,
            delay.as_millis(),
            took.as_millis()
        );
        let home = d.path().join(format!("point{i}"));
        copy_tree(&before_home, &home);
        let landed = kill_after(carry(&home, &["import", big]), delay);
        sound(&home, &ctx);
        let got = entries(&exported(&home, None, &ctx).expect("the record"));
        let state = if got == before {
            "before"
        } else if got == after {
            "after"
        } else {
            panic!(
                "{ctx}: half a file: {} resources held, {} before and {} after; {} not in the file",
                got.len(),
                before.len(),
                after.len(),
                got.difference(&after).count()
            );
        };
        // The rerun converges on the uninterrupted run's record, and leaves it sound.
        must(&home, &["import", big], &ctx);
        let again = entries(&exported(&home, None, &ctx).expect("the record"));
        assert!(
            again == after,
            "{ctx}: the rerun holds {} resources, the uninterrupted run {}",
            again.len(),
            after.len()
        );
        sound(&home, &ctx);
        println!(
            "crash: {ctx}: {}{state}; rerun converged",
            if landed { "" } else { "had finished; " }
        );
        tally.add(state, landed);
        let _ = std::fs::remove_dir_all(&home);
    }
    tally.print("import", started);
}

// ---------------------------------------------------------------------------------
// Provider sync.

/// The keys of `$everything` page by page, as the sync engine pages it: entry `k` is
/// what the first `k` pages hold.
fn page_prefixes(db: &Path, scratch: &Path) -> Vec<BTreeSet<String>> {
    // An open server over a copy of the database, so the real one stays untouched.
    std::fs::create_dir_all(scratch).expect("make a folder");
    for e in std::fs::read_dir(db.parent().expect("a folder")).expect("read a folder") {
        let e = e.expect("read a folder entry");
        let name = e.file_name();
        if name.to_string_lossy().starts_with("ep.db") {
            std::fs::copy(e.path(), scratch.join(&name)).expect("copy a file");
        }
    }
    let open = serve(
        &format!("sqlite://{}", scratch.join("ep.db").display()),
        &["--auth", "none", "--max-count", &PAGE.to_string()],
    );
    // Asked as the engine asks: the pages are the ones the endpoint gives it.
    let mut url = Some(format!(
        "{}/gp/fhir/Patient/{SYNC_PATIENT}/$everything?_count={ENGINE_PAGE}",
        open.base
    ));
    let mut held = BTreeSet::new();
    let mut prefixes = vec![held.clone()];
    while let Some(u) = url {
        let page: Value = ureq::get(&u)
            .header("accept", "application/fhir+json")
            .call()
            .expect("a page")
            .body_mut()
            .read_json()
            .expect("a JSON page");
        for e in page["entry"].as_array().into_iter().flatten() {
            if e["search"]["mode"] != "outcome" {
                held.insert(key(&e["resource"]));
            }
        }
        prefixes.push(held.clone());
        url = page["link"]
            .as_array()
            .and_then(|links| links.iter().find(|l| l["relation"] == "next"))
            .and_then(|l| l["url"].as_str())
            .map(str::to_string);
    }
    prefixes
}

fn sync_complete(home: &Path, ctx: &str) {
    let r = must_json(home, &["sync", "--json"], ctx);
    let sources = r["sources"].as_array().cloned().unwrap_or_default();
    assert!(
        !sources.is_empty() && sources.iter().all(|s| s["complete"] == true),
        "{ctx}: the sync did not complete: {r}"
    );
}

#[test]
fn a_killed_provider_sync_keeps_whole_pages_and_a_rerun_converges() {
    let plan = plan();
    let started = Instant::now();
    plan.announce("provider sync", SYNC);
    let d = tempfile::tempdir().expect("a temporary folder");
    let port = fixed_port();
    let base = base_of(port);

    // Before: a tenant seeded with one patient, and a profile signed in to it.
    let world = d.path().join("world");
    std::fs::create_dir_all(&world).expect("make a folder");
    let db = world.join("ep.db");
    let file = shared(SYNC_FILE);
    endpoint(&[
        "seed",
        "--db",
        &format!("sqlite://{}", db.display()),
        "--tenant",
        "gp",
        "--from",
        file.to_str().expect("a UTF-8 path"),
    ]);
    let patient = world.join("patient");
    {
        let _ep = serve_at(&db, port);
        must(&patient, &["init", "--name", "Vida Schultz"], "setup");
        let url = format!("{base}/gp/fhir");
        must(
            &patient,
            &["source", "add", "gp", &url, "--kind", "gp"],
            "setup",
        );
        let login = must_json(
            &patient,
            &[
                "source",
                "login",
                "gp",
                "--sandbox-patient",
                SYNC_PATIENT,
                "--json",
            ],
            "setup",
        );
        assert_eq!(login["signed_in"], true, "{login}");
    }
    let prefixes = page_prefixes(&db, &d.path().join("pages"));
    assert!(prefixes.len() > 3, "the sync takes several pages");

    // After: the sync, uninterrupted.
    let reference = d.path().join("reference");
    copy_tree(&world, &reference);
    let (took, after) = {
        let _ep = serve_at(&reference.join("ep.db"), port);
        let home = reference.join("patient");
        let (took, out) = timed(carry(&home, &["sync", "--json"]));
        assert!(out.status.success(), "sync: {}", text(&out));
        (
            took,
            exported(&home, None, "reference").expect("the record"),
        )
    };
    assert_eq!(
        keys_of(&after),
        *prefixes.last().expect("pages"),
        "the sync holds what the pages hold"
    );
    let after_entries = entries(&after);
    println!(
        "crash: provider sync: uninterrupted {} ms, {} resources in {} pages",
        took.as_millis(),
        after.len(),
        prefixes.len() - 1
    );

    let mut rng = plan.rng(SYNC);
    let mut tally = Tally::default();
    let n = plan.points_for(SYNC);
    for i in 0..n {
        let delay = rng.delay(took);
        let ctx = format!(
            "provider sync point {}/{n} (seed {:#x}, killed at {} of {} ms)",
            i + 1,
            plan.seed,
            delay.as_millis(),
            took.as_millis()
        );
        let point = d.path().join(format!("point{i}"));
        copy_tree(&world, &point);
        let ep = serve_at(&point.join("ep.db"), port);
        let home = point.join("patient");
        let landed = kill_after(carry(&home, &["sync"]), delay);
        sound(&home, &ctx);
        let got = exported(&home, None, &ctx).expect("the record");
        // Every resource held is whole and exactly as the provider sent it ...
        let strays = entries(&got).difference(&after_entries).count();
        assert_eq!(
            strays, 0,
            "{ctx}: {strays} resources differ from what was sent"
        );
        // ... and they are the first k pages, for some k: no page is half applied.
        let held = keys_of(&got);
        let pages = prefixes.iter().position(|p| *p == held).unwrap_or_else(|| {
            panic!(
                "{ctx}: {} resources held is not a whole number of pages ({:?} at page ends)",
                held.len(),
                prefixes.iter().map(BTreeSet::len).collect::<Vec<_>>()
            )
        });
        // The rerun resumes and converges on the uninterrupted run's record.
        sync_complete(&home, &ctx);
        let again = exported(&home, None, &ctx).expect("the record");
        assert!(
            entries(&again) == after_entries,
            "{ctx}: the rerun holds {} resources, the uninterrupted run {}",
            again.len(),
            after.len()
        );
        sound(&home, &ctx);
        let state = format!("{pages} of {} pages", prefixes.len() - 1);
        println!(
            "crash: {ctx}: {}{state}; rerun converged",
            if landed { "" } else { "had finished; " }
        );
        tally.add(&state, landed);
        drop(ep);
        let _ = std::fs::remove_dir_all(&point);
    }
    tally.print("provider sync", started);
}

// ---------------------------------------------------------------------------------
// Sharing: a carer's sync applying a granted record, and revocation.

/// The names a sharing world is known by.
struct Sharing {
    port: u16,
    /// The patient's id at the carer (the profile to select).
    patient_id: String,
    grant: String,
    /// The patient's record as the carer receives it (`view-as`), resource by resource.
    view: BTreeSet<String>,
    /// Envelopes carrying records in the first delivery.
    record_envelopes: u64,
}

/// What the carer holds of the shared record.
#[derive(Debug, PartialEq)]
enum CarerCopy {
    /// Not listed in `carry profiles`, no folder.
    Absent,
    /// Listed, but its vault cannot be opened (not made yet, or already deleted):
    /// what `carry --profile P export` said.
    Unopenable(String),
    /// Listed and open, holding these resources.
    Held(BTreeSet<String>),
}

fn carer_copy(carer: &Path, s: &Sharing, ctx: &str) -> CarerCopy {
    let listed = count_of(carer, &["profiles", "--json"], ctx);
    let folder = carer.join("shared").join(&s.grant);
    match listed {
        1 => {
            assert!(
                !folder.exists(),
                "{ctx}: the grant is gone but the copy's folder is still there"
            );
            CarerCopy::Absent
        }
        2 => match exported(carer, Some(&s.patient_id), ctx) {
            Ok(e) => {
                must(carer, &["--profile", &s.patient_id, "check"], ctx);
                CarerCopy::Held(resources_of(&e))
            }
            Err(why) => CarerCopy::Unopenable(why),
        },
        other => panic!("{ctx}: the carer lists {other} profiles"),
    }
}

fn grant_state(patient: &Path, grant: &str, ctx: &str) -> String {
    let all = must_json(patient, &["grants", "--json"], ctx);
    all.as_array()
        .into_iter()
        .flatten()
        .find(|g| g["grant"] == grant)
        .and_then(|g| g["state"].as_str())
        .unwrap_or_else(|| panic!("{ctx}: grant {grant} is not listed: {all}"))
        .to_string()
}

/// A patient with a record, a carer who took up her invite, and a grant of all of it
/// delivered to the relay and not yet fetched. The world folder holds `patient/`,
/// `carer/` and the endpoint's `ep.db`; nothing has them open on return.
fn sharing_world(world: &Path) -> Sharing {
    let port = fixed_port();
    let base = base_of(port);
    std::fs::create_dir_all(world).expect("make a folder");
    let _ep = serve_at(&world.join("ep.db"), port);
    let (patient, carer) = (world.join("patient"), world.join("carer"));
    let file = shared(SHARE_FILE);
    must(&patient, &["init", "--name", "Ned Hintz"], "setup");
    must(&carer, &["init", "--name", "Sam Carer"], "setup");
    must(
        &patient,
        &["import", file.to_str().expect("a UTF-8 path")],
        "setup",
    );
    must(&patient, &["endpoint", "set", &base], "setup");
    let invite = must_json(&patient, &["invite", "--json"], "setup");
    let code = invite["code"].as_str().expect("an invite code");
    let accepted = must_json(
        &carer,
        &["accept", code, "--adopt-endpoint", "--json"],
        "setup",
    );
    let patient_id = accepted["person"].as_str().expect("a person").to_string();
    must(&patient, &["sync"], "setup");
    let people = must_json(&patient, &["people", "--json"], "setup");
    let carer_id = people[0]["person"].as_str().expect("a person").to_string();
    let granted = must_json(
        &patient,
        &[
            "grant",
            "--unverified",
            &carer_id,
            "--role",
            "contributor",
            "--categories",
            ALL_CATEGORIES,
            "--expires",
            "30d",
            "--json",
        ],
        "setup",
    );
    let grant = granted["grant"].as_str().expect("a grant").to_string();
    let synced = must_json(&patient, &["sync", "--json"], "setup");
    let posted = synced["relay"]["posted"].as_u64().unwrap_or(0);
    assert!(
        posted >= 2,
        "the grant and its record were posted: {synced}"
    );
    let view_file = world.join("view.json");
    must(
        &patient,
        &[
            "view-as",
            &carer_id,
            "--out",
            view_file.to_str().expect("a UTF-8 path"),
        ],
        "setup",
    );
    let view: Value = serde_json::from_slice(&std::fs::read(&view_file).expect("view-as"))
        .expect("a JSON bundle");
    let view = resources_of(view["entry"].as_array().expect("entries"));
    assert!(
        view.len() > 20,
        "the grant covers the record: {}",
        view.len()
    );
    Sharing {
        port,
        patient_id,
        grant,
        view,
        record_envelopes: posted - 1,
    }
}

/// Check the carer's copy right after a kill: absent, empty, or whole (with more
/// than one envelope of records, a subset of the whole). Returns the state's name.
fn check_applied_copy(carer: &Path, s: &Sharing, ctx: &str) -> String {
    match carer_copy(carer, s, ctx) {
        CarerCopy::Absent => "absent".into(),
        CarerCopy::Unopenable(why) => {
            panic!("{ctx}: a shared record is listed but cannot be opened ({why})")
        }
        CarerCopy::Held(held) if held.is_empty() => "grant only".into(),
        CarerCopy::Held(held) if held == s.view => "whole".into(),
        CarerCopy::Held(held) => {
            let strays = held.difference(&s.view).count();
            assert!(
                s.record_envelopes > 1 && strays == 0,
                "{ctx}: half an envelope: the copy holds {} resources of {} ({strays} not in view-as)",
                held.len(),
                s.view.len()
            );
            "some envelopes".into()
        }
    }
}

/// After the carer's rerun: the copy is exactly `view-as`, and sound.
fn check_whole_copy(carer: &Path, s: &Sharing, ctx: &str) {
    match carer_copy(carer, s, ctx) {
        CarerCopy::Held(held) => assert!(
            held == s.view,
            "{ctx}: the carer's copy holds {} resources, view-as {}",
            held.len(),
            s.view.len()
        ),
        other => panic!("{ctx}: the carer's copy is {other:?} after a full sync"),
    }
    sound(carer, ctx);
}

/// After revocation and both syncs: the grant revoked, the carer's copy gone, nothing
/// left at the relay, both vaults sound.
fn check_revoked(point: &Path, s: &Sharing, ctx: &str) {
    let (patient, carer) = (point.join("patient"), point.join("carer"));
    assert_eq!(grant_state(&patient, &s.grant, ctx), "revoked", "{ctx}");
    assert_eq!(carer_copy(&carer, s, ctx), CarerCopy::Absent, "{ctx}");
    assert_eq!(
        relay_rows(&point.join("ep.db")),
        0,
        "{ctx}: left at the relay"
    );
    sound(&patient, ctx);
    sound(&carer, ctx);
}

#[test]
fn killed_envelope_applies_and_revocations_leave_no_half_copy_and_converge() {
    let plan = plan();
    plan.announce("envelope apply", APPLY);
    plan.announce("revocation", REVOKE);
    let d = tempfile::tempdir().expect("a temporary folder");
    let world = d.path().join("granted");
    let s = sharing_world(&world);
    let port = s.port;

    // The carer's sync applying the delivery, uninterrupted; its end is the world
    // before revocation.
    let applied = d.path().join("applied");
    copy_tree(&world, &applied);
    let apply_took = {
        let _ep = serve_at(&applied.join("ep.db"), port);
        let carer = applied.join("carer");
        let (took, out) = timed(carry(&carer, &["sync", "--json"]));
        assert!(out.status.success(), "carer sync: {}", text(&out));
        let r: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(r["relay"]["grants_received"][0], s.grant.as_str(), "{r}");
        check_whole_copy(&carer, &s, "reference");
        took
    };
    // The patient's revocation, uninterrupted; its end is the world before the
    // carer's sync that applies it.
    let revoking = d.path().join("revoking");
    copy_tree(&applied, &revoking);
    let revoke_took = {
        let _ep = serve_at(&revoking.join("ep.db"), port);
        let (took, out) = timed(carry(
            &revoking.join("patient"),
            &["revoke", &s.grant, "--json"],
        ));
        assert!(out.status.success(), "revoke: {}", text(&out));
        let r: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!((&r["state"], &r["sent"]), (&"revoked".into(), &true.into()));
        took
    };
    let revoked = d.path().join("revoked");
    copy_tree(&revoking, &revoked);
    let carer_revoke_took = {
        let _ep = serve_at(&revoked.join("ep.db"), port);
        let (took, out) = timed(carry(&revoked.join("carer"), &["sync", "--json"]));
        assert!(out.status.success(), "carer sync: {}", text(&out));
        let r: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(r["relay"]["records_removed"][0], s.grant.as_str(), "{r}");
        must(&revoked.join("patient"), &["sync"], "reference");
        check_revoked(&revoked, &s, "reference");
        took
    };
    // The carer's before-state for the revocation is `revoking` (the patient's
    // revocation only); `revoked` served to measure and check the carer's side.
    let _ = std::fs::remove_dir_all(&revoked);
    println!(
        "crash: sharing: uninterrupted carer apply {} ms ({} resources, {} record envelopes), \
         revoke {} ms, carer applying the revocation {} ms",
        apply_took.as_millis(),
        s.view.len(),
        s.record_envelopes,
        revoke_took.as_millis(),
        carer_revoke_took.as_millis()
    );

    // Envelope apply: kill the carer's sync.
    let started = Instant::now();
    let mut rng = plan.rng(APPLY);
    let mut tally = Tally::default();
    let n = plan.points_for(APPLY);
    for i in 0..n {
        let delay = rng.delay(apply_took);
        let ctx = format!(
            "envelope apply point {}/{n} (seed {:#x}, killed at {} of {} ms)",
            i + 1,
            plan.seed,
            delay.as_millis(),
            apply_took.as_millis()
        );
        let point = d.path().join(format!("apply{i}"));
        copy_tree(&world, &point);
        let ep = serve_at(&point.join("ep.db"), port);
        let carer = point.join("carer");
        let landed = kill_after(carry(&carer, &["sync"]), delay);
        sound(&carer, &ctx);
        let state = check_applied_copy(&carer, &s, &ctx);
        must(&carer, &["sync"], &ctx);
        check_whole_copy(&carer, &s, &ctx);
        assert!(
            !carer
                .join("shared")
                .join(format!("{}.making", s.grant))
                .exists(),
            "{ctx}: a half-made copy is left beside the whole one"
        );
        println!(
            "crash: {ctx}: {}{state}; rerun converged",
            if landed { "" } else { "had finished; " }
        );
        tally.add(&state, landed);
        drop(ep);
        let _ = std::fs::remove_dir_all(&point);
    }
    tally.print("envelope apply", started);

    // Revocation: kill the patient's `carry revoke` (it ends the grant, then deletes
    // the relay's copies and posts the revocation) or, every other point, the carer's
    // sync that applies it.
    let started = Instant::now();
    let mut rng = plan.rng(REVOKE);
    let mut tally = Tally::default();
    let n = plan.points_for(REVOKE);
    for i in 0..n {
        let carer_side = i % 2 == 1;
        let took = if carer_side {
            carer_revoke_took
        } else {
            revoke_took
        };
        let delay = rng.delay(took);
        let ctx = format!(
            "{} point {}/{n} (seed {:#x}, killed at {} of {} ms)",
            if carer_side {
                "revocation (carer's sync)"
            } else {
                "revocation (patient's revoke)"
            },
            i + 1,
            plan.seed,
            delay.as_millis(),
            took.as_millis()
        );
        let point = d.path().join(format!("revoke{i}"));
        copy_tree(if carer_side { &revoking } else { &applied }, &point);
        let ep = serve_at(&point.join("ep.db"), port);
        let (patient, carer) = (point.join("patient"), point.join("carer"));
        let state = if carer_side {
            let landed = kill_after(carry(&carer, &["sync"]), delay);
            sound(&carer, &ctx);
            let state = match carer_copy(&carer, &s, &ctx) {
                CarerCopy::Absent => "copy deleted".to_string(),
                CarerCopy::Held(held) if held == s.view => "copy whole".to_string(),
                CarerCopy::Unopenable(why) => {
                    panic!("{ctx}: a shared record is listed but cannot be opened ({why})")
                }
                CarerCopy::Held(held) => panic!(
                    "{ctx}: half a copy: {} resources of {}",
                    held.len(),
                    s.view.len()
                ),
            };
            must(&carer, &["sync"], &ctx);
            (state, landed)
        } else {
            let landed = kill_after(carry(&patient, &["revoke", &s.grant]), delay);
            sound(&patient, &ctx);
            let state = grant_state(&patient, &s.grant, &ctx);
            assert!(
                state == "active" || state == "revoked",
                "{ctx}: the grant is {state}"
            );
            if state == "active" {
                must(&patient, &["revoke", &s.grant], &ctx);
            }
            must(&patient, &["sync"], &ctx);
            must(&carer, &["sync"], &ctx);
            (format!("grant {state}"), landed)
        };
        // Both sides converge: the grant revoked, the carer's copy and the relay's gone.
        check_revoked(&point, &s, &ctx);
        println!(
            "crash: {ctx}: {}{}; rerun converged",
            if state.1 { "" } else { "had finished; " },
            state.0
        );
        tally.add(&state.0, state.1);
        drop(ep);
        let _ = std::fs::remove_dir_all(&point);
    }
    tally.print("revocation", started);
}

// ---------------------------------------------------------------------------------
// Amending a reading that reached a provider.

/// Whether the record holds a weight of `kg`, and how many corrections are queued.
fn amend_state(home: &Path, ctx: &str) -> (bool, bool, usize) {
    let e = exported(home, None, ctx).expect("the record");
    let weighs = |kg: f64| {
        e.iter()
            .any(|r| r["resource"]["valueQuantity"]["value"].as_f64() == Some(kg))
    };
    let corrections = must_json(home, &["outbox", "--json"], ctx)
        .as_array()
        .map(|a| a.iter().filter(|x| x["correction"] == true).count())
        .unwrap_or(0);
    (weighs(172.5), weighs(72.5), corrections)
}

#[test]
fn a_killed_amend_leaves_the_old_reading_or_the_new_one_with_its_correction() {
    let plan = plan();
    let started = Instant::now();
    plan.announce("amend", AMEND);
    let d = tempfile::tempdir().expect("a temporary folder");
    let big = shared(BIG_FILE);

    // Before: a record, its GP (which takes readings), and a mistaken weight that
    // reached the GP.
    let port = fixed_port();
    let db = d.path().join("ep.db");
    let file = shared(SYNC_FILE);
    endpoint(&[
        "seed",
        "--db",
        &format!("sqlite://{}", db.display()),
        "--tenant",
        "gp",
        "--from",
        file.to_str().expect("a UTF-8 path"),
    ]);
    let before_home = d.path().join("before");
    must(&before_home, &["init", "--name", "Vida Schultz"], "setup");
    must(
        &before_home,
        &["import", big.to_str().expect("a UTF-8 path")],
        "setup",
    );
    let wrong = must_json(
        &before_home,
        &["add", "weight", "172.5kg", "--json"],
        "setup",
    );
    let id = wrong["id"].to_string();
    {
        let _ep = serve_at(&db, port);
        let url = format!("{}/gp/fhir", base_of(port));
        must(
            &before_home,
            &["source", "add", "gp", &url, "--kind", "gp"],
            "setup",
        );
        must(
            &before_home,
            &["source", "login", "gp", "--sandbox-patient", SYNC_PATIENT],
            "setup",
        );
        must(&before_home, &["sync"], "setup");
    }
    let sent = must_json(&before_home, &["outbox", "--json"], "setup");
    assert!(
        sent.as_array()
            .expect("a list")
            .iter()
            .any(|e| e["state"] == "sent" && e["display"].as_str().unwrap_or("").contains("172.5")),
        "the weight reached the GP: {sent}"
    );
    assert_eq!(amend_state(&before_home, "setup"), (true, false, 0));

    let reference = d.path().join("reference");
    copy_tree(&before_home, &reference);
    let (took, out) = timed(carry(&reference, &["amend", &id, "weight", "72.5kg"]));
    assert!(out.status.success(), "amend: {}", text(&out));
    assert_eq!(amend_state(&reference, "reference"), (false, true, 1));
    println!("crash: amend: uninterrupted {} ms", took.as_millis());

    let mut rng = plan.rng(AMEND);
    let mut tally = Tally::default();
    let n = plan.points_for(AMEND);
    for i in 0..n {
        let delay = rng.delay(took);
        let ctx = format!(
            "amend point {}/{n} (seed {:#x}, killed at {} of {} ms)",
            i + 1,
            plan.seed,
            delay.as_millis(),
            took.as_millis()
        );
        let home = d.path().join(format!("point{i}"));
        copy_tree(&before_home, &home);
        let landed = kill_after(carry(&home, &["amend", &id, "weight", "72.5kg"]), delay);
        sound(&home, &ctx);
        let state = match amend_state(&home, &ctx) {
            (true, false, 0) => {
                must(&home, &["amend", &id, "weight", "72.5kg"], &ctx);
                "before"
            }
            (false, true, 1) => "after",
            other => panic!("{ctx}: half an amend: (old, new, corrections) = {other:?}"),
        };
        assert_eq!(
            amend_state(&home, &ctx),
            (false, true, 1),
            "{ctx}: converged"
        );
        sound(&home, &ctx);
        println!(
            "crash: {ctx}: {}{state}; rerun converged",
            if landed { "" } else { "had finished; " }
        );
        tally.add(state, landed);
        let _ = std::fs::remove_dir_all(&home);
    }
    tally.print("amend", started);
}
