//! Opening a SMART Health Link made by anyone: the clinician's side.
//!
//! The link is parsed (bare or behind a viewer), the manifest is POSTed (or the file
//! fetched directly for `U`), the `location` followed, and the file decrypted and
//! read as an IPS. Against server-side request forgery: https only (plain http only
//! to this machine, for development), no redirects, size caps and timeouts.

use carry_proto::links::{Manifest, ManifestRequest, WrongPasscode};
use serde::Serialize;
use serde_json::Value;

use super::ips::{self, Summary};
use super::jwe;
use super::link::Payload;
use crate::error::{Error, Result};
use crate::net::http::{Http, Resp};
use crate::time::now_unix;

/// The largest manifest or file accepted.
pub const FILE_MAX: usize = 16 * 1024 * 1024;

/// How to open a link.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// The passcode, for a `P` link.
    pub passcode: Option<String>,
    /// Who is opening it, as the owner will see it ("claimed by").
    pub recipient: String,
    /// Stop after this long.
    pub budget: Option<std::time::Duration>,
}

/// What a link held.
#[derive(Debug, Clone, Serialize)]
pub struct Opened {
    /// The FHIR Bundle, as decrypted.
    pub bundle: Value,
    /// Its summary, if it is an IPS document.
    pub summary: Option<Summary>,
    /// The link's label, if any.
    pub label: Option<String>,
    /// When the link expires, if it says.
    pub expires_at: Option<i64>,
}

fn check_url(u: &str) -> Result<url::Url> {
    let url =
        url::Url::parse(u).map_err(|_| Error::invalid("the link's address does not parse"))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(Error::invalid(
            "the link points at a plain-http address; only https is followed",
        )),
    }
}

fn body_of(what: &str, r: &Resp) -> Result<()> {
    if r.body.len() > FILE_MAX {
        return Err(Error::invalid(format!(
            "the {what} is larger than {FILE_MAX} bytes"
        )));
    }
    Ok(())
}

fn refusal(r: &Resp) -> Error {
    match r.status {
        401 => {
            let left = serde_json::from_slice::<WrongPasscode>(&r.body)
                .ok()
                .map(|w| w.remaining_attempts);
            Error::Denied {
                reason: match left {
                    Some(n) => format!("wrong passcode; {n} attempts left"),
                    None => "a passcode is needed".into(),
                },
            }
        }
        400 => Error::invalid("the link's server refused the request as malformed"),
        404 | 410 => Error::Revoked {
            what: "the link is no longer shared (revoked, expired, used up or locked)".into(),
        },
        s if (300..400).contains(&s) => Error::Denied {
            reason: "the server answered with a redirect, which is not followed".into(),
        },
        s => Error::Network {
            reason: format!("the link's server answered {s}"),
            retry_after_s: None,
        },
    }
}

/// Open `link` and return what it holds.
pub async fn open(link: &str, options: &OpenOptions) -> Result<Opened> {
    let payload = Payload::parse(link)?;
    if let Some(exp) = payload.exp {
        if exp <= now_unix() {
            return Err(Error::Expired {
                what: "the link (it says so itself)".into(),
            });
        }
    }
    if payload.has('P') && options.passcode.as_deref().unwrap_or("").is_empty() {
        return Err(Error::Denied {
            reason: "this link needs a passcode".into(),
        });
    }
    let recipient = if options.recipient.trim().is_empty() {
        "Carry".to_string()
    } else {
        options.recipient.trim().chars().take(200).collect()
    };
    // The endpoint refuses these (a name that reads as another line, or recolours
    // the owner's screen); say so before anything is sent.
    if recipient.chars().any(crate::text::is_unsafe) {
        return Err(Error::invalid(
            "the recipient must be one line of plain text, without control characters or bidi controls",
        ));
    }
    let deadline = options.budget.map(|b| std::time::Instant::now() + b);
    // A file past the cap is refused as it arrives (the manifest is JSON around it).
    let http = Http::new(deadline, None)?.max_body(FILE_MAX + (64 << 10));
    let url = check_url(&payload.url)?;
    let file = if payload.has('U') {
        let mut u = url.clone();
        u.query_pairs_mut().append_pair("recipient", &recipient);
        let r = http.send(|| http.client().get(u.clone())).await?;
        if r.status != 200 {
            return Err(refusal(&r));
        }
        body_of("file", &r)?;
        String::from_utf8(r.body).map_err(|_| Error::invalid("the file is not text"))?
    } else {
        let text = serde_json::to_string(&ManifestRequest {
            embedded_length_max: u64::try_from(FILE_MAX).ok(),
            passcode: options.passcode.clone(),
            recipient: Some(recipient),
        })?;
        let r = http
            .send(|| {
                http.client()
                    .post(url.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(text.clone())
            })
            .await?;
        if r.status != 200 {
            return Err(refusal(&r));
        }
        body_of("manifest", &r)?;
        let m: Manifest = serde_json::from_slice(&r.body)
            .map_err(|_| Error::invalid("the manifest is not what the protocol says"))?;
        let f = m
            .files
            .into_iter()
            .find(|f| {
                f.content_type
                    .as_deref()
                    .is_none_or(|c| c == super::FHIR_JSON)
            })
            .ok_or_else(|| Error::invalid("the manifest lists no FHIR file"))?;
        match (f.embedded, f.location) {
            (Some(e), _) => e,
            (None, Some(loc)) => {
                let loc = check_url(&loc)?;
                let r = http.send(|| http.client().get(loc.clone())).await?;
                if r.status != 200 {
                    return Err(refusal(&r));
                }
                body_of("file", &r)?;
                String::from_utf8(r.body).map_err(|_| Error::invalid("the file is not text"))?
            }
            (None, None) => return Err(Error::invalid("the manifest's file has no content")),
        }
    };
    let key = payload.key_bytes()?;
    let d = jwe::decrypt(&key, &file)?;
    let bundle: Value = serde_json::from_slice(&d.plaintext)
        .map_err(|_| Error::invalid("the decrypted file is not JSON"))?;
    let summary = ips::summarise(&bundle).ok();
    Ok(Opened {
        bundle,
        summary,
        label: payload.label.clone(),
        expires_at: payload.exp,
    })
}
