//! Codes, tokens and seen client-assertion ids, in memory only (a restart signs
//! everyone out, as a new issuer key would anyway). Everything is keyed by the hex
//! SHA-256 of the secret ([`crate::http::tokens::token_hash`]), never the secret.
//!
//! Each map is bounded: expired entries are dropped on every insert, and a map that is
//! still full refuses the insert ([`NhsError::Unavailable`]). The records of codes
//! and refresh tokens already used are kept as long as the tokens they gave could
//! live, so a replay is recognised; when that record is full its oldest entry goes.
//!
//! One exchange happens under one lock, so a code or refresh token is used once even
//! under concurrent requests. A code used twice, or a spent refresh token used again,
//! revokes every token of its family (the tokens that code gave and their
//! successors), as OAuth 2.0 and NHS login's specification recommend.

use std::collections::HashMap;
use std::sync::Mutex;

use super::error::NhsError;
use super::users::SandboxUser;

/// The most live entries each map holds.
pub const MAX_LIVE: usize = 10_000;

/// A signed-in user's session with one client: what every code and token carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The client it was granted to.
    pub client_id: String,
    /// The scopes granted at sign-in, space-separated.
    pub scope: String,
    /// The user.
    pub user: SandboxUser,
    /// The vector of trust granted, e.g. `P9.Cp.Cd`.
    pub vot: String,
    /// When the user signed in, in seconds since the epoch.
    pub auth_time_s: i64,
}

/// An authorization code's grant, bound to everything the token request must repeat.
#[derive(Debug, Clone)]
pub struct Code {
    /// The session it starts.
    pub session: Session,
    /// The redirect URI of the authorize request, compared as a string.
    pub redirect_uri: String,
    /// The authorize request's nonce, for the ID token.
    pub nonce: String,
    /// The PKCE S256 challenge (base64url).
    pub challenge: String,
    /// When the code expires, in ms since the epoch.
    pub expires_ms: i64,
}

/// What an access token stands for.
#[derive(Debug, Clone)]
pub struct Access {
    /// The session.
    pub session: Session,
    /// The scopes of this token (those of the session, or fewer after a refresh).
    pub scope: String,
    /// When it expires, in ms since the epoch.
    pub expires_ms: i64,
    family: u64,
}

/// A refresh token's grant.
#[derive(Debug, Clone)]
struct Refresh {
    session: Session,
    expires_ms: i64,
    family: u64,
}

/// New tokens to store: each as (hash, expiry in ms since the epoch).
#[derive(Debug, Clone)]
pub struct Issued {
    /// The access token.
    pub access: (String, i64),
    /// The refresh token.
    pub refresh: (String, i64),
}

/// The record of a code or refresh token already used: its family and how long a
/// replay of it is worth recognising.
#[derive(Debug, Clone, Copy)]
struct Spent {
    family: u64,
    until_ms: i64,
}

#[derive(Debug, Default)]
struct Inner {
    codes: HashMap<String, Code>,
    access: HashMap<String, Access>,
    refresh: HashMap<String, Refresh>,
    spent: HashMap<String, Spent>,
    jtis: HashMap<String, i64>,
    next_family: u64,
}

/// Every live grant of the issuer.
#[derive(Debug, Default)]
pub struct Grants(Mutex<Inner>);

/// Too many live grants of one kind.
const FULL: NhsError =
    NhsError::Unavailable("the sandbox holds too many live sign-ins; retry later");

/// Drop expired entries, then whether there is room for one more.
fn room<V>(map: &mut HashMap<String, V>, now_ms: i64, expires: impl Fn(&V) -> i64) -> bool {
    map.retain(|_, v| expires(v) > now_ms);
    map.len() < MAX_LIVE
}

impl Inner {
    /// Remember a spent secret, making room by dropping the record that matters least.
    fn spend(&mut self, hash: String, spent: Spent, now_ms: i64) {
        self.spent.retain(|_, s| s.until_ms > now_ms);
        if self.spent.len() >= MAX_LIVE {
            if let Some(oldest) = self
                .spent
                .iter()
                .min_by_key(|(_, s)| s.until_ms)
                .map(|(k, _)| k.clone())
            {
                self.spent.remove(&oldest);
            }
        }
        self.spent.insert(hash, spent);
    }

    /// Revoke every token of `family`; how many went.
    fn revoke(&mut self, family: u64) -> usize {
        let before = self.access.len() + self.refresh.len();
        self.access.retain(|_, a| a.family != family);
        self.refresh.retain(|_, r| r.family != family);
        before - self.access.len() - self.refresh.len()
    }

    /// Room for one more access token and (if `new_refresh`) one more refresh token.
    fn room_for_tokens(&mut self, now_ms: i64, new_refresh: bool) -> bool {
        room(&mut self.access, now_ms, |a| a.expires_ms)
            && (!new_refresh || room(&mut self.refresh, now_ms, |r| r.expires_ms))
    }

    fn store(&mut self, issued: Issued, session: &Session, scope: &str, family: u64) {
        let (access_hash, access_expires) = issued.access;
        let (refresh_hash, refresh_expires) = issued.refresh;
        self.access.insert(
            access_hash,
            Access {
                session: session.clone(),
                scope: scope.to_string(),
                expires_ms: access_expires,
                family,
            },
        );
        self.refresh.insert(
            refresh_hash,
            Refresh {
                session: session.clone(),
                expires_ms: refresh_expires,
                family,
            },
        );
    }
}

impl Grants {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Store a new code under its hash, unless too many are live.
    pub fn put_code(&self, hash: String, code: Code, now_ms: i64) -> Result<(), NhsError> {
        let mut inner = self.lock();
        if !room(&mut inner.codes, now_ms, |c| c.expires_ms) {
            return Err(FULL);
        }
        inner.codes.insert(hash, code);
        Ok(())
    }

    /// Note a client assertion's `jti` (by its key) until the assertion expires;
    /// refused if it was seen before.
    pub fn note_jti(&self, key: &str, expires_ms: i64, now_ms: i64) -> Result<(), NhsError> {
        let mut inner = self.lock();
        if inner.jtis.get(key).is_some_and(|until| *until > now_ms) {
            return Err(NhsError::InvalidClient(
                "the client assertion's jti was used before",
            ));
        }
        if !room(&mut inner.jtis, now_ms, |until| *until) {
            return Err(FULL);
        }
        inner.jtis.insert(key.to_string(), expires_ms);
        Ok(())
    }

    /// Exchange the code of `hash` for tokens: it must be live, issued to
    /// `client_id` for `redirect_uri`, and `verifier_matches` its challenge. Then
    /// `mint` makes the tokens (and the answer) from it, and the code is spent. A
    /// refusal before `mint` leaves the code as it was, except a code already spent:
    /// its tokens are revoked.
    pub fn redeem_code<R>(
        &self,
        hash: &str,
        client_id: &str,
        redirect_uri: &str,
        verifier_matches: impl FnOnce(&str) -> bool,
        now_ms: i64,
        mint: impl FnOnce(&Code) -> Result<(R, Issued), NhsError>,
    ) -> Result<R, NhsError> {
        let mut inner = self.lock();
        let found = inner
            .codes
            .get(hash)
            .filter(|c| c.expires_ms > now_ms)
            .cloned();
        let Some(code) = found else {
            if let Some(spent) = inner.spent.remove(hash) {
                let revoked = inner.revoke(spent.family);
                tracing::warn!(
                    revoked,
                    "nhs-login: an authorization code was used twice; its tokens are revoked"
                );
                return Err(NhsError::InvalidGrant("the code was already used"));
            }
            inner.codes.remove(hash);
            return Err(NhsError::InvalidGrant("the code is unknown or expired"));
        };
        if code.session.client_id != client_id {
            return Err(NhsError::InvalidGrant(
                "the code was issued to another client",
            ));
        }
        if code.redirect_uri != redirect_uri {
            return Err(NhsError::InvalidGrant(
                "redirect_uri differs from the authorize request's",
            ));
        }
        if !verifier_matches(&code.challenge) {
            return Err(NhsError::InvalidGrant(
                "code_verifier does not match the code_challenge",
            ));
        }
        if !inner.room_for_tokens(now_ms, true) {
            return Err(FULL);
        }
        let (answer, issued) = mint(&code)?;
        let family = inner.next_family;
        inner.next_family += 1;
        inner.codes.remove(hash);
        let until_ms = issued.refresh.1;
        inner.spend(hash.to_string(), Spent { family, until_ms }, now_ms);
        inner.store(issued, &code.session, &code.session.scope, family);
        Ok(answer)
    }

    /// Rotate the refresh token of `hash`, issued to `client_id`: `mint` makes new
    /// tokens from its session, and the old one is spent. A spent one presented again
    /// revokes its family; one of another client changes nothing.
    pub fn rotate_refresh<R>(
        &self,
        hash: &str,
        client_id: &str,
        now_ms: i64,
        mint: impl FnOnce(&Session) -> Result<(R, Issued, String), NhsError>,
    ) -> Result<R, NhsError> {
        let mut inner = self.lock();
        let found = inner
            .refresh
            .get(hash)
            .filter(|r| r.expires_ms > now_ms)
            .cloned();
        let Some(old) = found else {
            if let Some(spent) = inner.spent.remove(hash) {
                let revoked = inner.revoke(spent.family);
                tracing::warn!(
                    revoked,
                    "nhs-login: a spent refresh token was used again; its family is revoked"
                );
                return Err(NhsError::InvalidGrant("the refresh token was already used"));
            }
            inner.refresh.remove(hash);
            return Err(NhsError::InvalidGrant(
                "the refresh token is unknown or expired",
            ));
        };
        if old.session.client_id != client_id {
            return Err(NhsError::InvalidGrant(
                "the refresh token was issued to another client",
            ));
        }
        if !inner.room_for_tokens(now_ms, false) {
            return Err(FULL);
        }
        let (answer, issued, scope) = mint(&old.session)?;
        inner.refresh.remove(hash);
        let until_ms = old.expires_ms;
        inner.spend(
            hash.to_string(),
            Spent {
                family: old.family,
                until_ms,
            },
            now_ms,
        );
        inner.store(issued, &old.session, &scope, old.family);
        Ok(answer)
    }

    /// The live access token of `hash`, if any.
    pub fn access(&self, hash: &str, now_ms: i64) -> Option<Access> {
        self.lock()
            .access
            .get(hash)
            .filter(|a| a.expires_ms > now_ms)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nhs_login::vectors::Level;

    fn session(client: &str) -> Session {
        Session {
            client_id: client.into(),
            scope: "openid profile".into(),
            user: SandboxUser {
                nhs_number: "9912003888".into(),
                proofing: Level::P9,
                given_name: "G".into(),
                family_name: "F".into(),
                birthdate: "1980-01-01".into(),
            },
            vot: "P9.Cp.Cd".into(),
            auth_time_s: 0,
        }
    }

    fn code(client: &str, expires_ms: i64) -> Code {
        Code {
            session: session(client),
            redirect_uri: "http://127.0.0.1/cb".into(),
            nonce: "n".into(),
            challenge: "c".into(),
            expires_ms,
        }
    }

    fn issued(tag: &str, expires_ms: i64) -> Issued {
        Issued {
            access: (format!("a-{tag}"), expires_ms),
            refresh: (format!("r-{tag}"), expires_ms),
        }
    }

    #[test]
    fn a_code_works_once_and_a_replay_revokes_its_tokens() {
        let g = Grants::default();
        g.put_code("h".into(), code("app", 100), 0).unwrap();
        let redeem = |verifier_ok: bool, tag: &'static str| {
            g.redeem_code(
                "h",
                "app",
                "http://127.0.0.1/cb",
                |_| verifier_ok,
                10,
                |_| Ok(((), issued(tag, 1000))),
            )
        };
        assert!(matches!(redeem(false, "x"), Err(NhsError::InvalidGrant(_))));
        redeem(true, "1").unwrap();
        assert!(g.access("a-1", 20).is_some());
        assert!(g.access("a-1", 1000).is_none(), "expired");
        assert!(matches!(redeem(true, "2"), Err(NhsError::InvalidGrant(_))));
        assert!(g.access("a-1", 20).is_none(), "revoked by the replay");
    }

    #[test]
    fn a_code_of_another_client_or_uri_is_left_alone() {
        let g = Grants::default();
        g.put_code("h".into(), code("app", 100), 0).unwrap();
        let wrong_client = g.redeem_code(
            "h",
            "other",
            "http://127.0.0.1/cb",
            |_| true,
            1,
            |_| Ok(((), issued("x", 1000))),
        );
        assert!(matches!(wrong_client, Err(NhsError::InvalidGrant(_))));
        let wrong_uri = g.redeem_code(
            "h",
            "app",
            "http://127.0.0.1/other",
            |_| true,
            1,
            |_| Ok(((), issued("x", 1000))),
        );
        assert!(matches!(wrong_uri, Err(NhsError::InvalidGrant(_))));
        assert!(g
            .redeem_code(
                "h",
                "app",
                "http://127.0.0.1/cb",
                |_| true,
                1,
                |_| Ok(((), issued("1", 1000)))
            )
            .is_ok());
        let late = Grants::default();
        late.put_code("h".into(), code("app", 100), 0).unwrap();
        assert!(late
            .redeem_code(
                "h",
                "app",
                "http://127.0.0.1/cb",
                |_| true,
                100,
                |_| Ok(((), issued("1", 1000)))
            )
            .is_err());
    }

    #[test]
    fn refresh_tokens_rotate_and_a_reuse_revokes_the_family() {
        let g = Grants::default();
        g.put_code("h".into(), code("app", 100), 0).unwrap();
        g.redeem_code(
            "h",
            "app",
            "http://127.0.0.1/cb",
            |_| true,
            1,
            |_| Ok(((), issued("1", 1000))),
        )
        .unwrap();
        let rotate = |hash: &str, client: &str, tag: &'static str| {
            g.rotate_refresh(hash, client, 2, |s| {
                Ok(((), issued(tag, 1000), s.scope.clone()))
            })
        };
        assert!(rotate("r-1", "other", "x").is_err());
        rotate("r-1", "app", "2").unwrap();
        assert!(g.access("a-2", 3).is_some() && g.access("a-1", 3).is_some());
        assert!(matches!(
            rotate("r-1", "app", "3"),
            Err(NhsError::InvalidGrant(_))
        ));
        assert!(g.access("a-1", 3).is_none() && g.access("a-2", 3).is_none());
        assert!(rotate("r-2", "app", "4").is_err(), "the successor went too");
    }

    #[test]
    fn maps_are_bounded_and_jtis_are_single_use() {
        let g = Grants::default();
        for i in 0..MAX_LIVE {
            g.put_code(format!("h{i}"), code("app", 100), 0).unwrap();
        }
        assert!(matches!(
            g.put_code("one more".into(), code("app", 100), 0),
            Err(NhsError::Unavailable(_))
        ));
        g.put_code("after expiry".into(), code("app", 300), 200)
            .unwrap();
        g.note_jti("j", 100, 0).unwrap();
        assert!(matches!(
            g.note_jti("j", 100, 50),
            Err(NhsError::InvalidClient(_))
        ));
        g.note_jti("j", 300, 150).unwrap();
    }
}
