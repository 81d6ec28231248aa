//! SMART App Launch, standalone patient flow, for each tenant: discovery, an authorize
//! endpoint (PKCE S256 only) with a sandbox consent step, and a token endpoint that
//! issues expiring access tokens and rotating refresh tokens.
//!
//! The consent step is a small HTML form. A test or a headless client completes it by
//! adding `sandbox_patient=ID` to the authorize request: that stands for a person
//! signing in as that patient and approving. This is a sandbox, not an identity
//! provider.
//!
//! A code goes only to a registered redirect URI ([`RedirectUris`], `--redirect-uri`):
//! any other is refused before consent with a JSON error, never a redirect. Refresh
//! tokens rotate in one storage transaction ([`FhirStore::refresh_grant`]): a spent one
//! works exactly once more within the grace window, and any other reuse revokes the
//! family.
//!
//! [`FhirStore::refresh_grant`]: crate::fhir::store::FhirStore::refresh_grant

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query as QueryParams, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::fhir::access::{granted_scope, AuthMode};
use crate::fhir::error::{FhirError, OAuthError};
use crate::fhir::store::{Grant, Query, Refresh, Refreshed};
use crate::fhir::{App, Segments};
use crate::http::body::Incoming;
use crate::http::tokens::{new_token, same_secret, token_hash};

/// The redirect URIs accepted when none are configured: any http URI on a loopback
/// address (the `carry` CLI's `http://127.0.0.1:53682/callback`, test clients') and
/// the Carry app's `carry://callback`.
pub const DEFAULT_REDIRECT_URIS: [&str; 2] = ["loopback", "carry://callback"];

/// Schemes never accepted as a redirect URI, even if registered: they run script,
/// name local content, or are no place to send a browser with a code.
const NEVER_SCHEMES: &[&str] = &[
    "javascript",
    "vbscript",
    "data",
    "file",
    "blob",
    "about",
    "filesystem",
    "view-source",
    "jar",
    "ftp",
    "ws",
    "wss",
    "mailto",
    "tel",
    "sms",
    "urn",
];

/// One registered redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Registered {
    /// Any http URI on a loopback IP address, any port and path (RFC 8252 7.3).
    Loopback,
    /// This URI, compared as a string; an http URI on a loopback IP address matches
    /// on any port (`loopback` holds it without its port).
    Exact {
        raw: String,
        loopback: Option<String>,
    },
}

/// The redirect URIs a server's authorize endpoint sends codes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUris(Vec<Registered>);

impl RedirectUris {
    /// The `--redirect-uri` values: `loopback`, or a URI as [`well_formed`] checks
    /// it. A URI with a scheme that is never accepted is an error here, not later.
    pub fn parse(values: &[String]) -> Result<Self, String> {
        if values.is_empty() {
            return Err("name at least one --redirect-uri".into());
        }
        values
            .iter()
            .map(|v| {
                if v == "loopback" {
                    return Ok(Registered::Loopback);
                }
                let url = well_formed(v).map_err(|why| {
                    let shown: String = v.chars().filter(|c| !c.is_control()).take(80).collect();
                    format!("--redirect-uri '{shown}' {why}")
                })?;
                if url.scheme() == "http" && loopback_key(&url).is_none() {
                    tracing::warn!(
                        "a registered redirect URI is plain http to another machine: codes sent to it cross the network in the clear"
                    );
                }
                Ok(Registered::Exact {
                    raw: v.clone(),
                    loopback: loopback_key(&url),
                })
            })
            .collect::<Result<Vec<_>, String>>()
            .map(Self)
    }

    /// Whether the authorize endpoint may send a code to `uri`.
    pub fn allows(&self, uri: &str) -> bool {
        let Ok(url) = well_formed(uri) else {
            return false;
        };
        let key = loopback_key(&url);
        self.0.iter().any(|r| match r {
            Registered::Loopback => key.is_some(),
            Registered::Exact { raw, loopback } => {
                raw == uri || (loopback.is_some() && *loopback == key)
            }
        })
    }
}

/// A redirect URI's shape: at most 512 visible ASCII characters, absolute, without a
/// fragment or user info, http or https with a host, or a custom app scheme; never a
/// scheme of [`NEVER_SCHEMES`]. The error completes "the redirect URI …".
fn well_formed(uri: &str) -> Result<url::Url, &'static str> {
    if uri.is_empty() || uri.len() > 512 || !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be 1 to 512 visible ASCII characters");
    }
    if uri.contains('#') {
        return Err("must not have a fragment");
    }
    let url = url::Url::parse(uri).map_err(|_| "is not an absolute URI")?;
    let scheme = url.scheme();
    if NEVER_SCHEMES.contains(&scheme) {
        return Err("has a scheme that is never accepted");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry user info");
    }
    if matches!(scheme, "http" | "https") && url.host().is_none() {
        return Err("must name a host");
    }
    if uri.len() <= scheme.len() + 1 {
        return Err("names a scheme and nothing else");
    }
    Ok(url)
}

/// For an http URI on a loopback IP address, the URI without its port (RFC 8252: a
/// native app's loopback redirect may use any port); `None` for anything else.
/// `localhost` is a name, not an address, and does not count.
fn loopback_key(url: &url::Url) -> Option<String> {
    let loopback = match url.host()? {
        url::Host::Ipv4(a) => a.is_loopback(),
        url::Host::Ipv6(a) => a.is_loopback(),
        url::Host::Domain(_) => false,
    };
    if url.scheme() != "http" || !loopback {
        return None;
    }
    let mut u = url.clone();
    u.set_port(None).ok()?;
    Some(u.to_string())
}

/// How long an authorization code lives.
const CODE_TTL_MS: i64 = 60_000;
/// How long a refresh token lives.
const REFRESH_TTL_MS: i64 = 30 * 24 * 3600 * 1000;
/// The largest token or consent form, in bytes.
pub const FORM_LIMIT: usize = 64 << 10;

/// The SMART routes of every tenant.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route(
            "/{tenant}/fhir/.well-known/smart-configuration",
            get(configuration),
        )
        .route("/{tenant}/auth/authorize", get(authorize).post(consent))
        .route("/{tenant}/auth/token", post(token))
}

async fn configuration(
    State(app): State<Arc<App>>,
    Segments(tenant): Segments<String>,
) -> Result<Response, FhirError> {
    app.require_tenant(&tenant).await?;
    if app.auth != AuthMode::Smart {
        return Err(FhirError::NotSupported(
            StatusCode::NOT_FOUND,
            "this server does not use SMART",
        ));
    }
    let auth = format!("{}/{tenant}/auth", app.public_base);
    Ok(Json(json!({
        "issuer": app.base(&tenant),
        "authorization_endpoint": format!("{auth}/authorize"),
        "token_endpoint": format!("{auth}/token"),
        "token_endpoint_auth_methods_supported": ["none"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["patient/*.rs", "patient/*.cruds", "patient/Observation.crs",
            "launch/patient", "offline_access", "online_access", "openid", "fhirUser"],
        "capabilities": ["launch-standalone", "client-public", "context-standalone-patient",
            "permission-patient", "permission-v2", "permission-v1", "permission-offline"]
    }))
    .into_response())
}

/// The parameters of an authorize request, checked.
struct AuthorizeRequest {
    client_id: String,
    redirect_uri: String,
    scope: String,
    state: Option<String>,
    challenge: String,
}

fn check_authorize(
    app: &App,
    tenant: &str,
    p: &HashMap<String, String>,
) -> Result<AuthorizeRequest, &'static str> {
    let get = |k: &str| p.get(k).filter(|v| !v.is_empty());
    if get("response_type").map(String::as_str) != Some("code") {
        return Err("response_type must be code");
    }
    let client_id = get("client_id").ok_or("client_id is required")?;
    let redirect_uri = get("redirect_uri").ok_or("redirect_uri is required")?;
    // Before anything else is looked at or shown: a code never goes anywhere else.
    if !app.redirect_uris.allows(redirect_uri) {
        return Err("redirect_uri is not registered with this server");
    }
    let aud = get("aud").ok_or("aud is required")?;
    if aud.trim_end_matches('/') != app.base(tenant) {
        return Err("aud is not this server's FHIR base");
    }
    if get("code_challenge_method").map(String::as_str) != Some("S256") {
        return Err("PKCE with code_challenge_method S256 is required");
    }
    let challenge = get("code_challenge").ok_or("code_challenge is required")?;
    if challenge.len() != 43 || B64.decode(challenge).is_err() {
        return Err("code_challenge must be a base64url SHA-256");
    }
    let scope = granted_scope(get("scope").map_or("", String::as_str));
    if !scope.split_whitespace().any(|s| s.starts_with("patient/")) {
        return Err("scope must ask for patient/ data, e.g. patient/*.rs");
    }
    Ok(AuthorizeRequest {
        client_id: client_id.clone(),
        redirect_uri: redirect_uri.clone(),
        scope,
        state: get("state").cloned(),
        challenge: challenge.clone(),
    })
}

async fn authorize(
    State(app): State<Arc<App>>,
    Segments(tenant): Segments<String>,
    query: Result<QueryParams<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, OAuthError> {
    match query {
        Ok(QueryParams(params)) => approve_or_ask(app, tenant, params).await,
        Err(_) => Err(OAuthError::InvalidRequest("the query does not decode")),
    }
}

async fn consent(
    State(app): State<Arc<App>>,
    Segments(tenant): Segments<String>,
    headers: HeaderMap,
    body: Incoming,
) -> Result<Response, OAuthError> {
    let params = read_form(&headers, body).await?;
    approve_or_ask(app, tenant, params).await
}

/// A form body: `application/x-www-form-urlencoded` (checked before anything is read)
/// of at most [`FORM_LIMIT`] bytes (see [`crate::http::body`]).
async fn read_form(
    headers: &HeaderMap,
    body: Incoming,
) -> Result<HashMap<String, String>, OAuthError> {
    if !crate::http::body::is_form(headers) {
        return Err(NOT_A_FORM);
    }
    let held = body.read(FORM_LIMIT).await?;
    serde_urlencoded::from_bytes(&held.bytes).map_err(|_| NOT_A_FORM)
}

/// A token or consent request whose body is not a form: RFC 6749's `invalid_request`.
const NOT_A_FORM: OAuthError =
    OAuthError::InvalidRequest("the body must be application/x-www-form-urlencoded");

/// With `sandbox_patient`, approve as that patient and redirect with a code; without,
/// show the consent form.
async fn approve_or_ask(
    app: Arc<App>,
    tenant: String,
    params: HashMap<String, String>,
) -> Result<Response, OAuthError> {
    if app.auth != AuthMode::Smart {
        return Err(NOT_SMART);
    }
    app.require_tenant(&tenant).await?;
    let req = check_authorize(&app, &tenant, &params).map_err(OAuthError::InvalidRequest)?;
    let Some(patient) = params.get("sandbox_patient").filter(|p| !p.is_empty()) else {
        return Ok(consent_page(&app, &tenant, &params).await?);
    };
    let (t, pid) = (tenant.clone(), patient.clone());
    if app
        .store(move |s| s.get(&t, "Patient", &pid))
        .await?
        .is_none()
    {
        return Err(OAuthError::InvalidRequest(
            "no such patient at this provider",
        ));
    }
    let Ok(code) = new_token() else {
        return Err(NO_RANDOMNESS);
    };
    let grant = Grant {
        tenant: tenant.clone(),
        kind: "code".into(),
        patient: patient.clone(),
        scope: req.scope.clone(),
        client_id: req.client_id.clone(),
        expires_ms: crate::time::now_ms() + CODE_TTL_MS,
        data: json!({ "challenge": req.challenge, "redirect_uri": req.redirect_uri }).to_string(),
    };
    let hash = token_hash(&code);
    app.store(move |s| s.put_grant(&hash, &grant)).await?;
    let sep = if req.redirect_uri.contains('?') {
        '&'
    } else {
        '?'
    };
    let mut location = format!("{}{sep}code={code}", req.redirect_uri);
    if let Some(state) = &req.state {
        location.push_str(&format!("&state={}", crate::fhir::encode_query(state)));
    }
    let mut r = StatusCode::FOUND.into_response();
    let v = HeaderValue::from_str(&location).map_err(|_| {
        OAuthError::InvalidRequest("redirect_uri cannot be used in a Location header")
    })?;
    r.headers_mut().insert(header::LOCATION, v);
    Ok(r)
}

fn escape_html(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".into(),
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '"' => "&quot;".into(),
            '\'' => "&#39;".into(),
            c => c.to_string(),
        })
        .collect()
}

/// The sandbox consent form: pick a patient of this tenant and approve.
async fn consent_page(
    app: &Arc<App>,
    tenant: &str,
    params: &HashMap<String, String>,
) -> Result<Response, FhirError> {
    let t = tenant.to_string();
    let q = Query {
        rtype: Some("Patient".into()),
        limit: 20,
        ..Query::default()
    };
    let patients = app.store(move |s| s.search(&t, &q)).await?;
    let hidden: String = params
        .iter()
        .filter(|(k, _)| k.as_str() != "sandbox_patient")
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape_html(k),
                escape_html(v)
            )
        })
        .collect();
    let options: String = patients
        .iter()
        .map(|p| {
            let resource = p.resource();
            let name = resource["name"][0]["family"].as_str().unwrap_or("(no name)");
            format!(
                "<label><input type=\"radio\" name=\"sandbox_patient\" value=\"{id}\" required> {name} <small>({id})</small></label><br>",
                id = escape_html(&p.id),
                name = escape_html(name)
            )
        })
        .collect();
    let scope = escape_html(&granted_scope(
        params.get("scope").map_or("", String::as_str),
    ));
    Ok(Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sandbox sign-in</title></head><body>\
         <h1>{tenant}: sandbox sign-in</h1><p>This is a test provider. Choose the patient to sign in as. \
         The app asks for: <code>{scope}</code></p><form method=\"post\">{hidden}{options}\
         <button type=\"submit\">Allow</button></form></body></html>",
        tenant = escape_html(tenant)
    ))
    .into_response())
}

/// Issue an access token (and a refresh token if `offline_access` or
/// `online_access` was granted) and answer the token request.
async fn issue(
    app: &Arc<App>,
    tenant: &str,
    patient: &str,
    scope: &str,
    client_id: &str,
) -> Result<Response, OAuthError> {
    let now = crate::time::now_ms();
    let (Ok(access), Ok(refresh)) = (new_token(), new_token()) else {
        return Err(NO_RANDOMNESS);
    };
    let wants_refresh = scope
        .split_whitespace()
        .any(|s| s == "offline_access" || s == "online_access");
    let grant = |kind: &str, ttl: i64| Grant {
        tenant: tenant.to_string(),
        kind: kind.into(),
        patient: patient.to_string(),
        scope: scope.to_string(),
        client_id: client_id.to_string(),
        expires_ms: now + ttl,
        data: "{}".into(),
    };
    let mut grants = vec![(token_hash(&access), grant("access", app.token_ttl_ms))];
    if wants_refresh {
        grants.push((token_hash(&refresh), grant("refresh", REFRESH_TTL_MS)));
    }
    app.store(move |s| grants.iter().try_for_each(|(h, g)| s.put_grant(h, g)))
        .await?;
    Ok(token_answer(
        app,
        patient,
        scope,
        access,
        wants_refresh.then_some(refresh),
    ))
}

/// The token response for tokens already stored.
fn token_answer(
    app: &App,
    patient: &str,
    scope: &str,
    access: String,
    refresh: Option<String>,
) -> Response {
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": app.token_ttl_ms / 1000,
        "scope": scope,
        "patient": patient,
    });
    if let Some(refresh) = refresh {
        body["refresh_token"] = Value::String(refresh);
    }
    let mut r = Json(body).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// No randomness for a code or token.
const NO_RANDOMNESS: OAuthError = OAuthError::Server("no randomness");
/// The storage failed during a token exchange (logged where it happened).
const STORAGE_FAILED: OAuthError = OAuthError::Server("storage failed");
/// A sign-in request to a tenant that does not use SMART.
const NOT_SMART: OAuthError = OAuthError::InvalidRequest("this server does not use SMART");

/// Exchange a refresh token: rotate it, or allow its one retry, or revoke its family,
/// as [`FhirStore::refresh_grant`](crate::fhir::store::FhirStore::refresh_grant) decides in one
/// transaction. Nothing is changed for a token of another tenant or client.
async fn refresh(
    app: &Arc<App>,
    tenant: &str,
    client_id: &str,
    presented: &str,
) -> Result<Response, OAuthError> {
    if presented.is_empty() {
        return Err(OAuthError::InvalidGrant("refresh_token is required"));
    }
    let (Ok(access), Ok(refresh)) = (new_token(), new_token()) else {
        return Err(NO_RANDOMNESS);
    };
    let now = crate::time::now_ms();
    let (hash, access_hash, refresh_hash) = (
        token_hash(presented),
        token_hash(&access),
        token_hash(&refresh),
    );
    let (t, c) = (tenant.to_string(), client_id.to_string());
    let (grace_ms, access_expires) = (app.reuse_grace_ms, now + app.token_ttl_ms);
    let outcome = app
        .store(move |s| {
            s.refresh_grant(
                &hash,
                &Refresh {
                    tenant: &t,
                    client_id: &c,
                    now_ms: now,
                    grace_ms,
                    access: (&access_hash, access_expires),
                    refresh: (&refresh_hash, now + REFRESH_TTL_MS),
                },
            )
        })
        .await;
    match outcome {
        Ok(Refreshed::Issued { grant, retry }) => {
            if retry {
                tracing::info!(
                    tenant,
                    "a spent refresh token was used once more within its grace window"
                );
            }
            Ok(token_answer(
                app,
                &grant.patient,
                &grant.scope,
                access,
                Some(refresh),
            ))
        }
        Ok(Refreshed::Revoked(n)) => {
            tracing::warn!(
                tenant,
                revoked = n,
                "a spent refresh token was replayed; its family is revoked"
            );
            Err(OAuthError::InvalidGrant(
                "the refresh token was already used",
            ))
        }
        Ok(Refreshed::Unknown) => Err(OAuthError::InvalidGrant(
            "the refresh token is unknown or expired",
        )),
        Err(_) => Err(STORAGE_FAILED),
    }
}

async fn token(
    State(app): State<Arc<App>>,
    Segments(tenant): Segments<String>,
    headers: HeaderMap,
    body: Incoming,
) -> Result<Response, OAuthError> {
    let p = read_form(&headers, body).await?;
    if app.auth != AuthMode::Smart {
        return Err(NOT_SMART);
    }
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    let client_id = get("client_id");
    if client_id.is_empty() {
        return Err(OAuthError::InvalidClient("client_id is required"));
    }
    let invalid_grant = |d: &'static str| Err(OAuthError::InvalidGrant(d));
    let now = crate::time::now_ms();
    match get("grant_type") {
        "authorization_code" => {
            let (hash, t) = (token_hash(get("code")), tenant.clone());
            let Ok(found) = app
                .store(move |s| s.take_grant(&hash, "code", &t, now))
                .await
            else {
                return Err(STORAGE_FAILED);
            };
            let Some(g) = found else {
                return invalid_grant("the code is unknown, used or expired");
            };
            let data: Value = serde_json::from_str(&g.data).unwrap_or(Value::Null);
            if g.client_id != client_id
                || data["redirect_uri"].as_str() != Some(get("redirect_uri"))
            {
                return invalid_grant(
                    "client_id or redirect_uri differ from the authorize request",
                );
            }
            let verifier = get("code_verifier");
            if !(43..=128).contains(&verifier.len()) {
                return invalid_grant("code_verifier must be 43 to 128 characters");
            }
            let digest = B64.encode(ring::digest::digest(
                &ring::digest::SHA256,
                verifier.as_bytes(),
            ));
            let challenge = data["challenge"].as_str().unwrap_or("");
            if !same_secret(digest.as_bytes(), challenge.as_bytes()) {
                return invalid_grant("code_verifier does not match the code_challenge");
            }
            issue(&app, &tenant, &g.patient, &g.scope, client_id).await
        }
        "refresh_token" => refresh(&app, &tenant, client_id, get("refresh_token")).await,
        _ => Err(OAuthError::UnsupportedGrantType(
            "use authorization_code or refresh_token",
        )),
    }
}
