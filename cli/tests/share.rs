//! People, grants and delivery through the relay, end to end: two CLI homes (a
//! patient and a carer) and one endpoint process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::*;

const PATIENT_FILE: &str =
    "fixtures/fhir/synthea/sotf-Ned_Hintz_e4b9259d-0f54-48d1-a35d-b526729a4dfe.json";
const NHS_PATIENT: &str = "fixtures/fhir/uk-core/UKCore-Patient-RichardSmith-Example.json";

/// An endpoint whose debug log goes to a file, so tests can read what it wrote.
struct Logged {
    ep: Endpoint,
    db: PathBuf,
}

fn serve_logged(dir: &Path) -> Logged {
    let db = dir.join("endpoint.db");
    let ep = serve_logging(
        &format!("sqlite://{}", db.display()),
        &[],
        &dir.join("endpoint.log"),
    );
    Logged { ep, db }
}

fn home_named(dir: &Path, sub: &str, name: &str) -> PathBuf {
    let home = dir.join(sub);
    ok(&home, &["init", "--name", name]);
    home
}

/// A patient with a record and a carer who took up the patient's invite, both
/// verified. Returns (patient home, carer home, the carer's id at the patient, the
/// patient's id at the carer).
fn introduced(dir: &Path, base: &str) -> (PathBuf, PathBuf, String, String) {
    let patient = home_named(dir, "patient", "Ned Hintz");
    let carer = home_named(dir, "carer", "Sam Carer");
    ok(
        &patient,
        &["import", shared(PATIENT_FILE).to_str().unwrap()],
    );
    ok(&patient, &["endpoint", "set", base]);
    let code = json(&patient, &["invite", "--json"])["code"]
        .as_str()
        .unwrap()
        .to_string();
    // The carer's profile has no endpoint yet: the invite alone does not choose it.
    let out = run(&carer, &["accept", &code, "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has none yet"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&carer, &["people", "--json"]), serde_json::json!([]));
    let accepted = json(&carer, &["accept", &code, "--adopt-endpoint", "--json"]);
    let patient_id = accepted["person"].as_str().unwrap().to_string();
    // The same invite cannot be taken up twice, and a changed code is refused.
    let tampered = format!("{}x", &code[..code.len() - 2]);
    assert_eq!(run(&carer, &["accept", &tampered]).status.code(), Some(2));
    ok(&patient, &["sync"]);
    let people = json(&patient, &["people", "--json"]);
    assert_eq!(people.as_array().unwrap().len(), 1);
    let carer_id = people[0]["person"].as_str().unwrap().to_string();
    assert_eq!(people[0]["verified"], false);
    // Both sides show the same safety number.
    assert_eq!(people[0]["fingerprint"], accepted["fingerprint"]);
    assert_eq!(
        json(&carer, &["people", "--json"])[0]["fingerprint"],
        accepted["fingerprint"]
    );
    (patient, carer, carer_id, patient_id)
}

fn resource_set(bundle: &Value) -> BTreeSet<String> {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"].to_string())
        .collect()
}

fn relay_rows(db: &Path) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row("SELECT count(*) FROM relay_envelopes", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_carer_gets_exactly_the_scope_adds_a_reading_and_loses_the_copy_on_revocation() {
    let d = tempfile::tempdir().unwrap();
    let relay = serve_logged(d.path());
    let (patient, carer, carer_id, patient_id) = introduced(d.path(), &relay.ep.base);

    // Restricted categories need a verified person.
    let restricted = run(
        &patient,
        &[
            "grant",
            &carer_id,
            "--role",
            "contributor",
            "--categories",
            "medications,conditions,vital-signs,test-results",
            "--include-restricted",
            "PSY",
        ],
    );
    assert_eq!(
        restricted.status.code(),
        Some(4),
        "denied before verification"
    );
    // So does any grant, unless the patient says she is sure; the refusal says why.
    let plain = run(
        &patient,
        &["grant", &carer_id, "--categories", "medications"],
    );
    assert_eq!(plain.status.code(), Some(4));
    let why = String::from_utf8_lossy(&plain.stderr);
    assert!(
        why.contains("not verified") && why.contains("--unverified"),
        "{why}"
    );
    assert_eq!(json(&patient, &["grants", "--json"]), serde_json::json!([]));
    // People are found by the start of their name or id, if only one has it.
    let name = json(&patient, &["people", "--json"])[0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let first = name.split(' ').next().unwrap().to_lowercase();
    let out = ok(&patient, &["people", "verify", &first]);
    assert!(out.contains("is verified"), "{out}");
    ok(&patient, &["people", "verify", &carer_id[..4]]);

    // Hide one medication.
    let meds = json(
        &patient,
        &["timeline", "--category", "medications", "--json"],
    );
    let hidden = meds["items"][0]["id"].as_i64().unwrap();
    let granted = json(
        &patient,
        &[
            "grant",
            &carer_id,
            "--role",
            "contributor",
            "--categories",
            "medications,conditions,vital-signs,test-results",
            "--hide",
            &hidden.to_string(),
            "--expires",
            "30d",
            "--purpose",
            "help with medicines",
            "--json",
        ],
    );
    let grant_id = granted["grant"].as_str().unwrap().to_string();
    assert_eq!(granted["new_access"], true);
    ok(&patient, &["sync"]);
    let sync = json(&carer, &["sync", "--json"]);
    assert_eq!(sync["relay"]["grants_received"][0], grant_id.as_str());

    let profiles = json(&carer, &["profiles", "--json"]);
    assert_eq!(profiles.as_array().unwrap().len(), 2);
    assert_eq!(profiles[1]["profile"], patient_id.as_str());
    assert_eq!(profiles[1]["name"], "Ned Hintz");
    assert_eq!(profiles[1]["owner"], false);

    // Exactly what "view as" shows, byte for byte.
    let view = d.path().join("view.json");
    ok(
        &patient,
        &["view-as", &carer_id, "--out", view.to_str().unwrap()],
    );
    let expected: Value = serde_json::from_slice(&std::fs::read(&view).unwrap()).unwrap();
    let arrived_file = d.path().join("arrived.json");
    ok(
        &carer,
        &[
            "--profile",
            &patient_id,
            "export",
            "--out",
            arrived_file.to_str().unwrap(),
        ],
    );
    let arrived: Value = serde_json::from_slice(&std::fs::read(&arrived_file).unwrap()).unwrap();
    assert_eq!(resource_set(&arrived), resource_set(&expected));
    assert!(resource_set(&arrived).len() > 20);
    // Only the granted categories, nothing sensitive, nothing hidden.
    ok(&carer, &["use", &patient_id]);
    let items = json(&carer, &["timeline", "--limit", "500", "--json"])["items"].clone();
    let allowed = ["medications", "conditions", "vital-signs", "test-results"];
    for i in items.as_array().unwrap() {
        assert!(allowed.contains(&i["category"].as_str().unwrap()), "{i}");
        assert!(i["sensitivity"].as_array().unwrap().is_empty());
    }
    let hidden_display = meds["items"][0]["display"].as_str().unwrap();
    let hidden_date = &meds["items"][0]["date"];
    assert!(!items
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["display"] == hidden_display && &i["date"] == hidden_date));

    // The carer adds a glucose reading; it reaches the patient as entered by the carer.
    ok(&carer, &["add", "glucose", "6.1mmol/L"]);
    ok(&carer, &["sync"]);
    let s = json(&patient, &["sync", "--json"]);
    assert_eq!(s["relay"]["contributions"], 1);
    let mine = json(&patient, &["timeline", "--source", "self", "--json"])["items"].clone();
    let glucose = mine
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["resource_type"] == "Observation")
        .expect("the carer's reading");
    assert_eq!(glucose["entered_by"], "carer");
    // Its Provenance is paperwork: the timeline shows it when asked for.
    let paperwork = json(
        &patient,
        &[
            "timeline",
            "--source",
            "self",
            "--category",
            "administrative",
            "--json",
        ],
    )["items"]
        .clone();
    assert!(paperwork
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["resource_type"] == "Provenance"));
    // And it comes back to the carer in the next delivery, within the scope.
    ok(&patient, &["sync"]);
    ok(&carer, &["sync"]);
    let again = json(&carer, &["search", "glucose", "--json"])["items"].clone();
    assert!(again
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["entered_by"] == "carer"));

    // Outside the grant: a mood entry is refused on the carer's device, with why.
    let out = run(&carer, &["add", "mood", "2"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("outside the grant's categories"), "{said}");
    // And one sent before the grant narrowed is refused on the patient's: neither the
    // record nor the GP gets it, both audit logs say so, and the carer hears why.
    ok(&carer, &["add", "pulse", "66"]);
    ok(
        &patient,
        &[
            "grant",
            &carer_id,
            "--role",
            "contributor",
            "--categories",
            "medications,conditions,test-results",
            "--hide",
            &hidden.to_string(),
            "--expires",
            "30d",
        ],
    );
    let before = resources(&patient);
    ok(&patient, &["sync"]);
    ok(&carer, &["sync"]);
    let s = json(&patient, &["sync", "--json"]);
    assert_eq!(s["relay"]["contributions"], 0, "{s}");
    assert_eq!(resources(&patient), before);
    let s = json(&carer, &["sync", "--json"]);
    let why = s["relay"]["contributions_refused"][0]
        .as_str()
        .unwrap_or_default();
    assert!(why.contains("vital-signs is outside"), "{s}");
    for home in [&patient, &carer] {
        let log = json(home, &["audit", "--json"]).to_string();
        assert!(log.contains("contribution-rejected"), "{log}");
    }

    // Who can see the record, and the audit.
    let active = json(&patient, &["grants", "--active", "--json"]);
    assert_eq!(active[0]["grant"], grant_id.as_str());
    assert!(active[0]["last_delivery_at"].as_i64().is_some());
    let consent = json(&patient, &["consent", &grant_id]);
    assert_eq!(consent["resourceType"], "Consent");

    // Revocation: the relay's copies and the carer's copy go.
    ok(&patient, &["add", "glucose", "5.8mmol/L"]);
    ok(&patient, &["sync"]);
    assert!(relay_rows(&relay.db) > 0, "a change waits at the relay");
    let r = json(&patient, &["revoke", &grant_id, "--json"]);
    assert_eq!(r["state"], "revoked");
    assert_eq!(r["sent"], true);
    let s = json(&carer, &["sync", "--json"]);
    assert_eq!(s["relay"]["records_removed"][0], grant_id.as_str());
    assert_eq!(
        json(&carer, &["profiles", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(!carer.join("shared").join(&grant_id).exists());
    assert_eq!(relay_rows(&relay.db), 0, "nothing left at the relay");
    let failed = run(&carer, &["timeline"]);
    assert_ne!(failed.status.code(), Some(0), "the shared profile is gone");
    ok(&carer, &["use", "self"]);

    for home in [&patient, &carer] {
        let check = json(home, &["audit", "--verify", "--json"]);
        assert_eq!(check["ok"], true);
    }
    let log: Vec<String> = json(&patient, &["audit", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    for event in [
        "invite-created",
        "person-added",
        "person-verified",
        "grant-created",
        "envelopes-delivered",
        "contribution-applied",
        "grant-revoked",
    ] {
        assert!(log.iter().any(|e| e == event), "{event} in {log:?}");
    }
}

#[test]
fn an_expired_grant_removes_the_carers_copy_and_the_relay_data_unprompted() {
    let d = tempfile::tempdir().unwrap();
    let relay = serve_logged(d.path());
    let (patient, carer, carer_id, _) = introduced(d.path(), &relay.ep.base);
    let expires = Instant::now() + Duration::from_secs(15);
    let g = json(
        &patient,
        &[
            "grant",
            "--unverified",
            &carer_id,
            "--categories",
            "vital-signs",
            "--expires",
            "15s",
            "--json",
        ],
    );
    let grant_id = g["grant"].as_str().unwrap().to_string();
    ok(&patient, &["sync"]);
    ok(&carer, &["sync"]);
    assert_eq!(
        json(&carer, &["profiles", "--json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // A change the carer never fetches stays at the relay until the grant ends.
    ok(&patient, &["add", "pulse", "64"]);
    ok(&patient, &["sync"]);
    assert!(relay_rows(&relay.db) > 0);
    std::thread::sleep(expires.saturating_duration_since(Instant::now()) + Duration::from_secs(1));

    // Neither side needs to hear from the other.
    assert_eq!(
        json(&carer, &["profiles", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(!carer.join("shared").join(&grant_id).exists());
    let grants = json(&patient, &["grants", "--json"]);
    assert_eq!(grants[0]["state"], "expired");
    assert!(json(&patient, &["grants", "--active", "--json"])
        .as_array()
        .unwrap()
        .is_empty());
    ok(&patient, &["sync"]);
    // The expiry's own revocation notice may wait for the carer; no record data does.
    let c = rusqlite::Connection::open(&relay.db).unwrap();
    let left: i64 = c
        .query_row("SELECT count(*) FROM relay_envelopes", [], |r| r.get(0))
        .unwrap();
    assert!(left <= 1, "{left} envelopes left");
    let s = json(&carer, &["sync", "--json"]);
    assert!(s["relay"]["refused"].as_array().unwrap().is_empty());
    assert_eq!(relay_rows(&relay.db), 0);
    let log = json(&patient, &["audit", "--json"]);
    assert!(log
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event"] == "grant-expired"));
}

/// Words of the record that must never reach the relay in the clear: names, NHS
/// numbers, identifiers and code displays.
fn secrets_of(files: &[PathBuf]) -> BTreeSet<String> {
    fn walk(v: &Value, key: &str, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    walk(v, k, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, key, out)),
            Value::String(s)
                if matches!(key, "family" | "given" | "display" | "text" | "value")
                    && s.len() >= 6
                    && !s.starts_with("http")
                    && !s.starts_with("urn:") =>
            {
                out.insert(s.clone());
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for f in files {
        let v: Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        walk(&v, "", &mut out);
    }
    out
}

#[test]
fn the_relay_stores_and_logs_no_names_numbers_or_clinical_words() {
    let d = tempfile::tempdir().unwrap();
    let relay = serve_logged(d.path());
    let (patient, carer, carer_id, _) = introduced(d.path(), &relay.ep.base);
    ok(&patient, &["import", shared(NHS_PATIENT).to_str().unwrap()]);
    ok(
        &patient,
        &["grant", "--unverified", &carer_id, "--categories", "conditions,medications,vital-signs,test-results,other,encounters,procedures,immunisations,allergies,care-plans"],
    );
    ok(&patient, &["sync"]);
    assert!(relay_rows(&relay.db) > 0, "the delivery waits at the relay");
    let mut secrets = secrets_of(&[shared(PATIENT_FILE), shared(NHS_PATIENT)]);
    secrets.insert("Ned Hintz".into());
    secrets.insert("Sam Carer".into());
    assert!(
        secrets.contains("9912003888"),
        "the NHS number is looked for"
    );
    assert!(secrets.len() > 50, "{}", secrets.len());
    // Everything the relay wrote: its database (and journal files) and its log.
    let mut files: Vec<PathBuf> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("endpoint."))
        })
        .collect();
    files.sort();
    assert!(files.len() >= 2);
    let mut scanned = 0;
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "{} holds '{s}'", f.display());
        }
        scanned += bytes.len();
    }
    assert!(
        scanned > 10_000,
        "the relay holds the delivery ({scanned} bytes)"
    );
    // And the carer still gets the record afterwards.
    ok(&carer, &["sync"]);
    assert_eq!(
        json(&carer, &["profiles", "--json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// A name chosen to fake a verified badge and a line of its own, with a hidden link
/// and a right-to-left override.
const HOSTILE_NAME: &str = "Mum\u{1b}[1;32m (verified)\u{1b}[0m\r\nfake line \u{1b}]8;;https://evil.example\u{7}x\u{1b}]8;;\u{7} \u{202e}evil";
const HOSTILE_ESCAPED: &str = "Mum\\u{1b}[1;32m (verified)\\u{1b}[0m\\u{d}\\u{a}fake line \\u{1b}]8;;https://evil.example\\u{7}x\\u{1b}]8;;\\u{7} \\u{202e}evil";

#[test]
fn names_from_invites_reach_the_terminal_escaped_on_one_line() {
    let d = tempfile::tempdir().unwrap();
    let relay = serve(
        &format!("sqlite://{}", d.path().join("endpoint.db").display()),
        &[],
    );
    let inviter = home_named(d.path(), "inviter", HOSTILE_NAME);
    let ordinary = "Siobhán Ó Dálaigh 山田 👩\u{200d}⚕\u{fe0f}";
    let invitee = home_named(d.path(), "invitee", ordinary);
    ok(&inviter, &["import", shared(NHS_PATIENT).to_str().unwrap()]);
    ok(&inviter, &["endpoint", "set", &relay.base]);
    let code = json(&inviter, &["invite", "--json"])["code"]
        .as_str()
        .unwrap()
        .to_string();

    let accepted = ok(&invitee, &["accept", &code, "--adopt-endpoint"]);
    assert!(
        line_with(&accepted, "Added").contains(HOSTILE_ESCAPED),
        "{accepted}"
    );
    assert!(line_with(&accepted, "Compare it with").contains(HOSTILE_ESCAPED));
    let people = ok(&invitee, &["people"]);
    let line = line_with(&people, "Mum");
    assert!(line.contains(HOSTILE_ESCAPED), "{people}");
    assert!(line.ends_with("not verified"), "{line}");
    assert_eq!(people.lines().count(), 1, "{people}");
    // JSON is serde's, unchanged: the name round-trips exactly.
    let listed = json(&invitee, &["people", "--json"]);
    assert_eq!(listed[0]["name"], HOSTILE_NAME);

    // The other way, an ordinary name passes untouched.
    ok(&inviter, &["sync"]);
    let people = ok(&inviter, &["people"]);
    assert!(line_with(&people, "Siobhán").contains(ordinary), "{people}");
    let id = json(&inviter, &["people", "--json"])[0]["person"]
        .as_str()
        .unwrap()
        .to_string();
    let granted = ok(
        &inviter,
        &["grant", "--unverified", &id, "--categories", "other"],
    );
    assert!(
        line_with(&granted, "Granted").contains(ordinary),
        "{granted}"
    );

    // What that person would receive, written under umask 022: owner-only.
    let file = d.path().join("view-as.json");
    let out = carry_umask_022(&inviter, &["view-as", &id, "--out", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&file), 0o600);
}

/// A stranger at the relay: a fresh Ed25519 key signed in by the relay's handshake.
/// Returns its session token and mailbox id.
fn stranger(base: &str) -> (String, String) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine as _;
    use ring::signature::{Ed25519KeyPair, KeyPair as _};
    let agent = ureq::Agent::new_with_defaults();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let keys = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let key = B64.encode(keys.public_key().as_ref());
    let c: Value = agent
        .post(&format!("{base}/relay/v1/challenge"))
        .send_json(serde_json::json!({ "key": key }))
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let challenge = c["challenge"].as_str().unwrap();
    let signed = [
        b"carry-relay-auth-v2\n".as_slice(),
        base.as_bytes(),
        b"\n",
        &B64.decode(challenge).unwrap(),
    ]
    .concat();
    let s: Value = agent
        .post(&format!("{base}/relay/v1/session"))
        .send_json(serde_json::json!({
            "key": key, "challenge": challenge,
            "signature": B64.encode(keys.sign(&signed).as_ref()),
        }))
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    (
        s["token"].as_str().unwrap().to_string(),
        s["mailbox"].as_str().unwrap().to_string(),
    )
}

/// Post `body` to `mailbox` as the session `token`: the status.
fn post_junk(base: &str, token: &str, mailbox: &str, body: &[u8]) -> u16 {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine as _;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    agent
        .post(&format!("{base}/relay/v1/mailboxes/{mailbox}"))
        .header("authorization", &format!("Bearer {token}"))
        .send_json(serde_json::json!({ "tag": "junk", "body": B64.encode(body) }))
        .unwrap()
        .status()
        .as_u16()
}

/// The audit log's entries of `event`, newest first.
fn audited(home: &Path, event: &str) -> Vec<Value> {
    json(home, &["audit", "--limit", "100000", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == event)
        .cloned()
        .collect()
}

#[test]
fn junk_is_one_audit_row_per_sender_and_a_full_mailbox_does_not_stop_the_sync() {
    let d = tempfile::tempdir().unwrap();
    let relay = serve(
        &format!("sqlite://{}", d.path().join("endpoint.db").display()),
        &["--relay-mailbox-max", "20"],
    );
    let base = relay.base.as_str();
    let (patient, carer, carer_id, _) = introduced(d.path(), base);
    ok(&carer, &["endpoint", "set", base]);
    ok(&carer, &["sync"]);
    let carer_mailbox = json(&carer, &["id", "--json"])["mailbox"]
        .as_str()
        .unwrap()
        .to_string();

    // Two strangers fill the carer's mailbox with junk: 8 envelopes from one, then
    // as many as fit from the other.
    let (mallory, mallory_mailbox) = stranger(base);
    let (trudy, trudy_mailbox) = stranger(base);
    for i in 0..8u8 {
        assert_eq!(post_junk(base, &mallory, &carer_mailbox, &[i; 40]), 201);
    }
    let mut from_trudy = 0;
    while post_junk(base, &trudy, &carer_mailbox, b"junk") == 201 {
        from_trudy += 1;
        assert!(from_trudy <= 20, "the mailbox never filled");
    }
    assert!(from_trudy > 0);

    // The patient shares with the carer: the delivery cannot be posted, but the sync
    // goes through and says why the carer has nothing yet.
    ok(
        &patient,
        &[
            "grant",
            "--unverified",
            &carer_id,
            "--categories",
            "medications",
            "--expires",
            "30d",
        ],
    );
    let out = run(&patient, &["sync", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &report["relay"];
    assert_eq!(
        r["mailboxes_full"],
        serde_json::json!([carer_id]),
        "{report}"
    );
    assert!(r["held_back"].as_u64().unwrap() >= 1, "{report}");
    let text = ok(&patient, &["sync"]);
    let line = line_with(&text, "relay:");
    assert!(
        line.contains(&format!("the relay mailbox of {carer_id} is full")),
        "{line}"
    );

    // The carer drains the junk: one audit row per sender, with the count.
    let before = audited(&carer, "envelope-rejected").len();
    let out = json(&carer, &["sync", "--json"]);
    assert_eq!(
        out["relay"]["refused"].as_array().unwrap().len(),
        8 + from_trudy,
        "{out}"
    );
    let rejected = audited(&carer, "envelope-rejected");
    assert_eq!(rejected.len(), before + 2, "{rejected:?}");
    let detail = |mailbox: &str| {
        rejected
            .iter()
            .map(|e| e["detail"].as_str().unwrap())
            .find(|d| d.contains(mailbox))
            .unwrap_or_else(|| panic!("no row for {mailbox}: {rejected:?}"))
            .to_string()
    };
    assert!(
        detail(&mallory_mailbox).starts_with(&format!(
            "8 envelopes from mailbox {mallory_mailbox} refused: "
        )),
        "{}",
        detail(&mallory_mailbox)
    );
    assert!(
        detail(&trudy_mailbox).starts_with(&format!("{from_trudy} envelopes from mailbox")),
        "{}",
        detail(&trudy_mailbox)
    );
    let acknowledged = audited(&carer, "envelopes-acknowledged");
    assert_eq!(
        acknowledged[0]["detail"],
        format!("{} envelopes", 8 + from_trudy),
        "one row for the exchange"
    );

    // With room again, the patient's next sync delivers, and the carer has the record.
    let report = json(&patient, &["sync", "--json"]);
    assert_eq!(
        report["relay"]["mailboxes_full"],
        serde_json::json!([]),
        "{report}"
    );
    assert!(report["relay"]["posted"].as_u64().unwrap() >= 1, "{report}");
    ok(&carer, &["sync"]);
    let profiles = json(&carer, &["profiles", "--json"]);
    assert_eq!(profiles.as_array().unwrap().len(), 2, "{profiles}");
    assert!(json(&carer, &["audit", "--verify", "--json"])["ok"] == true);
}

/// A PDF of `len` bytes that does not compress.
fn pdf(len: usize) -> Vec<u8> {
    let mut b = b"%PDF-1.7\n".to_vec();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while b.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b.extend_from_slice(&x.to_le_bytes());
    }
    b.truncate(len);
    b
}

#[test]
fn a_5_mb_letter_reaches_the_carer_through_the_relay_and_opens_byte_for_byte() {
    let d = tempfile::tempdir().unwrap();
    let relay = serve_logged(d.path());
    let (patient, carer, carer_id, patient_id) = introduced(d.path(), &relay.ep.base);
    let letter = pdf(5 << 20);
    let file = d.path().join("discharge-letter.pdf");
    std::fs::write(&file, &letter).unwrap();
    let kept = json(
        &patient,
        &[
            "attach",
            file.to_str().unwrap(),
            "--title",
            "Discharge letter",
            "--json",
        ],
    );
    assert_eq!(kept["category"], "documents");
    // A file that is not what it is said to be is refused.
    let wrong = run(
        &patient,
        &["attach", file.to_str().unwrap(), "--type", "image/png"],
    );
    assert_eq!(wrong.status.code(), Some(2));
    json(
        &patient,
        &[
            "grant",
            "--unverified",
            &carer_id,
            "--categories",
            "documents",
            "--json",
        ],
    );
    let sent = json(&patient, &["sync", "--json"]);
    // The grant and some eleven envelopes of 600 KB: the letter, in parts.
    assert!(sent["relay"]["posted"].as_u64().unwrap() >= 10, "{sent}");
    ok(&carer, &["sync"]);
    // The carer finds the letter in the patient's record and opens it.
    let docs = json(
        &carer,
        &[
            "--profile",
            &patient_id,
            "timeline",
            "--category",
            "documents",
            "--limit",
            "500",
            "--json",
        ],
    );
    let id = docs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| {
            i["display"]
                .as_str()
                .unwrap_or("")
                .contains("Discharge letter")
        })
        .unwrap_or_else(|| panic!("the letter did not arrive: {docs}"))["id"]
        .to_string();
    let out = d.path().join("opened.pdf");
    json(
        &carer,
        &[
            "--profile",
            &patient_id,
            "open-document",
            &id,
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(
        std::fs::read(&out).unwrap() == letter,
        "the letter changed on the way"
    );
    // A carer cannot add documents to the patient's record.
    let theirs = run(
        &carer,
        &["--profile", &patient_id, "attach", file.to_str().unwrap()],
    );
    assert_eq!(theirs.status.code(), Some(2));
    // The relay holds nothing once fetched.
    assert_eq!(relay_rows(&relay.db), 0);
}
