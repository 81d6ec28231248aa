//! The endpoint as a client meets it: a real process, real sockets, a real HTTP
//! client. Seeds a Synthea patient split across a GP and a hospital, then reads,
//! pages and asks for `$everything`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

const PATIENT: &str = "d78af07c-9cb9-4f31-9b11-c45a28f2eec8";

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
    let mut child = endpoint()
        .args(["serve", "--db", &db, "--listen", "127.0.0.1:0"])
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

fn get(url: &str) -> (u16, Value, Option<String>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent.get(url).call().unwrap();
    let status = resp.status().as_u16();
    let etag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body: Value = resp.body_mut().read_json().unwrap();
    (status, body, etag)
}

/// Follow `next` links from `url`; returns every entry's resource.
fn page_all(url: &str) -> (Vec<Value>, usize) {
    let (mut resources, mut pages, mut next) = (Vec::new(), 0, Some(url.to_string()));
    while let Some(u) = next.take() {
        let (status, b, _) = get(&u);
        assert_eq!(status, 200, "{u}: {b}");
        assert_eq!(b["type"], "searchset");
        pages += 1;
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

    let (s, health, _) = get(&format!("{b}/healthz"));
    assert_eq!((s, health["status"].as_str()), (200, Some("ok")));

    let (s, cap, _) = get(&format!("{b}/gp/fhir/metadata"));
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

    let (s, p, etag) = get(&format!("{b}/gp/fhir/Patient/{PATIENT}"));
    assert_eq!(s, 200);
    assert_eq!(p["id"], PATIENT);
    assert_eq!(etag.as_deref(), Some("W/\"1\""));
    assert_eq!(p["meta"]["versionId"], "1");

    // Every resource each tenant holds, paged 7 at a time by type, exactly once.
    for tenant in ["gp", "hospital"] {
        let mut total = 0;
        for t in &types {
            let (rs, _) = page_all(&format!("{b}/{tenant}/fhir/{t}?_count=7"));
            assert!(rs.iter().all(|r| r["resourceType"] == *t));
            total += rs.len();
        }
        if tenant == "gp" {
            assert_eq!(total, count("gp"));
        }
        let (everything, pages) = page_all(&format!(
            "{b}/{tenant}/fhir/Patient/{PATIENT}/$everything?_count=5"
        ));
        assert!(pages > 1);
        let mut ids: Vec<String> = everything
            .iter()
            .map(|r| format!("{}/{}", r["resourceType"], r["id"]))
            .collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "$everything gave a resource twice");
        // References were rewritten from urn:uuid to Type/id.
        assert!(everything
            .iter()
            .filter(|r| r["resourceType"] == "Observation")
            .all(|r| r["subject"]["reference"] == format!("Patient/{PATIENT}")));
    }

    // The patient's Observations at the GP, by search parameter.
    let (obs, _) = page_all(&format!(
        "{b}/gp/fhir/Observation?patient={PATIENT}&_count=50"
    ));
    assert!(!obs.is_empty());
    // Nothing has changed since the seed: an incremental search returns nothing.
    let (s, now, _) = get(&format!("{b}/gp/fhir/metadata"));
    assert_eq!(s, 200);
    let stamp = now["date"].as_str().unwrap().replace('+', "%2B");
    let (later, _) = page_all(&format!("{b}/gp/fhir/Observation?_lastUpdated=gt{stamp}"));
    assert!(later.is_empty());
}

#[test]
fn bad_requests_get_operation_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start(dir.path());
    let b = &server.base;
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
        ("/gp/fhir/Patient/nobody/$everything", 404),
        ("/gp/fhir/Observation/x/$validate", 404),
    ] {
        let (s, body, _) = get(&format!("{b}{path}"));
        assert_eq!(s, status, "{path}: {body}");
        assert_eq!(body["resourceType"], "OperationOutcome", "{path}");
    }
}

#[test]
fn seed_refuses_bad_input_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("x.db").display());
    let out = endpoint()
        .args([
            "seed",
            "--db",
            &db,
            "--tenant",
            "GP!",
            "--from",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tenant"));
    let out = endpoint()
        .args([
            "seed",
            "--db",
            "postgres://x",
            "--tenant",
            "gp",
            "--from",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sqlite://"));
    let out = endpoint()
        .args([
            "seed",
            "--db",
            &db,
            "--tenant",
            "gp",
            "--from",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}
