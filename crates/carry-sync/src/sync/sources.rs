//! Provider sources as the vault keeps them, and their credentials.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use zeroize::Zeroizing;

use super::discover::Capabilities;
use super::state::SyncState;
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::store::{ensure_source, SourceKind};
use crate::time::now_unix;

/// What kind of provider a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// A general practice.
    Gp,
    /// A hospital.
    Hospital,
    /// A social-care provider.
    SocialCare,
    /// Anything else.
    Other,
}

impl ProviderKind {
    /// The id used in the vault, the CLI and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Gp => "gp",
            ProviderKind::Hospital => "hospital",
            ProviderKind::SocialCare => "social-care",
            ProviderKind::Other => "other",
        }
    }

    /// Parse an id.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "gp" => Ok(ProviderKind::Gp),
            "hospital" => Ok(ProviderKind::Hospital),
            "social-care" => Ok(ProviderKind::SocialCare),
            "other" => Ok(ProviderKind::Other),
            _ => Err(Error::invalid(format!(
                "unknown provider kind '{s}': use gp, hospital, social-care or other"
            ))),
        }
    }
}

/// How a source's record is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Api {
    /// FHIR R4 searches, paged and checkpointed.
    #[default]
    Fhir,
    /// GP Connect Access Record: Structured (England): the whole record in one
    /// `$gpc.getstructuredrecord` answer, FHIR STU3, converted to R4 on arrival with
    /// the original kept. Signs in with NHS login.
    GpConnect,
}

impl Api {
    /// `fhir` or `gp-connect`.
    pub fn as_str(self) -> &'static str {
        match self {
            Api::Fhir => "fhir",
            Api::GpConnect => "gp-connect",
        }
    }

    /// Parse an API id.
    pub fn parse(s: &str) -> Result<Api> {
        match s {
            "fhir" => Ok(Api::Fhir),
            "gp-connect" => Ok(Api::GpConnect),
            other => Err(Error::invalid(format!(
                "unknown API '{other}': use fhir or gp-connect"
            ))),
        }
    }
}

/// How a source signs in.
#[derive(Clone, PartialEq, Eq)]
pub enum AuthKind {
    /// SMART App Launch, standalone patient flow, as a public client.
    Smart {
        /// The client id registered with the provider.
        client_id: String,
        /// The scopes to ask for.
        scope: String,
    },
    /// NHS login (OpenID Connect, England's identity service): the authorization code
    /// flow with PKCE and a nonce, a P9 identity, `private_key_jwt` with the app's
    /// key ([`crate::sync::nhs_login`]).
    NhsLogin {
        /// The client id NHS login registered for the app.
        client_id: String,
        /// The issuer (its discovery document is under it).
        issuer: String,
        /// The scopes to ask for (with `openid`).
        scope: String,
    },
    /// A static bearer token, as some test servers use.
    Bearer {
        /// The token. Kept only in the vault.
        token: Zeroizing<String>,
    },
    /// No sign-in, as open test servers run.
    None,
}

impl std::fmt::Debug for AuthKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AuthKind {
    /// `smart`, `nhs-login`, `bearer` or `none`.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthKind::Smart { .. } => "smart",
            AuthKind::NhsLogin { .. } => "nhs-login",
            AuthKind::Bearer { .. } => "bearer",
            AuthKind::None => "none",
        }
    }
}

/// The client id and scopes Carry asks for by default.
pub const DEFAULT_CLIENT_ID: &str = "carry";
/// Read the record, create Observations (the patient's readings), keep signing in.
pub const DEFAULT_SCOPE: &str = "launch/patient patient/*.rs patient/Observation.cu offline_access";

/// A source to add.
#[derive(Debug, Clone)]
pub struct NewSource {
    /// A short name the person chooses, unique in the profile (e.g. `gp`).
    pub name: String,
    /// What kind of provider it is.
    pub kind: ProviderKind,
    /// The FHIR R4 base URL (`https://…/fhir`; `http://` only on loopback).
    pub base_url: String,
    /// How to sign in.
    pub auth: AuthKind,
    /// The Patient id at this provider, for sources without SMART (SMART tells it).
    pub patient_id: Option<String>,
    /// Whether the person's readings are sent here (default: only to a GP).
    pub push: Option<bool>,
    /// How the record is read.
    pub api: Api,
}

/// A source as the app lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceInfo {
    /// Its name.
    pub name: String,
    /// What kind of provider it is.
    pub kind: ProviderKind,
    /// The FHIR base URL.
    pub base_url: String,
    /// `smart`, `nhs-login`, `bearer` or `none`.
    pub auth: String,
    /// How the record is read.
    pub api: Api,
    /// Whether readings are sent here.
    pub push: bool,
    /// Whether it holds usable credentials (always true without SMART).
    pub signed_in: bool,
    /// The Patient id at this provider, once known.
    pub patient_id: Option<String>,
    /// Its state.
    pub state: SyncState,
    /// Why the last sync stopped, if it failed.
    pub last_error: Option<String>,
    /// When it last synced completely (Unix seconds).
    pub last_synced_at: Option<i64>,
}

/// A source with what the engine needs (not for apps: it holds credentials).
#[derive(Clone)]
pub(crate) struct Source {
    pub id: i64,
    pub info: SourceInfo,
    pub client_id: String,
    pub scope: String,
    pub capabilities: Option<Capabilities>,
    pub discovered_at: Option<i64>,
    pub since: Option<String>,
    pub full_synced_at: Option<i64>,
    /// Per-type checkpoints (type-by-type mode): type → the newest `lastUpdated` seen.
    pub type_since: std::collections::BTreeMap<String, String>,
    /// When deletions were last listed (Unix seconds).
    pub deletions_at: Option<i64>,
    /// For NHS login: the issuer.
    pub issuer: Option<String>,
}

const NAME_MAX: usize = 40;

/// Whether `url` is https, or plain http to this machine (127.0.0.1, localhost or
/// [::1], for development), judged by the parsed host and not by its spelling.
pub(crate) fn is_secure_url(url: &str) -> bool {
    match url::Url::parse(url) {
        Ok(u) => match u.scheme() {
            "https" => u.host_str().is_some(),
            "http" => matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")),
            _ => false,
        },
        Err(_) => false,
    }
}

fn check_base_url(url: &str) -> Result<String> {
    let url = url.trim().trim_end_matches('/');
    if !is_secure_url(url) {
        return Err(Error::invalid(
            "the FHIR base URL must start with https:// (http:// only for 127.0.0.1 or localhost)",
        ));
    }
    if url.len() > 512 || url.contains(['?', '#', ' ']) {
        return Err(Error::invalid(
            "the FHIR base URL must be a plain URL without a query or fragment",
        ));
    }
    Ok(url.to_string())
}

pub(crate) fn add(profile: &Profile, s: &NewSource) -> Result<SourceInfo> {
    let name = s.name.trim();
    if name.is_empty()
        || name.len() > NAME_MAX
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error::invalid(format!(
            "a source name is 1 to {NAME_MAX} letters, digits, - or _"
        )));
    }
    let base = check_base_url(&s.base_url)?;
    let signs_in = matches!(s.auth, AuthKind::Smart { .. } | AuthKind::NhsLogin { .. });
    if !signs_in && s.patient_id.is_none() {
        return Err(Error::invalid(
            "without SMART or NHS login sign-in, give the Patient id at this provider",
        ));
    }
    if s.api == Api::GpConnect && !matches!(s.auth, AuthKind::NhsLogin { .. }) {
        return Err(Error::invalid(
            "a GP Connect record is reached through NHS login: --auth nhs-login --issuer URL",
        ));
    }
    if s.api == Api::GpConnect && s.push == Some(true) {
        return Err(Error::invalid(
            "GP Connect's structured record is read-only: readings cannot be sent there",
        ));
    }
    if let AuthKind::NhsLogin { issuer, scope, .. } = &s.auth {
        if !is_secure_url(issuer) {
            return Err(Error::invalid(
                "the NHS login issuer must start with https:// (http:// only for 127.0.0.1 or localhost)",
            ));
        }
        if !scope.split_whitespace().any(|w| w == "openid") {
            return Err(Error::invalid("an NHS login scope must include openid"));
        }
    }
    if let Some(p) = &s.patient_id {
        if !(1..=64).contains(&p.len())
            || !p
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(Error::invalid("the Patient id is not a FHIR id"));
        }
    }
    let push = s
        .push
        .unwrap_or(s.kind == ProviderKind::Gp && s.api == Api::Fhir);
    let (client_id, scope, issuer) = match &s.auth {
        AuthKind::Smart { client_id, scope } => (client_id.clone(), scope.clone(), None),
        AuthKind::NhsLogin {
            client_id,
            issuer,
            scope,
        } => (
            client_id.clone(),
            scope.clone(),
            Some(issuer.trim().trim_end_matches('/').to_string()),
        ),
        _ => (String::new(), String::new(), None),
    };
    profile.vault().write(|c| {
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let taken: bool = tx
            .query_row(
                "SELECT 1 FROM sources WHERE kind = 'provider' AND name = ?1",
                [name],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if taken {
            return Err(Error::Conflict {
                reason: format!("a source named '{name}' exists already"),
            });
        }
        let id = ensure_source(&tx, SourceKind::Provider, name, now_unix())?;
        tx.execute(
            "INSERT INTO provider_sources (source_id, kind, base_url, auth, client_id, scope, push, patient_id, issuer, api)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![id, s.kind.as_str(), base, s.auth.as_str(), client_id, scope, push, s.patient_id, issuer, s.api.as_str()],
        )?;
        if let AuthKind::Bearer { token } = &s.auth {
            tx.execute(
                "INSERT INTO source_tokens (source_id, access_token) VALUES (?1, ?2)",
                params![id, token.as_str()],
            )?;
        }
        tx.commit()?;
        Ok(())
    })?;
    get(profile, name).map(|s| s.info)
}

/// Point source `name` at a new base URL. Resources stay where they are: they are
/// known by type and id, not by the address they came from.
pub(crate) fn set_url(profile: &Profile, name: &str, url: &str) -> Result<SourceInfo> {
    let base = check_base_url(url)?;
    profile.vault().write(|c| {
        let n = c.execute(
            "UPDATE provider_sources SET base_url = ?2, capabilities = NULL, discovered_at = NULL
             WHERE source_id = (SELECT id FROM sources WHERE kind = 'provider' AND name = ?1)",
            params![name, base],
        )?;
        if n == 0 {
            return Err(Error::not_found(format!("source '{name}'")));
        }
        // A run in flight holds the old address in its next link: start it afresh.
        c.execute(
            "DELETE FROM sync_checkpoints
             WHERE source_id = (SELECT id FROM sources WHERE kind = 'provider' AND name = ?1)",
            [name],
        )?;
        Ok(())
    })?;
    get(profile, name).map(|s| s.info)
}

const SELECT: &str =
    "SELECT s.id, s.name, p.kind, p.base_url, p.auth, p.push, p.patient_id, p.state,
       p.last_error, p.last_synced_at, p.client_id, p.scope, p.capabilities, p.since,
       p.full_synced_at, t.access_token IS NOT NULL OR t.refresh_token IS NOT NULL,
       p.discovered_at, p.type_since, p.deletions_at, p.issuer, p.api
     FROM provider_sources p JOIN sources s ON s.id = p.source_id
     LEFT JOIN source_tokens t ON t.source_id = p.source_id";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Source, String, String)> {
    let auth: String = r.get(4)?;
    let api = match r.get::<_, String>(20)?.as_str() {
        "gp-connect" => Api::GpConnect,
        _ => Api::Fhir,
    };
    let has_tokens: bool = r.get(15)?;
    let caps: Option<String> = r.get(12)?;
    let type_since: Option<String> = r.get(17)?;
    Ok((
        Source {
            id: r.get(0)?,
            info: SourceInfo {
                name: r.get(1)?,
                kind: ProviderKind::Other,
                base_url: r.get(3)?,
                signed_in: auth == "none" || has_tokens,
                auth,
                api,
                push: r.get(5)?,
                patient_id: r.get(6)?,
                state: SyncState::Idle,
                last_error: r.get(8)?,
                last_synced_at: r.get(9)?,
            },
            client_id: r.get(10)?,
            scope: r.get(11)?,
            capabilities: caps.and_then(|c| serde_json::from_str(&c).ok()),
            discovered_at: r.get(16)?,
            since: r.get(13)?,
            full_synced_at: r.get(14)?,
            type_since: type_since
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default(),
            deletions_at: r.get(18)?,
            issuer: r.get(19)?,
        },
        r.get(2)?,
        r.get(7)?,
    ))
}

fn finish((mut s, kind, state): (Source, String, String)) -> Result<Source> {
    s.info.kind = ProviderKind::parse(&kind)?;
    s.info.state = SyncState::parse(&state)?;
    Ok(s)
}

pub(crate) fn get_in(c: &Connection, name: &str) -> Result<Source> {
    let found = c
        .query_row(&format!("{SELECT} WHERE s.name = ?1"), [name], row)
        .optional()?
        .ok_or_else(|| Error::not_found(format!("source '{name}'")))?;
    finish(found)
}

pub(crate) fn get(profile: &Profile, name: &str) -> Result<Source> {
    profile.vault().read(|c| get_in(c, name))
}

pub(crate) fn list(profile: &Profile) -> Result<Vec<SourceInfo>> {
    profile.vault().read(|c| {
        let mut stmt = c.prepare(&format!("{SELECT} ORDER BY s.name"))?;
        let rows = stmt
            .query_map([], row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|r| finish(r).map(|s| s.info))
            .collect()
    })
}

pub(crate) fn set_state(
    profile: &Profile,
    name: &str,
    state: SyncState,
    error: Option<&str>,
) -> Result<()> {
    profile.vault().write(|c| {
        c.execute(
            "UPDATE provider_sources SET state = ?2, last_error = ?3
             WHERE source_id = (SELECT id FROM sources WHERE kind = 'provider' AND name = ?1)",
            params![name, state.as_str(), error],
        )?;
        Ok(())
    })
}

pub(crate) fn save_capabilities(profile: &Profile, id: i64, caps: &Capabilities) -> Result<()> {
    let text = serde_json::to_string(caps)?;
    profile.vault().write(|c| {
        c.execute(
            "UPDATE provider_sources SET capabilities = ?2, discovered_at = ?3 WHERE source_id = ?1",
            params![id, text, now_unix()],
        )?;
        Ok(())
    })
}

/// Keep what was learned about a source by trying (its discovery time unchanged).
pub(crate) fn save_learned(profile: &Profile, id: i64, caps: &Capabilities) -> Result<()> {
    let text = serde_json::to_string(caps)?;
    profile.vault().write(|c| {
        c.execute(
            "UPDATE provider_sources SET capabilities = ?2 WHERE source_id = ?1",
            params![id, text],
        )?;
        Ok(())
    })
}

/// The credentials of a source.
#[derive(Default)]
pub(crate) struct Tokens {
    pub access: Option<Zeroizing<String>>,
    pub access_expires_at: Option<i64>,
    pub refresh: Option<Zeroizing<String>>,
    pub pending_login: Option<Zeroizing<String>>,
}

pub(crate) fn tokens(profile: &Profile, id: i64) -> Result<Tokens> {
    profile.vault().read(|c| {
        Ok(c.query_row(
            "SELECT access_token, access_expires_at, refresh_token, pending_login
             FROM source_tokens WHERE source_id = ?1",
            [id],
            |r| {
                Ok(Tokens {
                    access: r.get::<_, Option<String>>(0)?.map(Zeroizing::new),
                    access_expires_at: r.get(1)?,
                    refresh: r.get::<_, Option<String>>(2)?.map(Zeroizing::new),
                    pending_login: r.get::<_, Option<String>>(3)?.map(Zeroizing::new),
                })
            },
        )
        .optional()?
        .unwrap_or_default())
    })
}

/// Replace a source's credentials (and the Patient id the token named).
pub(crate) fn save_tokens(
    profile: &Profile,
    id: i64,
    t: &Tokens,
    patient: Option<&str>,
) -> Result<()> {
    profile.vault().write(|c| {
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO source_tokens (source_id, access_token, access_expires_at, refresh_token, pending_login)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (source_id) DO UPDATE SET access_token = excluded.access_token,
               access_expires_at = excluded.access_expires_at, refresh_token = excluded.refresh_token,
               pending_login = excluded.pending_login",
            params![
                id,
                t.access.as_ref().map(|s| s.as_str()),
                t.access_expires_at,
                t.refresh.as_ref().map(|s| s.as_str()),
                t.pending_login.as_ref().map(|s| s.as_str())
            ],
        )?;
        if let Some(p) = patient {
            tx.execute(
                "UPDATE provider_sources SET patient_id = ?2 WHERE source_id = ?1",
                params![id, p],
            )?;
        }
        tx.commit()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::is_secure_url;

    #[test]
    fn only_https_or_plain_http_to_this_machine_counts_as_secure() {
        for ok in [
            "https://gp.example/fhir",
            "http://127.0.0.1:8080/gp/fhir",
            "http://localhost/fhir",
            "http://[::1]:9/fhir",
        ] {
            assert!(is_secure_url(ok), "{ok}");
        }
        for bad in [
            "http://gp.example/fhir",
            "http://localhost.example.org/fhir",
            "http://127.0.0.1.nip.io/fhir",
            "http://localhost@evil.example/fhir",
            "ftp://gp.example",
            "https://",
            "not a url",
        ] {
            assert!(!is_secure_url(bad), "{bad}");
        }
    }
}
