//! Helpers the endpoint's HTTP tests share: the real binary on a free port with its
//! debug log in a file, and a small HTTP client that never follows redirects.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::{json, Value};

pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Serve an empty database with `extra` options, logging at debug level to a file.
pub fn start(dir: &Path, extra: &[&str]) -> Server {
    let db = format!("sqlite://{}", dir.join("endpoint.db").display());
    let log = dir.join("server.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_carry-endpoint"))
        .args(["serve", "--db", &db, "--listen", "127.0.0.1:0"])
        .args(extra)
        .env("CARRY_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
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
    Server { child, base, log }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

/// A response: status, headers, and its body as text.
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: ureq::http::HeaderMap,
    /// The body.
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub fn read(mut resp: ureq::http::Response<ureq::Body>) -> Answer {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    Answer {
        status,
        headers,
        text,
    }
}

/// `method` on `base` + `path`, with a bearer token and a JSON body if given.
pub fn call(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let url = format!("{base}{path}");
    let auth = token.map(|t| format!("Bearer {t}"));
    let a = agent();
    let resp = match method {
        "GET" | "DELETE" => {
            let mut r = if method == "GET" {
                a.get(&url)
            } else {
                a.delete(&url)
            };
            if let Some(h) = &auth {
                r = r.header("authorization", h);
            }
            r.call()
        }
        _ => {
            let mut r = if method == "PUT" {
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
    read(resp)
}

/// A session token for a fresh Ed25519 key, by the relay's challenge and session
/// handshake.
pub fn sign_in(base: &str) -> String {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let keys = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let public = B64.encode(keys.public_key().as_ref());
    let c = call(
        base,
        "POST",
        "/relay/v1/challenge",
        None,
        Some(json!({ "key": public })),
    );
    assert_eq!(c.status, 200, "{}", c.text);
    let challenge = c.json()["challenge"].as_str().unwrap().to_string();
    let raw = B64.decode(&challenge).unwrap();
    // The endpoint's origin is the base itself: http://127.0.0.1:PORT.
    let signature = keys.sign(
        &[
            b"carry-relay-auth-v2\n".as_slice(),
            base.as_bytes(),
            b"\n",
            &raw,
        ]
        .concat(),
    );
    let s = call(
        base,
        "POST",
        "/relay/v1/session",
        None,
        Some(json!({
            "key": public,
            "challenge": challenge,
            "signature": B64.encode(signature.as_ref()),
        })),
    );
    assert_eq!(s.status, 200, "{}", s.text);
    s.json()["token"].as_str().unwrap().to_string()
}

/// `method` on `base` + `path` with raw `body` bytes sent as `content_type`, and a
/// bearer token and any extra headers if given.
pub fn raw(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    content_type: Option<&str>,
    body: &[u8],
) -> Answer {
    let url = format!("{base}{path}");
    let mut builder = ureq::http::Request::builder().method(method).uri(&url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    let resp = if body.is_empty() {
        agent().run(builder.body(()).unwrap())
    } else {
        agent().run(builder.body(body.to_vec()).unwrap())
    };
    read(resp.unwrap())
}

/// A file of the shared test data beside the repository (`../shared`).
pub fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared")
        .join(rel)
}
