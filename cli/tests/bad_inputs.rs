//! Every command, given wrong input on purpose: each answers with a clear, typed
//! error (a message on stderr and the documented exit code), never a panic or a stack
//! trace, and the profile is unchanged afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
mod common;

use std::path::Path;

use common::*;

const FILE: &str =
    "fixtures/fhir/synthea/sotf-Jene_Cummings_8a2bb726-2f79-4940-a134-a374eef39af7.json";

/// What a failed command must never print.
const NEVER: &[&str] = &[
    "panicked",
    "RUST_BACKTRACE",
    "stack backtrace",
    "thread 'main'",
    "unwrap()",
];

fn check(home: &Path, args: &[&str], want: i32, env: &[(&str, &str)]) {
    let mut c = carry(home, args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run carry");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(want),
        "{args:?} should exit {want}; stderr: {err}"
    );
    assert!(!err.trim().is_empty(), "{args:?}: no message");
    for word in NEVER {
        assert!(!err.contains(word), "{args:?} printed {word:?}: {err}");
    }
}

/// The record's resources, without the export's own time stamps.
fn record(home: &Path) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&ok(home, &["export"])).unwrap();
    let mut r: Vec<String> = v["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"].to_string())
        .collect();
    r.sort();
    r
}

#[test]
fn every_command_refuses_bad_input_with_a_typed_error_and_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("home");
    ok(&home, &["init", "--name", "Jene Cummings"]);
    ok(&home, &["import", shared(FILE).to_str().unwrap()]);
    let before = record(&home);
    let garbage = d.path().join("garbage.json");
    std::fs::write(&garbage, b"{\"resourceType\": \"Bundle\", \"entry\": [").unwrap();
    let not_json = d.path().join("notes.txt");
    std::fs::write(&not_json, b"this is not FHIR").unwrap();
    let g = garbage.to_str().unwrap();
    let t = not_json.to_str().unwrap();

    // (arguments, exit code): 2 usage or bad input, 3 key, 4 denied/expired/revoked.
    let table: &[(&[&str], i32)] = &[
        (&["init", "--name", "Again"], 2),
        (&["import", "/nonexistent/file.json"], 2),
        (&["import", g], 2),
        (&["import", t], 2),
        (&["timeline", "--limit", "0"], 2),
        (&["timeline", "--limit", "many"], 2),
        (&["timeline", "--category", "astrology"], 2),
        (&["timeline", "--cursor", "not-a-cursor"], 2),
        (&["search", ""], 2),
        (&["show", "99999999"], 2),
        (&["show", "Patient/nobody-here"], 2),
        (&["show", "not an id"], 2),
        (&["add", "bp", "400/80"], 2),
        (&["add", "bp", "80/120"], 2),
        (&["add", "bp", "120"], 2),
        (&["add", "weight", "-5kg"], 2),
        (&["add", "glucose", "sweet"], 2),
        (&["add", "temperature", "37"], 2),
        (&["export", "--category", "astrology"], 2),
        (&["source", "add", "gp", "not a url"], 2),
        (&["source", "add", "gp", "ftp://gp.example/fhir"], 2),
        (&["source", "login", "nobody"], 2),
        (&["endpoint", "set", "ftp://relay.example"], 2),
        (&["endpoint", "set", "http://relay.example"], 2),
        (&["invite"], 2),
        (&["accept", "carry:invite:!!!"], 2),
        (&["accept", "hello"], 2),
        (&["people", "verify", "nobody"], 2),
        (&["grant", "nobody", "--role", "viewer"], 2),
        (&["grant", "nobody", "--role", "owner"], 2),
        (&["grant", "nobody", "--expires", "forever"], 2),
        (&["revoke", "g-nothing"], 2),
        (&["view-as", "nobody"], 2),
        (&["consent", "g-nothing"], 2),
        (&["use", "nobody"], 2),
        (&["--profile", "nobody", "stats"], 2),
        (&["share", "--preset", "everything-please"], 2),
        (&["share", "--expires", "soon"], 2),
        (&["unshare", "nothing"], 2),
        (&["open", "shlink:/not-base64!"], 2),
        (&["open", "https://viewer.example/#shlink:/eyJ1cmwiOjF9"], 2),
        (&["open", "just text"], 2),
        (
            &[
                "recovery", "confirm", "--group", "1=ZZZZ", "--group", "2=YYYY",
            ],
            2,
        ),
        (&["recovery", "confirm", "--group", "one=ZZZZ"], 2),
        (&["backup", "--out", "/nonexistent-folder/b.carry"], 2),
        (&["backup"], 2),
        (
            &["restore", "--file", "/nonexistent/b.carry", "--code", "x"],
            2,
        ),
        (&["move-in", "carry:pair:garbage"], 2),
        (&["move-out"], 2),
        (&["devices", "--remove", "nobody"], 2),
        (&["devices", "primary", "nobody"], 2),
        (
            &["devices", "join", "carry:pair:garbage", "--name", "tablet"],
            2,
        ),
        (&["prefs", "--grant-days", "0"], 2),
        (&["prefs", "--lock-timeout", "-1"], 2),
        (&["audit", "--limit", "-1"], 2),
        (&["no-such-command"], 2),
    ];
    for (args, want) in table {
        check(&home, args, *want, &[]);
    }
    // A wrong passphrase is a key error on every command that opens the profile.
    for args in [
        &["stats"][..],
        &["timeline"],
        &["export"],
        &["backup", "--out", "x"],
    ] {
        check(
            &home,
            args,
            3,
            &[("CARRY_PASSPHRASE", "not the passphrase")],
        );
    }
    // No profile at all.
    let empty = d.path().join("nothing-here");
    for args in [&["stats"][..], &["timeline"], &["audit"]] {
        check(&empty, args, 2, &[]);
    }
    assert!(record(&home) == before, "nothing changed");
    assert_eq!(json(&home, &["audit", "--verify", "--json"])["ok"], true);
}

/// A copy of `home`'s profile in `dir/name`, with its vault file changed by `damage`.
fn damaged_copy(
    home: &Path,
    dir: &Path,
    name: &str,
    damage: impl Fn(&mut Vec<u8>),
) -> std::path::PathBuf {
    let copy = dir.join(name);
    std::fs::create_dir(&copy).unwrap();
    for f in ["vault.db", "vault.key"] {
        std::fs::copy(home.join(f), copy.join(f)).unwrap();
    }
    let mut bytes = std::fs::read(copy.join("vault.db")).unwrap();
    damage(&mut bytes);
    std::fs::write(copy.join("vault.db"), &bytes).unwrap();
    copy
}

#[test]
fn a_damaged_vault_is_reported_damaged_and_kept() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("home");
    ok(&home, &["init", "--name", "Jene Cummings"]);
    ok(&home, &["import", shared(FILE).to_str().unwrap()]);
    let truncated = damaged_copy(&home, d.path(), "truncated", |b| b.truncate(b.len() / 2));
    let flipped = damaged_copy(&home, d.path(), "flipped", |b| {
        let middle = b.len() / 2;
        b[middle] ^= 0x10;
    });
    for copy in [&truncated, &flipped] {
        let before = std::fs::read(copy.join("vault.db")).unwrap();
        let mut reported = 0;
        for args in [
            &["check"][..],
            &["stats"],
            &["timeline"],
            &["search", "blood"],
            &["export"],
        ] {
            let out = run(copy, args);
            let err = String::from_utf8_lossy(&out.stderr);
            if out.status.success() {
                // A command that never reads the damaged page may well succeed.
                continue;
            }
            reported += 1;
            assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
            assert!(
                err.starts_with("error: the vault file ") && err.contains("is damaged"),
                "{args:?}: {err}"
            );
            assert!(err.contains("keep the file"), "{err}");
            assert!(!err.contains("storage error"), "{err}");
        }
        assert!(reported > 0, "{} was not reported", copy.display());
        let out = run(copy, &["check"]);
        assert_eq!(out.status.code(), Some(1), "check finds it");
        assert_eq!(
            std::fs::read(copy.join("vault.db")).unwrap(),
            before,
            "the damaged file is kept as it was"
        );
    }
    ok(&home, &["check"]);
}

#[test]
fn a_file_that_is_not_utf8_is_refused_with_its_offset_and_nothing_stays() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("home");
    ok(&home, &["init", "--name", "Jene Cummings"]);
    let mut text = br#"{"resourceType":"Patient","id":"p1","name":[{"family":"Smith"}]}"#.to_vec();
    let at = text.iter().position(|&b| b == b'S').unwrap();
    text[at] = 0xff;
    for (name, body) in [
        ("latin1.json", text.clone()),
        (
            "latin1.ndjson",
            [text.clone(), b"\n".to_vec(), text.clone()].concat(),
        ),
    ] {
        let file = d.path().join(name);
        std::fs::write(&file, &body).unwrap();
        let out = run(&home, &["import", file.to_str().unwrap(), "--json"]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(s["rejected"][0]["entry"], "file", "{s}");
        let reason = s["rejected"][0]["reason"].as_str().unwrap();
        assert!(
            reason.contains("not UTF-8") && reason.contains(&format!("offset {at}")),
            "{name}: {reason}"
        );
        let out = run(&home, &["import", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("offset {at}")), "{err}");
    }
    let stats = json(&home, &["stats", "--json"]);
    assert_eq!(
        (&stats["resources"], &stats["sources"]),
        (&0.into(), &0.into()),
        "{stats}"
    );
}

#[test]
fn a_file_whose_only_resource_is_rejected_adds_no_source() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("home");
    ok(&home, &["init", "--name", "Jene Cummings"]);
    let single = d.path().join("single.json");
    std::fs::write(
        &single,
        br#"{"resourceType":"Observation","id":"not an id!","status":"final"}"#,
    )
    .unwrap();
    let bundle = d.path().join("bundle.json");
    std::fs::write(
        &bundle,
        br#"{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Nothing"}}]}"#,
    )
    .unwrap();
    for file in [&single, &bundle] {
        let out = run(&home, &["import", file.to_str().unwrap(), "--json"]);
        assert_eq!(out.status.code(), Some(2));
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(s["imported"], 0);
        assert_eq!(s["rejected"].as_array().unwrap().len(), 1, "{s}");
    }
    let stats = json(&home, &["stats", "--json"]);
    assert_eq!(stats["resources"], 0);
    assert_eq!(stats["sources"], 0, "no source was added: {stats}");
    let stats = ok(&home, &["stats"]);
    assert!(stats.contains("from 0 sources"), "{stats}");
    assert!(
        json(&home, &["timeline", "--source", "single.json", "--json"])["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_wrong_recovery_code_says_the_code_is_wrong() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("home");
    ok(&home, &["init", "--name", "Jene Cummings"]);
    let other = d.path().join("other");
    ok(&other, &["init", "--name", "Someone Else"]);
    let file = d.path().join("b.carry");
    ok(&home, &["backup", "--out", file.to_str().unwrap()]);
    let code = json(&other, &["recovery", "show", "--json"])["code"]
        .as_str()
        .unwrap()
        .to_string();
    let target = d.path().join("new-phone");
    let out = run(
        &target,
        &["restore", "--file", file.to_str().unwrap(), "--code", &code],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("recovery code is wrong"), "{err}");
    assert!(!err.contains("passphrase"), "{err}");
    assert!(!target.join("vault.db").exists());
}
