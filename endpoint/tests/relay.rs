//! The share relay as a client meets it: a real process, real sockets, Ed25519 keys
//! made and used here with ring. Signs in, publishes keys, posts, fetches, acks and
//! withdraws envelopes, and checks each refusal.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::{json, Value};

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

/// Serve an empty database with `extra` options.
fn start(dir: &Path, extra: &[&str]) -> Server {
    let db = format!("sqlite://{}", dir.join("relay.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_carry-endpoint"))
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
    Server { child, base }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

/// A response's status, JSON body (`Null` when there is none) and `Retry-After`.
fn read(mut resp: ureq::http::Response<ureq::Body>) -> (u16, Value, Option<String>) {
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.body_mut().read_json().unwrap_or(Value::Null);
    (status, body, retry)
}

/// Call the relay: `method` on `/relay/v1{path}`, with a session token and a JSON body
/// if given.
/// What a sign-in signs before the challenge, for the endpoint whose relay is at
/// `base`: the context and the endpoint's origin.
fn auth_context(base: &str) -> Vec<u8> {
    let origin = base.trim_end_matches("/relay/v1");
    [
        b"carry-relay-auth-v2\n".as_slice(),
        origin.as_bytes(),
        b"\n",
    ]
    .concat()
}

fn call(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("{base}/relay/v1{path}");
    let auth = token.map(|t| format!("Bearer {t}"));
    let a = agent();
    let resp = match (method, body) {
        ("GET", _) => {
            let mut r = a.get(&url);
            if let Some(h) = &auth {
                r = r.header("authorization", h);
            }
            r.call()
        }
        ("DELETE", _) => {
            let mut r = a.delete(&url);
            if let Some(h) = &auth {
                r = r.header("authorization", h);
            }
            r.call()
        }
        (m, body) => {
            let mut r = if m == "PUT" {
                a.put(&url)
            } else {
                a.post(&url)
            };
            if let Some(h) = &auth {
                r = r.header("authorization", h);
            }
            r.send_json(body.unwrap_or(Value::Null))
        }
    }
    .unwrap();
    let (status, body, _) = read(resp);
    (status, body)
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// A person: an Ed25519 key pair.
struct Person {
    keys: Ed25519KeyPair,
}

impl Person {
    fn new() -> Self {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        Person {
            keys: Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap(),
        }
    }

    fn public(&self) -> String {
        b64(self.keys.public_key().as_ref())
    }

    fn sign(&self, context: &[u8], data: &[u8]) -> String {
        b64(self.keys.sign(&[context, data].concat()).as_ref())
    }

    /// The mailbox id, as the protocol defines it.
    fn mailbox(&self) -> String {
        let input = [
            b"carry-mailbox-v1".as_slice(),
            self.keys.public_key().as_ref(),
        ]
        .concat();
        b64(&ring::digest::digest(&ring::digest::SHA256, &input).as_ref()[..16])
    }

    /// A fresh challenge for this key.
    fn challenge(&self, base: &str) -> String {
        let (s, c) = call(
            base,
            "POST",
            "/challenge",
            None,
            Some(json!({ "key": self.public() })),
        );
        assert_eq!(s, 200, "{c}");
        assert_eq!(c["expires_in"], 120);
        c["challenge"].as_str().unwrap().to_string()
    }

    /// The challenge signed as the protocol says, for the endpoint whose relay is at
    /// `base`.
    fn answer(&self, base: &str, challenge: &str) -> Value {
        let raw = B64.decode(challenge).unwrap();
        json!({
            "key": self.public(),
            "challenge": challenge,
            "signature": self.sign(&auth_context(base), &raw),
        })
    }

    /// Sign in: the session token.
    fn sign_in(&self, base: &str) -> String {
        let c = self.challenge(base);
        let (s, session) = call(base, "POST", "/session", None, Some(self.answer(base, &c)));
        assert_eq!(s, 200, "{session}");
        assert_eq!(session["expires_in"], 3600);
        assert_eq!(session["mailbox"], self.mailbox());
        session["token"].as_str().unwrap().to_string()
    }

    /// Publish an encryption key (made up: the relay only checks the binding).
    fn publish(&self, base: &str, token: &str, enc: [u8; 32]) -> u16 {
        let body = json!({ "enc": b64(&enc), "binding": self.sign(b"carry-keys-v1\n", &enc) });
        call(base, "PUT", "/directory", Some(token), Some(body)).0
    }
}

/// Post `body` to `to` with `tag`: status and answer.
fn post(base: &str, token: &str, to: &str, tag: &str, body: &[u8]) -> (u16, Value) {
    call(
        base,
        "POST",
        &format!("/mailboxes/{to}"),
        Some(token),
        Some(json!({ "tag": tag, "body": b64(body) })),
    )
}

/// Fetch a page: (id, tag, body) of each envelope, and `more`.
fn fetch(base: &str, token: &str, query: &str) -> (Vec<(i64, String, Vec<u8>)>, bool) {
    let (s, page) = call(base, "GET", &format!("/mailbox{query}"), Some(token), None);
    assert_eq!(s, 200, "{page}");
    let envelopes = page["envelopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_i64().unwrap(),
                e["tag"].as_str().unwrap().to_string(),
                B64.decode(e["body"].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    (envelopes, page["more"].as_bool().unwrap())
}

#[test]
fn sign_in_refuses_bad_signatures_and_spent_challenges() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let b = &server.base;
    let (alice, mallory) = (Person::new(), Person::new());

    // A malformed key gets no challenge.
    for key in ["", "not base64!", &b64(&[1u8; 31])] {
        let (s, e) = call(b, "POST", "/challenge", None, Some(json!({ "key": key })));
        assert_eq!(s, 400, "{key}: {e}");
        assert!(e["error"].is_string());
    }
    let (s, _) = call(b, "POST", "/challenge", None, Some(json!({ "nokey": 1 })));
    assert_eq!(s, 400);

    // Signed by another key, or over other bytes: 401, and the challenge survives.
    let c = alice.challenge(b);
    let raw = B64.decode(&c).unwrap();
    let mut forged = alice.answer(b, &c);
    forged["signature"] = json!(mallory.sign(&auth_context(b), &raw));
    let (s, e) = call(b, "POST", "/session", None, Some(forged));
    assert_eq!(s, 401, "{e}");
    assert!(e["error"].is_string());
    let mut other_context = alice.answer(b, &c);
    other_context["signature"] = json!(alice.sign(b"carry-keys-v1\n", &raw));
    assert_eq!(
        call(b, "POST", "/session", None, Some(other_context)).0,
        401
    );
    // Alice's signature made for another endpoint (a hostile one that passed this
    // challenge on), or in the old form that named none: refused, saying which
    // endpoint a signature must name.
    for context in [
        auth_context("https://evil.example/relay/v1"),
        b"carry-relay-auth-v1\n".to_vec(),
    ] {
        let mut elsewhere = alice.answer(b, &c);
        elsewhere["signature"] = json!(alice.sign(&context, &raw));
        let (s, e) = call(b, "POST", "/session", None, Some(elsewhere));
        assert_eq!(s, 401, "{e}");
        let origin = b.trim_end_matches("/relay/v1");
        assert!(e["error"].as_str().unwrap().contains(origin), "{e}");
    }
    // Mallory signs alice's challenge with her own key: not hers to spend.
    let mut stolen = mallory.answer(b, &c);
    stolen["key"] = json!(mallory.public());
    assert_eq!(call(b, "POST", "/session", None, Some(stolen)).0, 401);

    // The right answer works once.
    let (s, session) = call(b, "POST", "/session", None, Some(alice.answer(b, &c)));
    assert_eq!(s, 200, "{session}");
    assert_eq!(session["mailbox"], alice.mailbox());
    assert_eq!(alice.mailbox().len(), 22);
    let (s, _) = call(b, "POST", "/session", None, Some(alice.answer(b, &c)));
    assert_eq!(s, 401, "a challenge is single-use");
    // A challenge the server never issued.
    let made_up = b64(&[9u8; 32]);
    assert_eq!(
        call(b, "POST", "/session", None, Some(alice.answer(b, &made_up))).0,
        401
    );

    // Without a session, or with a made-up one, every other route answers 401.
    let token = session["token"].as_str().unwrap();
    let routes = [
        ("PUT", "/directory".to_string()),
        ("GET", format!("/directory/{}", alice.mailbox())),
        ("POST", format!("/mailboxes/{}", alice.mailbox())),
        ("GET", "/mailbox".to_string()),
        ("POST", "/mailbox/ack".to_string()),
        ("DELETE", "/tags/share-1".to_string()),
    ];
    for (method, path) in &routes {
        for bad in [None, Some("made-up-token")] {
            let (s, e) = call(b, method, path, bad, Some(json!({})));
            assert_eq!(s, 401, "{method} {path} with {bad:?}: {e}");
            assert!(e["error"].is_string());
        }
    }
    // With it, they are reached.
    let (s, _) = call(b, "GET", "/mailbox", Some(token), None);
    assert_eq!(s, 200);
}

#[test]
fn envelopes_travel_between_mailboxes_and_only_their_owners_remove_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        &["--relay-max-envelope", "1000", "--relay-mailbox-max", "5"],
    );
    let b = &server.base;
    let (alice, bob, carol) = (Person::new(), Person::new(), Person::new());
    let (ta, tb, tc) = (alice.sign_in(b), bob.sign_in(b), carol.sign_in(b));

    // The directory: nothing until published; a binding by the wrong key is refused.
    let bob_entry = format!("/directory/{}", bob.mailbox());
    assert_eq!(call(b, "GET", &bob_entry, Some(&ta), None).0, 404);
    let enc = [7u8; 32];
    let forged = json!({ "enc": b64(&enc), "binding": carol.sign(b"carry-keys-v1\n", &enc) });
    let (s, e) = call(b, "PUT", "/directory", Some(&tb), Some(forged));
    assert_eq!(s, 400, "{e}");
    let unbound = json!({ "enc": b64(&enc), "binding": bob.sign(b"carry-keys-v1\n", &[8u8; 32]) });
    assert_eq!(
        call(b, "PUT", "/directory", Some(&tb), Some(unbound)).0,
        400
    );
    assert_eq!(call(b, "GET", &bob_entry, Some(&ta), None).0, 404);
    assert_eq!(bob.publish(b, &tb, enc), 204);
    let (s, entry) = call(b, "GET", &bob_entry, Some(&ta), None);
    assert_eq!(s, 200);
    assert_eq!(entry["mailbox"], bob.mailbox());
    assert_eq!(entry["sign"], bob.public());
    assert_eq!(entry["enc"], b64(&enc));
    // Republishing replaces the entry.
    assert_eq!(bob.publish(b, &tb, [9u8; 32]), 204);
    let (_, entry) = call(b, "GET", &bob_entry, Some(&ta), None);
    assert_eq!(entry["enc"], b64(&[9u8; 32]));
    assert_eq!(entry["binding"], bob.sign(b"carry-keys-v1\n", &[9u8; 32]));
    assert_eq!(alice.publish(b, &ta, [1u8; 32]), 204);
    assert_eq!(
        call(b, "GET", "/directory/not-a-mailbox", Some(&ta), None).0,
        400
    );

    // Posting: to a mailbox nobody published, too large, a bad tag.
    let (s, e) = post(b, &ta, &carol.mailbox(), "share-1", b"x");
    assert_eq!(s, 404, "{e}");
    let (s, e) = post(b, &ta, &bob.mailbox(), "share-1", &[0u8; 1001]);
    assert_eq!(s, 413, "{e}");
    assert!(e["error"].is_string());
    assert_eq!(post(b, &ta, &bob.mailbox(), "bad/tag", b"x").0, 400);
    assert_eq!(post(b, &ta, &bob.mailbox(), "bad tag", b"x").0, 400);
    assert_eq!(post(b, &ta, &bob.mailbox(), &"t".repeat(65), b"x").0, 400);

    // Alice leaves bob four envelopes under two tags, carol one; the quota is five.
    let mut ids = Vec::new();
    for (i, tag) in ["share-1", "share-2", "share-1", "share-2"]
        .iter()
        .enumerate()
    {
        let (s, posted) = post(b, &ta, &bob.mailbox(), tag, &[i as u8; 1000]);
        assert_eq!(s, 201, "{posted}");
        ids.push(posted["id"].as_i64().unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let (s, posted) = post(b, &tc, &bob.mailbox(), "share-1", b"from carol");
    assert_eq!(s, 201);
    ids.push(posted["id"].as_i64().unwrap());
    let (s, e) = post(b, &tc, &bob.mailbox(), "share-1", b"one too many");
    assert_eq!(s, 507, "{e}");

    // Bob pages through his mailbox in order.
    let (first, more) = fetch(b, &tb, "?limit=2");
    assert!(more);
    assert_eq!(first.iter().map(|e| e.0).collect::<Vec<_>>(), ids[..2]);
    assert_eq!(
        (first[0].1.as_str(), first[0].2.as_slice()),
        ("share-1", &[0u8; 1000][..])
    );
    let (rest, more) = fetch(b, &tb, &format!("?after={}&limit=10", ids[1]));
    assert!(!more);
    assert_eq!(rest.iter().map(|e| e.0).collect::<Vec<_>>(), ids[2..]);
    assert_eq!(rest[2].2, b"from carol");
    assert!(fetch(b, &ta, "").0.is_empty(), "alice's mailbox is her own");
    assert_eq!(call(b, "GET", "/mailbox?after=x", Some(&tb), None).0, 400);

    // Alice cannot ack bob's envelopes: an ack only reaches the caller's mailbox.
    let (s, acked) = call(
        b,
        "POST",
        "/mailbox/ack",
        Some(&ta),
        Some(json!({ "ids": ids })),
    );
    assert_eq!((s, acked["deleted"].as_i64()), (200, Some(0)));
    assert_eq!(fetch(b, &tb, "").0.len(), 5);
    let too_many: Vec<i64> = (0..1001).collect();
    assert_eq!(
        call(
            b,
            "POST",
            "/mailbox/ack",
            Some(&tb),
            Some(json!({ "ids": too_many }))
        )
        .0,
        400
    );

    // Withdrawing a tag removes only the caller's own envelopes with it.
    let (s, gone) = call(b, "DELETE", "/tags/share-1", Some(&tb), None);
    assert_eq!(
        (s, gone["deleted"].as_i64()),
        (200, Some(0)),
        "bob sent none"
    );
    let (s, gone) = call(b, "DELETE", "/tags/share-1", Some(&ta), None);
    assert_eq!((s, gone["deleted"].as_i64()), (200, Some(2)));
    let left = fetch(b, &tb, "").0;
    assert_eq!(
        left.iter().map(|e| e.0).collect::<Vec<_>>(),
        [ids[1], ids[3], ids[4]],
        "carol's share-1 stays"
    );

    // Bob acks what he has read; the mailbox has room again.
    let (s, acked) = call(
        b,
        "POST",
        "/mailbox/ack",
        Some(&tb),
        Some(json!({ "ids": [ids[1], ids[3]] })),
    );
    assert_eq!((s, acked["deleted"].as_i64()), (200, Some(2)));
    assert_eq!(fetch(b, &tb, "").0.len(), 1);
    assert_eq!(post(b, &ta, &bob.mailbox(), "share-3", b"again").0, 201);
}

#[test]
fn an_oversized_request_body_is_refused_with_413() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--relay-max-envelope", "1000"]);
    let b = &server.base;
    let (alice, bob) = (Person::new(), Person::new());
    let (ta, tb) = (alice.sign_in(b), bob.sign_in(b));
    assert_eq!(bob.publish(b, &tb, [2u8; 32]), 204);
    // Far past the body limit (64 KiB here): refused before it is parsed.
    let huge = json!({ "tag": "t", "body": "A".repeat(100_000) }).to_string();
    let resp = agent()
        .post(&format!("{b}/relay/v1/mailboxes/{}", bob.mailbox()))
        .header("authorization", &format!("Bearer {ta}"))
        .header("content-type", "application/json")
        .send(huge)
        .unwrap();
    let (s, e, _) = read(resp);
    assert_eq!(s, 413, "{e}");
    assert!(e["error"].is_string());
    assert!(fetch(b, &tb, "").0.is_empty());
}

#[test]
fn the_rate_limit_covers_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--rate-limit", "2"]);
    let alice = Person::new();
    let mut limited = None;
    for _ in 0..6 {
        let resp = agent()
            .post(&format!("{}/relay/v1/challenge", server.base))
            .send_json(json!({ "key": alice.public() }))
            .unwrap();
        let (s, e, retry) = read(resp);
        if s == 429 {
            assert!(e["error"].is_string(), "{e}");
            limited = retry.and_then(|r| r.parse::<u64>().ok());
            break;
        }
        assert_eq!(s, 200);
    }
    assert_eq!(limited, Some(1), "a 429 with Retry-After: 1");
}

#[test]
fn a_mailbox_holds_at_most_its_bytes_and_a_key_posts_at_most_its_rate() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        &[
            "--relay-max-envelope",
            "1000",
            "--relay-mailbox-bytes",
            "2500",
            "--relay-sender-rate",
            "5",
        ],
    );
    let b = &server.base;
    let (alice, bob, carol, dave) = (Person::new(), Person::new(), Person::new(), Person::new());
    let (ta, tb, tc) = (alice.sign_in(b), bob.sign_in(b), carol.sign_in(b));
    assert_eq!(bob.publish(b, &tb, [2u8; 32]), 204);
    let to_bob = bob.mailbox();

    // Bytes: two envelopes of 1,000 fit in 2,500; a third does not, though the
    // count is far below its cap; 500 more fill it exactly, and then one byte is
    // too many.
    assert_eq!(post(b, &ta, &to_bob, "t", &[1u8; 1000]).0, 201);
    assert_eq!(post(b, &ta, &to_bob, "t", &[2u8; 1000]).0, 201);
    let (s, e) = post(b, &ta, &to_bob, "t", &[3u8; 1000]);
    assert_eq!(s, 507, "{e}");
    assert!(e["error"].as_str().unwrap().contains("full"), "{e}");
    assert_eq!(post(b, &ta, &to_bob, "t", &[4u8; 500]).0, 201);
    assert_eq!(post(b, &tc, &to_bob, "t", b"x").0, 507);
    // Each envelope comes with the mailbox of the key that posted it.
    let (s, page) = call(b, "GET", "/mailbox", Some(&tb), None);
    assert_eq!(s, 200);
    let senders: Vec<&str> = page["envelopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sender"].as_str().unwrap())
        .collect();
    let from_alice = alice.mailbox();
    assert_eq!(senders, [from_alice.as_str(); 3]);
    // An ack frees its bytes.
    let first = page["envelopes"][0]["id"].as_i64().unwrap();
    let (s, _) = call(
        b,
        "POST",
        "/mailbox/ack",
        Some(&tb),
        Some(json!({ "ids": [first] })),
    );
    assert_eq!(s, 200);
    assert_eq!(post(b, &tc, &to_bob, "t", &[5u8; 1000]).0, 201);

    // Rate: alice's fifth post in the minute is taken (and refused: the mailbox is
    // full again), and counts; a sixth is refused, and a fresh session of the same
    // key does not reset the count.
    assert_eq!(post(b, &ta, &to_bob, "t", b"y").0, 507);
    assert_eq!(post(b, &ta, &to_bob, "t", b"y").0, 429);
    let again = alice.sign_in(b);
    let resp = agent()
        .post(&format!("{b}/relay/v1/mailboxes/{to_bob}"))
        .header("authorization", &format!("Bearer {again}"))
        .send_json(json!({ "tag": "t", "body": b64(b"y") }))
        .unwrap();
    let (s, e, retry) = read(resp);
    assert_eq!(s, 429, "{e}");
    assert!(e["error"].is_string());
    let retry: u64 = retry.unwrap().parse().unwrap();
    assert!((1..=12).contains(&retry), "one post every 12 s: {retry}");
    // Dave, signing in eight times, still posts five.
    let sessions: Vec<String> = (0..8).map(|_| dave.sign_in(b)).collect();
    let statuses: Vec<u16> = sessions
        .iter()
        .map(|t| post(b, t, &to_bob, "d", b"z").0)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        3,
        "{statuses:?}"
    );
    // Reading and acknowledging are not posts.
    assert_eq!(call(b, "GET", "/mailbox", Some(&ta), None).0, 200);
}

/// What a retirement signs before the successor's key, for the endpoint whose relay
/// is at `base`.
fn retire_context(base: &str) -> Vec<u8> {
    let origin = base.trim_end_matches("/relay/v1");
    [
        b"carry-relay-retire-v1\n".as_slice(),
        origin.as_bytes(),
        b"\n",
    ]
    .concat()
}

#[test]
fn a_retired_key_never_signs_in_again_and_its_mailbox_is_gone() {
    let d = tempfile::tempdir().unwrap();
    let server = start(d.path(), &[]);
    let base = server.base.clone();
    let (old, new, carer) = (Person::new(), Person::new(), Person::new());
    let old_token = old.sign_in(&base);
    assert_eq!(old.publish(&base, &old_token, [1; 32]), 204);
    let carer_token = carer.sign_in(&base);
    assert_eq!(carer.publish(&base, &carer_token, [2; 32]), 204);
    assert_eq!(
        post(&base, &carer_token, &old.mailbox(), "t", b"hello").0,
        201
    );
    // A challenge taken before the retirement, to try after it.
    let early = old.challenge(&base);

    let new_key = B64.decode(new.public()).unwrap();
    let retire = |token: &str, signature: String| {
        call(
            &base,
            "POST",
            "/retire",
            Some(token),
            Some(json!({ "successor": new.public(), "signature": signature })),
        )
    };
    // Signed for another endpoint, or by another key: refused, nothing changes.
    let elsewhere = old.sign(&retire_context("https://evil.example/relay/v1"), &new_key);
    assert_eq!(retire(&old_token, elsewhere).0, 400);
    let by_other = carer.sign(&retire_context(&base), &new_key);
    assert_eq!(retire(&old_token, by_other).0, 400);
    assert!(fetch(&base, &old_token, "").0.len() == 1, "still there");

    let (s, body) = retire(&old_token, old.sign(&retire_context(&base), &new_key));
    assert_eq!((s, &body["retired"]), (200, &json!(true)), "{body}");
    // Its session has ended and it cannot sign in again, with a new challenge or an
    // old one.
    let (s, _) = call(&base, "GET", "/mailbox", Some(&old_token), None);
    assert_eq!(s, 401);
    let (s, body) = call(
        &base,
        "POST",
        "/challenge",
        None,
        Some(json!({ "key": old.public() })),
    );
    assert_eq!(s, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("replaced"));
    assert_eq!(
        body["successor"],
        new.mailbox(),
        "it names the key that replaced it"
    );
    let (s, _) = call(
        &base,
        "POST",
        "/session",
        None,
        Some(old.answer(&base, &early)),
    );
    assert_eq!(s, 403);
    // Posts to its mailbox are told it is gone.
    let (s, body) = post(&base, &carer_token, &old.mailbox(), "t", b"late");
    assert_eq!(s, 410, "{body}");
    // The successor signs in as usual.
    let new_token = new.sign_in(&base);
    assert_eq!(new.publish(&base, &new_token, [3; 32]), 204);
    assert_eq!(post(&base, &carer_token, &new.mailbox(), "t", b"hi").0, 201);
}
