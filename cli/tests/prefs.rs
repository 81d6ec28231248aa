//! `carry prefs`: the person's preferences, their FHIR Consents, and their effect on
//! grants and the emergency card.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use common::*;

const NHS_PATIENT: &str = "fixtures/fhir/uk-core/UKCore-Patient-RichardSmith-Example.json";
const ALLERGY: &str = "fixtures/fhir/uk-core/UKCore-AllergyIntolerance-Amoxicillin-Example.json";
const SYNTHEA: &str =
    "fixtures/fhir/synthea/sotf-Jene_Cummings_8a2bb726-2f79-4940-a134-a374eef39af7.json";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn stdout(home: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = run(home, args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn preferences_are_set_shown_and_exported_as_consents() {
    let (_d, home) = new_home();
    let defaults = json(&home, &["prefs", "--json"]);
    assert_eq!(defaults["default_grant_days"], 90);
    assert_eq!(defaults["lock_timeout_s"], 300);
    assert_eq!(defaults["national_opt_out"], Value::Null);
    assert_eq!(defaults["emergency_card"]["vital_signs"], true);
    assert_eq!(json(&home, &["prefs", "--consent"]), serde_json::json!([]));

    // Setting an opt-out on says plainly that the NHS is not told.
    let (code, text, _) = stdout(
        &home,
        &[
            "prefs",
            "--national-opt-out",
            "on",
            "--type1-opt-out",
            "on",
            "--grant-days",
            "30",
            "--lock-timeout",
            "0",
            "--emergency-card",
            "allergies,medications,contacts",
        ],
    );
    assert_eq!(code, Some(0));
    assert!(
        text.contains("does not register it with the NHS")
            && text.contains("https://www.nhs.uk/your-nhs-data-matters/")
            && text.contains("ask your GP practice"),
        "{text}"
    );
    let p = json(&home, &["prefs", "--json"]);
    assert_eq!(p["national_opt_out"]["opted_out"], true);
    assert_eq!(p["type1_opt_out"]["opted_out"], true);
    let at = p["national_opt_out"]["recorded_at"].as_i64().unwrap();
    assert!((now() - at).abs() < 120);
    assert_eq!(p["default_grant_days"], 30);
    assert_eq!(p["lock_timeout_s"], 0);
    assert_eq!(
        p["emergency_card"],
        serde_json::json!({"allergies": true, "medications": true, "problems": false,
            "vital_signs": false, "results": false, "contacts": true})
    );
    let shown = ok(&home, &["prefs"]);
    assert!(
        shown.contains("30 days") && shown.contains("opted out"),
        "{shown}"
    );

    // One Consent per opt-out that is on: scope research, a deny provision.
    let consents = json(&home, &["prefs", "--consent"]);
    let all = consents.as_array().unwrap();
    assert_eq!(all.len(), 2);
    for c in all {
        assert_eq!(c["resourceType"], "Consent");
        assert_eq!(c["status"], "active");
        assert_eq!(
            c["scope"]["coding"][0]["system"],
            "http://terminology.hl7.org/CodeSystem/consentscope"
        );
        assert_eq!(c["scope"]["coding"][0]["code"], "research");
        assert_eq!(c["provision"]["type"], "deny");
        let purposes: Vec<&str> = c["provision"]["purpose"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["code"].as_str().unwrap())
            .collect();
        assert_eq!(purposes, ["HRESCH", "HOPERAT"]);
        assert_eq!(c["patient"]["display"], "Test Person");
    }
    assert_eq!(
        all[0]["policy"][0]["uri"],
        "https://www.nhs.uk/your-nhs-data-matters/"
    );

    // Turned off: kept with its date, and no longer a Consent.
    let (code, text, _) = stdout(&home, &["prefs", "--type1-opt-out", "off"]);
    assert_eq!(code, Some(0));
    assert!(!text.contains("does not register"), "{text}");
    let p = json(&home, &["prefs", "--json"]);
    assert_eq!(p["type1_opt_out"]["opted_out"], false);
    assert_eq!(
        json(&home, &["prefs", "--consent"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The audit log names the keys that changed, never their values.
    let audit = json(&home, &["audit", "--json"]);
    let changes: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "preferences-changed")
        .collect();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0]["detail"], "changed type1_opt_out");

    // With the person's Patient in the record, the Consent points at it.
    ok(&home, &["import", shared(NHS_PATIENT).to_str().unwrap()]);
    let c = json(&home, &["prefs", "--consent"]);
    assert_eq!(
        c[0]["patient"]["reference"],
        "Patient/UKCore-Patient-RichardSmith-Example"
    );
}

#[test]
fn bad_values_exit_2_and_change_nothing() {
    let (_d, home) = new_home();
    for args in [
        &["prefs", "--grant-days", "0"][..],
        &["prefs", "--grant-days", "1099"],
        &["prefs", "--grant-days", "many"],
        &["prefs", "--lock-timeout", "3601"],
        &["prefs", "--national-opt-out", "maybe"],
        &["prefs", "--type1-opt-out", "yes"],
        &["prefs", "--emergency-card", "allergies,blood-group"],
        &["prefs", "--grant-days", "0", "--national-opt-out", "on"],
    ] {
        let (code, _, err) = stdout(&home, args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(!err.trim().is_empty(), "{args:?}: a message");
    }
    let (_, _, err) = stdout(&home, &["prefs", "--lock-timeout", "3601"]);
    assert!(err.contains("0 to 3600 seconds"), "{err}");
    let p = json(&home, &["prefs", "--json"]);
    assert_eq!(p["national_opt_out"], Value::Null);
    assert_eq!(p["default_grant_days"], 90);
    // The bounds themselves are fine.
    let p = json(
        &home,
        &[
            "prefs",
            "--grant-days",
            "1098",
            "--lock-timeout",
            "3600",
            "--json",
        ],
    );
    assert_eq!(p["default_grant_days"], 1098);
    // The spelling of the national opt-out works too.
    let p = json(&home, &["prefs", "--research-opt-out", "on", "--json"]);
    assert_eq!(p["national_opt_out"]["opted_out"], true);
}

#[test]
fn grants_take_the_default_length_and_the_emergency_card_its_contents() {
    let d = tempfile::tempdir().unwrap();
    let ep = serve(
        &format!("sqlite://{}", d.path().join("ep.db").display()),
        &[],
    );
    let patient = d.path().join("patient");
    let carer = d.path().join("carer");
    ok(&patient, &["init", "--name", "Jene Cummings"]);
    ok(&carer, &["init", "--name", "Sam Carer"]);
    ok(
        &patient,
        &[
            "import",
            shared(SYNTHEA).to_str().unwrap(),
            shared(ALLERGY).to_str().unwrap(),
        ],
    );
    ok(&patient, &["endpoint", "set", &ep.base]);
    let code = json(&patient, &["invite", "--json"])["code"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&carer, &["accept", &code, "--adopt-endpoint"]);
    ok(&patient, &["sync"]);
    let carer_id = json(&patient, &["people", "--json"])[0]["person"]
        .as_str()
        .unwrap()
        .to_string();

    // A grant with no --expires lasts the person's default length.
    ok(&patient, &["prefs", "--grant-days", "14"]);
    let g = json(
        &patient,
        &[
            "grant",
            "--unverified",
            &carer_id,
            "--categories",
            "medications",
            "--json",
        ],
    );
    let days = (g["expires_at"].as_i64().unwrap() - now() + 60) / 86_400;
    assert_eq!(days, 14, "{g}");
    let listed = json(&patient, &["grants", "--json"]);
    assert_eq!(listed[0]["expires_at"], g["expires_at"]);

    // The emergency card follows the chosen contents: a required section left out
    // stays, empty and withheld; vital signs left out are gone.
    let full = json(&patient, &["emergency-card", "--json"]);
    let codes = |card: &Value| -> Vec<String> {
        card["summary"]["sections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["code"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(codes(&full).contains(&"8716-3".to_string()), "{full}");
    ok(&patient, &["prefs", "--emergency-card", "allergies"]);
    let card = json(&patient, &["emergency-card", "--json"]);
    assert_eq!(card["id"], full["id"], "the same link, refreshed");
    assert_eq!(codes(&card), ["48765-2", "10160-0", "11450-4"]);
    let sections = card["summary"]["sections"].as_array().unwrap();
    assert_eq!(sections[0]["withheld"], false);
    assert!(!sections[0]["lines"].as_array().unwrap().is_empty());
    for s in &sections[1..] {
        assert_eq!(s["withheld"], true, "{s}");
        assert!(s["lines"].as_array().unwrap().is_empty());
    }
    // What a clinician fetches through the link is the refreshed summary.
    let opened = json(
        &d.path().join("clinician"),
        &[
            "open",
            card["link"].as_str().unwrap(),
            "--recipient",
            "Dr Test",
            "--json",
        ],
    );
    let comp = &opened["bundle"]["entry"][0]["resource"];
    let meds = comp["section"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["code"]["coding"][0]["code"] == "10160-0")
        .unwrap();
    assert_eq!(meds["emptyReason"]["coding"][0]["code"], "withheld");
    assert!(meds.get("entry").is_none());
    let text = ok(&patient, &["emergency-card"]);
    assert!(text.contains("left out by the patient"), "{text}");
}
