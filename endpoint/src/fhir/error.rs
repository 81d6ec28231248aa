//! Why a FHIR request was refused: one type for the whole FHIR service, which becomes
//! an OperationOutcome with its status and issue code in one place.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::http::answer::outcome;
use crate::http::body::BodyError;

/// A refused FHIR request. The text is the OperationOutcome's diagnostics: it names
/// what was wrong with the request, never record content.
#[derive(Debug, thiserror::Error)]
pub enum FhirError {
    /// 400 `invalid`: a path, type, id, parameter or body FHIR does not allow here.
    #[error("{0}")]
    Invalid(&'static str),
    /// 400 `structure`: the body is not a JSON object.
    #[error("{0}")]
    Structure(&'static str),
    /// `not-supported`: an interaction, operation, parameter or header this server
    /// does not offer, with its status (400, 404 or 405).
    #[error("{1}")]
    NotSupported(StatusCode, &'static str),
    /// 404 `not-found`: no such tenant or resource.
    #[error("{0}")]
    NotFound(&'static str),
    /// 422: the resource cannot be processed, with its issue code (`required`, or
    /// `not-found` for a patient it names that does not exist).
    #[error("{1}")]
    Unprocessable(&'static str, &'static str),
    /// 401 `login`, with a `WWW-Authenticate` challenge naming the OAuth `error`.
    #[error("{text}")]
    Unauthorized {
        /// The OAuth error code for the challenge (`invalid_token`, `invalid_request`).
        error: &'static str,
        /// What the client must do.
        text: &'static str,
    },
    /// 403 `forbidden`: outside the token's scopes or patient.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 500 `exception`: the storage (or the randomness a new id needs) failed. The
    /// cause is logged where it happened, without content.
    #[error("the server's storage failed")]
    Storage,
    /// The body could not be taken: too large, too slow, or no room to hold it.
    #[error(transparent)]
    Body(#[from] BodyError),
}

impl FhirError {
    /// A storage failure, logged (the error names tables and operations, never record
    /// content).
    pub fn storage(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "storage failed");
        FhirError::Storage
    }

    fn status(&self) -> StatusCode {
        match self {
            FhirError::Invalid(_) | FhirError::Structure(_) => StatusCode::BAD_REQUEST,
            FhirError::NotSupported(status, _) => *status,
            FhirError::NotFound(_) => StatusCode::NOT_FOUND,
            FhirError::Unprocessable(..) => StatusCode::UNPROCESSABLE_ENTITY,
            FhirError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            FhirError::Forbidden(_) => StatusCode::FORBIDDEN,
            FhirError::Storage => StatusCode::INTERNAL_SERVER_ERROR,
            FhirError::Body(e) => e.status(),
        }
    }

    /// The OperationOutcome issue code.
    fn code(&self) -> &'static str {
        match self {
            FhirError::Invalid(_) => "invalid",
            FhirError::Structure(_) => "structure",
            FhirError::NotSupported(..) => "not-supported",
            FhirError::NotFound(_) => "not-found",
            FhirError::Unprocessable(code, _) => code,
            FhirError::Unauthorized { .. } => "login",
            FhirError::Forbidden(_) => "forbidden",
            FhirError::Storage => "exception",
            FhirError::Body(BodyError::TooLarge) => "too-costly",
            FhirError::Body(BodyError::Busy) => "transient",
            FhirError::Body(BodyError::TimedOut) => "timeout",
            FhirError::Body(BodyError::Unreadable) => "incomplete",
            FhirError::Body(BodyError::Spool) => "exception",
        }
    }
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let mut r = outcome(self.status(), self.code(), &self.to_string());
        match &self {
            FhirError::Unauthorized { error, .. } => {
                let challenge = format!("Bearer realm=\"carry\", error=\"{error}\"");
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
            }
            FhirError::Body(e) => e.decorate(r.headers_mut()),
            _ => {}
        }
        r
    }
}

/// Why a SMART sign-in request (authorize, consent, token) was refused: RFC 6749's
/// `{"error", "error_description"}` with `Cache-Control: no-store`, made in one place.
/// A refusal the FHIR side already answers (no such tenant, a storage failure in a
/// FHIR lookup) stays an OperationOutcome.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// 400 `invalid_request`: a missing, malformed or unacceptable parameter.
    #[error("{0}")]
    InvalidRequest(&'static str),
    /// 400 `invalid_grant`: a code or refresh token that is unknown, used, expired or
    /// does not match.
    #[error("{0}")]
    InvalidGrant(&'static str),
    /// 401 `invalid_client`.
    #[error("{0}")]
    InvalidClient(&'static str),
    /// 400 `unsupported_grant_type`.
    #[error("{0}")]
    UnsupportedGrantType(&'static str),
    /// 500 `server_error`: no randomness, or the storage failed.
    #[error("{0}")]
    Server(&'static str),
    /// The form body could not be taken (`invalid_request`, with the body's status).
    #[error(transparent)]
    Body(#[from] BodyError),
    /// Answered as the FHIR side answers it.
    #[error(transparent)]
    Fhir(#[from] FhirError),
}

impl OAuthError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            OAuthError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            OAuthError::InvalidGrant(_) => (StatusCode::BAD_REQUEST, "invalid_grant"),
            OAuthError::InvalidClient(_) => (StatusCode::UNAUTHORIZED, "invalid_client"),
            OAuthError::UnsupportedGrantType(_) => {
                (StatusCode::BAD_REQUEST, "unsupported_grant_type")
            }
            OAuthError::Server(_) => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
            OAuthError::Body(e) => (e.status(), "invalid_request"),
            OAuthError::Fhir(e) => (e.status(), e.code()),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        if let OAuthError::Fhir(e) = self {
            return e.into_response();
        }
        let (status, error) = self.status_and_code();
        let mut r = (
            status,
            axum::Json(
                serde_json::json!({ "error": error, "error_description": self.to_string() }),
            ),
        )
            .into_response();
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let OAuthError::Body(e) = &self {
            e.decorate(r.headers_mut());
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(r: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn each_refusal_is_an_outcome_with_its_status_code_and_headers() {
        let r = FhirError::Body(BodyError::Busy).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(r.headers().contains_key(header::RETRY_AFTER));
        let v = body(r).await;
        assert_eq!(v["resourceType"], "OperationOutcome");
        assert_eq!(v["issue"][0]["code"], "transient");

        let r = FhirError::Unauthorized {
            error: "invalid_token",
            text: "the access token is unknown or expired",
        }
        .into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"carry\", error=\"invalid_token\""
        );
        assert_eq!(body(r).await["issue"][0]["code"], "login");

        let r = FhirError::Unprocessable("required", "subject must reference the Patient")
            .into_response();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body(r).await["issue"][0]["code"], "required");
    }

    #[tokio::test]
    async fn sign_in_refusals_are_oauth_json_unless_the_fhir_side_answers() {
        let r = OAuthError::InvalidGrant("the code is unknown, used or expired").into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        let v = body(r).await;
        assert_eq!(v["error"], "invalid_grant");
        assert_eq!(
            v["error_description"],
            "the code is unknown, used or expired"
        );

        let r = OAuthError::from(BodyError::TooLarge).into_response();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body(r).await["error"], "invalid_request");

        let r = OAuthError::from(FhirError::NotFound("no such tenant")).into_response();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(body(r).await["issue"][0]["code"], "not-found");
    }
}
