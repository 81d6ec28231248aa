//! The GP Connect mock as a patient's app meets it: the real binary serving tenant
//! `gp` from GP Connect's published example bundles (`../shared`), a person signed in
//! through the mock NHS login (a client key made with OpenSSL, an RS512 assertion made
//! with jsonwebtoken), then `$gpc.getstructuredrecord` for the whole record, for
//! allergies with and without resolved ones, and each refusal on purpose.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
mod common;

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use common::{raw, start, Answer, Server};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const PATIENT: &str = "9999999999";
const SOMEONE_ELSE: &str = "9434765919";
const REDIRECT: &str = "http://127.0.0.1:53682/callback";
const OPERATION: &str = "/gp/gpconnect/fhir/Patient/$gpc.getstructuredrecord";
const NHS_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";

fn random() -> String {
    let mut b = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).unwrap();
    B64.encode(b)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn query(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The endpoint serving `gp` from the published examples, with one NHS login client.
fn serve(dir: &Path) -> (Server, EncodingKey) {
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    let pem = dir.join("app.pem");
    std::fs::write(&pem, rsa.public_key_to_pem().unwrap()).unwrap();
    let key = EncodingKey::from_rsa_pem(&rsa.private_key_to_pem().unwrap()).unwrap();
    let examples = common::shared("fixtures/fhir/gp-connect-stu3");
    let server = start(
        dir,
        &[
            "--nhs-login-client",
            &format!("app={}", pem.display()),
            "--gp-connect",
            &format!("gp={}", examples.display()),
        ],
    );
    (server, key)
}

/// An access token for the sandbox user `nhs_number`, with `extra` authorize
/// parameters.
fn sign_in(server: &Server, key: &EncodingKey, nhs_number: &str, extra: &[(&str, &str)]) -> String {
    let verifier = random();
    let challenge = B64.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", "app"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile"),
        ("state", "s"),
        ("nonce", "n"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("sandbox_user", nhs_number),
    ];
    params.extend_from_slice(extra);
    let a = raw(
        &server.base,
        "GET",
        &format!("/nhs-login/authorize?{}", query(&params)),
        &[],
        None,
        b"",
    );
    assert_eq!(a.status, 302, "{}", a.text);
    let location = url::Url::parse(a.header("location").unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let assertion = jsonwebtoken::encode(
        &Header::new(Algorithm::RS512),
        &json!({
            "iss": "app", "sub": "app", "aud": format!("{}/nhs-login/token", server.base),
            "jti": random(), "iat": now(), "exp": now() + 120,
        }),
        key,
    )
    .unwrap();
    let form = query(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", &verifier),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", &assertion),
    ]);
    let t = raw(
        &server.base,
        "POST",
        "/nhs-login/token",
        &[],
        Some("application/x-www-form-urlencoded"),
        form.as_bytes(),
    );
    assert_eq!(t.status, 200, "{}", t.text);
    t.json()["access_token"].as_str().unwrap().to_string()
}

fn nhs(value: &str) -> Value {
    json!({ "name": "patientNHSNumber", "valueIdentifier": { "system": NHS_SYSTEM, "value": value } })
}

fn allergies(resolved: bool) -> Value {
    json!({ "name": "includeAllergies", "part": [{ "name": "includeResolvedAllergies", "valueBoolean": resolved }] })
}

fn parameters(params: Vec<Value>) -> Value {
    json!({ "resourceType": "Parameters", "parameter": params })
}

/// POST the operation with `body` and the token, if any.
fn ask(server: &Server, token: Option<&str>, body: &Value) -> Answer {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|h| vec![("authorization", h)])
        .unwrap_or_default();
    raw(
        &server.base,
        "POST",
        OPERATION,
        &headers,
        Some("application/fhir+json"),
        body.to_string().as_bytes(),
    )
}

/// The Spine code of a refusal, checking its status and its form.
fn refused(a: &Answer, status: u16) -> String {
    assert_eq!(a.status, status, "{}", a.text);
    assert!(a
        .header("content-type")
        .unwrap()
        .starts_with("application/fhir+json"));
    let o = a.json();
    assert_eq!(o["resourceType"], "OperationOutcome");
    let coding = &o["issue"][0]["details"]["coding"][0];
    assert_eq!(
        coding["system"],
        "https://fhir.nhs.uk/STU3/CodeSystem/Spine-ErrorOrWarningCode-1"
    );
    coding["code"].as_str().unwrap().to_string()
}

/// The resources of an answered Bundle, checking its form.
fn resources(a: &Answer) -> Vec<Value> {
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a
        .header("content-type")
        .unwrap()
        .starts_with("application/fhir+json"));
    let b = a.json();
    assert_eq!(b["resourceType"], "Bundle");
    assert_eq!(b["type"], "collection");
    assert_eq!(
        b["meta"]["profile"][0],
        "https://fhir.nhs.uk/STU3/StructureDefinition/GPConnect-StructuredRecord-Bundle-1"
    );
    b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"].clone())
        .collect()
}

fn count(rs: &[Value], rtype: &str) -> usize {
    rs.iter().filter(|r| r["resourceType"] == rtype).count()
}

fn titles(rs: &[Value]) -> Vec<String> {
    rs.iter()
        .filter(|r| r["resourceType"] == "List")
        .map(|r| r["title"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn a_person_reads_their_own_record() {
    let dir = tempfile::tempdir().unwrap();
    let (server, key) = serve(dir.path());
    let token = sign_in(&server, &key, PATIENT, &[]);

    let meta = raw(
        &server.base,
        "GET",
        "/gp/gpconnect/fhir/metadata",
        &[],
        None,
        b"",
    );
    assert_eq!(meta.status, 200);
    assert_eq!(
        meta.json()["rest"][0]["operation"][0]["name"],
        "gpc.getstructuredrecord"
    );

    // The whole record: every area.
    let mut all = vec![nhs(PATIENT), allergies(true)];
    for p in [
        "includeMedication",
        "includeConsultations",
        "includeProblems",
        "includeImmunisations",
        "includeUncategorisedData",
        "includeInvestigations",
        "includeReferrals",
        "includeDiaryEntries",
    ] {
        all.push(json!({ "name": p }));
    }
    let rs = resources(&ask(&server, Some(&token), &parameters(all)));
    assert_eq!(count(&rs, "Patient"), 1);
    assert_eq!(rs[0]["identifier"][0]["value"], PATIENT);
    assert_eq!(count(&rs, "Organization"), 1);
    assert_eq!(count(&rs, "Practitioner"), 1);
    assert_eq!(count(&rs, "PractitionerRole"), 1);
    assert_eq!(count(&rs, "AllergyIntolerance"), 3);
    assert_eq!(count(&rs, "MedicationStatement"), 2);
    assert_eq!(count(&rs, "MedicationRequest"), 5);
    assert_eq!(count(&rs, "Medication"), 2);
    // One copy of each List the three bundles share; the areas with nothing recorded
    // answer an empty List, except those the practice's warning says it does not serve.
    let t = titles(&rs);
    for want in [
        "Active Allergies",
        "Resolved Allergies",
        "Medication List",
        "Immunisations",
        "Miscellaneous record",
        "Investigations and results",
        "Outbound referral",
        "Patient recall administration",
    ] {
        assert_eq!(
            t.iter().filter(|x| *x == want).count(),
            1,
            "{want} in {t:?}"
        );
    }
    let empty = rs
        .iter()
        .filter(|r| r["resourceType"] == "List" && r.get("emptyReason").is_some())
        .count();
    assert_eq!(empty, 5, "{t:?}");
    let outcome = rs
        .iter()
        .find(|r| r["resourceType"] == "OperationOutcome")
        .unwrap();
    let warned: Vec<&str> = outcome["issue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["diagnostics"].as_str().unwrap())
        .collect();
    assert_eq!(warned, ["includeConsultations", "includeProblems"]);
    let mut ids: Vec<String> = rs
        .iter()
        .filter_map(|r| {
            r["id"]
                .as_str()
                .map(|id| format!("{}/{id}", r["resourceType"]))
        })
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "no resource twice");

    // Allergies only.
    let rs = resources(&ask(
        &server,
        Some(&token),
        &parameters(vec![nhs(PATIENT), allergies(false)]),
    ));
    assert_eq!(
        count(&rs, "MedicationStatement")
            + count(&rs, "Medication")
            + count(&rs, "OperationOutcome"),
        0
    );
    assert_eq!(count(&rs, "AllergyIntolerance"), 3);
    assert_eq!(
        titles(&rs),
        ["Active Allergies"],
        "resolved allergies are left out"
    );
    assert!(!ask(
        &server,
        Some(&token),
        &parameters(vec![nhs(PATIENT), allergies(false)])
    )
    .text
    .contains("\"resolved\""));

    // And with the resolved ones.
    let rs = resources(&ask(
        &server,
        Some(&token),
        &parameters(vec![nhs(PATIENT), allergies(true)]),
    ));
    assert_eq!(titles(&rs), ["Active Allergies", "Resolved Allergies"]);
    let resolved = rs
        .iter()
        .find(|r| r["title"] == "Resolved Allergies")
        .unwrap();
    assert_eq!(resolved["contained"][0]["clinicalStatus"], "resolved");

    // Medication without prescription issues: no MedicationRequest of intent order.
    let meds = json!({ "name": "includeMedication", "part": [{ "name": "includePrescriptionIssues", "valueBoolean": false }] });
    let rs = resources(&ask(
        &server,
        Some(&token),
        &parameters(vec![nhs(PATIENT), meds]),
    ));
    assert!(rs
        .iter()
        .all(|r| r["resourceType"] != "MedicationRequest" || r["intent"] != "order"));
    assert_eq!(count(&rs, "MedicationStatement"), 2);

    // Plain JSON is taken too.
    let a = raw(
        &server.base,
        "POST",
        OPERATION,
        &[("authorization", &format!("Bearer {token}"))],
        Some("application/json"),
        parameters(vec![nhs(PATIENT)]).to_string().as_bytes(),
    );
    assert_eq!(count(&resources(&a), "Patient"), 1);

    let log = server.log();
    assert!(
        !log.contains(PATIENT) && !log.contains(&token),
        "no NHS number or token is logged"
    );
}

#[test]
fn refusals_on_purpose() {
    let dir = tempfile::tempdir().unwrap();
    let (server, key) = serve(dir.path());
    let token = sign_in(&server, &key, PATIENT, &[]);
    let mine = parameters(vec![nhs(PATIENT), allergies(false)]);

    // No token, or one the issuer never gave.
    let a = ask(&server, None, &mine);
    assert_eq!(refused(&a, 401), "ACCESS_DENIED");
    assert_eq!(a.header("www-authenticate"), Some("Bearer"));
    assert_eq!(
        refused(&ask(&server, Some("not-a-token"), &mine), 401),
        "ACCESS_DENIED"
    );

    // A person proven only to P5.
    let p5 = sign_in(
        &server,
        &key,
        PATIENT,
        &[
            ("sandbox_proofing", "P5"),
            ("vtr", r#"["P5.Cp.Cd","P9.Cp.Cd"]"#),
        ],
    );
    assert_eq!(
        refused(&ask(&server, Some(&p5), &mine), 403),
        "ACCESS_DENIED"
    );

    // Someone else asking for this record.
    let other = sign_in(&server, &key, SOMEONE_ELSE, &[]);
    assert_eq!(
        refused(&ask(&server, Some(&other), &mine), 403),
        "ACCESS_DENIED"
    );

    // A number that fails its check digit; an unknown parameter; not a Parameters.
    let bad = parameters(vec![nhs("9999999998"), allergies(false)]);
    assert_eq!(
        refused(&ask(&server, Some(&token), &bad), 400),
        "INVALID_NHS_NUMBER"
    );
    let unknown = parameters(vec![nhs(PATIENT), json!({ "name": "includeEverything" })]);
    let a = ask(&server, Some(&token), &unknown);
    assert_eq!(refused(&a, 422), "INVALID_PARAMETER");
    assert!(a.json()["issue"][0]["diagnostics"]
        .as_str()
        .unwrap()
        .contains("includeEverything"));
    let twice = parameters(vec![nhs(PATIENT), allergies(false), allergies(true)]);
    assert_eq!(
        refused(&ask(&server, Some(&token), &twice), 422),
        "INVALID_RESOURCE"
    );
    let no_part = parameters(vec![nhs(PATIENT), json!({ "name": "includeAllergies" })]);
    assert_eq!(
        refused(&ask(&server, Some(&token), &no_part), 422),
        "INVALID_PARAMETER"
    );
    let patient = json!({ "resourceType": "Patient", "id": "x" });
    assert_eq!(
        refused(&ask(&server, Some(&token), &patient), 422),
        "INVALID_RESOURCE"
    );

    // A valid NHS number the practice holds no record for, asked by its owner.
    let theirs = parameters(vec![nhs(SOMEONE_ELSE)]);
    assert_eq!(
        refused(&ask(&server, Some(&other), &theirs), 404),
        "PATIENT_NOT_FOUND"
    );

    // Too large, wrong media type, a tenant without GP Connect.
    // Past 1 MiB: refused on its declared length, before it is read. The server may
    // close the connection while the client still writes; that is a refusal too.
    let big = " ".repeat((1 << 20) + 1);
    let sent = common::agent()
        .post(&format!("{}{OPERATION}", server.base))
        .header("authorization", &format!("Bearer {token}"))
        .header("content-type", "application/fhir+json")
        .send(big);
    match sent {
        Ok(resp) => assert_eq!(refused(&common::read(resp), 413), "BAD_REQUEST"),
        Err(ureq::Error::Io(_)) => {}
        Err(e) => panic!("{e}"),
    }
    let a = raw(
        &server.base,
        "POST",
        OPERATION,
        &[("authorization", &format!("Bearer {token}"))],
        Some("text/plain"),
        b"{}",
    );
    assert_eq!(refused(&a, 415), "BAD_REQUEST");
    let a = raw(
        &server.base,
        "POST",
        "/other/gpconnect/fhir/Patient/$gpc.getstructuredrecord",
        &[("authorization", &format!("Bearer {token}"))],
        Some("application/fhir+json"),
        mine.to_string().as_bytes(),
    );
    assert_eq!(refused(&a, 404), "ORGANISATION_NOT_FOUND");

    // The person's own request still works after all that.
    assert_eq!(ask(&server, Some(&token), &mine).status, 200);
}

#[test]
fn a_folder_holding_something_else_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("records");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(
        bad.join("not-a-bundle.json"),
        r#"{"resourceType": "Patient"}"#,
    )
    .unwrap();
    let db = format!("sqlite://{}", dir.path().join("e.db").display());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_carry-endpoint"))
        .args([
            "serve",
            "--db",
            &db,
            "--listen",
            "127.0.0.1:0",
            "--gp-connect",
        ])
        .arg(format!("gp={}", bad.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not-a-bundle.json"), "{err}");
}
