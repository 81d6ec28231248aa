//! Signing in with NHS login, England's identity service for health apps: OpenID
//! Connect with the authorization code flow, PKCE (S256), a nonce, and vectors of
//! trust (`vtr`) asking for a P9 identity; the client authenticates at the token
//! endpoint with `private_key_jwt` only, and ID tokens are signed RS512.
//!
//! The client's private key never sits in Carry's files: the app holds it (Android
//! Keystore, the iOS Keychain, an HSM behind its server) and signs through a
//! [`ClientSigner`]. Carry builds the client assertion (a compact JWS whose signature
//! comes from that signer) and checks the ID token with `jsonwebtoken` against the
//! issuer's published keys: the algorithm (RS512 only), issuer, audience, expiry,
//! nonce, and the vector of trust, whose identity level must be P9 for record access.
//!
//! The interface followed is NHS login's published OIDC interface specification; the
//! reference endpoint's mock issuer (`endpoint/src/nhs_login/`) serves the same.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::login::{auth_failed, pkce_challenge, query_value, random_token};
use super::sources::is_secure_url;
use crate::error::{Error, Result};
use crate::net::http::{enc, Http};
use crate::time::now_unix;

/// The vectors of trust Carry asks for: a P9 identity (the highest NHS login proves),
/// with any of the credential strengths NHS login pairs with it. GP record access
/// needs P9.
pub const RECORD_ACCESS_VTR: &str = r#"["P9.Cp.Cd","P9.Cp.Ck","P9.Cm"]"#;
/// The scopes Carry asks for by default: the ID token, and the profile (the NHS
/// number among it).
pub const DEFAULT_SCOPE: &str = "openid profile";
/// How long a client assertion lives, in seconds.
const ASSERTION_LIFE_S: i64 = 300;
/// Clock skew allowed when checking an ID token's times, in seconds.
const LEEWAY_S: u64 = 60;
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Signs the client's assertions with the client's private key, which the app holds.
/// The signature is RSASSA-PKCS1-v1_5 with SHA-512 (JWS `RS512`), the only algorithm
/// NHS login accepts for `private_key_jwt`.
pub trait ClientSigner: Send + Sync {
    /// The RS512 signature of `message`.
    fn sign_rs512(&self, message: &[u8]) -> Result<Vec<u8>>;
}

/// The identity levels NHS login proves, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Level {
    /// No identity checked.
    P0,
    /// Some identity checks (low level).
    P5,
    /// Full identity verification (high level): needed for GP record access.
    P9,
}

impl Level {
    /// The level of a vector of trust such as `P9.Cp.Cd`, or of a bare `P9`.
    pub fn of_vector(vot: &str) -> Option<Level> {
        match vot.split('.').next() {
            Some("P0") => Some(Level::P0),
            Some("P5") => Some(Level::P5),
            Some("P9") => Some(Level::P9),
            _ => None,
        }
    }
}

/// What an NHS login issuer publishes about itself (its discovery document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issuer {
    /// The issuer identifier, exactly as ID tokens carry it.
    pub issuer: String,
    /// Where the browser goes to sign in.
    pub authorization_endpoint: String,
    /// Where codes and refresh tokens are exchanged.
    pub token_endpoint: String,
    /// Where the person's details are read with an access token.
    pub userinfo_endpoint: String,
    /// The issuer's public signing keys.
    pub jwks_uri: String,
}

/// A sign-in under way: what the redirect is checked against. Kept in the vault
/// ([`Pending::to_json`]).
#[derive(Clone)]
pub struct Pending {
    /// The PKCE verifier.
    pub verifier: Zeroizing<String>,
    /// The state the redirect must carry back.
    pub state: Zeroizing<String>,
    /// The nonce the ID token must carry.
    pub nonce: Zeroizing<String>,
    /// Where the browser is sent back to.
    pub redirect_uri: String,
}

impl Pending {
    /// As JSON text, to keep in the vault until the browser comes back.
    pub fn to_json(&self) -> Zeroizing<String> {
        Zeroizing::new(
            json!({
                "verifier": self.verifier.as_str(),
                "state": self.state.as_str(),
                "nonce": self.nonce.as_str(),
                "redirect_uri": self.redirect_uri,
            })
            .to_string(),
        )
    }

    /// Read back what [`Pending::to_json`] wrote.
    pub fn from_json(text: &str) -> Result<Pending> {
        let v: Value = serde_json::from_str(text)
            .map_err(|_| Error::invalid("no NHS login sign-in is in progress"))?;
        let field = |k: &str| {
            v[k].as_str()
                .map(|s| Zeroizing::new(s.to_string()))
                .ok_or_else(|| Error::invalid("no NHS login sign-in is in progress"))
        };
        Ok(Pending {
            verifier: field("verifier")?,
            state: field("state")?,
            nonce: field("nonce")?,
            redirect_uri: field("redirect_uri")?.to_string(),
        })
    }
}

/// The claims of a checked ID token that Carry uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdToken {
    /// The person's stable identifier at NHS login.
    pub sub: String,
    /// The vector of trust granted (`P9.Cp.Cd`).
    pub vot: String,
    /// The trust mark the vector is judged by.
    pub vtm: String,
    /// The identity level of `vot`.
    pub level: Level,
    /// The NHS number, if the token carries it.
    pub nhs_number: Option<String>,
    /// When it expires (Unix seconds).
    pub exp: i64,
}

/// Tokens from the token endpoint.
pub struct TokenSet {
    /// The access token.
    pub access: Zeroizing<String>,
    /// Seconds it lives.
    pub expires_in: i64,
    /// The refresh token, if one was issued.
    pub refresh: Option<Zeroizing<String>>,
    /// The ID token, checked: always from a sign-in; from a refresh only if the
    /// issuer sent one (NHS login issues ID tokens for the authorization code only).
    pub id: Option<IdToken>,
}

/// A finished sign-in: the tokens and the person's NHS number.
pub struct SignedIn {
    /// The tokens.
    pub tokens: TokenSet,
    /// The person's NHS number (checked: ten digits with a right check digit).
    pub nhs_number: String,
}

/// The signers the app set, by client id.
fn signers() -> &'static Mutex<HashMap<String, Arc<dyn ClientSigner>>> {
    static SIGNERS: OnceLock<Mutex<HashMap<String, Arc<dyn ClientSigner>>>> = OnceLock::new();
    SIGNERS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Set the signer for `client_id`'s assertions, for the life of the process (an app
/// sets it once at start-up, as it sets its logger).
pub fn set_client_signer(client_id: &str, signer: Arc<dyn ClientSigner>) {
    if let Ok(mut all) = signers().lock() {
        all.insert(client_id.to_string(), signer);
    }
}

/// The client id under which a signer serves every client id that has none of its
/// own (a command-line tool with one key).
pub const ANY_CLIENT: &str = "*";

/// The signer set for `client_id`, else the one set for [`ANY_CLIENT`].
pub fn client_signer(client_id: &str) -> Result<Arc<dyn ClientSigner>> {
    signers()
        .lock()
        .ok()
        .and_then(|all| all.get(client_id).or_else(|| all.get(ANY_CLIENT)).cloned())
        .ok_or_else(|| {
            auth_failed(format!(
                "no key is set for the NHS login client '{client_id}': the app sets its client signer first"
            ))
        })
}

pub use carry_proto::nhs::is_nhs_number;

/// Read the issuer's discovery document and check it: the issuer is the one asked
/// for, every endpoint is secure, and it offers what Carry needs (RS512 ID tokens,
/// `private_key_jwt`, PKCE S256, when it says).
pub async fn discover(http: &Http, issuer: &str) -> Result<Issuer> {
    let issuer = issuer.trim().trim_end_matches('/');
    if !is_secure_url(issuer) {
        return Err(Error::invalid(
            "the NHS login issuer must be https:// (http:// only for 127.0.0.1 or localhost)",
        ));
    }
    let url = format!("{issuer}/.well-known/openid-configuration");
    let resp = http.send(|| http.client().get(&url)).await?;
    if resp.status != 200 {
        return Err(auth_failed(format!(
            "the NHS login discovery document answered {}",
            resp.status
        )));
    }
    let doc: Value = serde_json::from_slice(&resp.body)
        .map_err(|_| auth_failed("the NHS login discovery document is not JSON"))?;
    let found: Issuer = serde_json::from_value(doc.clone())
        .map_err(|e| auth_failed(format!("the NHS login discovery document lacks {e}")))?;
    if found.issuer.trim_end_matches('/') != issuer {
        return Err(auth_failed(
            "the discovery document names another issuer than the one asked for",
        ));
    }
    for u in [
        &found.authorization_endpoint,
        &found.token_endpoint,
        &found.userinfo_endpoint,
        &found.jwks_uri,
    ] {
        if !is_secure_url(u) {
            return Err(auth_failed(
                "an NHS login endpoint in the discovery document is not https",
            ));
        }
    }
    let offers = |key: &str, want: &str| {
        doc[key]
            .as_array()
            .is_none_or(|a| a.iter().any(|v| v.as_str() == Some(want)))
    };
    if !offers("id_token_signing_alg_values_supported", "RS512")
        || !offers("token_endpoint_auth_methods_supported", "private_key_jwt")
        || !offers("code_challenge_methods_supported", "S256")
    {
        return Err(auth_failed(
            "the issuer does not offer RS512 ID tokens, private_key_jwt and PKCE S256",
        ));
    }
    Ok(found)
}

/// Start a sign-in: the address to open in a browser, and what to keep until the
/// browser comes back. Asks for a P9 identity ([`RECORD_ACCESS_VTR`]).
pub fn authorize_url(
    issuer: &Issuer,
    client_id: &str,
    redirect_uri: &str,
    scope: &str,
) -> Result<(String, Pending)> {
    if redirect_uri.is_empty() || !redirect_uri.contains(':') || redirect_uri.contains('#') {
        return Err(Error::invalid("the redirect URI must be an absolute URI"));
    }
    if !scope.split_whitespace().any(|s| s == "openid") {
        return Err(Error::invalid("an NHS login scope must include openid"));
    }
    let pending = Pending {
        verifier: random_token()?,
        state: random_token()?,
        nonce: random_token()?,
        redirect_uri: redirect_uri.to_string(),
    };
    let challenge = pkce_challenge(&pending.verifier);
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&scope={}&state={}&nonce={}&vtr={}&code_challenge={challenge}&code_challenge_method=S256",
        issuer.authorization_endpoint,
        enc(client_id),
        enc(redirect_uri),
        enc(scope),
        enc(&pending.state),
        enc(&pending.nonce),
        enc(RECORD_ACCESS_VTR),
    );
    Ok((url, pending))
}

/// A client assertion for `private_key_jwt`: a JWT naming `client_id` as issuer and
/// subject and the token endpoint as audience, with a fresh `jti`, living five
/// minutes from `now`, signed RS512 by `signer`.
pub fn client_assertion(
    client_id: &str,
    token_endpoint: &str,
    signer: &dyn ClientSigner,
    now: i64,
) -> Result<Zeroizing<String>> {
    let header = json!({ "alg": "RS512", "typ": "JWT" });
    let claims = json!({
        "iss": client_id,
        "sub": client_id,
        "aud": token_endpoint,
        "jti": random_token()?.as_str(),
        "iat": now,
        "exp": now + ASSERTION_LIFE_S,
    });
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let signature = signer.sign_rs512(input.as_bytes())?;
    if signature.is_empty() {
        return Err(auth_failed("the client signer gave no signature"));
    }
    Ok(Zeroizing::new(format!("{input}.{}", B64.encode(signature))))
}

#[derive(Deserialize)]
struct RawClaims {
    sub: String,
    exp: i64,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    vot: Option<String>,
    #[serde(default)]
    vtm: Option<String>,
    #[serde(default)]
    nhs_number: Option<String>,
}

/// Check an ID token against the issuer's keys (`jwks`): RS512 only, a key the set
/// names, the issuer, the audience (`client_id`), the expiry (a minute's leeway),
/// the nonce when one is expected, and a vector of trust with its trust mark.
pub fn verify_id_token(
    token: &str,
    jwks: &JwkSet,
    issuer: &Issuer,
    client_id: &str,
    nonce: Option<&str>,
) -> Result<IdToken> {
    let bad = |why: &str| auth_failed(format!("the ID token was refused: {why}"));
    let header = jsonwebtoken::decode_header(token).map_err(|_| bad("it is not a JWT"))?;
    if header.alg != Algorithm::RS512 {
        return Err(bad("it is not signed RS512"));
    }
    let jwk = match &header.kid {
        Some(kid) => jwks.find(kid),
        None if jwks.keys.len() == 1 => jwks.keys.first(),
        None => None,
    }
    .ok_or_else(|| bad("no key of the issuer's signed it"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| bad("the issuer's key is not usable"))?;
    let mut validation = Validation::new(Algorithm::RS512);
    validation.set_issuer(&[issuer.issuer.as_str()]);
    validation.set_audience(&[client_id]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = LEEWAY_S;
    let data = jsonwebtoken::decode::<RawClaims>(token, &key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::InvalidSignature => bad("its signature does not hold"),
            K::ExpiredSignature => bad("it has expired"),
            K::InvalidIssuer => bad("another issuer made it"),
            K::InvalidAudience => bad("it was made for another client"),
            _ => bad("its claims are not an ID token's"),
        }
    })?;
    let c = data.claims;
    if let Some(want) = nonce {
        let got = c.nonce.as_deref().unwrap_or_default();
        if !crate::keys::same_secret(got.as_bytes(), want.as_bytes()) {
            return Err(bad("its nonce is not this sign-in's"));
        }
    }
    let vot = c.vot.ok_or_else(|| bad("it carries no vector of trust"))?;
    let level = Level::of_vector(&vot).ok_or_else(|| bad("its vector of trust is unknown"))?;
    let vtm = c
        .vtm
        .filter(|m| is_secure_url(m))
        .ok_or_else(|| bad("it carries no trust mark"))?;
    Ok(IdToken {
        sub: c.sub,
        vot,
        vtm,
        level,
        nhs_number: c.nhs_number,
        exp: c.exp,
    })
}

/// The issuer's published keys.
pub async fn keys(http: &Http, issuer: &Issuer) -> Result<JwkSet> {
    let resp = http.send(|| http.client().get(&issuer.jwks_uri)).await?;
    if resp.status != 200 {
        return Err(auth_failed(format!(
            "the issuer's keys answered {}",
            resp.status
        )));
    }
    serde_json::from_slice(&resp.body)
        .map_err(|_| auth_failed("the issuer's keys are not a JWK set"))
}

/// Post a token request authenticated by a fresh client assertion; check the answer
/// and its ID token.
async fn token_request(
    http: &Http,
    issuer: &Issuer,
    client_id: &str,
    mut form: Vec<(&str, String)>,
    nonce: Option<&str>,
) -> Result<TokenSet> {
    let signer = client_signer(client_id)?;
    let assertion = client_assertion(client_id, &issuer.token_endpoint, &*signer, now_unix())?;
    form.push(("client_id", client_id.to_string()));
    form.push(("client_assertion_type", ASSERTION_TYPE.to_string()));
    form.push(("client_assertion", assertion.to_string()));
    let sent = http
        .send(|| http.client().post(&issuer.token_endpoint).form(&form))
        .await;
    for (_, value) in form.iter_mut() {
        zeroize::Zeroize::zeroize(value);
    }
    let resp = sent?;
    let v: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
    if resp.status != 200 {
        return Err(auth_failed(format!(
            "NHS login's token endpoint answered {} ({}); sign in again",
            resp.status,
            v["error"].as_str().unwrap_or("an error")
        )));
    }
    let access = v["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| auth_failed("the token response has no access token"))?;
    // A sign-in (with its nonce) must bring an ID token; a refresh may.
    let id = match (v["id_token"].as_str(), nonce) {
        (Some(id_token), _) => {
            let jwks = keys(http, issuer).await?;
            Some(verify_id_token(id_token, &jwks, issuer, client_id, nonce)?)
        }
        (None, Some(_)) => return Err(auth_failed("the token response has no ID token")),
        (None, None) => None,
    };
    Ok(TokenSet {
        access: Zeroizing::new(access.to_string()),
        expires_in: v["expires_in"].as_i64().unwrap_or(3600).max(1),
        refresh: v["refresh_token"]
            .as_str()
            .map(|r| Zeroizing::new(r.to_string())),
        id,
    })
}

/// Finish a sign-in with the address the browser was sent back to: check the state,
/// exchange the code (with the PKCE verifier and a client assertion), check the ID
/// token, require a P9 identity, and find the NHS number (in the ID token, else from
/// UserInfo).
pub async fn complete(
    http: &Http,
    issuer: &Issuer,
    client_id: &str,
    pending: &Pending,
    redirected_to: &str,
) -> Result<SignedIn> {
    if let Some(err) = query_value(redirected_to, "error") {
        return Err(auth_failed(format!(
            "NHS login refused the sign-in ({err})"
        )));
    }
    let state = query_value(redirected_to, "state").unwrap_or_default();
    if !crate::keys::same_secret(state.as_bytes(), pending.state.as_bytes()) {
        return Err(auth_failed(
            "the redirect's state does not match this sign-in",
        ));
    }
    let code = Zeroizing::new(
        query_value(redirected_to, "code")
            .ok_or_else(|| Error::invalid("the redirect URL carries no code"))?,
    );
    let tokens = token_request(
        http,
        issuer,
        client_id,
        vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.to_string()),
            ("redirect_uri", pending.redirect_uri.clone()),
            ("code_verifier", pending.verifier.to_string()),
        ],
        Some(&pending.nonce),
    )
    .await?;
    let id = tokens
        .id
        .as_ref()
        .ok_or_else(|| auth_failed("the token response has no ID token"))?;
    if id.level < Level::P9 {
        return Err(auth_failed(format!(
            "NHS login proved this identity to {:?} only; GP record access needs P9 (a full identity check in the NHS App or NHS login)",
            id.level
        )));
    }
    let nhs_number = match id.nhs_number.clone() {
        Some(n) => n,
        None => userinfo_nhs_number(http, issuer, &tokens.access).await?,
    };
    if !is_nhs_number(&nhs_number) {
        return Err(auth_failed("NHS login gave no valid NHS number"));
    }
    Ok(SignedIn { tokens, nhs_number })
}

/// Exchange a refresh token for new tokens (with a fresh client assertion).
pub async fn refresh(
    http: &Http,
    issuer: &Issuer,
    client_id: &str,
    refresh_token: &str,
) -> Result<TokenSet> {
    token_request(
        http,
        issuer,
        client_id,
        vec![
            ("grant_type", "refresh_token".into()),
            ("refresh_token", refresh_token.to_string()),
        ],
        None,
    )
    .await
}

/// The NHS number from UserInfo.
async fn userinfo_nhs_number(http: &Http, issuer: &Issuer, access: &str) -> Result<String> {
    let bearer = Zeroizing::new(format!("Bearer {access}"));
    let resp = http
        .send(|| {
            http.client()
                .get(&issuer.userinfo_endpoint)
                .header("authorization", bearer.as_str())
        })
        .await?;
    let v: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
    match (resp.status, v["nhs_number"].as_str()) {
        (200, Some(n)) => Ok(n.to_string()),
        (200, None) => Err(auth_failed("NHS login's UserInfo names no NHS number")),
        (s, _) => Err(auth_failed(format!("NHS login's UserInfo answered {s}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_of_trust_give_their_level() {
        assert_eq!(Level::of_vector("P9.Cp.Cd"), Some(Level::P9));
        assert_eq!(Level::of_vector("P5.Cp.Cd"), Some(Level::P5));
        assert_eq!(Level::of_vector("P0.Cm"), Some(Level::P0));
        assert_eq!(Level::of_vector("P7.Cp"), None);
        assert!(Level::P5 < Level::P9);
    }

    /// An RSA key pair made with OpenSSL (ring cannot make one).
    struct Keys {
        pkcs8: Vec<u8>,
        pkcs1: Vec<u8>,
        n: String,
        e: String,
    }

    fn keys() -> Keys {
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let pkey = openssl::pkey::PKey::from_rsa(rsa.clone()).unwrap();
        Keys {
            pkcs8: pkey.private_key_to_pkcs8().unwrap(),
            pkcs1: rsa.private_key_to_der().unwrap(),
            n: B64.encode(rsa.n().to_vec()),
            e: B64.encode(rsa.e().to_vec()),
        }
    }

    struct RingSigner(ring::signature::RsaKeyPair);

    impl ClientSigner for RingSigner {
        fn sign_rs512(&self, message: &[u8]) -> Result<Vec<u8>> {
            let mut sig = vec![0u8; self.0.public().modulus_len()];
            self.0
                .sign(
                    &ring::signature::RSA_PKCS1_SHA512,
                    &ring::rand::SystemRandom::new(),
                    message,
                    &mut sig,
                )
                .map_err(|_| Error::internal("sign"))?;
            Ok(sig)
        }
    }

    fn issuer() -> Issuer {
        Issuer {
            issuer: "https://auth.example.nhs.uk".into(),
            authorization_endpoint: "https://auth.example.nhs.uk/authorize".into(),
            token_endpoint: "https://auth.example.nhs.uk/token".into(),
            userinfo_endpoint: "https://auth.example.nhs.uk/userinfo".into(),
            jwks_uri: "https://auth.example.nhs.uk/.well-known/jwks.json".into(),
        }
    }

    fn jwks(k: &Keys, kid: &str) -> JwkSet {
        serde_json::from_value(json!({"keys": [{
            "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS512", "n": k.n, "e": k.e
        }]}))
        .unwrap()
    }

    fn claims(nonce: &str) -> Value {
        let now = now_unix();
        json!({
            "iss": "https://auth.example.nhs.uk", "aud": "carry-app", "sub": "a1b2",
            "iat": now, "exp": now + 600, "nonce": nonce,
            "vot": "P9.Cp.Cd", "vtm": "https://auth.example.nhs.uk/trustmark/auth.example.nhs.uk",
            "nhs_number": "9434765919"
        })
    }

    fn signed(k: &Keys, kid: &str, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(Algorithm::RS512);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(
            &header,
            claims,
            &jsonwebtoken::EncodingKey::from_rsa_der(&k.pkcs1),
        )
        .unwrap()
    }

    #[test]
    fn a_client_assertion_is_a_jwt_the_issuer_can_check() {
        let k = keys();
        let signer = RingSigner(ring::signature::RsaKeyPair::from_pkcs8(&k.pkcs8).unwrap());
        let now = now_unix();
        let a = client_assertion("carry-app", &issuer().token_endpoint, &signer, now).unwrap();
        let mut v = Validation::new(Algorithm::RS512);
        v.set_audience(&[issuer().token_endpoint]);
        v.set_issuer(&["carry-app"]);
        let key = DecodingKey::from_rsa_components(&k.n, &k.e).unwrap();
        let got = jsonwebtoken::decode::<Value>(&a, &key, &v).unwrap().claims;
        assert_eq!(got["sub"], "carry-app");
        assert_eq!(
            got["exp"].as_i64().unwrap() - got["iat"].as_i64().unwrap(),
            300
        );
        assert_eq!(got["jti"].as_str().unwrap().len(), 43);
        let b = client_assertion("carry-app", &issuer().token_endpoint, &signer, now).unwrap();
        assert_ne!(a.as_str(), b.as_str(), "a fresh jti each time");
        // Another key's check fails.
        let other = keys();
        let wrong = DecodingKey::from_rsa_components(&other.n, &other.e).unwrap();
        assert!(jsonwebtoken::decode::<Value>(&a, &wrong, &v).is_err());
    }

    #[test]
    fn an_id_token_is_checked_and_each_fault_refused() {
        let k = keys();
        let set = jwks(&k, "k1");
        let iss = issuer();
        let ok = verify_id_token(
            &signed(&k, "k1", &claims("n1")),
            &set,
            &iss,
            "carry-app",
            Some("n1"),
        )
        .unwrap();
        assert_eq!(ok.level, Level::P9);
        assert_eq!(ok.nhs_number.as_deref(), Some("9434765919"));
        assert_eq!(ok.vot, "P9.Cp.Cd");

        let refused = |token: String, nonce: Option<&str>| match verify_id_token(
            &token,
            &set,
            &iss,
            "carry-app",
            nonce,
        ) {
            Err(Error::Auth { reason }) => reason,
            other => panic!("expected Auth, got {other:?}"),
        };
        assert!(refused(signed(&k, "k1", &claims("n1")), Some("n2")).contains("nonce"));
        let mut c = claims("n1");
        c["aud"] = json!("another-app");
        assert!(refused(signed(&k, "k1", &c), Some("n1")).contains("another client"));
        let mut c = claims("n1");
        c["iss"] = json!("https://evil.example");
        assert!(refused(signed(&k, "k1", &c), Some("n1")).contains("another issuer"));
        let mut c = claims("n1");
        c["exp"] = json!(now_unix() - 3600);
        assert!(refused(signed(&k, "k1", &c), Some("n1")).contains("expired"));
        let mut c = claims("n1");
        c.as_object_mut().unwrap().remove("vot");
        assert!(refused(signed(&k, "k1", &c), Some("n1")).contains("vector of trust"));
        let mut c = claims("n1");
        c.as_object_mut().unwrap().remove("vtm");
        assert!(refused(signed(&k, "k1", &c), Some("n1")).contains("trust mark"));
        // Another key, an unknown key id, another algorithm.
        let other = keys();
        assert!(refused(signed(&other, "k1", &claims("n1")), Some("n1")).contains("signature"));
        assert!(refused(signed(&k, "k9", &claims("n1")), Some("n1")).contains("no key"));
        let hs = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS512),
            &claims("n1"),
            &jsonwebtoken::EncodingKey::from_secret(k.n.as_bytes()),
        )
        .unwrap();
        assert!(refused(hs, Some("n1")).contains("RS512"));
        assert!(refused("not.a.jwt".into(), None).contains("not a JWT"));
        // A P5 identity is read as such (the sign-in then refuses it).
        let mut c = claims("n1");
        c["vot"] = json!("P5.Cp.Cd");
        let p5 =
            verify_id_token(&signed(&k, "k1", &c), &set, &iss, "carry-app", Some("n1")).unwrap();
        assert_eq!(p5.level, Level::P5);
    }

    #[test]
    fn the_authorize_address_asks_for_p9_with_pkce_and_a_nonce() {
        let (url, pending) =
            authorize_url(&issuer(), "carry-app", "carry://signed-in", DEFAULT_SCOPE).unwrap();
        let q = |k: &str| query_value(&url, k).unwrap();
        assert_eq!(q("vtr"), RECORD_ACCESS_VTR);
        assert_eq!(q("code_challenge_method"), "S256");
        assert_eq!(q("nonce"), pending.nonce.as_str());
        assert_eq!(q("state"), pending.state.as_str());
        assert_eq!(q("scope"), "openid profile");
        let back = Pending::from_json(&pending.to_json()).unwrap();
        assert_eq!(back.verifier.as_str(), pending.verifier.as_str());
        assert!(authorize_url(&issuer(), "c", "carry://x", "profile").is_err());
        assert!(authorize_url(&issuer(), "c", "no-scheme", "openid").is_err());
        assert!(Pending::from_json("{}").is_err());
    }
}
