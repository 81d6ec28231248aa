//! A mock of GP Connect Access Record: Structured, the way a GP record in England
//! reaches a patient's app: `POST /{tenant}/gpconnect/fhir/Patient/$gpc.getstructuredrecord`
//! with an STU3 `Parameters` body, answered with an STU3 `Bundle` of type
//! `collection`. Each tenant given `--gp-connect TENANT=DIR` serves the records in the
//! response bundles of DIR, read at start-up. Callers sign in through the mock NHS
//! login (`/nhs-login`): a person proven to P9 reads their own record, nobody else's.
//!
//! - `mod.rs`: the options, the routes and who may read what;
//! - `record.rs`: the bundles read and indexed per NHS number;
//! - `request.rs`: the operation's parameters, checked;
//! - `answer.rs`: the Bundle answered; `error.rs`: refusals.

mod answer;
mod error;
mod record;
mod request;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use crate::http::answer::fhir_json;
use crate::http::body::Incoming;
use crate::http::tokens::bearer;
use crate::nhs_login::{Level, NhsLogin};
pub use error::GpcError;

/// The largest `Parameters` body, in bytes.
pub const BODY_LIMIT: usize = 1 << 20;

/// The GP Connect mock's command-line options.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "gp_connect_options")]
pub struct Options {
    /// Serve GP Connect Access Record: Structured (STU3) for tenant TENANT at
    /// /TENANT/gpconnect/fhir, from the response Bundles (*.json) in DIR, read at
    /// start-up. Callers sign in through the mock NHS login. Repeat for several.
    #[arg(long = "gp-connect", value_name = "TENANT=DIR")]
    pub sources: Vec<String>,
}

/// The practices served, by tenant, with the issuer whose tokens they accept.
pub struct GpConnect {
    practices: HashMap<String, HashMap<String, record::Record>>,
    login: Arc<NhsLogin>,
}

impl GpConnect {
    /// Read every `--gp-connect` folder; an error names the flag or file at fault.
    pub fn load(options: &Options, login: Arc<NhsLogin>) -> Result<Self, String> {
        let mut practices = HashMap::new();
        for source in &options.sources {
            let (tenant, dir) = source
                .split_once('=')
                .ok_or_else(|| format!("--gp-connect {source}: give TENANT=DIR"))?;
            if !crate::valid_tenant(tenant) {
                return Err(format!(
                    "--gp-connect: tenant '{tenant}' must be 1-40 of a-z 0-9 -"
                ));
            }
            if practices.contains_key(tenant) {
                return Err(format!("--gp-connect: tenant '{tenant}' is given twice"));
            }
            let records = record::load(std::path::Path::new(dir)).map_err(|e| e.to_string())?;
            tracing::info!(
                tenant,
                patients = records.len(),
                "GP Connect records loaded (a mock)"
            );
            practices.insert(tenant.to_string(), records);
        }
        Ok(GpConnect { practices, login })
    }
}

/// The routes of every tenant's GP Connect.
pub fn routes<S: Clone + Send + Sync + 'static>(gpc: Arc<GpConnect>) -> Router<S> {
    Router::new()
        .route("/{tenant}/gpconnect/fhir/metadata", get(metadata))
        .route(
            "/{tenant}/gpconnect/fhir/Patient/$gpc.getstructuredrecord",
            post(get_structured_record),
        )
        .with_state(gpc)
}

/// A short STU3 CapabilityStatement naming the one operation.
async fn metadata(State(gpc): State<Arc<GpConnect>>, Path(tenant): Path<String>) -> Response {
    if !gpc.practices.contains_key(&tenant) {
        return GpcError::OrganisationNotFound.into_response();
    }
    fhir_json(
        StatusCode::OK,
        json!({
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2026-12-07",
            "kind": "instance",
            "fhirVersion": "3.0.1",
            "acceptUnknown": "no",
            "format": ["application/fhir+json"],
            "software": { "name": "carry-endpoint GP Connect mock", "version": env!("CARGO_PKG_VERSION") },
            "rest": [{
                "mode": "server",
                "security": { "description": "Bearer access tokens of the mock NHS login (/nhs-login), P9" },
                "operation": [{
                    "name": "gpc.getstructuredrecord",
                    "definition": {
                        "reference": "https://fhir.nhs.uk/STU3/OperationDefinition/GPConnect-GetStructuredRecord-Operation-1"
                    }
                }]
            }]
        }),
    )
}

/// Whether the body is declared as FHIR JSON (or plain JSON).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/fhir+json" || essence == "application/json"
}

/// The NHS number the caller's token may read: a live token of a person proven to
/// P9 whose NHS number it carries.
fn reader(gpc: &GpConnect, headers: &HeaderMap) -> Result<String, GpcError> {
    let token = bearer(headers)
        .filter(|t| !t.is_empty())
        .ok_or(GpcError::Unauthenticated(
            "send an NHS login access token as a Bearer token",
        ))?;
    let user = gpc
        .login
        .user_of_access_token(token)
        .ok_or(GpcError::Unauthenticated(
            "the access token is unknown, expired or revoked",
        ))?;
    if user.identity_proofing_level != Level::P9 {
        return Err(GpcError::AccessDenied(
            "a GP record is released only to a person proven to P9",
        ));
    }
    user.nhs_number.ok_or(GpcError::AccessDenied(
        "the access token carries no NHS number (sign in with the profile scope)",
    ))
}

/// `$gpc.getstructuredrecord`.
async fn get_structured_record(
    State(gpc): State<Arc<GpConnect>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Incoming,
) -> Result<Response, GpcError> {
    let practice = gpc
        .practices
        .get(&tenant)
        .ok_or(GpcError::OrganisationNotFound)?;
    let allowed = reader(&gpc, &headers)?;
    if !is_json(&headers) {
        return Err(GpcError::UnsupportedMedia);
    }
    let held = body.read(BODY_LIMIT).await?;
    let request = request::parse(&held.bytes)?;
    if request.nhs_number != allowed {
        return Err(GpcError::AccessDenied(
            "a person may read only their own record",
        ));
    }
    let record = practice
        .get(&request.nhs_number)
        .ok_or(GpcError::PatientNotFound)?;
    let bundle = answer::bundle(record, &request);
    tracing::info!(
        tenant,
        areas = request.areas.len(),
        entries = bundle["entry"].as_array().map_or(0, Vec::len),
        "GP Connect structured record served"
    );
    let mut r = fhir_json(StatusCode::OK, bundle);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}
