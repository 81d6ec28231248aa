//! Moving to a new phone: `carry move-out` on the old phone and `carry move-in` on
//! the new one, each a separate process talking through the endpoint's relay.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Stdio};

use common::*;

const FILE: &str =
    "fixtures/fhir/synthea/sotf-Jene_Cummings_8a2bb726-2f79-4940-a134-a374eef39af7.json";

/// Read the child's stdout until a line satisfies `want`; return that line.
fn line_where(out: &mut BufReader<ChildStdout>, want: impl Fn(&str) -> bool) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        let n = out.read_line(&mut line).unwrap();
        assert!(n > 0, "the process ended before the line came");
        if want(line.trim()) {
            return line.trim().to_string();
        }
    }
}

/// Start `carry move-out` and `carry move-in`, and read the code and the digits.
fn pair(old: &Path, new: &Path, out_args: &[&str]) -> (Child, Child, String) {
    let mut args = vec!["move-out", "--wait", "60"];
    args.extend_from_slice(out_args);
    pair_with(old, new, &args, &["move-in"])
}

/// Start the old device's command `old_args` and the new one's `new_args` (which
/// takes the code next), and read the code and the digits.
fn pair_with(
    old: &Path,
    new: &Path,
    old_args: &[&str],
    new_args: &[&str],
) -> (Child, Child, String) {
    let args = old_args;
    let mut mover = carry(old, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(mover.stdout.take().unwrap());
    let code = line_where(&mut out, |l| l.starts_with("carry:pair:"));
    // Keep draining the old phone's output in the background.
    std::thread::spawn(move || for _ in out.lines() {});
    let mut targs = new_args.to_vec();
    targs.extend_from_slice(&[code.as_str(), "--wait", "60"]);
    let mut taker = carry(new, &targs)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut tout = BufReader::new(taker.stdout.take().unwrap());
    let digits = line_where(&mut tout, |l| l.starts_with("Type these digits"))
        .rsplit(": ")
        .next()
        .unwrap()
        .to_string();
    std::thread::spawn(move || for _ in tout.lines() {});
    (mover, taker, digits)
}

/// A patient's phone with a record and an endpoint, and a carer who holds a viewer
/// grant to her vital signs (delivered).
struct World {
    phone: PathBuf,
    carer: PathBuf,
    /// The patient, as the carer knows her.
    patient_id: String,
    /// The carer, as the patient knows him.
    carer_id: String,
    grant: String,
}

fn patient_with_carer(dir: &Path, phone_name: &str, base: &str) -> World {
    let phone = dir.join(phone_name);
    ok(&phone, &["init", "--name", "Jene Cummings"]);
    ok(&phone, &["import", shared(FILE).to_str().unwrap()]);
    ok(&phone, &["endpoint", "set", base]);
    let carer = dir.join("carer");
    ok(&carer, &["init", "--name", "Sam Cummings"]);
    let invite = json(&phone, &["invite", "--json"])["code"]
        .as_str()
        .unwrap()
        .to_string();
    let patient_id = json(&carer, &["accept", &invite, "--adopt-endpoint", "--json"])["person"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&phone, &["sync"]);
    let carer_id = json(&phone, &["people", "--json"])[0]["person"]
        .as_str()
        .unwrap()
        .to_string();
    let grant = json(
        &phone,
        &[
            "grant",
            "--unverified",
            &carer_id,
            "--role",
            "viewer",
            "--categories",
            "vital-signs",
            "--json",
        ],
    )["grant"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&phone, &["sync"]);
    ok(&carer, &["sync"]);
    World {
        phone,
        carer,
        patient_id,
        carer_id,
        grant,
    }
}

#[test]
fn the_record_moves_only_to_the_phone_whose_digits_were_typed_and_grants_keep_working() {
    let d = tempfile::tempdir().unwrap();
    let ep = serve(
        &format!("sqlite://{}", d.path().join("ep.db").display()),
        &[],
    );
    let World {
        phone: old,
        carer,
        patient_id,
        ..
    } = patient_with_carer(d.path(), "old-phone", &ep.base);
    let identity = json(&old, &["id", "--json"])["keys"].clone();
    let people = json(&old, &["people", "--json"]);
    let stats = json(&old, &["stats", "--json"])["resources"].clone();

    // Wrong digits: nothing is sent, both sides stop, the new phone has nothing.
    let new = d.path().join("new-phone");
    let (mut mover, mut taker, digits) = pair(&old, &new, &["--keep"]);
    let wrong = if digits == "000 000" {
        "111 111"
    } else {
        "000 000"
    };
    writeln!(mover.stdin.take().unwrap(), "{wrong}").unwrap();
    assert_eq!(mover.wait().unwrap().code(), Some(4), "refused");
    assert_ne!(taker.wait().unwrap().code(), Some(0));
    assert!(!new.join("vault.db").exists());
    assert!(old.join("vault.db").exists());

    // The right digits: the record moves, and the old phone wipes itself.
    let (mut mover, mut taker, digits) = pair(&old, &new, &["--wipe"]);
    writeln!(mover.stdin.take().unwrap(), "{digits}").unwrap();
    assert_eq!(taker.wait().unwrap().code(), Some(0), "moved in");
    assert_eq!(mover.wait().unwrap().code(), Some(0), "moved out");
    assert!(!old.exists(), "the old phone's copy is wiped");
    assert_eq!(json(&new, &["id", "--json"])["keys"], identity);
    assert_eq!(json(&new, &["people", "--json"]), people);
    assert_eq!(json(&new, &["stats", "--json"])["resources"], stats);
    assert_eq!(json(&new, &["audit", "--verify", "--json"])["ok"], true);
    let audit = ok(&new, &["audit"]);
    assert!(
        audit.contains("moved-out") && audit.contains("moved-in"),
        "{audit}"
    );

    // The carer's grant keeps working from the new phone.
    ok(&new, &["add", "bp", "118/76"]);
    ok(&new, &["sync"]);
    ok(&carer, &["sync"]);
    let seen = json(
        &carer,
        &[
            "--profile",
            &patient_id,
            "timeline",
            "--category",
            "vital-signs",
            "--json",
        ],
    );
    assert!(
        seen["items"].to_string().contains("118"),
        "the carer sees the reading made on the new phone"
    );
}

/// The record as a set of resources, from `carry export`.
fn record(home: &Path) -> std::collections::BTreeSet<String> {
    let out = ok(home, &["export"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"].to_string())
        .collect()
}

/// Grants as both devices should agree on them.
fn grants(home: &Path) -> Vec<String> {
    let v = json(home, &["grants", "--json"]);
    let mut g: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            format!(
                "{} {} {} {} {}",
                g["grant"], g["role"], g["revision"], g["state"], g["scope"]
            )
        })
        .collect();
    g.sort();
    g
}

#[test]
fn a_phone_and_a_tablet_changing_offline_converge_through_the_relay() {
    let d = tempfile::tempdir().unwrap();
    let ep = serve(
        &format!("sqlite://{}", d.path().join("ep.db").display()),
        &[],
    );
    let World {
        phone,
        carer,
        patient_id,
        carer_id,
        grant: g,
    } = patient_with_carer(d.path(), "phone", &ep.base);
    assert!(carer.join("shared").exists());
    assert_eq!(json(&phone, &["devices", "--json"]), serde_json::json!([]));

    // The tablet joins.
    let tablet = d.path().join("tablet");
    let (mut adder, mut joiner, digits) = pair_with(
        &phone,
        &tablet,
        &["devices", "add", "--wait", "60"],
        &["devices", "join", "--name", "tablet"],
    );
    writeln!(adder.stdin.take().unwrap(), "{digits}").unwrap();
    assert_eq!(joiner.wait().unwrap().code(), Some(0), "joined");
    assert_eq!(adder.wait().unwrap().code(), Some(0), "added");
    let listed = json(&tablet, &["devices", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(record(&tablet), record(&phone));

    // Offline on both: a reading each; the phone widens the grant, the tablet revokes it.
    ok(&phone, &["add", "weight", "70kg"]);
    ok(&tablet, &["add", "bp", "121/79"]);
    ok(
        &phone,
        &[
            "grant",
            "--unverified",
            &carer_id,
            "--role",
            "viewer",
            "--categories",
            "vital-signs,medications",
        ],
    );
    ok(&tablet, &["revoke", &g]);
    for home in [&tablet, &phone, &tablet, &phone] {
        ok(home, &["sync"]);
    }
    assert_eq!(record(&tablet), record(&phone));
    assert!(record(&phone).iter().any(|r| r.contains("121")));
    let gp = grants(&phone);
    assert_eq!(gp, grants(&tablet));
    assert!(gp[0].contains("\"revoked\""), "{gp:?}");
    for home in [&phone, &tablet] {
        assert_eq!(json(home, &["audit", "--verify", "--json"])["ok"], true);
    }
    // The primary told the carer: the copy is gone.
    ok(&carer, &["sync"]);
    let profiles = json(&carer, &["profiles", "--json"]);
    assert!(
        !profiles.to_string().contains(&patient_id),
        "the carer's copy is deleted: {profiles}"
    );

    // The phone removes the tablet: the tablet's changes no longer arrive.
    let tablet_id = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["this_device"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // A backup under the code both devices hold, before the removal.
    ok(&phone, &["backup"]);
    let old_code = json(&tablet, &["recovery", "show", "--json"])["code"]
        .as_str()
        .unwrap()
        .to_string();
    let removed = json(&phone, &["devices", "--remove", &tablet_id, "--json"]);
    let new_code = removed["code"].as_str().unwrap().to_string();
    assert_ne!(new_code, old_code, "the recovery code is replaced");
    let sync = json(&phone, &["sync", "--json"]);
    assert_eq!(sync["relay"]["keys_retired"], true, "{sync}");
    let before = record(&phone);
    ok(&tablet, &["add", "pulse", "61"]);
    ok(&tablet, &["sync"]);
    let sync = json(&phone, &["sync", "--json"]);
    assert!(
        sync["relay"]["devices"]["refused"].as_u64().unwrap() >= 1,
        "{sync}"
    );
    assert_eq!(record(&phone), before, "nothing from the removed tablet");

    // The carer takes the phone's new keys (vouched for by the old ones), and what the
    // phone adds still reaches him.
    ok(
        &phone,
        &[
            "grant",
            "--unverified",
            &carer_id,
            "--role",
            "viewer",
            "--categories",
            "vital-signs",
        ],
    );
    ok(&phone, &["sync"]);
    let sync = json(&carer, &["sync", "--json"]);
    assert_eq!(
        sync["relay"]["keys_changed"],
        serde_json::json!([patient_id]),
        "{sync}"
    );
    ok(&phone, &["add", "weight", "68.5kg"]);
    ok(&phone, &["sync"]);
    ok(&carer, &["sync"]);
    let seen = json(
        &carer,
        &[
            "--profile",
            &patient_id,
            "timeline",
            "--limit",
            "500",
            "--json",
        ],
    );
    assert!(seen.to_string().contains("68.5"), "{seen}");

    // The removed tablet holds the old keys and code, and they no longer work: as
    // the primary in its own eyes it cannot sign in to post or fetch, and its code
    // restores nothing made since (the backups under it are gone).
    let tablet_self = tablet_id.clone();
    ok(&tablet, &["devices", "primary", &tablet_self]);
    let out = run(&tablet, &["sync"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("removed it and replaced the profile's keys"),
        "{said}"
    );
    ok(&phone, &["backup"]);
    let elsewhere = d.path().join("with-the-old-code");
    let out = run(
        &elsewhere,
        &[
            "restore",
            "--from-endpoint",
            "--endpoint",
            &ep.base,
            "--code",
            &old_code,
        ],
    );
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    assert!(!elsewhere.join("vault.db").exists());
    let with_new = d.path().join("with-the-new-code");
    ok(
        &with_new,
        &[
            "restore",
            "--from-endpoint",
            "--endpoint",
            &ep.base,
            "--code",
            &new_code,
        ],
    );
    assert!(record(&with_new).iter().any(|r| r.contains("68.5")));
}

#[test]
fn a_keeper_hands_a_dependants_record_over_and_is_granted_access_back() {
    let d = tempfile::tempdir().unwrap();
    let ep = serve(
        &format!("sqlite://{}", d.path().join("ep.db").display()),
        &[],
    );
    let keeper = d.path().join("tom");
    ok(&keeper, &["init", "--name", "Tom Jene"]);
    ok(&keeper, &["endpoint", "set", &ep.base]);
    // His phone has met the relay (as any phone that has synced has).
    ok(&keeper, &["sync"]);
    let added = json(
        &keeper,
        &[
            "dependants",
            "add",
            "--name",
            "Mary Jene",
            "--born",
            "1941-03-02",
            "--basis",
            "lasting-power-of-attorney",
            "--evidence",
            "OPG 7000-1234",
            "--json",
        ],
    );
    let id = added["profile"].as_str().unwrap().to_string();
    assert!(id.starts_with("d-"), "{added}");
    // The keeper acts on her record as on his own.
    ok(
        &keeper,
        &["--profile", &id, "import", shared(FILE).to_str().unwrap()],
    );
    ok(&keeper, &["--profile", &id, "add", "bp", "131/84"]);
    let stats = json(&keeper, &["--profile", &id, "stats", "--json"])["resources"].clone();
    assert_eq!(json(&keeper, &["stats", "--json"])["resources"], 0);
    let profiles = ok(&keeper, &["profiles"]);
    assert!(profiles.contains("kept by you (active)"), "{profiles}");
    // Moving the keeper's phone is not the way to hand a record over.
    assert_eq!(
        carry(&keeper, &["--profile", &id, "move-out", "--keep"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );

    // She gets a phone: the record moves to it, and leaves the keeper's.
    let hers = d.path().join("mary");
    let (mut mover, mut taker, digits) = pair_with(
        &keeper,
        &hers,
        &["dependants", "hand-over", &id, "--wait", "60"],
        &["move-in"],
    );
    writeln!(mover.stdin.take().unwrap(), "{digits}").unwrap();
    assert_eq!(taker.wait().unwrap().code(), Some(0), "moved in");
    assert_eq!(mover.wait().unwrap().code(), Some(0), "handed over");
    assert_eq!(json(&hers, &["stats", "--json"])["resources"], stats);
    assert_eq!(json(&hers, &["info", "--json"])["name"], "Mary Jene");
    let audit = ok(&hers, &["audit"]);
    for event in ["keeper-recorded", "handed-over", "moved-in"] {
        assert!(audit.contains(event), "{event} in {audit}");
    }
    assert_eq!(json(&hers, &["audit", "--verify", "--json"])["ok"], true);
    assert_eq!(
        json(&keeper, &["dependants", "--json"])["dependants"],
        serde_json::json!([])
    );
    assert!(ok(&keeper, &["audit"]).contains("handed-over"));

    // She knows him already, verified: she grants him her vital signs back.
    let people = json(&hers, &["people", "--json"]);
    assert_eq!(people[0]["name"], "Tom Jene");
    assert_eq!(people[0]["verified"], true);
    ok(
        &hers,
        &[
            "grant",
            "Tom Jene",
            "--role",
            "viewer",
            "--categories",
            "vital-signs",
        ],
    );
    ok(&hers, &["sync"]);
    ok(&keeper, &["sync"]);
    let seen = json(
        &keeper,
        &[
            "--profile",
            "Mary Jene",
            "timeline",
            "--category",
            "vital-signs",
            "--json",
        ],
    );
    assert!(seen["items"].to_string().contains("131"), "{seen}");
}
