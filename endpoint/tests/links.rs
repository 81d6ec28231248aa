//! The SMART Health Links host as its two clients meet it: a real process, real
//! sockets. The owner (a person's device) signs in through the relay with an Ed25519
//! key made here with ring, uploads a JWE and manages the link; a clinician's client
//! requests manifests, locations and direct files, with and without passcodes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use serde_json::{json, Value};

use common::*;

/// The HL7 IG's IPS vector: a real JWE (its key is not needed here).
fn jwe() -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/shl/ips-file.jwe.txt");
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

/// A small well-formed JWE (the server never decrypts).
fn small_jwe(tag: &str) -> String {
    format!("eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..aXYxMjM0NTY3ODkw.{tag}.dGFndGFndGFndGFn")
}

/// A person's device, signed in to the relay with a fresh Ed25519 key.
struct Owner {
    token: String,
}

impl Owner {
    /// A fresh key, signed in by the relay's challenge and session handshake.
    fn sign_in(base: &str) -> Self {
        Owner {
            token: sign_in(base),
        }
    }

    fn call(&self, base: &str, method: &str, path: &str, body: Option<Value>) -> Answer {
        call(base, method, path, Some(&self.token), body)
    }

    /// Create a link: its id and manifest URL.
    fn create(&self, base: &str, body: Value) -> (String, String) {
        let r = self.call(base, "POST", "/shl/v1/links", Some(body));
        assert_eq!(r.status, 201, "{}", r.text);
        let v = r.json();
        (
            v["id"].as_str().unwrap().to_string(),
            v["manifest_url"].as_str().unwrap().to_string(),
        )
    }

    /// A link's access log page and state.
    fn accesses(&self, base: &str, id: &str) -> Value {
        let r = self.call(base, "GET", &format!("/shl/v1/links/{id}/accesses"), None);
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()
    }

    fn list(&self, base: &str) -> Vec<Value> {
        let r = self.call(base, "GET", "/shl/v1/links", None);
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()["links"].as_array().unwrap().clone()
    }
}

/// A manifest request as a clinician's client makes it.
fn manifest(url: &str, body: Value) -> Answer {
    read(agent().post(url).send_json(body).unwrap())
}

fn get(url: &str) -> Answer {
    read(agent().get(url).call().unwrap())
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The (outcome, via, recipient) of each access, in order.
fn log_of(v: &Value) -> Vec<(String, String, String)> {
    v["accesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["outcome"].as_str().unwrap().to_string(),
                a["via"].as_str().unwrap().to_string(),
                a["recipient"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn triple(outcome: &str, via: &str, recipient: &str) -> (String, String, String) {
    (outcome.into(), via.into(), recipient.into())
}

#[test]
fn the_owner_api_needs_a_session_and_reaches_only_the_owners_links() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--shl-max-file", "100000"]);
    let b = &server.base;
    let file = jwe();
    let (alice, bob) = (Owner::sign_in(b), Owner::sign_in(b));

    // Without a session, or with a made-up one: 401 everywhere.
    let some_id = B64.encode([5u8; 32]);
    let routes = [
        ("POST", "/shl/v1/links".to_string()),
        ("GET", "/shl/v1/links".to_string()),
        ("PUT", format!("/shl/v1/links/{some_id}/file")),
        ("DELETE", format!("/shl/v1/links/{some_id}")),
        ("GET", format!("/shl/v1/links/{some_id}/accesses")),
    ];
    for (method, path) in &routes {
        for bad in [None, Some("made-up-token")] {
            let r = call(b, method, path, bad, Some(json!({ "file": file })));
            assert_eq!(r.status, 401, "{method} {path} with {bad:?}: {}", r.text);
            assert!(r.json()["error"].is_string());
        }
    }

    // Create: a 43-character id and the manifest URL under the public base.
    let before = now_s();
    let (id, url) = alice.create(b, json!({ "file": file, "flags": "L" }));
    assert_eq!(id.len(), 43);
    assert_eq!(B64.decode(&id).unwrap().len(), 32);
    assert_eq!(url, format!("{b}/shl/m/{id}"));
    let links = alice.list(b);
    assert_eq!(links.len(), 1);
    let l = &links[0];
    assert_eq!(
        (l["id"].as_str(), l["flags"].as_str(), l["state"].as_str()),
        (Some(id.as_str()), Some("L"), Some("active"))
    );
    assert_eq!(
        (l["expires_at"].clone(), l["accesses"].as_i64()),
        (Value::Null, Some(0))
    );
    assert!((before..=now_s()).contains(&l["created_at"].as_i64().unwrap()));

    // Bob sees none of it and can change none of it.
    assert!(bob.list(b).is_empty());
    let put = json!({ "file": small_jwe("Ym9i") });
    assert_eq!(
        bob.call(
            b,
            "PUT",
            &format!("/shl/v1/links/{id}/file"),
            Some(put.clone())
        )
        .status,
        404
    );
    assert_eq!(
        bob.call(b, "DELETE", &format!("/shl/v1/links/{id}"), None)
            .status,
        404
    );
    assert_eq!(
        bob.call(b, "GET", &format!("/shl/v1/links/{id}/accesses"), None)
            .status,
        404
    );
    assert_eq!(
        alice
            .call(b, "GET", "/shl/v1/links/not-an-id/accesses", None)
            .status,
        404
    );
    assert_eq!(
        alice
            .call(b, "DELETE", &format!("/shl/v1/links/{some_id}"), None)
            .status,
        404
    );

    // Refused uploads.
    let bad = [
        json!({ "file": "not a jwe" }),
        json!({ "file": "a.b.c.d" }),
        json!({ "file": file, "flags": "PU", "passcode": "1234" }),
        json!({ "file": file, "flags": "LPU", "passcode": "1234" }),
        json!({ "file": file, "flags": "X" }),
        json!({ "file": file, "flags": "P" }),
        json!({ "file": file, "flags": "P", "passcode": "123" }),
        json!({ "file": file, "flags": "P", "passcode": "x".repeat(65) }),
        json!({ "file": file, "passcode": "1234" }),
        json!({ "file": file, "expires_at": now_s() - 1 }),
        json!({ "flags": "L" }),
    ];
    for body in bad {
        let r = alice.call(b, "POST", "/shl/v1/links", Some(body.clone()));
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.json()["error"].is_string());
    }
    // Too large: the file (413), or the whole body far past the limit.
    let big = format!(
        "{}.{}",
        &file[..file.len() - 1],
        "A".repeat(100_000 - file.len() + 1)
    );
    assert!(big.len() > 100_000);
    let r = alice.call(b, "POST", "/shl/v1/links", Some(json!({ "file": big })));
    assert_eq!(r.status, 413, "{}", r.text);
    // Past the body limit (the file limit plus 64 KiB): refused before it is read. The
    // server may close the connection while the client still writes; that is a refusal
    // too.
    let huge = json!({ "file": "A".repeat(170_000) }).to_string();
    let sent = agent()
        .post(&format!("{b}/shl/v1/links"))
        .header("authorization", &format!("Bearer {}", alice.token))
        .header("content-type", "application/json")
        .send(huge);
    match sent {
        Ok(resp) => assert_eq!(read(resp).status, 413),
        Err(ureq::Error::Io(_)) => {}
        Err(e) => panic!("{e}"),
    }
    assert_eq!(alice.list(b).len(), 1, "nothing refused was stored");

    // The owner replaces the file: the manifest serves the new one.
    let r = alice.call(
        b,
        "PUT",
        &format!("/shl/v1/links/{id}/file"),
        Some(json!({ "file": "bad" })),
    );
    assert_eq!(r.status, 400);
    let r = alice.call(
        b,
        "PUT",
        &format!("/shl/v1/links/{id}/file"),
        Some(put.clone()),
    );
    assert_eq!(r.status, 204, "{}", r.text);
    let m = manifest(
        &url,
        json!({ "recipient": "Dr Okafor", "embeddedLengthMax": 100000 }),
    );
    assert_eq!(m.status, 200, "{}", m.text);
    assert_eq!(m.json()["files"][0]["embedded"], put["file"]);

    // Revoke: 204, again 204; the file can no longer be replaced; the link stays listed.
    assert_eq!(
        alice
            .call(b, "DELETE", &format!("/shl/v1/links/{id}"), None)
            .status,
        204
    );
    assert_eq!(
        alice
            .call(b, "DELETE", &format!("/shl/v1/links/{id}"), None)
            .status,
        204
    );
    let r = alice.call(b, "PUT", &format!("/shl/v1/links/{id}/file"), Some(put));
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(alice.list(b)[0]["state"], "revoked");
    assert_eq!(
        manifest(&url, json!({ "recipient": "Dr Okafor" })).status,
        404
    );
    let log = alice.accesses(b, &id);
    assert_eq!(log["state"], "revoked");
    assert_eq!(
        log_of(&log),
        [triple("ok", "manifest", "Dr Okafor")],
        "nothing is recorded after a revocation"
    );
    assert_eq!(
        (log["refused"].as_i64(), &log["last_refused_at"]),
        (Some(0), &Value::Null)
    );
    assert_eq!(alice.list(b)[0]["accesses"], 1);
    assert_eq!(alice.list(b)[0]["refused"], 0);
}

#[test]
fn manifests_embed_the_file_or_point_to_a_short_lived_location() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--shl-location-ttl", "2"]);
    let b = &server.base;
    let file = jwe();
    let alice = Owner::sign_in(b);
    let (id, url) = alice.create(
        b,
        json!({ "file": file, "flags": "L", "expires_at": now_s() + 3600 }),
    );

    // Embedded when the client allows the length.
    let m = manifest(
        &url,
        json!({ "recipient": "Dr A", "embeddedLengthMax": file.len() }),
    );
    assert_eq!(m.status, 200, "{}", m.text);
    assert!(m
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(m.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        m.json(),
        json!({ "files": [{ "contentType": "application/fhir+json", "embedded": file }] })
    );

    // Otherwise a location under the public base, served as application/jose.
    for body in [
        json!({ "recipient": "Dr B" }),
        json!({ "recipient": "Dr B", "embeddedLengthMax": file.len() - 1 }),
    ] {
        let m = manifest(&url, body);
        assert_eq!(m.status, 200, "{}", m.text);
        let files = m.json()["files"].clone();
        assert_eq!(files.as_array().unwrap().len(), 1);
        assert_eq!(files[0]["contentType"], "application/fhir+json");
        assert!(files[0].get("embedded").is_none());
        let location = files[0]["location"].as_str().unwrap().to_string();
        let token = location.strip_prefix(&format!("{b}/shl/f/")).unwrap();
        assert_eq!(B64.decode(token).unwrap().len(), 32);
        let f = get(&location);
        assert_eq!(f.status, 200);
        assert_eq!(f.header("content-type"), Some("application/jose"));
        assert_eq!(f.header("access-control-allow-origin"), Some("*"));
        assert_eq!(f.text, file);
    }

    // A location expires with its TTL (2 s here; the option allows at most 3600).
    let m = manifest(&url, json!({ "recipient": "Dr C" }));
    let location = m.json()["files"][0]["location"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_millis(3100));
    let f = get(&location);
    assert_eq!(f.status, 404, "{}", f.text);
    assert_eq!(f.header("access-control-allow-origin"), Some("*"));

    // A location for a link revoked after the manifest: 404.
    let m = manifest(&url, json!({ "recipient": "Dr D" }));
    let location = m.json()["files"][0]["location"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        alice
            .call(b, "DELETE", &format!("/shl/v1/links/{id}"), None)
            .status,
        204
    );
    assert_eq!(get(&location).status, 404);

    // Malformed requests: 400; unknown links and tokens: 404 with an error.
    let (_, url2) = alice.create(b, json!({ "file": file }));
    for body in [
        json!({}),
        json!({ "recipient": "" }),
        json!({ "recipient": "   " }),
        json!({ "recipient": "r".repeat(201) }),
        json!({ "recipient": 7 }),
        json!({ "recipient": "Dr E", "embeddedLengthMax": -1 }),
    ] {
        let r = manifest(&url2, body.clone());
        assert_eq!(r.status, 400, "{body}: {}", r.text);
    }
    let r = read(
        agent()
            .post(&url2)
            .header("content-type", "application/json")
            .send("not json")
            .unwrap(),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        manifest(&url2, json!({ "recipient": "r".repeat(200) })).status,
        200
    );
    let unknown = manifest(
        &format!("{b}/shl/m/{}", B64.encode([3u8; 32])),
        json!({ "recipient": "x" }),
    );
    assert_eq!(unknown.status, 404);
    assert!(unknown.json()["error"].is_string());
    assert_eq!(
        manifest(&format!("{b}/shl/m/short"), json!({ "recipient": "x" })).status,
        404
    );
    assert_eq!(
        get(&format!("{b}/shl/f/{}", B64.encode([4u8; 32]))).status,
        404
    );
    assert_eq!(get(&format!("{b}/shl/f/nonsense")).status, 404);

    // The log of the first link: its openings, in order, each manifest with the file
    // fetched through it as one; the location that expired was a refusal, counted.
    let log = alice.accesses(b, &id);
    assert_eq!(
        log_of(&log),
        [
            triple("ok", "manifest", "Dr A"),
            triple("ok", "manifest", "Dr B"),
            triple("ok", "manifest", "Dr B"),
            triple("ok", "manifest", "Dr C"),
            triple("ok", "manifest", "Dr D"),
        ],
        "a revoked link's tokens are gone, so fetching one is not the link's access"
    );
    assert_eq!(log["refused"], 1);
    let seqs: Vec<i64> = log["accesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=5).collect::<Vec<_>>());
    let page = alice
        .call(
            b,
            "GET",
            &format!("/shl/v1/links/{id}/accesses?after=3"),
            None,
        )
        .json();
    assert_eq!(page["accesses"].as_array().unwrap().len(), 2);
    assert_eq!(page["accesses"][0]["seq"], 4);
    assert!(page["accesses"][0]["at"].as_i64().unwrap() >= now_s() - 60);
    assert_eq!(
        alice
            .call(
                b,
                "GET",
                &format!("/shl/v1/links/{id}/accesses?after=x"),
                None
            )
            .status,
        400
    );
}

#[test]
fn the_location_ttl_is_at_most_an_hour() {
    for (ttl, ok) in [("3601", false), ("0", false), ("3600", true)] {
        let dir = tempfile::tempdir().unwrap();
        if ok {
            let server = start(dir.path(), &["--shl-location-ttl", ttl]);
            assert!(server.base.starts_with("http://"));
            continue;
        }
        let out = Command::new(env!("CARGO_BIN_EXE_carry-endpoint"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--shl-location-ttl",
                ttl,
            ])
            .arg("--db")
            .arg(format!("sqlite://{}", dir.path().join("x.db").display()))
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "--shl-location-ttl {ttl} was accepted"
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("shl-location-ttl"));
    }
}

#[test]
fn u_links_are_fetched_directly_and_others_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let b = &server.base;
    let file = jwe();
    let alice = Owner::sign_in(b);
    let (id, url) = alice.create(b, json!({ "file": file, "flags": "LU" }));
    let f = get(&format!("{url}?recipient=Dr%20Direct"));
    assert_eq!(f.status, 200, "{}", f.text);
    assert_eq!(f.header("content-type"), Some("application/jose"));
    assert_eq!(f.header("access-control-allow-origin"), Some("*"));
    assert_eq!(f.text, file);
    assert_eq!(get(&url).status, 400, "a recipient is required");
    assert_eq!(get(&format!("{url}?recipient=")).status, 400);
    // A link without U is not served by GET.
    let (plain, plain_url) = alice.create(b, json!({ "file": file }));
    assert_eq!(
        get(&format!("{plain_url}?recipient=Dr%20Direct")).status,
        404
    );
    assert_eq!(
        log_of(&alice.accesses(b, &id)),
        [triple("ok", "direct", "Dr Direct")]
    );
    let refused = alice.accesses(b, &plain);
    assert!(
        log_of(&refused).is_empty(),
        "a refusal is counted, not logged"
    );
    assert_eq!(refused["refused"], 1);
    assert!(refused["last_refused_at"].as_i64().unwrap() >= now_s() - 60);
    // Revoked: 404.
    assert_eq!(
        alice
            .call(b, "DELETE", &format!("/shl/v1/links/{id}"), None)
            .status,
        204
    );
    assert_eq!(get(&format!("{url}?recipient=Dr%20Direct")).status, 404);
}

#[test]
fn wrong_passcodes_count_down_then_lock_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let b = &server.base;
    let file = jwe();
    let alice = Owner::sign_in(b);

    // The right passcode opens a P link.
    let (_, open_url) = alice.create(
        b,
        json!({ "file": file, "flags": "P", "passcode": "blue horse 42" }),
    );
    let ok = manifest(
        &open_url,
        json!({ "recipient": "Dr P", "passcode": "blue horse 42", "embeddedLengthMax": 1 << 20 }),
    );
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.json()["files"][0]["embedded"], file);

    let (id, url) = alice.create(
        b,
        json!({ "file": file, "flags": "LP", "passcode": "blue horse 42" }),
    );
    // Missing and wrong passcodes both count: 4, 3, 2, 1, 0 left.
    let guesses = [
        None,
        Some("blue horse 43"),
        Some("12"),
        Some("Blue horse 42"),
        Some("x"),
    ];
    for (i, guess) in guesses.iter().enumerate() {
        let mut body = json!({ "recipient": "Mallory" });
        if let Some(g) = guess {
            body["passcode"] = json!(g);
        }
        let r = manifest(&url, body);
        assert_eq!(r.status, 401, "{}", r.text);
        assert_eq!(r.json(), json!({ "remainingAttempts": 4 - i as i64 }));
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    }
    // Locked: 404 for a wrong and for the right passcode.
    let r = manifest(&url, json!({ "recipient": "Mallory", "passcode": "nope" }));
    assert_eq!(r.status, 404);
    let r = manifest(
        &url,
        json!({ "recipient": "Dr P", "passcode": "blue horse 42" }),
    );
    assert_eq!(r.status, 404, "{}", r.text);
    let log = alice.accesses(b, &id);
    assert_eq!(
        (log["state"].as_str(), log["remaining_attempts"].as_i64()),
        (Some("locked"), Some(0))
    );
    // The five wrong passcodes are counted as refusals; once locked, nothing more.
    assert!(log_of(&log).is_empty());
    assert_eq!(log["refused"], 5);
    let listed = alice.list(b);
    let this = listed.iter().find(|l| l["id"] == id.as_str()).unwrap();
    assert_eq!(
        (
            this["state"].as_str(),
            this["accesses"].as_i64(),
            this["refused"].as_i64()
        ),
        (Some("locked"), Some(0), Some(5))
    );
}

#[test]
fn fifty_parallel_wrong_guesses_get_exactly_five_401s() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let b = &server.base;
    let alice = Owner::sign_in(b);
    let (id, url) = alice.create(
        b,
        json!({ "file": jwe(), "flags": "P", "passcode": "correct horse" }),
    );
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let url = url.clone();
                s.spawn(move || {
                    let body = json!({ "recipient": format!("guesser {i}"), "passcode": format!("guess {i}") });
                    let r = manifest(&url, body);
                    if r.status == 401 {
                        assert!(r.json()["remainingAttempts"].as_i64().unwrap() < 5);
                    }
                    r.status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 404).count(),
        45,
        "{statuses:?}"
    );
    // The right passcode after the lockout: 404.
    let r = manifest(
        &url,
        json!({ "recipient": "Dr P", "passcode": "correct horse" }),
    );
    assert_eq!(r.status, 404);
    let log = alice.accesses(b, &id);
    assert_eq!(log["state"], "locked");
    assert!(log_of(&log).is_empty());
    assert_eq!(
        log["refused"], 5,
        "the five counted; nothing after the lock"
    );
}

#[test]
fn expired_and_one_time_links_stop_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let b = &server.base;
    let file = jwe();
    let alice = Owner::sign_in(b);

    // Expiring in a couple of seconds.
    let expires = now_s() + 2;
    let (id, url) = alice.create(b, json!({ "file": file, "expires_at": expires }));
    assert_eq!(
        manifest(
            &url,
            json!({ "recipient": "Dr T", "embeddedLengthMax": 1 << 20 })
        )
        .status,
        200
    );
    while now_s() <= expires {
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(manifest(&url, json!({ "recipient": "Dr T" })).status, 404);
    let log = alice.accesses(b, &id);
    assert_eq!(
        (log["state"].as_str(), log["expires_at"].as_i64()),
        (Some("expired"), Some(expires))
    );
    assert_eq!(
        log_of(&log),
        [triple("ok", "manifest", "Dr T")],
        "nothing is recorded after a link expires"
    );
    assert_eq!(log["refused"], 0);

    // A one-time link, embedded: served once.
    let (once, once_url) = alice.create(b, json!({ "file": file, "once": true }));
    assert_eq!(
        manifest(
            &once_url,
            json!({ "recipient": "Dr O", "embeddedLengthMax": 1 << 20 })
        )
        .status,
        200
    );
    assert_eq!(
        manifest(
            &once_url,
            json!({ "recipient": "Dr Q", "embeddedLengthMax": 1 << 20 })
        )
        .status,
        404
    );
    let log = alice.accesses(b, &once);
    assert_eq!(log["state"], "used");
    assert_eq!(
        log_of(&log),
        [triple("ok", "manifest", "Dr O")],
        "nothing is recorded once a one-time link is used"
    );
    assert_eq!(log["refused"], 0);

    // A one-time link with a location: the location works once, and the manifest
    // with its file is one opening.
    let (once, once_url) = alice.create(b, json!({ "file": file, "once": true }));
    let m = manifest(&once_url, json!({ "recipient": "Dr O" }));
    let location = m.json()["files"][0]["location"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(get(&location).status, 200);
    assert_eq!(get(&location).status, 404);
    assert_eq!(
        manifest(&once_url, json!({ "recipient": "Dr O" })).status,
        404
    );
    let log = alice.accesses(b, &once);
    assert_eq!(log_of(&log), [triple("ok", "manifest", "Dr O")]);
    assert_eq!(log["refused"], 0);
}

#[test]
fn public_routes_answer_cors_preflights_and_the_owner_api_does_not_open_cors() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let b = &server.base;
    let alice = Owner::sign_in(b);
    let (_, url) = alice.create(b, json!({ "file": jwe() }));
    for target in [url.clone(), format!("{b}/shl/f/{}", B64.encode([1u8; 32]))] {
        let r = read(
            agent()
                .options(&target)
                .header("origin", "https://viewer.example.org")
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type")
                .call()
                .unwrap(),
        );
        assert_eq!(r.status, 204, "{target}");
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        assert!(r
            .header("access-control-allow-methods")
            .unwrap()
            .contains("POST"));
        assert!(r
            .header("access-control-allow-headers")
            .unwrap()
            .to_ascii_lowercase()
            .contains("content-type"));
    }
    let m = read(
        agent()
            .post(&url)
            .header("origin", "https://viewer.example.org")
            .send_json(json!({ "recipient": "Dr X" }))
            .unwrap(),
    );
    assert_eq!(m.status, 200);
    assert_eq!(m.header("access-control-allow-origin"), Some("*"));
    let owner = alice.call(b, "GET", "/shl/v1/links", None);
    assert!(owner.header("access-control-allow-origin").is_none());
}

#[test]
fn the_viewer_is_served_from_the_binary_with_a_strict_policy() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let b = &server.base;
    for path in ["/view", "/view/"] {
        let r = get(&format!("{b}{path}"));
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        let csp = r.header("content-security-policy").unwrap();
        for part in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src *",
        ] {
            assert!(csp.contains(part), "{csp}");
        }
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
        assert!(r.text.contains("src=\"/view/viewer.js\""));
        assert!(r.text.contains("href=\"/view/viewer.css\""));
        assert!(
            !r.text.contains("http://") && !r.text.contains("https://"),
            "no third-party URL"
        );
    }
    let js = get(&format!("{b}/view/viewer.js"));
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(js.text.contains("decryptJwe"));
    let css = get(&format!("{b}/view/viewer.css"));
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert!(!css.text.contains("url("), "no remote fonts or images");
}

#[test]
fn the_rate_limit_covers_share_links() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--rate-limit", "2"]);
    let url = format!("{}/shl/m/{}", server.base, B64.encode([2u8; 32]));
    let mut limited = None;
    for _ in 0..6 {
        let r = manifest(&url, json!({ "recipient": "Dr R" }));
        if r.status == 429 {
            assert!(r.json()["error"].is_string());
            assert_eq!(r.header("access-control-allow-origin"), Some("*"));
            limited = r.header("retry-after").map(str::to_string);
            break;
        }
        assert_eq!(r.status, 404);
    }
    assert_eq!(limited.as_deref(), Some("1"));
}

#[test]
fn nothing_secret_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--shl-location-ttl", "60"]);
    let b = &server.base;
    let file = small_jwe("c2VjcmV0Y2lwaGVydGV4dA");
    let alice = Owner::sign_in(b);
    let (id, url) = alice.create(
        b,
        json!({ "file": file, "flags": "P", "passcode": "zebra-passcode-77" }),
    );
    manifest(
        &url,
        json!({ "recipient": "Recipient-Name-Q", "passcode": "wrong-guess-55" }),
    );
    let m = manifest(
        &url,
        json!({ "recipient": "Recipient-Name-Q", "passcode": "zebra-passcode-77" }),
    );
    let location = m.json()["files"][0]["location"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(get(&location).status, 200);
    alice.accesses(b, &id);
    let log = server.log();
    assert!(log.contains("request"), "the request log is on: {log}");
    let token = location.rsplit('/').next().unwrap();
    for secret in [
        "zebra-passcode-77",
        "wrong-guess-55",
        "Recipient-Name-Q",
        "c2VjcmV0Y2lwaGVydGV4dA",
        token,
        id.as_str(),
        alice.token.as_str(),
    ] {
        assert!(!log.contains(secret), "the log holds {secret}");
    }
}

/// Rows in the share-link access log of the endpoint's SQLite file in `dir`.
fn access_rows(dir: &Path) -> i64 {
    let db = rusqlite::Connection::open_with_flags(
        dir.join("endpoint.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    db.query_row("SELECT count(*) FROM shl_accesses", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_link_holder_can_neither_flood_nor_forge_the_owners_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--shl-location-ttl", "60"]);
    let b = &server.base;
    let file = jwe();
    let alice = Owner::sign_in(b);
    let (id, url) = alice.create(
        b,
        json!({ "file": file, "flags": "P", "passcode": "blue horse 42" }),
    );

    // 5,000 requests the link refuses (a direct GET of a link without U needs no
    // passcode), from eight clients at once: not one row, a count of 5,000.
    let before = access_rows(dir.path());
    std::thread::scope(|s| {
        for t in 0..8 {
            let url = url.clone();
            s.spawn(move || {
                for i in 0..625 {
                    let r = get(&format!("{url}?recipient=Mallory%20{t}-{i}"));
                    assert_eq!(r.status, 404, "{}", r.text);
                }
            });
        }
    });
    let log = alice.accesses(b, &id);
    assert!(log_of(&log).is_empty());
    assert_eq!(log["refused"], 5_000);
    let last = log["last_refused_at"].as_i64().unwrap();
    assert!((now_s() - 60..=now_s()).contains(&last));
    assert_eq!(access_rows(dir.path()), before, "no new rows");
    assert_eq!(log["state"], "active", "refusals lock nothing");

    // A recipient that would read as another line, or recolour the owner's
    // terminal, is refused before anything is counted, by either route.
    let forged = [
        "Dr A\nok via manifest, claimed by 'Dr B'",
        "Dr A\r\nok",
        "\u{1b}[32mDr Trusted\u{1b}[0m",
        "Dr \u{202e}A",
        "Dr \u{9b}A",
    ];
    for recipient in forged {
        let r = manifest(
            &url,
            json!({ "recipient": recipient, "passcode": "blue horse 42" }),
        );
        assert_eq!(r.status, 400, "{recipient:?}: {}", r.text);
        let query = serde_urlencoded::to_string([("recipient", recipient)]).unwrap();
        let r = get(&format!("{url}?{query}"));
        assert_eq!(r.status, 400, "{recipient:?}: {}", r.text);
    }
    let log = alice.accesses(b, &id);
    assert_eq!(
        (log_of(&log).len(), log["refused"].as_i64()),
        (0, Some(5_000))
    );

    // A wrong passcode is one more refusal (and one attempt fewer); the right one,
    // a manifest and the file fetched through its location, is one opening.
    let r = manifest(&url, json!({ "recipient": "Mallory", "passcode": "nope" }));
    assert_eq!(r.json(), json!({ "remainingAttempts": 4 }));
    let m = manifest(
        &url,
        json!({ "recipient": "Dr Okafor", "passcode": "blue horse 42" }),
    );
    assert_eq!(m.status, 200, "{}", m.text);
    let location = m.json()["files"][0]["location"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(get(&location).text, file);
    assert_eq!(get(&location).text, file, "a reload is the same opening");
    let log = alice.accesses(b, &id);
    assert_eq!(log_of(&log), [triple("ok", "manifest", "Dr Okafor")]);
    assert_eq!(log["refused"], 5_001);
    assert_eq!(access_rows(dir.path()), before + 1);

    // Revoked: whatever comes after is refused and nothing at all is recorded.
    assert_eq!(
        alice
            .call(b, "DELETE", &format!("/shl/v1/links/{id}"), None)
            .status,
        204
    );
    let last = alice.accesses(b, &id)["last_refused_at"].clone();
    for i in 0..100 {
        assert_eq!(get(&format!("{url}?recipient=Mallory%20{i}")).status, 404);
        let body = json!({ "recipient": format!("Mallory {i}"), "passcode": "blue horse 42" });
        assert_eq!(manifest(&url, body).status, 404);
        let wrong = json!({ "recipient": format!("Mallory {i}"), "passcode": "nope" });
        assert_eq!(manifest(&url, wrong).status, 404);
    }
    assert_eq!(get(&location).status, 404);
    let log = alice.accesses(b, &id);
    assert_eq!(log["state"], "revoked");
    assert_eq!(log_of(&log), [triple("ok", "manifest", "Dr Okafor")]);
    assert_eq!(
        (&log["refused"], &log["last_refused_at"]),
        (&json!(5_001), &last)
    );
    assert_eq!(
        log["remaining_attempts"], 4,
        "no failure counted after the end"
    );
    assert_eq!(access_rows(dir.path()), before + 1);
}
