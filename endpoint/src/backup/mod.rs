//! Encrypted backups, under `/backup/v1`: a person's device uploads an opaque
//! encrypted blob (the server cannot read it) under a locator it derives from the
//! person's recovery code, and whoever holds that code fetches it back with a fetch
//! secret derived from it, without any other credential. The server keeps only the
//! SHA-256 of the fetch secret.
//!
//! Versions are numbered from 1 per locator. Each is *full*, or *incremental*: only
//! what changed since the version before it, its *base*. A full and the incrementals
//! after it (up to the next full) form a chain; a restore fetches the latest version
//! and walks the bases back to the full, then applies the versions forward. An
//! incremental's base must be the locator's latest version when it is stored, so a
//! chain has no gaps and no forks, and a chain holds at most
//! [`MAX_CHAIN`](crate::backup::store::MAX_CHAIN) (64) incrementals: the device must
//! upload a full again after that. Pruning keeps chains whole: the newest
//! `--backup-versions` *full* versions are kept with every version after the oldest
//! of them; incrementals never count.
//!
//! - `PUT /backup/v1/blobs/{locator}` (relay session; `Content-Type:
//!   application/octet-stream`, `X-Carry-Fetch-Hash: base64url(SHA-256(secret))`,
//!   optional `X-Carry-Base: N` for an incremental on top of version N)
//!   → 201 `{version, bytes, base, restores: {count, last_at}}` (`base` null for a
//!   full; `restores`: how often the locator's latest version was fetched with the
//!   right secret, which every restore does once, and when last, in seconds since the
//!   epoch or null, so the owner's device can tell the person); 403 when the locator
//!   belongs to another identity; 400 for a malformed `X-Carry-Base`; 409
//!   `{error, latest}` when N is not the latest version (`latest` null when the
//!   locator has none), 409 `{error, full_required: true}` when the chain since the
//!   latest full already holds 64 incrementals. A refused upload changes nothing.
//!   The blob is read only after the session and the headers are checked (413 at once
//!   for a declared length past `--backup-max-bytes`), into an unlinked temporary file
//!   as it arrives (408 if it comes too slowly, 503 with `Retry-After` when the
//!   server's in-flight budget is full: see [`crate::http::body`]), and copied into the
//!   store in pieces.
//! - `GET /backup/v1/blobs/{locator}` (`X-Carry-Fetch: base64url(secret)`) → the
//!   latest version's bytes with `X-Carry-Version`, and `X-Carry-Base` when it is an
//!   incremental; 404 for an unknown locator and for a wrong secret alike; 429 with
//!   `Retry-After` while the locator is locked out. The store copies the blob to a
//!   temporary file in pieces and the answer streams from it.
//! - `GET /backup/v1/blobs/{locator}/versions/{n}` (`X-Carry-Fetch`) → version n, as
//!   the latest is served above, under the same rules (wrong secrets counted together
//!   with those above); a version that is not kept is 404 for the right secret and is
//!   not counted as a wrong try
//! - `GET /backup/v1/blobs/{locator}/versions` (session, owner) →
//!   `{versions: [{version, bytes, created_at, base}]}`, newest first
//! - `DELETE /backup/v1/blobs/{locator}` (session, owner) → 204
//!
//! Locators and secrets are base64url of 32 bytes, without padding (43 characters);
//! version numbers are decimal. Errors are `{"error": "…"}` (409s add the field
//! above). The headers' names and the JSON bodies are in [`carry_proto::backup`],
//! shared with the clients. Nothing here logs a locator, a secret or a blob.

pub(crate) mod store;

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use carry_proto::backup::{
    Refusal, Restores, Stored, VersionEntry, Versions, BASE_HEADER, FETCH_HASH_HEADER,
    FETCH_HEADER, VERSION_HEADER,
};

use crate::backup::store::BackupStore;
use crate::backup::store::{Blob, Fetch, Put, Upload, MAX_CHAIN};
use crate::error::{Result as StoreResult, StoreError};
use crate::http::body::{BodyError, Incoming};
use crate::relay::{Relay, RelayError};

/// The content type of every blob.
const BLOB_TYPE: &str = "application/octet-stream";

/// The backup host's options on `serve`.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "backup_options")]
pub struct Options {
    /// Full versions kept per backup locator, each with the incrementals after it; an
    /// upload beyond it deletes the oldest chains.
    #[arg(long = "backup-versions", value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub versions: u32,
    /// Largest backup blob in bytes; larger uploads get 413.
    #[arg(long = "backup-max-bytes", value_name = "BYTES", default_value_t = 256 << 20,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_bytes: u64,
    /// Where backup uploads are spooled as they arrive, and fetched blobs before they
    /// are sent (unlinked temporary files; the system's temporary folder by default).
    /// Not a RAM-backed tmpfs: blobs would then take memory after all.
    #[arg(long = "backup-spool-dir", value_name = "DIR")]
    pub spool_dir: Option<std::path::PathBuf>,
}

/// The backup host's state.
pub struct Backup {
    store: Arc<dyn BackupStore>,
    relay: Arc<Relay>,
    /// Full versions kept per locator.
    keep: i64,
    /// Largest blob, in bytes.
    max_bytes: u64,
    /// Where fetched blobs are spooled (the system's temporary folder when `None`).
    spool_dir: Option<std::path::PathBuf>,
}

impl Backup {
    /// A backup host over `store`, signing owners in through `relay`, with `options`.
    pub fn new(store: Arc<dyn BackupStore>, relay: Arc<Relay>, options: &Options) -> Self {
        Backup {
            store,
            relay,
            keep: i64::from(options.versions.max(1)),
            max_bytes: options.max_bytes,
            spool_dir: options.spool_dir.clone(),
        }
    }

    /// Run a storage call off the async threads.
    async fn store<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&dyn BackupStore) -> StoreResult<T> + Send + 'static,
    ) -> Result<T, BackupError> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "backup storage failed");
                Err(BackupError::Storage)
            }
            Err(e) => {
                tracing::error!(error = %e, "backup storage task failed");
                Err(BackupError::Storage)
            }
        }
    }

    /// The signed-in caller's mailbox id.
    async fn owner(self: &Arc<Self>, headers: &HeaderMap) -> Result<String, BackupError> {
        match self.relay.signed_in(headers).await {
            Ok(caller) => Ok(caller.mailbox),
            Err(RelayError::Unauthorized(m)) => Err(BackupError::Unauthorized(m)),
            Err(_) => Err(BackupError::Storage),
        }
    }
}

/// Why a request was refused. Each becomes `{"error": "…"}` with its status.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// 400: the request is malformed.
    #[error("{0}")]
    BadRequest(&'static str),
    /// 401: no session.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403: the locator belongs to another identity.
    #[error("the backup belongs to another identity")]
    Forbidden,
    /// 404: no such backup (of this owner), or a wrong fetch secret: the public side
    /// never says which.
    #[error("no such backup")]
    NotFound,
    /// 409: an incremental whose base is not the latest version (given; `None` when
    /// the locator has none).
    #[error("the base is not the latest version of this backup")]
    Stale(Option<i64>),
    /// 409: the chain since the latest full already holds [`MAX_CHAIN`] incrementals.
    #[error("the chain since the latest full backup holds {max} incrementals: upload a full backup", max = MAX_CHAIN)]
    FullRequired,
    /// 413: the blob is too large.
    #[error("the backup is too large")]
    TooLarge,
    /// 415: the blob is not sent as octets.
    #[error("the body must be application/octet-stream")]
    UnsupportedType,
    /// 429: too many wrong fetch secrets; retry after this many seconds.
    #[error("too many wrong fetch secrets; retry later")]
    Locked(i64),
    /// 500: storage failed (logged, without content).
    #[error("the backup storage failed")]
    Storage,
    /// The body could not be taken: too large, too slow, or no room in the budget.
    #[error(transparent)]
    Body(#[from] BodyError),
}

impl BackupError {
    fn status(&self) -> StatusCode {
        match self {
            BackupError::BadRequest(_) => StatusCode::BAD_REQUEST,
            BackupError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            BackupError::Forbidden => StatusCode::FORBIDDEN,
            BackupError::NotFound => StatusCode::NOT_FOUND,
            BackupError::Stale(_) | BackupError::FullRequired => StatusCode::CONFLICT,
            BackupError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            BackupError::UnsupportedType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            BackupError::Locked(_) => StatusCode::TOO_MANY_REQUESTS,
            BackupError::Storage => StatusCode::INTERNAL_SERVER_ERROR,
            BackupError::Body(e) => e.status(),
        }
    }

    /// The JSON body: `{"error"}`, with `latest` or `full_required` on a 409.
    fn body(&self) -> Refusal {
        match self {
            BackupError::Stale(latest) => Refusal::stale(self.to_string(), *latest),
            BackupError::FullRequired => Refusal::full_required(self.to_string()),
            _ => Refusal::plain(self.to_string()),
        }
    }
}

impl IntoResponse for BackupError {
    fn into_response(self) -> Response {
        let mut r = (self.status(), Json(self.body())).into_response();
        let h = r.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match self {
            BackupError::Unauthorized(_) => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"carry-relay\""),
                );
            }
            BackupError::Locked(left) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(left.max(1)));
            }
            BackupError::Body(e) => e.decorate(h),
            _ => {}
        }
        r
    }
}

/// Turn a handler's result into the answer.
fn answer(r: Result<Response, BackupError>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

/// The backup routes, with their state; a declared body past the largest blob is
/// refused before anything else.
pub fn routes<S: Clone + Send + Sync + 'static>(backup: Arc<Backup>) -> Router<S> {
    let limit = usize::try_from(backup.max_bytes).unwrap_or(usize::MAX);
    Router::new()
        .route(
            "/backup/v1/blobs/{locator}",
            get(fetch).put(upload).delete(remove),
        )
        .route("/backup/v1/blobs/{locator}/versions", get(versions))
        .route(
            "/backup/v1/blobs/{locator}/versions/{n}",
            get(fetch_version),
        )
        .layer(middleware::from_fn_with_state(
            limit,
            crate::relay::refuse_declared_large,
        ))
        .with_state(backup)
}

/// Decode base64url (no padding) of exactly 32 bytes.
fn decode32(text: &str) -> Option<Vec<u8>> {
    if text.len() != 43 {
        return None;
    }
    B64.decode(text).ok().filter(|b| b.len() == 32)
}

/// The locator in the path, checked.
fn locator(p: Result<Path<String>, PathRejection>) -> Result<String, BackupError> {
    let Path(l) = p.map_err(|_| BackupError::BadRequest("the path does not decode"))?;
    checked_locator(l)
}

/// A locator, checked.
fn checked_locator(l: String) -> Result<String, BackupError> {
    decode32(&l).map(|_| l).ok_or(BackupError::BadRequest(
        "the locator must be base64url of 32 bytes",
    ))
}

/// A version number: decimal digits only (no sign, no spaces), within `i64`.
fn decimal(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The upload's `X-Carry-Base`: `None` for a full upload, else the version it builds
/// on. Present more than once, or not a decimal version number, it is refused.
fn base_header(headers: &HeaderMap) -> Result<Option<i64>, BackupError> {
    let mut values = headers.get_all(BASE_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let bad = BackupError::BadRequest("X-Carry-Base must be one decimal version number");
    if values.next().is_some() {
        return Err(bad);
    }
    value
        .to_str()
        .ok()
        .and_then(|v| decimal(v.trim()))
        .map(Some)
        .ok_or(bad)
}

/// A header holding base64url of 32 bytes, decoded.
fn header32(headers: &HeaderMap, name: &str, what: &'static str) -> Result<Vec<u8>, BackupError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| decode32(v.trim()))
        .ok_or(BackupError::BadRequest(what))
}

/// `PUT /backup/v1/blobs/{locator}`: store a new version. Everything but the blob is
/// checked first (the session, the path, the headers); only then is the blob read,
/// into a spool file, and copied from there into the store.
async fn upload(
    State(backup): State<Arc<Backup>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Incoming,
) -> Response {
    answer(
        async {
            let owner = backup.owner(&headers).await?;
            let locator = locator(path)?;
            let octets = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case(BLOB_TYPE));
            if !octets {
                return Err(BackupError::UnsupportedType);
            }
            let fetch_hash = header32(
                &headers,
                FETCH_HASH_HEADER,
                "X-Carry-Fetch-Hash must be base64url of a SHA-256",
            )?;
            let base = base_header(&headers)?;
            let data = body.spool(backup.max_bytes).await.map_err(|e| match e {
                BodyError::TooLarge => BackupError::TooLarge,
                other => BackupError::Body(other),
            })?;
            let (keep, now_s, len) = (backup.keep, crate::time::now_ms() / 1000, data.len());
            let (put, restores) = backup
                .store(move |s| {
                    let put = s.backup_put(&Upload {
                        locator: &locator,
                        owner: &owner,
                        fetch_hash: &fetch_hash,
                        data: Blob::Spooled(&data),
                        base,
                        keep,
                        now_s,
                    })?;
                    let restores = match put {
                        Put::Stored(_) => s.backup_restores(&locator, &owner)?,
                        _ => None,
                    };
                    Ok((put, restores))
                })
                .await?;
            match put {
                Put::Stored(version) => {
                    // None only if the locator was deleted since the upload.
                    let restores = restores.unwrap_or_default();
                    Ok((
                        StatusCode::CREATED,
                        Json(Stored {
                            base,
                            bytes: len,
                            restores: Some(Restores {
                                count: u64::try_from(restores.count).unwrap_or(0),
                                last_at: restores.last_s,
                            }),
                            version,
                        }),
                    )
                        .into_response())
                }
                Put::NotOwner => Err(BackupError::Forbidden),
                Put::Stale(latest) => Err(BackupError::Stale(latest)),
                Put::FullRequired => Err(BackupError::FullRequired),
            }
        }
        .await,
    )
}

/// `GET /backup/v1/blobs/{locator}`: the latest version, for the fetch secret.
async fn fetch(
    State(backup): State<Arc<Backup>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            let locator = locator(path)?;
            serve(&backup, locator, None, &headers).await
        }
        .await,
    )
}

/// `GET /backup/v1/blobs/{locator}/versions/{n}`: version n, for the fetch secret.
async fn fetch_version(
    State(backup): State<Arc<Backup>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            let Path((l, n)) =
                path.map_err(|_| BackupError::BadRequest("the path does not decode"))?;
            let locator = checked_locator(l)?;
            let version = decimal(&n).ok_or(BackupError::BadRequest(
                "the version must be a decimal number",
            ))?;
            serve(&backup, locator, Some(version), &headers).await
        }
        .await,
    )
}

/// Serve `version` (the latest when `None`) of `locator` for the fetch secret in
/// `headers`: the blob with `X-Carry-Version` (and `X-Carry-Base` for an
/// incremental). The store copies the blob to an unlinked temporary file in pieces,
/// and the answer streams from there, so a blob is never whole in memory.
async fn serve(
    backup: &Arc<Backup>,
    locator: String,
    version: Option<i64>,
    headers: &HeaderMap,
) -> Result<Response, BackupError> {
    let secret = header32(
        headers,
        FETCH_HEADER,
        "X-Carry-Fetch must be base64url of 32 bytes",
    )?;
    let hash = ring::digest::digest(&ring::digest::SHA256, &secret)
        .as_ref()
        .to_vec();
    let now_s = crate::time::now_ms() / 1000;
    let dir = backup.spool_dir.clone();
    let (fetched, file) = backup
        .store(move |s| {
            let mut file = crate::http::body::temp_file(dir.as_deref())
                .map_err(|e| StoreError::Backend(format!("spool file: {e}")))?;
            let fetched = s.backup_fetch_to(&locator, &hash, version, now_s, &mut file)?;
            Ok((fetched, file))
        })
        .await?;
    match fetched {
        Fetch::Unknown | Fetch::Wrong | Fetch::NoVersion => Err(BackupError::NotFound),
        Fetch::Locked(left) => Err(BackupError::Locked(left)),
        Fetch::Blob { version, base, .. } => {
            let (len, body) = crate::http::body::file_body(file).await.map_err(|e| {
                tracing::error!(error = %e, "cannot read a spooled backup");
                BackupError::Storage
            })?;
            let mut r = (
                [
                    (header::CONTENT_TYPE, HeaderValue::from_static(BLOB_TYPE)),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
                [(VERSION_HEADER, HeaderValue::from(version))],
                body,
            )
                .into_response();
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            if let Some(base) = base {
                r.headers_mut().insert(BASE_HEADER, HeaderValue::from(base));
            }
            Ok(r)
        }
    }
}

/// `GET /backup/v1/blobs/{locator}/versions`: the owner's versions, newest first.
async fn versions(
    State(backup): State<Arc<Backup>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            let owner = backup.owner(&headers).await?;
            let locator = locator(path)?;
            let list = backup
                .store(move |s| s.backup_versions(&locator, &owner))
                .await?
                .ok_or(BackupError::NotFound)?;
            let versions = list
                .iter()
                .map(|v| VersionEntry {
                    base: v.base,
                    bytes: u64::try_from(v.bytes).unwrap_or(0),
                    created_at: v.created_s,
                    version: v.version,
                })
                .collect();
            Ok(Json(Versions { versions }).into_response())
        }
        .await,
    )
}

/// `DELETE /backup/v1/blobs/{locator}`: delete every version and the locator.
async fn remove(
    State(backup): State<Arc<Backup>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            let owner = backup.owner(&headers).await?;
            let locator = locator(path)?;
            if backup
                .store(move |s| s.backup_delete(&locator, &owner))
                .await?
            {
                Ok(StatusCode::NO_CONTENT.into_response())
            } else {
                Err(BackupError::NotFound)
            }
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn locators_are_43_characters_of_32_bytes() {
        assert!(decode32(&B64.encode([7u8; 32])).is_some());
        assert!(decode32(&B64.encode([7u8; 31])).is_none());
        assert!(decode32(&format!("{}=", B64.encode([7u8; 32]))).is_none());
        assert!(decode32("not base64url at all, and not 43 chars").is_none());
    }

    #[test]
    fn versions_are_plain_decimal() {
        assert_eq!(decimal("7"), Some(7));
        assert_eq!(decimal("007"), Some(7));
        assert_eq!(decimal("0"), Some(0));
        assert_eq!(decimal("9223372036854775807"), Some(i64::MAX));
        for bad in [
            "",
            "-1",
            "+1",
            " 1",
            "1.0",
            "0x10",
            "1e3",
            "9223372036854775808",
            "٣",
        ] {
            assert_eq!(decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_base_header_is_one_decimal_number() {
        let with = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(BASE_HEADER, HeaderValue::from_str(v).unwrap());
            }
            base_header(&h).map_err(|e| e.to_string())
        };
        assert_eq!(with(&[]), Ok(None));
        assert_eq!(with(&["12"]), Ok(Some(12)));
        assert!(with(&["twelve"]).is_err());
        assert!(with(&[""]).is_err());
        assert!(with(&["-3"]).is_err());
        assert!(with(&["1", "2"]).is_err());
    }

    #[test]
    fn conflicts_say_what_the_client_needs() {
        for (e, field, value) in [
            (BackupError::Stale(Some(3)), "latest", json!(3)),
            (BackupError::Stale(None), "latest", json!(null)),
            (BackupError::FullRequired, "full_required", json!(true)),
        ] {
            assert_eq!(e.status(), StatusCode::CONFLICT);
            let body = serde_json::to_value(e.body()).unwrap();
            assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{body}");
            assert!(body["error"].is_string());
            assert_eq!(body.get(field), Some(&value), "{body}");
        }
        assert!(BackupError::FullRequired
            .to_string()
            .contains(&MAX_CHAIN.to_string()));
        assert_eq!(
            serde_json::to_value(BackupError::NotFound.body()).unwrap(),
            json!({ "error": "no such backup" })
        );
    }
}
