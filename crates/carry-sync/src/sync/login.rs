//! Signing in: the SMART App Launch standalone patient flow (PKCE S256, public
//! client), token refresh with rotation, static bearer tokens and open servers.
//! Tokens live only in the vault, are zeroized in memory, and never reach a log.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use serde::Serialize;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::discover;
use super::nhs_login;
use super::sources::{self, Source, SourceInfo, Tokens};
use crate::error::{Error, Result};
use crate::net::http::{enc, Http};
use crate::profile::db;
use crate::profile::Profile;
use crate::time::now_unix;

/// Refresh an access token this long before it expires (at most a quarter of its life).
const EARLY_REFRESH_S: i64 = 30;

/// The start of a sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoginStart {
    /// Open this in a browser. It carries a PKCE challenge and a state, never a secret.
    pub authorize_url: String,
}

/// 32 random bytes as base64url: a PKCE verifier, a state, a nonce, a `jti`.
pub(super) fn random_token() -> Result<Zeroizing<String>> {
    let mut b = Zeroizing::new([0u8; 32]);
    crate::keys::fill_random(b.as_mut())?;
    Ok(Zeroizing::new(B64.encode(b.as_ref())))
}

/// The PKCE S256 challenge of `verifier`.
pub(super) fn pkce_challenge(verifier: &str) -> String {
    B64.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

/// A sign-in that failed, saying why.
pub(super) fn auth_failed(reason: impl Into<String>) -> Error {
    Error::Auth {
        reason: reason.into(),
    }
}

/// Begin the standalone launch: discover the endpoints, make a PKCE verifier and a
/// state, keep them in the vault, and return the authorize URL.
pub(crate) async fn begin(
    profile: &Arc<Profile>,
    http: &Http,
    name: &str,
    redirect_uri: &str,
) -> Result<LoginStart> {
    let n = name.to_string();
    let source = db(profile, move |p| sources::get(p, &n)).await?;
    if source.info.auth == "nhs-login" {
        return begin_nhs_login(profile, http, &source, redirect_uri).await;
    }
    if source.info.auth != "smart" {
        return Err(Error::invalid(format!(
            "source '{name}' does not use SMART sign-in"
        )));
    }
    if redirect_uri.is_empty() || !redirect_uri.contains(':') || redirect_uri.contains('#') {
        return Err(Error::invalid("the redirect URI must be an absolute URI"));
    }
    let caps = discover::discover(http, &source.info.base_url, true).await?;
    let authorize = caps
        .authorize
        .clone()
        .ok_or_else(|| auth_failed("the provider does not offer SMART sign-in"))?;
    let (id, c2) = (source.id, caps.clone());
    db(profile, move |p| sources::save_capabilities(p, id, &c2)).await?;
    let verifier = random_token()?;
    let state = random_token()?;
    let challenge = pkce_challenge(&verifier);
    let url = format!(
        "{authorize}?response_type=code&client_id={}&redirect_uri={}&scope={}&state={}&aud={}&code_challenge={challenge}&code_challenge_method=S256",
        enc(&source.client_id),
        enc(redirect_uri),
        enc(&source.scope),
        enc(&state),
        enc(&source.info.base_url),
    );
    let pending = Zeroizing::new(
        json!({ "verifier": verifier.as_str(), "state": state.as_str(), "redirect_uri": redirect_uri })
            .to_string(),
    );
    db(profile, move |p| {
        let mut t = sources::tokens(p, id)?;
        t.pending_login = Some(pending);
        sources::save_tokens(p, id, &t, None)
    })
    .await?;
    Ok(LoginStart { authorize_url: url })
}

/// The issuer of an NHS login source, discovered.
async fn issuer_of(http: &Http, source: &Source) -> Result<nhs_login::Issuer> {
    let issuer = source
        .issuer
        .as_deref()
        .ok_or_else(|| Error::internal("an NHS login source without its issuer"))?;
    nhs_login::discover(http, issuer).await
}

/// Begin an NHS login sign-in: discover the issuer, keep the PKCE verifier, state and
/// nonce in the vault, and return the authorize URL (asking for a P9 identity).
async fn begin_nhs_login(
    profile: &Arc<Profile>,
    http: &Http,
    source: &Source,
    redirect_uri: &str,
) -> Result<LoginStart> {
    let issuer = issuer_of(http, source).await?;
    let (url, pending) =
        nhs_login::authorize_url(&issuer, &source.client_id, redirect_uri, &source.scope)?;
    let id = source.id;
    let text = pending.to_json();
    db(profile, move |p| {
        let mut t = sources::tokens(p, id)?;
        t.pending_login = Some(text);
        sources::save_tokens(p, id, &t, None)
    })
    .await?;
    Ok(LoginStart { authorize_url: url })
}

/// Finish an NHS login sign-in: the code exchanged with a client assertion, the ID
/// token checked (P9 required), the NHS number kept as the person's id there.
async fn complete_nhs_login(
    profile: &Arc<Profile>,
    http: &Http,
    source: &Source,
    pending: &str,
    redirected_to: &str,
) -> Result<()> {
    let pending = nhs_login::Pending::from_json(pending)?;
    let issuer = issuer_of(http, source).await?;
    let signed =
        nhs_login::complete(http, &issuer, &source.client_id, &pending, redirected_to).await?;
    let tokens = tokens_of(signed.tokens);
    let (id, nhs) = (source.id, signed.nhs_number);
    db(profile, move |p| {
        sources::save_tokens(p, id, &tokens, Some(&nhs))
    })
    .await
}

/// NHS login's tokens as the vault keeps them.
fn tokens_of(t: nhs_login::TokenSet) -> Tokens {
    let refresh_at = now_unix() + t.expires_in - (t.expires_in / 4).min(EARLY_REFRESH_S);
    Tokens {
        access: Some(t.access),
        access_expires_at: Some(refresh_at),
        refresh: t.refresh,
        pending_login: None,
    }
}

/// The value of `key` in the query of `url`, percent-decoded (the `url` crate's
/// WHATWG parser, which also takes an app's custom scheme such as `carry://cb`).
pub(super) fn query_value(url: &str, key: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Finish the launch with the URL the browser was sent back to.
pub(crate) async fn complete(
    profile: &Arc<Profile>,
    http: &Http,
    name: &str,
    redirected_to: &str,
) -> Result<SourceInfo> {
    let n = name.to_string();
    let source = db(profile, move |p| sources::get(p, &n)).await?;
    let id = source.id;
    let tokens = db(profile, move |p| sources::tokens(p, id)).await?;
    if source.info.auth == "nhs-login" {
        let pending = tokens.pending_login.as_ref().ok_or_else(|| {
            Error::invalid("no sign-in is in progress for this source; start one first")
        })?;
        complete_nhs_login(profile, http, &source, pending, redirected_to).await?;
        let n = name.to_string();
        return db(profile, move |p| sources::get(p, &n).map(|s| s.info)).await;
    }
    let pending: Value = tokens
        .pending_login
        .as_ref()
        .and_then(|p| serde_json::from_str(p).ok())
        .ok_or_else(|| {
            Error::invalid("no sign-in is in progress for this source; start one first")
        })?;
    if let Some(err) = query_value(redirected_to, "error") {
        return Err(auth_failed(format!(
            "the provider refused the sign-in ({err})"
        )));
    }
    let state = query_value(redirected_to, "state").unwrap_or_default();
    let expected = pending["state"].as_str().unwrap_or_default();
    if !crate::keys::same_secret(state.as_bytes(), expected.as_bytes()) {
        return Err(auth_failed(
            "the redirect's state does not match this sign-in",
        ));
    }
    let code = Zeroizing::new(
        query_value(redirected_to, "code")
            .ok_or_else(|| Error::invalid("the redirect URL carries no code"))?,
    );
    let caps = match source.capabilities.clone() {
        Some(c) => c,
        None => discover::discover(http, &source.info.base_url, true).await?,
    };
    let token_url = caps
        .token
        .ok_or_else(|| auth_failed("the provider offers no token endpoint"))?;
    let verifier = Zeroizing::new(pending["verifier"].as_str().unwrap_or_default().to_string());
    let redirect_uri = pending["redirect_uri"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("client_id", source.client_id.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    let resp = http
        .send(|| http.client().post(&token_url).form(&form))
        .await?;
    let (tokens, patient) = read_token_response(&resp.body, resp.status, None)?;
    let patient = patient.ok_or_else(|| auth_failed("the token response names no patient"))?;
    db(profile, move |p| {
        sources::save_tokens(p, id, &tokens, Some(&patient))
    })
    .await?;
    let n = name.to_string();
    db(profile, move |p| sources::get(p, &n).map(|s| s.info)).await
}

/// Read a token endpoint's answer. `old_refresh` is kept when the server does not
/// rotate refresh tokens.
fn read_token_response(
    body: &[u8],
    status: u16,
    old_refresh: Option<Zeroizing<String>>,
) -> Result<(Tokens, Option<String>)> {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if status != 200 {
        let err = v["error"].as_str().unwrap_or("an error");
        return Err(auth_failed(format!(
            "the token endpoint answered {status} ({err}); sign in again"
        )));
    }
    let access = v["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| auth_failed("the token response has no access token"))?;
    let expires_in = v["expires_in"].as_i64().unwrap_or(3600).max(1);
    // Kept as the moment to refresh: a little before the real expiry.
    let refresh_at = now_unix() + expires_in - (expires_in / 4).min(EARLY_REFRESH_S);
    let refresh = v["refresh_token"]
        .as_str()
        .map(|r| Zeroizing::new(r.to_string()))
        .or(old_refresh);
    let patient = v["patient"].as_str().map(str::to_string);
    Ok((
        Tokens {
            access: Some(Zeroizing::new(access.to_string())),
            access_expires_at: Some(refresh_at),
            refresh,
            pending_login: None,
        },
        patient,
    ))
}

/// Headless sandbox consent: follow `authorize_url` as `patient` without a browser and
/// return the redirect URL carrying the code. Only the reference endpoint's sandbox
/// accepts this; real providers show their own sign-in page.
pub async fn sandbox_consent(authorize_url: &str, patient: &str) -> Result<String> {
    sandbox_sign_in(authorize_url, &[("sandbox_patient", patient)]).await
}

/// Headless sandbox sign-in with any of the reference endpoint's sandbox parameters
/// (`sandbox_patient` for SMART; `sandbox_user`, an NHS number, and
/// `sandbox_proofing` for its mock NHS login): follow `authorize_url` and return the
/// redirect URL carrying the code. Real issuers show their own sign-in page.
pub async fn sandbox_sign_in(authorize_url: &str, params: &[(&str, &str)]) -> Result<String> {
    let http = Http::new(None, None)?;
    let mut url = authorize_url.to_string();
    for (k, v) in params {
        url.push_str(&format!("&{k}={}", enc(v)));
    }
    let resp = http.send(|| http.client().get(&url)).await?;
    match (resp.status, resp.location) {
        (302 | 303, Some(loc)) => Ok(loc),
        (status, _) => {
            let v: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
            Err(auth_failed(format!(
                "the sandbox refused the sign-in ({status}: {})",
                v["error_description"].as_str().unwrap_or("no reason given")
            )))
        }
    }
}

/// Supplies a valid `Authorization` header for one sync run, refreshing as needed.
pub(crate) struct Authorizer {
    profile: Arc<Profile>,
    source_id: i64,
    kind: String,
    client_id: String,
    token_url: Option<String>,
    /// For NHS login: the issuer.
    issuer: Option<String>,
    access: Option<Zeroizing<String>>,
    expires_at: Option<i64>,
    patient: Option<String>,
}

impl Authorizer {
    pub fn new(profile: Arc<Profile>, source: &Source) -> Self {
        Authorizer {
            profile,
            source_id: source.id,
            kind: source.info.auth.clone(),
            client_id: source.client_id.clone(),
            token_url: source.capabilities.as_ref().and_then(|c| c.token.clone()),
            issuer: source.issuer.clone(),
            access: None,
            expires_at: None,
            patient: source.info.patient_id.clone(),
        }
    }

    /// The Patient id the provider named, once known.
    pub fn patient_id(&self) -> Option<String> {
        self.patient.clone()
    }

    /// Make sure a usable token is at hand.
    pub async fn ensure(&mut self, http: &Http) -> Result<()> {
        if self.kind == "none" {
            return Ok(());
        }
        let id = self.source_id;
        let t = db(&self.profile, move |p| sources::tokens(p, id)).await?;
        if self.kind == "bearer" {
            self.access = t.access;
            return match self.access {
                Some(_) => Ok(()),
                None => Err(auth_failed("the source has no bearer token")),
            };
        }
        let fresh = t.access_expires_at.is_some_and(|e| e > now_unix());
        if t.access.is_some() && fresh {
            self.access = t.access;
            self.expires_at = t.access_expires_at;
            return Ok(());
        }
        self.refresh(http, t.refresh).await
    }

    /// Get a new access token with the refresh token, and keep the rotated refresh
    /// token in the vault before the new access token is used.
    async fn refresh(&mut self, http: &Http, refresh: Option<Zeroizing<String>>) -> Result<()> {
        let refresh =
            refresh.ok_or_else(|| auth_failed("not signed in to this source; sign in first"))?;
        if let Some(issuer) = self.issuer.clone() {
            return self.refresh_nhs_login(http, &issuer, refresh).await;
        }
        let token_url = self
            .token_url
            .clone()
            .ok_or_else(|| auth_failed("the provider offers no token endpoint"))?;
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("client_id", self.client_id.as_str()),
        ];
        let resp = http
            .send(|| http.client().post(&token_url).form(&form))
            .await?;
        let id = self.source_id;
        let outcome = read_token_response(&resp.body, resp.status, Some(refresh.clone()));
        let (tokens, patient) = match outcome {
            Ok(t) => t,
            Err(e) => {
                // The refresh token is dead: forget it, so the app asks to sign in.
                db(&self.profile, move |p| {
                    sources::save_tokens(p, id, &Tokens::default(), None)
                })
                .await?;
                return Err(e);
            }
        };
        self.access = tokens.access.clone();
        self.expires_at = tokens.access_expires_at;
        if patient.is_some() {
            self.patient = patient.clone();
        }
        db(&self.profile, move |p| {
            sources::save_tokens(p, id, &tokens, patient.as_deref())
        })
        .await?;
        tracing::debug!("access token refreshed");
        Ok(())
    }

    /// Refresh through NHS login (a client assertion, the ID token checked again).
    async fn refresh_nhs_login(
        &mut self,
        http: &Http,
        issuer: &str,
        refresh: Zeroizing<String>,
    ) -> Result<()> {
        let id = self.source_id;
        // No signer is the app's set-up, not a dead sign-in: keep the tokens.
        nhs_login::client_signer(&self.client_id)?;
        let found = nhs_login::discover(http, issuer).await?;
        let tokens = match nhs_login::refresh(http, &found, &self.client_id, &refresh).await {
            Ok(t) => tokens_of(t),
            Err(e @ Error::Auth { .. }) => {
                // The refresh token is dead: forget it, so the app asks to sign in.
                db(&self.profile, move |p| {
                    sources::save_tokens(p, id, &Tokens::default(), None)
                })
                .await?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        self.access = tokens.access.clone();
        self.expires_at = tokens.access_expires_at;
        db(&self.profile, move |p| {
            sources::save_tokens(p, id, &tokens, None)
        })
        .await?;
        tracing::debug!("access token refreshed through NHS login");
        Ok(())
    }

    /// The header value, refreshing first if the token is about to expire.
    pub async fn header(&mut self, http: &Http) -> Result<Option<Zeroizing<String>>> {
        let refreshes = self.kind == "smart" || self.kind == "nhs-login";
        if refreshes && self.expires_at.is_none_or(|e| e <= now_unix()) {
            self.ensure(http).await?;
        }
        Ok(self
            .access
            .as_ref()
            .map(|t| Zeroizing::new(format!("Bearer {}", t.as_str()))))
    }

    /// The server said 401: refresh once (SMART), else give up.
    pub async fn rejected(&mut self, http: &Http) -> Result<()> {
        if self.kind != "smart" && self.kind != "nhs-login" {
            return Err(auth_failed("the provider refused the token"));
        }
        let id = self.source_id;
        let t = db(&self.profile, move |p| sources::tokens(p, id)).await?;
        self.refresh(http, t.refresh).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_query_values_decode() {
        let u = "carry://cb?code=abc%2Bdef&state=x%3Dy#frag";
        assert_eq!(query_value(u, "code").as_deref(), Some("abc+def"));
        assert_eq!(query_value(u, "state").as_deref(), Some("x=y"));
        assert_eq!(query_value(u, "nope"), None);
        assert_eq!(
            query_value("carry://cb?c=%zz%4", "c").as_deref(),
            Some("%zz%4")
        );
    }
}
