//! The mock NHS login as a client meets it: the real binary on a free port, a client
//! key made here with OpenSSL and registered with `--nhs-login-client`, client
//! assertions made with jsonwebtoken, and the ID token checked against the published
//! JWK Set. Then each refusal on purpose, with its error code, and a check that it
//! changed nothing the client could still use.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
mod common;

use std::collections::HashMap;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use common::{raw, start, Answer, Server};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Value};

const NHS_NUMBER: &str = "9912003888";
const REDIRECT: &str = "http://127.0.0.1:53682/callback";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client: its id and the private key it signs assertions with.
struct Client {
    id: String,
    key: EncodingKey,
}

/// A fresh RSA key pair: the private key for jsonwebtoken, the public key written as
/// PEM (SubjectPublicKeyInfo) to `dir/name.pem`.
fn key_pair(dir: &Path, name: &str) -> (EncodingKey, String) {
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, rsa.public_key_to_pem().unwrap()).unwrap();
    let key = EncodingKey::from_rsa_pem(&rsa.private_key_to_pem().unwrap()).unwrap();
    (key, path.display().to_string())
}

/// A server with one registered client, `app`.
fn server_with_client(dir: &Path) -> (Server, Client) {
    let (key, path) = key_pair(dir, "app");
    let server = start(dir, &["--nhs-login-client", &format!("app={path}")]);
    (
        server,
        Client {
            id: "app".into(),
            key,
        },
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn random() -> String {
    let mut b = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).unwrap();
    B64.encode(b)
}

/// A client assertion with these claims, signed by `key` with RS512.
fn assertion_with(key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::RS512), claims, key).unwrap()
}

/// A good client assertion of `client` for the server's token endpoint.
fn assertion(server: &Server, client: &Client) -> String {
    assertion_with(
        &client.key,
        &json!({
            "iss": client.id, "sub": client.id, "aud": format!("{}/nhs-login/token", server.base),
            "jti": random(), "iat": now(), "exp": now() + 120,
        }),
    )
}

fn query(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A PKCE verifier and its S256 challenge.
fn pkce() -> (String, String) {
    let verifier = random();
    let challenge = B64.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    (verifier, challenge)
}

/// GET /nhs-login/authorize with the usual parameters, `extra` added or replacing.
fn authorize(server: &Server, challenge: &str, extra: &[(&str, &str)]) -> Answer {
    let mut params: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", "app"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile profile_extended"),
        ("state", "the-state"),
        ("nonce", "the-nonce"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("sandbox_user", NHS_NUMBER),
    ];
    for (k, v) in extra {
        params.retain(|(key, _)| key != k);
        if !v.is_empty() {
            params.push((k, v));
        }
    }
    raw(
        &server.base,
        "GET",
        &format!("/nhs-login/authorize?{}", query(&params)),
        &[],
        None,
        b"",
    )
}

/// The query parameters of a redirect's Location.
fn redirected(a: &Answer) -> HashMap<String, String> {
    assert_eq!(a.status, 302, "{}", a.text);
    let location = a.header("location").unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// A code for the default sandbox user, and its verifier.
fn new_code(server: &Server, extra: &[(&str, &str)]) -> (String, String) {
    let (verifier, challenge) = pkce();
    let back = redirected(&authorize(server, &challenge, extra));
    assert_eq!(back["state"], "the-state");
    (back["code"].clone(), verifier)
}

/// POST /nhs-login/token with `pairs` as a form.
fn token(server: &Server, pairs: &[(&str, &str)]) -> Answer {
    raw(
        &server.base,
        "POST",
        "/nhs-login/token",
        &[],
        Some("application/x-www-form-urlencoded"),
        query(pairs).as_bytes(),
    )
}

/// Exchange `code` with this assertion and these overrides.
fn exchange(
    server: &Server,
    code: &str,
    verifier: &str,
    assertion: &str,
    extra: &[(&str, &str)],
) -> Answer {
    let mut pairs = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
    ];
    for (k, v) in extra {
        pairs.retain(|(key, _)| key != k);
        pairs.push((k, v));
    }
    token(server, &pairs)
}

fn userinfo(server: &Server, access: Option<&str>) -> Answer {
    let auth = access.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|h| vec![("authorization", h)])
        .unwrap_or_default();
    raw(
        &server.base,
        "GET",
        "/nhs-login/userinfo",
        &headers,
        None,
        b"",
    )
}

/// The error code of a JSON refusal, checking its status.
fn refused(a: &Answer, status: u16) -> String {
    assert_eq!(a.status, status, "{}", a.text);
    assert_eq!(a.header("cache-control"), Some("no-store"));
    a.json()["error"].as_str().unwrap().to_string()
}

/// The issuer's published key for `kid`.
fn published_key(server: &Server, kid: &str) -> DecodingKey {
    let jwks = common::call(
        &server.base,
        "GET",
        "/nhs-login/.well-known/jwks.json",
        None,
        None,
    )
    .json();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("the token's kid is published");
    assert_eq!(jwk["alg"], "RS512");
    DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())
        .unwrap()
}

/// A token of the issuer, verified against its JWK Set (RS512, iss, aud, exp).
fn verified(server: &Server, jwt: &str) -> Value {
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(header.alg, Algorithm::RS512);
    let key = published_key(server, &header.kid.unwrap());
    let mut v = Validation::new(Algorithm::RS512);
    v.set_issuer(&[format!("{}/nhs-login", server.base)]);
    v.set_audience(&["app"]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Value>(jwt, &key, &v).unwrap().claims
}

#[test]
fn discovery_and_keys_are_published_without_any_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let iss = format!("{}/nhs-login", server.base);
    let d = common::call(
        &server.base,
        "GET",
        "/nhs-login/.well-known/openid-configuration",
        None,
        None,
    );
    assert_eq!(d.status, 200);
    let d = d.json();
    assert_eq!(d["issuer"], iss);
    assert_eq!(d["authorization_endpoint"], format!("{iss}/authorize"));
    assert_eq!(d["token_endpoint"], format!("{iss}/token"));
    assert_eq!(d["userinfo_endpoint"], format!("{iss}/userinfo"));
    assert_eq!(d["jwks_uri"], format!("{iss}/.well-known/jwks.json"));
    assert_eq!(d["response_types_supported"], json!(["code"]));
    assert_eq!(
        d["grant_types_supported"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(d["id_token_signing_alg_values_supported"], json!(["RS512"]));
    assert_eq!(
        d["token_endpoint_auth_methods_supported"],
        json!(["private_key_jwt"])
    );
    assert_eq!(
        d["token_endpoint_auth_signing_alg_values_supported"],
        json!(["RS512"])
    );
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    let scopes = d["scopes_supported"].as_array().unwrap();
    for s in ["openid", "profile", "email", "phone", "profile_extended"] {
        assert!(scopes.contains(&json!(s)), "{s}");
    }
    let claims = d["claims_supported"].as_array().unwrap();
    for c in ["nhs_number", "identity_proofing_level", "vot", "vtm"] {
        assert!(claims.contains(&json!(c)), "{c}");
    }
    assert!(d["vot_values_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("P9.Cp.Cd")));

    let jwks = common::call(
        &server.base,
        "GET",
        "/nhs-login/.well-known/jwks.json",
        None,
        None,
    )
    .json();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "RS512");
    assert!(key["kid"].as_str().is_some_and(|k| !k.is_empty()));
    let n = B64.decode(key["n"].as_str().unwrap()).unwrap();
    assert!(n.len() >= 256, "an RSA key of 2048 bits or more");
    assert_eq!(key["e"], "AQAB");

    // The trust mark every token's vtm names is published too.
    let vtm = d["vtm"].as_str().unwrap();
    let path = vtm.strip_prefix(&server.base).unwrap();
    let mark = common::call(&server.base, "GET", path, None, None);
    assert_eq!(mark.status, 200);
    assert_eq!(mark.json()["P"], json!(["P0", "P5", "P9"]));

    // With no client registered, every token request is refused.
    let unknown = Client {
        id: "app".into(),
        key: key_pair(dir.path(), "unregistered").0,
    };
    let a = exchange(
        &server,
        "x",
        &"v".repeat(43),
        &assertion(&server, &unknown),
        &[],
    );
    assert_eq!(refused(&a, 401), "invalid_client");
}

#[test]
fn a_sandbox_user_signs_in_and_the_tokens_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = server_with_client(dir.path());
    let (code, verifier) = new_code(&server, &[]);
    // The client_id may be left out of the form: the assertion's iss names the client.
    let t = exchange(&server, &code, &verifier, &assertion(&server, &client), &[]);
    assert_eq!(t.status, 200, "{}", t.text);
    assert_eq!(t.header("cache-control"), Some("no-store"));
    assert_eq!(t.header("pragma"), Some("no-cache"));
    let t = t.json();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 300);
    assert_eq!(t["scope"], "openid profile profile_extended");

    let id = verified(&server, t["id_token"].as_str().unwrap());
    assert_eq!(id["nonce"], "the-nonce");
    assert_eq!(id["vot"], "P9.Cp.Cd");
    assert_eq!(
        id["vtm"],
        format!(
            "{0}/nhs-login/trustmark/{1}",
            server.base,
            server.base.trim_start_matches("http://")
        )
    );
    assert_eq!(id["identity_proofing_level"], "P9");
    assert_eq!(id["nhs_number"], NHS_NUMBER);
    assert_eq!(id["family_name"], "User");
    assert_eq!(id["birthdate"], "1980-01-01");
    let sub = id["sub"].as_str().unwrap();
    assert!(sub.len() == 64 && !sub.contains(NHS_NUMBER));
    assert!(id["exp"].as_i64().unwrap() > now());
    assert!(id["auth_time"].as_i64().unwrap() <= now());
    assert!(id["jti"].as_str().is_some());

    // NHS login's access tokens are signed JWTs too.
    let access = t["access_token"].as_str().unwrap();
    let claims = verified(&server, access);
    assert_eq!(claims["scope"], "openid profile profile_extended");
    assert_eq!(claims["vot"], "P9.Cp.Cd");

    let info = userinfo(&server, Some(access));
    assert_eq!(info.status, 200, "{}", info.text);
    let info = info.json();
    assert_eq!(info["sub"], sub);
    assert_eq!(info["nhs_number"], NHS_NUMBER);
    assert_eq!(info["given_name"], "Sandbox");
    assert_eq!(info["family_name"], "User");
    assert_eq!(info["birthdate"], "1980-01-01");
    assert_eq!(info["identity_proofing_level"], "P9");

    // The same person has the same sub on every run.
    let again = dir.path().join("again");
    std::fs::create_dir_all(&again).unwrap();
    let (other, other_client) = server_with_client(&again);
    let (code, verifier) = new_code(&other, &[]);
    let t2 = exchange(
        &other,
        &code,
        &verifier,
        &assertion(&other, &other_client),
        &[("client_id", "app")],
    );
    assert_eq!(
        verified(&other, t2.json()["id_token"].as_str().unwrap())["sub"],
        sub
    );

    // A refresh rotates the refresh token and gives a new access token, without an
    // ID token (NHS login issues those for codes only).
    let refresh = t["refresh_token"].as_str().unwrap();
    let r = token(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("scope", "openid profile"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &assertion(&server, &client)),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = r.json();
    assert!(r.get("id_token").is_none());
    assert_eq!(r["scope"], "openid profile");
    assert_ne!(r["refresh_token"], t["refresh_token"]);
    let fresh = r["access_token"].as_str().unwrap();
    let info = userinfo(&server, Some(fresh)).json();
    assert_eq!(info["nhs_number"], NHS_NUMBER);
    assert!(
        info.get("given_name").is_none(),
        "profile_extended was dropped"
    );

    // A P5 user who may sign in at P5 gets a P5 vector, and their demographics.
    let (code, verifier) = new_code(
        &server,
        &[
            ("sandbox_proofing", "P5"),
            ("sandbox_family", "Jones"),
            ("sandbox_birthdate", "1991-02-03"),
            ("vtr", r#"["P5.Cp.Cd","P9.Cp.Cd"]"#),
        ],
    );
    let t = exchange(&server, &code, &verifier, &assertion(&server, &client), &[]).json();
    let id = verified(&server, t["id_token"].as_str().unwrap());
    assert_eq!(id["vot"], "P5.Cp.Cd");
    assert_eq!(id["identity_proofing_level"], "P5");
    assert_eq!(id["family_name"], "Jones");
    assert_eq!(id["birthdate"], "1991-02-03");
}

#[test]
fn the_authorize_endpoint_refuses_on_purpose() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _client) = server_with_client(dir.path());
    let (_, challenge) = pkce();

    // An unknown client or redirect URI: a JSON 400, nobody redirected.
    let a = authorize(&server, &challenge, &[("client_id", "nobody")]);
    assert_eq!(refused(&a, 400), "invalid_request");
    assert!(a.header("location").is_none());
    let a = authorize(
        &server,
        &challenge,
        &[("redirect_uri", "https://evil.example/cb")],
    );
    assert_eq!(refused(&a, 400), "invalid_request");
    assert!(a.header("location").is_none());

    // After that, refusals go back to the client with the state.
    let back = |extra: &[(&str, &str)]| redirected(&authorize(&server, &challenge, extra));
    let p5_only_p9 = back(&[("sandbox_proofing", "P5")]);
    assert_eq!(p5_only_p9["error"], "access_denied");
    assert_eq!(p5_only_p9["state"], "the-state");
    assert!(!p5_only_p9.contains_key("code"));
    let p5_explicit = back(&[
        ("sandbox_proofing", "P5"),
        ("vtr", r#"["P9.Cp.Cd","P9.Cm"]"#),
    ]);
    assert_eq!(p5_explicit["error"], "access_denied");
    for (extra, error) in [
        (vec![("sandbox_user", "9912003889")], "invalid_request"),
        (vec![("sandbox_user", "12345")], "invalid_request"),
        (vec![("sandbox_proofing", "P7")], "invalid_request"),
        (vec![("nonce", "")], "invalid_request"),
        (vec![("code_challenge", "")], "invalid_request"),
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("vtr", "P9.Cp.Cd")], "invalid_request"),
        (vec![("scope", "profile")], "invalid_scope"),
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (
            vec![("scope", "openid profile basic_demographics")],
            "invalid_scope",
        ),
        (
            vec![("sandbox_user", ""), ("prompt", "none")],
            "sso_login_required",
        ),
    ] {
        let b = back(&extra);
        assert_eq!(b["error"], error, "{extra:?}");
        assert!(!b.contains_key("code"), "{extra:?}");
    }
    let no_state = back(&[("state", "")]);
    assert_eq!(no_state["error"], "invalid_request");
    assert!(!no_state.contains_key("state"));

    // Without sandbox_user: a page saying how the sandbox signs in.
    let page = authorize(&server, &challenge, &[("sandbox_user", "")]);
    assert_eq!(page.status, 200);
    assert!(page.text.contains("sandbox_user"), "{}", page.text);
}

#[test]
fn the_token_endpoint_refuses_on_purpose_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = server_with_client(dir.path());
    let token_url = format!("{}/nhs-login/token", server.base);
    let (code, verifier) = new_code(&server, &[]);
    let claims = |aud: &str, iat: i64, exp: i64| json!({ "iss": "app", "sub": "app", "aud": aud, "jti": random(), "iat": iat, "exp": exp });

    // Client authentication: every failure is invalid_client, and the code stays good.
    let (stranger_key, _) = key_pair(dir.path(), "stranger");
    let stranger = Client {
        id: "stranger".into(),
        key: stranger_key,
    };
    let cases = [
        ("unknown client", assertion(&server, &stranger)),
        (
            "wrong signing key",
            assertion_with(&stranger.key, &claims(&token_url, now(), now() + 60)),
        ),
        (
            "wrong aud",
            assertion_with(
                &client.key,
                &claims(&format!("{}/other", server.base), now(), now() + 60),
            ),
        ),
        (
            "expired",
            assertion_with(&client.key, &claims(&token_url, now() - 120, now() - 60)),
        ),
        (
            "lives too long",
            assertion_with(&client.key, &claims(&token_url, now(), now() + 600)),
        ),
        (
            "RS256",
            jsonwebtoken::encode(
                &Header::new(Algorithm::RS256),
                &claims(&token_url, now(), now() + 60),
                &client.key,
            )
            .unwrap(),
        ),
        ("not a JWT", "not.a.jwt".to_string()),
    ];
    for (what, bad) in &cases {
        let a = exchange(&server, &code, &verifier, bad, &[]);
        assert_eq!(refused(&a, 401), "invalid_client", "{what}");
    }
    let a = exchange(
        &server,
        &code,
        &verifier,
        &assertion(&server, &client),
        &[("client_assertion_type", "client_secret_post")],
    );
    assert_eq!(refused(&a, 401), "invalid_client");

    // A replayed jti: the first use authenticates (and fails on its code), the second
    // does not authenticate at all.
    let once = assertion(&server, &client);
    let a = exchange(&server, "no-such-code", &verifier, &once, &[]);
    assert_eq!(refused(&a, 400), "invalid_grant");
    let a = exchange(&server, &code, &verifier, &once, &[]);
    assert_eq!(refused(&a, 401), "invalid_client");

    // The grant: wrong verifier and wrong redirect URI are invalid_grant.
    let a = exchange(&server, &code, &pkce().0, &assertion(&server, &client), &[]);
    assert_eq!(refused(&a, 400), "invalid_grant");
    let a = exchange(
        &server,
        &code,
        &verifier,
        &assertion(&server, &client),
        &[("redirect_uri", "http://127.0.0.1:53682/other")],
    );
    assert_eq!(refused(&a, 400), "invalid_grant");
    let a = token(
        &server,
        &[
            ("grant_type", "password"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &assertion(&server, &client)),
        ],
    );
    assert_eq!(refused(&a, 400), "unsupported_grant_type");

    // After all that the code still works, once.
    let good = exchange(&server, &code, &verifier, &assertion(&server, &client), &[]);
    assert_eq!(good.status, 200, "{}", good.text);
    let good = good.json();
    let access = good["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&server, Some(access)).status, 200);

    // A refresh token rotates; presented again it is invalid_grant.
    let refresh = |token_: &str| {
        token(
            &server,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", token_),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &assertion(&server, &client)),
            ],
        )
    };
    let first = good["refresh_token"].as_str().unwrap();
    let a = refresh(&format!("{first}x"));
    assert_eq!(refused(&a, 400), "invalid_grant");
    let rotated = refresh(first);
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let rotated = rotated.json();
    let a = refresh(first);
    assert_eq!(refused(&a, 400), "invalid_grant");
    // That reuse revoked the family, as OAuth and the spec advise: the rotated tokens
    // stop working too.
    let a = refresh(rotated["refresh_token"].as_str().unwrap());
    assert_eq!(refused(&a, 400), "invalid_grant");
    assert_eq!(
        userinfo(&server, rotated["access_token"].as_str()).status,
        401
    );

    // A code used twice is invalid_grant, and the tokens it gave are revoked.
    let (code, verifier) = new_code(&server, &[]);
    let t = exchange(&server, &code, &verifier, &assertion(&server, &client), &[]).json();
    let a = exchange(&server, &code, &verifier, &assertion(&server, &client), &[]);
    assert_eq!(refused(&a, 400), "invalid_grant");
    assert_eq!(userinfo(&server, t["access_token"].as_str()).status, 401);

    // A form that is not one, or repeats a parameter.
    let a = raw(
        &server.base,
        "POST",
        "/nhs-login/token",
        &[],
        Some("application/json"),
        b"{}",
    );
    assert_eq!(refused(&a, 400), "invalid_request");
    let a = raw(
        &server.base,
        "POST",
        "/nhs-login/token",
        &[],
        Some("application/x-www-form-urlencoded"),
        b"grant_type=authorization_code&grant_type=refresh_token",
    );
    assert_eq!(refused(&a, 400), "invalid_request");
}

#[test]
fn userinfo_needs_a_live_access_token() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _client) = server_with_client(dir.path());
    for token in [None, Some("made-up"), Some("")] {
        let a = userinfo(&server, token);
        assert_eq!(refused(&a, 401), "invalid_token", "{token:?}");
        assert!(a
            .header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer")));
    }
    // Nothing the server logged names the NHS number or a token.
    let (code, verifier) = new_code(&server, &[]);
    let _ = exchange(&server, &code, &verifier, "x.y.z", &[]);
    let log = server.log();
    assert!(!log.contains(NHS_NUMBER), "the log names an NHS number");
    assert!(!log.contains(&code), "the log names a code");
}
