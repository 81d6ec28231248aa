//! Share links end to end: a patient's CLI home, one endpoint process, and the
//! clinician's `carry open`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

use common::*;

const PATIENT_FILE: &str =
    "fixtures/fhir/synthea/sotf-Jene_Cummings_8a2bb726-2f79-4940-a134-a374eef39af7.json";

fn patient(dir: &Path, base: &str) -> PathBuf {
    let home = dir.join("patient");
    ok(&home, &["init", "--name", "Jene Cummings"]);
    ok(&home, &["import", shared(PATIENT_FILE).to_str().unwrap()]);
    ok(&home, &["endpoint", "set", base]);
    home
}

/// A folder, an endpoint serving a database in it, and the patient's home.
fn world() -> (tempfile::TempDir, String, Endpoint, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", d.path().join("ep.db").display());
    let ep = serve(&db, &[]);
    let home = patient(d.path(), &ep.base);
    (d, db, ep, home)
}

fn section<'a>(summary: &'a Value, code: &str) -> &'a Value {
    summary["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["code"] == code)
        .unwrap_or_else(|| panic!("section {code} in {summary}"))
}

#[test]
fn a_clinician_opens_the_emergency_summary_with_its_passcode_until_it_is_revoked() {
    let (d, _db, ep, home) = world();
    let qr = d.path().join("qr.svg");
    let made = json(
        &home,
        &[
            "share",
            "--preset",
            "emergency",
            "--passcode",
            "4711",
            "--expires",
            "1h",
            "--qr",
            qr.to_str().unwrap(),
            "--json",
        ],
    );
    let link = made["link"].as_str().unwrap().to_string();
    assert!(link.starts_with(&format!("{}/view#shlink:/", ep.base)));
    assert!(std::fs::read_to_string(&qr).unwrap().starts_with("<svg"));
    // A loopback http host of 15 characters: version 12 (the limits are in
    // BENCHMARKS.md and core's link tests).
    assert!(made["qr_version"].as_u64().unwrap() <= 12, "{made}");
    let id = made["id"].as_str().unwrap().to_string();

    // No passcode, then a wrong one: refused, with the attempts left.
    let clinician = d.path().join("clinician");
    let out = run(&clinician, &["open", &link]);
    assert_eq!(out.status.code(), Some(4));
    // The recipient is whatever the opener claims, but one line of plain text: text
    // made to drive the patient's terminal is refused before anything is sent (and
    // the endpoint would refuse it too: endpoint/tests/links.rs).
    let claimed = "Dr\u{1b}]8;;https://evil.example\u{7}Who\u{1b}]8;;\u{7}\r\nfake \u{202e}x";
    let out = run(
        &clinician,
        &["open", &link, "--passcode", "0000", "--recipient", claimed],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("one line of plain text"));
    let out = run(
        &clinician,
        &["open", &link, "--passcode", "0000", "--recipient", "Dr Who"],
    );
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("4 attempts left"));

    let opened = json(
        &clinician,
        &[
            "open",
            &link,
            "--passcode",
            "4711",
            "--recipient",
            "Dr Patel, A&E",
            "--json",
        ],
    );
    let summary = &opened["summary"];
    assert!(summary["name"].as_str().unwrap().ends_with("Jene Cummings"));
    for code in ["48765-2", "10160-0", "11450-4"] {
        section(summary, code);
    }
    assert_eq!(opened["bundle"]["type"], "document");
    // The emergency preset holds current medicines and the latest vitals only.
    let vitals = section(summary, "8716-3")["lines"]
        .as_array()
        .unwrap()
        .len();
    assert!(vitals > 0 && vitals < 20, "{vitals} vital signs");

    // The patient sees who opened it, as they named themselves, in the audit log too;
    // the wrong passcode is a count of refusals, not an entry.
    let shares = json(&home, &["shares", "--json"]);
    let log = shares[0]["access_log"].as_array().unwrap();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        (log[0]["recipient"].as_str(), log[0]["outcome"].as_str()),
        (Some("Dr Patel, A&E"), Some("ok"))
    );
    assert_eq!(shares[0]["refused"], 1);
    assert!(shares[0]["last_refused_at"].is_i64());
    let listed = ok(&home, &["shares"]);
    let line = line_with(&listed, "requests refused");
    assert!(line.contains("1 requests refused"), "{line}");
    assert_eq!(terminal_unsafe(&ok(&home, &["audit"])), None);
    let audit = json(&home, &["audit", "--json"]);
    assert!(audit
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event"] == "share-accessed"
            && e["detail"].as_str().unwrap().contains("Dr Patel")));

    // Revoked: a clear "no longer shared".
    let r = json(&home, &["unshare", &id[..10], "--json"]);
    assert_eq!(r["state"], "revoked");
    let out = run(&clinician, &["open", &link, "--passcode", "4711"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no longer shared"));
    assert!(json(&home, &["audit", "--verify", "--json"])["ok"] == true);
}

#[test]
fn a_long_lived_link_follows_the_record() {
    let (d, _db, _ep, home) = world();
    let made = json(
        &home,
        &[
            "share",
            "--preset",
            "meds-allergies",
            "--long-lived",
            "--expires",
            "2d",
            "--json",
        ],
    );
    let link = made["link"].as_str().unwrap().to_string();
    let reader = d.path().join("reader");
    let before = json(&reader, &["open", &link, "--json"]);
    assert_eq!(
        section(&before["summary"], "10160-0")["lines"],
        section(&before["summary"], "10160-0")["lines"]
    );
    // A new medicine from a file; the next sync re-uploads the summary.
    let med = d.path().join("med.json");
    std::fs::write(
        &med,
        r#"{"resourceType":"MedicationStatement","id":"m1","status":"active",
            "medicationCodeableConcept":{"text":"Carrymycin 250 mg tablets"},
            "subject":{"reference":"Patient/x"},"effectiveDateTime":"2026-11-01"}"#,
    )
    .unwrap();
    ok(&home, &["import", med.to_str().unwrap()]);
    ok(&home, &["sync"]);
    let after = json(&reader, &["open", &link, "--json"]);
    let lines = section(&after["summary"], "10160-0")["lines"].to_string();
    assert!(lines.contains("Carrymycin"), "{lines}");
    assert!(!section(&before["summary"], "10160-0")["lines"]
        .to_string()
        .contains("Carrymycin"));
}

#[test]
fn links_that_are_malformed_or_point_at_plain_http_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("any");
    for bad in [
        "shlink:/not-base64!",
        "https://viewer.example/#nothing-here",
        // A plain-http manifest that is not this machine.
        "shlink:/eyJ1cmwiOiJodHRwOi8vZXhhbXBsZS5jb20vbSIsImtleSI6IkFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUEifQ",
        // Version 2.
        "shlink:/eyJ1cmwiOiJodHRwczovL2V4YW1wbGUuY29tL20iLCJrZXkiOiJBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBIiwidiI6Mn0",
    ] {
        let out = run(&home, &["open", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn stopping_all_sharing_ends_every_link_and_says_which_still_work_when_the_endpoint_is_down() {
    let (_d, db, ep, home) = world();
    let emergency = json(
        &home,
        &[
            "share",
            "--preset",
            "emergency",
            "--passcode",
            "4711",
            "--json",
        ],
    );
    let card = json(&home, &["emergency-card", "--json"]);

    // The endpoint is down: nothing is ended, each link is named as still working,
    // and the exit code says the network failed.
    drop(ep);
    let out = run(&home, &["revoke", "--all", "--json"]);
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    let stopped: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stopped["links"].as_array().unwrap().len(), 0, "{stopped}");
    assert_eq!(
        stopped["links_not_ended"].as_array().unwrap().len(),
        2,
        "{stopped}"
    );
    let active = |home: &Path| {
        json(home, &["shares", "--json"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["state"] == "active")
            .count()
    };
    assert_eq!(active(&home), 2);

    // Back up (on another port): both end, the emergency card too, and a second run
    // finds nothing left to end.
    let ep = serve(&db, &[]);
    ok(&home, &["endpoint", "set", &ep.base]);
    let stopped = json(&home, &["revoke", "--all", "--json"]);
    let ended: Vec<&str> = stopped["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(ended.len(), 2, "{stopped}");
    assert!(ended.contains(&emergency["id"].as_str().unwrap()));
    assert!(ended.contains(&card["id"].as_str().unwrap()));
    assert_eq!(active(&home), 0);
    let again = ok(&home, &["revoke", "--all"]);
    assert!(again.contains("Nobody had access"), "{again}");
    let audit = json(&home, &["audit", "--json"]);
    let revoked = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "share-revoked")
        .count();
    assert_eq!(revoked, 2);
}

/// The `share-accessed` audit entries of link `id` (by its short id), newest first.
fn openings_audited(home: &Path, id: &str) -> Vec<String> {
    json(home, &["audit", "--limit", "100000", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "share-accessed" && e["party"] == id[..10])
        .map(|e| e["detail"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn openings_reach_the_audit_log_once_each_and_at_most_the_cap_per_link() {
    let (_d, _db, ep, home) = world();
    let made = json(&home, &["share", "--preset", "emergency", "--json"]);
    let id = made["id"].as_str().unwrap().to_string();
    let url = format!("{}/shl/m/{id}", ep.base);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let open = |n: std::ops::Range<u32>| {
        for i in n {
            let body =
                serde_json::json!({ "recipient": format!("Dr {i}"), "embeddedLengthMax": 1 << 24 });
            let r = agent.post(&url).send_json(body).unwrap();
            assert_eq!(r.status().as_u16(), 200);
        }
    };
    // 150 openings, and 40 requests the link refuses (it is not a U link).
    open(0..150);
    for _ in 0..40 {
        let r = agent
            .get(&format!("{url}?recipient=Mallory"))
            .call()
            .unwrap();
        assert_eq!(r.status().as_u16(), 404);
    }
    assert!(openings_audited(&home, &id).is_empty());

    // The patient looks: every opening is listed, the refusals are a count, and the
    // audit log gains the first 100 openings one by one and one row for the rest.
    let shares = json(&home, &["shares", "--json"]);
    assert_eq!(shares[0]["access_log"].as_array().unwrap().len(), 150);
    assert_eq!(
        (
            shares[0]["accesses"].as_i64(),
            shares[0]["refused"].as_i64()
        ),
        (Some(150), Some(40))
    );
    let audited = openings_audited(&home, &id);
    assert_eq!(audited.len(), 101, "{audited:?}");
    assert_eq!(audited[100], "ok via manifest, claimed by 'Dr 0'");
    assert_eq!(audited[1], "ok via manifest, claimed by 'Dr 99'");
    assert!(
        audited[0].starts_with("50 more openings (numbers 101 to 150)"),
        "{}",
        audited[0]
    );

    // Looking again, or a sync that refreshes the links, copies nothing twice.
    json(&home, &["shares", "--json"]);
    ok(&home, &["sync"]);
    assert_eq!(openings_audited(&home, &id).len(), 101);

    // New openings past the cap: one more row that counts them.
    open(150..160);
    let listed = ok(&home, &["shares"]);
    assert!(line_with(&listed, "requests refused").contains("40 requests refused"));
    let audited = openings_audited(&home, &id);
    assert_eq!(audited.len(), 102);
    assert!(
        audited[0].starts_with("10 more openings (numbers 151 to 160)"),
        "{}",
        audited[0]
    );
    // Nothing the endpoint records after the link ends reaches the device.
    ok(&home, &["unshare", &id[..10]]);
    for _ in 0..20 {
        let r = agent
            .get(&format!("{url}?recipient=Mallory"))
            .call()
            .unwrap();
        assert_eq!(r.status().as_u16(), 404);
    }
    open_refused(&agent, &url);
    let shares = json(&home, &["shares", "--json"]);
    assert_eq!(
        (
            shares[0]["accesses"].as_i64(),
            shares[0]["refused"].as_i64()
        ),
        (Some(160), Some(40))
    );
    assert_eq!(openings_audited(&home, &id).len(), 102);
    assert!(json(&home, &["audit", "--verify", "--json"])["ok"] == true);
}

/// A manifest request for a link that no longer serves: 404.
fn open_refused(agent: &ureq::Agent, url: &str) {
    let body = serde_json::json!({ "recipient": "Dr Late" });
    let r = agent.post(url).send_json(body).unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[test]
fn a_link_locked_by_wrong_passcodes_shows_as_locked() {
    let (d, _db, _ep, home) = world();
    let made = json(
        &home,
        &[
            "share",
            "--preset",
            "emergency",
            "--passcode",
            "4711",
            "--json",
        ],
    );
    let link = made["link"].as_str().unwrap().to_string();
    assert_eq!(json(&home, &["shares", "--json"])[0]["state"], "active");
    let clinician = d.path().join("clinician");
    for _ in 0..5 {
        let out = run(&clinician, &["open", &link, "--passcode", "0000"]);
        assert_ne!(out.status.code(), Some(0));
    }
    // Even the right passcode is refused now, and the patient is told why.
    let out = run(&clinician, &["open", &link, "--passcode", "4711"]);
    assert_ne!(out.status.code(), Some(0));
    let shares = json(&home, &["shares", "--json"]);
    assert_eq!(shares[0]["state"], "locked", "{shares}");
    assert!(line_with(&ok(&home, &["shares"]), "locked").contains("locked"));
}

/// Every reference inside a document Bundle, with where it sits.
fn references(node: &Value, out: &mut Vec<String>) {
    match node {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("reference") {
                out.push(r.clone());
            }
            for (k, v) in o {
                if k != "text" {
                    references(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

#[test]
fn a_summary_saved_to_a_file_is_a_document_whose_references_all_resolve_inside_it() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("patient");
    ok(&home, &["init", "--name", "Jene Cummings"]);
    ok(&home, &["import", shared(PATIENT_FILE).to_str().unwrap()]);
    let out = d.path().join("summary.json");
    ok(
        &home,
        &[
            "summary",
            "--preset",
            "all-but-restricted",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(mode(&out) & 0o077, 0, "readable by its owner only");
    let bundle: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(bundle["type"], "document");
    let entries = bundle["entry"].as_array().unwrap();
    assert!(entries.len() > 100, "{}", entries.len());
    let urls: std::collections::HashSet<&str> = entries
        .iter()
        .map(|e| e["fullUrl"].as_str().unwrap())
        .collect();
    assert!(
        urls.iter().all(|u| u.starts_with("urn:uuid:")),
        "fullUrls are absolute"
    );
    let mut refs = Vec::new();
    references(&bundle, &mut refs);
    assert!(refs.len() > 200, "{}", refs.len());
    let dangling: Vec<&String> = refs
        .iter()
        .filter(|r| !r.starts_with('#') && !urls.contains(r.as_str()))
        .collect();
    assert!(
        dangling.is_empty(),
        "{} dangling: {:?}",
        dangling.len(),
        &dangling[..dangling.len().min(5)]
    );
    // A DiagnosticReport's results point at the Observations included with it.
    let report = entries
        .iter()
        .find(|e| {
            e["resource"]["resourceType"] == "DiagnosticReport"
                && e["resource"]["result"].is_array()
        })
        .expect("a report with results");
    assert!(urls.contains(
        report["resource"]["result"][0]["reference"]
            .as_str()
            .unwrap()
    ));
    // Printed to stdout without --out, and recorded as an export in the audit log.
    let printed: Value = serde_json::from_str(&ok(&home, &["summary"])).unwrap();
    assert_eq!(printed["type"], "document");
    let log = ok(&home, &["audit", "--limit", "5"]);
    assert!(log.contains("a patient summary"), "{log}");
}
