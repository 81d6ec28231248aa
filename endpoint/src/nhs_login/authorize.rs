//! The authorize endpoint. The client and its redirect URI are checked first: until
//! both are known good, a refusal is a JSON 400 and nobody is redirected. After that
//! every refusal goes back to the redirect URI as `error`, `error_description` and
//! `state` query parameters (OAuth 2.0 4.1.2.1).
//!
//! Instead of a login page, the sandbox signs in the user the request names with
//! `sandbox_user` (an NHS number), proven to `sandbox_proofing` (P0, P5 or P9; P9 when
//! absent), with optional `sandbox_given`, `sandbox_family` and `sandbox_birthdate`.
//! Without `sandbox_user` it answers a short page saying so. The vector of trust
//! granted is the first requested one whose proofing level the user meets; if none,
//! `access_denied`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;

use super::claims::granted_scope;
use super::error::{no_store, NhsError};
use super::grants::{Code, Session};
use super::users::SandboxUser;
use super::vectors::{grant, parse_vtr};
use super::{parse_params, NhsLogin, CODE_TTL_MS};
use crate::http::tokens::{new_token, token_hash};

/// The longest authorize query read, in bytes.
const MAX_QUERY: usize = 8 << 10;
/// The longest `state` or `nonce`, in bytes.
const MAX_OPAQUE: usize = 512;

/// A refusal sent back to the client's redirect URI: the OAuth error code and its
/// description.
struct Refused(&'static str, &'static str);

/// A refusal sent back to the client as `invalid_request`.
fn bad(why: &'static str) -> Refused {
    Refused("invalid_request", why)
}

/// `GET /nhs-login/authorize`.
pub async fn authorize(State(login): State<Arc<NhsLogin>>, RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    if query.len() > MAX_QUERY {
        return NhsError::InvalidRequest("the query is too long").into_response();
    }
    let params = match parse_params(query.as_bytes()) {
        Ok(p) => p,
        Err(why) => return NhsError::InvalidRequest(why).into_response(),
    };
    let get = |k: &str| super::param(&params, k);
    let Some(client_id) = get("client_id") else {
        return NhsError::InvalidRequest("client_id is required").into_response();
    };
    if !login.clients.is_registered(client_id) {
        return NhsError::InvalidRequest("client_id is not registered with this issuer")
            .into_response();
    }
    let Some(redirect_uri) = get("redirect_uri") else {
        return NhsError::InvalidRequest("redirect_uri is required").into_response();
    };
    if url::Url::parse(redirect_uri).is_err() || !(login.redirect_allowed)(redirect_uri) {
        return NhsError::InvalidRequest(
            "redirect_uri must be an absolute URI this endpoint sends codes to (--redirect-uri)",
        )
        .into_response();
    }
    let state = get("state");
    match sign_in(&login, client_id, redirect_uri, &params) {
        Ok(Some(code)) => {
            let mut back = vec![("code", code.as_str())];
            back.extend(state.map(|s| ("state", s)));
            redirect(redirect_uri, &back)
        }
        Ok(None) => sandbox_page(),
        Err(Refused(error, why)) => {
            tracing::debug!(error, why, "nhs-login: an authorize request was refused");
            let mut back = vec![("error", error), ("error_description", why)];
            back.extend(state.map(|s| ("state", s)));
            redirect(redirect_uri, &back)
        }
    }
}

/// Check the rest of the request and sign the sandbox user in: the code to send back,
/// or `None` for the page that says how the sandbox signs in.
fn sign_in(
    login: &NhsLogin,
    client_id: &str,
    redirect_uri: &str,
    params: &HashMap<String, String>,
) -> Result<Option<String>, Refused> {
    let get = |k: &str| super::param(params, k);
    if get("response_type") != Some("code") {
        return Err(Refused(
            "unsupported_response_type",
            "response_type must be code",
        ));
    }
    if get("response_mode").is_some_and(|m| m != "query") {
        return Err(bad("response_mode must be query"));
    }
    if get("request").is_some() || get("request_uri").is_some() {
        return Err(Refused(
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    let state = get("state").ok_or(bad("state is required"))?;
    let nonce = get("nonce").ok_or(bad("nonce is required"))?;
    if state.len() > MAX_OPAQUE || nonce.len() > MAX_OPAQUE {
        return Err(bad("state and nonce must be at most 512 bytes"));
    }
    let scope =
        granted_scope(get("scope").unwrap_or("")).map_err(|why| Refused("invalid_scope", why))?;
    if get("code_challenge_method") != Some("S256") {
        return Err(bad("PKCE with code_challenge_method S256 is required"));
    }
    let challenge = get("code_challenge").ok_or(bad("code_challenge is required"))?;
    if challenge.len() != 43 || B64.decode(challenge).is_err() {
        return Err(bad("code_challenge must be a base64url SHA-256"));
    }
    let requested = parse_vtr(get("vtr")).map_err(bad)?;
    if get("sandbox_user").is_none() {
        if get("prompt") == Some("none") {
            return Err(Refused(
                "sso_login_required",
                "the sandbox signs in only by sandbox_user",
            ));
        }
        return Ok(None);
    }
    let now_ms = crate::time::now_ms();
    let today = time::OffsetDateTime::now_utc().date();
    let user = SandboxUser::from_params(params, today).map_err(bad)?;
    let Some(vot) = grant(&requested, user.proofing) else {
        tracing::info!(
            client_id,
            proofing = user.proofing.as_str(),
            "nhs-login: the user's proofing meets no requested vector"
        );
        return Err(Refused(
            "access_denied",
            "the user's identity proofing meets none of the requested vectors of trust",
        ));
    };
    let Ok(code) = new_token() else {
        return Err(Refused("server_error", "no randomness"));
    };
    let session = Session {
        client_id: client_id.to_string(),
        scope,
        vot: vot.text.clone(),
        auth_time_s: now_ms / 1000,
        user,
    };
    tracing::info!(
        client_id,
        proofing = session.user.proofing.as_str(),
        vot = session.vot,
        "nhs-login: a sandbox user signed in"
    );
    login
        .grants
        .put_code(
            token_hash(&code),
            Code {
                session,
                redirect_uri: redirect_uri.to_string(),
                nonce: nonce.to_string(),
                challenge: challenge.to_string(),
                expires_ms: now_ms + CODE_TTL_MS,
            },
            now_ms,
        )
        .map_err(|_| {
            Refused(
                "temporarily_unavailable",
                "the sandbox holds too many live sign-ins; retry later",
            )
        })?;
    Ok(Some(code))
}

/// 302 to `uri` with `params` added to its query.
fn redirect(uri: &str, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(uri) else {
        return NhsError::InvalidRequest("redirect_uri is not an absolute URI").into_response();
    };
    url.query_pairs_mut().extend_pairs(params);
    let Ok(location) = HeaderValue::from_str(url.as_str()) else {
        return NhsError::InvalidRequest("redirect_uri cannot be used in a Location header")
            .into_response();
    };
    let mut r = StatusCode::FOUND.into_response();
    r.headers_mut().insert(header::LOCATION, location);
    no_store(r.headers_mut());
    r
}

/// What the authorize endpoint shows instead of a login page. It repeats nothing of
/// the request.
fn sandbox_page() -> Response {
    let mut r = Html(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Mock NHS login (sandbox)</title></head><body>\
         <h1>Mock NHS login: a sandbox of synthetic users</h1>\
         <p>This is not NHS login and signs in no real person. It has no login page: \
         a client signs a synthetic user in by adding <code>sandbox_user</code> (a \
         10-digit NHS number with a valid check digit) to the authorize request, and \
         optionally <code>sandbox_proofing</code> (P0, P5 or P9), \
         <code>sandbox_given</code>, <code>sandbox_family</code> and \
         <code>sandbox_birthdate</code> (YYYY-MM-DD).</p></body></html>",
    )
    .into_response();
    no_store(r.headers_mut());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_add_to_the_query() {
        let r = redirect(
            "http://127.0.0.1:9/cb?x=1",
            &[("code", "c"), ("state", "a b")],
        );
        assert_eq!(r.status(), StatusCode::FOUND);
        assert_eq!(
            r.headers()[header::LOCATION],
            "http://127.0.0.1:9/cb?x=1&code=c&state=a+b"
        );
        let r = redirect("carry://callback", &[("error", "access_denied")]);
        assert_eq!(
            r.headers()[header::LOCATION],
            "carry://callback?error=access_denied"
        );
    }
}
