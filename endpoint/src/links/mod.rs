//! The SMART Health Links host (HL7 "SMART Health Cards and Links" IG, STU1): a
//! person's device uploads an encrypted file (a JWE whose key stays in the link's URL
//! fragment) and a clinician's viewer fetches it through the SHL protocol.
//!
//! Owner API, signed in with a relay session (`Authorization: Bearer TOKEN` from
//! `POST /relay/v1/session`); a link belongs to the session key's mailbox:
//!
//! - `POST /shl/v1/links` `{file, flags, passcode?, expires_at?, once?}` → 201 `{id, manifest_url}`
//! - `GET /shl/v1/links` → `{links: [{id, flags, state, expires_at, created_at, accesses, refused}]}`
//! - `PUT /shl/v1/links/{id}/file` `{file}` → 204 (409 once revoked)
//! - `DELETE /shl/v1/links/{id}` → 204 (idempotent)
//! - `GET /shl/v1/links/{id}/accesses?after=N` → `{accesses, state, remaining_attempts,
//!   expires_at, refused, last_refused_at}`
//!
//! Public protocol (CORS open to any origin):
//!
//! - `POST /shl/m/{id}` `{recipient, passcode?, embeddedLengthMax?}` → the manifest;
//!   401 `{remainingAttempts}` for a wrong passcode; 404 for anything not served
//! - `GET /shl/m/{id}?recipient=…` → the JWE of a `U` link (`application/jose`)
//! - `GET /shl/f/{token}` → the JWE behind a manifest's `location` (`application/jose`)
//!
//! Only openings are kept row by row (see [`crate::links::store`]); refusals are counted
//! on the link, and nothing is recorded once a link has ended. A recipient is at most
//! 200 characters with no control characters, line breaks or bidi controls (400
//! otherwise), so it shows as the one line it claims to be.
//!
//! The JSON bodies are the types of [`carry_proto::links`], shared with the clients.
//!
//! Nothing here logs a passcode, token, recipient or file.

pub(crate) mod store;
pub(crate) mod viewer;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use carry_proto::links::{
    AccessEntry, AccessPage, CreateAnswer, CreateRequest, LinkEntry, LinkList, Manifest,
    ManifestFile, ManifestRequest, ReplaceFileRequest, WrongPasscode,
};
use carry_proto::relay::messages::ErrorBody;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Result as StoreResult;
use crate::http::body::{BodyError, Incoming};
use crate::http::tokens::{new_token, token_hash};
use crate::links::store::LinkStore;
use crate::links::store::{Answer, Ask, Attempt, Change, Link, LinkState, NewLink, Via};
use crate::relay::{Relay, RelayError};

/// PBKDF2-HMAC-SHA256 rounds for a stored passcode.
const PASSCODE_ROUNDS: u32 = 100_000;
/// Bytes of random salt per passcode.
const SALT_LEN: usize = 16;
/// Bytes of derived hash per passcode.
const HASH_LEN: usize = 32;
/// The shortest and longest passcodes, in characters.
const PASSCODE_CHARS: std::ops::RangeInclusive<usize> = 4..=64;
/// The longest recipient, in characters.
const MAX_RECIPIENT: usize = 200;
/// Accesses per page of the access log.
const ACCESS_PAGE: usize = 1000;
/// The largest body a public request may have (a recipient, a passcode, a number).
const PUBLIC_BODY_LIMIT: usize = 16 << 10;
/// Room for the JSON around a file in an owner's upload.
const UPLOAD_OVERHEAD: usize = 64 << 10;
/// Least time between two purges of expired location tokens by one process, in seconds.
const PRUNE_EVERY_S: i64 = 60;
/// The content type of every file this host serves: an IPS document Bundle.
const FILE_CONTENT_TYPE: &str = "application/fhir+json";

/// The share-link host's options on `serve`.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "shl_options")]
pub struct Options {
    /// Largest share-link file (the JWE text) in bytes; larger uploads get 413.
    #[arg(long = "shl-max-file", value_name = "BYTES", default_value_t = 8 << 20,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_file: u32,
    /// Wrong passcodes a share link takes over its lifetime before it locks.
    #[arg(long = "shl-passcode-attempts", value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub passcode_attempts: u32,
    /// How long a manifest's `location` URL works, in seconds (the protocol allows at
    /// most an hour).
    #[arg(long = "shl-location-ttl", value_name = "SECONDS", default_value_t = 3600,
          value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub location_ttl: u32,
}

/// The share-link host's state.
pub struct Shl {
    store: Arc<dyn LinkStore>,
    relay: Arc<Relay>,
    /// The base URL clients reach this server at, for `manifest_url` and `location`.
    public_base: String,
    /// Largest file, in bytes.
    max_file: usize,
    /// Wrong passcodes a new link takes before it locks.
    max_failures: i64,
    /// How long a location token works, in seconds.
    location_ttl_s: i64,
    /// When this process last purged expired tokens (seconds; 0: never).
    last_prune_s: AtomicI64,
}

impl Shl {
    /// A host over `store`, signing owners in through `relay`, with `options`.
    pub fn new(
        store: Arc<dyn LinkStore>,
        relay: Arc<Relay>,
        public_base: String,
        options: &Options,
    ) -> Self {
        Shl {
            store,
            relay,
            public_base,
            max_file: usize::try_from(options.max_file).unwrap_or(usize::MAX),
            max_failures: i64::from(options.passcode_attempts),
            location_ttl_s: i64::from(options.location_ttl.clamp(1, 3600)),
            last_prune_s: AtomicI64::new(0),
        }
    }

    /// Run a storage call off the async threads.
    async fn store<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&dyn LinkStore) -> StoreResult<T> + Send + 'static,
    ) -> Result<T, LinkError> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "share-link storage failed");
                Err(LinkError::Storage)
            }
            Err(e) => {
                tracing::error!(error = %e, "share-link storage task failed");
                Err(LinkError::Storage)
            }
        }
    }

    /// The signed-in owner's mailbox id.
    async fn owner(self: &Arc<Self>, headers: &HeaderMap) -> Result<String, LinkError> {
        match self.relay.signed_in(headers).await {
            Ok(caller) => Ok(caller.mailbox),
            Err(RelayError::Unauthorized(m)) => Err(LinkError::Unauthorized(m)),
            Err(_) => Err(LinkError::Storage),
        }
    }

    /// Purge expired location tokens in the background, at most once a minute per
    /// process.
    fn maybe_prune(self: &Arc<Self>, now_s: i64) {
        let last = self.last_prune_s.load(Ordering::Relaxed);
        if now_s - last < PRUNE_EVERY_S
            || self
                .last_prune_s
                .compare_exchange(last, now_s, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let shl = self.clone();
        tokio::spawn(async move {
            if let Ok(n) = shl.store(move |s| s.shl_prune(now_s)).await {
                tracing::debug!(tokens = n, "share-link tokens pruned");
            }
        });
    }

    /// The largest owner request body: the largest file and the JSON around it.
    pub fn body_limit(&self) -> usize {
        self.max_file.saturating_add(UPLOAD_OVERHEAD)
    }

    /// The manifest URL of link `id`.
    fn manifest_url(&self, id: &str) -> String {
        format!("{}/shl/m/{id}", self.public_base)
    }
}

/// Why a request was refused. Each becomes JSON with its status: `{"error": "…"}`,
/// or `{"remainingAttempts": n}` for a wrong passcode.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// 400: the request is malformed.
    #[error("{0}")]
    BadRequest(&'static str),
    /// 401: no owner session.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 401: a wrong or missing passcode; this many attempts remain.
    #[error("the passcode is wrong")]
    WrongPasscode {
        /// Wrong passcodes left before the link locks.
        remaining: i64,
    },
    /// 404: no such link (of this owner), or one no longer served. The public side
    /// never says which.
    #[error("no such link, or it is no longer shared")]
    NotFound,
    /// 409: the link is revoked.
    #[error("the link is revoked")]
    Revoked,
    /// 413: the body or the file is too large.
    #[error("{0}")]
    TooLarge(String),
    /// 500: storage failed (logged, without content).
    #[error("the share-link storage failed")]
    Storage,
    /// 500: no randomness for an id, a salt or a token.
    #[error("the server could not make a random value")]
    Random,
    /// The body could not be taken: too slow, or no room in the budget (413s are
    /// [`LinkError::TooLarge`]).
    #[error(transparent)]
    Body(BodyError),
}

impl From<BodyError> for LinkError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge => LinkError::TooLarge("the request body is too large".into()),
            other => LinkError::Body(other),
        }
    }
}

impl LinkError {
    fn status(&self) -> StatusCode {
        match self {
            LinkError::BadRequest(_) => StatusCode::BAD_REQUEST,
            LinkError::Unauthorized(_) | LinkError::WrongPasscode { .. } => {
                StatusCode::UNAUTHORIZED
            }
            LinkError::NotFound => StatusCode::NOT_FOUND,
            LinkError::Revoked => StatusCode::CONFLICT,
            LinkError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            LinkError::Storage | LinkError::Random => StatusCode::INTERNAL_SERVER_ERROR,
            LinkError::Body(e) => e.status(),
        }
    }
}

impl IntoResponse for LinkError {
    fn into_response(self) -> Response {
        let mut r = match &self {
            LinkError::WrongPasscode { remaining } => no_store(
                self.status(),
                WrongPasscode {
                    remaining_attempts: *remaining,
                },
            ),
            other => no_store(
                self.status(),
                ErrorBody {
                    error: other.to_string(),
                },
            ),
        };
        if matches!(self, LinkError::Unauthorized(_)) {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"carry-relay\""),
            );
        }
        if let LinkError::Body(e) = &self {
            e.decorate(r.headers_mut());
        }
        r
    }
}

/// JSON with `Cache-Control: no-store`.
fn no_store(status: StatusCode, body: impl Serialize) -> Response {
    let mut r = (status, Json(body)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A JWE as a file answer.
fn jose(jwe: String) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/jose"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        jwe,
    )
        .into_response()
}

/// Turn a handler's result into the answer.
fn answer(r: Result<Response, LinkError>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

/// The share-link routes: the owner API and the public protocol.
pub fn routes<S: Clone + Send + Sync + 'static>(shl: Arc<Shl>) -> Router<S> {
    let upload_limit = shl.body_limit();
    let owner = Router::new()
        .route("/shl/v1/links", post(create).get(list))
        .route("/shl/v1/links/{id}", axum::routing::delete(revoke))
        .route("/shl/v1/links/{id}/file", put(replace_file))
        .route("/shl/v1/links/{id}/accesses", get(accesses))
        .layer(middleware::from_fn_with_state(
            upload_limit,
            crate::relay::refuse_declared_large,
        ));
    let public = Router::new()
        .route("/shl/m/{id}", post(manifest).get(direct).options(preflight))
        .route("/shl/f/{token}", get(file).options(preflight))
        .layer(middleware::from_fn_with_state(
            PUBLIC_BODY_LIMIT,
            crate::relay::refuse_declared_large,
        ))
        .layer(middleware::from_fn(open_cors));
    owner.merge(public).with_state(shl)
}

/// Let pages from any origin read the public answers (the viewer may be served from
/// anywhere; the links are bearer capabilities and carry no cookies).
async fn open_cors(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    allow_any_origin(r.headers_mut());
    r
}

/// Add `Access-Control-Allow-Origin: *` (and expose `Retry-After`) to an answer.
pub use crate::http::answer::allow_any_origin;

/// A CORS preflight: `POST` and `GET` with a `Content-Type` header, from anywhere.
async fn preflight() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, OPTIONS"),
            ),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("Content-Type"),
            ),
            (
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            ),
        ],
    )
        .into_response()
}

/// Read a JSON request body of at most `limit` bytes (see [`crate::http::body`]) and parse
/// it. Handlers call it only once the request is otherwise checked.
async fn parse<T: DeserializeOwned>(body: Incoming, limit: usize) -> Result<T, LinkError> {
    let held = body.read(limit).await?;
    // serde's messages can quote the input, so they are not passed on.
    serde_json::from_slice(&held.bytes)
        .map_err(|_| LinkError::BadRequest("the body is not the JSON this route expects"))
}

/// Whether `s` is base64url of exactly 32 bytes (a link id or a location token).
fn valid_id(s: &str) -> bool {
    s.len() == 43 && B64.decode(s).is_ok_and(|b| b.len() == 32)
}

/// A link id from the path, or 404.
fn link_id(p: Result<Path<String>, PathRejection>) -> Result<String, LinkError> {
    match p {
        Ok(Path(id)) if valid_id(&id) => Ok(id),
        _ => Err(LinkError::NotFound),
    }
}

/// Whether `file` looks like a JWE in compact serialization: five base64url parts
/// separated by dots, all but the encrypted key (empty for `alg: dir`) non-empty.
pub fn looks_like_jwe(file: &str) -> bool {
    let parts: Vec<&str> = file.split('.').collect();
    parts.len() == 5
        && parts.iter().enumerate().all(|(i, p)| {
            (i == 1 || !p.is_empty())
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Check an uploaded file: its size first (413), then its shape (400).
fn check_file(file: &str, max: usize) -> Result<(), LinkError> {
    if file.len() > max {
        return Err(LinkError::TooLarge(format!(
            "the file is larger than {max} bytes"
        )));
    }
    if !looks_like_jwe(file) {
        return Err(LinkError::BadRequest(
            "file must be a JWE in compact serialization",
        ));
    }
    Ok(())
}

/// The flags a link may carry, as the protocol writes them (alphabetical).
fn check_flags(flags: &str) -> Result<(), LinkError> {
    match flags {
        "" | "L" | "P" | "LP" | "U" | "LU" => Ok(()),
        f if f.contains('U') && f.contains('P') => {
            Err(LinkError::BadRequest("the U flag cannot go with P"))
        }
        _ => Err(LinkError::BadRequest(
            "flags must be one of \"\", L, P, LP, U, LU",
        )),
    }
}

/// Whether `c` may not appear in a recipient: a control character (C0, DEL, C1: tabs
/// and line breaks included), a line or paragraph separator, or a bidi mark, embedding,
/// override or isolate, any of which could make one claimed name read as another line
/// or another name.
fn forbidden_in_recipient(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// A recipient as the protocol requires it: present, not blank, at most 200
/// characters, and one plain line (see [`forbidden_in_recipient`]).
fn check_recipient(r: Option<&str>) -> Result<String, LinkError> {
    match r {
        Some(r) if r.chars().any(forbidden_in_recipient) => Err(LinkError::BadRequest(
            "recipient must not hold control characters, line breaks or bidi controls",
        )),
        Some(r) if !r.trim().is_empty() && r.chars().count() <= MAX_RECIPIENT => Ok(r.to_string()),
        _ => Err(LinkError::BadRequest(
            "recipient is required: 1 to 200 characters",
        )),
    }
}

/// Hash a passcode for storage: PBKDF2-HMAC-SHA256 with 100,000 rounds and a random
/// 16-byte salt, as `pbkdf2-sha256$ROUNDS$SALT$HASH` (base64url).
pub fn hash_passcode(passcode: &str) -> Result<String, ring::error::Unspecified> {
    let mut salt = [0u8; SALT_LEN];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)?;
    let mut hash = [0u8; HASH_LEN];
    let rounds = std::num::NonZeroU32::new(PASSCODE_ROUNDS).ok_or(ring::error::Unspecified)?;
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        &salt,
        passcode.as_bytes(),
        &mut hash,
    );
    Ok(format!(
        "pbkdf2-sha256${PASSCODE_ROUNDS}${}${}",
        B64.encode(salt),
        B64.encode(hash)
    ))
}

/// Whether `passcode` matches a stored hash (in constant time, through ring).
pub fn passcode_matches(stored: &str, passcode: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some("pbkdf2-sha256"), Some(rounds), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Some(rounds), Ok(salt), Ok(hash)) = (
        rounds
            .parse::<u32>()
            .ok()
            .and_then(std::num::NonZeroU32::new),
        B64.decode(salt),
        B64.decode(hash),
    ) else {
        return false;
    };
    ring::pbkdf2::verify(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        &salt,
        passcode.as_bytes(),
        &hash,
    )
    .is_ok()
}

/// Whether a link carries flag `f`.
fn has_flag(link: &Link, f: char) -> bool {
    link.flags.contains(f)
}

/// `POST /shl/v1/links`: store an encrypted file behind a new link.
async fn create(State(shl): State<Arc<Shl>>, headers: HeaderMap, body: Incoming) -> Response {
    answer(
        async {
            let owner = shl.owner(&headers).await?;
            let req: CreateRequest = parse(body, shl.body_limit()).await?;
            check_file(&req.file, shl.max_file)?;
            check_flags(&req.flags)?;
            let now_s = crate::time::now_ms() / 1000;
            if req.expires_at.is_some_and(|e| e <= now_s) {
                return Err(LinkError::BadRequest("expires_at must be in the future"));
            }
            let passcode_hash = match (req.flags.contains('P'), req.passcode) {
                (true, Some(p)) if PASSCODE_CHARS.contains(&p.chars().count()) => {
                    let hashed = tokio::task::spawn_blocking(move || hash_passcode(&p)).await;
                    Some(
                        hashed
                            .map_err(|_| LinkError::Random)?
                            .map_err(|_| LinkError::Random)?,
                    )
                }
                (true, _) => {
                    return Err(LinkError::BadRequest(
                        "a P link needs a passcode of 4 to 64 characters",
                    ))
                }
                (false, Some(_)) => {
                    return Err(LinkError::BadRequest("a passcode needs the P flag"))
                }
                (false, None) => None,
            };
            let id = new_token().map_err(|_| LinkError::Random)?;
            let link = NewLink {
                id: id.clone(),
                owner,
                flags: req.flags,
                passcode_hash,
                expires_s: req.expires_at,
                once: req.once,
                max_failures: shl.max_failures,
                file: req.file,
                created_s: now_s,
            };
            shl.store(move |s| s.shl_create(&link)).await?;
            Ok(no_store(
                StatusCode::CREATED,
                CreateAnswer {
                    manifest_url: shl.manifest_url(&id),
                    id,
                },
            ))
        }
        .await,
    )
}

/// `GET /shl/v1/links`: the caller's links.
async fn list(State(shl): State<Arc<Shl>>, headers: HeaderMap) -> Response {
    answer(
        async {
            let owner = shl.owner(&headers).await?;
            let links = shl.store(move |s| s.shl_links(&owner)).await?;
            let now_s = crate::time::now_ms() / 1000;
            let links = links
                .into_iter()
                .map(|l| LinkEntry {
                    accesses: l.accesses,
                    created_at: l.created_s,
                    expires_at: l.expires_s,
                    state: l.state(now_s).as_str().to_string(),
                    flags: l.flags,
                    id: l.id,
                    refused: l.refused,
                })
                .collect();
            Ok(no_store(StatusCode::OK, LinkList { links }))
        }
        .await,
    )
}

/// `PUT /shl/v1/links/{id}/file`: replace a link's file (a long-lived link's record
/// changed).
async fn replace_file(
    State(shl): State<Arc<Shl>>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Incoming,
) -> Response {
    answer(
        async {
            let owner = shl.owner(&headers).await?;
            let id = link_id(id)?;
            let req: ReplaceFileRequest = parse(body, shl.body_limit()).await?;
            check_file(&req.file, shl.max_file)?;
            let now_s = crate::time::now_ms() / 1000;
            match shl
                .store(move |s| s.shl_replace_file(&id, &owner, &req.file, now_s))
                .await?
            {
                Change::Done => Ok(StatusCode::NO_CONTENT.into_response()),
                Change::NotFound => Err(LinkError::NotFound),
                Change::Revoked => Err(LinkError::Revoked),
            }
        }
        .await,
    )
}

/// `DELETE /shl/v1/links/{id}`: revoke a link (again: still 204).
async fn revoke(
    State(shl): State<Arc<Shl>>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    answer(
        async {
            let owner = shl.owner(&headers).await?;
            let id = link_id(id)?;
            let now_s = crate::time::now_ms() / 1000;
            match shl.store(move |s| s.shl_revoke(&id, &owner, now_s)).await? {
                Change::Done | Change::Revoked => Ok(StatusCode::NO_CONTENT.into_response()),
                Change::NotFound => Err(LinkError::NotFound),
            }
        }
        .await,
    )
}

/// `after` of an access-log page.
fn after_param(query: Option<&str>) -> Result<i64, LinkError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|_| LinkError::BadRequest("the query does not decode"))?;
    let mut after = 0;
    for (k, v) in pairs {
        if k == "after" {
            after = v
                .parse()
                .map_err(|_| LinkError::BadRequest("after must be a whole number"))?;
        }
    }
    Ok(after)
}

/// `GET /shl/v1/links/{id}/accesses?after=N`: who opened a link, how many requests it
/// refused, and where it stands.
async fn accesses(
    State(shl): State<Arc<Shl>>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    answer(
        async {
            let owner = shl.owner(&headers).await?;
            let id = link_id(id)?;
            let after = after_param(query.as_deref())?;
            let (link, log) = shl
                .store(move |s| s.shl_accesses(&id, &owner, after, ACCESS_PAGE))
                .await?
                .ok_or(LinkError::NotFound)?;
            let now_s = crate::time::now_ms() / 1000;
            let accesses = log
                .into_iter()
                .map(|a| AccessEntry {
                    at: a.at_s,
                    outcome: a.outcome.as_str().to_string(),
                    recipient: a.recipient,
                    seq: a.seq,
                    via: a.via.as_str().to_string(),
                })
                .collect();
            Ok(no_store(
                StatusCode::OK,
                AccessPage {
                    accesses,
                    expires_at: link.expires_s,
                    last_refused_at: link.last_refused_s,
                    refused: Some(link.refused),
                    remaining_attempts: link.remaining_attempts(),
                    state: Some(link.state(now_s).as_str().to_string()),
                },
            ))
        }
        .await,
    )
}

/// Take an access attempt to the store (which records what it allows) and return its
/// answer.
async fn attempt(
    shl: &Arc<Shl>,
    id: &str,
    recipient: &str,
    via: Via,
    ask: Ask,
    now_s: i64,
) -> Result<Answer, LinkError> {
    let a = Attempt {
        id: id.to_string(),
        recipient: recipient.to_string(),
        via,
        ask,
        now_s,
    };
    shl.store(move |s| s.shl_access(&a)).await
}

/// `POST /shl/m/{id}`: the manifest request.
async fn manifest(
    State(shl): State<Arc<Shl>>,
    id: Result<Path<String>, PathRejection>,
    body: Incoming,
) -> Response {
    answer(
        async {
            let req: ManifestRequest = parse(body, PUBLIC_BODY_LIMIT).await?;
            let recipient = check_recipient(req.recipient.as_deref())?;
            let id = link_id(id)?;
            let now_s = crate::time::now_ms() / 1000;
            shl.maybe_prune(now_s);
            let lookup = id.clone();
            let link = shl
                .store(move |s| s.shl_link(&lookup))
                .await?
                .ok_or(LinkError::NotFound)?;
            if link.state(now_s) != LinkState::Active {
                // Refused, and nothing recorded; no passcode is checked.
                attempt(&shl, &id, &recipient, Via::Manifest, Ask::Refuse, now_s).await?;
                return Err(LinkError::NotFound);
            }
            if has_flag(&link, 'P') {
                let right = match (link.passcode_hash.clone(), req.passcode) {
                    (Some(stored), Some(p)) if PASSCODE_CHARS.contains(&p.chars().count()) => {
                        tokio::task::spawn_blocking(move || passcode_matches(&stored, &p))
                            .await
                            .unwrap_or(false)
                    }
                    _ => false,
                };
                if !right {
                    let ask = Ask::WrongPasscode;
                    return match attempt(&shl, &id, &recipient, Via::Manifest, ask, now_s).await? {
                        Answer::WrongPasscode { remaining } => {
                            Err(LinkError::WrongPasscode { remaining })
                        }
                        _ => Err(LinkError::NotFound),
                    };
                }
            }
            let token = new_token().map_err(|_| LinkError::Random)?;
            let ask = Ask::Manifest {
                embed_max: req.embedded_length_max,
                token_hash: token_hash(&token),
                token_expires_s: now_s + shl.location_ttl_s,
            };
            let file = match attempt(&shl, &id, &recipient, Via::Manifest, ask, now_s).await? {
                Answer::File(jwe) => ManifestFile {
                    content_type: Some(FILE_CONTENT_TYPE.to_string()),
                    embedded: Some(jwe),
                    location: None,
                },
                Answer::Location => ManifestFile {
                    content_type: Some(FILE_CONTENT_TYPE.to_string()),
                    embedded: None,
                    location: Some(format!("{}/shl/f/{token}", shl.public_base)),
                },
                _ => return Err(LinkError::NotFound),
            };
            Ok(no_store(StatusCode::OK, Manifest { files: vec![file] }))
        }
        .await,
    )
}

/// The `recipient` of a direct request's query.
fn recipient_param(query: Option<&str>) -> Result<String, LinkError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|_| LinkError::BadRequest("the query does not decode"))?;
    let found = pairs
        .into_iter()
        .find(|(k, _)| k == "recipient")
        .map(|(_, v)| v);
    check_recipient(found.as_deref())
}

/// `GET /shl/m/{id}?recipient=…`: a U link's file, directly.
async fn direct(
    State(shl): State<Arc<Shl>>,
    id: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    answer(
        async {
            let recipient = recipient_param(query.as_deref())?;
            let id = link_id(id)?;
            let now_s = crate::time::now_ms() / 1000;
            let lookup = id.clone();
            let link = shl
                .store(move |s| s.shl_link(&lookup))
                .await?
                .ok_or(LinkError::NotFound)?;
            let ask = if has_flag(&link, 'U') {
                Ask::Direct
            } else {
                Ask::Refuse
            };
            match attempt(&shl, &id, &recipient, Via::Direct, ask, now_s).await? {
                Answer::File(jwe) => Ok(jose(jwe)),
                _ => Err(LinkError::NotFound),
            }
        }
        .await,
    )
}

/// `GET /shl/f/{token}`: the file behind a manifest's location.
async fn file(State(shl): State<Arc<Shl>>, token: Result<Path<String>, PathRejection>) -> Response {
    answer(
        async {
            let token = link_id(token)?;
            let (hash, now_s) = (token_hash(&token), crate::time::now_ms() / 1000);
            match shl.store(move |s| s.shl_fetch(&hash, now_s)).await? {
                Answer::File(jwe) => Ok(jose(jwe)),
                _ => Err(LinkError::NotFound),
            }
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passcodes_hash_with_salt_and_verify() {
        let a = hash_passcode("open sesame").unwrap();
        let b = hash_passcode("open sesame").unwrap();
        assert_ne!(a, b, "a fresh salt each time");
        assert!(a.starts_with("pbkdf2-sha256$100000$"));
        assert!(!a.contains("open sesame"));
        assert!(passcode_matches(&a, "open sesame"));
        assert!(passcode_matches(&b, "open sesame"));
        assert!(!passcode_matches(&a, "open sesamE"));
        assert!(!passcode_matches("garbage", "open sesame"));
        assert!(!passcode_matches("pbkdf2-sha256$0$AA$AA", "x"));
    }

    #[test]
    fn files_must_look_like_compact_jwes() {
        assert!(looks_like_jwe("eyJh..aXY.Y3Q.dGFn"));
        assert!(looks_like_jwe("eyJh.a2V5.aXY.Y3Q.dGFn"));
        assert!(!looks_like_jwe("eyJh.aXY.Y3Q.dGFn"), "four parts");
        assert!(!looks_like_jwe("eyJh..aXY.Y3Q."), "no tag");
        assert!(!looks_like_jwe("eyJh..aX+.Y3Q.dGFn"), "not base64url");
        assert!(!looks_like_jwe(""));
        assert!(matches!(
            check_file("eyJh..aXY.Y3Q.dGFn", 5),
            Err(LinkError::TooLarge(_))
        ));
    }

    #[test]
    fn flags_and_recipients_are_checked() {
        for ok in ["", "L", "P", "LP", "U", "LU"] {
            assert!(check_flags(ok).is_ok(), "{ok}");
        }
        for bad in ["PU", "LPU", "X", "PL", "UL"] {
            assert!(check_flags(bad).is_err(), "{bad}");
        }
        assert!(check_recipient(Some("Dr Okafor")).is_ok());
        assert!(check_recipient(Some(&"é".repeat(200))).is_ok());
        assert!(check_recipient(Some(&"é".repeat(201))).is_err());
        assert!(check_recipient(Some("  ")).is_err());
        assert!(check_recipient(None).is_err());
        for bad in [
            "Dr A\nok via manifest, claimed by 'Dr B'",
            "Dr A\r",
            "Dr\tA",
            "Dr \u{1b}[32mA",
            "Dr \u{9b}A",
            "Dr \u{7f}A",
            "Dr \u{202e}A",
            "Dr \u{2066}A",
            "Dr \u{200f}A",
            "Dr \u{2028}A",
        ] {
            assert!(
                matches!(check_recipient(Some(bad)), Err(LinkError::BadRequest(_))),
                "{bad:?}"
            );
        }
        assert!(check_recipient(Some("Dr Zoë O'Brien-Nakamura (A&E)")).is_ok());
        assert_eq!(
            recipient_param(Some("recipient=Dr%20A&x=1")).unwrap(),
            "Dr A"
        );
        assert!(recipient_param(Some("x=1")).is_err());
        assert_eq!(after_param(Some("after=7")).unwrap(), 7);
        assert!(after_param(Some("after=x")).is_err());
    }

    #[test]
    fn ids_are_32_bytes_of_base64url() {
        let id = new_token().unwrap();
        assert!(valid_id(&id));
        assert!(!valid_id(&id[..42]));
        assert!(!valid_id(&format!("{}+", &id[..42])));
    }
}
