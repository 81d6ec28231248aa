//! The endpoint's request parsing for share-link manifests and relay mailboxes: each
//! input picks a route, and its bytes become the path segment, the query or the body.
//! Every answer must be an answer (no panic) and never a 500: a bad request is the
//! caller's fault, and the storage underneath is a healthy SQLite file.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::{json, Value};
use tower::ServiceExt as _;

struct World {
    rt: tokio::runtime::Runtime,
    app: Router,
    token: String,
    mailbox: String,
    link: String,
}

fn call(w_rt: &tokio::runtime::Runtime, app: &Router, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    w_rt.block_on(async {
        let resp = app.clone().oneshot(req).await.unwrap_or_else(|e| match e {});
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        (status, body)
    })
}

fn request(method: Method, uri: &str, token: Option<&str>, body: Vec<u8>) -> Option<Request<Body>> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.header("content-type", "application/json").body(Body::from(body)).ok()
}

fn json_call(rt: &tokio::runtime::Runtime, app: &Router, method: Method, uri: &str, token: Option<&str>, body: Value) -> Value {
    let req = request(method, uri, token, body.to_string().into_bytes()).expect("a valid set-up request");
    let (status, bytes) = call(rt, app, req);
    assert!(status.is_success(), "set-up {uri}: {status} {}", String::from_utf8_lossy(&bytes));
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// One endpoint on a throwaway SQLite file, a signed-in caller with a published
/// mailbox, and a share link, made once per fuzzing process.
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("carry-fuzz-endpoint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        let storage = carry_endpoint::Storage::open(&format!("sqlite://{}", dir.join("e.db").display()))
            .expect("the storage opens");
        let options = carry_endpoint::Options::defaults().expect("the default options");
        let app = carry_endpoint::router(&storage, "http://fuzz.invalid", &options).expect("the router");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");

        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("a key");
        let keys = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("a key");
        let public = B64.encode(keys.public_key().as_ref());
        let c = json_call(&rt, &app, Method::POST, "/relay/v1/challenge", None, json!({ "key": public }));
        let challenge = c["challenge"].as_str().unwrap_or_default().to_string();
        let raw = B64.decode(&challenge).expect("a challenge");
        let signature = keys.sign(&[b"carry-relay-auth-v2\nhttp://fuzz.invalid\n".as_slice(), &raw].concat());
        let s = json_call(&rt, &app, Method::POST, "/relay/v1/session", None,
            json!({ "key": public, "challenge": challenge, "signature": B64.encode(signature.as_ref()) }));
        let token = s["token"].as_str().unwrap_or_default().to_string();
        let mailbox = s["mailbox"].as_str().unwrap_or_default().to_string();
        let enc = [7u8; 32];
        let binding = keys.sign(&[b"carry-keys-v1\n".as_slice(), &enc].concat());
        let req = request(Method::PUT, "/relay/v1/directory", Some(&token),
            json!({ "enc": B64.encode(enc), "binding": B64.encode(binding.as_ref()) }).to_string().into_bytes())
            .expect("a request");
        assert!(call(&rt, &app, req).0.is_success(), "publish");
        let l = json_call(&rt, &app, Method::POST, "/shl/v1/links", Some(&token),
            json!({ "file": "eyJhbGciOiJkaXIifQ..aXY.Y3Q.dGFn", "flags": "L" }));
        let link = l["id"].as_str().unwrap_or_default().to_string();
        World { rt, app, token, mailbox, link }
    })
}

/// Bytes as one percent-encoded path segment or query.
fn escaped(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'=' | b'&' => {
                char::from(*b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&route, rest)) = data.split_first() else { return };
    let w = world();
    let text = escaped(rest);
    let token = Some(w.token.as_str());
    let (method, uri, auth, body) = match route % 12 {
        0 => (Method::POST, format!("/shl/m/{}", w.link), None, rest.to_vec()),
        1 => (Method::POST, format!("/shl/m/{text}"), None, b"{\"recipient\":\"x\"}".to_vec()),
        2 => (Method::GET, format!("/shl/m/{}?{text}", w.link), None, Vec::new()),
        3 => (Method::GET, format!("/shl/f/{text}"), None, Vec::new()),
        4 => (Method::POST, format!("/relay/v1/mailboxes/{}", w.mailbox), token, rest.to_vec()),
        5 => (Method::POST, format!("/relay/v1/mailboxes/{text}"), token,
              b"{\"tag\":\"t\",\"body\":\"AAAA\"}".to_vec()),
        6 => (Method::GET, format!("/relay/v1/mailbox?{text}"), token, Vec::new()),
        7 => (Method::POST, "/relay/v1/mailbox/ack".to_string(), token, rest.to_vec()),
        8 => (Method::POST, "/relay/v1/challenge".to_string(), None, rest.to_vec()),
        9 => (Method::POST, "/relay/v1/session".to_string(), None, rest.to_vec()),
        10 => (Method::PUT, "/relay/v1/directory".to_string(), token, rest.to_vec()),
        _ => (Method::GET, "/relay/v1/mailbox".to_string(), Some(std::str::from_utf8(rest).unwrap_or("x")), Vec::new()),
    };
    let Some(req) = request(method, &uri, auth, body) else { return };
    let (status, _) = call(&w.rt, &w.app, req);
    assert!(status != StatusCode::INTERNAL_SERVER_ERROR, "{uri} answered 500");
});
