//! Refusals of the GP Connect mock, each an STU3 OperationOutcome carrying a code of
//! Spine's error-or-warning code system and the HTTP status GP Connect pairs with it.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::http::answer::fhir_json;

/// The code system of GP Connect's error and warning codes.
pub const SPINE_CODES: &str = "https://fhir.nhs.uk/STU3/CodeSystem/Spine-ErrorOrWarningCode-1";
/// The profile of GP Connect's OperationOutcome.
pub const OUTCOME_PROFILE: &str =
    "https://fhir.nhs.uk/STU3/StructureDefinition/GPConnect-OperationOutcome-1";

/// Why a request was refused. The text is the outcome's diagnostics: it never holds
/// a token or an NHS number.
#[derive(Debug, thiserror::Error)]
pub enum GpcError {
    /// 401: no bearer token, or one that is unknown, expired or revoked.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// 403: the token may not read this record.
    #[error("{0}")]
    AccessDenied(&'static str),
    /// 400: `patientNHSNumber` is not a valid NHS number.
    #[error("the patientNHSNumber parameter is not a valid NHS number")]
    InvalidNhsNumber,
    /// 400: `patientNHSNumber` is an identifier of another system.
    #[error(
        "the patientNHSNumber parameter must have the system https://fhir.nhs.uk/Id/nhs-number"
    )]
    InvalidIdentifierSystem,
    /// 422: a parameter or part parameter is not valid.
    #[error("{0}")]
    InvalidParameter(String),
    /// 422: the body is not a Parameters resource the operation defines.
    #[error("{0}")]
    InvalidResource(String),
    /// 404: no record for the NHS number.
    #[error("no GP record is held for the patient")]
    PatientNotFound,
    /// 404: the tenant serves no GP Connect.
    #[error("this server holds no GP practice by that name")]
    OrganisationNotFound,
    /// 415: the body is not FHIR JSON.
    #[error("send the Parameters as application/fhir+json")]
    UnsupportedMedia,
    /// The body could not be read within the endpoint's limits (its own status).
    #[error("{0}")]
    Body(#[from] crate::http::body::BodyError),
}

impl GpcError {
    /// The HTTP status, the FHIR issue type and the Spine code.
    fn parts(&self) -> (StatusCode, &'static str, &'static str, &'static str) {
        match self {
            GpcError::Unauthenticated(_) => (
                StatusCode::UNAUTHORIZED,
                "login",
                "ACCESS_DENIED",
                "Access denied",
            ),
            GpcError::AccessDenied(_) => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "ACCESS_DENIED",
                "Access denied",
            ),
            GpcError::InvalidNhsNumber => (
                StatusCode::BAD_REQUEST,
                "value",
                "INVALID_NHS_NUMBER",
                "NHS number invalid",
            ),
            GpcError::InvalidIdentifierSystem => (
                StatusCode::BAD_REQUEST,
                "value",
                "INVALID_IDENTIFIER_SYSTEM",
                "Invalid identifier system",
            ),
            GpcError::InvalidParameter(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "INVALID_PARAMETER",
                "Submitted parameter is not valid.",
            ),
            GpcError::InvalidResource(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "INVALID_RESOURCE",
                "Submitted resource is not valid.",
            ),
            GpcError::PatientNotFound => (
                StatusCode::NOT_FOUND,
                "not-found",
                "PATIENT_NOT_FOUND",
                "Patient record not found",
            ),
            GpcError::OrganisationNotFound => (
                StatusCode::NOT_FOUND,
                "not-found",
                "ORGANISATION_NOT_FOUND",
                "Organisation record not found",
            ),
            GpcError::UnsupportedMedia => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "not-supported",
                "BAD_REQUEST",
                "Bad request",
            ),
            GpcError::Body(e) => (e.status(), "invalid", "BAD_REQUEST", "Bad request"),
        }
    }

    /// The Spine code this refusal carries.
    #[cfg(test)]
    pub fn code(&self) -> &'static str {
        self.parts().2
    }
}

impl IntoResponse for GpcError {
    fn into_response(self) -> Response {
        let (status, issue, code, display) = self.parts();
        tracing::info!(status = status.as_u16(), code, "GP Connect request refused");
        let body = json!({
            "resourceType": "OperationOutcome",
            "meta": { "profile": [OUTCOME_PROFILE] },
            "issue": [{
                "severity": "error",
                "code": issue,
                "details": { "coding": [{ "system": SPINE_CODES, "code": code, "display": display }] },
                "diagnostics": self.to_string(),
            }]
        });
        let mut r = fhir_json(status, body);
        if let GpcError::Body(e) = &self {
            e.decorate(r.headers_mut());
        }
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }
}
