//! The FHIR R4 REST surface of each tenant: `metadata`, read, per-type search and
//! `Patient/[id]/$everything`, with opaque `next` links.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query as QueryParams, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::store::{After, Query, Store, Stored};

/// Shared state of the server.
pub struct App {
    /// Where tenants' data lives.
    pub store: Arc<dyn Store>,
    /// The public base URL, e.g. `http://127.0.0.1:8080`, for links and fullUrls.
    pub public_base: String,
}

/// Default and largest page sizes.
const DEFAULT_COUNT: usize = 50;
const MAX_COUNT: usize = 500;

/// Resource types a FHIR id may name: letters only, starting upper-case.
fn valid_type(t: &str) -> bool {
    t.len() <= 64
        && t.starts_with(|c: char| c.is_ascii_uppercase())
        && t.chars().all(|c| c.is_ascii_alphabetic())
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// An OperationOutcome with one issue.
fn outcome(status: StatusCode, code: &str, text: &str) -> Response {
    let body = json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": "error", "code": code, "diagnostics": text }]
    });
    fhir_json(status, body)
}

fn fhir_json(status: StatusCode, body: Value) -> Response {
    let mut r = (status, Json(body)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+json"),
    );
    r
}

fn storage_failed(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "storage failed");
    outcome(
        StatusCode::INTERNAL_SERVER_ERROR,
        "exception",
        "the server's storage failed",
    )
}

impl App {
    fn base(&self, tenant: &str) -> String {
        format!("{}/{tenant}/fhir", self.public_base)
    }

    /// Run a storage call off the async threads.
    async fn store<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&dyn Store) -> crate::store::Result<T> + Send + 'static,
    ) -> Result<T, Response> {
        let app = self.clone();
        match tokio::task::spawn_blocking(move || f(app.store.as_ref())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(storage_failed(e)),
            Err(e) => Err(storage_failed(e)),
        }
    }

    async fn require_tenant(self: &Arc<Self>, tenant: &str) -> Result<(), Response> {
        let t = tenant.to_string();
        if self.store(move |s| s.has_tenant(&t)).await? {
            Ok(())
        } else {
            Err(outcome(
                StatusCode::NOT_FOUND,
                "not-found",
                "no such tenant",
            ))
        }
    }
}

/// The routes under `/{tenant}/fhir`.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/{tenant}/fhir/metadata", get(metadata))
        .route("/{tenant}/fhir/{rtype}", get(search))
        .route("/{tenant}/fhir/{rtype}/{id}", get(read))
        .route("/{tenant}/fhir/{rtype}/{id}/{op}", get(operation))
}

async fn metadata(State(app): State<Arc<App>>, Path(tenant): Path<String>) -> Response {
    if let Err(r) = app.require_tenant(&tenant).await {
        return r;
    }
    let t = tenant.clone();
    let types = match app.store(move |s| s.types(&t)).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let resources: Vec<Value> = types
        .iter()
        .map(|t| {
            let mut r = json!({
                "type": t,
                "interaction": [{ "code": "read" }, { "code": "search-type" }],
                "versioning": "versioned",
                "searchParam": [
                    { "name": "_lastUpdated", "type": "date" },
                    { "name": "_count", "type": "number" }
                ]
            });
            if t != "Patient" {
                if let Some(p) = r["searchParam"].as_array_mut() {
                    p.push(json!({ "name": "patient", "type": "reference" }));
                }
            } else {
                r["operation"] = json!([{ "name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything" }]);
            }
            r
        })
        .collect();
    let body = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": crate::time::instant(crate::time::now_ms()),
        "kind": "instance",
        "software": { "name": "carry-endpoint", "version": env!("CARGO_PKG_VERSION") },
        "implementation": { "description": format!("Carry sandbox tenant '{tenant}'"), "url": app.base(&tenant) },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [{ "mode": "server", "resource": resources }]
    });
    fhir_json(StatusCode::OK, body)
}

async fn read(
    State(app): State<Arc<App>>,
    Path((tenant, rtype, id)): Path<(String, String, String)>,
) -> Response {
    if !valid_type(&rtype) || !valid_id(&id) {
        return outcome(StatusCode::BAD_REQUEST, "invalid", "not a FHIR type and id");
    }
    if let Err(r) = app.require_tenant(&tenant).await {
        return r;
    }
    let found = match app.store(move |s| s.get(&tenant, &rtype, &id)).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    match found {
        Some(s) => {
            let mut r = fhir_json(StatusCode::OK, s.resource);
            if let Ok(etag) = HeaderValue::from_str(&format!("W/\"{}\"", s.version)) {
                r.headers_mut().insert(header::ETAG, etag);
            }
            r
        }
        None => outcome(StatusCode::NOT_FOUND, "not-found", "no such resource"),
    }
}

/// A page cursor: where the previous page ended. Opaque to clients.
fn encode_after(a: &After) -> String {
    B64.encode(format!("{}|{}|{}", a.last_updated_ms, a.rtype, a.id))
}

fn decode_after(s: &str) -> Option<After> {
    let text = String::from_utf8(B64.decode(s).ok()?).ok()?;
    let mut parts = text.splitn(3, '|');
    Some(After {
        last_updated_ms: parts.next()?.parse().ok()?,
        rtype: parts.next().filter(|t| valid_type(t))?.to_string(),
        id: parts.next().filter(|i| valid_id(i))?.to_string(),
    })
}

/// Parse `_count`, `_page` and the date filters shared by search and `$everything`.
/// Errors are the message for a 400.
fn page_params(params: &HashMap<String, String>, date_param: &str) -> Result<Query, &'static str> {
    let bad = |m: &'static str| Err(m);
    let mut q = Query {
        limit: DEFAULT_COUNT,
        ..Query::default()
    };
    if let Some(c) = params.get("_count") {
        match c.parse::<usize>() {
            Ok(n) if (1..=MAX_COUNT).contains(&n) => q.limit = n,
            _ => return bad("_count must be 1 to 500"),
        }
    }
    if let Some(p) = params.get("_page") {
        match decode_after(p) {
            Some(a) => q.after = Some(a),
            None => return bad("_page is not a link this server gave out"),
        }
    }
    if let Some(d) = params.get(date_param) {
        let (op, value) = match d.get(..2) {
            Some(p @ ("gt" | "ge")) => (p, &d[2..]),
            _ if date_param == "_since" => ("ge", d.as_str()),
            _ => return bad("_lastUpdated supports gt and ge"),
        };
        let Some(ms) = crate::time::parse(value) else {
            return bad("the date is not a FHIR instant");
        };
        if op == "gt" {
            q.updated_after_ms = Some(ms);
        } else {
            q.updated_since_ms = Some(ms);
        }
    }
    Ok(q)
}

/// A searchset Bundle of `rows`, with a `next` link when more may follow.
fn searchset(
    app: &App,
    tenant: &str,
    self_url: &str,
    rows: Vec<Stored>,
    limit: usize,
    next_params: &[(&str, String)],
) -> Response {
    let base = app.base(tenant);
    let mut link = vec![json!({ "relation": "self", "url": self_url })];
    if rows.len() == limit {
        if let Some(last) = rows.last() {
            let after = After {
                last_updated_ms: last.last_updated_ms,
                rtype: last.rtype.clone(),
                id: last.id.clone(),
            };
            let mut qs: Vec<String> = next_params
                .iter()
                .map(|(k, v)| format!("{k}={}", encode_query(v)))
                .collect();
            qs.push(format!("_page={}", encode_after(&after)));
            let path = self_url.split('?').next().unwrap_or(self_url);
            link.push(json!({ "relation": "next", "url": format!("{path}?{}", qs.join("&")) }));
        }
    }
    let entry: Vec<Value> = rows
        .into_iter()
        .map(|s| {
            json!({
                "fullUrl": format!("{base}/{}/{}", s.rtype, s.id),
                "resource": s.resource,
                "search": { "mode": "match" }
            })
        })
        .collect();
    fhir_json(
        StatusCode::OK,
        json!({ "resourceType": "Bundle", "type": "searchset", "link": link, "entry": entry }),
    )
}

/// Percent-encode a query value (RFC 3986 unreserved characters pass).
fn encode_query(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn search(
    State(app): State<Arc<App>>,
    Path((tenant, rtype)): Path<(String, String)>,
    QueryParams(params): QueryParams<HashMap<String, String>>,
) -> Response {
    if !valid_type(&rtype) {
        return outcome(
            StatusCode::BAD_REQUEST,
            "invalid",
            "not a FHIR resource type",
        );
    }
    for k in params.keys() {
        if !matches!(k.as_str(), "patient" | "_lastUpdated" | "_count" | "_page") {
            return outcome(
                StatusCode::BAD_REQUEST,
                "not-supported",
                "unsupported search parameter",
            );
        }
    }
    if let Err(r) = app.require_tenant(&tenant).await {
        return r;
    }
    let mut q = match page_params(&params, "_lastUpdated") {
        Ok(q) => q,
        Err(m) => return outcome(StatusCode::BAD_REQUEST, "invalid", m),
    };
    q.rtype = Some(rtype.clone());
    if let Some(p) = params.get("patient") {
        let id = p.strip_prefix("Patient/").unwrap_or(p);
        if !valid_id(id) {
            return outcome(
                StatusCode::BAD_REQUEST,
                "invalid",
                "patient is not a FHIR id",
            );
        }
        q.patient = Some(id.to_string());
    }
    let limit = q.limit;
    let mut keep: Vec<(&str, String)> = vec![("_count", limit.to_string())];
    for k in ["patient", "_lastUpdated"] {
        if let Some(v) = params.get(k) {
            keep.push((k, v.clone()));
        }
    }
    let (t, qq) = (tenant.clone(), q.clone());
    let rows = match app.store(move |s| s.search(&t, &qq)).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let self_url = format!("{}/{rtype}", app.base(&tenant));
    searchset(&app, &tenant, &self_url, rows, limit, &keep)
}

async fn operation(
    State(app): State<Arc<App>>,
    Path((tenant, rtype, id, op)): Path<(String, String, String, String)>,
    QueryParams(params): QueryParams<HashMap<String, String>>,
) -> Response {
    if rtype != "Patient" || op != "$everything" {
        return outcome(
            StatusCode::NOT_FOUND,
            "not-supported",
            "only Patient/[id]/$everything is supported",
        );
    }
    if !valid_id(&id) {
        return outcome(StatusCode::BAD_REQUEST, "invalid", "not a FHIR id");
    }
    for k in params.keys() {
        if !matches!(k.as_str(), "_since" | "_count" | "_page") {
            return outcome(
                StatusCode::BAD_REQUEST,
                "not-supported",
                "unsupported parameter",
            );
        }
    }
    if let Err(r) = app.require_tenant(&tenant).await {
        return r;
    }
    let (t, pid) = (tenant.clone(), id.clone());
    match app.store(move |s| s.get(&t, "Patient", &pid)).await {
        Ok(Some(_)) => {}
        Ok(None) => return outcome(StatusCode::NOT_FOUND, "not-found", "no such patient"),
        Err(r) => return r,
    }
    let mut q = match page_params(&params, "_since") {
        Ok(q) => q,
        Err(m) => return outcome(StatusCode::BAD_REQUEST, "invalid", m),
    };
    q.patient = Some(id.clone());
    let limit = q.limit;
    let mut keep: Vec<(&str, String)> = vec![("_count", limit.to_string())];
    if let Some(v) = params.get("_since") {
        keep.push(("_since", v.clone()));
    }
    let (t, qq) = (tenant.clone(), q.clone());
    let rows = match app.store(move |s| s.search(&t, &qq)).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let self_url = format!("{}/Patient/{id}/$everything", app.base(&tenant));
    searchset(&app, &tenant, &self_url, rows, limit, &keep)
}
