//! Scopes and the claims they release, as NHS login's interface specification and its
//! table of scopes and claims name them. `profile` gives `nhs_number`, `birthdate`,
//! `family_name` and `identity_proofing_level`; `basic_demographics` the same without
//! the NHS number (the two are mutually exclusive); `profile_extended` gives
//! `given_name`; `email` and `phone` the verified address and number (and whether the
//! number matches the NHS's records: never, for a synthetic one). Demographics and
//! the NHS number are released only for users proven to P5 or P9; a P0 user's tokens
//! carry `identity_proofing_level` "P0" and nothing more about them.

use serde_json::{json, Map, Value};

use super::grants::Session;

/// The scopes this issuer serves, in the order a granted scope lists them. Any other
/// scope a client asks for is ignored, as the specification says.
pub const SCOPES: [&str; 6] = [
    "openid",
    "profile",
    "basic_demographics",
    "profile_extended",
    "email",
    "phone",
];

/// The claims the issuer may put in an ID token or the UserInfo answer.
pub const CLAIMS: [&str; 20] = [
    "iss",
    "aud",
    "sub",
    "exp",
    "iat",
    "auth_time",
    "jti",
    "nonce",
    "vot",
    "vtm",
    "nhs_number",
    "birthdate",
    "family_name",
    "given_name",
    "identity_proofing_level",
    "email",
    "email_verified",
    "phone_number",
    "phone_number_verified",
    "phone_number_pds_matched",
];

/// The scope granted for a requested one: the known scopes it names, in [`SCOPES`]
/// order. It must name `openid`, and not both `profile` and `basic_demographics`.
pub fn granted_scope(requested: &str) -> Result<String, &'static str> {
    let asked: Vec<&str> = requested.split_whitespace().collect();
    if !asked.contains(&"openid") {
        return Err("scope must contain openid");
    }
    if asked.contains(&"profile") && asked.contains(&"basic_demographics") {
        return Err("profile and basic_demographics cannot be asked for together");
    }
    Ok(SCOPES
        .iter()
        .filter(|s| asked.contains(s))
        .copied()
        .collect::<Vec<_>>()
        .join(" "))
}

/// Whether the space-separated `scope` holds `one`.
pub fn has(scope: &str, one: &str) -> bool {
    scope.split_whitespace().any(|s| s == one)
}

/// The NHS number an access token of `session` with `scope` asserts: only with
/// `profile`, and only for a user proven to P5 or P9.
pub fn released_nhs_number<'a>(session: &'a Session, scope: &str) -> Option<&'a str> {
    (has(scope, "profile") && session.user.demographics_released())
        .then_some(session.user.nhs_number.as_str())
}

/// Add the demographic claims `scope` releases for the session's user.
fn demographics(claims: &mut Map<String, Value>, session: &Session, scope: &str, userinfo: bool) {
    let user = &session.user;
    let profile = has(scope, "profile");
    let basic = has(scope, "basic_demographics");
    if profile || basic {
        claims.insert(
            "identity_proofing_level".into(),
            json!(user.proofing.as_str()),
        );
        if user.demographics_released() {
            claims.insert("family_name".into(), json!(user.family_name));
            claims.insert("birthdate".into(), json!(user.birthdate));
        }
    }
    if let Some(nhs) = released_nhs_number(session, scope) {
        claims.insert("nhs_number".into(), json!(nhs));
    }
    if userinfo && has(scope, "profile_extended") && user.demographics_released() {
        claims.insert("given_name".into(), json!(user.given_name));
    }
}

/// The claims common to the ID and access tokens.
pub struct Stamp<'a> {
    /// The issuer.
    pub iss: &'a str,
    /// The trust mark URL of the issuer (`vtm`).
    pub vtm: &'a str,
    /// Issued at, in seconds since the epoch.
    pub iat: i64,
    /// Expiry, in seconds since the epoch.
    pub exp: i64,
    /// The token's unique id.
    pub jti: &'a str,
}

fn base(stamp: &Stamp<'_>, session: &Session) -> Map<String, Value> {
    let mut c = Map::new();
    c.insert("iss".into(), json!(stamp.iss));
    c.insert("sub".into(), json!(session.user.sub()));
    c.insert("aud".into(), json!(session.client_id));
    c.insert("iat".into(), json!(stamp.iat));
    c.insert("exp".into(), json!(stamp.exp));
    c.insert("jti".into(), json!(stamp.jti));
    c.insert("auth_time".into(), json!(session.auth_time_s));
    c.insert("vot".into(), json!(session.vot));
    c.insert("vtm".into(), json!(stamp.vtm));
    c
}

/// An ID token's claims: who signed in, how, and (by scope) their demographics.
pub fn id_token(stamp: &Stamp<'_>, session: &Session, nonce: &str) -> Value {
    let mut c = base(stamp, session);
    c.insert("nonce".into(), json!(nonce));
    demographics(&mut c, session, &session.scope, false);
    Value::Object(c)
}

/// An access token's claims (NHS login's access tokens are signed JWTs too): the
/// session, its scope, and the NHS number if `profile` releases it.
pub fn access_token(stamp: &Stamp<'_>, session: &Session, scope: &str) -> Value {
    let mut c = base(stamp, session);
    c.insert("scope".into(), json!(scope));
    if let Some(nhs) = released_nhs_number(session, scope) {
        c.insert("nhs_number".into(), json!(nhs));
    }
    Value::Object(c)
}

/// The UserInfo answer for an access token of `session` with `scope`.
pub fn userinfo(iss: &str, session: &Session, scope: &str) -> Value {
    let sub = session.user.sub();
    let mut c = Map::new();
    c.insert("iss".into(), json!(iss));
    c.insert("aud".into(), json!(session.client_id));
    c.insert("sub".into(), json!(sub));
    demographics(&mut c, session, scope, true);
    // Synthetic contact details: a reserved example domain, and a number from the
    // range Ofcom keeps for drama (07700 900000 to 900999).
    if has(scope, "email") {
        c.insert(
            "email".into(),
            json!(format!("sandbox-{}@example.com", &sub[..12])),
        );
        c.insert("email_verified".into(), json!(true));
    }
    if has(scope, "phone") {
        let n = u32::from_str_radix(&sub[..4], 16).unwrap_or(0) % 1000;
        c.insert("phone_number".into(), json!(format!("+447700900{n:03}")));
        c.insert("phone_number_verified".into(), json!(true));
        // There is no PDS record to match a synthetic number against.
        c.insert("phone_number_pds_matched".into(), json!(false));
    }
    Value::Object(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nhs_login::users::SandboxUser;
    use crate::nhs_login::vectors::Level;

    fn session(level: Level, scope: &str) -> Session {
        Session {
            client_id: "app".into(),
            scope: scope.into(),
            user: SandboxUser {
                nhs_number: "9912003888".into(),
                proofing: level,
                given_name: "Given".into(),
                family_name: "Family".into(),
                birthdate: "1980-01-01".into(),
            },
            vot: format!("{}.Cp.Cd", level.as_str()),
            auth_time_s: 1,
        }
    }

    #[test]
    fn scopes_keep_the_known_ones_and_need_openid() {
        assert_eq!(
            granted_scope("email openid gp_registration_details profile").unwrap(),
            "openid profile email"
        );
        assert!(granted_scope("profile").is_err());
        assert!(granted_scope("openid profile basic_demographics").is_err());
    }

    #[test]
    fn demographics_follow_scope_and_proofing() {
        let p9 = session(Level::P9, "openid profile profile_extended email phone");
        let info = userinfo("https://x", &p9, &p9.scope);
        assert_eq!(info["nhs_number"], "9912003888");
        assert_eq!(info["family_name"], "Family");
        assert_eq!(info["given_name"], "Given");
        assert_eq!(info["identity_proofing_level"], "P9");
        assert_eq!(info["email_verified"], true);
        assert!(info["phone_number"]
            .as_str()
            .unwrap()
            .starts_with("+447700900"));
        let p0 = session(Level::P0, "openid profile profile_extended");
        let info = userinfo("https://x", &p0, &p0.scope);
        assert_eq!(info["identity_proofing_level"], "P0");
        assert!(info.get("nhs_number").is_none() && info.get("given_name").is_none());
        let basic = session(Level::P5, "openid basic_demographics");
        let stamp = Stamp {
            iss: "https://x",
            vtm: "https://x/trustmark/x",
            iat: 1,
            exp: 2,
            jti: "j",
        };
        let id = id_token(&stamp, &basic, "n");
        assert_eq!(id["birthdate"], "1980-01-01");
        assert!(id.get("nhs_number").is_none());
        assert_eq!(id["nonce"], "n");
        let only_openid = session(Level::P9, "openid");
        let id = id_token(&stamp, &only_openid, "n");
        assert!(id.get("identity_proofing_level").is_none());
        assert_eq!(id["vot"], "P9.Cp.Cd");
        let access = access_token(&stamp, &p9, "openid profile");
        assert_eq!(access["nhs_number"], "9912003888");
        assert_eq!(access["scope"], "openid profile");
    }
}
