//! Encrypted backups as a device meets them: a real process, real sockets. The owner
//! signs in through the relay with an Ed25519 key made here with ring and uploads
//! blobs; a device that holds only the recovery code fetches them with the fetch
//! secret.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
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

/// `PUT` a full blob under `r`'s locator.
fn put(base: &str, token: Option<&str>, r: &Recovery, data: &[u8]) -> Answer {
    put_on(base, token, r, None, data)
}

/// `PUT` a blob under `r`'s locator, with `X-Carry-Base: on` if given (an incremental).
fn put_on(base: &str, token: Option<&str>, r: &Recovery, on: Option<&str>, data: &[u8]) -> Answer {
    let mut req = agent()
        .put(format!("{base}/backup/v1/blobs/{}", r.locator))
        .header("content-type", "application/octet-stream")
        .header("x-carry-fetch-hash", &r.hash);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(on) = on {
        req = req.header("x-carry-base", on);
    }
    read(req.send(data).unwrap())
}

/// A fetch: status, version and base headers, bytes, Retry-After.
struct Fetched {
    status: u16,
    version: Option<String>,
    base: Option<String>,
    retry_after: Option<u64>,
    bytes: Vec<u8>,
}

/// Fetch the latest version.
fn fetch(base: &str, locator: &str, secret: &str) -> Fetched {
    fetch_path(base, &format!("/backup/v1/blobs/{locator}"), secret)
}

/// Fetch version `n` (as text: malformed numbers are tried too).
fn fetch_version(base: &str, locator: &str, n: &str, secret: &str) -> Fetched {
    fetch_path(
        base,
        &format!("/backup/v1/blobs/{locator}/versions/{n}"),
        secret,
    )
}

fn fetch_path(base: &str, path: &str, secret: &str) -> Fetched {
    let mut resp = agent()
        .get(format!("{base}{path}"))
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
    let base = h("x-carry-base");
    if resp.status() == 200 {
        assert_eq!(
            h("content-type").as_deref(),
            Some("application/octet-stream")
        );
    }
    Fetched {
        status: resp.status().as_u16(),
        version,
        base,
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
            json!({ "version": n, "bytes": 1000 + u32::from(n), "base": null,
                "restores": { "count": 0, "last_at": null } })
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
    assert_eq!(f.base, None, "a full version names no base");
    assert_eq!(f.bytes, blob(4, 1004));
    assert_eq!(list[0]["base"], Value::Null);

    // A wrong secret and an unknown locator answer alike.
    let wrong = B64.encode([9u8; 32]);
    assert_eq!(fetch(base, &r.locator, &wrong).status, 404);

    // The owner's next upload hears of the restore (the fetch of the latest above),
    // and of nothing else.
    let a = put(base, Some(&owner), &r, &blob(5, 1005));
    assert_eq!(a.status, 201, "{}", a.text);
    let restores = &a.json()["restores"];
    assert_eq!(restores["count"], 1, "{}", a.text);
    assert!(restores["last_at"].as_i64().unwrap() >= list[0]["created_at"].as_i64().unwrap());
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

/// The owner's listing as (version, base), newest first.
fn listing(base: &str, token: &str, r: &Recovery) -> Vec<(i64, Option<i64>)> {
    let v = call(
        base,
        "GET",
        &format!("/backup/v1/blobs/{}/versions", r.locator),
        Some(token),
        None,
    );
    assert_eq!(v.status, 200, "{}", v.text);
    v.json()["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_i64().unwrap(), v["base"].as_i64()))
        .collect()
}

#[test]
fn incrementals_build_on_the_latest_and_chains_are_pruned_whole() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--backup-versions", "2"]);
    let base = &server.base;
    let owner = sign_in(base);
    let r = recovery();

    // An incremental cannot start a backup: there is no latest version.
    let a = put_on(base, Some(&owner), &r, Some("1"), b"delta");
    assert_eq!(a.status, 409, "{}", a.text);
    assert!(a.json()["error"].is_string());
    assert_eq!(a.json()["latest"], Value::Null);
    assert!(a.json().as_object().unwrap().contains_key("latest"));
    assert_eq!(
        fetch(base, &r.locator, &r.secret).status,
        404,
        "nothing stored"
    );

    let a = put(base, Some(&owner), &r, &blob(1, 100));
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(
        a.json(),
        json!({ "version": 1, "bytes": 100, "base": null,
            "restores": { "count": 0, "last_at": null } })
    );
    let a = put_on(base, Some(&owner), &r, Some("1"), &blob(2, 20));
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(
        a.json(),
        json!({ "version": 2, "bytes": 20, "base": 1,
            "restores": { "count": 0, "last_at": null } })
    );

    // A base that is not the latest: 409 with the latest.
    for stale in ["1", "0", "3", "0001"] {
        let a = put_on(base, Some(&owner), &r, Some(stale), b"late");
        assert_eq!(a.status, 409, "{stale}: {}", a.text);
        assert_eq!(a.json()["latest"], 2, "{stale}");
        assert!(a.json()["error"].is_string());
    }
    // A malformed base: 400.
    for bad in ["two", "-1", "+2", "2.0", "", "0x2", "99999999999999999999"] {
        let a = put_on(base, Some(&owner), &r, Some(bad), b"bad");
        assert_eq!(a.status, 400, "{bad:?}: {}", a.text);
        assert!(a.json()["error"].is_string());
    }
    // Another identity is refused before its base is looked at.
    let other = sign_in(base);
    assert_eq!(put_on(base, Some(&other), &r, Some("2"), b"x").status, 403);
    assert_eq!(put_on(base, Some(&other), &r, Some("9"), b"x").status, 403);

    // The latest is served with its base; any kept version by number.
    let f = fetch(base, &r.locator, &r.secret);
    assert_eq!(f.status, 200);
    assert_eq!(
        (f.version.as_deref(), f.base.as_deref()),
        (Some("2"), Some("1"))
    );
    assert_eq!(f.bytes, blob(2, 20));
    let f = fetch_version(base, &r.locator, "1", &r.secret);
    assert_eq!(f.status, 200);
    assert_eq!((f.version.as_deref(), f.base.as_deref()), (Some("1"), None));
    assert_eq!(f.bytes, blob(1, 100));
    let f = fetch_version(base, &r.locator, "2", &r.secret);
    assert_eq!((f.status, f.base.as_deref()), (200, Some("1")));
    assert_eq!(listing(base, &owner, &r), [(2, Some(1)), (1, None)]);

    // keep = 2 counts fulls only: a chain is kept whole until two newer fulls exist.
    assert_eq!(put(base, Some(&owner), &r, &blob(3, 30)).status, 201);
    assert_eq!(
        put_on(base, Some(&owner), &r, Some("3"), &blob(4, 4)).status,
        201
    );
    assert_eq!(
        listing(base, &owner, &r),
        [(4, Some(3)), (3, None), (2, Some(1)), (1, None)]
    );
    assert_eq!(put(base, Some(&owner), &r, &blob(5, 50)).status, 201);
    assert_eq!(
        listing(base, &owner, &r),
        [(5, None), (4, Some(3)), (3, None)]
    );
    assert_eq!(fetch_version(base, &r.locator, "1", &r.secret).status, 404);
    assert_eq!(
        fetch_version(base, &r.locator, "4", &r.secret).bytes,
        blob(4, 4)
    );

    let log = server.log();
    assert!(log.contains("/backup/v1/blobs/{locator}/versions/{n}"));
    for secret in [&r.locator, &r.secret, &r.hash, &owner] {
        assert!(!log.contains(secret.as_str()), "the log leaks a secret");
    }
}

#[test]
fn fetching_by_version_counts_only_wrong_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let base = &server.base;
    let owner = sign_in(base);
    let r = recovery();
    assert_eq!(put(base, Some(&owner), &r, b"full").status, 201);

    // Unknown versions with the right secret: 404, never a wrong try.
    for n in ["2", "0", "9223372036854775807", "2", "2", "2", "2"] {
        let f = fetch_version(base, &r.locator, n, &r.secret);
        assert_eq!(f.status, 404, "version {n}");
        assert!(serde_json::from_slice::<Value>(&f.bytes).unwrap()["error"].is_string());
    }
    assert_eq!(fetch_version(base, &r.locator, "1", &r.secret).status, 200);
    // Malformed input is refused before any lookup.
    for n in ["x", "-1", "1.0", "%20"] {
        assert_eq!(
            fetch_version(base, &r.locator, n, &r.secret).status,
            400,
            "{n}"
        );
    }
    assert_eq!(fetch_version(base, &r.locator, "1", "short").status, 400);
    assert_eq!(fetch_version(base, "short", "1", &r.secret).status, 400);
    // An unknown locator and a wrong secret answer alike.
    let unknown = recovery();
    assert_eq!(
        fetch_version(base, &unknown.locator, "1", &unknown.secret).status,
        404
    );
    let wrong = B64.encode([3u8; 32]);
    for n in ["1", "2", "1", "7", "1"] {
        assert_eq!(fetch_version(base, &r.locator, n, &wrong).status, 404);
    }
    // Five wrong secrets by version lock the locator, for every route.
    for f in [
        fetch_version(base, &r.locator, "1", &r.secret),
        fetch_version(base, &r.locator, "2", &r.secret),
        fetch(base, &r.locator, &r.secret),
    ] {
        assert_eq!(f.status, 429);
        assert!((1..=900).contains(&f.retry_after.expect("Retry-After")));
    }
}

#[test]
fn a_chain_holds_64_incrementals_and_one_base_takes_one_upload() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let base = &server.base;
    let owner = sign_in(base);
    let r = recovery();
    assert_eq!(put(base, Some(&owner), &r, b"full").status, 201);
    for n in 1..=64 {
        let a = put_on(base, Some(&owner), &r, Some(&n.to_string()), b"inc");
        assert_eq!(a.status, 201, "incremental {n}: {}", a.text);
    }
    let a = put_on(base, Some(&owner), &r, Some("65"), b"inc");
    assert_eq!(a.status, 409, "{}", a.text);
    assert_eq!(a.json()["full_required"], true);
    assert!(a.json()["error"].is_string());
    let f = fetch(base, &r.locator, &r.secret);
    assert_eq!((f.status, f.version.as_deref()), (200, Some("65")));
    assert_eq!(put(base, Some(&owner), &r, b"full again").status, 201);

    // Eight devices racing on the same base: exactly one is stored.
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| put_on(base, Some(&owner), &r, Some("66"), b"race")))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                let a = h.join().unwrap();
                if a.status == 409 {
                    assert_eq!(a.json()["latest"], 67, "{}", a.text);
                }
                a.status
            })
            .collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        7,
        "{statuses:?}"
    );
    let f = fetch(base, &r.locator, &r.secret);
    assert_eq!(
        (f.version.as_deref(), f.base.as_deref()),
        (Some("67"), Some("66"))
    );
}
