//! Request bodies as an attacker sends them: each input picks a route that reads a
//! body (a backup upload, which streams to a file; relay posts; a key retirement; a
//! share-link owner call; a SMART token request), whether the caller is signed in,
//! what `Content-Length` claims (nothing, the truth, less, more, or nonsense), and
//! how the bytes are cut into chunks. The in-flight budget is the smallest the
//! endpoint accepts with its limits, so a claimed length past it meets the budget's
//! 503. Every answer must be an answer (no panic), never a 500,
//! and a caller who is not signed in is refused before any of the body counts: 401,
//! or 413 for a declared length past the route's limit.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt as _;

#[path = "signed_in.rs"]
mod signed_in;

/// One endpoint with a small body budget and a signed-in caller, made once per
/// fuzzing process.
fn world() -> &'static signed_in::Endpoint {
    static WORLD: OnceLock<signed_in::Endpoint> = OnceLock::new();
    WORLD.get_or_init(|| {
        signed_in::endpoint(
            "bodies",
            &[
                "--body-budget-bytes", "9437184",
                "--backup-max-bytes", "262144",
                "--relay-max-envelope", "65536",
            ],
        )
    })
}

fn call(w: &signed_in::Endpoint, req: Request<Body>) -> StatusCode {
    w.rt.block_on(async {
        let resp = w.app.clone().oneshot(req).await.unwrap_or_else(|e| match e {});
        let status = resp.status();
        let _ = axum::body::to_bytes(resp.into_body(), usize::MAX).await;
        status
    })
}

fuzz_target!(|data: &[u8]| {
    let [route, signed, declared, cut, rest @ ..] = data else { return };
    let w = world();
    let (method, uri, content_type) = match route % 6 {
        0 => (Method::PUT, "/backup/v1/blobs/AAAAAAAAAAAAAAAAAAAAAA".to_string(), "application/octet-stream"),
        1 => (Method::POST, format!("/relay/v1/mailboxes/{}", w.mailbox), "application/json"),
        2 => (Method::POST, "/relay/v1/retire".to_string(), "application/json"),
        3 => (Method::POST, "/shl/v1/links".to_string(), "application/json"),
        4 => (Method::PUT, "/relay/v1/directory".to_string(), "application/json"),
        _ => (Method::POST, "/demo/auth/token".to_string(), "application/x-www-form-urlencoded"),
    };
    let signed_in = signed % 2 == 0;
    let mut b = Request::builder().method(method).uri(&uri).header("content-type", content_type);
    if signed_in {
        b = b.header("authorization", format!("Bearer {}", w.token));
    } else if signed % 4 == 1 {
        b = b.header("authorization", "Bearer made-up-token");
    }
    if route % 6 == 0 {
        b = b.header("x-carry-fetch-hash", B64.encode([9u8; 32]));
    }
    let len = rest.len() as u64;
    let claimed = match declared % 5 {
        0 => None,
        1 => Some(len.to_string()),
        2 => Some(len.saturating_sub(1).to_string()),
        3 => Some((len + 1 + u64::from(*declared) * 1_000_000).to_string()),
        _ => Some("a lot".to_string()),
    };
    if let Some(c) = &claimed {
        b = b.header("content-length", c.as_str());
    }
    // The bytes in chunks of 1 to 256, as a slow or bursty client sends them.
    let step = usize::from(*cut).max(1);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = rest.chunks(step).map(|c| Ok(c.to_vec())).collect();
    let Ok(req) = b.body(Body::from_stream(futures_util::stream::iter(chunks))) else { return };
    let status = call(w, req);
    assert!(status != StatusCode::INTERNAL_SERVER_ERROR, "{uri} answered 500");
    if !signed_in && route % 6 != 5 {
        assert!(
            matches!(status.as_u16(), 400 | 401 | 413 | 429),
            "{uri} without a session answered {status}"
        );
    }
});
