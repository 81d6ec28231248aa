//! The endpoint as a client meets it: a real process, real sockets, a real HTTP
//! client. Seeds a Synthea patient split across a GP and a hospital, then reads,
//! pages and asks for `$everything`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

const PATIENT: &str = "d78af07c-9cb9-4f31-9b11-c45a28f2eec8";
const OTHER: &str = "616eaeb2-a67a-44e5-a7e6-9bbd85e47c5c";
const OTHER_BUNDLE: &str =
    "fixtures/fhir/synthea/sotf-Ned_Hintz_e4b9259d-0f54-48d1-a35d-b526729a4dfe.json";

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared")
        .join(rel)
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn endpoint() -> Command {
    Command::new(env!("CARGO_BIN_EXE_carry-endpoint"))
}

fn start(dir: &Path) -> (Server, Vec<(String, usize)>) {
    start_with(dir, &[])
}

/// Seed the split patient (and a second patient at the GP), then serve with `extra`.
fn start_with(dir: &Path, extra: &[&str]) -> (Server, Vec<(String, usize)>) {
    let db = format!("sqlite://{}", dir.join("ep.db").display());
    let bundle = shared(
        "fixtures/fhir/synthea/sotf-Clemente_Kreiger_1484a42d-0eaf-4654-9cbf-6b050a5cd73b.json",
    );
    let out = endpoint()
        .args([
            "seed",
            "--db",
            &db,
            "--tenant",
            "gp",
            "--tenant",
            "hospital",
            "--split-by-encounter",
            "--from",
        ])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (t, rest) = l.split_once(": ")?;
            Some((t.to_string(), rest.split_whitespace().next()?.parse().ok()?))
        })
        .collect();
    let other = endpoint()
        .args(["seed", "--db", &db, "--tenant", "gp", "--from"])
        .arg(shared(OTHER_BUNDLE))
        .output()
        .unwrap();
    assert!(other.status.success());
    let mut child = endpoint()
        .args(["serve", "--db", &db, "--listen", "127.0.0.1:0"])
        .args(extra)
        .env("CARRY_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    (Server { child, base }, counts)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

/// GET `url` with an optional bearer token: status, JSON body, ETag.
fn get(token: Option<&str>, url: &str) -> (u16, Value, Option<String>) {
    let mut req = agent().get(url);
    if let Some(t) = token {
        req = req.header("authorization", &format!("Bearer {t}"));
    }
    let mut resp = req.call().unwrap();
    let status = resp.status().as_u16();
    let etag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body: Value = resp.body_mut().read_json().unwrap_or(Value::Null);
    (status, body, etag)
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// PKCE: a verifier and its S256 challenge.
fn pkce(seed: &str) -> (String, String) {
    let verifier = format!("verifier-{seed}-0123456789abcdefghijklmnopqrstuvwxyz");
    let challenge = b64(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref());
    (verifier, challenge)
}

const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// The authorize URL for `tenant` with PKCE S256 and the sandbox consent as `patient`.
fn authorize_url(base: &str, tenant: &str, patient: &str, scope: &str, challenge: &str) -> String {
    let enc = |v: &str| -> String {
        v.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    format!(
        "{base}/{tenant}/auth/authorize?response_type=code&client_id=test-app&redirect_uri={}&scope={}&state=s1&aud={}&code_challenge={challenge}&code_challenge_method=S256&sandbox_patient={patient}",
        enc(REDIRECT),
        enc(scope),
        enc(&format!("{base}/{tenant}/fhir"))
    )
}

/// Follow an authorize URL without a browser: the code from the redirect.
fn code_from(url: &str) -> Result<String, (u16, Value)> {
    let mut resp = agent().get(url).call().unwrap();
    let status = resp.status().as_u16();
    if status != 302 {
        return Err((status, resp.body_mut().read_json().unwrap_or(Value::Null)));
    }
    let loc = resp
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        loc.starts_with(REDIRECT) && loc.contains("state=s1"),
        "{loc}"
    );
    let code = loc
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    Ok(code.to_string())
}

/// POST a form to a token endpoint.
fn token_request(base: &str, tenant: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let mut resp = agent()
        .post(&format!("{base}/{tenant}/auth/token"))
        .send_form(form.iter().copied())
        .unwrap();
    (
        resp.status().as_u16(),
        resp.body_mut().read_json().unwrap_or(Value::Null),
    )
}

/// The whole standalone launch for `patient`: the token response.
fn login(base: &str, tenant: &str, patient: &str, scope: &str) -> Value {
    let (verifier, challenge) = pkce(tenant);
    let code = code_from(&authorize_url(base, tenant, patient, scope, &challenge)).unwrap();
    let (s, t) = token_request(
        base,
        tenant,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", "test-app"),
            ("code_verifier", &verifier),
        ],
    );
    assert_eq!(s, 200, "{t}");
    t
}

fn access_token(t: &Value) -> String {
    t["access_token"].as_str().unwrap().to_string()
}

/// Follow `next` links from `url`; returns every entry's resource.
fn page_all(token: &str, url: &str) -> (Vec<Value>, usize) {
    let (mut resources, mut pages, mut next) = (Vec::new(), 0, Some(url.to_string()));
    while let Some(u) = next.take() {
        let (status, b, _) = get(Some(token), &u);
        assert_eq!(status, 200, "{u}: {b}");
        assert_eq!(b["type"], "searchset");
        pages += 1;
        // `self` names this page: the URL just fetched, with its page cursor.
        let this = b["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "self")
            .and_then(|l| l["url"].as_str())
            .unwrap()
            .to_string();
        assert!(this.contains("_count="), "{this}");
        assert_eq!(
            u.contains("_page="),
            this.contains("_page="),
            "{u} vs {this}"
        );
        resources.extend(
            b["entry"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["resource"].clone()),
        );
        next = b["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .and_then(|l| l["url"].as_str().map(str::to_string));
    }
    (resources, pages)
}

#[test]
fn tenants_serve_metadata_reads_searches_and_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (server, counts) = start(dir.path());
    let count = |t: &str| {
        counts
            .iter()
            .find(|(n, _)| n == t)
            .map(|(_, c)| *c)
            .unwrap()
    };
    // The patient's 70 resources, split: the Patient, their GP's Organization and
    // Practitioner, and anything tied to no encounter are held by both.
    assert!(count("gp") > 0 && count("hospital") > 0);
    assert!(count("gp") + count("hospital") > 70);
    let b = &server.base;

    let (s, health, _) = get(None, &format!("{b}/healthz"));
    assert_eq!((s, health["status"].as_str()), (200, Some("ok")));

    let (s, cap, _) = get(None, &format!("{b}/gp/fhir/metadata"));
    assert_eq!(s, 200);
    assert_eq!(cap["resourceType"], "CapabilityStatement");
    assert_eq!(cap["fhirVersion"], "4.0.1");
    let types: Vec<&str> = cap["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["type"].as_str())
        .collect();
    assert!(types.contains(&"Patient") && types.contains(&"Observation"));

    let tokens: Vec<(&str, String)> = ["gp", "hospital"]
        .into_iter()
        .map(|t| (t, access_token(&login(b, t, PATIENT, "patient/*.rs"))))
        .collect();
    let gp = tokens[0].1.as_str();
    let (s, p, etag) = get(Some(gp), &format!("{b}/gp/fhir/Patient/{PATIENT}"));
    assert_eq!(s, 200);
    assert_eq!(p["id"], PATIENT);
    assert_eq!(etag.as_deref(), Some("W/\"1\""));
    assert_eq!(p["meta"]["versionId"], "1");

    // Every resource each tenant holds, paged 7 at a time by type, exactly once.
    for (tenant, token) in &tokens {
        let (tenant, token) = (*tenant, token.as_str());
        let mut total = 0;
        for t in &types {
            let (rs, _) = page_all(token, &format!("{b}/{tenant}/fhir/{t}?_count=7"));
            assert!(rs.iter().all(|r| r["resourceType"] == *t));
            total += rs.len();
        }
        let (everything, pages) = page_all(
            token,
            &format!("{b}/{tenant}/fhir/Patient/{PATIENT}/$everything?_count=5"),
        );
        assert!(pages > 1);
        let mut ids: Vec<String> = everything
            .iter()
            .map(|r| format!("{}/{}", r["resourceType"], r["id"]))
            .collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "$everything gave a resource twice");
        // The token reaches this patient's compartment and shared resources, and the
        // searches and $everything agree on it; the other patient stays out of reach.
        assert_eq!(total, n, "{tenant}: searches and $everything agree");
        if tenant == "hospital" {
            assert_eq!(n, count("hospital"));
        }
        assert!(!everything.iter().any(|r| r.to_string().contains(OTHER)));
        // References were rewritten from urn:uuid to Type/id.
        assert!(everything
            .iter()
            .filter(|r| r["resourceType"] == "Observation")
            .all(|r| r["subject"]["reference"] == format!("Patient/{PATIENT}")));
    }

    // The patient's Observations at the GP, by search parameter.
    let (obs, _) = page_all(
        gp,
        &format!("{b}/gp/fhir/Observation?patient={PATIENT}&_count=50"),
    );
    assert!(!obs.is_empty());
    // Nothing has changed since the seed: an incremental search returns nothing.
    let (s, now, _) = get(None, &format!("{b}/gp/fhir/metadata"));
    assert_eq!(s, 200);
    let stamp = now["date"].as_str().unwrap().replace('+', "%2B");
    let (later, _) = page_all(
        gp,
        &format!("{b}/gp/fhir/Observation?_lastUpdated=gt{stamp}"),
    );
    assert!(later.is_empty());
}

#[test]
fn bad_requests_get_operation_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start(dir.path());
    let b = &server.base;
    let token = access_token(&login(b, "gp", PATIENT, "patient/*.rs"));
    for (path, status) in [
        ("/nowhere/fhir/metadata", 404),
        ("/gp/fhir/Patient/nobody", 404),
        ("/gp/fhir/Patient/bad%20id", 400),
        ("/gp/fhir/observation", 400),
        ("/gp/fhir/Observation?_count=0", 400),
        ("/gp/fhir/Observation?_count=abc", 400),
        ("/gp/fhir/Observation?_page=forged", 400),
        ("/gp/fhir/Observation?_lastUpdated=yesterday", 400),
        ("/gp/fhir/Observation?name=x", 400),
        ("/gp/fhir/Patient/nobody/$everything", 403),
        ("/gp/fhir/Observation/x/$validate", 404),
    ] {
        let (s, body, _) = get(Some(&token), &format!("{b}{path}"));
        assert_eq!(s, status, "{path}: {body}");
        assert_eq!(body["resourceType"], "OperationOutcome", "{path}");
    }
}

#[test]
fn a_count_above_the_largest_page_gets_pages_of_that_size() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start_with(dir.path(), &["--max-count", "7"]);
    let b = &server.base;
    let token = access_token(&login(b, "gp", PATIENT, "patient/*.rs"));
    let all = |count: usize| {
        page_all(
            &token,
            &format!("{b}/gp/fhir/Observation?patient={PATIENT}&_count={count}"),
        )
    };
    let (obs, pages) = all(500);
    assert!(
        obs.len() > 7,
        "the patient has more than a page of Observations"
    );
    assert_eq!(pages, obs.len().div_ceil(7), "pages of 7");
    // The same resources as asked 7 at a time.
    assert_eq!(all(7), (obs, pages));
    let (s, body, _) = get(
        Some(&token),
        &format!("{b}/gp/fhir/Observation?_count=1000"),
    );
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["entry"].as_array().unwrap().len(), 7);
}

#[test]
fn seed_refuses_bad_input_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("x.db").display());
    // (database URL, tenant, what stderr must say)
    for (url, tenant, says) in [
        (db.as_str(), "GP!", "tenant"),
        ("mysql://x", "gp", "sqlite://"),
        (db.as_str(), "gp", "/nonexistent"),
    ] {
        let out = endpoint()
            .args([
                "seed",
                "--db",
                url,
                "--tenant",
                tenant,
                "--from",
                "/nonexistent",
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url} {tenant}: {err}");
        assert!(
            err.contains(says) && !err.contains("panicked"),
            "{url} {tenant}: {err}"
        );
    }
}

#[test]
fn smart_standalone_launch_with_pkce_expiry_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start_with(
        dir.path(),
        &["--token-ttl", "1", "--refresh-reuse-grace", "0"],
    );
    let b = &server.base;
    let (s, conf, _) = get(
        None,
        &format!("{b}/gp/fhir/.well-known/smart-configuration"),
    );
    assert_eq!(s, 200);
    assert_eq!(
        conf["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert!(conf["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "permission-v2"));
    assert_eq!(conf["token_endpoint"], format!("{b}/gp/auth/token"));
    let (_, cap, _) = get(None, &format!("{b}/gp/fhir/metadata"));
    assert_eq!(
        cap["rest"][0]["security"]["service"][0]["coding"][0]["code"],
        "SMART-on-FHIR"
    );

    // Without a token, or with a made-up one: 401 with a challenge.
    let (s, body, _) = get(None, &format!("{b}/gp/fhir/Patient/{PATIENT}"));
    assert_eq!(
        (s, body["resourceType"].as_str()),
        (401, Some("OperationOutcome"))
    );
    let (s, _, _) = get(Some("made-up"), &format!("{b}/gp/fhir/Patient/{PATIENT}"));
    assert_eq!(s, 401);

    // PKCE S256 is required; plain and missing challenges, and a wrong aud, are refused.
    let (_, challenge) = pkce("x");
    let good = authorize_url(b, "gp", PATIENT, "patient/*.rs offline_access", &challenge);
    for bad in [
        good.replace("code_challenge_method=S256", "code_challenge_method=plain"),
        good.replace(&format!("code_challenge={challenge}"), "code_challenge="),
        good.replace("%2Fgp%2Ffhir", "%2Fhospital%2Ffhir"),
        good.replace("response_type=code", "response_type=token"),
        good.replace(PATIENT, "nobody"),
    ] {
        let (s, e) = code_from(&bad).unwrap_err();
        assert_eq!(
            (s, e["error"].as_str()),
            (400, Some("invalid_request")),
            "{bad}"
        );
    }
    // Without the sandbox shortcut the consent form is shown.
    let page = agent()
        .get(&good.replace(&format!("&sandbox_patient={PATIENT}"), ""))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(page.contains("<form") && page.contains(PATIENT));

    // A wrong verifier fails, and the code is then spent.
    let (verifier, challenge) = pkce("y");
    let code = code_from(&authorize_url(
        b,
        "gp",
        PATIENT,
        "patient/*.rs offline_access",
        &challenge,
    ))
    .unwrap();
    let exchange = |code: &str, verifier: &str| {
        token_request(
            b,
            "gp",
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("client_id", "test-app"),
                ("code_verifier", verifier),
            ],
        )
    };
    let (s, e) = exchange(&code, &format!("{verifier}-wrong"));
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")));
    let (s, _) = exchange(&code, &verifier);
    assert_eq!(s, 400, "a code works once, even after a failed try");

    let code = code_from(&authorize_url(
        b,
        "gp",
        PATIENT,
        "patient/*.rs offline_access",
        &challenge,
    ))
    .unwrap();
    let (s, tokens) = exchange(&code, &verifier);
    assert_eq!(s, 200, "{tokens}");
    assert_eq!(tokens["patient"], PATIENT);
    assert_eq!(tokens["expires_in"], 1);
    assert_eq!(tokens["scope"], "patient/*.rs offline_access");
    let (s, _) = exchange(&code, &verifier);
    assert_eq!(s, 400, "the code was single-use");
    let access = access_token(&tokens);
    let (s, _, _) = get(Some(&access), &format!("{b}/gp/fhir/Patient/{PATIENT}"));
    assert_eq!(s, 200);
    // The token is for this tenant only.
    let (s, _, _) = get(
        Some(&access),
        &format!("{b}/hospital/fhir/Patient/{PATIENT}"),
    );
    assert_eq!(s, 401);

    // It expires; the refresh token gets a new pair and is itself spent.
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let (s, _, _) = get(Some(&access), &format!("{b}/gp/fhir/Patient/{PATIENT}"));
    assert_eq!(s, 401);
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let renew = |r: &str| {
        token_request(
            b,
            "gp",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", r),
                ("client_id", "test-app"),
            ],
        )
    };
    let (s, fresh) = renew(refresh);
    assert_eq!(s, 200, "{fresh}");
    let new_refresh = fresh["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(new_refresh, refresh, "refresh tokens rotate");
    let (s, _, _) = get(
        Some(&access_token(&fresh)),
        &format!("{b}/gp/fhir/Patient/{PATIENT}"),
    );
    assert_eq!(s, 200);
    // Replaying the spent one (past the reuse grace) revokes the whole family.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (s, e) = renew(refresh);
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")));
    let (s, _) = renew(&new_refresh);
    assert_eq!(s, 400, "the replay revoked the newer refresh token too");
}

#[test]
fn a_token_reaches_only_its_patient_and_its_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start(dir.path());
    let b = &server.base;
    let t = access_token(&login(
        b,
        "gp",
        PATIENT,
        "patient/Observation.rs patient/Patient.r",
    ));
    let (s, _, _) = get(Some(&t), &format!("{b}/gp/fhir/Patient/{OTHER}"));
    assert_eq!(s, 404, "another patient's record is not even acknowledged");
    let (s, _, _) = get(
        Some(&t),
        &format!("{b}/gp/fhir/Observation?patient={OTHER}"),
    );
    assert_eq!(s, 403);
    let (s, _, _) = get(
        Some(&t),
        &format!("{b}/gp/fhir/Patient/{OTHER}/$everything"),
    );
    assert_eq!(s, 403);
    let (s, _, _) = get(
        Some(&t),
        &format!("{b}/gp/fhir/Condition?patient={PATIENT}"),
    );
    assert_eq!(s, 403, "Condition is outside the scopes");
    let (obs, _) = page_all(&t, &format!("{b}/gp/fhir/Observation?_count=100"));
    assert!(!obs.is_empty());
    assert!(obs
        .iter()
        .all(|o| o["subject"]["reference"] == format!("Patient/{PATIENT}")));
}

fn post_observation(
    base: &str,
    token: &str,
    subject: &str,
    identifier: Option<&str>,
) -> (u16, Value) {
    let body = serde_json::json!({
        "resourceType": "Observation",
        "status": "final",
        "identifier": [{ "system": "urn:carry:reading", "value": "r-1" }],
        "code": { "coding": [{ "system": "http://loinc.org", "code": "8867-4" }] },
        "subject": { "reference": format!("Patient/{subject}") },
        "valueQuantity": { "value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min" }
    });
    let mut req = agent()
        .post(&format!("{base}/gp/fhir/Observation"))
        .header("authorization", &format!("Bearer {token}"))
        .header("content-type", "application/fhir+json");
    if let Some(i) = identifier {
        req = req.header("if-none-exist", &format!("identifier={i}"));
    }
    let mut resp = req.send(body.to_string()).unwrap();
    (
        resp.status().as_u16(),
        resp.body_mut().read_json().unwrap_or(Value::Null),
    )
}

#[test]
fn conditional_create_makes_one_observation_however_often_it_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start(dir.path());
    let b = server.base.clone();
    let t = access_token(&login(
        &b,
        "gp",
        PATIENT,
        "patient/*.rs patient/Observation.c",
    ));
    let key = "urn:carry:reading%7Cr-1";
    let (s, first) = post_observation(&b, &t, PATIENT, Some(key));
    assert_eq!(s, 201, "{first}");
    let (s, again) = post_observation(&b, &t, PATIENT, Some(key));
    assert_eq!(s, 200);
    assert_eq!(again["id"], first["id"]);
    // Eight retries at once still make none.
    let ids: Vec<Value> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..8)
            .map(|_| sc.spawn(|| post_observation(&b, &t, PATIENT, Some(key)).1["id"].clone()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(ids.iter().all(|i| *i == first["id"]));
    let (found, _) = page_all(&t, &format!("{b}/gp/fhir/Observation?_count=500"));
    let with_key = found
        .iter()
        .filter(|o| o["identifier"][0]["value"] == "r-1")
        .count();
    assert_eq!(with_key, 1);
    // Another patient's record, or a token without create, is refused.
    let (s, _) = post_observation(&b, &t, OTHER, Some(key));
    assert_eq!(s, 403);
    let read_only = access_token(&login(&b, "gp", PATIENT, "patient/*.rs"));
    let (s, _) = post_observation(&b, &read_only, PATIENT, Some(key));
    assert_eq!(s, 403);
    let (s, _) = post_observation(&b, &t, PATIENT, Some("name=x"));
    assert_eq!(s, 400);
}

#[test]
fn rate_limit_answers_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start_with(dir.path(), &["--auth", "none", "--rate-limit", "2"]);
    let url = format!("{}/gp/fhir/Patient/{PATIENT}", server.base);
    let mut limited = None;
    for _ in 0..6 {
        let resp = agent().get(&url).call().unwrap();
        if resp.status().as_u16() == 429 {
            limited = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            break;
        }
    }
    assert_eq!(limited, Some(1), "a 429 with Retry-After: 1");
}

#[test]
fn injected_faults_do_what_they_say() {
    let dir = tempfile::tempdir().unwrap();
    let url = |s: &Server| format!("{}/gp/fhir/Patient/{PATIENT}", s.base);
    let (server, _) = start_with(dir.path(), &["--auth", "none", "--fault", "500/2"]);
    let statuses: Vec<u16> = (0..4)
        .map(|_| agent().get(&url(&server)).call().unwrap().status().as_u16())
        .collect();
    assert_eq!(statuses, [200, 500, 200, 500]);
    drop(server);
    for (fault, what) in [("drop/1", "drop"), ("truncate/1", "truncate")] {
        let dir = tempfile::tempdir().unwrap();
        let (server, _) = start_with(dir.path(), &["--auth", "none", "--fault", fault]);
        let outcome = agent()
            .get(&url(&server))
            .call()
            .and_then(|mut r| r.body_mut().read_to_string());
        assert!(
            outcome.is_err(),
            "{what}: the client must see a broken answer"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start_with(
        dir.path(),
        &[
            "--auth",
            "none",
            "--fault",
            "delay/1",
            "--fault-delay-ms",
            "300",
        ],
    );
    let t0 = std::time::Instant::now();
    assert_eq!(
        agent().get(&url(&server)).call().unwrap().status().as_u16(),
        200
    );
    assert!(t0.elapsed() >= std::time::Duration::from_millis(300));
}

#[test]
fn a_plain_search_server_offers_no_everything_and_no_last_updated() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start_with(dir.path(), &["--auth", "none", "--plain-search"]);
    let b = &server.base;
    let (_, cap, _) = get(None, &format!("{b}/gp/fhir/metadata"));
    let text = cap.to_string();
    assert!(!text.contains("everything") && !text.contains("_lastUpdated"));
    let (s, _, _) = get(None, &format!("{b}/gp/fhir/Patient/{PATIENT}/$everything"));
    assert_eq!(s, 404);
    let (s, _, _) = get(
        None,
        &format!("{b}/gp/fhir/Observation?_lastUpdated=gt2020-01-01"),
    );
    assert_eq!(s, 400);
    let (s, _, _) = get(None, &format!("{b}/gp/fhir/Observation?patient={PATIENT}"));
    assert_eq!(s, 200);
}
