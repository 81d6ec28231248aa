//! Showing a clinician: SMART Health Links (HL7 "SMART Health Cards and Links" IG,
//! STU1) carrying an International Patient Summary.
//!
//! The person picks a preset and an expiry, optionally a passcode. The device builds
//! the summary ([`ips`]), encrypts it as a JWE under a fresh key ([`jwe`]), uploads
//! the ciphertext to the endpoint, and returns the link with the key in its fragment,
//! behind the endpoint's viewer (`https://HOST/view#shlink:/…`), plus a QR code
//! ([`link`]). The endpoint never sees the key. Every opening the endpoint logs comes
//! back into the audit log, once, and at most [`AUDIT_CAP`] of them one by one per
//! link (more are summed up in one row per fetch); requests the endpoint refused come
//! back as a count. A link can be revoked at any time. Receiving ([`open`]) fetches
//! and decrypts a link made by anyone.

pub mod ips;
pub mod jwe;
pub mod link;
mod receive;
mod references;

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use carry_proto::links::{
    AccessEntry, AccessPage, CreateAnswer, CreateRequest, ReplaceFileRequest,
};
use ring::digest::SHA256;
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::audit::{self, AuditEvent};
use crate::error::{Error, Result};
use crate::net::relay::{json_of, json_text, status_error, Relay};
use crate::net::CallOptions;
use crate::profile::db;
use crate::profile::Profile;
use crate::time::now_unix;

pub use ips::{Preset, Summary, SummarySection};
pub use link::{Payload, QrMatrix};
pub use receive::{open, OpenOptions, Opened};

/// The content type of the summary inside the JWE.
pub const FHIR_JSON: &str = "application/fhir+json";
/// The default life of a link: one hour.
pub const DEFAULT_EXPIRY_S: i64 = 3600;
/// The longest life of a link: a year.
pub const MAX_EXPIRY_S: i64 = 366 * 86_400;
/// Openings of one link copied into the audit log one row each; past it, each fetch
/// of the log adds one row that counts the openings it found.
pub const AUDIT_CAP: i64 = 100;
/// The longest recipient copied into the audit log, in characters (the endpoint
/// allows no more).
const RECIPIENT_MAX: usize = 200;

/// What the person asks for when sharing.
#[derive(Debug, Clone)]
pub struct NewShare {
    /// What goes in the summary.
    pub preset: Preset,
    /// How long the link works, in seconds (default an hour, at most a year).
    pub expires_s: Option<i64>,
    /// A passcode the clinician must type (flag `P`).
    pub passcode: Option<String>,
    /// The link works for one successful opening only.
    pub once: bool,
    /// The endpoint's copy follows the record as it changes (flag `L`).
    pub long_lived: bool,
    /// The file is fetched directly, with no manifest step (flag `U`; not with a
    /// passcode).
    pub direct: bool,
    /// A label for the person scanning (off by default: it makes the QR larger).
    pub label: Option<String>,
}

impl Default for NewShare {
    fn default() -> Self {
        NewShare {
            preset: Preset::Emergency,
            expires_s: None,
            passcode: None,
            once: false,
            long_lived: false,
            direct: false,
            label: None,
        }
    }
}

/// One access to a link, as the endpoint logged it: an opening (an endpoint from
/// before refusals were only counted may list those too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// Its number in the link's log.
    pub seq: i64,
    /// When (Unix seconds).
    pub at: i64,
    /// Who the opener said they were. The protocol does not authenticate this: show
    /// it as "claimed by".
    pub recipient: String,
    /// `ok`, `wrong-passcode`, `locked`, `expired`, `revoked` or `inactive`.
    pub outcome: String,
    /// `manifest`, `direct` or `file`.
    pub via: String,
}

impl From<AccessEntry> for Access {
    fn from(a: AccessEntry) -> Self {
        Access {
            seq: a.seq,
            at: a.at,
            recipient: a.recipient,
            outcome: a.outcome,
            via: a.via,
        }
    }
}

/// A link the person made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShareInfo {
    /// Its id.
    pub id: String,
    /// The link to give out (the viewer address with the `shlink:/` payload).
    pub link: String,
    /// The preset it was made from.
    pub preset: String,
    /// Its flags (`L`, `P`, `U`).
    pub flags: String,
    /// The label, if any.
    pub label: Option<String>,
    /// When it stops working (Unix seconds).
    pub expires_at: Option<i64>,
    /// When it was made.
    pub created_at: i64,
    /// `active`, `revoked` or `expired`, as the device knows it.
    pub state: String,
    /// Clinical resources in the summary.
    pub resources: i64,
    /// Accesses the endpoint reported so far: openings.
    pub accesses: i64,
    /// Requests the endpoint refused while the link was in force (wrong passcodes, a
    /// request the link does not serve), as last fetched. Refusals are counted, not
    /// logged one by one, and not at all once the link has ended.
    pub refused: i64,
    /// When the last of those was refused (Unix seconds), as last fetched.
    pub last_refused_at: Option<i64>,
    /// Whether this is the emergency card's link.
    pub emergency_card: bool,
}

/// What the device keeps of a link's access log beside the `shares` row, as JSON in
/// `meta` under `share_log:<id>`: how many openings went into the audit log one by
/// one, the endpoint's count of refusals as last fetched, and the link's state as the
/// endpoint last said (it alone knows a link locked by wrong passcodes or used up).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct LogState {
    /// Openings copied into the audit log one row each (at most [`AUDIT_CAP`]).
    #[serde(default)]
    copied: i64,
    /// Requests refused, as the endpoint last said.
    #[serde(default)]
    refused: i64,
    /// When the last was refused.
    #[serde(default)]
    last_refused_at: Option<i64>,
    /// The link's state at the endpoint, when it last said: `locked`, `used`…
    #[serde(default)]
    endpoint_state: Option<String>,
}

/// A link's state as the device shows it: revoked or expired as the device knows, else
/// locked, used, expired or revoked as the endpoint last said, else active.
fn shown_state(revoked: bool, expired: bool, at_endpoint: Option<&str>) -> &'static str {
    match (revoked, expired, at_endpoint) {
        (true, _, _) => "revoked",
        (_, true, _) => "expired",
        (_, _, Some("locked")) => "locked",
        (_, _, Some("used")) => "used",
        (_, _, Some("expired")) => "expired",
        (_, _, Some("revoked")) => "revoked",
        _ => "active",
    }
}

/// The `meta` key of link `id`'s [`LogState`].
fn log_key(id: &str) -> String {
    format!("share_log:{id}")
}

/// Link `id`'s [`LogState`]; the default when none is kept or it does not parse.
fn log_state(conn: &rusqlite::Connection, id: &str) -> Result<LogState> {
    Ok(crate::vault::meta::get(conn, &log_key(id))?
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_default())
}

/// A recipient as the audit log keeps it: unsafe characters written as `\u{…}` (an
/// endpoint from before it refused them, or a hostile one, may send them), and at
/// most [`RECIPIENT_MAX`] characters.
fn claimed(recipient: &str) -> String {
    crate::text::escaped(recipient, RECIPIENT_MAX).into_owned()
}

/// A new link, with its QR code.
#[derive(Debug, Clone)]
pub struct Created {
    /// The link.
    pub info: ShareInfo,
    /// Its QR code (byte mode, level M).
    pub qr: QrMatrix,
}

/// The summary for `preset` as JSON bytes, with its count of clinical resources.
/// For the emergency card (`card`), built with the contents the person chose
/// ([`crate::prefs::Preferences::emergency_card`]).
fn summary_bytes(
    profile: &Profile,
    preset: &Preset,
    card: bool,
) -> Result<(Zeroizing<Vec<u8>>, usize)> {
    profile.vault().read(|c| {
        let name = crate::vault::meta::get(c, "name")?.unwrap_or_default();
        let contents = if card {
            Some(crate::prefs::load(c)?.emergency_card)
        } else {
            None
        };
        let built = ips::build_with(c, preset, &name, contents.as_ref())?;
        let bytes = serde_json::to_vec(&built.bundle)?;
        Ok((Zeroizing::new(bytes), built.resources))
    })
}

/// The International Patient Summary of the record for `preset`: the FHIR document
/// Bundle a share link carries, to save or hand over as a file. The audit log records
/// that it was made.
pub fn summary_document(profile: &Profile, preset: &Preset) -> Result<serde_json::Value> {
    let built = profile.vault().read(|c| {
        let name = crate::vault::meta::get(c, "name")?.unwrap_or_default();
        ips::build_with(c, preset, &name, None)
    })?;
    profile.vault().write(|c| {
        crate::audit::append(
            c,
            crate::audit::AuditEvent::Exported,
            None,
            &format!(
                "a patient summary ({}, {} resources)",
                preset.as_str(),
                built.resources
            ),
        )
    })?;
    Ok(built.bundle)
}

fn scope_json(preset: &Preset) -> Result<Option<String>> {
    match preset {
        Preset::Custom(s) => Ok(Some(serde_json::to_string(s)?)),
        _ => Ok(None),
    }
}

fn preset_of(name: &str, scope: Option<&str>) -> Result<Preset> {
    match (name, scope) {
        ("custom", Some(s)) => {
            Ok(Preset::Custom(serde_json::from_str(s).map_err(|e| {
                Error::internal(format!("stored scope: {e}"))
            })?))
        }
        (n, _) => Preset::parse(n),
    }
}

async fn connect(profile: &Arc<Profile>, endpoint: &str, options: &CallOptions) -> Result<Relay> {
    let me = db(profile, |p| {
        p.vault().write(|c| crate::vault::identity::get(c))
    })
    .await?;
    let http = options.http()?;
    Relay::connect(http, endpoint, &me).await
}

/// Make a link: build the summary, encrypt it under a fresh key, upload it to
/// `endpoint`, and return the link behind the endpoint's viewer with its QR code.
pub async fn create(
    profile: Arc<Profile>,
    endpoint: &str,
    new: &NewShare,
    options: &CallOptions,
) -> Result<Created> {
    create_inner(profile, endpoint, new, options, false).await
}

async fn create_inner(
    profile: Arc<Profile>,
    endpoint: &str,
    new: &NewShare,
    options: &CallOptions,
    emergency_card: bool,
) -> Result<Created> {
    let expires_s = new.expires_s.unwrap_or(DEFAULT_EXPIRY_S);
    if !(60..=MAX_EXPIRY_S).contains(&expires_s) {
        return Err(Error::invalid(
            "a link lasts from a minute to a year; choose an expiry in that range",
        ));
    }
    let mut flags = String::new();
    if new.long_lived {
        flags.push('L');
    }
    if new.passcode.is_some() {
        flags.push('P');
    }
    if new.direct {
        flags.push('U');
    }
    let flags = link::normalise_flags(&flags)?;
    if let Some(p) = &new.passcode {
        if !(4..=64).contains(&p.chars().count()) {
            return Err(Error::invalid("a passcode is 4 to 64 characters"));
        }
    }
    if new
        .label
        .as_ref()
        .is_some_and(|l| l.chars().count() > link::LABEL_MAX)
    {
        return Err(Error::invalid(format!(
            "a label is at most {} characters",
            link::LABEL_MAX
        )));
    }
    let preset = new.preset.clone();
    let (plain, resources) = {
        let preset = preset.clone();
        db(&profile, move |p| summary_bytes(p, &preset, emergency_card)).await?
    };
    let mut key = Zeroizing::new([0u8; 32]);
    crate::keys::fill_random(key.as_mut())?;
    let file = jwe::encrypt(&key, FHIR_JSON, &plain)?;
    let expires_at = now_unix() + expires_s;
    let relay = connect(&profile, endpoint, options).await?;
    let body = json_text(&CreateRequest {
        expires_at: Some(expires_at),
        file,
        flags: flags.clone(),
        once: new.once,
        passcode: new.passcode.clone(),
    })?;
    let r = relay
        .shl(reqwest::Method::POST, "links", Some(&body))
        .await?;
    if r.status != 201 && r.status != 200 {
        return Err(status_error("creating the link", &r));
    }
    let made: CreateAnswer = json_of("creating the link", &r)?;
    let file_url = format!("{}/shl/m/{}", endpoint.trim_end_matches('/'), made.id);
    let payload = Payload {
        url: if new.direct {
            file_url
        } else {
            made.manifest_url
        },
        flag: Some(flags.clone()).filter(|f| !f.is_empty()),
        key: B64.encode(key.as_ref()),
        exp: Some(expires_at),
        label: new.label.clone(),
        v: None,
    };
    let link = format!(
        "{}/view#{}",
        endpoint.trim_end_matches('/'),
        payload.to_link()?
    );
    let qr = link::qr(&link)?;
    let hash = content_hash(&plain)?;
    let scope = scope_json(&preset)?;
    let (id, link2, preset_name) = (made.id.clone(), link.clone(), preset.as_str().to_string());
    let (ep, label, flags2) = (endpoint.to_string(), new.label.clone(), flags.clone());
    let key_bytes = key.to_vec();
    let info = db(&profile, move |p| {
        p.vault().write(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO shares (id, endpoint, link, preset, scope, flags, key, label,
                   expires_at, created_at, content_hash, resources, emergency_card)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    id,
                    ep,
                    link2,
                    preset_name,
                    scope,
                    flags2,
                    key_bytes,
                    label,
                    expires_at,
                    now_unix(),
                    hash,
                    resources as i64,
                    emergency_card
                ],
            )?;
            audit::append(
                &tx,
                AuditEvent::ShareCreated,
                Some(&short(&id)),
                &format!("{preset_name} summary, {resources} items, flags '{flags2}'"),
            )?;
            let info = info_of(&tx, &id)?;
            tx.commit()?;
            Ok(info)
        })
    })
    .await?;
    Ok(Created { info, qr })
}

/// The short form of a link id used in lists and the audit log.
fn short(id: &str) -> String {
    id.chars().take(10).collect()
}

fn info_of(conn: &rusqlite::Connection, id: &str) -> Result<ShareInfo> {
    let log = log_state(conn, id)?;
    conn.query_row(
        "SELECT id, link, preset, flags, label, expires_at, created_at, revoked_at, resources,
                accesses, emergency_card FROM shares WHERE id = ?1",
        [id],
        |r| {
            let revoked: Option<i64> = r.get(7)?;
            let expires: Option<i64> = r.get(5)?;
            let state = shown_state(
                revoked.is_some(),
                expires.is_some_and(|e| e <= now_unix()),
                log.endpoint_state.as_deref(),
            );
            Ok(ShareInfo {
                id: r.get(0)?,
                link: r.get(1)?,
                preset: r.get(2)?,
                flags: r.get(3)?,
                label: r.get(4)?,
                expires_at: expires,
                created_at: r.get(6)?,
                state: state.into(),
                resources: r.get(8)?,
                accesses: r.get(9)?,
                refused: log.refused,
                last_refused_at: log.last_refused_at,
                emergency_card: r.get(10)?,
            })
        },
    )
    .optional()?
    .ok_or_else(|| Error::not_found(format!("share {id}")))
}

/// Find a link by its id or the start of it (as lists show it).
fn resolve(conn: &rusqlite::Connection, id: &str) -> Result<String> {
    let ids: Vec<String> = conn
        .prepare("SELECT id FROM shares WHERE id = ?1 OR substr(id, 1, length(?1)) = ?1")?
        .query_map([id.trim()], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    match ids.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::not_found(format!("share {id}; see carry shares"))),
        _ => Err(Error::invalid(format!("'{id}' names more than one share"))),
    }
}

/// Every link the person made, newest first.
pub fn list(profile: &Profile) -> Result<Vec<ShareInfo>> {
    profile.vault().read(|c| {
        let ids: Vec<String> = c
            .prepare("SELECT id FROM shares ORDER BY created_at DESC, rowid DESC")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        ids.iter().map(|id| info_of(c, id)).collect()
    })
}

/// The accesses the endpoint logged for a link: fetched, and new ones copied into the
/// audit log (see [`AUDIT_CAP`]).
pub async fn accesses(
    profile: Arc<Profile>,
    endpoint: &str,
    id: &str,
    options: &CallOptions,
) -> Result<Vec<Access>> {
    let idq = id.to_string();
    let id = db(&profile, move |p| p.vault().read(|c| resolve(c, &idq))).await?;
    let relay = connect(&profile, endpoint, options).await?;
    fetch_accesses(&profile, &relay, &id).await
}

/// Every link with the accesses the endpoint logged for it, over one login; new
/// accesses are copied into the audit log. Links the endpoint no longer knows come
/// back with an empty log.
pub async fn list_with_accesses(
    profile: Arc<Profile>,
    endpoint: &str,
    options: &CallOptions,
) -> Result<Vec<(ShareInfo, Vec<Access>)>> {
    let links = db(&profile, list).await?;
    if links.is_empty() {
        return Ok(Vec::new());
    }
    let relay = connect(&profile, endpoint, options).await?;
    let mut out = Vec::with_capacity(links.len());
    for link in links {
        let log = match fetch_accesses(&profile, &relay, &link.id).await {
            Ok(log) => log,
            Err(Error::NotFound { .. }) => {
                out.push((link, Vec::new()));
                continue;
            }
            Err(e) => return Err(e),
        };
        // As the fetch left it: the counts are the endpoint's latest.
        let id = link.id.clone();
        let link = db(&profile, move |p| p.vault().read(|c| info_of(c, &id))).await?;
        out.push((link, log));
    }
    Ok(out)
}

async fn fetch_accesses(profile: &Arc<Profile>, relay: &Relay, id: &str) -> Result<Vec<Access>> {
    // The endpoint answers at most 1,000 entries a page; page on by sequence number.
    let mut all: Vec<Access> = Vec::new();
    let (mut refused, mut last_refused_at, mut at_endpoint) = (None, None, None);
    loop {
        let after = all.last().map_or(0, |a| a.seq);
        let r = relay
            .shl(
                reqwest::Method::GET,
                &format!("links/{id}/accesses?after={after}"),
                None,
            )
            .await?;
        if r.status != 200 {
            return Err(status_error("the access log", &r));
        }
        // `refused` is absent from endpoints that logged refusals row by row.
        let page: AccessPage = json_of("the access log", &r)?;
        let n = page.accesses.len();
        // Each page must follow the last: a log that goes back is not paged on.
        if page.accesses.iter().any(|a| a.seq <= after) {
            return Err(Error::Network {
                reason: "the endpoint's access log is out of order".into(),
                retry_after_s: None,
            });
        }
        all.extend(page.accesses.into_iter().map(Access::from));
        refused = page.refused.or(refused);
        last_refused_at = page.last_refused_at.or(last_refused_at);
        at_endpoint = page.state.or(at_endpoint);
        if n < 1000 {
            break;
        }
    }
    let (id2, log) = (id.to_string(), all.clone());
    db(profile, move |p| {
        p.vault().write(|c| {
            // Immediate: two fetches at once take turns, so none copies an access the
            // other already did.
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let last: i64 = tx.query_row(
                "SELECT last_access FROM shares WHERE id = ?1",
                [&id2],
                |r| r.get(0),
            )?;
            let mut state = log_state(&tx, &id2)?;
            let fresh: Vec<&Access> = log.iter().filter(|a| a.seq > last).collect();
            let party = short(&id2);
            let room = usize::try_from((AUDIT_CAP - state.copied).max(0)).unwrap_or(0);
            let (one_by_one, summed) = fresh.split_at(room.min(fresh.len()));
            for a in one_by_one {
                audit::append(
                    &tx,
                    AuditEvent::ShareAccessed,
                    Some(&party),
                    &format!(
                        "{} via {}, claimed by '{}'",
                        claimed(&a.outcome),
                        claimed(&a.via),
                        claimed(&a.recipient)
                    ),
                )?;
            }
            state.copied += one_by_one.len() as i64;
            if let (Some(first), Some(newest)) = (summed.first(), summed.last()) {
                audit::append(
                    &tx,
                    AuditEvent::ShareAccessed,
                    Some(&party),
                    &format!(
                        "{} more openings (numbers {} to {}), not listed one by one past the first {AUDIT_CAP}",
                        summed.len(),
                        first.seq,
                        newest.seq
                    ),
                )?;
            }
            let newest = fresh.iter().map(|a| a.seq).max().unwrap_or(last).max(last);
            if let Some(n) = refused {
                state.refused = n;
                state.last_refused_at = last_refused_at;
            }
            if let Some(s) = &at_endpoint {
                state.endpoint_state = Some(s.clone());
            }
            crate::vault::meta::set(
                &tx,
                &log_key(&id2),
                &serde_json::to_string(&state)?,
            )?;
            tx.execute(
                "UPDATE shares SET last_access = ?2, accesses = ?3 WHERE id = ?1",
                params![id2, newest, log.len() as i64],
            )?;
            tx.commit()?;
            Ok(())
        })
    })
    .await?;
    Ok(all)
}

/// Revoke a link: the endpoint stops serving it at once.
pub async fn revoke(
    profile: Arc<Profile>,
    endpoint: &str,
    id: &str,
    options: &CallOptions,
) -> Result<ShareInfo> {
    let idq = id.to_string();
    let id = db(&profile, move |p| p.vault().read(|c| resolve(c, &idq))).await?;
    let relay = connect(&profile, endpoint, options).await?;
    let r = relay
        .shl(reqwest::Method::DELETE, &format!("links/{id}"), None)
        .await?;
    if !matches!(r.status, 200 | 204 | 404) {
        return Err(status_error("revoking the link", &r));
    }
    // Pick up what was logged before the revocation.
    let _ = fetch_accesses(&profile, &relay, &id).await;
    db(&profile, move |p| {
        p.vault().write(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE shares SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1",
                params![id, now_unix()],
            )?;
            audit::append(&tx, AuditEvent::ShareRevoked, Some(&short(&id)), "revoked")?;
            let info = info_of(&tx, &id)?;
            tx.commit()?;
            Ok(info)
        })
    })
    .await
}

/// A link in force, as [`refresh`] needs it.
struct LiveLink {
    id: String,
    preset: String,
    scope: Option<String>,
    flags: String,
    key: Zeroizing<Vec<u8>>,
    hash: Vec<u8>,
    emergency_card: bool,
}

/// Keep links current: re-upload the summary of every long-lived link in force
/// whose content changed, and copy new accesses into the audit log. Returns how many
/// links were updated.
pub async fn refresh(profile: Arc<Profile>, endpoint: &str, options: &CallOptions) -> Result<u64> {
    let active: Vec<LiveLink> = db(&profile, |p| {
        p.vault().read(|c| {
            Ok(c.prepare(
                "SELECT id, preset, scope, flags, key, content_hash, emergency_card FROM shares
                     WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?1)",
            )?
            .query_map([now_unix()], |r| {
                Ok(LiveLink {
                    id: r.get(0)?,
                    preset: r.get(1)?,
                    scope: r.get(2)?,
                    flags: r.get(3)?,
                    key: Zeroizing::new(r.get(4)?),
                    hash: r.get(5)?,
                    emergency_card: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?)
        })
    })
    .await?;
    if active.is_empty() {
        return Ok(0);
    }
    let relay = connect(&profile, endpoint, options).await?;
    let mut updated = 0;
    for LiveLink {
        id,
        preset,
        scope,
        flags,
        key,
        hash: old_hash,
        emergency_card,
    } in active
    {
        fetch_accesses(&profile, &relay, &id).await?;
        if !flags.contains('L') {
            continue;
        }
        let preset = preset_of(&preset, scope.as_deref())?;
        let (plain, resources) =
            db(&profile, move |p| summary_bytes(p, &preset, emergency_card)).await?;
        // The summary's timestamps and ids change every time; compare the clinical
        // content (the resources) instead.
        let hash = content_hash(&plain)?;
        if crate::keys::same_secret(&hash, &old_hash) {
            continue;
        }
        let key: [u8; 32] = key
            .as_slice()
            .try_into()
            .map_err(|_| Error::internal("a stored link key is not 32 bytes"))?;
        let file = jwe::encrypt(&key, FHIR_JSON, &plain)?;
        let r = relay
            .shl(
                reqwest::Method::PUT,
                &format!("links/{id}/file"),
                Some(&json_text(&ReplaceFileRequest { file })?),
            )
            .await?;
        if !matches!(r.status, 200 | 204) {
            return Err(status_error("updating the link", &r));
        }
        db(&profile, move |p| {
            p.vault().write(|c| {
                c.execute(
                    "UPDATE shares SET content_hash = ?2, resources = ?3 WHERE id = ?1",
                    params![id, hash, resources as i64],
                )?;
                Ok(())
            })
        })
        .await?;
        updated += 1;
    }
    Ok(updated)
}

/// SHA-256 over the summary's clinical content, leaving out what changes on every
/// build (ids, timestamps of the document itself): the Composition's sections
/// without their entry references (so a section left out or put back counts), the
/// Patient without its id, and the clinical resources.
fn content_hash(plain: &[u8]) -> Result<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(plain)?;
    let mut ctx = ring::digest::Context::new(&SHA256);
    for s in v["entry"][0]["resource"]["section"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let mut s = s.clone();
        if let Some(o) = s.as_object_mut() {
            o.remove("entry");
        }
        ctx.update(s.to_string().as_bytes());
    }
    let mut patient = v["entry"][1]["resource"].clone();
    if let Some(o) = patient.as_object_mut() {
        o.remove("id");
    }
    ctx.update(patient.to_string().as_bytes());
    for e in v["entry"].as_array().into_iter().flatten().skip(3) {
        let mut r = e["resource"].clone();
        for field in ["subject", "patient"] {
            if let Some(o) = r.as_object_mut() {
                o.remove(field);
            }
        }
        ctx.update(r.to_string().as_bytes());
    }
    Ok(ctx.finish().as_ref().to_vec())
}

/// The emergency card: an always-ready `U` link to the emergency summary, kept
/// current, plus the summary itself for an offline rendering (a lock screen).
#[derive(Debug, Clone)]
pub struct EmergencyCard {
    /// The link (long-lived, direct).
    pub info: ShareInfo,
    /// Its QR code.
    pub qr: QrMatrix,
    /// The summary as of now, for showing without a network.
    pub summary: Summary,
}

/// Make or refresh the emergency card in one call: the first call makes a
/// long-lived direct link valid for a year; later calls upload the current summary
/// to it (when it changed) and return it with a fresh offline rendering. A revoked
/// or expired card is replaced by a new one.
pub async fn emergency_card(
    profile: Arc<Profile>,
    endpoint: &str,
    options: &CallOptions,
) -> Result<EmergencyCard> {
    let current: Option<String> = db(&profile, |p| {
        p.vault().read(|c| {
            Ok(c.query_row(
                "SELECT id FROM shares WHERE emergency_card AND revoked_at IS NULL
                 AND (expires_at IS NULL OR expires_at > ?1) ORDER BY created_at DESC LIMIT 1",
                [now_unix() + 86_400],
                |r| r.get(0),
            )
            .optional()?)
        })
    })
    .await?;
    let info = match current {
        Some(id) => {
            refresh(profile.clone(), endpoint, options).await?;
            db(&profile, move |p| p.vault().read(|c| info_of(c, &id))).await?
        }
        None => {
            let new = NewShare {
                preset: Preset::Emergency,
                expires_s: Some(365 * 86_400),
                long_lived: true,
                direct: true,
                ..NewShare::default()
            };
            create_inner(profile.clone(), endpoint, &new, options, true)
                .await?
                .info
        }
    };
    let qr = link::qr(&info.link)?;
    let (plain, _) = db(&profile, |p| summary_bytes(p, &Preset::Emergency, true)).await?;
    let bundle: serde_json::Value = serde_json::from_slice(&plain)?;
    Ok(EmergencyCard {
        info,
        qr,
        summary: ips::summarise(&bundle)?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_link_shows_what_the_endpoint_knows_unless_the_device_knows_better() {
        use super::shown_state;
        assert_eq!(shown_state(false, false, None), "active");
        assert_eq!(shown_state(false, false, Some("locked")), "locked");
        assert_eq!(shown_state(false, false, Some("used")), "used");
        assert_eq!(shown_state(true, false, Some("locked")), "revoked");
        assert_eq!(shown_state(false, true, Some("active")), "expired");
        assert_eq!(shown_state(false, false, Some("nonsense")), "active");
    }

    use super::claimed;

    #[test]
    fn recipients_reach_the_audit_log_on_one_line_and_bounded() {
        assert_eq!(claimed("Dr Zoë O'Brien"), "Dr Zoë O'Brien");
        assert_eq!(
            claimed("Dr A\nok via manifest, claimed by 'Dr B'"),
            "Dr A\\u{a}ok via manifest, claimed by 'Dr B'"
        );
        assert_eq!(claimed("\u{1b}[32mX\u{202e}"), "\\u{1b}[32mX\\u{202e}");
        let long = claimed(&"é".repeat(5_000));
        assert_eq!(long.chars().count(), 201);
        assert!(long.ends_with('…'));
    }
}
