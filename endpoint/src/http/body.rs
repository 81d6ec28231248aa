//! Request bodies, read only once a handler has checked everything it can without
//! them (the session, the path, the headers), and then within bounds:
//!
//! - a per-route cap, enforced by the declared `Content-Length` before a byte is read
//!   and by the bytes as they arrive;
//! - an in-flight [`Budget`] shared by every request of the process: a body reserves
//!   its declared length (or, without one, room in steps as it arrives) before it is
//!   read, and a body that does not fit is refused with `503` and `Retry-After`. The
//!   reservation is released when the request is done with it, or dropped (a client
//!   that disconnects included);
//! - a deadline: `--body-timeout` seconds, extended by one second for every
//!   [`MIN_RATE`] bytes received, so a body trickled in to hold a connection (and its
//!   reservation) open is cut off with `408`.
//!
//! Backup blobs are not held in memory at all: [`Incoming::spool`] writes them to an
//! unlinked temporary file as they arrive and reserves only a window of
//! [`SPOOL_WINDOW`] bytes.

use std::convert::Infallible;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use carry_proto::relay::messages::ErrorBody;
use futures_util::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::time::Instant;

/// Bytes a second a body must keep up, beyond its first `--body-timeout` seconds.
pub const MIN_RATE: u64 = 64 << 10;
/// What a body without a declared length reserves at a time while it is read.
const STEP: usize = 64 << 10;
/// What a body streamed to a file reserves for the whole upload: the frames in flight
/// between the connection and the file.
pub const SPOOL_WINDOW: usize = 512 << 10;
/// What a `503` asks the client to wait, in seconds.
const BUSY_RETRY_S: u32 = 1;

/// The bytes of request bodies all requests may hold at once.
#[derive(Debug)]
pub struct Budget {
    /// The most, in bytes.
    limit: usize,
    /// Reserved now, in bytes.
    used: Mutex<usize>,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Budget {
            limit,
            used: Mutex::new(0),
        })
    }

    /// The most bytes it holds.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes reserved now.
    #[cfg(test)]
    fn used(&self) -> usize {
        *self.used.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take `n` more bytes, if they fit.
    fn take(&self, n: usize) -> bool {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        match used.checked_add(n) {
            Some(total) if total <= self.limit => {
                *used = total;
                true
            }
            _ => false,
        }
    }

    /// Give `n` bytes back.
    fn give(&self, n: usize) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        *used = used.saturating_sub(n);
    }

    /// Reserve `n` bytes, or `None` when they do not fit.
    pub fn reserve(self: &Arc<Self>, n: usize) -> Option<Reservation> {
        self.take(n).then(|| Reservation {
            budget: self.clone(),
            held: n,
        })
    }
}

/// Bytes held from a [`Budget`], given back on drop.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<Budget>,
    held: usize,
}

impl Reservation {
    /// Hold at least `n` bytes in all; whether they fit.
    fn grow_to(&mut self, n: usize) -> bool {
        if n <= self.held {
            return true;
        }
        let more = n - self.held;
        if self.budget.take(more) {
            self.held = n;
            true
        } else {
            false
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give(self.held);
    }
}

/// How bodies are read: the shared budget, the timeout, and where blobs are spooled.
/// The router puts it in every request's extensions.
#[derive(Debug, Clone)]
pub struct BodyLimits {
    /// The in-flight budget every request shares.
    pub budget: Arc<Budget>,
    /// How long a body may take before [`MIN_RATE`] extends it.
    pub timeout: Duration,
    /// The folder for spooled blobs (the system's temporary folder when `None`).
    pub spool_dir: Option<PathBuf>,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits {
            budget: Budget::new(64 << 20),
            timeout: Duration::from_secs(60),
            spool_dir: None,
        }
    }
}

/// Why a body was refused.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// 413: declared or found larger than the route takes.
    #[error("the request body is too large")]
    TooLarge,
    /// 503: the bodies in flight fill the budget; retry shortly.
    #[error("the server is busy with other uploads; retry shortly")]
    Busy,
    /// 408: the body came too slowly.
    #[error("the request body came too slowly")]
    TimedOut,
    /// 400: the body broke off or could not be read.
    #[error("the request body could not be read")]
    Unreadable,
    /// 500: the spool file failed (logged).
    #[error("the server could not store the upload")]
    Spool,
}

impl BodyError {
    /// Its status.
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            BodyError::TimedOut => StatusCode::REQUEST_TIMEOUT,
            BodyError::Unreadable => StatusCode::BAD_REQUEST,
            BodyError::Spool => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Add the headers the refusal carries (`Retry-After` on a `503`) to `headers`.
    pub fn decorate(&self, headers: &mut HeaderMap) {
        if matches!(self, BodyError::Busy) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(BUSY_RETRY_S));
        }
    }
}

impl IntoResponse for BodyError {
    /// `{"error": "…"}` with its status (and `Retry-After` on a `503`).
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.to_string(),
        };
        let mut r = (self.status(), Json(body)).into_response();
        self.decorate(r.headers_mut());
        r
    }
}

/// A body the server holds: its bytes and the budget they take.
#[derive(Debug)]
pub struct Held {
    /// The bytes.
    pub bytes: Bytes,
    /// Given back when this is dropped.
    _reservation: Reservation,
}

/// A body spooled to an unlinked temporary file, read back by position.
#[derive(Debug)]
pub struct Spooled {
    file: Mutex<std::fs::File>,
    len: u64,
    _reservation: Reservation,
}

impl Spooled {
    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Read into `buf` from `offset`; how many bytes were read (0 at the end).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.seek(SeekFrom::Start(offset))?;
        file.read(buf)
    }
}

/// A request's body, not yet read: take it as a handler's last argument, check the
/// request, then [`read`](Incoming::read) or [`spool`](Incoming::spool) it.
pub struct Incoming {
    body: Body,
    declared: Option<u64>,
    limits: BodyLimits,
}

/// A request's declared `Content-Length`, if it has one that parses.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

impl<S: Send + Sync> FromRequest<S> for Incoming {
    type Rejection = Infallible;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let declared = declared_length(req.headers());
        let limits = req
            .extensions()
            .get::<BodyLimits>()
            .cloned()
            .unwrap_or_default();
        Ok(Incoming {
            body: req.into_body(),
            declared,
            limits,
        })
    }
}

/// When a body that started at `start` and has `received` bytes so far must be in.
fn deadline(start: Instant, timeout: Duration, received: u64) -> Instant {
    start + timeout + Duration::from_secs(received / MIN_RATE)
}

impl Incoming {
    /// Refuse a declared length past `limit`, before reading.
    fn check_declared(&self, limit: u64) -> Result<(), BodyError> {
        match self.declared {
            Some(n) if n > limit => Err(BodyError::TooLarge),
            _ => Ok(()),
        }
    }

    /// Read the whole body, at most `limit` bytes, into memory within the budget.
    pub async fn read(self, limit: usize) -> Result<Held, BodyError> {
        let cap = u64::try_from(limit).unwrap_or(u64::MAX);
        self.check_declared(cap)?;
        let first = self
            .declared
            .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let budget = self.limits.budget.clone();
        let mut reservation = budget.reserve(first).ok_or(BodyError::Busy)?;
        let mut data: Vec<u8> = Vec::with_capacity(first);
        let (start, timeout) = (Instant::now(), self.limits.timeout);
        let mut stream = self.body.into_data_stream();
        loop {
            let due = deadline(start, timeout, data.len() as u64);
            let chunk = match tokio::time::timeout_at(due, stream.next()).await {
                Err(_) => return Err(BodyError::TimedOut),
                Ok(None) => break,
                Ok(Some(Err(_))) => return Err(BodyError::Unreadable),
                Ok(Some(Ok(chunk))) => chunk,
            };
            let total = data.len().saturating_add(chunk.len());
            if total > limit {
                return Err(BodyError::TooLarge);
            }
            let want = total.div_ceil(STEP).saturating_mul(STEP).min(limit);
            if !reservation.grow_to(want.max(total)) {
                return Err(BodyError::Busy);
            }
            data.extend_from_slice(&chunk);
        }
        Ok(Held {
            bytes: Bytes::from(data),
            _reservation: reservation,
        })
    }

    /// Write the whole body, at most `limit` bytes, to an unlinked temporary file as
    /// it arrives, holding only [`SPOOL_WINDOW`] bytes of the budget.
    pub async fn spool(self, limit: u64) -> Result<Spooled, BodyError> {
        self.check_declared(limit)?;
        let budget = self.limits.budget.clone();
        let reservation = budget.reserve(SPOOL_WINDOW).ok_or(BodyError::Busy)?;
        let dir = self.limits.spool_dir.clone();
        let file = tokio::task::spawn_blocking(move || temp_file(dir.as_deref()))
            .await
            .map_err(|_| BodyError::Spool)?
            .map_err(|e| {
                tracing::error!(error = %e, "cannot make a spool file");
                BodyError::Spool
            })?;
        let mut file = tokio::fs::File::from_std(file);
        let (start, timeout) = (Instant::now(), self.limits.timeout);
        let mut stream = self.body.into_data_stream();
        let mut len: u64 = 0;
        loop {
            let chunk =
                match tokio::time::timeout_at(deadline(start, timeout, len), stream.next()).await {
                    Err(_) => return Err(BodyError::TimedOut),
                    Ok(None) => break,
                    Ok(Some(Err(_))) => return Err(BodyError::Unreadable),
                    Ok(Some(Ok(chunk))) => chunk,
                };
            len = len.saturating_add(chunk.len() as u64);
            if len > limit {
                return Err(BodyError::TooLarge);
            }
            file.write_all(&chunk).await.map_err(|e| {
                tracing::error!(error = %e, "cannot write a spool file");
                BodyError::Spool
            })?;
        }
        file.flush().await.map_err(|_| BodyError::Spool)?;
        let mut file = file.into_std().await;
        file.flush().map_err(|_| BodyError::Spool)?;
        Ok(Spooled {
            file: Mutex::new(file),
            len,
            _reservation: reservation,
        })
    }
}

/// A new temporary file in `dir` (the system's temporary folder when `None`), unlinked
/// at once (so it goes when it is dropped, or when the process dies), readable only by
/// this user.
pub fn temp_file(dir: Option<&Path>) -> std::io::Result<std::fs::File> {
    let mut file = match dir {
        Some(d) => tempfile::tempfile_in(d)?,
        None => tempfile::tempfile()?,
    };
    file.flush()?;
    Ok(file)
}

/// An answer body that streams `file` from its start in pieces of [`STEP`] bytes, and
/// its length.
pub async fn file_body(mut file: std::fs::File) -> std::io::Result<(u64, Body)> {
    let len = file.seek(SeekFrom::End(0))?;
    file.seek(SeekFrom::Start(0))?;
    let file = tokio::fs::File::from_std(file);
    let pieces = futures_util::stream::unfold(file, |mut file| async move {
        let mut buf = vec![0u8; STEP];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    Ok((len, Body::from_stream(pieces)))
}

/// Whether a request's `Content-Type` says its body is a form
/// (`application/x-www-form-urlencoded`, any parameters after it ignored): checked
/// before the body is read.
pub fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_fit_the_budget_and_go_back_on_drop() {
        let b = Budget::new(100);
        let mut a = b.reserve(60).unwrap();
        assert!(b.reserve(50).is_none());
        let c = b.reserve(40).unwrap();
        assert_eq!(b.used(), 100);
        assert!(!a.grow_to(61));
        drop(c);
        assert!(a.grow_to(90));
        assert_eq!(b.used(), 90);
        drop(a);
        assert_eq!(b.used(), 0);
        assert!(b.reserve(usize::MAX).is_none());
    }

    fn incoming(body: &'static [u8], declared: Option<u64>, budget: usize) -> Incoming {
        Incoming {
            body: Body::from(body),
            declared,
            limits: BodyLimits {
                budget: Budget::new(budget),
                ..BodyLimits::default()
            },
        }
    }

    #[tokio::test]
    async fn bodies_are_held_within_their_cap_and_the_budget() {
        let held = incoming(b"hello", Some(5), 10).read(5).await.unwrap();
        assert_eq!(&held.bytes[..], b"hello");
        let too = incoming(b"hello", None, 1 << 20).read(4).await;
        assert!(matches!(too, Err(BodyError::TooLarge)));
        let declared = incoming(b"", Some(5), 1 << 20).read(4).await;
        assert!(matches!(declared, Err(BodyError::TooLarge)));
        let busy = incoming(b"hello", Some(5), 4).read(10).await;
        assert!(matches!(busy, Err(BodyError::Busy)));
        let b = incoming(b"", None, 1 << 20);
        let budget = b.limits.budget.clone();
        let held = b.read(10).await.unwrap();
        assert!(held.bytes.is_empty());
        drop(held);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn spooled_bodies_read_back_by_position() {
        let s = incoming(b"0123456789", None, 1 << 20)
            .spool(10)
            .await
            .unwrap();
        assert_eq!(s.len(), 10);
        let mut buf = [0u8; 4];
        assert_eq!(s.read_at(6, &mut buf).unwrap(), 4);
        assert_eq!(&buf, b"6789");
        assert_eq!(s.read_at(10, &mut buf).unwrap(), 0);
        let too = incoming(b"0123456789", None, 1 << 20).spool(9).await;
        assert!(matches!(too, Err(BodyError::TooLarge)));
        let busy = incoming(b"0", None, 1000).spool(10).await;
        assert!(matches!(busy, Err(BodyError::Busy)));
    }

    #[test]
    fn slow_bodies_get_more_time_as_bytes_arrive() {
        let t = Instant::now();
        let d = Duration::from_secs(10);
        assert_eq!(deadline(t, d, 0), t + d);
        assert_eq!(deadline(t, d, MIN_RATE * 5), t + Duration::from_secs(15));
    }
}
