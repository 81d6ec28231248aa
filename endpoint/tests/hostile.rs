//! What a hostile client can reach, against the real process: a patient's token gets
//! only that patient's compartment and the shared directory types, even over the UK
//! Core and HL7 examples (whose unplaceable resources seeding refuses) and over a
//! database that already holds such resources; a refresh token rotates once, is
//! honoured once more within the grace window, and a replay revokes its family; and
//! a code is sent only to a registered redirect URI.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use common::{raw, shared, start, Answer, Server};
use serde_json::Value;

/// The types every patient of a tenant shares when they are in no compartment.
const SHARED: &[&str] = &[
    "Device",
    "Location",
    "Medication",
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "Substance",
];
const RICHARD: &str = "UKCore-Patient-RichardSmith-Example";
const CLIENT: &str = "hostile-test";
const REDIRECT: &str = "http://127.0.0.1:9/callback";

fn endpoint() -> Command {
    Command::new(env!("CARGO_BIN_EXE_carry-endpoint"))
}

fn db_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("endpoint.db").display())
}

/// `carry-endpoint seed` into `dir`'s database; its stdout.
fn seed(dir: &Path, tenants: &[&str], from: &Path) -> String {
    let db = db_url(dir);
    let mut args = vec!["seed", "--db", &db];
    for t in tenants {
        args.extend(["--tenant", t]);
    }
    let out = endpoint()
        .args(args)
        .arg("--from")
        .arg(from)
        .env("CARRY_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn enc(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A PKCE verifier and its S256 challenge.
fn pkce() -> (String, String) {
    let verifier = "hostile-verifier-0123456789abcdefghijklmnopqrstuvwxyz".to_string();
    let challenge = B64.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    (verifier, challenge)
}

/// The authorize query for `tenant`, sending the code to `redirect`.
fn authorize_query(base: &str, tenant: &str, redirect: &str, scope: &str) -> String {
    let (_, challenge) = pkce();
    format!(
        "response_type=code&client_id={CLIENT}&redirect_uri={}&scope={}&state=s1&aud={}&code_challenge={challenge}&code_challenge_method=S256",
        enc(redirect),
        enc(scope),
        enc(&format!("{base}/{tenant}/fhir"))
    )
}

fn get(base: &str, path: &str, token: Option<&str>) -> Answer {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    raw(base, "GET", path, &headers, None, b"")
}

fn form(base: &str, path: &str, pairs: &[(&str, &str)]) -> Answer {
    let body = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    raw(
        base,
        "POST",
        path,
        &[],
        Some("application/x-www-form-urlencoded"),
        body.as_bytes(),
    )
}

/// Sign in at `tenant` as `patient` through the sandbox consent: the token response.
fn login(base: &str, tenant: &str, patient: &str, scope: &str) -> Value {
    let q = authorize_query(base, tenant, REDIRECT, scope);
    let a = get(
        base,
        &format!(
            "/{tenant}/auth/authorize?{q}&sandbox_patient={}",
            enc(patient)
        ),
        None,
    );
    assert_eq!(a.status, 302, "{}", a.text);
    let location = a.header("location").unwrap().to_string();
    let code = location
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    let (verifier, _) = pkce();
    let t = form(
        base,
        &format!("/{tenant}/auth/token"),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", CLIENT),
            ("code_verifier", &verifier),
        ],
    );
    assert_eq!(t.status, 200, "{}", t.text);
    t.json()
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap().to_string()
}

/// The Patient a resource's compartment fields name, as the seeder reads them.
fn named_patients(r: &Value) -> Vec<String> {
    ["subject", "patient", "beneficiary", "individual"]
        .iter()
        .filter_map(|f| {
            let v = &r[*f];
            let v = v.as_array().and_then(|a| a.first()).unwrap_or(v);
            let id = v["reference"].as_str()?.strip_prefix("Patient/")?;
            Some(id.split("/_history/").next().unwrap_or(id).to_string())
        })
        .collect()
}

/// Whether `r` may be served to `patient`'s token: it is the patient, or in their
/// compartment, or of a shared type and naming no patient.
fn within_reach(r: &Value, patient: &str) -> bool {
    let rtype = r["resourceType"].as_str().unwrap_or("");
    if rtype == "Patient" {
        return r["id"] == patient;
    }
    let named = named_patients(r);
    if named.is_empty() {
        SHARED.contains(&rtype)
    } else {
        named.iter().all(|p| p == patient)
    }
}

/// Every resource of a search and its `next` pages.
fn page_all(base: &str, first: &str, token: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut next = Some(first.to_string());
    while let Some(url) = next.take() {
        let path = url.strip_prefix(base).unwrap_or(&url).to_string();
        let a = get(base, &path, Some(token));
        assert_eq!(a.status, 200, "{path}: {}", a.text);
        let b = a.json();
        out.extend(
            b["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| e["resource"].clone()),
        );
        next = b["link"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["relation"] == "next")
            .and_then(|l| l["url"].as_str().map(str::to_string));
    }
    out
}

/// Refusals per type in `seed`'s output lines, summed.
fn refused(out: &str) -> std::collections::BTreeMap<String, usize> {
    let mut by_type = std::collections::BTreeMap::new();
    for line in out.lines() {
        let Some((_, list)) = line.split_once("refused: not placed with a patient (") else {
            continue;
        };
        for item in list.trim_end_matches(')').split(", ") {
            let (t, n) = item.rsplit_once(' ').unwrap();
            *by_type.entry(t.to_string()).or_insert(0) += n.parse::<usize>().unwrap();
        }
    }
    by_type
}

#[test]
fn a_patient_token_reaches_only_its_compartment_and_the_shared_types() {
    let dir = tempfile::tempdir().unwrap();
    let uk = seed(dir.path(), &["gp"], &shared("fixtures/fhir/uk-core"));
    let hl7 = seed(dir.path(), &["gp"], &shared("fixtures/fhir/hl7-examples"));
    // Seeding refuses what it cannot place with a patient, and says so.
    assert_eq!(
        uk.trim(),
        "gp: 38 resources, 4 refused: not placed with a patient (Appointment 1, AuditEvent 1, Composition 1, Provenance 1)"
    );
    let all = refused(&format!("{uk}{hl7}"));
    let expected: Vec<(&str, usize)> = vec![
        ("Appointment", 2),
        ("AuditEvent", 3),
        ("Bundle", 4),
        ("Composition", 1),
        ("Observation", 3),
        ("Provenance", 2),
    ];
    assert_eq!(
        all.iter()
            .map(|(t, n)| (t.as_str(), *n))
            .collect::<Vec<_>>(),
        expected,
        "{hl7}"
    );

    // A database from before seeding failed closed may still hold such resources:
    // they must not be served either.
    let db = rusqlite::Connection::open(dir.path().join("endpoint.db")).unwrap();
    for (rtype, id, text) in [
        (
            "Appointment",
            "planted-appointment",
            "another person's appointment",
        ),
        (
            "Composition",
            "planted-letter",
            "A&E discharge: penicillin allergy",
        ),
    ] {
        let json = serde_json::json!({
            "resourceType": rtype, "id": id, "text": {"status": "generated", "div": text},
            "meta": {"versionId": "1", "lastUpdated": "2026-01-01T00:00:00.000Z"}
        });
        db.execute(
            "INSERT INTO resources (tenant, rtype, id, version, last_updated_ms, patient, json)
             VALUES ('gp', ?1, ?2, 1, 1767225600000, NULL, ?3)",
            rusqlite::params![rtype, id, json.to_string()],
        )
        .unwrap();
    }
    let patients: Vec<String> = db
        .prepare("SELECT id FROM resources WHERE tenant = 'gp' AND rtype = 'Patient' ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    drop(db);
    assert!(patients.len() >= 10, "{patients:?}");

    let server: Server = start(dir.path(), &[]);
    let b = &server.base;
    let metadata = get(b, "/gp/fhir/metadata", None).json();
    let types: Vec<String> = metadata["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| s(r, "type"))
        .collect();
    assert!(types.iter().any(|t| t == "Appointment"));
    let mut served = 0;
    for patient in &patients {
        let token = s(&login(b, "gp", patient, "patient/*.rs"), "access_token");
        let mut seen = page_all(
            b,
            &format!("/gp/fhir/Patient/{patient}/$everything?_count=500"),
            &token,
        );
        for t in &types {
            seen.extend(page_all(b, &format!("/gp/fhir/{t}?_count=500"), &token));
        }
        assert!(seen
            .iter()
            .any(|r| r["resourceType"] == "Patient" && r["id"] == *patient));
        for r in &seen {
            assert!(
                within_reach(r, patient),
                "{patient}'s token was served {}/{}",
                r["resourceType"],
                r["id"]
            );
        }
        served += seen.len();
        for path in [
            "/gp/fhir/Appointment/planted-appointment",
            "/gp/fhir/Composition/planted-letter",
            "/gp/fhir/Appointment/UKCore-Appointment-OrthopaedicSurgery-Example",
            "/gp/fhir/Composition/UKCore-Composition-Discharge-Example",
        ] {
            assert_eq!(get(b, path, Some(&token)).status, 404, "{patient}: {path}");
        }
        // A shared directory entry is still there for everyone.
        assert_eq!(
            get(
                b,
                "/gp/fhir/Organization/UKCore-Organization-LeedsTeachingHospital-Example",
                Some(&token)
            )
            .status,
            200
        );
    }
    assert!(served > patients.len() * 10);
}

/// A server over the UK Core examples at `gp` and `hospital`, with `extra` options.
fn uk_server(dir: &Path, extra: &[&str]) -> Server {
    seed(dir, &["gp", "hospital"], &shared("fixtures/fhir/uk-core"));
    start(dir, extra)
}

fn renew(base: &str, tenant: &str, client: &str, refresh: &str) -> Answer {
    form(
        base,
        &format!("/{tenant}/auth/token"),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", client),
        ],
    )
}

/// Whether an access token still reads the patient.
fn reads(base: &str, access: &str) -> bool {
    get(base, &format!("/gp/fhir/Patient/{RICHARD}"), Some(access)).status == 200
}

const OFFLINE: &str = "patient/*.rs offline_access";

#[test]
fn a_spent_refresh_token_works_once_more_within_the_grace_and_then_revokes_the_family() {
    let dir = tempfile::tempdir().unwrap();
    let server = uk_server(dir.path(), &[]);
    let b = &server.base;
    let first = login(b, "gp", RICHARD, OFFLINE);
    let spent = s(&first, "refresh_token");
    let rotated = renew(b, "gp", CLIENT, &spent);
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    // The answer was "lost": the client tries again within the window, once.
    let retried = renew(b, "gp", CLIENT, &spent);
    assert_eq!(retried.status, 200, "{}", retried.text);
    let (r1, r2) = (rotated.json(), retried.json());
    assert!(
        !reads(b, &s(&r1, "access_token")),
        "the retry superseded the first pair"
    );
    assert!(reads(b, &s(&r2, "access_token")));
    // Any further use within the window is a replay: 400, and the family is revoked.
    for _ in 0..3 {
        let again = renew(b, "gp", CLIENT, &spent);
        assert_eq!(
            (again.status, again.json()["error"].as_str()),
            (400, Some("invalid_grant"))
        );
    }
    assert!(!reads(b, &s(&r2, "access_token")), "the family is revoked");
    assert!(!reads(b, &s(&first, "access_token")));
    assert_eq!(renew(b, "gp", CLIENT, &s(&r2, "refresh_token")).status, 400);
    // The superseded refresh token is dead too.
    assert_eq!(renew(b, "gp", CLIENT, &s(&r1, "refresh_token")).status, 400);
}

#[test]
fn parallel_refreshes_of_one_token_never_leave_two_live_chains() {
    let dir = tempfile::tempdir().unwrap();
    let server = uk_server(dir.path(), &[]);
    let b = server.base.clone();
    // Twenty at once: one rotation, one grace retry (which supersedes the first), and
    // the rest are replays, the first of which revokes the family.
    let refresh = s(&login(&b, "gp", RICHARD, OFFLINE), "refresh_token");
    let barrier = std::sync::Barrier::new(20);
    let answers: Vec<Answer> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..20)
            .map(|_| {
                sc.spawn(|| {
                    barrier.wait();
                    renew(&b, "gp", CLIENT, &refresh)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok: Vec<Value> = answers
        .iter()
        .filter(|a| a.status == 200)
        .map(Answer::json)
        .collect();
    assert_eq!(ok.len(), 2, "one rotation and one retry");
    assert!(answers
        .iter()
        .filter(|a| a.status != 200)
        .all(|a| a.status == 400 && a.json()["error"] == "invalid_grant"));
    let live = ok
        .iter()
        .filter(|t| reads(&b, &s(t, "access_token")))
        .count();
    assert_eq!(live, 0, "the replays revoked every chain");

    // Two at once (a retry racing the first use): both answered, one chain lives.
    let refresh = s(&login(&b, "gp", RICHARD, OFFLINE), "refresh_token");
    let barrier = std::sync::Barrier::new(2);
    let answers: Vec<Answer> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                sc.spawn(|| {
                    barrier.wait();
                    renew(&b, "gp", CLIENT, &refresh)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(answers.iter().all(|a| a.status == 200));
    let live: Vec<Value> = answers
        .iter()
        .map(Answer::json)
        .filter(|t| reads(&b, &s(t, "access_token")))
        .collect();
    assert_eq!(live.len(), 1, "exactly one live chain");
    assert_eq!(
        renew(&b, "gp", CLIENT, &s(&live[0], "refresh_token")).status,
        200,
        "and it goes on"
    );
}

#[test]
fn a_refresh_token_or_code_sent_to_the_wrong_tenant_or_client_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let server = uk_server(dir.path(), &[]);
    let b = &server.base;
    let tokens = login(b, "gp", RICHARD, OFFLINE);
    let refresh = s(&tokens, "refresh_token");
    for (tenant, client) in [("hospital", CLIENT), ("gp", "someone-else")] {
        let a = renew(b, tenant, client, &refresh);
        assert_eq!(
            (a.status, a.json()["error"].as_str()),
            (400, Some("invalid_grant")),
            "{tenant} {client}"
        );
    }
    // The access token presented as a refresh token or a code changes nothing either.
    let access = s(&tokens, "access_token");
    assert_eq!(renew(b, "gp", CLIENT, &access).status, 400);
    let (verifier, _) = pkce();
    let as_code = form(
        b,
        "/gp/auth/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &access),
            ("redirect_uri", REDIRECT),
            ("client_id", CLIENT),
            ("code_verifier", &verifier),
        ],
    );
    assert_eq!(as_code.status, 400);
    assert!(reads(b, &access));
    let a = renew(b, "gp", CLIENT, &refresh);
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(reads(b, &s(&a.json(), "access_token")));

    // A code presented at another tenant is not spent there.
    let q = authorize_query(b, "gp", REDIRECT, OFFLINE);
    let r = get(
        b,
        &format!("/gp/auth/authorize?{q}&sandbox_patient={RICHARD}"),
        None,
    );
    let location = r.header("location").unwrap().to_string();
    let code = location
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let exchange = |tenant: &str| {
        form(
            b,
            &format!("/{tenant}/auth/token"),
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("client_id", CLIENT),
                ("code_verifier", &verifier),
            ],
        )
    };
    assert_eq!(exchange("hospital").status, 400);
    assert_eq!(exchange("gp").status, 200);
}

/// The authorize request for `redirect`: its answer, with and without the sandbox
/// consent shortcut, and as the consent form's POST.
fn authorize_all_ways(base: &str, redirect: &str) -> Vec<Answer> {
    let q = authorize_query(base, "gp", redirect, "patient/*.rs");
    let with_patient = format!("{q}&sandbox_patient={RICHARD}");
    vec![
        get(base, &format!("/gp/auth/authorize?{with_patient}"), None),
        get(base, &format!("/gp/auth/authorize?{q}"), None),
        raw(
            base,
            "POST",
            "/gp/auth/authorize",
            &[],
            Some("application/x-www-form-urlencoded"),
            with_patient.as_bytes(),
        ),
    ]
}

fn assert_refused(base: &str, redirect: &str) {
    for a in authorize_all_ways(base, redirect) {
        assert_eq!(a.status, 400, "{redirect}: {}", a.text);
        assert!(a.header("location").is_none(), "{redirect}: redirected");
        assert_eq!(a.json()["error"], "invalid_request", "{redirect}");
        assert!(
            a.json()["error_description"]
                .as_str()
                .unwrap()
                .contains("redirect_uri"),
            "{redirect}: {}",
            a.text
        );
        assert!(!a.text.contains("<form"), "{redirect}: consent shown");
    }
}

fn assert_redirects(base: &str, redirect: &str) {
    let mut answers = authorize_all_ways(base, redirect);
    let consent = answers.remove(1);
    assert_eq!(consent.status, 200, "{redirect}: {}", consent.text);
    assert!(consent.text.contains("<form"));
    for a in answers {
        assert_eq!(a.status, 302, "{redirect}: {}", a.text);
        let location = a.header("location").unwrap();
        assert!(
            location.starts_with(redirect) && location.contains("code="),
            "{redirect}: {location}"
        );
    }
}

#[test]
fn codes_go_only_to_registered_redirect_uris() {
    let dir = tempfile::tempdir().unwrap();
    let server = uk_server(dir.path(), &[]);
    let b = &server.base;
    // By default: any loopback http URI (the CLI's, test clients') and the Carry app.
    for ok in [
        REDIRECT,
        "http://127.0.0.1:53682/callback",
        "http://127.0.0.1:9/cb",
        "http://[::1]:4321/done?x=1",
        "carry://callback",
    ] {
        assert_redirects(b, ok);
    }
    for refused in [
        "https://evil.example/cb",
        "http://evil.example/cb",
        "javascript:alert(document.cookie)",
        "JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "http://localhost:9/callback",
        "http://127.0.0.1.evil.example/cb",
        "http://user@127.0.0.1:9/cb",
        "carry://elsewhere",
        "health.carry.app:/callback",
        "/relative/callback",
        "http://127.0.0.1:9/callback#frag",
        "http://127.0.0.1:9/call back",
    ] {
        assert_refused(b, refused);
    }
    drop(server);

    // Registered explicitly: exactly those (a loopback one on any port), and a
    // custom app scheme; the defaults no longer apply.
    let dir = tempfile::tempdir().unwrap();
    let server = uk_server(
        dir.path(),
        &[
            "--redirect-uri",
            "health.carry.app:/callback",
            "--redirect-uri",
            "https://app.example/cb",
            "--redirect-uri",
            "http://127.0.0.1/cb",
        ],
    );
    let b = &server.base;
    for ok in [
        "health.carry.app:/callback",
        "https://app.example/cb",
        "http://127.0.0.1:5555/cb",
        "http://127.0.0.1/cb",
    ] {
        assert_redirects(b, ok);
    }
    for refused in [
        "https://app.example/cb2",
        "https://app.example/cb?next=https://evil.example",
        "http://app.example/cb",
        "health.carry.app:/other",
        "http://127.0.0.1:9/callback",
        "carry://callback",
    ] {
        assert_refused(b, refused);
    }
}

#[test]
fn scripts_and_local_content_cannot_be_registered() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        "javascript:alert(1)",
        "data:text/html,hi",
        "file:///tmp/x",
        "https://user:pw@app.example/cb",
        "not a uri",
        "carry:",
    ] {
        let mut child = endpoint()
            .args([
                "serve",
                "--db",
                &db_url(dir.path()),
                "--listen",
                "127.0.0.1:0",
            ])
            .args(["--redirect-uri", bad])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("serve accepted --redirect-uri {bad}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let err = read_all(child.stderr.take().unwrap());
        assert_eq!(status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("--redirect-uri"), "{bad}: {err}");
    }
}

fn read_all(mut r: impl std::io::Read) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
}
