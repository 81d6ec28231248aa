//! Encrypted backups as a device meets them: a real process, real sockets. The owner
//! signs in through the relay with an Ed25519 key made here with ring and uploads
//! blobs; a device that holds only the recovery code fetches them with the fetch
//! secret.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use serde_json::{json, Value};

use common::*;

/// What a recovery code yields: a locator and a fetch secret (random here).
struct Recovery {
    locator: String,
    secret: String,
    hash: String,
}

fn recovery() -> Recovery {
    use ring::rand::SecureRandom as _;
    let rng = ring::rand::SystemRandom::new();
    let (mut locator, mut secret) = ([0u8; 32], [0u8; 32]);
    rng.fill(&mut locator).unwrap();
    rng.fill(&mut secret).unwrap();
    Recovery {
        locator: B64.encode(locator),
        secret: B64.encode(secret),
        hash: B64.encode(ring::digest::digest(&ring::digest::SHA256, &secret)),
    }
}

/// `PUT` a blob under `r`'s locator.
fn put(base: &str, token: Option<&str>, r: &Recovery, data: &[u8]) -> Answer {
    let mut req = agent()
        .put(format!("{base}/backup/v1/blobs/{}", r.locator))
        .header("content-type", "application/octet-stream")
        .header("x-carry-fetch-hash", &r.hash);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    read(req.send(data).unwrap())
}

/// A fetch: status, version header, bytes, Retry-After.
struct Fetched {
    status: u16,
    version: Option<String>,
    retry_after: Option<u64>,
    bytes: Vec<u8>,
}

fn fetch(base: &str, locator: &str, secret: &str) -> Fetched {
    let mut resp = agent()
        .get(format!("{base}/backup/v1/blobs/{locator}"))
        .header("x-carry-fetch", secret)
        .call()
        .unwrap();
    let h = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (version, retry_after) = (h("x-carry-version"), h("retry-after"));
    if resp.status() == 200 {
        assert_eq!(
            h("content-type").as_deref(),
            Some("application/octet-stream")
        );
    }
    Fetched {
        status: resp.status().as_u16(),
        version,
        retry_after: retry_after.and_then(|v| v.parse().ok()),
        bytes: resp
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .unwrap_or_default(),
    }
}

fn blob(n: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(n))
        .collect()
}

#[test]
fn backups_belong_to_their_owner_keep_three_versions_and_need_the_fetch_secret() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let base = &server.base;
    let r = recovery();

    // An upload needs a session.
    let a = put(base, None, &r, b"nope");
    assert_eq!(a.status, 401, "{}", a.text);
    assert!(a.json()["error"].is_string());
    let bad = put(base, Some("not-a-token"), &r, b"nope");
    assert_eq!(bad.status, 401);

    let owner = sign_in(base);
    let other = sign_in(base);
    for n in 1..=4u8 {
        let a = put(base, Some(&owner), &r, &blob(n, 1000 + usize::from(n)));
        assert_eq!(a.status, 201, "{}", a.text);
        assert_eq!(
            a.json(),
            json!({ "version": n, "bytes": 1000 + u32::from(n) })
        );
    }

    // Another identity can neither write, list nor delete it.
    let a = put(base, Some(&other), &r, b"overwrite");
    assert_eq!(a.status, 403, "{}", a.text);
    let path = format!("/backup/v1/blobs/{}", r.locator);
    let versions = format!("{path}/versions");
    assert_eq!(call(base, "GET", &versions, Some(&other), None).status, 404);
    assert_eq!(call(base, "DELETE", &path, Some(&other), None).status, 404);
    assert_eq!(call(base, "GET", &versions, None, None).status, 401);

    // The owner sees the three newest, newest first.
    let v = call(base, "GET", &versions, Some(&owner), None);
    assert_eq!(v.status, 200, "{}", v.text);
    let list = v.json()["versions"].as_array().unwrap().clone();
    let numbers: Vec<i64> = list
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [4, 3, 2]);
    assert_eq!(list[0]["bytes"], 1004);
    assert!(list[0]["created_at"].as_i64().unwrap() > 1_600_000_000);

    // Anyone with the fetch secret gets the newest, without a session.
    let f = fetch(base, &r.locator, &r.secret);
    assert_eq!(f.status, 200);
    assert_eq!(f.version.as_deref(), Some("4"));
    assert_eq!(f.bytes, blob(4, 1004));

    // A wrong secret and an unknown locator answer alike.
    let wrong = B64.encode([9u8; 32]);
    assert_eq!(fetch(base, &r.locator, &wrong).status, 404);
    let unknown = recovery();
    assert_eq!(fetch(base, &unknown.locator, &unknown.secret).status, 404);
    // Malformed input is refused before any lookup.
    assert_eq!(fetch(base, &r.locator, "short").status, 400);
    assert_eq!(fetch(base, "short", &r.secret).status, 400);

    // Delete, then nothing is served.
    let d = call(base, "DELETE", &path, Some(&owner), None);
    assert_eq!(d.status, 204, "{}", d.text);
    assert_eq!(fetch(base, &r.locator, &r.secret).status, 404);
    assert_eq!(call(base, "GET", &versions, Some(&owner), None).status, 404);

    // Nothing secret reaches the log.
    let log = server.log();
    assert!(
        log.contains("/backup/v1/blobs/{locator}"),
        "routes are logged"
    );
    for secret in [&r.locator, &r.secret, &r.hash, &owner] {
        assert!(!log.contains(secret.as_str()), "the log leaks a secret");
    }
}

#[test]
fn five_wrong_secrets_lock_the_locator() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let base = &server.base;
    let owner = sign_in(base);
    let (r, other) = (recovery(), recovery());
    assert_eq!(put(base, Some(&owner), &r, b"locked away").status, 201);
    assert_eq!(put(base, Some(&owner), &other, b"elsewhere").status, 201);
    let wrong = B64.encode([1u8; 32]);
    for _ in 0..5 {
        assert_eq!(fetch(base, &r.locator, &wrong).status, 404);
    }
    let f = fetch(base, &r.locator, &r.secret);
    assert_eq!(f.status, 429, "even the right secret waits");
    let left = f.retry_after.expect("Retry-After");
    assert!((1..=900).contains(&left), "{left}");
    assert!(
        f.bytes.is_empty()
            || serde_json::from_slice::<Value>(&f.bytes).unwrap()["error"].is_string()
    );
    // Other locators still serve.
    let o = fetch(base, &other.locator, &other.secret);
    assert_eq!(
        (o.status, o.bytes.as_slice()),
        (200, b"elsewhere".as_slice())
    );
}

#[test]
fn oversize_blobs_get_413_and_versions_follow_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        &["--backup-max-bytes", "1000", "--backup-versions", "2"],
    );
    let base = &server.base;
    let owner = sign_in(base);
    let r = recovery();
    assert_eq!(put(base, Some(&owner), &r, &blob(1, 1000)).status, 201);
    let a = put(base, Some(&owner), &r, &blob(2, 1001));
    assert_eq!(a.status, 413, "{}", a.text);
    assert!(a.json()["error"].is_string());
    // Without a declared length (chunked), the limit holds while reading.
    let chunked = agent()
        .put(format!("{base}/backup/v1/blobs/{}", r.locator))
        .header("content-type", "application/octet-stream")
        .header("x-carry-fetch-hash", &r.hash)
        .header("authorization", format!("Bearer {owner}"))
        .send(ureq::SendBody::from_reader(&mut std::io::Cursor::new(
            blob(3, 5000),
        )))
        .unwrap();
    assert_eq!(chunked.status().as_u16(), 413);
    // A body that is not octets, or no fetch hash, is refused.
    let j = call(
        base,
        "PUT",
        &format!("/backup/v1/blobs/{}", r.locator),
        Some(&owner),
        Some(json!({})),
    );
    assert_eq!(j.status, 415);
    for n in 2..=3 {
        assert_eq!(put(base, Some(&owner), &r, &blob(n, 10)).status, 201);
    }
    let v = call(
        base,
        "GET",
        &format!("/backup/v1/blobs/{}/versions", r.locator),
        Some(&owner),
        None,
    );
    let numbers: Vec<i64> = v.json()["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [3, 2]);
    let f = fetch(base, &r.locator, &r.secret);
    assert_eq!((f.status, f.version.as_deref()), (200, Some("3")));
}

#[test]
fn the_rate_limit_covers_backups() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--rate-limit", "2"]);
    let r = recovery();
    let statuses: Vec<u16> = (0..6)
        .map(|_| fetch(&server.base, &r.locator, &r.secret).status)
        .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
}
