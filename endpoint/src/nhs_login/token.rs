//! The token endpoint. Every request first authenticates its client by a
//! `private_key_jwt` assertion (`clients.rs`) whose `jti` has not been seen; any
//! failure there is `401 invalid_client`. Then `authorization_code` exchanges a code
//! (bound to the client, the redirect URI and the PKCE challenge) for an access token,
//! a refresh token and an ID token, and `refresh_token` rotates a refresh token for a
//! new access and refresh token. As NHS login's specification has it, an ID token is
//! issued only for `authorization_code`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use serde_json::{json, Value};

use super::claims::{self, Stamp};
use super::error::{no_store, NhsError};
use super::grants::{Issued, Session};
use super::{parse_params, NhsLogin, FORM_LIMIT, ID_TTL_S, REFRESH_TTL_S};
use crate::http::body::Incoming;
use crate::http::tokens::{new_token, same_secret, token_hash};

/// `POST /nhs-login/token`.
pub async fn token(
    State(login): State<Arc<NhsLogin>>,
    headers: HeaderMap,
    body: Incoming,
) -> Result<Response, NhsError> {
    let form = read_form(&headers, body).await?;
    let now_ms = crate::time::now_ms();
    let client = login
        .clients
        .authenticate(&form, &login.token_url, now_ms / 1000)
        .map_err(|why| {
            tracing::info!(why, "nhs-login: a client failed to authenticate");
            NhsError::InvalidClient(why)
        })?;
    login
        .grants
        .note_jti(&client.jti_key, client.expires_ms, now_ms)?;
    let get = |k: &str| super::param(&form, k);
    let body = match get("grant_type") {
        Some("authorization_code") => by_code(&login, &client.client_id, &form, now_ms)?,
        Some("refresh_token") => by_refresh(&login, &client.client_id, &form, now_ms)?,
        Some(_) => {
            return Err(NhsError::UnsupportedGrantType(
                "grant_type must be authorization_code or refresh_token",
            ))
        }
        None => return Err(NhsError::InvalidRequest("grant_type is required")),
    };
    let mut r = Json(body).into_response();
    no_store(r.headers_mut());
    Ok(r)
}

/// A form body: `application/x-www-form-urlencoded` (checked before anything is read),
/// at most [`FORM_LIMIT`] bytes, no parameter repeated.
async fn read_form(
    headers: &HeaderMap,
    body: Incoming,
) -> Result<HashMap<String, String>, NhsError> {
    if !crate::http::body::is_form(headers) {
        return Err(NhsError::InvalidRequest(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let held = body.read(FORM_LIMIT).await?;
    parse_params(&held.bytes).map_err(NhsError::InvalidRequest)
}

/// `grant_type=authorization_code`.
fn by_code(
    login: &NhsLogin,
    client_id: &str,
    form: &HashMap<String, String>,
    now_ms: i64,
) -> Result<Value, NhsError> {
    let get = |k: &str| super::param(form, k);
    let code = get("code").ok_or(NhsError::InvalidRequest("code is required"))?;
    let redirect_uri =
        get("redirect_uri").ok_or(NhsError::InvalidRequest("redirect_uri is required"))?;
    let verifier =
        get("code_verifier").ok_or(NhsError::InvalidRequest("code_verifier is required"))?;
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    if !(43..=128).contains(&verifier.len()) || !verifier.bytes().all(unreserved) {
        return Err(NhsError::InvalidGrant(
            "code_verifier must be 43 to 128 unreserved characters",
        ));
    }
    let digest = B64.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    login.grants.redeem_code(
        &token_hash(code),
        client_id,
        redirect_uri,
        |challenge| same_secret(digest.as_bytes(), challenge.as_bytes()),
        now_ms,
        |c| mint(login, &c.session, &c.session.scope, Some(&c.nonce), now_ms),
    )
}

/// `grant_type=refresh_token`, optionally narrowing the scope of the new access token.
fn by_refresh(
    login: &NhsLogin,
    client_id: &str,
    form: &HashMap<String, String>,
    now_ms: i64,
) -> Result<Value, NhsError> {
    let get = |k: &str| super::param(form, k);
    let presented =
        get("refresh_token").ok_or(NhsError::InvalidRequest("refresh_token is required"))?;
    let asked = get("scope");
    login
        .grants
        .rotate_refresh(&token_hash(presented), client_id, now_ms, |session| {
            let scope = match asked {
                None => session.scope.clone(),
                Some(asked) => narrowed(asked, &session.scope)?,
            };
            let (body, issued) = mint(login, session, &scope, None, now_ms)?;
            Ok((body, issued, scope))
        })
}

/// The scope a refresh asks for, which must be within the one granted at sign-in.
fn narrowed(asked: &str, granted: &str) -> Result<String, NhsError> {
    let within = asked.split_whitespace().all(|s| claims::has(granted, s));
    if !within || asked.split_whitespace().next().is_none() {
        return Err(NhsError::InvalidScope(
            "scope must not exceed the scope granted at sign-in",
        ));
    }
    Ok(claims::SCOPES
        .iter()
        .filter(|s| claims::has(asked, s))
        .copied()
        .collect::<Vec<_>>()
        .join(" "))
}

/// New tokens for `session` with `scope` (and an ID token when `nonce` is given, for a
/// code): the token response, and the hashes to store.
pub(super) fn mint(
    login: &NhsLogin,
    session: &Session,
    scope: &str,
    nonce: Option<&str>,
    now_ms: i64,
) -> Result<(Value, Issued), NhsError> {
    const NO_RANDOMNESS: NhsError = NhsError::Server("no randomness");
    const UNSIGNED: NhsError = NhsError::Server("cannot sign a token");
    let (Ok(access_jti), Ok(id_jti), Ok(refresh)) = (new_token(), new_token(), new_token()) else {
        return Err(NO_RANDOMNESS);
    };
    let now_s = now_ms / 1000;
    let stamp = |jti, ttl_s| Stamp {
        iss: &login.issuer,
        vtm: &login.vtm,
        iat: now_s,
        exp: now_s + ttl_s,
        jti,
    };
    let access = login
        .key
        .sign(&claims::access_token(
            &stamp(&access_jti, login.access_ttl_s),
            session,
            scope,
        ))
        .map_err(|_| UNSIGNED)?;
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": login.access_ttl_s,
        "refresh_token": refresh,
        "scope": scope,
    });
    if let Some(nonce) = nonce {
        let id = login
            .key
            .sign(&claims::id_token(&stamp(&id_jti, ID_TTL_S), session, nonce))
            .map_err(|_| UNSIGNED)?;
        body["id_token"] = Value::String(id);
    }
    let issued = Issued {
        access: (token_hash(&access), now_ms + login.access_ttl_s * 1000),
        refresh: (token_hash(&refresh), now_ms + REFRESH_TTL_S * 1000),
    };
    Ok((body, issued))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_may_narrow_the_scope_but_not_widen_it() {
        assert_eq!(
            narrowed("profile openid", "openid profile email").unwrap(),
            "openid profile"
        );
        assert!(narrowed("openid phone", "openid profile").is_err());
        assert!(narrowed("   ", "openid").is_err());
    }
}
