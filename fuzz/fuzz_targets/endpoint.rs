//! The endpoint's request parsing for share-link manifests and relay mailboxes: each
//! input picks a route, and its bytes become the path segment, the query or the body.
//! Every answer must be an answer (no panic) and never a 500: a bad request is the
//! caller's fault, and the storage underneath is a healthy SQLite file.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use tower::ServiceExt as _;

#[path = "signed_in.rs"]
mod signed_in;

struct World {
    endpoint: signed_in::Endpoint,
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

/// One endpoint, a signed-in caller with a published mailbox, and a share link, made
/// once per fuzzing process.
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let endpoint = signed_in::endpoint("endpoint", &[]);
        let l = signed_in::set_up(&endpoint.rt, &endpoint.app, Method::POST, "/shl/v1/links", Some(&endpoint.token),
            json!({ "file": "eyJhbGciOiJkaXIifQ..aXY.Y3Q.dGFn", "flags": "L" }));
        let link = l["id"].as_str().unwrap_or_default().to_string();
        World { endpoint, link }
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
    let token = Some(w.endpoint.token.as_str());
    let (method, uri, auth, body) = match route % 12 {
        0 => (Method::POST, format!("/shl/m/{}", w.link), None, rest.to_vec()),
        1 => (Method::POST, format!("/shl/m/{text}"), None, b"{\"recipient\":\"x\"}".to_vec()),
        2 => (Method::GET, format!("/shl/m/{}?{text}", w.link), None, Vec::new()),
        3 => (Method::GET, format!("/shl/f/{text}"), None, Vec::new()),
        4 => (Method::POST, format!("/relay/v1/mailboxes/{}", w.endpoint.mailbox), token, rest.to_vec()),
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
    let (status, _) = call(&w.endpoint.rt, &w.endpoint.app, req);
    assert!(status != StatusCode::INTERNAL_SERVER_ERROR, "{uri} answered 500");
});
