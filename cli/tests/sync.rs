//! Sync against the real reference endpoint: a real server process, real sockets, the
//! real `carry` CLI. Two tenants hold one Synthea patient split by encounter.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

mod common;
use common::*;

const PATIENT: &str = "d78af07c-9cb9-4f31-9b11-c45a28f2eec8";
const BUNDLE: &str =
    "fixtures/fhir/synthea/sotf-Clemente_Kreiger_1484a42d-0eaf-4654-9cbf-6b050a5cd73b.json";
const BIG_PATIENT: &str = "02f19698-ca4a-4a67-b343-0819ff6fce66";
const BIG_BUNDLE: &str =
    "fixtures/fhir/synthea/sotf-Vida_Schultz_440ffe72-a553-4ade-9f76-55a6bbd208a9.json";

/// A seeded endpoint database: (tempdir, sqlite URL, per-tenant counts).
fn seeded(bundle: &str, split: bool) -> (tempfile::TempDir, String, Vec<(String, u64)>) {
    let d = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", d.path().join("ep.db").display());
    let file = shared(bundle);
    let mut args = vec!["seed", "--db", &db, "--tenant", "gp"];
    if split {
        args.extend(["--tenant", "hospital", "--split-by-encounter"]);
    }
    args.extend(["--from", file.to_str().unwrap()]);
    let out = endpoint(&args);
    let counts = out
        .lines()
        .filter_map(|l| {
            let (t, rest) = l.split_once(": ")?;
            Some((t.to_string(), rest.split_whitespace().next()?.parse().ok()?))
        })
        .collect();
    (d, db, counts)
}

fn count(counts: &[(String, u64)], tenant: &str) -> u64 {
    counts
        .iter()
        .find(|(t, _)| t == tenant)
        .map(|(_, n)| *n)
        .unwrap()
}

/// A profile with `tenants` added (SMART) and signed in as `patient`.
fn profile_for(ep: &Endpoint, tenants: &[&str], patient: &str) -> (tempfile::TempDir, PathBuf) {
    let (d, home) = new_home();
    for t in tenants {
        let kind = if *t == "gp" { "gp" } else { "hospital" };
        let url = format!("{}/{t}/fhir", ep.base);
        json(&home, &["source", "add", t, &url, "--kind", kind, "--json"]);
        let info = json(
            &home,
            &["source", "login", t, "--sandbox-patient", patient, "--json"],
        );
        assert_eq!(info["patient_id"], patient);
        assert_eq!(info["signed_in"], true);
    }
    (d, home)
}

/// A profile with the GP at `ep` added without SMART (`auth` none or bearer, the
/// token in `token`), for `PATIENT`.
fn profile_without_smart(ep: &Endpoint, auth: &str, token: &str) -> (tempfile::TempDir, PathBuf) {
    let (d, home) = new_home();
    let url = format!("{}/gp/fhir", ep.base);
    let out = carry(
        &home,
        &[
            "source",
            "add",
            "gp",
            &url,
            "--auth",
            auth,
            "--patient",
            PATIENT,
        ],
    )
    .env("CARRY_SOURCE_TOKEN", token)
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (d, home)
}

/// `carry sync --json`, per source: the report objects.
fn sync(home: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["sync", "--json"];
    args.extend(extra);
    let out = run(home, &args);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("sync output: {}", String::from_utf8_lossy(&out.stderr)));
    v["sources"].as_array().unwrap().clone()
}

fn report<'a>(reports: &'a [Value], source: &str) -> &'a Value {
    reports.iter().find(|r| r["source"] == source).unwrap()
}

fn timeline(home: &Path) -> Vec<Value> {
    json(home, &["timeline", "--limit", "500", "--json"])["items"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn two_tenants_sync_once_grouped_then_nothing_moves() {
    let (_d, db, counts) = seeded(BUNDLE, true);
    let ep = serve(&db, &[]);
    let (_h, home) = profile_for(&ep, &["gp", "hospital"], PATIENT);
    let first = sync(&home, &[]);
    for t in ["gp", "hospital"] {
        let r = report(&first, t);
        assert_eq!(r["complete"], true, "{r}");
        assert_eq!(
            r["fetched"].as_u64(),
            Some(count(&counts, t)),
            "{t}: every seeded resource"
        );
        assert_eq!(r["changed"], r["fetched"]);
    }
    // Every seeded resource once per source: nothing dropped, nothing doubled.
    assert_eq!(
        resources(&home),
        count(&counts, "gp") + count(&counts, "hospital")
    );
    // What both hold shows once, with both provenances.
    let items = timeline(&home);
    let patients: Vec<&Value> = items
        .iter()
        .filter(|i| i["resource_type"] == "Patient")
        .collect();
    assert_eq!(patients.len(), 1, "one Patient line for two copies");
    let p = patients[0];
    let mut from = vec![p["source"].as_str().unwrap().to_string()];
    from.extend(
        p["also_from"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string()),
    );
    from.sort();
    assert_eq!(from, ["gp", "hospital"]);
    assert!(
        items.len() < resources(&home) as usize,
        "duplicates grouped"
    );

    // No changes: no resources move, in one request each (one empty $everything
    // page; what discovery found is trusted for a day).
    let second = sync(&home, &[]);
    for t in ["gp", "hospital"] {
        let r = report(&second, t);
        assert_eq!(
            (r["fetched"].as_u64(), r["requests"].as_u64()),
            (Some(0), Some(1)),
            "{r}"
        );
    }
}

#[test]
fn incremental_sync_fetches_only_the_change_and_marks_deletions() {
    let (d, db, _) = seeded(BUNDLE, false);
    let ep = serve(&db, &[]);
    let (_h, home) = profile_for(&ep, &["gp"], PATIENT);
    sync(&home, &[]);
    let before = resources(&home);
    // The provider updates one Condition.
    let bundle: Value = serde_json::from_slice(&std::fs::read(shared(BUNDLE)).unwrap()).unwrap();
    let mut condition = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"].clone())
        .find(|r| r["resourceType"] == "Condition")
        .unwrap();
    let cid = condition["id"].as_str().unwrap().to_string();
    condition["clinicalStatus"]["coding"][0]["code"] = "resolved".into();
    condition["subject"]["reference"] = format!("Patient/{PATIENT}").into();
    let change = d.path().join("change.json");
    std::fs::write(&change, condition.to_string()).unwrap();
    endpoint(&[
        "seed",
        "--db",
        &db,
        "--tenant",
        "gp",
        "--from",
        change.to_str().unwrap(),
    ]);
    let r = sync(&home, &[]);
    let gp = report(&r, "gp");
    assert_eq!(
        (gp["fetched"].as_u64(), gp["changed"].as_u64()),
        (Some(1), Some(1)),
        "{gp}"
    );
    assert_eq!(
        resources(&home),
        before,
        "the new version replaced the old one"
    );
    let shown = json(&home, &["show", &format!("Condition/{cid}"), "--json"]);
    assert!(shown.to_string().contains("resolved"));

    // The provider deletes it: a full sync marks it, and keeps it.
    endpoint(&[
        "delete",
        "--db",
        &db,
        "--tenant",
        "gp",
        &format!("Condition/{cid}"),
    ]);
    let r = sync(&home, &["--full"]);
    assert_eq!(report(&r, "gp")["gone"], 1);
    assert_eq!(resources(&home), before, "kept");
    let items = timeline(&home);
    let gone: Vec<&Value> = items
        .iter()
        .filter(|i| i["gone_at_source"] == true)
        .collect();
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0]["resource_type"], "Condition");
}

/// The record a clean sync makes, as (type, display) pairs, for comparison.
fn record_of(home: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = timeline(home)
        .iter()
        .map(|i| {
            (
                i["resource_type"].as_str().unwrap().to_string(),
                i["display"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn every_injected_fault_converges_to_the_same_record() {
    let (_d, db, _) = seeded(BUNDLE, true);
    let clean = serve(&db, &[]);
    let (_h, home) = profile_for(&clean, &["gp", "hospital"], PATIENT);
    sync(&home, &[]);
    let want = record_of(&home);
    let n = resources(&home);
    drop(clean);
    for fault in [
        &["--fault", "500/3"][..],
        &["--fault", "drop/3"],
        &["--fault", "truncate/3"],
        &["--fault", "delay/2", "--fault-delay-ms", "200"],
        &["--rate-limit", "3"],
    ] {
        let ep = serve(&db, fault);
        let (_h, home) = profile_for(&ep, &["gp", "hospital"], PATIENT);
        let mut complete = false;
        // Faults may stop a sync; each rerun resumes, and it converges.
        for _ in 0..4 {
            let r = sync(&home, &[]);
            if r.iter().all(|r| r["complete"] == true) {
                complete = true;
                break;
            }
        }
        assert!(complete, "{fault:?}: did not converge");
        assert_eq!(resources(&home), n, "{fault:?}: nothing lost or doubled");
        assert_eq!(record_of(&home), want, "{fault:?}: the same record");
    }
}

#[test]
fn a_sync_killed_midway_resumes_without_loss_or_duplicates() {
    let (_d, db, counts) = seeded(BIG_BUNDLE, false);
    // Slow pages (8 of them, 400 ms each) so a kill lands mid-pull.
    let ep = serve(&db, &["--fault", "delay/1", "--fault-delay-ms", "400"]);
    let (_h, home) = profile_for(&ep, &["gp"], BIG_PATIENT);
    let mut mid_pull = false;
    for attempt in 0..6u64 {
        let mut child = carry(&home, &["sync"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(900 + 300 * attempt));
        let _ = child.kill();
        let _ = child.wait();
        let check = run(&home, &["check"]);
        assert!(
            check.status.success(),
            "the vault opens and is sound after a kill"
        );
        let held = resources(&home);
        assert!(held <= count(&counts, "gp"));
        if held > 0 && held < count(&counts, "gp") {
            mid_pull = true;
            break;
        }
    }
    assert!(mid_pull, "no kill landed mid-pull");
    let r = sync(&home, &[]);
    assert_eq!(report(&r, "gp")["complete"], true);
    assert_eq!(resources(&home), count(&counts, "gp"), "all of it, once");
    assert!(
        report(&r, "gp")["fetched"].as_u64().unwrap() < count(&counts, "gp"),
        "the rerun resumed from the checkpoint rather than starting over"
    );
}

#[test]
fn an_access_token_that_expires_mid_sync_is_refreshed() {
    let (_d, db, counts) = seeded(BIG_BUNDLE, false);
    let ep = serve(
        &db,
        &[
            "--token-ttl",
            "1",
            "--fault",
            "delay/1",
            "--fault-delay-ms",
            "400",
        ],
    );
    let (_h, home) = profile_for(&ep, &["gp"], BIG_PATIENT);
    let r = sync(&home, &[]);
    let gp = report(&r, "gp");
    assert_eq!(gp["complete"], true, "{gp}");
    assert_eq!(resources(&home), count(&counts, "gp"));
}

#[test]
fn a_reading_reaches_the_gp_exactly_once_despite_retries() {
    let (_d, db, _) = seeded(BUNDLE, true);
    // Every second answer is cut off after the server has done the work.
    let ep = serve(&db, &["--fault", "truncate/2"]);
    let (_h, home) = profile_for(&ep, &["gp", "hospital"], PATIENT);
    for _ in 0..4 {
        let r = sync(&home, &[]);
        if r.iter().all(|r| r["complete"] == true) {
            break;
        }
    }
    let added = run(&home, &["add", "bp", "131/84"]);
    assert!(added.status.success());
    for _ in 0..3 {
        sync(&home, &[]);
    }
    let outbox = json(&home, &["outbox", "--json"]);
    let entries = outbox.as_array().unwrap();
    assert_eq!(entries.len(), 1, "queued for the GP only");
    assert_eq!(entries[0]["state"], "sent");
    assert_eq!(entries[0]["source"], "gp");
    // Look at the GP directly (an open server over the same database).
    let open = serve(&db, &["--auth", "none"]);
    let body: Value = ureq::get(&format!(
        "{}/gp/fhir/Observation?patient={PATIENT}&_count=500",
        open.base
    ))
    .call()
    .unwrap()
    .body_mut()
    .read_json()
    .unwrap();
    let copies = body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["resource"]["code"]["coding"][0]["code"] == "85354-9"
                && e["resource"].to_string().contains("131")
        })
        .count();
    assert_eq!(copies, 1, "exactly one copy at the GP");
    // The copy that came back is grouped with the patient's own entry.
    let bp: Vec<Value> = timeline(&home)
        .into_iter()
        .filter(|i| i["display"].as_str().unwrap_or("").contains("131/84"))
        .collect();
    assert_eq!(bp.len(), 1);
    assert_eq!(bp[0]["also_from"], serde_json::json!(["gp"]));
    // So does search: one row for the fact, naming both sources.
    let found = json(&home, &["search", "131", "--json"]);
    let found = found["items"]
        .as_array()
        .or(found.as_array())
        .unwrap()
        .clone();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["also_from"], serde_json::json!(["gp"]));
}

/// The GP's Observations for `PATIENT`, looked at directly (an open server over the
/// same database).
fn gp_observations(db: &str) -> Vec<Value> {
    let open = serve(db, &["--auth", "none"]);
    let body: Value = ureq::get(&format!(
        "{}/gp/fhir/Observation?patient={PATIENT}&_count=500",
        open.base
    ))
    .call()
    .unwrap()
    .body_mut()
    .read_json()
    .unwrap();
    body["entry"]
        .as_array()
        .map(|a| a.iter().map(|e| e["resource"].clone()).collect())
        .unwrap_or_default()
}

/// How many of the GP's Observations for `PATIENT` mention `needle`.
fn at_the_gp(db: &str, needle: &str) -> usize {
    gp_observations(db)
        .iter()
        .filter(|r| r.to_string().contains(needle))
        .count()
}

#[test]
fn a_mistaken_reading_is_taken_back_at_the_gp_and_corrected_exactly_once() {
    let (_d, db, _) = seeded(BUNDLE, true);
    // Every second answer is cut off after the server has done the work.
    let ep = serve(&db, &["--fault", "truncate/2"]);
    let (_h, home) = profile_for(&ep, &["gp"], PATIENT);
    for _ in 0..4 {
        if sync(&home, &[]).iter().all(|r| r["complete"] == true) {
            break;
        }
    }
    let wrong = json(&home, &["add", "weight", "172.5kg", "--json"]);
    // A reading deleted before it leaves never reaches the GP.
    let slip = json(&home, &["add", "pulse", "199", "--json"]);
    ok(&home, &["delete", &slip["id"].to_string()]);
    for _ in 0..3 {
        sync(&home, &[]);
    }
    let weighs = |v: f64| -> Vec<Value> {
        gp_observations(&db)
            .into_iter()
            .filter(|r| r["valueQuantity"]["value"].as_f64() == Some(v))
            .collect()
    };
    assert_eq!(weighs(172.5).len(), 1, "the mistake reached the GP once");
    assert_eq!(at_the_gp(&db, "\"value\":199"), 0);

    // She corrects it: the GP's copy is marked entered-in-error, and the corrected
    // reading arrives once, however many answers are lost.
    let fixed = json(
        &home,
        &[
            "amend",
            &wrong["id"].to_string(),
            "weight",
            "72.5kg",
            "--json",
        ],
    );
    assert_eq!(
        fixed["date"], wrong["date"],
        "it keeps the time it was taken"
    );
    for _ in 0..4 {
        sync(&home, &[]);
    }
    let old = weighs(172.5);
    assert_eq!(old.len(), 1, "taken back, not duplicated: {old:?}");
    assert_eq!(old[0]["status"], "entered-in-error");
    let new = weighs(72.5);
    assert_eq!(new.len(), 1, "the correction arrived once: {new:?}");
    assert_eq!(new[0]["status"], "final");
    let outbox = json(&home, &["outbox", "--json"]);
    assert!(
        outbox
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["correction"] == true && e["state"] == "sent"),
        "{outbox}"
    );
    // Her record shows the correction only: the GP's copy of the mistake neither
    // stays nor comes back.
    let weights: Vec<String> = timeline(&home)
        .into_iter()
        .filter_map(|i| i["display"].as_str().map(str::to_string))
        .filter(|d| d.contains("72.5"))
        .collect();
    assert_eq!(weights.len(), 1, "{weights:?}");
    assert!(!weights[0].contains("172.5"), "{weights:?}");
    let log = json(&home, &["audit", "--json"]).to_string();
    assert!(log.contains("reading-mended"), "{log}");
    // Only her own readings can be mended.
    let other = timeline(&home)
        .into_iter()
        .find(|i| i["source"] != "self")
        .unwrap();
    let out = run(&home, &["delete", &other["id"].to_string()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn the_person_decides_what_goes_to_the_gp_and_a_sensitive_copy_stays_labelled() {
    let (_d, db, _) = seeded(BUNDLE, true);
    let ep = serve(&db, &[]);
    let (_h, home) = profile_for(&ep, &["gp"], PATIENT);
    sync(&home, &[]);
    let id_of = |home: &Path, what: &str| -> i64 {
        json(home, &["outbox", "--json"])
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["display"].as_str().unwrap_or("").contains(what))
            .unwrap_or_else(|| panic!("{what} in the outbox"))["item_id"]
            .as_i64()
            .unwrap()
    };
    // A mistaken weight is held, a mood entry is kept back by default.
    ok(&home, &["add", "weight", "172.5kg"]);
    ok(&home, &["add", "mood", "2"]);
    let weight = id_of(&home, "172.5");
    let mood = id_of(&home, "Mood");
    ok(&home, &["outbox", "hold", &weight.to_string()]);
    let states: Vec<(i64, String)> = json(&home, &["outbox", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["item_id"].as_i64().unwrap(),
                e["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(states.contains(&(weight, "held".into())), "{states:?}");
    assert!(states.contains(&(mood, "withheld".into())), "{states:?}");
    for _ in 0..2 {
        sync(&home, &[]);
    }
    assert_eq!(at_the_gp(&db, "172.5"), 0, "a held reading never leaves");
    assert_eq!(
        at_the_gp(&db, "mood-diary"),
        0,
        "nor a sensitive one by default"
    );
    // Dropped for good: it cannot be released.
    ok(&home, &["outbox", "drop", &weight.to_string()]);
    let out = run(&home, &["outbox", "release", &weight.to_string()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    sync(&home, &[]);
    assert_eq!(at_the_gp(&db, "172.5"), 0);

    // She chooses to send her mood diary to the GP: it goes once, and the copy the GP
    // sends back is as restricted as her own entry.
    ok(
        &home,
        &["source", "push", "mood", "allow", "--source", "gp"],
    );
    for _ in 0..2 {
        sync(&home, &[]);
    }
    assert_eq!(at_the_gp(&db, "mood-diary"), 1);
    let moods: Vec<Value> = timeline(&home)
        .into_iter()
        .filter(|i| i["display"].as_str().unwrap_or("").contains("Mood"))
        .collect();
    assert_eq!(moods.len(), 1, "one fact: {moods:?}");
    assert_eq!(moods[0]["also_from"], serde_json::json!(["gp"]));
    let gp_copy = json(&home, &["timeline", "--source", "gp", "--json"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["display"].as_str().unwrap_or("").contains("Mood"))
        .cloned()
        .expect("the GP's copy");
    assert_eq!(
        gp_copy["sensitivity"],
        serde_json::json!(["PSY"]),
        "{gp_copy}"
    );
}

#[test]
fn open_and_bearer_servers_and_plain_searches_sync_too() {
    let (_d, db, counts) = seeded(BUNDLE, false);
    let token = "a-static-test-token-0123456789";
    let mut plain_held = 0;
    for (args, auth, plain) in [
        (vec!["--auth", "none", "--plain-search"], "none", true),
        (vec!["--auth", &*format!("bearer:{token}")], "bearer", false),
    ] {
        let ep = serve(&db, &args);
        let (_h, home) = profile_without_smart(&ep, auth, token);
        let r = sync(&home, &[]);
        let gp = report(&r, "gp");
        assert_eq!(gp["complete"], true, "{auth}: {gp}");
        let held = resources(&home);
        if plain {
            // Per-type searches reach the patient's compartment (not the shared
            // directory entries); a rerun compares and changes nothing.
            assert!(held > 40 && held <= count(&counts, "gp"), "{held}");
            plain_held = held;
            let again = sync(&home, &[]);
            assert_eq!(report(&again, "gp")["changed"], 0);
            assert_eq!(resources(&home), held);
        } else {
            assert_eq!(held, count(&counts, "gp"));
        }
    }
    // No CapabilityStatement and only plain searches: the engine learns by trying
    // ($everything, then _lastUpdated) and still gets the patient's record.
    let ep = serve(&db, &["--auth", "none", "--plain-search", "--no-metadata"]);
    let (_h, home) = profile_without_smart(&ep, "none", "");
    let r = sync(&home, &[]);
    assert_eq!(report(&r, "gp")["complete"], true, "{r:?}");
    assert_eq!(
        resources(&home),
        plain_held,
        "the same record as with metadata"
    );
    let again = sync(&home, &[]);
    assert_eq!(
        report(&again, "gp")["changed"],
        0,
        "the fallback is remembered and converges"
    );
    drop(ep);
    // A wrong static token is an authorization failure (exit 4), not a crash.
    let ep = serve(&db, &["--auth", &format!("bearer:{token}")]);
    let (_h, home) = profile_without_smart(&ep, "bearer", "the-wrong-token-0123456789");
    let out = run(&home, &["sync"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn bad_sources_and_unreachable_servers_fail_clearly() {
    let (_h, home) = new_home();
    for args in [
        &["source", "add", "gp", "ftp://example.org/fhir"][..],
        &["source", "add", "gp", "http://example.org/fhir"],
        &["source", "add", "bad name", "https://example.org/fhir"],
        &[
            "source",
            "add",
            "gp",
            "https://example.org/fhir",
            "--kind",
            "pharmacy",
        ],
        &[
            "source",
            "add",
            "gp",
            "https://example.org/fhir",
            "--auth",
            "none",
        ],
        &["sync", "nowhere"],
    ] {
        let out = run(&home, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    // Nothing listens on this port: the sync says offline (exit 5), quickly enough.
    let out = run(
        &home,
        &[
            "source",
            "add",
            "gone",
            "http://127.0.0.1:9/fhir",
            "--auth",
            "none",
            "--patient",
            "p1",
        ],
    );
    assert!(out.status.success());
    let out = run(&home, &["sync", "--budget", "5s"]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let list = json(&home, &["source", "list", "--json"]);
    assert_eq!(list[0]["state"], "offline");
    assert!(list[0]["last_error"].as_str().is_some());
}

#[test]
fn a_reading_the_gp_keeps_refusing_is_marked_stuck() {
    let (_d, db, _) = seeded(BUNDLE, false);
    let ep = serve(&db, &[]);
    let (_h, home) = new_home();
    let url = format!("{}/gp/fhir", ep.base);
    // Signed in without permission to create Observations: every send is refused.
    json(
        &home,
        &[
            "source",
            "add",
            "gp",
            &url,
            "--scope",
            "launch/patient patient/*.rs offline_access",
            "--json",
        ],
    );
    json(
        &home,
        &[
            "source",
            "login",
            "gp",
            "--sandbox-patient",
            PATIENT,
            "--json",
        ],
    );
    assert!(run(&home, &["add", "pulse", "64"]).status.success());
    for n in 1..=5 {
        let r = sync(&home, &[]);
        assert_eq!(
            report(&r, "gp")["complete"],
            true,
            "a refused reading does not fail the sync"
        );
        let entry = &json(&home, &["outbox", "--json"])[0];
        assert_eq!(entry["attempts"], n);
        assert!(entry["last_error"].as_str().unwrap().contains("403"));
        let want = if n < 5 { "pending" } else { "stuck" };
        assert_eq!(entry["state"], want);
    }
    // Stuck readings are not sent again on their own.
    let r = sync(&home, &[]);
    assert_eq!(report(&r, "gp")["requests"], 1);
    assert_eq!(json(&home, &["outbox", "--json"])[0]["attempts"], 5);
}

#[test]
fn a_budget_stops_a_sync_that_the_next_one_finishes() {
    let (_d, db, counts) = seeded(BIG_BUNDLE, false);
    // Pages of 100, each 400 ms late: the record takes more pages than the budget.
    let ep = serve(
        &db,
        &[
            "--fault",
            "delay/1",
            "--fault-delay-ms",
            "400",
            "--max-count",
            "100",
        ],
    );
    let (_h, home) = profile_for(&ep, &["gp"], BIG_PATIENT);
    let out = run(&home, &["sync", "--budget", "1500ms", "--json"]);
    assert_eq!(out.status.code(), Some(0), "a budget is not a failure");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["sources"][0]["complete"], false);
    let state = r["sources"][0]["state"].as_str().unwrap();
    assert!(
        ["authorize", "pull"].contains(&state),
        "stays where it got to: {state}"
    );
    assert!(r["sources"][0]["error"]
        .as_str()
        .unwrap()
        .contains("budget"));
    let first = r["sources"][0]["fetched"].as_u64().unwrap();
    assert!(first < count(&counts, "gp"));
    let r = sync(&home, &[]);
    assert_eq!(report(&r, "gp")["complete"], true);
    assert_eq!(resources(&home), count(&counts, "gp"));
}

#[test]
fn a_short_page_leaves_the_sync_partial_and_the_next_one_whole() {
    let (_d, db, counts) = seeded(BUNDLE, false);
    // Every search page lost its next link and promises one resource more.
    let ep = serve(&db, &["--auth", "none", "--fault", "short/1"]);
    let (_h, home) = profile_without_smart(&ep, "none", "");
    let out = run(&home, &["sync", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a partial sync is not a success"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let gp = report(v["sources"].as_array().unwrap(), "gp");
    assert_eq!(gp["state"], "partial", "{gp}");
    assert_eq!(gp["complete"], false, "{gp}");
    let why = gp["partial"].as_str().unwrap();
    assert!(
        why.contains("promised") && why.contains("delivered"),
        "{why}"
    );
    let list = json(&home, &["source", "list", "--json"]);
    assert_eq!(list[0]["state"], "partial");
    drop(ep);
    // The server mends: the next sync starts again from where the partial one could
    // not vouch for, and gets all of it.
    let ep = serve(&db, &["--auth", "none"]);
    let url = format!("{}/gp/fhir", ep.base);
    json(&home, &["source", "set-url", "gp", &url, "--json"]);
    let r = sync(&home, &[]);
    let gp = report(&r, "gp");
    assert_eq!(
        (gp["state"].as_str(), gp["complete"].as_bool()),
        (Some("idle"), Some(true)),
        "{gp}"
    );
    assert_eq!(resources(&home), count(&counts, "gp"));
    drop(ep);
}

#[test]
fn a_new_base_address_doubles_nothing() {
    let (_d, db, counts) = seeded(BUNDLE, false);
    let ep = serve(&db, &["--auth", "none"]);
    let (_h, home) = profile_without_smart(&ep, "none", "");
    assert_eq!(report(&sync(&home, &[]), "gp")["complete"], true);
    let held = resources(&home);
    assert_eq!(held, count(&counts, "gp"));
    // The same server under another name: every fullUrl it sends changes.
    let moved = format!("{}/gp/fhir", ep.base.replace("127.0.0.1", "localhost"));
    let info = json(&home, &["source", "set-url", "gp", &moved, "--json"]);
    assert_eq!(info["base_url"], moved.as_str());
    let r = sync(&home, &["--full"]);
    let gp = report(&r, "gp");
    assert_eq!(
        (
            gp["complete"].as_bool(),
            gp["changed"].as_u64(),
            gp["gone"].as_u64()
        ),
        (Some(true), Some(0), Some(0)),
        "{gp}"
    );
    assert_eq!(resources(&home), held, "nothing held twice");
    drop(ep);
}

#[test]
fn shared_resources_referred_to_are_fetched_after_type_searches() {
    let (_d, db, _) = seeded(BUNDLE, false);
    // Type by type (no $everything): Practitioners and Organizations are never
    // searched by patient; the encounters refer to them, so they are fetched after.
    let ep = serve(&db, &["--auth", "none", "--plain-search"]);
    let (_h, home) = profile_without_smart(&ep, "none", "");
    assert_eq!(report(&sync(&home, &[]), "gp")["complete"], true);
    let stats = json(&home, &["stats", "--json"]);
    for t in ["Practitioner", "Organization"] {
        assert!(
            stats["by_type"][t].as_u64().unwrap_or(0) > 0,
            "{t}: {stats}"
        );
    }
    // Held now: the next sync asks for none of them again.
    let before = resources(&home);
    let r = sync(&home, &[]);
    assert_eq!(report(&r, "gp")["changed"], 0, "{r:?}");
    assert_eq!(resources(&home), before);
    drop(ep);
}
