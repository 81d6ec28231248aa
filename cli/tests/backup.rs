//! Backup and restore through the CLI: a round trip, a wrong code, and processes
//! killed mid-way.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;

const FILE: &str =
    "fixtures/fhir/synthea/sotf-Jene_Cummings_8a2bb726-2f79-4940-a134-a374eef39af7.json";

fn record(home: &Path) -> (u64, String) {
    let stats = json(home, &["stats", "--json"]);
    let page = json(home, &["timeline", "--limit", "500", "--json"]);
    (
        stats["resources"].as_u64().unwrap(),
        page["items"].to_string(),
    )
}

#[test]
fn a_backup_restores_whole_with_its_code_and_not_at_all_without() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("phone");
    ok(&home, &["init", "--name", "Jene Cummings"]);
    ok(&home, &["import", shared(FILE).to_str().unwrap()]);
    ok(&home, &["add", "bp", "120/80", "--note", "calm"]);
    let code = json(&home, &["recovery", "show", "--json"])["code"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(code.split('-').count(), 14);
    // The printable QR holds the same code.
    let png = d.path().join("code.png");
    let svg = d.path().join("code.svg");
    ok(&home, &["recovery", "show", "--qr", png.to_str().unwrap()]);
    ok(&home, &["recovery", "show", "--qr", svg.to_str().unwrap()]);
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&png).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the code's QR is readable by its owner only"
        );
    }
    let file = d.path().join("jene.carry");
    let b = json(
        &home,
        &["backup", "--out", file.to_str().unwrap(), "--json"],
    );
    assert!(b["resources"].as_u64().unwrap() > 500);

    // A wrong code exits 3 and leaves no profile.
    let new_home = d.path().join("new-phone");
    let wrong = "0000-0000-0000-0000-0000-0000-0000-0000-0000-0000-0000-0000-0000-0000";
    let out = run(
        &new_home,
        &["restore", "--file", file.to_str().unwrap(), "--code", wrong],
    );
    assert_ne!(out.status.code(), Some(0));
    let mut typo: Vec<char> = code.chars().collect();
    typo[2] = if typo[2] == '7' { '8' } else { '7' };
    let typo: String = typo.into_iter().collect();
    let out = run(
        &new_home,
        &["restore", "--file", file.to_str().unwrap(), "--code", &typo],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "a typo is caught by the checksum"
    );
    let other = json(&d.path().join("other"), &["init", "--name", "x", "--json"]);
    let _ = other;
    let other_code = json(&d.path().join("other"), &["recovery", "show", "--json"])["code"]
        .as_str()
        .unwrap()
        .to_string();
    let out = run(
        &new_home,
        &[
            "restore",
            "--file",
            file.to_str().unwrap(),
            "--code",
            &other_code,
        ],
    );
    assert_eq!(out.status.code(), Some(3), "a wrong code is a wrong key");
    assert!(!new_home.join("vault.db").exists());

    let r = json(
        &new_home,
        &[
            "restore",
            "--file",
            file.to_str().unwrap(),
            "--code",
            &code,
            "--json",
        ],
    );
    assert_eq!(r["name"], "Jene Cummings");
    // The whole backup and the increment on it: the record as it is now.
    assert_eq!(record(&new_home), record(&home));
    assert_eq!(
        json(&new_home, &["audit", "--verify", "--json"])["ok"],
        true
    );
    assert_eq!(
        json(&new_home, &["id", "--json"])["keys"],
        json(&home, &["id", "--json"])["keys"]
    );
    ok(&new_home, &["check"]);
}

#[test]
fn killed_backups_and_restores_leave_the_source_intact_and_the_target_absent_or_whole() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("phone");
    ok(&home, &["init", "--name", "Jene Cummings"]);
    ok(&home, &["import", shared(FILE).to_str().unwrap()]);
    let code = json(&home, &["recovery", "show", "--json"])["code"]
        .as_str()
        .unwrap()
        .to_string();
    let want = record(&home);
    let good = d.path().join("good.carry");
    ok(&home, &["backup", "--out", good.to_str().unwrap()]);
    for (i, ms) in [5u64, 40, 120, 300, 600].iter().enumerate() {
        // Backup, killed.
        let file = d.path().join(format!("b{i}.carry"));
        let mut child = carry(&home, &["backup", "--out", file.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(*ms));
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(
            record(&home),
            want,
            "the source is intact after a kill at {ms} ms"
        );
        if file.exists() {
            let t = d.path().join(format!("from-b{i}"));
            ok(
                &t,
                &["restore", "--file", file.to_str().unwrap(), "--code", &code],
            );
            assert_eq!(record(&t), want);
        }
        // Restore, killed.
        let target = d.path().join(format!("r{i}"));
        let mut child = carry(
            &target,
            &["restore", "--file", good.to_str().unwrap(), "--code", &code],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        std::thread::sleep(Duration::from_millis(*ms));
        let _ = child.kill();
        let _ = child.wait();
        if target.join("vault.db").exists() {
            assert_eq!(
                record(&target),
                want,
                "a restore killed at {ms} ms left a whole profile"
            );
        } else {
            // Absent; and a new attempt succeeds.
            ok(
                &target,
                &["restore", "--file", good.to_str().unwrap(), "--code", &code],
            );
            assert_eq!(record(&target), want);
        }
    }
}

#[test]
fn the_recovery_code_alone_restores_from_the_endpoint() {
    let d = tempfile::tempdir().unwrap();
    let ep = serve(
        &format!("sqlite://{}", d.path().join("ep.db").display()),
        &[],
    );
    let home = d.path().join("phone");
    ok(&home, &["init", "--name", "Jene Cummings"]);
    ok(&home, &["import", shared(FILE).to_str().unwrap()]);
    ok(&home, &["endpoint", "set", &ep.base]);
    let code = json(&home, &["recovery", "show", "--json"])["code"]
        .as_str()
        .unwrap()
        .to_string();
    let b = json(&home, &["backup", "--json"]);
    assert_eq!(b["kind"], "full");
    let full_bytes = b["bytes"].as_u64().unwrap();
    assert!(full_bytes > 100_000);
    // Later backups carry only what changed, until a whole one is asked for.
    ok(&home, &["add", "bp", "121/79"]);
    let inc = json(&home, &["backup", "--json"]);
    assert_eq!(
        (&inc["kind"], &inc["resources"]),
        (&"incremental".into(), &1.into())
    );
    assert!(inc["bytes"].as_u64().unwrap() * 20 < full_bytes);
    ok(&home, &["add", "weight", "70kg"]);
    assert_eq!(json(&home, &["backup", "--json"])["kind"], "incremental");
    assert_eq!(json(&home, &["backup", "--full", "--json"])["kind"], "full");
    ok(&home, &["add", "pulse", "64"]);
    assert_eq!(json(&home, &["backup", "--json"])["kind"], "incremental");
    // Nothing of the record is readable at the endpoint.
    let mut endpoint_bytes = Vec::new();
    for e in std::fs::read_dir(d.path()).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("ep.db")
        {
            endpoint_bytes.extend(std::fs::read(&p).unwrap());
        }
    }
    for word in ["Cummings", "Diazepam", "resourceType"] {
        assert!(
            !endpoint_bytes
                .windows(word.len())
                .any(|w| w == word.as_bytes()),
            "{word}"
        );
    }

    // Another code finds nothing, and leaves nothing.
    let other_home = d.path().join("other");
    ok(&other_home, &["init", "--name", "Someone Else"]);
    let other = json(&other_home, &["recovery", "show", "--json"]);
    let new_home = d.path().join("new-phone");
    let out = run(
        &new_home,
        &[
            "restore",
            "--from-endpoint",
            "--endpoint",
            &ep.base,
            "--code",
            other["code"].as_str().unwrap_or(""),
        ],
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(!new_home.join("vault.db").exists());

    let r = json(
        &new_home,
        &[
            "restore",
            "--from-endpoint",
            "--endpoint",
            &ep.base,
            "--code",
            &code,
            "--json",
        ],
    );
    assert_eq!(r["name"], "Jene Cummings");
    // The whole backup and the increment on it: the record as it is now.
    assert_eq!(record(&new_home), record(&home));
    assert_eq!(
        json(&new_home, &["audit", "--verify", "--json"])["ok"],
        true
    );

    // The new phone's own restore is no news to it ...
    ok(&new_home, &["endpoint", "set", &ep.base]);
    let b = json(&new_home, &["backup", "--json"]);
    assert_eq!(
        (&b["restores_elsewhere"], &b["last_restored_at"]),
        (&0.into(), &serde_json::Value::Null)
    );
    // ... but the old phone hears of it at its next backup, once, in the audit log too.
    let out = ok(&home, &["backup"]);
    assert!(
        out.contains("was restored with your recovery code 1 time (last at 20"),
        "{out}"
    );
    assert!(out.contains("carry recovery regenerate"), "{out}");
    let restored_elsewhere = |home: &Path| {
        json(home, &["audit", "--json"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == "restored-elsewhere")
            .count()
    };
    assert_eq!(restored_elsewhere(&home), 1);
    assert_eq!(restored_elsewhere(&new_home), 0);
    assert_eq!(json(&home, &["backup", "--json"])["restores_elsewhere"], 0);

    // A new code: the next backup replaces the old code's copies at the endpoint.
    ok(&home, &["recovery", "regenerate"]);
    ok(&home, &["backup"]);
    let again = d.path().join("third-phone");
    let out = run(
        &again,
        &[
            "restore",
            "--from-endpoint",
            "--endpoint",
            &ep.base,
            "--code",
            &code,
        ],
    );
    assert_ne!(
        out.status.code(),
        Some(0),
        "the old code no longer finds a backup"
    );
}
