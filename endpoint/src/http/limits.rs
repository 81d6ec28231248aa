//! Limits and test faults on the FHIR APIs: a per-client rate limit that answers `429`
//! with `Retry-After`, and injected faults (delays, `500`s, dropped connections and
//! truncated bodies) so clients can prove they converge anyway. The rate limit covers
//! the share relay and the share-link routes too (faults do not).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// A kind of injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer `500` without doing the work.
    ServerError,
    /// Close the connection without an answer.
    Drop,
    /// Send the head and half the body, then close.
    Truncate,
    /// Wait before answering.
    Delay,
    /// Answer a search page as a server that loses pages does: its `next` link
    /// removed, and a `total` that promises one more resource than it holds.
    Short,
}

/// One fault rule: every `every`-th FHIR request gets `kind`.
#[derive(Debug)]
pub struct Fault {
    kind: FaultKind,
    every: u64,
    seen: AtomicU64,
}

impl Fault {
    /// Parse `KIND/EVERY`, e.g. `500/3`, `drop/4`, `truncate/5`, `delay/2`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (kind, every) = s
            .split_once('/')
            .ok_or_else(|| format!("fault '{s}' must be KIND/EVERY, e.g. 500/3"))?;
        let kind = match kind {
            "500" => FaultKind::ServerError,
            "drop" => FaultKind::Drop,
            "truncate" => FaultKind::Truncate,
            "delay" => FaultKind::Delay,
            "short" => FaultKind::Short,
            other => {
                return Err(format!(
                    "unknown fault '{other}': use 500, drop, truncate, delay or short"
                ))
            }
        };
        let every = every
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| format!("fault '{s}': EVERY must be a whole number from 1"))?;
        Ok(Fault {
            kind,
            every,
            seen: AtomicU64::new(0),
        })
    }

    fn fires(&self) -> bool {
        (self.seen.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(self.every)
    }
}

/// Token buckets by key: `rate` requests a second, bursts of up to `rate`.
#[derive(Debug)]
struct Buckets {
    rate: f64,
    map: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Buckets {
    fn new(per_second: f64) -> Self {
        Buckets {
            rate: per_second.max(1.0),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Take one request's worth; `Err(seconds)` says how long until one is free.
    fn take(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            // Forget idle keys rather than grow without bound.
            let rate = self.rate;
            map.retain(|_, (tokens, at)| *tokens + at.elapsed().as_secs_f64() * rate < rate);
        }
        let (tokens, at) = map.entry(key.to_string()).or_insert((self.rate, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.rate);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

/// How many clients' worth one address may carry in all (a household, or phones
/// behind carrier-grade NAT). Tokens are not checked before the limit, so this is
/// what caps a caller who makes up a new one for each request.
const ADDRESS_SHARE: f64 = 10.0;

/// The rate limit: `per_second` requests a second per client (a bearer token, else
/// an address), and `ADDRESS_SHARE` times that per address, whatever the tokens.
#[derive(Debug)]
pub struct RateLimit {
    clients: Buckets,
    addresses: Buckets,
}

/// Who a request is from, as the rate limit counts it.
#[derive(Debug, PartialEq, Eq)]
struct Caller {
    /// The client: `token:HASH`, `ip:ADDRESS`, or `anonymous` when neither is known.
    key: String,
    /// The address it came from, if known.
    address: Option<String>,
}

impl RateLimit {
    /// A limit of `per_second` requests a second per client.
    pub fn new(per_second: u32) -> Self {
        let n = f64::from(per_second.max(1));
        RateLimit {
            clients: Buckets::new(n),
            addresses: Buckets::new(n * ADDRESS_SHARE),
        }
    }

    /// Take one request's worth from the caller's address, then from the caller;
    /// `Err(seconds)` says how long until one is free.
    fn take(&self, caller: &Caller) -> Result<(), u64> {
        if let Some(a) = &caller.address {
            self.addresses.take(a)?;
        }
        self.clients.take(&caller.key)
    }
}

/// What the limits layer holds.
#[derive(Debug, Default)]
pub struct Limits {
    /// The rate limit, if any.
    pub rate: Option<RateLimit>,
    /// Whether a request without a token is known by the last `X-Forwarded-For`
    /// address (set by a trusted proxy in front) rather than the connection's peer.
    pub trust_forwarded_for: bool,
    /// Fault rules, checked in order; the first that fires wins.
    pub faults: Vec<Fault>,
    /// How long a `delay` fault waits.
    pub delay: Duration,
}

/// Whether a path is a tenant's FHIR API (limits and faults apply there only; the
/// SMART authorization endpoints and `/healthz` are left alone).
fn is_fhir_api(path: &str) -> bool {
    path.contains("/fhir/") && !path.contains("/.well-known/")
}

/// Whether a path is the share relay's (the rate limit applies there too). A tenant
/// named `relay` keeps its FHIR API: `/relay/fhir/…` is not the relay's.
fn is_relay(path: &str) -> bool {
    path.starts_with("/relay/v")
}

/// Whether a path is the share-link host's (`/shl/…`: the owner API and the public
/// protocol; the rate limit applies there too). A tenant named `shl` keeps its FHIR
/// API: `/shl/fhir/…` is not the host's.
fn is_shl(path: &str) -> bool {
    path.starts_with("/shl/") && !path.starts_with("/shl/fhir/")
}

/// Whether a path is the backup host's (`/backup/…`; the rate limit applies there
/// too). A tenant named `backup` keeps its FHIR API: `/backup/fhir/…` is not the host's.
fn is_backup(path: &str) -> bool {
    path.starts_with("/backup/") && !path.starts_with("/backup/fhir/")
}

/// Whether a path is the mock NHS login's (`/nhs-login/…`; the rate limit applies
/// there too: its token endpoint checks and makes RSA signatures).
fn is_nhs_login(path: &str) -> bool {
    path.starts_with("/nhs-login/")
}

/// Whether a path is the public SHL protocol's, whose answers any origin may read.
fn is_shl_public(path: &str) -> bool {
    path.starts_with("/shl/m/") || path.starts_with("/shl/f/")
}

/// Who a request is from: the bearer token's hash if it carries one, else its
/// address; the address is the last `X-Forwarded-For` entry when a trusted proxy sets
/// it (`forwarded`), else the connection's peer.
fn caller(req: &Request, forwarded: bool) -> Caller {
    let from_proxy = || {
        let all = req.headers().get_all("x-forwarded-for");
        let last = all.iter().next_back()?.to_str().ok()?;
        let ip: std::net::IpAddr = last.rsplit(',').next()?.trim().parse().ok()?;
        Some(ip)
    };
    let address = if forwarded {
        from_proxy()
    } else {
        req.extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
    }
    .map(|ip| ip.to_string());
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let key = match (token, &address) {
        (Some(t), _) => format!("token:{}", crate::http::tokens::token_hash(t)),
        (None, Some(a)) => format!("ip:{a}"),
        (None, None) => "anonymous".to_string(),
    };
    Caller { key, address }
}

/// The middleware: rate limit, then faults, then the request.
pub async fn layer(State(limits): State<Arc<Limits>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let (fhir, relay) = (
        is_fhir_api(path),
        is_relay(path) || is_shl(path) || is_backup(path) || is_nhs_login(path),
    );
    let cors = is_shl_public(path);
    if !fhir && !relay {
        return next.run(req).await;
    }
    if let Some(rl) = &limits.rate {
        if let Err(wait) = rl.take(&caller(&req, limits.trust_forwarded_for)) {
            const TEXT: &str = "too many requests; retry later";
            let mut r = if relay {
                crate::http::answer::json_error(StatusCode::TOO_MANY_REQUESTS, TEXT)
            } else {
                crate::http::answer::outcome(StatusCode::TOO_MANY_REQUESTS, "throttled", TEXT)
            };
            if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            if cors {
                crate::http::answer::allow_any_origin(r.headers_mut());
            }
            return r;
        }
    }
    if relay {
        return next.run(req).await;
    }
    let fault = limits.faults.iter().find(|f| f.fires()).map(|f| f.kind);
    match fault {
        None => next.run(req).await,
        Some(FaultKind::Delay) => {
            tokio::time::sleep(limits.delay).await;
            next.run(req).await
        }
        Some(FaultKind::ServerError) => crate::http::answer::outcome(
            StatusCode::INTERNAL_SERVER_ERROR,
            "transient",
            "injected fault",
        ),
        Some(FaultKind::Drop) => {
            tracing::info!("injected fault: dropping the connection");
            broken(None)
        }
        Some(FaultKind::Short) => {
            let resp = next.run(req).await;
            let (mut parts, body) = resp.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
                return broken(None);
            };
            let Ok(mut page) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                return Response::from_parts(parts, axum::body::Body::from(bytes));
            };
            if page["resourceType"] == "Bundle" {
                let held = page["entry"].as_array().map_or(0, Vec::len);
                page["total"] = serde_json::json!(held + 1);
                if let Some(links) = page["link"].as_array_mut() {
                    links.retain(|l| l["relation"] != "next");
                }
                tracing::info!("injected fault: a short search page");
            }
            let text = page.to_string();
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, axum::body::Body::from(text))
        }
        Some(FaultKind::Truncate) => {
            let resp = next.run(req).await;
            let (mut parts, body) = resp.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
                return broken(None);
            };
            tracing::info!("injected fault: truncating the body");
            let half = bytes.slice(..bytes.len() / 2);
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            let mut r = broken(Some(half));
            *r.status_mut() = parts.status;
            *r.headers_mut() = parts.headers;
            r
        }
    }
}

/// A response whose body fails after `first` (or at once), so the server closes the
/// connection mid-answer.
fn broken(first: Option<Bytes>) -> Response {
    let chunks: Vec<Result<Bytes, std::io::Error>> = first
        .into_iter()
        .map(Ok)
        .chain(std::iter::once(Err(std::io::Error::other(
            "injected fault",
        ))))
        .collect();
    let body = Body::from_stream(futures_util::stream::iter(chunks));
    (StatusCode::OK, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_and_fire_every_nth() {
        let f = Fault::parse("500/3").unwrap();
        let fired: Vec<bool> = (0..6).map(|_| f.fires()).collect();
        assert_eq!(fired, [false, false, true, false, false, true]);
        assert!(Fault::parse("500").is_err());
        assert!(Fault::parse("boom/2").is_err());
        assert!(Fault::parse("drop/0").is_err());
    }

    #[test]
    fn share_link_paths_are_limited_but_a_tenant_named_shl_is_fhir() {
        assert!(is_shl("/shl/m/abc") && is_shl("/shl/v1/links"));
        assert!(!is_shl("/shl/fhir/Patient") && is_fhir_api("/shl/fhir/Patient"));
        assert!(is_shl_public("/shl/f/t") && !is_shl_public("/shl/v1/links"));
        assert!(!is_shl("/view"));
    }

    #[test]
    fn backup_paths_are_limited_but_a_tenant_named_backup_is_fhir() {
        assert!(is_backup("/backup/v1/blobs/x") && !is_backup("/backup/fhir/Patient"));
        assert!(is_fhir_api("/backup/fhir/Patient") && !is_backup("/shl/m/x"));
        assert!(is_nhs_login("/nhs-login/token") && !is_nhs_login("/nhs-login-x/fhir/Patient"));
    }

    #[test]
    fn clients_are_known_by_token_then_by_address() {
        let req = |token: Option<&str>, forwarded: &[&str], peer: Option<&str>| {
            let mut b = axum::http::Request::builder().uri("/relay/v1/mailbox");
            if let Some(t) = token {
                b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
            }
            for f in forwarded {
                b = b.header("x-forwarded-for", *f);
            }
            let mut r = b.body(Body::empty()).unwrap();
            if let Some(p) = peer {
                r.extensions_mut()
                    .insert(ConnectInfo(p.parse::<SocketAddr>().unwrap()));
            }
            r
        };
        let peer = Some("192.0.2.7:5000");
        let key = |r: &Request, forwarded: bool| caller(r, forwarded).key;
        // A token names the client wherever it comes from.
        let a = key(&req(Some("t1"), &[], peer), false);
        assert!(a.starts_with("token:"), "{a}");
        assert_eq!(a, key(&req(Some("t1"), &["198.51.100.1"], None), true));
        assert_ne!(a, key(&req(Some("t2"), &[], peer), false));
        // Without one: the peer, unless a trusted proxy names the client; then the
        // last address it appended (earlier ones are the client's own claims).
        assert_eq!(
            key(&req(None, &["203.0.113.9"], peer), false),
            "ip:192.0.2.7"
        );
        assert_eq!(
            key(&req(None, &["10.0.0.1, 203.0.113.9"], peer), true),
            "ip:203.0.113.9"
        );
        assert_eq!(
            key(&req(None, &["10.0.0.1", "203.0.113.9"], peer), true),
            "ip:203.0.113.9"
        );
        assert_eq!(
            key(&req(None, &["not an address"], peer), true),
            "anonymous"
        );
        assert_eq!(key(&req(None, &[], None), false), "anonymous");
        // The address is known with a token too, for the per-address share.
        assert_eq!(
            caller(&req(Some("t1"), &[], peer), false)
                .address
                .as_deref(),
            Some("192.0.2.7")
        );
    }

    #[test]
    fn rate_limit_refuses_past_the_burst_and_says_when() {
        let rl = RateLimit::new(2);
        let who = |key: &str, address: Option<&str>| Caller {
            key: key.to_string(),
            address: address.map(str::to_string),
        };
        assert!(rl.take(&who("a", None)).is_ok());
        assert!(rl.take(&who("a", None)).is_ok());
        assert_eq!(rl.take(&who("a", None)), Err(1));
        assert!(rl.take(&who("b", None)).is_ok(), "clients are apart");
    }

    #[test]
    fn made_up_tokens_from_one_address_share_its_allowance() {
        let rl = RateLimit::new(2);
        // A new token for every request: each client bucket is fresh, but the
        // address carries at most ADDRESS_SHARE clients' worth.
        let taken = (0..100)
            .filter(|i| {
                rl.take(&Caller {
                    key: format!("token:{i}"),
                    address: Some("192.0.2.7".into()),
                })
                .is_ok()
            })
            .count();
        // 2 × 10 at once, and a little more if the machine stalls while refilling.
        assert!((20..30).contains(&taken), "{taken}");
        // Another address is not held back by it.
        assert!(rl
            .take(&Caller {
                key: "token:x".into(),
                address: Some("192.0.2.8".into()),
            })
            .is_ok());
    }
}
