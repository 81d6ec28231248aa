//! The published GP Connect Access Record examples (FHIR STU3), converted to R4 entry
//! by entry; and Carry's R4 fixtures, which must not read as STU3.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly

use std::path::{Path, PathBuf};

use carry_stu3::{release_of, to_r4, Release, Stu3Error, CONVERTED_CODE, CONVERTED_SYSTEM};
use serde_json::{json, Value};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures/fhir");

const GP_CONNECT: [&str; 3] = [
    "gpconnect-allergies_response1.json",
    "gpconnect-meds_response.json",
    "gpconnect-consultations_forwards_response1.json",
];

/// Elements only STU3 has, by the R4 type their resource becomes (`context` only
/// where R4 renamed it).
const STU3_ONLY: &[(&str, &[&str])] = &[
    ("AllergyIntolerance", &["assertedDate"]),
    (
        "Condition",
        &["assertedDate", "context", "abatementBoolean"],
    ),
    ("MedicationStatement", &["taken", "reasonNotTaken"]),
    ("MedicationRequest", &["context"]),
    (
        "Immunization",
        &["notGiven", "date", "practitioner", "explanation"],
    ),
    ("Observation", &["context", "related", "comment"]),
    ("DiagnosticReport", &["context", "codedDiagnosis"]),
    ("Encounter", &["incomingReferral", "reason"]),
    (
        "ServiceRequest",
        &["context", "specialty", "recipient", "serviceRequested"],
    ),
];

fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn gp_connect(name: &str) -> Value {
    read(&Path::new(FIXTURES).join("gp-connect-stu3").join(name))
}

fn resources(bundle: &Value) -> Vec<&Value> {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .collect()
}

/// Every object below `value`, `value` included.
fn objects(value: &Value) -> Vec<&serde_json::Map<String, Value>> {
    let mut found = Vec::new();
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(m) => {
                found.push(m);
                stack.extend(m.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    found
}

fn extension_urls(resource: &Value) -> Vec<&str> {
    resource["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["url"].as_str())
        .collect()
}

/// Checks one converted resource against the rules every conversion keeps.
fn check_converted(input: &Value, output: &Value) {
    let name = format!("{}/{}", input["resourceType"], input["id"]);
    assert_eq!(output["id"], input["id"], "{name}: the id is kept");
    if let Some(version) = input["meta"].get("versionId") {
        assert_eq!(
            &output["meta"]["versionId"], version,
            "{name}: the version is kept"
        );
    }
    let tags = output["meta"]["tag"].as_array().unwrap();
    assert!(
        tags.iter()
            .any(|t| t["system"] == CONVERTED_SYSTEM && t["code"] == CONVERTED_CODE),
        "{name}: the converted tag"
    );
    for profile in output["meta"]["profile"].as_array().into_iter().flatten() {
        assert!(
            !profile.as_str().unwrap().contains("/STU3/"),
            "{name}: an STU3 profile is left"
        );
    }
    assert_eq!(
        release_of(output),
        Release::R4,
        "{name}: the output reads as R4: {output:#}"
    );

    let mut all = vec![output];
    all.extend(output["contained"].as_array().into_iter().flatten());
    for resource in all {
        let kind = resource["resourceType"].as_str().unwrap();
        for (t, elements) in STU3_ONLY {
            if *t == kind {
                for element in *elements {
                    assert!(
                        resource.get(*element).is_none(),
                        "{name}: STU3's {kind}.{element} is left"
                    );
                }
            }
        }
        if kind == "AllergyIntolerance" {
            assert!(
                resource["recordedDate"].is_string(),
                "{name}: an allergy without a recordedDate"
            );
        }
    }
    for object in objects(output) {
        if let Some(reference) = object.get("reference").and_then(Value::as_str) {
            assert!(
                !reference.contains("ProcedureRequest") && !reference.contains("ReferralRequest"),
                "{name}: a reference to a renamed type is left: {reference}"
            );
        }
    }
}

#[test]
fn every_entry_of_the_gp_connect_examples_converts_or_is_reported() {
    let mut converted = 0;
    let mut unsupported = 0;
    for file in GP_CONNECT {
        let bundle = gp_connect(file);
        for input in resources(&bundle) {
            let before = input.clone();
            let result = to_r4(input);
            assert_eq!(input, &before, "{file}: the input is not changed");
            match input["resourceType"].as_str().unwrap() {
                "OperationOutcome" => {
                    assert_eq!(
                        result.unwrap_err(),
                        Stu3Error::Unsupported {
                            resource_type: "OperationOutcome".into()
                        }
                    );
                    unsupported += 1;
                }
                kind => {
                    let out = result.unwrap_or_else(|e| panic!("{file}: {kind}: {e}"));
                    check_converted(input, &out.resource);
                    converted += 1;
                }
            }
        }
    }
    assert_eq!((converted, unsupported), (42, 1));
}

#[test]
fn gp_connect_allergies_are_dated_and_their_statuses_are_concepts() {
    let bundle = gp_connect("gpconnect-allergies_response1.json");
    let mut allergies = 0;
    for input in resources(&bundle) {
        let out = to_r4(input).unwrap().resource;
        let mut found: Vec<(&Value, &Value)> = vec![(input, &out)];
        let contained_in = input["contained"].as_array().into_iter().flatten();
        found.extend(contained_in.zip(out["contained"].as_array().into_iter().flatten()));
        for (before, after) in found {
            if after["resourceType"] != "AllergyIntolerance" {
                continue;
            }
            allergies += 1;
            // The original bug: STU3's assertedDate is the only date these allergies have.
            assert_eq!(after["recordedDate"], before["assertedDate"]);
            assert_eq!(
                after["verificationStatus"]["coding"][0],
                json!({"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                       "code": before["verificationStatus"], "display": "Unconfirmed"})
            );
            assert_eq!(
                after["clinicalStatus"]["coding"][0]["system"],
                "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
            );
            assert_eq!(
                after["clinicalStatus"]["coding"][0]["code"],
                before["clinicalStatus"]
            );
        }
    }
    assert_eq!(
        allergies, 4,
        "three allergies and one resolved one, contained in its List"
    );
}

#[test]
fn the_resolved_allergy_keeps_its_end_under_uk_core() {
    let bundle = gp_connect("gpconnect-allergies_response1.json");
    let list = resources(&bundle)
        .into_iter()
        .find(|r| r["title"] == "Resolved Allergies")
        .unwrap();
    let out = to_r4(list).unwrap();
    let allergy = &out.resource["contained"][0];
    assert_eq!(allergy["id"], "Resolved-1");
    assert_eq!(out.resource["entry"][0]["item"]["reference"], "#Resolved-1");
    let end = &allergy["extension"][0];
    assert_eq!(
        end["url"],
        "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-AllergyIntoleranceEnd"
    );
    assert_eq!(
        end["extension"][0],
        json!({"url": "endDate", "valueDateTime": "2018-03-01"})
    );
    assert_eq!(end["extension"][1]["url"], "reasonEnded");
    assert_eq!(allergy["clinicalStatus"]["coding"][0]["code"], "resolved");
}

#[test]
fn care_connect_and_gp_connect_extensions_survive() {
    // Moved to an R4 element or address: the rest must be there as they were.
    let moved = [
        "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-AllergyIntoleranceEnd-1",
        "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-PrescriptionType-1",
    ];
    let mut seen = 0;
    for file in GP_CONNECT {
        let bundle = gp_connect(file);
        for input in resources(&bundle) {
            let Ok(out) = to_r4(input) else { continue };
            for url in extension_urls(input) {
                seen += 1;
                if moved.contains(&url) {
                    continue;
                }
                let before = input["extension"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["url"] == url);
                let after = out.resource["extension"]
                    .as_array()
                    .and_then(|a| a.iter().find(|e| e["url"] == url));
                assert_eq!(
                    after, before,
                    "{file}: {}: extension {url}",
                    input["resourceType"]
                );
            }
        }
    }
    assert!(seen >= 20, "{seen}");

    let meds = gp_connect("gpconnect-meds_response.json");
    let all = resources(&meds);
    let patient = to_r4(all[0]).unwrap().resource;
    assert_eq!(
        patient["identifier"][0]["extension"][0]["url"],
        "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-NHSNumberVerificationStatus-1"
    );
    assert_eq!(
        patient["generalPractitioner"],
        json!([{"reference": "Practitioner/6c41ebfd-57c3-4162-9d7b-208c171a2fd7"}])
    );

    let repeat = all
        .iter()
        .find(|r| r["id"] == "8e078d04-8312-433a-b6b4-46bf52542b0c")
        .unwrap();
    let out = to_r4(repeat).unwrap().resource;
    assert_eq!(
        out["extension"][0]["url"],
        "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-MedicationRepeatInformation-1"
    );
    assert_eq!(out["courseOfTherapyType"]["coding"][0]["code"], "repeat");
    assert_eq!(
        out["dispenseRequest"]["expectedSupplyDuration"]["code"],
        "d"
    );
    assert_eq!(out["dispenseRequest"]["quantity"]["value"], 84);
}

#[test]
fn gp_connect_medication_statements_note_taken() {
    let meds = gp_connect("gpconnect-meds_response.json");
    for input in resources(&meds) {
        if input["resourceType"] != "MedicationStatement" {
            continue;
        }
        let out = to_r4(input).unwrap();
        assert_eq!(
            out.resource["status"], input["status"],
            "the status is kept beside taken 'unk'"
        );
        assert_eq!(out.resource["basedOn"].as_array().unwrap().len(), 1);
        assert_eq!(out.notes.len(), 1, "{:?}", out.notes);
        assert!(
            out.notes[0].starts_with("MedicationStatement.taken: 'unk'"),
            "{:?}",
            out.notes
        );
    }
}

#[test]
fn requests_become_service_requests_and_references_follow() {
    let referral = json!({"resourceType": "ReferralRequest", "id": "rr1", "status": "cancelled", "intent": "order",
        "subject": {"reference": "Patient/p1"}, "recipient": [{"reference": "Organization/o1"}],
        "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-ReferralRequest-1"]}});
    let specimen = json!({"resourceType": "Specimen", "id": "s1",
        "request": [{"reference": "ProcedureRequest/pq1"}]});
    let encounter = json!({"resourceType": "Encounter", "id": "e1", "status": "finished",
        "incomingReferral": [{"reference": "ReferralRequest/rr1"}]});
    let list = json!({"resourceType": "List", "id": "l1", "status": "current", "mode": "snapshot",
        "entry": [{"item": {"reference": "https://example.org/fhir/ReferralRequest/rr1/_history/2"}}]});
    let out = to_r4(&referral).unwrap().resource;
    assert_eq!(
        (out["resourceType"].as_str(), out["id"].as_str()),
        (Some("ServiceRequest"), Some("rr1"))
    );
    assert_eq!(out["status"], "revoked");
    assert_eq!(out["performer"], json!([{"reference": "Organization/o1"}]));
    check_converted(&referral, &out);
    for (input, path) in [
        (&specimen, "/request/0/reference"),
        (&encounter, "/basedOn/0/reference"),
    ] {
        let out = to_r4(input).unwrap().resource;
        check_converted(input, &out);
        assert!(out
            .pointer(path)
            .unwrap()
            .as_str()
            .unwrap()
            .starts_with("ServiceRequest/"));
    }
    let out = to_r4(&list).unwrap().resource;
    assert_eq!(
        out["entry"][0]["item"]["reference"],
        "https://example.org/fhir/ServiceRequest/rr1/_history/2"
    );
}

#[test]
fn the_gp_connect_bundles_read_as_stu3() {
    for file in GP_CONNECT {
        let bundle = gp_connect(file);
        assert_eq!(release_of(&bundle), Release::Stu3, "{file}");
        // Without the Bundle's own profile, its entries still show it.
        let mut bare = bundle.clone();
        bare.as_object_mut().unwrap().remove("meta");
        assert_eq!(release_of(&bare), Release::Stu3, "{file}");
    }
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn carry_r4_fixtures_read_as_r4() {
    let mut checked = 0;
    for dir in ["synthea", "hl7-examples", "uk-core"] {
        for path in json_files(&Path::new(FIXTURES).join(dir)) {
            let value = read(&path);
            assert_eq!(release_of(&value), Release::R4, "{}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 80, "{checked} R4 fixtures");
    let bundle = read(
        &Path::new(FIXTURES).join("hl7-examples/diagnosticreport-example-f001-bloodexam.json"),
    );
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(release_of(&bundle), Release::R4);
}

/// JSON of every type, and of the shapes the converter looks inside.
fn hostile_values() -> Vec<Value> {
    vec![
        json!(null),
        json!(true),
        json!(-1),
        json!(1.5),
        json!("x"),
        json!([]),
        json!({}),
        json!([1, "x", null]),
        json!([{}]),
        json!([[]]),
        json!({"agent": 5, "onBehalfOf": "x", "reference": 1}),
        json!([{"role": 1, "actor": 2, "type": 3, "target": 4, "amount": 5}]),
        json!([{"reason": 1, "reasonNotGiven": [2], "doseSequence": "x", "doseStatus": 3}]),
        json!({"reason": "x", "reasonNotGiven": {}, "allowed": "x", "batch": 7, "container": 1}),
        json!([{"doseQuantity": "x", "rateRatio": 1, "interpretation": 2, "valueQuantity": 3}]),
        json!({"quantity": {"value": [], "code": [1]}, "expectedSupplyDuration": 1}),
        json!({"profile": [1], "tag": {"system": 1}, "versionId": 2}),
        json!([{"url": 1}, {"url": "u", "extension": 2}]),
        json!([{"resourceType": "Condition", "id": 1, "clinicalStatus": 1}]),
    ]
}

#[test]
fn hostile_input_gives_errors_never_panics() {
    let names = [
        "resourceType",
        "id",
        "meta",
        "contained",
        "extension",
        "modifierExtension",
        "status",
        "intent",
        "taken",
        "reasonNotTaken",
        "notGiven",
        "date",
        "practitioner",
        "explanation",
        "vaccinationProtocol",
        "related",
        "comment",
        "component",
        "performer",
        "codedDiagnosis",
        "image",
        "context",
        "requester",
        "definition",
        "substitution",
        "dispenseRequest",
        "dosageInstruction",
        "dosage",
        "ingredient",
        "package",
        "isBrand",
        "clinicalStatus",
        "verificationStatus",
        "assertedDate",
        "abatementBoolean",
        "diagnosis",
        "incomingReferral",
        "reason",
        "class",
        "animal",
        "serviceRequested",
        "type",
        "description",
        "groupIdentifier",
        "specialty",
        "recipient",
        "valueQuantity",
        "valueAttachment",
        "_assertedDate",
        "_status",
        "_taken",
        "basedOn",
        "subject",
        "entry",
        "identifier",
        "name",
    ];
    let kinds = [
        "AllergyIntolerance",
        "Condition",
        "DiagnosticReport",
        "Encounter",
        "Immunization",
        "List",
        "Location",
        "Medication",
        "MedicationRequest",
        "MedicationStatement",
        "Observation",
        "Organization",
        "Patient",
        "Practitioner",
        "PractitionerRole",
        "ProcedureRequest",
        "ReferralRequest",
        "Specimen",
    ];
    let mut runs = 0;
    let mut errors = 0;
    for kind in kinds {
        for name in names {
            for value in hostile_values() {
                let mut resource = json!({"resourceType": kind, "id": "x"});
                resource[name] = value;
                runs += 1;
                match to_r4(&resource) {
                    Ok(out) => assert_eq!(release_of(&out.resource), Release::R4, "{resource}"),
                    Err(_) => errors += 1,
                }
            }
        }
    }
    // And every element of the GP Connect examples, one at a time.
    for file in GP_CONNECT {
        let bundle = gp_connect(file);
        for input in resources(&bundle) {
            for name in input.as_object().unwrap().keys() {
                for value in hostile_values() {
                    let mut resource = input.clone();
                    resource[name.as_str()] = value;
                    runs += 1;
                    if to_r4(&resource).is_err() {
                        errors += 1;
                    }
                }
            }
        }
    }
    // Many of these are wrong enough to refuse; none may panic.
    assert!(
        runs > 20_000 && errors > runs / 5,
        "{errors} errors in {runs} runs"
    );
}
