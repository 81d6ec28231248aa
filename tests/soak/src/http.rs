//! A small blocking HTTP client over `ureq` (one per thread, keeping its connection)
//! and the endpoint's setup protocols: relay sign-in, the directory, share links. The
//! JSON bodies are `carry-proto`'s, as the core and the endpoint use them.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use carry_proto::links::{CreateAnswer, CreateRequest};
use carry_proto::relay::messages::{
    ChallengeAnswer, ChallengeRequest, PublishRequest, SessionAnswer, SessionRequest,
};
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// The most body bytes one answer may have (a page of envelopes is a few MB at most).
const MAX_ANSWER: u64 = 32 << 20;
/// How long one request may take, connection to last byte.
const TIMEOUT: Duration = Duration::from_secs(30);

/// One answer: the status, the body and the `Retry-After` header.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body's bytes.
    pub body: Vec<u8>,
    /// `Retry-After`, if given.
    pub retry_after: Option<String>,
}

impl Answer {
    /// The body as JSON, or why it is not.
    pub fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("the body is not JSON: {e}"))
    }

    /// The body as the protocol's JSON `T`, or why it is not.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_slice(&self.body).map_err(|e| {
            let text = String::from_utf8_lossy(&self.body);
            let short: String = text.chars().take(160).collect();
            format!("the body is not what the protocol says ({e}): {short}")
        })
    }

    /// Ok when the status is `want`, else a message with the status and the start of
    /// the body (and `Retry-After` for a 429).
    pub fn expect(&self, want: u16) -> Result<(), String> {
        if self.status == want {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.body);
        let short: String = text.chars().take(160).collect();
        let retry = match &self.retry_after {
            Some(r) if self.status == 429 => format!(" (Retry-After: {r})"),
            _ => String::new(),
        };
        Err(format!(
            "status {} where {want} was expected{retry}: {short}",
            self.status
        ))
    }
}

/// A blocking HTTP client that keeps its connection, never follows redirects and
/// takes every status as an answer. Each client stands for one caller at its own
/// address: it sends `X-Forwarded-For` as a proxy in front would, and the endpoint
/// is started with `--trust-forwarded-for`, so the per-address rate limit sees many
/// callers rather than one loopback address.
pub struct Http {
    agent: ureq::Agent,
    address: String,
}

/// The next caller's address, from 198.18.0.0/15 (set aside for benchmarks).
fn next_address() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("198.18.{}.{}", (n >> 8) & 0xff, n & 0xff)
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

impl Http {
    /// A fresh client with its own connection pool.
    pub fn new() -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(TIMEOUT))
            .build()
            .into();
        Http {
            agent,
            address: next_address(),
        }
    }

    /// `method` on `url` with a bearer `token` and a JSON `body` (see [`json_text`]), if
    /// given.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Result<Answer, String> {
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("x-forwarded-for", &self.address);
        if let Some(t) = token {
            builder = builder.header("authorization", format!("Bearer {t}"));
        }
        let sent = match body {
            Some(json) => {
                let req = builder
                    .header("content-type", "application/json")
                    .body(json.as_bytes().to_vec())
                    .map_err(|e| format!("cannot build the request: {e}"))?;
                self.agent.run(req)
            }
            None => {
                let req = builder
                    .body(())
                    .map_err(|e| format!("cannot build the request: {e}"))?;
                self.agent.run(req)
            }
        };
        let mut resp = sent.map_err(|e| format!("transport: {e}"))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(|e| format!("transport (reading the body): {e}"))?;
        Ok(Answer {
            status,
            body,
            retry_after,
        })
    }
}

/// A request body as JSON text.
pub fn json_text<T: Serialize>(body: &T) -> Result<String, String> {
    serde_json::to_string(body).map_err(|e| format!("cannot write a request body: {e}"))
}

/// `n` random bytes.
pub fn random_bytes(rng: &SystemRandom, n: usize) -> Result<Vec<u8>, String> {
    let mut out = vec![0u8; n];
    rng.fill(&mut out)
        .map_err(|_| "no randomness from the system".to_string())?;
    Ok(out)
}

/// A random number below `bound` (which must be above zero).
pub fn random_below(rng: &SystemRandom, bound: u64) -> Result<u64, String> {
    let mut b = [0u8; 8];
    rng.fill(&mut b)
        .map_err(|_| "no randomness from the system".to_string())?;
    Ok(u64::from_le_bytes(b) % bound.max(1))
}

pub use carry_proto::relay::mailbox_id;

/// A signed-in relay identity with a published directory entry.
pub struct Identity {
    /// The session's bearer token.
    pub token: String,
    /// Its mailbox id.
    pub mailbox: String,
}

/// Sign a fresh Ed25519 key in at the relay (challenge, then session) and publish a
/// directory entry for it, so its mailbox exists.
pub fn sign_in(http: &Http, base: &str, rng: &SystemRandom) -> Result<Identity, String> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(rng).map_err(|_| "cannot make a key")?;
    let keys = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| "cannot read a key")?;
    let public = B64.encode(keys.public_key().as_ref());

    let url = format!("{base}/relay/v1/challenge");
    let body = json_text(&ChallengeRequest {
        key: public.clone(),
    })?;
    let c = http.send("POST", &url, None, Some(&body))?;
    c.expect(200).map_err(|e| format!("POST {url}: {e}"))?;
    let challenge = c.parse::<ChallengeAnswer>()?.challenge;
    let raw = B64
        .decode(&challenge)
        .map_err(|_| "the challenge is not base64url")?;
    // The origin of a loopback base is the base itself: http://127.0.0.1:PORT.
    let signature = keys.sign(&carry_proto::relay::auth_message(base, &raw));

    let url = format!("{base}/relay/v1/session");
    let body = json_text(&SessionRequest {
        challenge,
        key: public,
        signature: B64.encode(signature.as_ref()),
    })?;
    let s = http.send("POST", &url, None, Some(&body))?;
    s.expect(200).map_err(|e| format!("POST {url}: {e}"))?;
    let SessionAnswer { mailbox, token, .. } = s.parse()?;
    let ours = mailbox_id(keys.public_key().as_ref());
    if mailbox != ours {
        return Err(format!(
            "the relay named the mailbox {mailbox}, the key's is {ours}"
        ));
    }

    let enc = random_bytes(rng, 32)?;
    let binding = keys.sign(&carry_proto::relay::binding_message(&enc));
    let url = format!("{base}/relay/v1/directory");
    let body = json_text(&PublishRequest {
        binding: B64.encode(binding.as_ref()),
        enc: B64.encode(&enc),
    })?;
    let p = http.send("PUT", &url, Some(&token), Some(&body))?;
    p.expect(204).map_err(|e| format!("PUT {url}: {e}"))?;
    Ok(Identity { token, mailbox })
}

/// A random-looking JWE in compact serialization (`alg: dir`, so the encrypted key is
/// empty) with `ciphertext` random bytes.
pub fn fake_jwe(rng: &SystemRandom, ciphertext: usize) -> Result<String, String> {
    let header = B64.encode(br#"{"alg":"dir","enc":"A256GCM","cty":"application/fhir+json"}"#);
    let iv = B64.encode(random_bytes(rng, 12)?);
    let body = B64.encode(random_bytes(rng, ciphertext)?);
    let tag = B64.encode(random_bytes(rng, 16)?);
    Ok(format!("{header}..{iv}.{body}.{tag}"))
}

/// A share link the load fetches.
#[derive(Debug, Clone)]
pub struct Link {
    /// The link id (the manifest is `POST /shl/m/{id}`).
    pub id: String,
    /// The file's exact text.
    pub file: String,
    /// Whether manifests embed the file (else they give a location).
    pub embedded: bool,
}

/// Create a share link owned by `token`'s session with `file` and `flags`.
pub fn create_link(
    http: &Http,
    base: &str,
    token: &str,
    file: String,
    flags: &str,
    embedded: bool,
) -> Result<Link, String> {
    let url = format!("{base}/shl/v1/links");
    let body = json_text(&CreateRequest {
        expires_at: None,
        file: file.clone(),
        flags: flags.to_string(),
        once: false,
        passcode: None,
    })?;
    let a = http.send("POST", &url, Some(token), Some(&body))?;
    a.expect(201).map_err(|e| format!("POST {url}: {e}"))?;
    let id = a.parse::<CreateAnswer>()?.id;
    Ok(Link { id, file, embedded })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fake_jwe_has_five_base64url_parts_and_an_empty_key() {
        let rng = SystemRandom::new();
        let jwe = fake_jwe(&rng, 300).unwrap();
        let parts: Vec<&str> = jwe.split('.').collect();
        assert_eq!(parts.len(), 5);
        assert!(parts[1].is_empty());
        assert_eq!(B64.decode(parts[3]).unwrap().len(), 300);
        assert!(jwe
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'));
    }

    #[test]
    fn mailbox_ids_are_22_characters() {
        assert_eq!(mailbox_id(&[7u8; 32]).len(), 22);
        assert_ne!(mailbox_id(&[7u8; 32]), mailbox_id(&[8u8; 32]));
    }
}
