//! A mock of NHS login, England's identity provider for health services, under
//! `/nhs-login` on every endpoint: an OpenID Connect issuer of synthetic users, for
//! building and testing sign-in without NHS login's own environments. It is a sandbox:
//! nobody is identified, and a client signs a user in by naming them
//! (`sandbox_user=NHS_NUMBER`, `sandbox_proofing=P0|P5|P9`) instead of a login page.
//!
//! It follows NHS login's published interface specification (the "Federation"
//! interface): the authorization code flow only; `private_key_jwt` client
//! authentication (RFC 7523) with RS512 assertions, the only method NHS login
//! accepts; RS512 ID and access tokens carrying Vectors of Trust (`vot`, `vtm`); the
//! scopes and claims NHS login names (`nhs_number`, `identity_proofing_level`, …);
//! and refresh tokens. Where it is stricter or differs, it says so: PKCE (S256) is
//! required; redirect URIs are the endpoint's (`--redirect-uri`, shared with the
//! SMART sandbox) rather than registered per client, and may be loopback http.
//!
//! - `mod.rs`: the routes, discovery, keys, trust mark and UserInfo, and
//!   [`NhsLogin::user_of_access_token`] for the rest of the endpoint;
//! - `authorize.rs`: the authorize endpoint and the sandbox sign-in;
//! - `token.rs`: the token endpoint (codes and refresh tokens);
//! - `keys.rs`: the issuer's RSA key and JWK Set; `clients.rs`: registered clients
//!   and their assertions; `grants.rs`: codes and tokens, in memory, by hash;
//! - `claims.rs`: scopes and claims; `vectors.rs`: Vectors of Trust; `users.rs`: the
//!   synthetic users and NHS number checks; `error.rs`: refusals.

mod authorize;
mod claims;
mod clients;
mod error;
mod grants;
mod keys;
mod token;
mod users;
mod vectors;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::http::tokens::{bearer, token_hash};
use error::NhsError;
pub use vectors::Level;

/// The path every route of the issuer is under.
pub const PREFIX: &str = "/nhs-login";
/// How long an access token lives, in seconds (NHS login's: 5 minutes).
const ACCESS_TTL_S: i64 = 300;
/// How long an ID token is valid, in seconds (NHS login's: 60 minutes).
const ID_TTL_S: i64 = 3600;
/// How long a refresh token lives, in seconds (NHS login's: 30 days).
const REFRESH_TTL_S: i64 = 30 * 24 * 3600;
/// How long an authorization code lives, in ms: a minute, shorter than NHS login's
/// ten, which only a client that dawdles would notice.
const CODE_TTL_MS: i64 = 60_000;
/// The largest token request form, in bytes.
const FORM_LIMIT: usize = 16 << 10;

/// The mock NHS login's command-line options.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "nhs_login_options")]
pub struct Options {
    /// A client of the mock NHS login issuer (/nhs-login) as CLIENT_ID=PATH, PATH its
    /// RSA public key in PEM (as `openssl rsa -pubout` writes it; 2048 bits or more).
    /// Repeat for several. Without any, the issuer still serves discovery and its keys
    /// but refuses every token request.
    #[arg(long = "nhs-login-client", value_name = "CLIENT_ID=PATH")]
    pub clients: Vec<String>,
    /// How long the mock NHS login's access tokens live, in seconds (tests shorten
    /// it to see refreshes).
    #[arg(long = "nhs-login-access-seconds", value_name = "SECONDS", default_value_t = ACCESS_TTL_S,
          value_parser = clap::value_parser!(i64).range(1..=3600))]
    pub access_seconds: i64,
}

/// Whether the authorize endpoint may send a code to a redirect URI.
pub type RedirectCheck = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// The issuer: its key, its clients and its live grants.
pub struct NhsLogin {
    /// `{public_base}/nhs-login`.
    issuer: String,
    /// `{issuer}/token`: the `aud` of client assertions.
    token_url: String,
    /// The trust mark URL every token's `vtm` names.
    vtm: String,
    /// The host (and port) the trust mark is published under.
    trustmark_host: String,
    key: keys::IssuerKey,
    clients: clients::Clients,
    grants: grants::Grants,
    redirect_allowed: RedirectCheck,
    /// How long access tokens live, in seconds.
    access_ttl_s: i64,
}

/// Who an access token of this issuer stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUser {
    /// The NHS number, as the access token asserts it: only for a user proven to P5 or
    /// P9 whose token has the `profile` scope (NHS login releases it no other way).
    pub nhs_number: Option<String>,
    /// How far the user's identity is proven.
    pub identity_proofing_level: Level,
    /// The vector of trust granted at sign-in, e.g. `P9.Cp.Cd`.
    pub vot: String,
    /// The subject identifier the client knows the user by.
    pub sub: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// The token's scopes, space-separated.
    pub scope: String,
    /// When the token expires, in ms since the epoch.
    pub expires_ms: i64,
}

impl NhsLogin {
    /// The issuer for an endpoint reached at `public_base` (no trailing slash), with
    /// the clients of `options`, sending codes only where `redirect_allowed` says.
    /// Makes the issuer's RSA key.
    pub fn new(
        public_base: &str,
        options: &Options,
        redirect_allowed: RedirectCheck,
    ) -> Result<Self, String> {
        let issuer = format!("{}{PREFIX}", public_base.trim_end_matches('/'));
        let base = url::Url::parse(public_base)
            .map_err(|_| format!("the public URL {public_base} is not an absolute URL"))?;
        let host = base
            .host_str()
            .ok_or_else(|| format!("the public URL {public_base} names no host"))?;
        let trustmark_host = match base.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let clients = clients::Clients::from_flags(&options.clients)?;
        let key = keys::IssuerKey::generate().map_err(|e| e.to_string())?;
        tracing::info!(
            clients = clients.len(),
            kid = key.kid(),
            "mock NHS login issuer ready (a sandbox of synthetic users)"
        );
        Ok(NhsLogin {
            token_url: format!("{issuer}/token"),
            vtm: format!("{issuer}/trustmark/{trustmark_host}"),
            issuer,
            trustmark_host,
            key,
            clients,
            grants: grants::Grants::default(),
            redirect_allowed,
            access_ttl_s: options.access_seconds,
        })
    }

    /// The user an access token issued here stands for, if the token is live; `None`
    /// for a token that is unknown, expired or revoked. For other parts of the
    /// endpoint that accept this issuer's tokens.
    pub fn user_of_access_token(&self, access_token: &str) -> Option<TokenUser> {
        let a = self
            .grants
            .access(&token_hash(access_token), crate::time::now_ms())?;
        Some(TokenUser {
            nhs_number: claims::released_nhs_number(&a.session, &a.scope).map(str::to_string),
            identity_proofing_level: a.session.user.proofing,
            vot: a.session.vot.clone(),
            sub: a.session.user.sub(),
            client_id: a.session.client_id.clone(),
            scope: a.scope.clone(),
            expires_ms: a.expires_ms,
        })
    }
}

/// The routes of the issuer, under [`PREFIX`].
pub fn routes<S: Clone + Send + Sync + 'static>(login: Arc<NhsLogin>) -> Router<S> {
    Router::new()
        .route(
            "/nhs-login/.well-known/openid-configuration",
            get(configuration),
        )
        .route("/nhs-login/.well-known/jwks.json", get(jwks))
        .route("/nhs-login/trustmark/{host}", get(trustmark))
        .route("/nhs-login/authorize", get(authorize::authorize))
        .route("/nhs-login/token", post(token::token))
        .route("/nhs-login/userinfo", get(userinfo).post(userinfo))
        .with_state(login)
}

/// OpenID Connect discovery.
async fn configuration(State(login): State<Arc<NhsLogin>>) -> Json<serde_json::Value> {
    let iss = &login.issuer;
    Json(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/authorize"),
        "token_endpoint": login.token_url,
        "userinfo_endpoint": format!("{iss}/userinfo"),
        "jwks_uri": format!("{iss}/.well-known/jwks.json"),
        "scopes_supported": claims::SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS512"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS512"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": claims::CLAIMS,
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "vot_values_supported": vectors::SUPPORTED,
        "vtm": login.vtm,
    }))
}

/// The issuer's public key, as a JWK Set.
async fn jwks(State(login): State<Arc<NhsLogin>>) -> Json<serde_json::Value> {
    Json(login.key.jwks())
}

/// The trust mark every token's `vtm` points at: which proofing levels and credential
/// components this issuer asserts.
async fn trustmark(State(login): State<Arc<NhsLogin>>, Path(host): Path<String>) -> Response {
    if host != login.trustmark_host {
        let body = json!({ "error": "not_found", "error_description": "no such trust mark" });
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    }
    Json(json!({
        "idp": login.issuer,
        "trustmark_provider": login.issuer,
        "P": ["P0", "P5", "P9"],
        "C": ["Cp", "Cd", "Ck", "Cm"],
    }))
    .into_response()
}

/// UserInfo: the claims the access token's scopes release.
async fn userinfo(
    State(login): State<Arc<NhsLogin>>,
    headers: HeaderMap,
) -> Result<Response, NhsError> {
    let token = bearer(&headers)
        .filter(|t| !t.is_empty())
        .ok_or(NhsError::InvalidToken(
            "send the access token as a Bearer token",
        ))?;
    let a = login
        .grants
        .access(&token_hash(token), crate::time::now_ms())
        .ok_or(NhsError::InvalidToken(
            "the access token is unknown, expired or revoked",
        ))?;
    let mut r = Json(claims::userinfo(&login.issuer, &a.session, &a.scope)).into_response();
    error::no_store(r.headers_mut());
    Ok(r)
}

/// The parameters of a query or form; a repeated one is an error (OAuth 2.0 3.1).
fn parse_params(bytes: &[u8]) -> Result<std::collections::HashMap<String, String>, &'static str> {
    let mut params = std::collections::HashMap::new();
    for (k, v) in url::form_urlencoded::parse(bytes) {
        if params.insert(k.into_owned(), v.into_owned()).is_some() {
            return Err("a parameter is repeated");
        }
    }
    Ok(params)
}

/// The parameter `name`, if present and not empty (OAuth 2.0 3.1: an empty one is
/// treated as absent).
fn param<'a>(params: &'a std::collections::HashMap<String, String>, name: &str) -> Option<&'a str> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> NhsLogin {
        let options = Options {
            clients: vec![],
            access_seconds: ACCESS_TTL_S,
        };
        NhsLogin::new("http://127.0.0.1:9", &options, Box::new(|_| true)).unwrap()
    }

    /// Sign `user` in with `scope` and redeem the code: the access token.
    fn signed_in(login: &NhsLogin, proofing: Level, scope: &str) -> String {
        let now = crate::time::now_ms();
        let session = grants::Session {
            client_id: "app".into(),
            scope: scope.into(),
            user: users::SandboxUser {
                nhs_number: "9912003888".into(),
                proofing,
                given_name: "G".into(),
                family_name: "F".into(),
                birthdate: "1980-01-01".into(),
            },
            vot: format!("{}.Cp.Cd", proofing.as_str()),
            auth_time_s: now / 1000,
        };
        let code = grants::Code {
            session,
            redirect_uri: "http://127.0.0.1/cb".into(),
            nonce: "n".into(),
            challenge: "c".into(),
            expires_ms: now + CODE_TTL_MS,
        };
        login.grants.put_code("h".into(), code, now).unwrap();
        let body = login
            .grants
            .redeem_code(
                "h",
                "app",
                "http://127.0.0.1/cb",
                |_| true,
                now,
                |c| token::mint(login, &c.session, &c.session.scope, Some(&c.nonce), now),
            )
            .unwrap();
        body["access_token"].as_str().unwrap().to_string()
    }

    #[test]
    fn an_access_token_names_its_user() {
        let login = issuer();
        assert_eq!(
            login.vtm,
            "http://127.0.0.1:9/nhs-login/trustmark/127.0.0.1:9"
        );
        let token = signed_in(&login, Level::P9, "openid profile");
        let user = login.user_of_access_token(&token).unwrap();
        assert_eq!(user.nhs_number.as_deref(), Some("9912003888"));
        assert_eq!(user.identity_proofing_level, Level::P9);
        assert_eq!(user.vot, "P9.Cp.Cd");
        assert_eq!(user.client_id, "app");
        assert!(user.expires_ms > crate::time::now_ms());
        assert!(login.user_of_access_token("not a token").is_none());
        let p0 = issuer();
        let token = signed_in(&p0, Level::P0, "openid profile");
        let user = p0.user_of_access_token(&token).unwrap();
        assert_eq!(user.nhs_number, None, "P0: no NHS number");
        let no_profile = issuer();
        let token = signed_in(&no_profile, Level::P9, "openid");
        assert_eq!(
            no_profile.user_of_access_token(&token).unwrap().nhs_number,
            None
        );
    }

    #[test]
    fn repeated_parameters_are_refused() {
        assert_eq!(parse_params(b"a=1&b=%20").unwrap()["b"], " ");
        assert!(parse_params(b"a=1&a=2").is_err());
    }
}
