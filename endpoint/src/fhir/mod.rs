//! The FHIR R4 REST surface of each tenant: `metadata`, read, per-type search and
//! `Patient/[id]/$everything`, with opaque `next` links.

pub(crate) mod access;
pub(crate) mod error;
pub(crate) mod seed;
pub(crate) mod smart;
pub(crate) mod store;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query as QueryParams, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::fhir::access::{Access, AuthMode};
pub use crate::fhir::error::FhirError;
use crate::fhir::store::{After, FhirStore, Query, Stored};
use crate::http::answer::{fhir_json, fhir_text};
use crate::http::body::Incoming;

/// Shared state of the server.
pub struct App {
    /// Where tenants' data lives.
    pub store: Arc<dyn FhirStore>,
    /// The public base URL, e.g. `http://127.0.0.1:8080`, for links and fullUrls.
    pub public_base: String,
    /// How FHIR requests are authorized.
    pub auth: AuthMode,
    /// How long an access token lives, in milliseconds.
    pub token_ttl_ms: i64,
    /// A spent refresh token presented again within this window (ms) is taken as a
    /// client retrying after a lost response and answered with a fresh pair; later,
    /// as a replay, and the whole token family is revoked.
    pub reuse_grace_ms: i64,
    /// Where the authorize endpoint may send a code: anything else is refused before
    /// consent.
    pub redirect_uris: crate::fhir::smart::RedirectUris,
    /// Offer only plain searches: no `$everything` and no `_lastUpdated`, like the
    /// simplest servers in the wild.
    pub plain: bool,
    /// Answer `metadata` with 404, like servers that publish no CapabilityStatement.
    pub no_metadata: bool,
    /// The largest page of a search or `$everything`: a larger `_count` is answered
    /// with pages this size, as FHIR lets a server do.
    pub max_count: usize,
}

/// The path's segments, like `Path`; a segment that does not decode (not UTF-8, or
/// not the expected shape) answers 400 with an OperationOutcome rather than text.
pub struct Segments<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Segments<T> {
    type Rejection = FhirError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, FhirError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| Segments(t))
            .map_err(|_| FhirError::Invalid("the path does not decode"))
    }
}

/// The largest FHIR request body (a created resource), in bytes.
pub const BODY_LIMIT: usize = 2 << 20;

/// The page size when a request names none.
const DEFAULT_COUNT: usize = 50;
/// The largest page size the server can be set to give (`--max-count`).
pub const MAX_COUNT: usize = 500;

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

impl App {
    /// The FHIR base of `tenant`.
    pub fn base(&self, tenant: &str) -> String {
        format!("{}/{tenant}/fhir", self.public_base)
    }

    /// Run a storage call off the async threads.
    pub async fn store<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&dyn FhirStore) -> crate::error::Result<T> + Send + 'static,
    ) -> Result<T, FhirError> {
        let app = self.clone();
        match tokio::task::spawn_blocking(move || f(app.store.as_ref())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(FhirError::storage(e)),
            Err(e) => Err(FhirError::storage(e)),
        }
    }

    /// A `404` unless `tenant` exists.
    pub async fn require_tenant(self: &Arc<Self>, tenant: &str) -> Result<(), FhirError> {
        let t = tenant.to_string();
        if self.store(move |s| s.has_tenant(&t)).await? {
            Ok(())
        } else {
            Err(FhirError::NotFound("no such tenant"))
        }
    }

    /// The tenant must exist, the request must be authorized, and its scopes must
    /// grant `perm` on `rtype`.
    pub async fn gate(
        self: &Arc<Self>,
        tenant: &str,
        headers: &HeaderMap,
        rtype: &str,
        perm: char,
    ) -> Result<Access, FhirError> {
        self.require_tenant(tenant).await?;
        let access = self.access(tenant, headers).await?;
        if access.may(rtype, perm) {
            Ok(access)
        } else {
            Err(FhirError::Forbidden("the token's scopes do not allow this"))
        }
    }
}

/// The routes under `/{tenant}/fhir`.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/{tenant}/fhir/metadata", get(metadata))
        .route("/{tenant}/fhir/{rtype}", get(search).post(create))
        .route("/{tenant}/fhir/{rtype}/{id}", get(read).put(update))
        .route("/{tenant}/fhir/{rtype}/{id}/{op}", get(operation))
}

async fn metadata(
    State(app): State<Arc<App>>,
    Segments(tenant): Segments<String>,
) -> Result<Response, FhirError> {
    app.require_tenant(&tenant).await?;
    if app.no_metadata {
        return Err(FhirError::NotSupported(
            StatusCode::NOT_FOUND,
            "no CapabilityStatement here",
        ));
    }
    let t = tenant.clone();
    let mut types = app.store(move |s| s.types(&t)).await?;
    if !types.iter().any(|t| t == "Observation") {
        types.push("Observation".into());
        types.sort();
    }
    let resources: Vec<Value> = types
        .iter()
        .map(|t| {
            let mut params = vec![json!({ "name": "_count", "type": "number" })];
            if !app.plain {
                params.push(json!({ "name": "_lastUpdated", "type": "date" }));
            }
            if t != "Patient" {
                params.push(json!({ "name": "patient", "type": "reference" }));
            }
            let mut interaction = vec![json!({ "code": "read" }), json!({ "code": "search-type" })];
            if t == "Observation" {
                interaction.push(json!({ "code": "create" }));
                interaction.push(json!({ "code": "update" }));
            }
            let mut r = json!({
                "type": t,
                "interaction": interaction,
                "versioning": "versioned",
                "searchParam": params
            });
            if t == "Observation" {
                r["conditionalCreate"] = json!(true);
            }
            if t == "Patient" && !app.plain {
                r["operation"] = json!([{ "name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything" }]);
            }
            r
        })
        .collect();
    let mut rest = json!({ "mode": "server", "resource": resources });
    if app.auth == AuthMode::Smart {
        let auth = format!("{}/{tenant}/auth", app.public_base);
        rest["security"] = json!({
            "service": [{ "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                "code": "SMART-on-FHIR"
            }] }],
            "extension": [{
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": [
                    { "url": "authorize", "valueUri": format!("{auth}/authorize") },
                    { "url": "token", "valueUri": format!("{auth}/token") }
                ]
            }]
        });
    }
    let body = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": crate::time::instant(crate::time::now_ms()),
        "kind": "instance",
        "software": { "name": "carry-endpoint", "version": env!("CARGO_PKG_VERSION") },
        "implementation": { "description": format!("Carry sandbox tenant '{tenant}'"), "url": app.base(&tenant) },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [rest]
    });
    Ok(fhir_json(StatusCode::OK, body))
}

async fn read(
    State(app): State<Arc<App>>,
    Segments((tenant, rtype, id)): Segments<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, FhirError> {
    if !valid_type(&rtype) || !valid_id(&id) {
        return Err(FhirError::Invalid("not a FHIR type and id"));
    }
    let access = app.gate(&tenant, &headers, &rtype, 'r').await?;
    let found = app.store(move |s| s.get(&tenant, &rtype, &id)).await?;
    match found.filter(|s| access.reaches(&s.rtype, s.patient.as_deref())) {
        Some(s) => {
            let mut r = fhir_text(StatusCode::OK, s.json.get().to_string());
            if let Ok(etag) = HeaderValue::from_str(&format!("W/\"{}\"", s.version)) {
                r.headers_mut().insert(header::ETAG, etag);
            }
            Ok(r)
        }
        None => Err(FhirError::NotFound("no such resource")),
    }
}

/// The Observation a create or an update carries, and the patient it is about, if the
/// token reaches that patient; else the answer refusing it.
async fn observation_in(body: Incoming, access: &Access) -> Result<(Value, String), FhirError> {
    let body = body.read(BODY_LIMIT).await?;
    let resource: Value = match serde_json::from_slice(&body.bytes) {
        Ok(v @ Value::Object(_)) if v["resourceType"] == "Observation" => v,
        Ok(Value::Object(_)) => return Err(FhirError::Invalid("the body is not an Observation")),
        _ => return Err(FhirError::Structure("the body is not a JSON object")),
    };
    let Some(patient) = crate::fhir::seed::compartment(&resource) else {
        return Err(FhirError::Unprocessable(
            "required",
            "subject must reference the Patient",
        ));
    };
    if !access.reaches("Observation", Some(&patient)) {
        return Err(FhirError::Forbidden("the token is for another patient"));
    }
    Ok((resource, patient))
}

/// `PUT /{tenant}/fhir/Observation/{id}`: a new version of an Observation the
/// patient's own app made (a reading corrected, or marked `entered-in-error`). The
/// resource must exist, stay in the same patient's compartment, and keep its id; the
/// token needs `patient/Observation.u`. Anything else is refused and nothing changes.
async fn update(
    State(app): State<Arc<App>>,
    Segments((tenant, rtype, id)): Segments<(String, String, String)>,
    headers: HeaderMap,
    body: Incoming,
) -> Result<Response, FhirError> {
    if rtype != "Observation" || !valid_id(&id) {
        return Err(FhirError::NotSupported(
            StatusCode::METHOD_NOT_ALLOWED,
            "only an Observation can be updated",
        ));
    }
    let access = app.gate(&tenant, &headers, "Observation", 'u').await?;
    let (mut resource, patient) = observation_in(body, &access).await?;
    if resource
        .get("id")
        .is_some_and(|v| v.as_str() != Some(id.as_str()))
    {
        return Err(FhirError::Invalid("the body's id is not the id in the URL"));
    }
    let (t, i) = (tenant.clone(), id.clone());
    match app.store(move |s| s.get(&t, "Observation", &i)).await? {
        Some(old) if old.patient.as_deref() == Some(patient.as_str()) => {}
        Some(_) => return Err(FhirError::Forbidden("the Observation is another patient's")),
        None => {
            return Err(FhirError::NotFound(
                "no such Observation (this server does not create by update)",
            ))
        }
    }
    if let Some(o) = resource.as_object_mut() {
        o.insert("id".into(), Value::String(id.clone()));
        if let Some(meta) = o.get_mut("meta").and_then(Value::as_object_mut) {
            meta.remove("versionId");
            meta.remove("lastUpdated");
        }
    }
    let (t, i, now) = (tenant.clone(), id.clone(), crate::time::now_ms());
    let stored = app
        .store(move |s| s.put(&t, "Observation", &i, Some(&patient), &resource, now))
        .await?;
    let mut r = fhir_text(StatusCode::OK, stored.json.get().to_string());
    if let Ok(v) = HeaderValue::from_str(&format!("W/\"{}\"", stored.version)) {
        r.headers_mut().insert(header::ETAG, v);
    }
    Ok(r)
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
/// A `_count` above `max` gives pages of `max`. Errors are the message for a 400.
fn page_params(
    params: &HashMap<String, String>,
    date_param: &str,
    max: usize,
) -> Result<Query, &'static str> {
    let bad = |m: &'static str| Err(m);
    let mut q = Query {
        limit: DEFAULT_COUNT.min(max),
        ..Query::default()
    };
    if let Some(c) = params.get("_count") {
        match c.parse::<usize>() {
            Ok(n) if n >= 1 => q.limit = n.min(max),
            _ => return bad("_count must be a whole number from 1"),
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

/// A searchset Bundle, written with each resource's stored text as it is.
#[derive(serde::Serialize)]
struct Searchset<'a> {
    #[serde(rename = "resourceType")]
    resource_type: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    link: Vec<Value>,
    entry: Vec<Entry<'a>>,
}

#[derive(serde::Serialize)]
struct Entry<'a> {
    #[serde(rename = "fullUrl")]
    full_url: String,
    resource: &'a serde_json::value::RawValue,
    search: Search,
}

#[derive(serde::Serialize)]
struct Search {
    mode: &'static str,
}

/// A searchset Bundle of `rows`, with a `next` link when more may follow.
fn searchset(
    app: &App,
    tenant: &str,
    self_url: &str,
    rows: Vec<Stored>,
    limit: usize,
    next_params: &[(&str, String)],
    page: Option<&String>,
) -> Result<Response, FhirError> {
    let base = app.base(tenant);
    // `self` names the search and the page it answers, as the next link does.
    let mut this: Vec<String> = next_params
        .iter()
        .map(|(k, v)| format!("{k}={}", encode_query(v)))
        .collect();
    if let Some(p) = page {
        this.push(format!("_page={}", encode_query(p)));
    }
    let self_link = format!("{self_url}?{}", this.join("&"));
    let mut link = vec![json!({ "relation": "self", "url": self_link })];
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
    let entry: Vec<Entry<'_>> = rows
        .iter()
        .map(|s| Entry {
            full_url: format!("{base}/{}/{}", s.rtype, s.id),
            resource: &s.json,
            search: Search { mode: "match" },
        })
        .collect();
    let bundle = Searchset {
        resource_type: "Bundle",
        kind: "searchset",
        link,
        entry,
    };
    let text = serde_json::to_string(&bundle).map_err(FhirError::storage)?;
    Ok(fhir_text(StatusCode::OK, text))
}

/// Percent-encode a query value (RFC 3986 unreserved characters pass).
pub fn encode_query(v: &str) -> String {
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
    Segments((tenant, rtype)): Segments<(String, String)>,
    QueryParams(params): QueryParams<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, FhirError> {
    if !valid_type(&rtype) {
        return Err(FhirError::Invalid("not a FHIR resource type"));
    }
    for k in params.keys() {
        // `_elements` is accepted and answered with whole resources, as FHIR allows.
        let known = matches!(k.as_str(), "patient" | "_count" | "_page" | "_elements")
            || (k == "_lastUpdated" && !app.plain);
        if !known {
            return Err(FhirError::NotSupported(
                StatusCode::BAD_REQUEST,
                "unsupported search parameter",
            ));
        }
    }
    let access = app.gate(&tenant, &headers, &rtype, 's').await?;
    let mut q = page_params(&params, "_lastUpdated", app.max_count).map_err(FhirError::Invalid)?;
    q.rtype = Some(rtype.clone());
    if let Some(p) = params.get("patient") {
        let id = p.strip_prefix("Patient/").unwrap_or(p);
        if !valid_id(id) {
            return Err(FhirError::Invalid("patient is not a FHIR id"));
        }
        q.patient = Some(id.to_string());
    }
    if let Some(own) = &access.patient {
        if q.patient.as_ref().is_some_and(|p| p != own) {
            return Err(FhirError::Forbidden("the token is for another patient"));
        }
        q.patient = Some(own.clone());
        q.include_shared = true;
    }
    let limit = q.limit;
    let mut keep: Vec<(&str, String)> = vec![("_count", limit.to_string())];
    for k in ["patient", "_lastUpdated", "_elements"] {
        if let Some(v) = params.get(k) {
            keep.push((k, v.clone()));
        }
    }
    let self_url = format!("{}/{rtype}", app.base(&tenant));
    run_search(&app, &tenant, q, &self_url, &keep, params.get("_page")).await
}

/// Run `q` and answer its page as a searchset at `self_url` (see [`searchset`]).
async fn run_search(
    app: &Arc<App>,
    tenant: &str,
    q: Query,
    self_url: &str,
    keep: &[(&str, String)],
    page: Option<&String>,
) -> Result<Response, FhirError> {
    let (t, limit, qq) = (tenant.to_string(), q.limit, q);
    let rows = app.store(move |s| s.search(&t, &qq)).await?;
    searchset(app, tenant, self_url, rows, limit, keep, page)
}

async fn operation(
    State(app): State<Arc<App>>,
    Segments((tenant, rtype, id, op)): Segments<(String, String, String, String)>,
    QueryParams(params): QueryParams<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, FhirError> {
    if rtype != "Patient" || op != "$everything" || app.plain {
        return Err(FhirError::NotSupported(
            StatusCode::NOT_FOUND,
            "only Patient/[id]/$everything is supported",
        ));
    }
    if !valid_id(&id) {
        return Err(FhirError::Invalid("not a FHIR id"));
    }
    for k in params.keys() {
        if !matches!(k.as_str(), "_since" | "_count" | "_page") {
            return Err(FhirError::NotSupported(
                StatusCode::BAD_REQUEST,
                "unsupported parameter",
            ));
        }
    }
    if !app
        .gate(&tenant, &headers, "*", 'r')
        .await?
        .reaches("Patient", Some(&id))
    {
        return Err(FhirError::Forbidden("the token is for another patient"));
    }
    let (t, pid) = (tenant.clone(), id.clone());
    if app
        .store(move |s| s.get(&t, "Patient", &pid))
        .await?
        .is_none()
    {
        return Err(FhirError::NotFound("no such patient"));
    }
    let mut q = page_params(&params, "_since", app.max_count).map_err(FhirError::Invalid)?;
    q.patient = Some(id.clone());
    q.include_shared = true;
    let limit = q.limit;
    let mut keep: Vec<(&str, String)> = vec![("_count", limit.to_string())];
    if let Some(v) = params.get("_since") {
        keep.push(("_since", v.clone()));
    }
    let self_url = format!("{}/Patient/{id}/$everything", app.base(&tenant));
    run_search(&app, &tenant, q, &self_url, &keep, params.get("_page")).await
}

/// The identifier an `If-None-Exist` header asks about, as `system|value`.
fn if_none_exist(headers: &HeaderMap) -> Result<Option<String>, ()> {
    let Some(v) = headers.get("if-none-exist") else {
        return Ok(None);
    };
    let text = v.to_str().map_err(|_| ())?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(text).map_err(|_| ())?;
    match pairs.as_slice() {
        [(k, v)] if k == "identifier" && v.contains('|') && v.len() <= 512 => Ok(Some(v.clone())),
        _ => Err(()),
    }
}

/// `POST [base]/Observation`: create, or with `If-None-Exist: identifier=…` a
/// conditional create that returns the existing resource instead of a duplicate. The
/// body is read once the token and the headers are checked.
async fn create(
    State(app): State<Arc<App>>,
    Segments((tenant, rtype)): Segments<(String, String)>,
    headers: HeaderMap,
    body: Incoming,
) -> Result<Response, FhirError> {
    if rtype != "Observation" {
        return Err(FhirError::NotSupported(
            StatusCode::METHOD_NOT_ALLOWED,
            "only Observation can be created",
        ));
    }
    let access = app.gate(&tenant, &headers, "Observation", 'c').await?;
    let Ok(key) = if_none_exist(&headers) else {
        return Err(FhirError::NotSupported(
            StatusCode::BAD_REQUEST,
            "If-None-Exist must be identifier=system|value",
        ));
    };
    let (mut resource, patient) = observation_in(body, &access).await?;
    let (t, p) = (tenant.clone(), patient.clone());
    if app
        .store(move |s| s.get(&t, "Patient", &p))
        .await?
        .is_none()
    {
        return Err(FhirError::Unprocessable("not-found", "no such patient"));
    }
    let (Ok(id), Ok(fresh)) = (
        crate::http::tokens::new_token(),
        crate::http::tokens::new_token(),
    ) else {
        return Err(FhirError::storage("no randomness"));
    };
    let id: String = id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(32)
        .collect();
    // A plain create still goes through the same path, keyed by a value nobody repeats.
    let key = key.unwrap_or_else(|| format!("urn:carry:unconditional|{fresh}"));
    if let Some(o) = resource.as_object_mut() {
        o.insert("id".into(), Value::String(id.clone()));
        if let Some(meta) = o.get_mut("meta").and_then(Value::as_object_mut) {
            meta.remove("versionId");
            meta.remove("lastUpdated");
        }
    }
    let t = tenant.clone();
    let now = crate::time::now_ms();
    let (stored, created) = app
        .store(move |s| s.create_unique(&t, "Observation", &id, &patient, &key, &resource, now))
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = format!(
        "{}/Observation/{}/_history/{}",
        app.base(&tenant),
        stored.id,
        stored.version
    );
    let mut r = fhir_text(status, stored.json.get().to_string());
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("W/\"{}\"", stored.version)) {
        r.headers_mut().insert(header::ETAG, v);
    }
    Ok(r)
}
