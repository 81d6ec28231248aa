//! The rate limit as a caller meets it: by token, else by the caller's address.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
mod common;

#[test]
fn behind_a_trusted_proxy_callers_without_a_token_are_limited_by_their_own_address() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), &["--rate-limit", "2", "--trust-forwarded-for"]);
    let challenge = |from: &str| {
        let key = format!(r#"{{"key":"{}"}}"#, "A".repeat(43));
        common::raw(
            &server.base,
            "POST",
            "/relay/v1/challenge",
            &[("x-forwarded-for", from)],
            Some("application/json"),
            key.as_bytes(),
        )
    };
    // One address spends its burst of 2; another, behind the same proxy, is not held
    // back by it, and a client's own claim before the proxy's entry changes nothing.
    let first: Vec<u16> = (0..3).map(|_| challenge("203.0.113.9").status).collect();
    assert_eq!(first, [200, 200, 429]);
    assert_eq!(challenge("198.51.100.4").status, 200);
    assert_eq!(challenge("198.51.100.77, 203.0.113.9").status, 429);
}
