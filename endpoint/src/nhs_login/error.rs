//! Why a request to the mock NHS login was refused, answered as OAuth 2.0 and OpenID
//! Connect say: `{"error", "error_description"}` as JSON with `Cache-Control: no-store`
//! and `Pragma: no-cache`, and for the UserInfo endpoint a `WWW-Authenticate: Bearer`
//! challenge. Authorize errors that can go back to the client's redirect URI are made
//! in `authorize.rs`, not here.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::http::body::BodyError;

/// A refused request. The text is the `error_description`: it names what was wrong
/// with the request, never a token, a key or an NHS number.
#[derive(Debug, thiserror::Error)]
pub enum NhsError {
    /// 400 `invalid_request`: a missing, malformed or unacceptable parameter.
    #[error("{0}")]
    InvalidRequest(&'static str),
    /// 401 `invalid_client`: the client is unknown or did not prove it is itself.
    #[error("{0}")]
    InvalidClient(&'static str),
    /// 400 `invalid_grant`: a code or refresh token that is unknown, used, expired or
    /// does not match the request.
    #[error("{0}")]
    InvalidGrant(&'static str),
    /// 400 `invalid_scope`: a scope beyond what was granted.
    #[error("{0}")]
    InvalidScope(&'static str),
    /// 400 `unsupported_grant_type`.
    #[error("{0}")]
    UnsupportedGrantType(&'static str),
    /// 401 `invalid_token` with a Bearer challenge: the access token is missing,
    /// unknown or expired.
    #[error("{0}")]
    InvalidToken(&'static str),
    /// 503 `temporarily_unavailable` with `Retry-After`: too many live grants.
    #[error("{0}")]
    Unavailable(&'static str),
    /// 500 `server_error`: no randomness, or a token could not be signed.
    #[error("{0}")]
    Server(&'static str),
    /// The form body could not be taken (`invalid_request`, with the body's status).
    #[error(transparent)]
    Body(#[from] BodyError),
}

impl NhsError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            NhsError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            NhsError::InvalidClient(_) => (StatusCode::UNAUTHORIZED, "invalid_client"),
            NhsError::InvalidGrant(_) => (StatusCode::BAD_REQUEST, "invalid_grant"),
            NhsError::InvalidScope(_) => (StatusCode::BAD_REQUEST, "invalid_scope"),
            NhsError::UnsupportedGrantType(_) => {
                (StatusCode::BAD_REQUEST, "unsupported_grant_type")
            }
            NhsError::InvalidToken(_) => (StatusCode::UNAUTHORIZED, "invalid_token"),
            NhsError::Unavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
            }
            NhsError::Server(_) => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
            NhsError::Body(e) => (e.status(), "invalid_request"),
        }
    }
}

impl IntoResponse for NhsError {
    fn into_response(self) -> Response {
        let (status, error) = self.status_and_code();
        let mut r = (
            status,
            axum::Json(
                serde_json::json!({ "error": error, "error_description": self.to_string() }),
            ),
        )
            .into_response();
        no_store(r.headers_mut());
        match &self {
            NhsError::InvalidToken(_) => {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"nhs-login\", error=\"invalid_token\""),
                );
            }
            NhsError::Unavailable(_) => {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            }
            NhsError::Body(e) => e.decorate(r.headers_mut()),
            _ => {}
        }
        r
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache`, as every answer that carries or
/// refuses a token has.
pub fn no_store(headers: &mut axum::http::HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}
