//! The `carry` CLI as a script sees it: exit codes, JSON output, wrong passphrases,
//! malformed input, and a process killed in the middle of an import.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

mod common;
use common::*;

#[test]
fn import_summary_and_read_commands_speak_json() {
    let (_d, home) = new_home();
    let file = shared(
        "fixtures/fhir/synthea/sotf-Clemente_Kreiger_1484a42d-0eaf-4654-9cbf-6b050a5cd73b.json",
    );
    let s = json(&home, &["import", file.to_str().unwrap(), "--json"]);
    assert_eq!(s["imported"], 70);
    assert_eq!(s["unchanged"], 0);
    assert_eq!(s["rejected"].as_array().unwrap().len(), 0);
    let s = json(&home, &["import", file.to_str().unwrap(), "--json"]);
    assert_eq!(
        (s["imported"].as_u64(), s["unchanged"].as_u64()),
        (Some(0), Some(70))
    );

    let stats = json(&home, &["stats", "--json"]);
    assert_eq!(stats["resources"], 70);
    assert_eq!(stats["by_type"]["Observation"], 48);
    assert!(stats["by_category"]["vital-signs"].as_u64().unwrap() > 0);

    let page = json(&home, &["timeline", "--limit", "10", "--json"]);
    assert_eq!(page["items"].as_array().unwrap().len(), 10);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let next = json(
        &home,
        &["timeline", "--limit", "10", "--cursor", &cursor, "--json"],
    );
    assert_ne!(next["items"][0]["id"], page["items"][0]["id"]);
    let vitals = json(&home, &["timeline", "--category", "vital-signs", "--json"]);
    assert!(vitals["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["category"] == "vital-signs"));

    let hits = json(&home, &["search", "body", "weight", "--json"]);
    let id = hits["items"][0]["id"].as_i64().unwrap();
    let shown = json(&home, &["show", &id.to_string(), "--json"]);
    assert_eq!(shown["resource"]["resourceType"], "Observation");
    let by_ref = json(
        &home,
        &[
            "show",
            "Patient/d78af07c-9cb9-4f31-9b11-c45a28f2eec8",
            "--json",
        ],
    );
    assert_eq!(by_ref["resource"]["resourceType"], "Patient");

    let added = json(
        &home,
        &["add", "bp", "120/80", "--note", "after a walk", "--json"],
    );
    assert_eq!(added["entered_by"], "self");
    assert_eq!(resources(&home), 71);

    let out_file = home.join("export.json");
    json(
        &home,
        &["export", "--out", out_file.to_str().unwrap(), "--json"],
    );
    let bundle: Value = serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(bundle["entry"].as_array().unwrap().len(), 71);
    let out = run(&home, &["export", "--category", "vital-signs"]);
    let bundle: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(bundle["entry"].as_array().unwrap().len() > 5);
}

#[test]
fn wrong_passphrase_exits_3_and_leaves_the_vault_byte_identical() {
    let (_d, home) = new_home();
    let file = shared("fixtures/fhir/uk-core/UKCore-Patient-RichardSmith-Example.json");
    assert!(run(&home, &["import", file.to_str().unwrap()])
        .status
        .success());
    let db = std::fs::read(home.join("vault.db")).unwrap();
    let key = std::fs::read(home.join("vault.key")).unwrap();
    let out = carry(&home, &["stats"])
        .env("CARRY_PASSPHRASE", "not the passphrase")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrong key or passphrase"), "{err}");
    assert!(!err.contains("Richard"), "no health data in errors");
    assert_eq!(std::fs::read(home.join("vault.db")).unwrap(), db);
    assert_eq!(std::fs::read(home.join("vault.key")).unwrap(), key);
}

#[test]
fn malformed_json_exits_2_with_the_position_and_changes_nothing() {
    let (d, home) = new_home();
    let good = shared("fixtures/fhir/uk-core/UKCore-Patient-RichardSmith-Example.json");
    assert!(run(&home, &["import", good.to_str().unwrap()])
        .status
        .success());
    let bad = d.path().join("bad.json");
    std::fs::write(&bad, "{\"resourceType\":\"Bundle\",\"entry\":[\n{\"resource\":{\"resourceType\":\"Patient\",\"id\":\"x\"}},\n{\"resource\":").unwrap();
    let out = run(&home, &["import", bad.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["imported"], 0);
    assert_eq!(s["rejected"][0]["entry"], "file");
    assert!(
        s["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("line 3"),
        "{s}"
    );
    assert_eq!(resources(&home), 1);
}

#[test]
fn a_reading_noted_down_earlier_keeps_its_time() {
    let (_d, home) = new_home();
    let item = json(
        &home,
        &[
            "add",
            "pulse",
            "64",
            "--at",
            "2026-12-01T08:30+01:00",
            "--json",
        ],
    );
    assert_eq!(item["date"], "2026-12-01T07:30:00Z");
    let shown = json(&home, &["show", &item["id"].to_string(), "--json"]);
    let obs = &shown["resource"];
    assert_eq!(obs["effectiveDateTime"], "2026-12-01T07:30:00Z");
    assert_ne!(
        obs["issued"], obs["effectiveDateTime"],
        "issued is when it was entered"
    );
}

#[test]
fn contacts_are_added_listed_shown_on_the_card_and_removed() {
    let (_d, home) = new_home();
    let added = json(
        &home,
        &[
            "contacts",
            "add",
            "Amy Lee",
            "--relationship",
            "daughter",
            "--phone",
            "07700 900123",
            "--json",
        ],
    );
    assert_eq!(added["source"], "self");
    let id = added["item"].as_i64().unwrap();
    let text = run(&home, &["contacts"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!(
            "Amy Lee (daughter) 07700 900123  ([{id}] added by you)"
        )),
        "{text}"
    );
    // On the emergency card a clinician opens.
    let card = run(&home, &["summary", "--preset", "emergency"]);
    assert!(
        card.status.success(),
        "{}",
        String::from_utf8_lossy(&card.stderr)
    );
    assert!(String::from_utf8_lossy(&card.stdout).contains("Amy Lee"));
    // Not a telephone number: exit 2, a reason, nothing kept.
    let bad = run(&home, &["contacts", "add", "Bo", "--phone", "call me"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("telephone"));
    assert_eq!(
        json(&home, &["contacts", "--json"])["contacts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    json(&home, &["contacts", "remove", &id.to_string(), "--json"]);
    assert_eq!(
        json(&home, &["contacts", "--json"])["contacts"],
        serde_json::json!([])
    );
}

#[test]
fn bad_input_gets_a_clear_error_and_exit_code() {
    let (_d, home) = new_home();
    let cases: &[(&[&str], i32, &str)] = &[
        (&["add", "weight", "72.5st"], 2, "kg or lb"),
        (&["add", "bp", "80/120"], 2, "higher than diastolic"),
        (&["add", "height", "180cm"], 2, "unknown reading"),
        (
            &["add", "pulse", "60", "--at", "2999-01-01"],
            2,
            "in the future",
        ),
        (
            &["add", "pulse", "60", "--at", "last tuesday"],
            2,
            "not a time",
        ),
        (&["timeline", "--category", "gossip"], 2, "unknown category"),
        (&["timeline", "--since", "yesterday"], 2, "not a date"),
        (&["timeline", "--cursor", "xyz"], 2, "cursor"),
        (&["show", "4242"], 2, "not found"),
        (&["show", "Patient/nobody"], 2, "not in the record"),
        (&["search", "--"], 2, "usage"),
        (&["import", "/nonexistent/file.json"], 2, "not found"),
        (&["import", "/tmp"], 2, "is a folder"),
        (&["init", "--name", "Again"], 2, "already holds a profile"),
        (&["frobnicate"], 2, "unrecognized subcommand"),
    ];
    for (args, code, needle) in cases {
        let out = run(&home, args);
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {err}");
        assert!(err.contains(&needle.to_lowercase()), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let elsewhere = tempfile::tempdir().unwrap();
    let out = run(&elsewhere.path().join("none"), &["stats"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("carry init"));
}

/// An NDJSON file of `copies` renamed copies of the largest Synthea patient.
fn big_ndjson(dir: &Path, copies: usize) -> (PathBuf, u64) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(shared("fixtures/fhir/synthea"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let bundle: Value =
        serde_json::from_slice(&std::fs::read(files.last().unwrap()).unwrap()).unwrap();
    let mut text = String::new();
    let mut n = 0;
    for k in 0..copies {
        for e in bundle["entry"].as_array().unwrap() {
            let mut r = e["resource"].clone();
            r["id"] = Value::String(format!("{}-{k}", r["id"].as_str().unwrap()));
            text.push_str(&serde_json::to_string(&r).unwrap());
            text.push('\n');
            n += 1;
        }
    }
    let path = dir.join("big.ndjson");
    std::fs::write(&path, text).unwrap();
    (path, n)
}

#[test]
fn sigkill_mid_import_leaves_none_or_all_of_the_file() {
    let (d, home) = new_home();
    let (file, total) = big_ndjson(d.path(), 12);
    let mut outcomes = Vec::new();
    for delay_ms in [250u64, 600, 1200, 2500] {
        let mut child = carry(&home, &["import", file.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill(); // SIGKILL on Unix
        let _ = child.wait();
        let check = run(&home, &["check"]);
        assert!(
            check.status.success(),
            "integrity after kill at {delay_ms} ms: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let n = resources(&home);
        assert!(
            n == 0 || n == total,
            "kill at {delay_ms} ms left {n} of {total}"
        );
        outcomes.push((delay_ms, finished, n));
        if n == total {
            break;
        }
    }
    // Running the import again converges on the whole file.
    let s = json(&home, &["import", file.to_str().unwrap(), "--json"]);
    assert_eq!(
        s["imported"].as_u64().unwrap() + s["unchanged"].as_u64().unwrap(),
        total
    );
    assert_eq!(resources(&home), total);
    assert!(
        outcomes.iter().any(|(_, finished, n)| !finished && *n == 0),
        "no kill landed mid-import: {outcomes:?}"
    );
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    let (_d, home) = new_home();
    let file = shared(
        "fixtures/fhir/synthea/sotf-Clemente_Kreiger_1484a42d-0eaf-4654-9cbf-6b050a5cd73b.json",
    );
    assert!(run(&home, &["import", file.to_str().unwrap()])
        .status
        .success());
    let mut child = carry(&home, &["timeline", "--limit", "500"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Like `| head -0`: the reader goes away before the output is written.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.status.success(), "{err}");
}

#[test]
fn stu3_content_is_converted_to_r4_and_keeps_its_original() {
    let (_d, home) = new_home();
    // (file, entries, of which not convertible: the OperationOutcome)
    let mut converted = 0;
    for (f, entries, unconvertible) in [
        ("gpconnect-allergies_response1.json", 9, 0),
        ("gpconnect-meds_response.json", 14, 0),
        ("gpconnect-consultations_forwards_response1.json", 20, 1),
    ] {
        let file = shared(&format!("fixtures/fhir/gp-connect-stu3/{f}"));
        let out = run(&home, &["import", file.to_str().unwrap(), "--json"]);
        let err = String::from_utf8_lossy(&out.stderr);
        let want = if unconvertible > 0 { 2 } else { 0 };
        assert_eq!(out.status.code(), Some(want), "{f}: {err}");
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["converted"], entries - unconvertible, "{f}: {r}");
        assert_eq!(r["imported"], entries - unconvertible, "{f}: {r}");
        let rejected = r["rejected"].as_array().unwrap();
        assert_eq!(rejected.len(), unconvertible as usize, "{f}: {r}");
        for rej in rejected {
            let reason = rej["reason"].as_str().unwrap();
            assert!(
                reason.contains("STU3") && reason.contains("OperationOutcome"),
                "{reason}"
            );
        }
        converted += entries - unconvertible;
    }
    assert_eq!(resources(&home), converted);
    // Every allergy is dated now (STU3's assertedDate is R4's recordedDate), and
    // shows where it came from.
    let allergies = json(&home, &["timeline", "--category", "allergies", "--json"]);
    let items = allergies["items"].as_array().unwrap();
    assert!(items.len() >= 3, "{allergies}");
    for item in items {
        assert!(item["date"].is_string(), "an undated allergy: {item}");
        let id = item["id"].to_string();
        let shown = json(&home, &["show", &id, "--json"]);
        let (resource, original) = (&shown["resource"], &shown["original"]);
        assert_eq!(resource["resourceType"], "AllergyIntolerance");
        assert!(resource.get("assertedDate").is_none(), "{resource}");
        assert_eq!(
            resource["meta"]["tag"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["code"] == "converted-from-stu3")
                .count(),
            1,
            "{resource}"
        );
        // The original is kept as it arrived.
        assert_eq!(original["assertedDate"], resource["recordedDate"]);
        assert_eq!(original["id"], resource["id"]);
        let text = ok(&home, &["show", &id]);
        assert!(text.contains("from FHIR STU3"), "{text}");
    }
}

#[test]
fn one_stray_stu3_element_does_not_send_the_r4_resources_after_it_through_the_converter() {
    let (d, home) = new_home();
    // An R4 file whose first Observation carries STU3's `comment`: it is converted;
    // the R4 allergy after it, whose clinicalStatus the converter would refuse as
    // STU3, is read as R4.
    let file = d.path().join("mixed.json");
    let bundle = serde_json::json!({
        "resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "Observation", "id": "o1", "status": "final",
                          "code": {"text": "Pulse"}, "comment": "stray"}},
            {"resource": {"resourceType": "AllergyIntolerance", "id": "a1",
                          "clinicalStatus": {"coding": [{"system":
                              "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                              "code": "active"}]},
                          "patient": {"reference": "Patient/p"}, "code": {"text": "Peanut"},
                          "recordedDate": "2020-01-01"}}
        ]
    });
    std::fs::write(&file, bundle.to_string()).unwrap();
    let r = json(&home, &["import", file.to_str().unwrap(), "--json"]);
    assert_eq!(r["imported"], 2, "{r}");
    assert_eq!(r["converted"], 1, "{r}");
    assert!(r["rejected"].as_array().unwrap().is_empty(), "{r}");
}

/// A display line from a hostile file: colour, an OSC 8 hyperlink, the 8-bit CSI and a
/// right-to-left override.
const HOSTILE_DISPLAY: &str = "Asthma\u{1b}[1;32m (verified)\u{1b}[0m \u{1b}]8;;https://evil.example\u{7}click\u{1b}]8;;\u{7} \u{9b}2J \u{202e}evil";
/// A display line that must pass untouched.
const ORDINARY_DISPLAY: &str = "Zoë's blood pressure — 山田 🩺";

#[test]
fn outside_text_reaches_the_terminal_escaped_and_ordinary_text_untouched() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("home");
    let name = "Mum\u{1b}[1;32m (verified)\u{1b}[0m\r\nfake line \u{202e}";
    let created = ok(&home, &["init", "--name", name]);
    let line = line_with(&created, "Mum");
    assert!(
        line.contains("\\u{1b}[1;32m (verified)\\u{1b}[0m\\u{d}\\u{a}fake line \\u{202e}"),
        "{line}"
    );
    let info = ok(&home, &["info"]);
    assert!(
        line_with(&info, "Mum").contains("\\u{d}\\u{a}fake line"),
        "{info}"
    );
    assert_eq!(json(&home, &["info", "--json"])["name"], name.trim());

    let bundle = serde_json::json!({
        "resourceType": "Bundle", "type": "collection", "entry": [
            { "resource": { "resourceType": "Condition", "id": "c1",
                "code": { "text": HOSTILE_DISPLAY }, "recordedDate": "2024-01-01" } },
            { "resource": { "resourceType": "Observation", "id": "o1", "status": "final",
                "code": { "text": ORDINARY_DISPLAY }, "effectiveDateTime": "2024-02-01" } }
        ]
    });
    let file = d.path().join("hostile.json");
    std::fs::write(&file, serde_json::to_vec(&bundle).unwrap()).unwrap();
    ok(&home, &["import", file.to_str().unwrap()]);

    let escaped = "Asthma\\u{1b}[1;32m (verified)\\u{1b}[0m \\u{1b}]8;;https://evil.example\\u{7}click\\u{1b}]8;;\\u{7} \\u{9b}2J \\u{202e}evil";
    let timeline = ok(&home, &["timeline"]);
    assert!(
        line_with(&timeline, "Asthma").contains(escaped),
        "{timeline}"
    );
    assert!(
        line_with(&timeline, "山田").contains(ORDINARY_DISPLAY),
        "{timeline}"
    );
    let found = ok(&home, &["search", "asthma"]);
    assert!(line_with(&found, "Asthma").contains(escaped), "{found}");
    let found = ok(&home, &["search", "blood"]);
    assert!(
        line_with(&found, "blood").contains(ORDINARY_DISPLAY),
        "{found}"
    );
    let shown = ok(&home, &["show", "Condition/c1"]);
    assert!(line_with(&shown, "#").contains(escaped), "{shown}");
    // The resource itself, as JSON text: serde escapes C0 controls, the rest here.
    assert!(shown.contains("\\u{9b}2J \\u{202e}evil"), "{shown}");
    assert!(ok(&home, &["show", "Observation/o1"]).contains(ORDINARY_DISPLAY));

    // JSON output is serde's, unchanged: the text round-trips exactly.
    let page = json(&home, &["timeline", "--json"]);
    let displays: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["display"].as_str().unwrap())
        .collect();
    assert!(displays.contains(&HOSTILE_DISPLAY), "{displays:?}");
    assert!(displays.contains(&ORDINARY_DISPLAY), "{displays:?}");
    let shown = json(&home, &["show", "Condition/c1", "--json"]);
    assert_eq!(shown["resource"]["code"]["text"], HOSTILE_DISPLAY);
}

#[cfg(unix)]
#[test]
fn every_file_the_cli_writes_is_owner_only_under_umask_022() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("home");
    let run_022 = |args: &[&str]| {
        let out = carry_umask_022(&home, args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run_022(&["init", "--name", "Umask Person"]);
    let file = shared("fixtures/fhir/uk-core/UKCore-Patient-RichardSmith-Example.json");
    run_022(&["import", file.to_str().unwrap()]);
    let out = d.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let at = |name: &str| out.join(name).to_str().unwrap().to_string();
    run_022(&["export", "--out", &at("record.json")]);
    run_022(&["backup", "--out", &at("record.carry")]);
    run_022(&["recovery", "show", "--qr", &at("code.png")]);
    run_022(&["recovery", "show", "--qr", &at("code.svg")]);
    // A file that was already there, readable by all, is made owner-only too.
    std::fs::write(out.join("old.svg"), b"old").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(out.join("old.svg"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
    }
    run_022(&["recovery", "show", "--qr", &at("old.svg")]);
    run_022(&["use", "self"]);
    let mut written: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(written.len(), 5, "{written:?}");
    written.extend(
        std::fs::read_dir(&home)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file()),
    );
    assert!(written.iter().any(|p| p.ends_with("current-profile")));
    assert!(written.iter().any(|p| p.ends_with("vault.key")));
    for p in &written {
        assert_eq!(mode(p), 0o600, "{}", p.display());
    }
    assert_eq!(mode(&home), 0o700);
}
