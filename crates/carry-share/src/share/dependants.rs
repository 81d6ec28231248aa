//! Records a carer keeps for people who have no phone of their own: an elderly parent,
//! a young child. Each is that person's own profile (its own identity, sources,
//! grants, backups and audit log), held on the carer's device in
//! `dependants/<id>/` beside the carer's vault. Its vault key is wrapped by a key in
//! the carer's vault, as a received record's is: unlocking the carer's profile
//! unlocks it, and deleting its folder deletes its data and its key together.
//!
//! The carer is its *keeper*. The keeper's terms (the basis, who decided, the
//! evidence seen, the person's birth date and any end date) are stored in the
//! dependant's own vault, so they travel with the record, and the proxy rules
//! ([`super::proxy`]) are worked out from them: reviews at 11 and 13, suspension at
//! 16, the end date, removal after five years unused. A keeper whose access is not in
//! force may no longer open the record for use, only hand it over.
//!
//! Handing over moves the record to the person's own device with the device-move
//! machinery ([`crate::devices::moving`] in the core); the keeper's copy is then
//! deleted. Keeper and dependant know each other as verified people from the start,
//! so the new owner can grant the keeper access back, or not.

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::document::{Basis, BasisKind};
use super::people::{self, random_b64};
use super::proxy::{self, Notice, Standing, Terms};
use super::received::{create_whole, delete_whole, ReceivedKeyStore};
use crate::audit::{self, AuditEvent};
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::time::{now_unix, rfc3339};
use crate::vault::{identity, meta, VAULT_FILE};

/// The folder, beside the keeper's vault, that holds dependants' records.
pub const DIR: &str = "dependants";
/// The longest name or evidence note kept, in characters.
pub const TEXT_MAX: usize = 500;

const WRAP_AAD: &[u8] = b"carry/vault-key/dependant/v1";
/// In the dependant's vault: the keeper's terms, as JSON.
const TERMS: &str = "keeper_terms";
/// In the dependant's vault: when the keeper last opened it for use.
const USED: &str = "keeper_used_at";
/// In the dependant's vault: up to when the proxy notices were given.
const TOLD: &str = "keeper_told_until";
/// In the dependant's vault: when it was handed over to its owner.
const HANDED: &str = "handed_over_at";

/// What the keeper says when making a record for someone.
#[derive(Debug, Clone)]
pub struct NewDependant {
    /// The person's name.
    pub name: String,
    /// Their date of birth (a FHIR date), if known. Needed for a child (parental
    /// responsibility): reviews at 11 and 13 and the suspension at 16 come from it.
    pub born: Option<String>,
    /// Why the keeper may act for them, with the evidence seen and who decided.
    pub basis: Basis,
    /// When the keeper's access ends (Unix seconds), if an end date was set (a
    /// time-limited attorney, a court order's term).
    pub ends_at: Option<i64>,
}

/// The keeper's terms, stored in the dependant's vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeeperTerms {
    /// The keeper's name.
    pub keeper: String,
    /// The keeper's short id.
    pub keeper_person: String,
    /// The dependant's date of birth (a FHIR date), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub born: Option<String>,
    /// The basis, evidence and who decided.
    pub basis: Basis,
    /// When the keeper began keeping the record (Unix seconds).
    pub since: i64,
    /// When the keeper's access ends (Unix seconds), if an end date was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<i64>,
}

/// A dependant's record, as the keeper's lists show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependant {
    /// The profile id to select it by (`d-` and 12 characters).
    pub profile: String,
    /// Whose record it is.
    pub name: String,
    /// The keeper's terms.
    pub terms: KeeperTerms,
    /// When the keeper last opened it for use (Unix seconds), if ever.
    pub last_used_at: Option<i64>,
    /// Where the keeper's access stands now.
    pub standing: Standing,
    /// The notices still ahead, soonest first.
    pub notices: Vec<Notice>,
}

/// A proxy notice that fell due for one dependant's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DueNotice {
    /// The dependant's profile id.
    pub profile: String,
    /// Their name.
    pub name: String,
    /// The notice.
    pub notice: Notice,
}

/// Why the keeper opens a dependant's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// To read or change it, or sign in to providers for the person: only while the
    /// keeper's access is in force.
    Use,
    /// To hand it over to the person's own device: allowed whatever the standing,
    /// since that is how a suspended or ended keeping is resolved.
    HandOver,
}

impl KeeperTerms {
    /// The proxy rules' view of these terms, with the last use.
    pub fn proxy_terms(&self, last_used_at: Option<i64>) -> Terms {
        Terms {
            basis: self.basis.kind,
            decided_by: self.basis.decided_by.unwrap_or(proxy::Decider::Person),
            granted_at: self.since,
            ends_at: self.ends_at,
            born: self.born.as_deref().and_then(proxy::birth_date),
            last_used_at,
        }
    }
}

/// The folder of the dependant `id` of the keeper whose vault is in `own`.
pub fn dir_of(own: &Path, id: &str) -> PathBuf {
    own.join(DIR).join(id)
}

fn key_store(conn: &Connection) -> Result<ReceivedKeyStore> {
    ReceivedKeyStore::new(conn, WRAP_AAD)
}

fn check_text(what: &str, text: &str) -> Result<()> {
    if text.chars().count() > TEXT_MAX {
        return Err(Error::invalid(format!(
            "the {what} is longer than {TEXT_MAX} characters"
        )));
    }
    Ok(())
}

/// Check what the keeper said, at `now`.
fn check(new: &NewDependant, now: i64) -> Result<()> {
    let name = new.name.trim();
    if name.is_empty() {
        return Err(Error::invalid("give the person's name"));
    }
    check_text("name", name)?;
    if let Some(e) = &new.basis.evidence {
        check_text("evidence note", e)?;
    }
    let born = match &new.born {
        Some(text) => {
            let date = proxy::birth_date(text).ok_or_else(|| {
                Error::invalid(format!(
                    "'{text}' is not a date of birth; write it as YYYY-MM-DD"
                ))
            })?;
            if proxy::midnight(date) > now {
                return Err(Error::invalid("the date of birth is in the future"));
            }
            Some(date)
        }
        None => None,
    };
    if new.basis.kind == BasisKind::ParentalResponsibility {
        let Some(born) = born else {
            return Err(Error::invalid(
                "parental responsibility needs the child's date of birth (--born): \
                 the reviews at 11 and 13 and the suspension at 16 are worked out from it",
            ));
        };
        let sixteen = proxy::birthday(born, proxy::SUSPENSION_AGE).map(proxy::midnight);
        if sixteen.is_some_and(|at| at <= now) {
            return Err(Error::Denied {
                reason: format!(
                    "{name} is 16 or over: parental responsibility no longer gives access to \
                     their record. They decide who sees it; keep it on another basis only if \
                     they lack capacity (lasting-power-of-attorney, court-deputy, best-interests)"
                ),
            });
        }
    }
    if let Some(end) = new.ends_at {
        if end <= now {
            return Err(Error::invalid("the end date is already past"));
        }
    }
    Ok(())
}

/// Make a record for someone with no phone, kept by `own`'s person. The new profile
/// has its own identity; keeper and dependant know each other as verified people;
/// both audit logs record the basis and who decided.
pub fn add(own: &Profile, new: &NewDependant) -> Result<Dependant> {
    let now = now_unix();
    check(new, now)?;
    let name = new.name.trim().to_string();
    let (me, my_name, endpoint, ks) = own.vault().read(|c| {
        Ok((
            identity::get(c)?.public(),
            meta::get(c, "name")?.unwrap_or_default(),
            meta::get(c, "endpoint")?,
            key_store(c)?,
        ))
    })?;
    let terms = KeeperTerms {
        keeper: my_name.clone(),
        keeper_person: me.handle(),
        born: new.born.as_ref().map(|b| b.trim().to_string()),
        basis: Basis {
            kind: new.basis.kind,
            evidence: new
                .basis
                .evidence
                .as_ref()
                .map(|e| e.trim().to_string())
                .filter(|e| !e.is_empty()),
            decided_by: Some(new.basis.decided_by.unwrap_or(proxy::Decider::Person)),
        },
        since: now,
        ends_at: new.ends_at,
    };
    let detail = terms_text(&terms);
    let id = format!("d-{}", random_b64(9)?);
    let relay = endpoint.clone().unwrap_or_default();
    let made = create_whole(&dir_of(own.vault().dir(), &id), &name, &ks, |dep| {
        dep.vault().write(|c| {
            let tx = c.transaction()?;
            meta::set(&tx, TERMS, &serde_json::to_string(&terms)?)?;
            meta::set(&tx, TOLD, &now.to_string())?;
            if let Some(url) = &endpoint {
                meta::set(&tx, "endpoint", url)?;
            }
            let pid = people::upsert_person(&tx, &my_name, &me, &relay)?;
            people::mark_verified(&tx, pid)?;
            audit::append(
                &tx,
                AuditEvent::KeeperRecorded,
                Some(&me.handle()),
                &format!("kept by {my_name}: {detail}"),
            )?;
            tx.commit()?;
            Ok(())
        })
    })?;
    let theirs = made.vault().read(|c| Ok(identity::get(c)?.public()))?;
    own.vault().write(|c| {
        let tx = c.transaction()?;
        let pid = people::upsert_person(&tx, &name, &theirs, &relay)?;
        people::mark_verified(&tx, pid)?;
        audit::append(
            &tx,
            AuditEvent::DependantAdded,
            Some(&theirs.handle()),
            &format!("{id}: {detail}"),
        )?;
        tx.commit()?;
        Ok(())
    })?;
    describe(&id, &made, now)
}

/// The terms in the audit log's words: no health data.
fn terms_text(t: &KeeperTerms) -> String {
    let kind = serde_json::to_value(t.basis.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut s = format!(
        "basis {kind}, decided by {}",
        t.basis
            .decided_by
            .unwrap_or(proxy::Decider::Person)
            .as_str()
    );
    if let Some(e) = &t.basis.evidence {
        s.push_str(&format!(", evidence: {e}"));
    }
    if let Some(end) = t.ends_at {
        s.push_str(&format!(", until {}", rfc3339(end)));
    }
    s
}

/// The dependant `id`'s record as lists show it, at `now`.
fn describe(id: &str, p: &Profile, now: i64) -> Result<Dependant> {
    let (name, terms, used) = p.vault().read(|c| {
        Ok((
            meta::get(c, "name")?.unwrap_or_default(),
            terms_of(c)?,
            meta::get(c, USED)?.and_then(|v| v.parse::<i64>().ok()),
        ))
    })?;
    let rules = terms.proxy_terms(used);
    Ok(Dependant {
        profile: id.to_string(),
        name,
        standing: proxy::standing(&rules, now),
        notices: proxy::notices(&rules)
            .into_iter()
            .filter(|n| n.at > now)
            .collect(),
        terms,
        last_used_at: used,
    })
}

/// The keeper's terms stored in a dependant's vault.
pub fn terms_of(conn: &Connection) -> Result<KeeperTerms> {
    let text = meta::get(conn, TERMS)?
        .ok_or_else(|| Error::not_found("a keeper's terms (this is not a dependant's record)"))?;
    serde_json::from_str(&text).map_err(|e| Error::internal(format!("stored keeper terms: {e}")))
}

/// The keeper's terms, if this vault holds a dependant's record.
pub fn terms_if_any(conn: &Connection) -> Result<Option<KeeperTerms>> {
    match meta::get(conn, TERMS)? {
        Some(_) => terms_of(conn).map(Some),
        None => Ok(None),
    }
}

/// The ids of `own`'s dependants, in name order of their folders.
fn ids(own: &Profile) -> Result<Vec<String>> {
    let root = own.vault().dir().join(DIR);
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // A `.making` folder is a creation cut short: not (yet) a record.
        if name.starts_with("d-")
            && !name.ends_with(".making")
            && entry.path().join(VAULT_FILE).exists()
        {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

fn open_raw(own: &Profile, id: &str) -> Result<Profile> {
    let dir = dir_of(own.vault().dir(), id);
    if !id.starts_with("d-") || id.contains(['/', '\\', '.']) || !dir.join(VAULT_FILE).exists() {
        return Err(Error::not_found(format!(
            "a dependant '{id}'; see carry dependants"
        )));
    }
    let ks = own.vault().read(key_store)?;
    Profile::open(&dir, &ks)
}

/// Every dependant's record `own` keeps, in id order.
pub fn list(own: &Profile) -> Result<Vec<Dependant>> {
    let now = now_unix();
    ids(own)?
        .iter()
        .map(|id| describe(id, &open_raw(own, id)?, now))
        .collect()
}

/// Find a dependant by profile id or (case-insensitive) name.
fn find(own: &Profile, who: &str) -> Result<String> {
    let all = ids(own)?;
    if all.iter().any(|i| i == who) {
        return Ok(who.to_string());
    }
    for id in &all {
        let p = open_raw(own, id)?;
        let name = p
            .vault()
            .read(|c| meta::get(c, "name"))?
            .unwrap_or_default();
        if name.eq_ignore_ascii_case(who.trim()) {
            return Ok(id.clone());
        }
    }
    Err(Error::not_found(format!(
        "a dependant '{who}'; see carry dependants"
    )))
}

/// Open the dependant `who` (profile id or name) for `purpose`. For
/// [`Purpose::Use`], the keeper's access must be in force: suspended at 16, ended or
/// removed for want of use is [`Error::Denied`], saying what to do. Opening for use
/// counts as using the access.
pub fn open(own: &Profile, who: &str, purpose: Purpose) -> Result<Profile> {
    let id = find(own, who)?;
    let p = open_raw(own, &id)?;
    if purpose == Purpose::HandOver {
        return Ok(p);
    }
    let now = now_unix();
    let d = describe(&id, &p, now)?;
    let over = |what: String| Error::Denied {
        reason: format!(
            "{what}. The record stays on this device until it is handed over \
             (carry dependants hand-over {id}) or deleted (carry dependants remove {id})"
        ),
    };
    match d.standing {
        Standing::Active => {}
        Standing::Suspended { .. } => {
            return Err(over(format!(
                "{} turned 16: parental access to their record is suspended, and from now on \
                 they decide who sees it",
                d.name
            )))
        }
        Standing::Ended => {
            return Err(over(format!(
                "your access to {}'s record ended on {}",
                d.name,
                d.terms.ends_at.map(rfc3339).unwrap_or_default()
            )))
        }
        Standing::Removed => {
            return Err(over(format!(
                "your access to {}'s record was not used for {} years, so it was removed",
                d.name,
                proxy::UNUSED_LIMIT_YEARS
            )))
        }
    }
    p.vault().write(|c| meta::set(c, USED, &now.to_string()))?;
    Ok(p)
}

/// The proxy notices that fell due for each dependant since they were last asked
/// for, oldest first; each is given once.
pub fn notices_due(own: &Profile) -> Result<Vec<DueNotice>> {
    let now = now_unix();
    let mut out = Vec::new();
    for id in ids(own)? {
        let p = open_raw(own, &id)?;
        let due = p.vault().write(|c| {
            let tx = c.transaction()?;
            let terms = terms_of(&tx)?;
            let used = meta::get(&tx, USED)?.and_then(|v| v.parse::<i64>().ok());
            let since = meta::get(&tx, TOLD)?
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(terms.since);
            let name = meta::get(&tx, "name")?.unwrap_or_default();
            let due = proxy::due(&terms.proxy_terms(used), since, now);
            meta::set(&tx, TOLD, &now.max(since).to_string())?;
            tx.commit()?;
            Ok((name, due))
        })?;
        out.extend(due.1.into_iter().map(|notice| DueNotice {
            profile: id.clone(),
            name: due.0.clone(),
            notice,
        }));
    }
    out.sort_by_key(|d| d.notice.at);
    Ok(out)
}

/// Mark a dependant's record (opened with [`Purpose::HandOver`]) as handed over to
/// its owner, just before it is sent to their device: the copy they receive says
/// when, and its audit log says who kept it.
pub fn mark_handed_over(dependant: &Profile) -> Result<()> {
    dependant.vault().write(|c| {
        let tx = c.transaction()?;
        let terms = terms_of(&tx)?;
        let now = now_unix();
        meta::set(&tx, HANDED, &now.to_string())?;
        audit::append(
            &tx,
            AuditEvent::HandedOver,
            Some(&terms.keeper_person),
            &format!(
                "handed over to its owner by {}, who kept it since {}",
                terms.keeper,
                rfc3339(terms.since)
            ),
        )?;
        tx.commit()?;
        Ok(())
    })
}

/// When this record was handed over by its keeper, if it was.
pub fn handed_over_at(conn: &Connection) -> Result<Option<i64>> {
    Ok(meta::get(conn, HANDED)?.and_then(|v| v.parse().ok()))
}

/// Delete the dependant `who`'s record from the keeper's device: after a hand-over
/// (`handed_over`), or because the keeping is over. Its data and its key go
/// together; the keeper's audit log says which.
pub fn remove(own: &Profile, who: &str, handed_over: bool) -> Result<String> {
    let id = find(own, who)?;
    let (name, person) = {
        let p = open_raw(own, &id)?;
        let out = p.vault().read(|c| {
            Ok((
                meta::get(c, "name")?.unwrap_or_default(),
                identity::get(c)?.public().handle(),
            ))
        })?;
        p.lock();
        out
    };
    delete_whole(&dir_of(own.vault().dir(), &id))?;
    let (event, detail) = if handed_over {
        (
            AuditEvent::HandedOver,
            format!("{id}: the record is now on its owner's own device; this copy was deleted"),
        )
    } else {
        (
            AuditEvent::DependantRemoved,
            format!("{id}: deleted from this device without a hand-over"),
        )
    };
    own.vault()
        .write(|c| audit::append(c, event, Some(&person), &detail))?;
    Ok(name)
}
