//! The clients registered with `--nhs-login-client CLIENT_ID=PATH`, each with its RSA
//! public key, and how a token request proves it comes from one: `private_key_jwt`
//! (RFC 7523), the only method NHS login accepts. The client signs a short-lived JWT
//! with RS512 whose `iss` and `sub` are its client_id and whose `aud` is the token
//! endpoint; this checks the signature against the registered key and the claims
//! against the clock. Whether the assertion's `jti` was seen before is the grants'
//! business (`grants.rs`).

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// The only `client_assertion_type` there is.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The longest client assertion read, in bytes.
const MAX_ASSERTION: usize = 8 << 10;
/// How long after its `iat` (or now, without one) an assertion may expire, in seconds.
const MAX_LIFETIME_S: i64 = 300;
/// How far in the future an assertion's `iat` may be, in seconds (clock skew).
const MAX_SKEW_S: i64 = 60;
/// The longest client_id and `jti`.
const MAX_ID: usize = 256;

/// The registered clients: client_id to RSA public key.
pub struct Clients(HashMap<String, DecodingKey>);

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// A client that proved itself, and the assertion it did so with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The client.
    pub client_id: String,
    /// SHA-256 (hex) of the client_id and the assertion's `jti`: what a replay is
    /// recognised by.
    pub jti_key: String,
    /// When the assertion expires, in ms since the epoch: until then its `jti` is
    /// remembered.
    pub expires_ms: i64,
}

/// The claims of a client assertion this reads (`aud` and `nbf` are checked by
/// `jsonwebtoken`).
#[derive(serde::Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    exp: i64,
    iat: Option<i64>,
    jti: Option<String>,
}

impl Clients {
    /// The clients of the `--nhs-login-client CLIENT_ID=PATH` values, reading each
    /// PATH: a PEM RSA public key (`PUBLIC KEY`, as `openssl rsa -pubout` writes, or
    /// `RSA PUBLIC KEY`). A private key, another kind of key, a repeated or malformed
    /// client_id is an error naming the flag.
    pub fn from_flags(values: &[String]) -> Result<Self, String> {
        let mut clients = HashMap::new();
        for value in values {
            let Some((id, path)) = value.split_once('=') else {
                return Err("--nhs-login-client must be CLIENT_ID=PATH".into());
            };
            if id.is_empty() || id.len() > MAX_ID || !id.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(
                    "--nhs-login-client: the client_id must be 1 to 256 visible ASCII characters"
                        .into(),
                );
            }
            let pem = std::fs::read(path)
                .map_err(|e| format!("--nhs-login-client {id}: cannot read {path}: {e}"))?;
            let text = String::from_utf8_lossy(&pem);
            let first = text.trim_start().lines().next().unwrap_or("").trim();
            if first != "-----BEGIN PUBLIC KEY-----" && first != "-----BEGIN RSA PUBLIC KEY-----" {
                return Err(format!(
                    "--nhs-login-client {id}: {path} is not a PEM public key (BEGIN PUBLIC KEY)"
                ));
            }
            let key = DecodingKey::from_rsa_pem(&pem).map_err(|_| {
                format!("--nhs-login-client {id}: {path} does not hold an RSA public key")
            })?;
            if clients.insert(id.to_string(), key).is_some() {
                return Err(format!("--nhs-login-client {id} is given twice"));
            }
        }
        Ok(Clients(clients))
    }

    /// Whether `client_id` is registered.
    pub fn is_registered(&self, client_id: &str) -> bool {
        self.0.contains_key(client_id)
    }

    /// How many clients are registered.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The client a token request `form` authenticates as, by its client assertion
    /// for `token_url` at `now_s` (seconds since the epoch). The error says what was
    /// wrong, for `invalid_client`.
    pub fn authenticate(
        &self,
        form: &HashMap<String, String>,
        token_url: &str,
        now_s: i64,
    ) -> Result<Authenticated, &'static str> {
        let get = |k: &str| super::param(form, k);
        if get("client_assertion_type") != Some(JWT_BEARER) {
            return Err("client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer (private_key_jwt)");
        }
        let assertion = get("client_assertion").ok_or("client_assertion is required")?;
        if assertion.len() > MAX_ASSERTION {
            return Err("client_assertion is too long");
        }
        let client_id = match get("client_id") {
            Some(id) => id.to_string(),
            None => unverified_issuer(assertion).ok_or("the client assertion names no iss")?,
        };
        let key = self
            .0
            .get(&client_id)
            .ok_or("the client is not registered with this issuer")?;
        let mut v = Validation::new(Algorithm::RS512);
        v.set_audience(&[token_url]);
        v.set_issuer(&[client_id.as_str()]);
        v.sub = Some(client_id.clone());
        v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        v.leeway = 0;
        let claims = jsonwebtoken::decode::<AssertionClaims>(assertion, key, &v)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => {
                    "the client assertion's signature does not verify with the client's registered key"
                }
                ErrorKind::InvalidAlgorithm => "the client assertion must be signed with RS512",
                ErrorKind::ExpiredSignature => "the client assertion has expired",
                ErrorKind::ImmatureSignature => "the client assertion is not valid yet (nbf)",
                ErrorKind::InvalidAudience => "the client assertion's aud must be the token endpoint",
                ErrorKind::InvalidIssuer | ErrorKind::InvalidSubject => {
                    "the client assertion's iss and sub must both be the client_id"
                }
                ErrorKind::MissingRequiredClaim(_) => {
                    "the client assertion must carry iss, sub, aud and exp"
                }
                _ => "the client assertion is not a JWT this issuer can read",
            })?
            .claims;
        if claims.iss != client_id || claims.sub != client_id {
            return Err("the client assertion's iss and sub must both be the client_id");
        }
        if claims.exp <= now_s {
            return Err("the client assertion has expired");
        }
        if claims.iat.is_some_and(|iat| iat > now_s + MAX_SKEW_S) {
            return Err("the client assertion's iat is in the future");
        }
        if claims.exp > claims.iat.unwrap_or(now_s) + MAX_LIFETIME_S {
            return Err("the client assertion must expire within 5 minutes of its iat");
        }
        let jti = claims
            .jti
            .filter(|j| !j.is_empty() && j.len() <= MAX_ID)
            .ok_or("the client assertion must carry a jti of 1 to 256 characters")?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(client_id.as_bytes());
        ctx.update(b"\n");
        ctx.update(jti.as_bytes());
        Ok(Authenticated {
            client_id,
            jti_key: hex::encode(ctx.finish()),
            expires_ms: claims.exp.saturating_mul(1000),
        })
    }
}

/// The `iss` of a JWT, read without checking anything: only to find which client's
/// key to check it with.
fn unverified_issuer(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = B64.decode(payload).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims["iss"]
        .as_str()
        .filter(|s| !s.is_empty() && s.len() <= MAX_ID)
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let private = openssl::rsa::Rsa::generate(2048).unwrap();
        let public = dir.path().join("pub.pem");
        std::fs::write(&public, private.public_key_to_pem().unwrap()).unwrap();
        let secret = dir.path().join("priv.pem");
        std::fs::write(&secret, private.private_key_to_pem().unwrap()).unwrap();
        let ok = Clients::from_flags(&[format!("app={}", public.display())]).unwrap();
        assert!(ok.is_registered("app") && !ok.is_registered("other"));
        assert_eq!(ok.len(), 1);
        for bad in [
            "app".to_string(),
            format!("={}", public.display()),
            format!("app={}", secret.display()),
            "app=/no/such/file".to_string(),
        ] {
            assert!(
                Clients::from_flags(std::slice::from_ref(&bad)).is_err(),
                "{bad}"
            );
        }
        let twice = format!("app={}", public.display());
        assert!(Clients::from_flags(&[twice.clone(), twice]).is_err());
    }

    #[test]
    fn the_issuer_is_read_only_to_pick_a_key() {
        let payload = B64.encode(br#"{"iss":"app"}"#);
        assert_eq!(
            unverified_issuer(&format!("x.{payload}.y")).as_deref(),
            Some("app")
        );
        assert_eq!(unverified_issuer("not a jwt"), None);
    }
}
