//! What the endpoint targets share: an endpoint on a throwaway SQLite file, driven in
//! process, and a caller signed in to its relay with a published mailbox.

use axum::body::Body;
use axum::http::{Method, Request};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::{json, Value};
use tower::ServiceExt as _;

/// The endpoint and its signed-in caller.
pub struct Endpoint {
    pub rt: tokio::runtime::Runtime,
    pub app: Router,
    pub token: String,
    pub mailbox: String,
}

/// Send a set-up request, which must succeed; its JSON answer.
pub fn set_up(rt: &tokio::runtime::Runtime, app: &Router, method: Method, uri: &str, token: Option<&str>, body: Value) -> Value {
    let mut b = Request::builder().method(method).uri(uri).header("content-type", "application/json");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let req = b.body(Body::from(body.to_string())).expect("a set-up request");
    rt.block_on(async {
        let resp = app.clone().oneshot(req).await.unwrap_or_else(|e| match e {});
        assert!(resp.status().is_success(), "set-up {uri}: {}", resp.status());
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    })
}

/// An endpoint at `http://fuzz.invalid` with `serve`'s `options`, on a SQLite file
/// named after `name` and this process, and a caller signed in to its relay.
pub fn endpoint(name: &str, options: &[&str]) -> Endpoint {
    let dir = std::env::temp_dir().join(format!("carry-fuzz-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let storage = carry_endpoint::Storage::open(&format!("sqlite://{}", dir.join("e.db").display()))
        .expect("the storage opens");
    let options = carry_endpoint::Options::from_args(options).expect("the options");
    let app = carry_endpoint::router(&storage, "http://fuzz.invalid", &options).expect("the router");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("a key");
    let keys = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("a key");
    let public = B64.encode(keys.public_key().as_ref());
    let c = set_up(&rt, &app, Method::POST, "/relay/v1/challenge", None, json!({ "key": public }));
    let challenge = c["challenge"].as_str().unwrap_or_default().to_string();
    let raw = B64.decode(&challenge).expect("a challenge");
    let signature = keys.sign(&[b"carry-relay-auth-v2\nhttp://fuzz.invalid\n".as_slice(), &raw].concat());
    let s = set_up(&rt, &app, Method::POST, "/relay/v1/session", None,
        json!({ "key": public, "challenge": challenge, "signature": B64.encode(signature.as_ref()) }));
    let token = s["token"].as_str().unwrap_or_default().to_string();
    let mailbox = s["mailbox"].as_str().unwrap_or_default().to_string();
    let enc = [7u8; 32];
    let binding = keys.sign(&[b"carry-keys-v1\n".as_slice(), &enc].concat());
    set_up(&rt, &app, Method::PUT, "/relay/v1/directory", Some(&token),
        json!({ "enc": B64.encode(enc), "binding": B64.encode(binding.as_ref()) }));
    Endpoint { rt, app, token, mailbox }
}
