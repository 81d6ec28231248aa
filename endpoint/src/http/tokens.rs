//! Tokens as every service handles them: fresh random ones, their SHA-256 (the only
//! form in which they are stored or looked up, never in clear), constant-time
//! comparison, and the bearer token of a request.

use axum::http::{header, HeaderMap};

/// Hex SHA-256 of a token: the only form in which tokens are stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.as_bytes(),
    ))
}

/// A fresh random token: 32 bytes, base64url.
pub fn new_token() -> Result<String, ring::error::Unspecified> {
    use base64::Engine as _;
    let mut b = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// Constant-time equality of two secrets.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token of an `Authorization: Bearer TOKEN` header, if there is one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}
