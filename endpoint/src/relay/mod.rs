//! The share relay, under `/relay/v1`: people (Ed25519 keys) sign in with a
//! challenge, publish their encryption key in a directory, and leave each other
//! envelopes of ciphertext in mailboxes named after their keys. The relay never sees
//! plaintext, names or addresses: a mailbox id is a hash of a public key.
//!
//! The protocol, in short (JSON bodies, base64url without padding, errors as
//! `{"error": "…"}`; each body is a type of [`carry_proto::relay::messages`], shared
//! with the clients):
//!
//! - `POST /relay/v1/challenge` `{key}` → `{challenge, expires_in}`
//! - `POST /relay/v1/session` `{key, challenge, signature}` → `{token, expires_in, mailbox}`
//! - `PUT /relay/v1/directory` `{enc, binding}` → 204
//! - `GET /relay/v1/directory/{mailbox}` → `{mailbox, sign, enc, binding}`
//! - `POST /relay/v1/mailboxes/{mailbox}` `{tag, body}` → 201 `{id}`; 429 past the
//!   sender's rate (per signed-in key), 507 when the mailbox holds its quota of
//!   envelopes or bytes
//! - `GET /relay/v1/mailbox?after=N&limit=M` → `{envelopes: [{id, tag, body, sender}], more}`
//! - `POST /relay/v1/mailbox/ack` `{ids}` → `{deleted}`
//! - `DELETE /relay/v1/tags/{tag}` → `{deleted}`
//! - `POST /relay/v1/retire` `{successor, signature}` → `{retired}`: the signed-in key
//!   is replaced by `successor` (signed by the key over the endpoint's origin and the
//!   successor). Its sessions, directory entry and mailbox go; its share links,
//!   backups and posted envelopes pass to the successor; it never signs in again
//!   (403), and posts to its mailbox get 410. The first retirement stands (409 for
//!   another successor).
//!
//! Every route after the first two needs `Authorization: Bearer TOKEN`. Nothing here
//! logs a body, a token or an envelope.

pub(crate) mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use carry_proto::relay::messages::{
    AckRequest, ChallengeAnswer, ChallengeRequest, DeletedAnswer, DeliverAnswer, DeliverRequest,
    DirectoryAnswer, Envelope, MailboxPage, PublishRequest, RetireAnswer, RetireRequest,
    RetiredAnswer, SessionAnswer, SessionRequest,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Result as StoreResult;
use crate::http::body::{BodyError, Incoming};
use crate::http::tokens::{bearer, new_token, token_hash};
use crate::relay::store::RelayStore;
use crate::relay::store::{
    DirectoryEntry, NewEnvelope, Posted, Quota, Retired, Retirement, Session,
};

/// How long a sign-in challenge is valid, in seconds.
const CHALLENGE_TTL_S: i64 = 120;
/// How long a session is valid, in seconds.
const SESSION_TTL_S: i64 = 3600;
/// Envelopes per fetched page: the default and the most.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 500;
/// Roughly the most body bytes in one fetched page.
const PAGE_BYTES: usize = 8 << 20;
/// The most ids one ack may name.
const MAX_ACK: usize = 1000;
/// Longest tag.
const MAX_TAG: usize = 64;
/// Least time between two prunes by one process, in milliseconds.
const PRUNE_EVERY_MS: i64 = 60_000;
/// The smallest request body limit, so acks of many ids fit however small envelopes are.
const MIN_BODY_LIMIT: usize = 64 << 10;
/// The largest sign-in body (a key, a challenge and a signature), read before anyone
/// is known.
const SIGN_IN_BODY_LIMIT: usize = 16 << 10;

/// The relay's options on `serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Largest envelope the relay accepts, in bytes (decoded); larger posts get 413.
    #[arg(long = "relay-max-envelope", value_name = "BYTES", default_value_t = 1 << 20,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_envelope: u32,
    /// Most envelopes one mailbox holds; posts to a full mailbox get 507.
    #[arg(long = "relay-mailbox-max", value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub mailbox_max: u32,
    /// Most bytes of envelopes one mailbox holds (at least one envelope of the largest
    /// size); a post that would pass it gets 507.
    #[arg(long = "relay-mailbox-bytes", value_name = "BYTES", default_value_t = 64 << 20,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub mailbox_bytes: u64,
    /// Envelopes one signed-in key may post a minute, in bursts of up to as many;
    /// more get 429 with `Retry-After`. Counted per key, however many sessions it
    /// holds, and per process.
    #[arg(long = "relay-sender-rate", value_name = "N", default_value_t = 300,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub sender_rate: u32,
    /// Envelopes older than this many days are deleted, fetched or not.
    #[arg(long = "relay-retention-days", value_name = "DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub retention_days: u32,
}

/// The relay's state.
pub struct Relay {
    store: Arc<dyn RelayStore>,
    /// Largest envelope body, decoded, in bytes.
    max_envelope: usize,
    /// What one mailbox may hold.
    quota: Quota,
    /// Posts per sender key.
    senders: SenderLimit,
    /// How long envelopes are kept, in seconds.
    retention_s: i64,
    /// When this process last pruned (ms since the epoch; 0: never).
    last_prune_ms: AtomicI64,
    /// What a sign-in signs before the challenge: the context and this endpoint's
    /// public origin, so a signature made for another endpoint is refused here.
    auth_prefix: Vec<u8>,
    /// That origin, for the refusal's message.
    origin: String,
}

/// Token buckets of posts, one per sender key (by its mailbox id): `per_minute` posts
/// a minute, in bursts of up to `per_minute`. In memory, per process: several
/// processes behind one database each allow the rate.
#[derive(Debug)]
struct SenderLimit {
    per_minute: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Senders whose buckets are kept before full ones are forgotten.
const SENDER_BUCKETS: usize = 10_000;

impl SenderLimit {
    fn new(per_minute: u32) -> Self {
        SenderLimit {
            per_minute: f64::from(per_minute.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one post's worth for `sender`; `Err(seconds)` says how long until one is
    /// free.
    fn take(&self, sender: &str) -> Result<(), u64> {
        let now = Instant::now();
        let rate_s = self.per_minute / 60.0;
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= SENDER_BUCKETS {
            // Forget senders whose buckets have filled up again: they lose nothing.
            let cap = self.per_minute;
            map.retain(|_, (tokens, at)| *tokens + at.elapsed().as_secs_f64() * rate_s < cap);
        }
        let (tokens, at) = map
            .entry(sender.to_string())
            .or_insert((self.per_minute, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate_s).min(self.per_minute);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / rate_s).ceil().max(1.0) as u64)
        }
    }
}

/// The origin (`scheme://host[:port]`, the port only when not the scheme's default)
/// of the public base URL, as clients compute it from the URL they reach.
pub fn origin_of(public_base: &str) -> Result<String, String> {
    url::Url::parse(public_base)
        .map(|u| u.origin().ascii_serialization())
        .map_err(|_| format!("the public URL '{public_base}' is not a URL"))
}

impl Relay {
    /// A relay over `store` with `options`, reached by clients at `origin` (see
    /// [`origin_of`]).
    pub fn new(store: Arc<dyn RelayStore>, options: &Options, origin: &str) -> Self {
        Relay {
            auth_prefix: carry_proto::relay::auth_prefix(origin),
            origin: origin.to_string(),
            store,
            max_envelope: usize::try_from(options.max_envelope).unwrap_or(usize::MAX),
            quota: Quota {
                envelopes: usize::try_from(options.mailbox_max).unwrap_or(usize::MAX),
                // A mailbox takes at least one envelope of the largest size.
                bytes: options.mailbox_bytes.max(u64::from(options.max_envelope)),
            },
            senders: SenderLimit::new(options.sender_rate),
            retention_s: i64::from(options.retention_days) * 86_400,
            last_prune_ms: AtomicI64::new(0),
        }
    }

    /// The largest request body the relay reads (see [`body_limit`]).
    pub fn body_limit(&self) -> usize {
        body_limit(self.max_envelope)
    }

    /// Run a storage call off the async threads.
    async fn store<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&dyn RelayStore) -> StoreResult<T> + Send + 'static,
    ) -> Result<T, RelayError> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "relay storage failed");
                Err(RelayError::Storage)
            }
            Err(e) => {
                tracing::error!(error = %e, "relay storage task failed");
                Err(RelayError::Storage)
            }
        }
    }

    /// Delete expired challenges and sessions and envelopes past retention, in the
    /// background, at most once a minute per process.
    fn maybe_prune(self: &Arc<Self>) {
        let now = crate::time::now_ms();
        let last = self.last_prune_ms.load(Ordering::Relaxed);
        if now - last < PRUNE_EVERY_MS
            || self
                .last_prune_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let relay = self.clone();
        let before_s = now / 1000 - self.retention_s;
        tokio::spawn(async move {
            if let Ok(p) = relay.store(move |s| s.prune_relay(now, before_s)).await {
                tracing::debug!(
                    challenges = p.challenges,
                    sessions = p.sessions,
                    envelopes = p.envelopes,
                    "relay pruned"
                );
            }
        });
    }

    /// Refuse a sign-in by a retired key.
    async fn refuse_retired(self: &Arc<Self>, key: &[u8]) -> Result<(), RelayError> {
        let mailbox = mailbox_id(key);
        match self.store(move |s| s.successor_of(&mailbox)).await? {
            Some(successor) => Err(RelayError::Retired(successor)),
            None => Ok(()),
        }
    }

    /// The session a request's bearer token names (the share-link owner API signs in
    /// the same way).
    pub(crate) async fn signed_in(
        self: &Arc<Self>,
        headers: &HeaderMap,
    ) -> Result<Caller, RelayError> {
        let Some(token) = bearer(headers) else {
            return Err(RelayError::Unauthorized("a bearer token is required"));
        };
        let (hash, now) = (token_hash(token), crate::time::now_ms());
        match self.store(move |s| s.get_session(&hash, now)).await? {
            Some(session) => Ok(Caller {
                mailbox: mailbox_id(&session.key),
                key: session.key,
            }),
            None => Err(RelayError::Unauthorized(
                "the session token is unknown or expired",
            )),
        }
    }
}

/// The largest request body the relay reads for envelopes of up to `max_envelope`
/// bytes: one in base64url plus room for the JSON around it. Bigger bodies are
/// refused with 413 as soon as they run past it.
pub fn body_limit(max_envelope: usize) -> usize {
    max_envelope
        .div_ceil(3)
        .saturating_mul(4)
        .saturating_add(4096)
        .max(MIN_BODY_LIMIT)
}

/// Who is calling: a signed-in key and its mailbox.
pub(crate) struct Caller {
    /// The Ed25519 public key that signed in.
    pub(crate) key: Vec<u8>,
    /// Its mailbox id.
    pub(crate) mailbox: String,
}

/// Why the relay refused a request. Each becomes `{"error": "…"}` with its status.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// 400: the request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no session, or a sign-in that fails.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 401: a sign-in whose challenge is unknown, used or expired, or whose signature
    /// is wrong or names another endpoint than this one (its origin inside).
    #[error("the challenge is unknown, used or expired, or the signature is wrong (it must name this endpoint, {0})")]
    SignIn(String),
    /// 403: the key was retired by its holder in favour of the key whose mailbox is
    /// given; it never signs in again.
    #[error("this key was replaced by its holder; sign in with the key that replaced it")]
    Retired(String),
    /// 404: no such mailbox.
    #[error("{0}")]
    NotFound(&'static str),
    /// 409: the key was already retired in favour of another key.
    #[error("this key was already replaced by another key")]
    RetiredOtherwise,
    /// 410: the mailbox's key was retired by its holder.
    #[error("the recipient's keys were replaced; ask them for their new ones")]
    Gone,
    /// 413: the body or the envelope is too large.
    #[error("{0}")]
    TooLarge(String),
    /// 507: the mailbox holds its quota.
    #[error("the mailbox is full")]
    Full,
    /// 429: the sender posted more than its rate allows; try again after this many
    /// seconds.
    #[error("too many envelopes from this sender; try again later")]
    SenderRate(u64),
    /// 500: storage failed (logged, without content).
    #[error("the relay's storage failed")]
    Storage,
    /// 500: no randomness for a challenge or token.
    #[error("the relay could not make a random value")]
    Random,
    /// The body could not be taken: too slow, or no room in the budget (413s are
    /// [`RelayError::TooLarge`]).
    #[error(transparent)]
    Body(BodyError),
}

impl From<BodyError> for RelayError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge => RelayError::TooLarge("the request body is too large".into()),
            other => RelayError::Body(other),
        }
    }
}

impl RelayError {
    fn bad(message: &str) -> Self {
        RelayError::BadRequest(message.to_string())
    }

    fn status(&self) -> StatusCode {
        match self {
            RelayError::BadRequest(_) => StatusCode::BAD_REQUEST,
            RelayError::Unauthorized(_) | RelayError::SignIn(_) => StatusCode::UNAUTHORIZED,
            RelayError::Retired(_) => StatusCode::FORBIDDEN,
            RelayError::NotFound(_) => StatusCode::NOT_FOUND,
            RelayError::RetiredOtherwise => StatusCode::CONFLICT,
            RelayError::Gone => StatusCode::GONE,
            RelayError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            RelayError::Full => StatusCode::INSUFFICIENT_STORAGE,
            RelayError::SenderRate(_) => StatusCode::TOO_MANY_REQUESTS,
            RelayError::Storage | RelayError::Random => StatusCode::INTERNAL_SERVER_ERROR,
            RelayError::Body(e) => e.status(),
        }
    }
}

impl IntoResponse for RelayError {
    fn into_response(self) -> Response {
        let mut r = match &self {
            RelayError::Retired(successor) => (
                self.status(),
                Json(RetiredAnswer {
                    error: self.to_string(),
                    successor: successor.clone(),
                }),
            )
                .into_response(),
            _ => error(self.status(), &self.to_string()),
        };
        if matches!(self, RelayError::Unauthorized(_) | RelayError::SignIn(_)) {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"carry-relay\""),
            );
        }
        if let RelayError::Body(e) = &self {
            e.decorate(r.headers_mut());
        }
        if let RelayError::SenderRate(s) = &self {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        r
    }
}

/// A relay error answer: `{"error": message}` with `status`.
pub use crate::http::answer::json_error as error;

pub use carry_proto::relay::mailbox_id;

/// The relay's routes, with its state; a declared body past the limit is refused
/// before anything else.
pub fn routes<S: Clone + Send + Sync + 'static>(relay: Arc<Relay>) -> Router<S> {
    let limit = relay.body_limit();
    Router::new()
        .route("/relay/v1/challenge", post(challenge))
        .route("/relay/v1/session", post(session))
        .route("/relay/v1/directory", put(publish))
        .route("/relay/v1/directory/{mailbox}", get(lookup))
        .route("/relay/v1/mailboxes/{mailbox}", post(deliver))
        .route("/relay/v1/mailbox", get(fetch))
        .route("/relay/v1/mailbox/ack", post(ack))
        .route("/relay/v1/tags/{tag}", delete(withdraw))
        .route("/relay/v1/retire", post(retire))
        .layer(middleware::from_fn_with_state(limit, refuse_declared_large))
        .with_state(relay)
}

/// Refuse a body whose declared length is past `limit` before reading any of it (a
/// body without a declared length is cut off at the limit as it is read).
pub(crate) async fn refuse_declared_large(
    State(limit): State<usize>,
    req: Request,
    next: Next,
) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return RelayError::TooLarge("the request body is too large".into()).into_response();
    }
    next.run(req).await
}

/// Read a JSON request body of at most `limit` bytes (see [`crate::http::body`]) and parse
/// it. Handlers call it only once the request is otherwise checked.
async fn parse<T: DeserializeOwned>(body: Incoming, limit: usize) -> Result<T, RelayError> {
    let held = body.read(limit).await?;
    // serde's messages can quote the input, so they are not passed on.
    serde_json::from_slice(&held.bytes)
        .map_err(|_| RelayError::bad("the body is not the JSON this route expects"))
}

/// Decode base64url (no padding) of exactly `len` bytes.
fn decode_exact(text: &str, len: usize) -> Option<Vec<u8>> {
    B64.decode(text).ok().filter(|b| b.len() == len)
}

/// A path segment, or 400 when it does not decode.
fn segment(p: Result<Path<String>, PathRejection>) -> Result<String, RelayError> {
    p.map(|Path(s)| s)
        .map_err(|_| RelayError::bad("the path does not decode"))
}

/// Whether `m` is a mailbox id: base64url of 16 bytes.
fn valid_mailbox(m: &str) -> bool {
    m.len() == 22 && decode_exact(m, 16).is_some()
}

/// Whether `t` is a tag: 1 to 64 of `A-Z a-z 0-9 _ -`.
fn valid_tag(t: &str) -> bool {
    (1..=MAX_TAG).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `signature` is `key`'s Ed25519 signature over `context` ‖ `data`.
fn signed(key: &[u8], context: &[u8], data: &[u8], signature: &[u8]) -> bool {
    let message = [context, data].concat();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
        .verify(&message, signature)
        .is_ok()
}

/// JSON with `Cache-Control: no-store` (for answers that carry secrets or one-off
/// values).
fn no_store(status: StatusCode, body: impl Serialize) -> Response {
    let mut r = (status, Json(body)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Turn a handler's result into the answer.
fn answer(r: Result<Response, RelayError>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /relay/v1/challenge`: a single-use challenge for `key` to sign.
async fn challenge(State(relay): State<Arc<Relay>>, body: Incoming) -> Response {
    answer(
        async {
            let req: ChallengeRequest = parse(body, SIGN_IN_BODY_LIMIT).await?;
            let key = decode_exact(&req.key, 32)
                .ok_or_else(|| RelayError::bad("key must be a base64url Ed25519 public key"))?;
            relay.refuse_retired(&key).await?;
            let challenge = new_token().map_err(|_| RelayError::Random)?;
            let expires = crate::time::now_ms() + CHALLENGE_TTL_S * 1000;
            let c = challenge.clone();
            relay
                .store(move |s| s.put_challenge(&c, &key, expires))
                .await?;
            relay.maybe_prune();
            Ok(no_store(
                StatusCode::OK,
                ChallengeAnswer {
                    challenge,
                    expires_in: CHALLENGE_TTL_S,
                },
            ))
        }
        .await,
    )
}

/// `POST /relay/v1/session`: trade a signed challenge for a session token.
async fn session(State(relay): State<Arc<Relay>>, body: Incoming) -> Response {
    answer(
        async {
            let req: SessionRequest = parse(body, SIGN_IN_BODY_LIMIT).await?;
            let key = decode_exact(&req.key, 32)
                .ok_or_else(|| RelayError::bad("key must be a base64url Ed25519 public key"))?;
            let refused = RelayError::SignIn(relay.origin.clone());
            let (Some(challenge), Some(signature)) = (
                decode_exact(&req.challenge, 32),
                decode_exact(&req.signature, 64),
            ) else {
                return Err(refused);
            };
            // The signature first: a caller without the key cannot spend the challenge.
            if !signed(&key, &relay.auth_prefix, &challenge, &signature) {
                return Err(refused);
            }
            let now = crate::time::now_ms();
            let (c, k) = (B64.encode(&challenge), key.clone());
            if !relay.store(move |s| s.take_challenge(&c, &k, now)).await? {
                return Err(refused);
            }
            // A challenge issued before the key was retired is no way back in.
            relay.refuse_retired(&key).await?;
            let token = new_token().map_err(|_| RelayError::Random)?;
            let mailbox = mailbox_id(&key);
            let (hash, stored) = (
                token_hash(&token),
                Session {
                    key,
                    expires_ms: now + SESSION_TTL_S * 1000,
                },
            );
            relay.store(move |s| s.put_session(&hash, &stored)).await?;
            Ok(no_store(
                StatusCode::OK,
                SessionAnswer {
                    expires_in: SESSION_TTL_S,
                    mailbox,
                    token,
                },
            ))
        }
        .await,
    )
}

/// `PUT /relay/v1/directory`: publish (or replace) the caller's encryption key.
async fn publish(State(relay): State<Arc<Relay>>, headers: HeaderMap, body: Incoming) -> Response {
    answer(
        async {
            let caller = relay.signed_in(&headers).await?;
            let req: PublishRequest = parse(body, relay.body_limit()).await?;
            let enc = decode_exact(&req.enc, 32)
                .ok_or_else(|| RelayError::bad("enc must be a base64url X25519 public key"))?;
            let binding = decode_exact(&req.binding, 64)
                .ok_or_else(|| RelayError::bad("binding must be a base64url signature"))?;
            if !signed(
                &caller.key,
                carry_proto::relay::KEYS_CONTEXT,
                &enc,
                &binding,
            ) {
                return Err(RelayError::bad(
                    "binding is not the session key's signature over enc",
                ));
            }
            let entry = DirectoryEntry {
                mailbox: caller.mailbox,
                sign: caller.key,
                enc,
                binding,
                updated_s: crate::time::now_ms() / 1000,
            };
            relay.store(move |s| s.put_directory(&entry)).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

/// `GET /relay/v1/directory/{mailbox}`: a mailbox's published keys.
async fn lookup(
    State(relay): State<Arc<Relay>>,
    headers: HeaderMap,
    mailbox: Result<Path<String>, PathRejection>,
) -> Response {
    answer(
        async {
            relay.signed_in(&headers).await?;
            let mailbox = segment(mailbox)?;
            if !valid_mailbox(&mailbox) {
                return Err(RelayError::bad("not a mailbox id"));
            }
            let entry = relay
                .store(move |s| s.get_directory(&mailbox))
                .await?
                .ok_or(RelayError::NotFound("no such mailbox"))?;
            Ok(Json(DirectoryAnswer {
                binding: B64.encode(&entry.binding),
                enc: B64.encode(&entry.enc),
                mailbox: entry.mailbox,
                sign: B64.encode(&entry.sign),
            })
            .into_response())
        }
        .await,
    )
}

/// `POST /relay/v1/mailboxes/{mailbox}`: leave an envelope in someone's mailbox.
async fn deliver(
    State(relay): State<Arc<Relay>>,
    headers: HeaderMap,
    mailbox: Result<Path<String>, PathRejection>,
    body: Incoming,
) -> Response {
    answer(
        async {
            let caller = relay.signed_in(&headers).await?;
            // Per key, before the body is read: one key's many sessions share it.
            relay
                .senders
                .take(&caller.mailbox)
                .map_err(RelayError::SenderRate)?;
            let mailbox = segment(mailbox)?;
            if !valid_mailbox(&mailbox) {
                return Err(RelayError::bad("not a mailbox id"));
            }
            let req: DeliverRequest = parse(body, relay.body_limit()).await?;
            if !valid_tag(&req.tag) {
                return Err(RelayError::bad("tag must be 1 to 64 of A-Z a-z 0-9 _ -"));
            }
            let too_large = || {
                RelayError::TooLarge(format!(
                    "the envelope is larger than {} bytes",
                    relay.max_envelope
                ))
            };
            // Refuse by the encoded length before decoding anything.
            if req.body.len() / 4 * 3 > relay.max_envelope {
                return Err(too_large());
            }
            let envelope = B64
                .decode(&req.body)
                .map_err(|_| RelayError::bad("body must be base64url"))?;
            if envelope.len() > relay.max_envelope {
                return Err(too_large());
            }
            let new_mailbox = mailbox.clone();
            let new = NewEnvelope {
                mailbox,
                tag: req.tag,
                sender: caller.mailbox,
                body: envelope,
                created_s: crate::time::now_ms() / 1000,
            };
            let quota = relay.quota;
            let posted = relay.store(move |s| s.post_envelope(&new, &quota)).await?;
            relay.maybe_prune();
            match posted {
                Posted::Stored(id) => {
                    Ok((StatusCode::CREATED, Json(DeliverAnswer { id })).into_response())
                }
                Posted::NoMailbox => {
                    let m = new_mailbox;
                    if relay.store(move |s| s.successor_of(&m)).await?.is_some() {
                        Err(RelayError::Gone)
                    } else {
                        Err(RelayError::NotFound("no such mailbox"))
                    }
                }
                Posted::Full => Err(RelayError::Full),
            }
        }
        .await,
    )
}

/// `POST /relay/v1/retire`: replace the signed-in key with its successor, for good.
async fn retire(State(relay): State<Arc<Relay>>, headers: HeaderMap, body: Incoming) -> Response {
    answer(
        async {
            let caller = relay.signed_in(&headers).await?;
            let req: RetireRequest = parse(body, SIGN_IN_BODY_LIMIT).await?;
            let successor = decode_exact(&req.successor, 32).ok_or_else(|| {
                RelayError::bad("successor must be a base64url Ed25519 public key")
            })?;
            let signature = decode_exact(&req.signature, 64)
                .ok_or_else(|| RelayError::bad("signature must be a base64url signature"))?;
            let signs = carry_proto::relay::retire_message(&relay.origin, &successor);
            if successor == caller.key || !signed(&caller.key, &signs, &[], &signature) {
                return Err(RelayError::bad(
                    "signature is not the session key's over this endpoint and the successor",
                ));
            }
            let r = Retirement {
                mailbox: caller.mailbox,
                key: caller.key,
                successor_mailbox: mailbox_id(&successor),
                successor,
                at_s: crate::time::now_ms() / 1000,
            };
            match relay.store(move |s| s.retire_key(&r)).await? {
                Retired::Done | Retired::Again => {
                    Ok(no_store(StatusCode::OK, RetireAnswer { retired: true }))
                }
                Retired::Other => Err(RelayError::RetiredOtherwise),
            }
        }
        .await,
    )
}

/// `after` and `limit` of a fetch.
fn page_params(query: Option<&str>) -> Result<(i64, usize), RelayError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|_| RelayError::bad("the query does not decode"))?;
    let (mut after, mut limit) = (0i64, DEFAULT_PAGE);
    for (k, v) in pairs {
        match k.as_str() {
            "after" => {
                after = v
                    .parse()
                    .map_err(|_| RelayError::bad("after must be an envelope id"))?;
            }
            "limit" => {
                limit = v
                    .parse::<usize>()
                    .map_err(|_| RelayError::bad("limit must be a whole number"))?
                    .clamp(1, MAX_PAGE);
            }
            _ => {}
        }
    }
    Ok((after, limit))
}

/// `GET /relay/v1/mailbox`: a page of the caller's envelopes, oldest first.
async fn fetch(
    State(relay): State<Arc<Relay>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    answer(
        async {
            let caller = relay.signed_in(&headers).await?;
            let (after, limit) = page_params(query.as_deref())?;
            let page = relay
                .store(move |s| s.fetch_envelopes(&caller.mailbox, after, limit, PAGE_BYTES))
                .await?;
            relay.maybe_prune();
            let envelopes = page
                .envelopes
                .into_iter()
                .map(|e| Envelope {
                    body: B64.encode(&e.body),
                    id: e.id,
                    sender: Some(e.sender),
                    tag: e.tag,
                })
                .collect();
            Ok(no_store(
                StatusCode::OK,
                MailboxPage {
                    envelopes,
                    more: page.more,
                },
            ))
        }
        .await,
    )
}

/// `POST /relay/v1/mailbox/ack`: delete envelopes from the caller's own mailbox.
async fn ack(State(relay): State<Arc<Relay>>, headers: HeaderMap, body: Incoming) -> Response {
    answer(
        async {
            let caller = relay.signed_in(&headers).await?;
            let req: AckRequest = parse(body, relay.body_limit()).await?;
            if req.ids.len() > MAX_ACK {
                return Err(RelayError::bad("at most 1000 ids per ack"));
            }
            let deleted = relay
                .store(move |s| s.ack_envelopes(&caller.mailbox, &req.ids))
                .await?;
            Ok(Json(deleted_answer(deleted)).into_response())
        }
        .await,
    )
}

/// `DELETE /relay/v1/tags/{tag}`: withdraw every envelope the caller sent with `tag`.
async fn withdraw(
    State(relay): State<Arc<Relay>>,
    headers: HeaderMap,
    tag: Result<Path<String>, PathRejection>,
) -> Response {
    answer(
        async {
            let caller = relay.signed_in(&headers).await?;
            let tag = segment(tag)?;
            if !valid_tag(&tag) {
                return Err(RelayError::bad("tag must be 1 to 64 of A-Z a-z 0-9 _ -"));
            }
            let deleted = relay
                .store(move |s| s.delete_tagged(&caller.mailbox, &tag))
                .await?;
            Ok(Json(deleted_answer(deleted)).into_response())
        }
        .await,
    )
}

/// How many envelopes went, as the answer says it.
fn deleted_answer(deleted: usize) -> DeletedAnswer {
    DeletedAnswer {
        deleted: u64::try_from(deleted).unwrap_or(u64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_ids_are_22_characters_of_a_keyed_hash() {
        let key = [7u8; 32];
        let id = mailbox_id(&key);
        assert_eq!(id.len(), 22);
        assert!(valid_mailbox(&id));
        let mut input = b"carry-mailbox-v1".to_vec();
        input.extend_from_slice(&key);
        let digest = ring::digest::digest(&ring::digest::SHA256, &input);
        assert_eq!(B64.decode(&id).unwrap(), &digest.as_ref()[..16]);
        assert_ne!(mailbox_id(&[8u8; 32]), id);
    }

    #[test]
    fn tags_and_page_parameters_are_checked() {
        assert!(valid_tag("share-1_A") && valid_tag(&"x".repeat(64)));
        assert!(!valid_tag("") && !valid_tag(&"x".repeat(65)) && !valid_tag("a/b"));
        assert_eq!(page_params(None).unwrap(), (0, 100));
        assert_eq!(page_params(Some("after=7&limit=9000")).unwrap(), (7, 500));
        assert_eq!(page_params(Some("limit=0")).unwrap(), (0, 1));
        assert!(page_params(Some("after=x")).is_err());
    }

    #[test]
    fn senders_get_their_rate_in_bursts_each_on_their_own() {
        let limit = SenderLimit::new(3);
        for _ in 0..3 {
            assert_eq!(limit.take("a"), Ok(()));
        }
        let wait = limit.take("a").unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        assert_eq!(limit.take("b"), Ok(()), "another key has its own bucket");
    }

    #[test]
    fn the_body_limit_leaves_room_for_base64() {
        let mib = 1 << 20;
        assert!(body_limit(mib) > mib * 4 / 3 && body_limit(mib) < mib * 3 / 2);
        assert_eq!(body_limit(10), MIN_BODY_LIMIT);
    }
}
