//! The answers every service builds the same way: a FHIR OperationOutcome, the JSON
//! error of the relay, share-link and backup APIs, and the headers that let a browser
//! on another origin read a share link's answer. The rate limit answers with them too.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// An OperationOutcome with one issue.
pub fn outcome(status: StatusCode, code: &str, text: &str) -> Response {
    let body = json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": "error", "code": code, "diagnostics": text }]
    });
    fhir_json(status, body)
}

/// A FHIR JSON answer.
pub fn fhir_json(status: StatusCode, body: Value) -> Response {
    fhir_text(status, body.to_string())
}

/// A FHIR JSON answer from text that is already JSON.
pub fn fhir_text(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+json"),
    );
    r
}

/// `{"error": message}` with `status`: how the relay, the share-link host and the
/// backup host refuse a request.
pub fn json_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(carry_proto::relay::messages::ErrorBody {
            error: message.to_string(),
        }),
    )
        .into_response()
}

/// Let a page on any origin read the answer (and its `Retry-After`): share links are
/// opened by viewers served from anywhere.
pub fn allow_any_origin(h: &mut HeaderMap) {
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Retry-After"),
    );
}
