//! HTTP for sync: rustls on ring with the webpki roots, retries with exponential
//! backoff and full jitter, `Retry-After` honoured, a deadline, cancellation, and a
//! request count. Nothing here logs a URL's query, a header or a body.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Tries per request, the first included.
const ATTEMPTS: u32 = 6;
/// The first backoff, doubled each retry up to [`BACKOFF_CAP`].
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(20);
/// The longest one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest `Retry-After` honoured by waiting; longer ones end the run.
const RETRY_AFTER_MAX: u64 = 120;
/// The largest answer read by default (a FHIR page of up to 500 resources, a relay
/// page, a share-link manifest); a larger one is refused as it arrives, not after.
pub const DEFAULT_MAX_BODY: usize = 64 << 20;

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    /// The HTTP status.
    pub status: u16,
    /// The body, read whole (within the client's cap).
    pub body: Vec<u8>,
    /// The `Location` header, if any.
    pub location: Option<String>,
    /// The `X-Carry-*` headers, by lower-case name (the backup host's version and base).
    pub carry: Vec<(String, String)>,
}

impl Resp {
    /// The value of the `X-Carry-*` header `name` (lower-case), if present.
    pub fn carry_header(&self, name: &str) -> Option<&str> {
        self.carry
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The client of one sync run.
pub struct Http {
    client: reqwest::Client,
    deadline: Option<Instant>,
    cancel: Option<Arc<AtomicBool>>,
    requests: Option<Arc<AtomicU64>>,
    max_body: usize,
}

/// TLS through rustls with ring, the Mozilla roots from webpki-roots, and what the app
/// added per host (extra roots, pins: see [`super::trust`]).
fn tls() -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::internal(format!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(super::trust::Verifier::new()?))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// One random number in `0..n`.
fn random_below(n: u64) -> u64 {
    let mut b = [0u8; 8];
    if crate::keys::fill_random(&mut b).is_err() || n == 0 {
        return n / 2;
    }
    u64::from_le_bytes(b) % n
}

/// The wait before retry `attempt` (1-based): full jitter over an exponential step.
pub fn backoff(attempt: u32) -> Duration {
    let step = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_CAP);
    let ms = step.as_millis() as u64;
    Duration::from_millis(ms / 2 + random_below(ms / 2 + 1))
}

/// Parse `Retry-After` as seconds (the HTTP-date form is read as "soon").
fn retry_after(h: &reqwest::header::HeaderMap) -> Option<u64> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    Some(v.trim().parse::<u64>().unwrap_or(1))
}

impl Http {
    /// A client that stops at `deadline` and when `cancel` is set.
    pub fn new(deadline: Option<Instant>, cancel: Option<Arc<AtomicBool>>) -> Result<Self> {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls()?)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("carry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::internal(format!("HTTP client setup: {e}")))?;
        Ok(Http {
            client,
            deadline,
            cancel,
            requests: None,
            max_body: DEFAULT_MAX_BODY,
        })
    }

    /// Read answers of up to `bytes` (default [`DEFAULT_MAX_BODY`]); a larger one fails
    /// with a network error as soon as its declared length or the bytes read pass it.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Count the requests sent into `requests`.
    pub fn counting(mut self, requests: Arc<AtomicU64>) -> Self {
        self.requests = Some(requests);
        self
    }

    /// The underlying client, to build requests.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    fn check_cancel(&self) -> Result<()> {
        match &self.cancel {
            Some(c) if c.load(Ordering::Relaxed) => Err(Error::Cancelled),
            _ => Ok(()),
        }
    }

    /// Sleep `d`, unless that passes the deadline: then fail as the budget running out.
    async fn wait(&self, d: Duration, retry_after_s: Option<u64>) -> Result<()> {
        if let Some(deadline) = self.deadline {
            if Instant::now() + d > deadline {
                return Err(Error::Network {
                    reason: "the time budget ran out while waiting to retry".into(),
                    retry_after_s,
                });
            }
        }
        tokio::time::sleep(d).await;
        self.check_cancel()
    }

    /// Send the request `build` makes, retrying what is worth retrying: connection
    /// failures, timeouts, broken bodies, `429`, `502`, `503`, `504` and `500`. Other
    /// answers (2xx, 3xx, 4xx) are returned for the caller to judge.
    pub async fn send(&self, build: impl Fn() -> reqwest::RequestBuilder) -> Result<Resp> {
        let mut last = String::new();
        let mut last_retry_after = None;
        for attempt in 0..ATTEMPTS {
            self.check_cancel()?;
            if attempt > 0 {
                let wait = match last_retry_after {
                    Some(s) if s > RETRY_AFTER_MAX => {
                        return Err(Error::Network {
                            reason: format!("the server asked to wait {s} s"),
                            retry_after_s: Some(s),
                        })
                    }
                    Some(s) => Duration::from_secs(s) + backoff(0) / 4,
                    None => backoff(attempt),
                };
                self.wait(wait, last_retry_after).await?;
            }
            if let Some(n) = &self.requests {
                n.fetch_add(1, Ordering::Relaxed);
            }
            // A request still running when the budget ends is cut off by the caller's
            // budget (which keeps what was fetched), not here: give it a moment more.
            let timeout = match self.deadline {
                Some(d) => (d.saturating_duration_since(Instant::now()) + Duration::from_secs(2))
                    .min(REQUEST_TIMEOUT),
                None => REQUEST_TIMEOUT,
            };
            let sent = build().timeout(timeout).send().await;
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    // A certificate refused is refused again: say so now.
                    if let Some(why) = super::trust::certificate_refusal(&e) {
                        return Err(Error::Denied {
                            reason: format!(
                                "the server did not prove who it is: its certificate was refused ({why})"
                            ),
                        });
                    }
                    last = if e.is_timeout() {
                        "the request timed out".into()
                    } else if e.is_connect() {
                        "could not connect".into()
                    } else {
                        "the connection failed".into()
                    };
                    last_retry_after = None;
                    tracing::debug!(attempt, reason = %last, "request failed; retrying");
                    continue;
                }
            };
            let status = resp.status().as_u16();
            let ra = retry_after(resp.headers());
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let carry = resp
                .headers()
                .iter()
                .filter(|(n, _)| n.as_str().starts_with("x-carry-"))
                .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
                .collect();
            if matches!(status, 429 | 500 | 502 | 503 | 504) {
                last = format!("the server answered {status}");
                last_retry_after = ra;
                tracing::debug!(attempt, status, "transient answer; retrying");
                continue;
            }
            let too_large = || Error::Network {
                reason: format!(
                    "the answer is larger than {} KiB, the most this request reads",
                    self.max_body / 1024
                ),
                retry_after_s: None,
            };
            if resp
                .content_length()
                .is_some_and(|n| n > u64::try_from(self.max_body).unwrap_or(u64::MAX))
            {
                return Err(too_large());
            }
            match read_capped(resp, self.max_body).await {
                Ok(Some(body)) => {
                    return Ok(Resp {
                        status,
                        body,
                        location,
                        carry,
                    })
                }
                Ok(None) => return Err(too_large()),
                Err(_) => {
                    last = "the answer was cut off".into();
                    last_retry_after = None;
                    tracing::debug!(attempt, "body cut off; retrying");
                }
            }
        }
        Err(Error::Network {
            reason: format!("{last} ({ATTEMPTS} tries)"),
            retry_after_s: last_retry_after,
        })
    }
}

/// The body of `resp`, read chunk by chunk: `None` as soon as it passes `max` bytes.
async fn read_capped(
    mut resp: reqwest::Response,
    max: usize,
) -> std::result::Result<Option<Vec<u8>>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > max {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// Percent-encode a query value (RFC 3986 unreserved characters pass).
pub fn enc(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        for attempt in 1..20 {
            let d = backoff(attempt);
            let step = BACKOFF_BASE
                .saturating_mul(1u32 << attempt.min(16))
                .min(BACKOFF_CAP);
            assert!(d >= step / 2 && d <= step, "{attempt}: {d:?}");
        }
        assert!(backoff(30) <= BACKOFF_CAP);
    }

    /// A one-connection-at-a-time server answering every request with `answer`.
    fn serve(answer: Vec<u8>) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(&answer);
            }
        });
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn answers_past_the_cap_are_refused_as_they_arrive() {
        let big = vec![b'x'; 3000];
        let declared = [
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", big.len()).into_bytes(),
            big.clone(),
        ]
        .concat();
        let chunked = [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
            format!("{:x}\r\n", big.len()).into_bytes(),
            big.clone(),
            b"\r\n0\r\n\r\n".to_vec(),
        ]
        .concat();
        for answer in [declared, chunked] {
            let url = serve(answer);
            let http = Http::new(None, None).unwrap().max_body(1000);
            match http.send(|| http.client().get(&url)).await {
                Err(Error::Network { reason, .. }) => {
                    assert!(reason.contains("larger"), "{reason}")
                }
                other => panic!("{other:?}"),
            }
            let http = Http::new(None, None).unwrap().max_body(3000);
            let r = http.send(|| http.client().get(&url)).await.unwrap();
            assert_eq!(r.body, big);
        }
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            enc("2024-01-01T00:00:00.001+00:00"),
            "2024-01-01T00%3A00%3A00.001%2B00%3A00"
        );
        assert_eq!(enc("a|b"), "a%7Cb");
    }
}
