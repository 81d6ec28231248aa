//! Opening and applying what the relay delivers: invite acceptances, grants, record
//! deliveries, revocations, carers' contributions and resync requests.
//!
//! Every envelope is opened and checked (sender, grant, sequence number) before
//! anything is written, and each is applied in one transaction, so a refused or
//! interrupted envelope changes nothing already stored.

use rusqlite::{params, OptionalExtension};
use serde_json::{json, Value};

use super::consent::KEY_SYSTEM;
use super::document::{GrantDoc, Role};
use super::envelope::{self, Body, Message};
use super::people;
use super::received::{self, check_seq};
use crate::audit::{self, AuditEvent};
use crate::crypto::identity::{Identity, PublicIdentity};
use crate::error::{EnvelopeProblem, Error, Result};
use crate::profile::Profile;
use crate::readings::uuid_v4;
use crate::record::EnteredBy;
use crate::store::{self, SourceKind, Writer};
use crate::time::{now_unix, rfc3339};

/// What applying one envelope did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Someone accepted an invite and is now known (their handle).
    PersonAdded(String),
    /// A grant to this profile arrived.
    Grant {
        /// Its id.
        grant: String,
        /// Whether it is new, rather than a new revision of one held.
        new: bool,
    },
    /// A delivery of shared records.
    Records {
        /// Resources added or changed.
        upserts: u64,
        /// Resources removed.
        removes: u64,
    },
    /// A grant to this profile was revoked (its id).
    Revoked(String),
    /// A carer's entries were applied (how many).
    Contribution(u64),
    /// A grantee asked for the whole record again.
    Resync,
    /// A person's keys changed (their handle).
    KeysChanged(String),
    /// The grantor refused this profile's entries, and why.
    ContributionRefused(String),
    /// A carer's entries wait for the person's approval.
    ContributionWaiting(u64),
}

fn refused(problem: EnvelopeProblem) -> Error {
    Error::Envelope { problem }
}

/// Open and apply one envelope addressed to `me` at `mailbox` under `tag`.
pub fn process(
    own: &Profile,
    me: &Identity,
    relay: &str,
    mailbox: &str,
    tag: &str,
    body: &[u8],
) -> Result<Applied> {
    let (sender_enc, msg) = match envelope::open(me, mailbox, tag, body) {
        Ok(opened) => opened,
        // Sealed to keys this profile has since replaced, and moved on by the sender.
        Err(e) => match super::rotation::open_retired(own, tag, body)? {
            Some(opened) => opened,
            None => return Err(e),
        },
    };
    if let Body::Accept { .. } = &msg.body {
        return own.vault().write(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let handle = people::apply_accept(&tx, &sender_enc, &msg.body, relay)?;
            tx.commit()?;
            Ok(Applied::PersonAdded(handle))
        });
    }
    let (pid, handle, sender) = own
        .vault()
        .read(|c| people::by_enc_key(c, &sender_enc))?
        .ok_or_else(|| refused(EnvelopeProblem::UnknownSender))?;
    match &msg.body {
        Body::Grant { doc } => grant_in(own, me, pid, &handle, &sender, &msg, doc),
        Body::Records {
            reset,
            upserts,
            removes,
        } => {
            let name = in_grant(own, pid, &msg.grant, true)?;
            // The grant is held: its record's vault is opened, or made afresh when it
            // is missing (a profile restored from a backup, which holds grants but
            // not the records they carry; the whole record comes as a reset).
            let p = received::open(own, &msg.grant, &name, true)?;
            let (u, r) = match received::apply_records(&p, msg.seq, *reset, upserts, removes) {
                Err(Error::Envelope {
                    problem: EnvelopeProblem::OutOfOrder,
                }) => {
                    // Envelopes are missing: ask the grantor for the whole record again.
                    request_resync(own, &msg.grant)?;
                    return Err(refused(EnvelopeProblem::OutOfOrder));
                }
                other => other?,
            };
            own.vault().write(|c| {
                c.execute(
                    "UPDATE grants SET last_delivery_at = ?2 WHERE id = ?1",
                    params![msg.grant, now_unix()],
                )?;
                audit::append(
                    c,
                    AuditEvent::RecordReceived,
                    Some(&handle),
                    &format!(
                        "{}: {u} items in, {r} out{}",
                        msg.grant,
                        if *reset { " (whole record)" } else { "" }
                    ),
                )
            })?;
            Ok(Applied::Records {
                upserts: u,
                removes: r,
            })
        }
        Body::Revoke => revoke_in(own, pid, &handle, &msg),
        Body::Contribution { resources } => contribution_in(own, pid, &handle, &msg, resources),
        Body::Resync => own.vault().write(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            // A resync may skip ahead (a grantee restored from a backup moves its
            // numbers on); it only ever makes the next delivery a whole record.
            out_grant_seq(&tx, pid, &msg, true)?;
            tx.execute(
                "UPDATE grants SET reset_next = 1 WHERE id = ?1",
                [&msg.grant],
            )?;
            tx.commit()?;
            Ok(Applied::Resync)
        }),
        Body::Refused { reason } => {
            in_grant(own, pid, &msg.grant, false)?;
            let reason = crate::text::escaped(reason, 300).into_owned();
            own.vault().write(|c| {
                audit::append(
                    c,
                    AuditEvent::ContributionRejected,
                    Some(&handle),
                    &format!("{}: refused by them: {reason}", msg.grant),
                )
            })?;
            Ok(Applied::ContributionRefused(reason))
        }
        Body::Keys { keys, vouch } => {
            super::rotation::keys_in(own, pid, &handle, &sender, keys, vouch)
        }
        Body::Accept { .. } => Err(refused(EnvelopeProblem::Malformed)),
    }
}

/// The grantor's name for an incoming grant held from person `pid`; with `active`,
/// the grant must be in force.
fn in_grant(own: &Profile, pid: i64, grant: &str, active: bool) -> Result<String> {
    let row: Option<(i64, Option<i64>, i64, String)> = own.vault().read(|c| {
        Ok(c.query_row(
            "SELECT g.person_id, g.ended_at, g.expires_at, p.name FROM grants g
             JOIN people p ON p.id = g.person_id WHERE g.id = ?1 AND g.direction = 'in'",
            [grant],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?)
    })?;
    match row {
        Some((p, ended, expires, name)) if p == pid => {
            if active && (ended.is_some() || expires <= now_unix()) {
                Err(refused(EnvelopeProblem::NotAllowed))
            } else {
                Ok(name)
            }
        }
        _ => Err(refused(EnvelopeProblem::UnknownSender)),
    }
}

fn grant_in(
    own: &Profile,
    me: &Identity,
    pid: i64,
    handle: &str,
    sender: &PublicIdentity,
    msg: &Message,
    text: &str,
) -> Result<Applied> {
    let doc = GrantDoc::parse_and_verify(text).map_err(|e| match e {
        Error::Denied { .. } => refused(EnvelopeProblem::Tampered),
        _ => refused(EnvelopeProblem::Malformed),
    })?;
    if doc.id != msg.grant
        || doc.grantor_identity()? != *sender
        || doc.grantee_identity()? != me.public()
    {
        return Err(refused(EnvelopeProblem::NotAllowed));
    }
    let expires = doc.expires_unix()?;
    if expires <= now_unix() {
        return Err(refused(EnvelopeProblem::NotAllowed));
    }
    let existing: Option<(u32, Option<i64>)> = own.vault().read(|c| {
        Ok(c.query_row(
            "SELECT revision, ended_at FROM grants WHERE id = ?1 AND direction = 'in'",
            [&doc.id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
    })?;
    match existing {
        Some((_, Some(_))) => return Err(refused(EnvelopeProblem::NotAllowed)),
        Some((rev, None)) if rev > doc.revision => return Err(refused(EnvelopeProblem::Replayed)),
        _ => {}
    }
    let new = existing.is_none();
    // The grantee's own sequence on this grant (contributions, resync requests)
    // travels under a tag of its own.
    let tag = people::random_b64(16)?;
    own.vault().write(|c| {
        c.execute(
            "INSERT INTO grants (id, direction, person_id, doc, role, revision, created_at, expires_at, tag)
             VALUES (?1, 'in', ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, role = excluded.role,
               revision = excluded.revision, expires_at = excluded.expires_at",
            params![doc.id, pid, text, doc.role.as_str(), doc.revision, now_unix(), expires, tag],
        )?;
        Ok(())
    })?;
    let p = received::open(own, &doc.id, &doc.grantor.name, true)?;
    received::apply_grant(&p, msg.seq, &doc, text)?;
    own.vault().write(|c| {
        audit::append(
            c,
            AuditEvent::RecordReceived,
            Some(handle),
            &format!(
                "{} revision {}: {}",
                doc.id,
                doc.revision,
                doc.role.as_str()
            ),
        )
    })?;
    Ok(Applied::Grant { grant: doc.id, new })
}

fn revoke_in(own: &Profile, pid: i64, handle: &str, msg: &Message) -> Result<Applied> {
    let row: Option<(i64, Option<String>)> = own.vault().read(|c| {
        Ok(c.query_row(
            "SELECT person_id, ended_why FROM grants WHERE id = ?1 AND direction = 'in'",
            [&msg.grant],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
    })?;
    match row {
        Some((p, None)) if p == pid => {}
        // The grant already ended here by its date: the notice changes nothing.
        Some((p, Some(why))) if p == pid && why == "expired" => {
            return Ok(Applied::Revoked(msg.grant.clone()))
        }
        Some((p, Some(_))) if p == pid => return Err(refused(EnvelopeProblem::Replayed)),
        _ => return Err(refused(EnvelopeProblem::UnknownSender)),
    }
    // The sequence must move forward; a gap before a revocation does not matter.
    if let Ok(p) = received::open(own, &msg.grant, "", false) {
        let last: i64 = p.vault().read(|c| {
            Ok(crate::vault::meta::get(c, "shared_seq")?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0))
        })?;
        check_seq(last, msg.seq, true)?;
        drop(p);
    }
    end_in(own, &msg.grant, handle, "revoked")?;
    Ok(Applied::Revoked(msg.grant.clone()))
}

/// End an incoming grant: delete the received record, then mark the grant ended.
pub fn end_in(own: &Profile, grant: &str, handle: &str, why: &str) -> Result<()> {
    received::delete(own.vault().dir(), grant)?;
    own.vault().write(|c| {
        let tx = c.transaction()?;
        tx.execute(
            "UPDATE grants SET ended_at = ?2, ended_why = ?3 WHERE id = ?1 AND ended_at IS NULL",
            params![grant, now_unix(), why],
        )?;
        audit::append(
            &tx,
            AuditEvent::RecordRemoved,
            Some(handle),
            &format!("{grant} {why}: the shared copy was deleted"),
        )?;
        tx.commit()?;
        Ok(())
    })
}

/// Check and take the sequence number of a message on a grant this profile made, from
/// its grantee `pid`. Returns the grant's role and whether it is in force.
fn out_grant_seq(
    tx: &rusqlite::Transaction<'_>,
    pid: i64,
    msg: &Message,
    jump: bool,
) -> Result<(Role, bool)> {
    let row: Option<(i64, i64, String, Option<i64>, i64)> = tx
        .query_row(
            "SELECT person_id, last_seq, role, ended_at, expires_at FROM grants
             WHERE id = ?1 AND direction = 'out'",
            [&msg.grant],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    let Some((_, last, role, ended, expires)) = row.filter(|r| r.0 == pid) else {
        return Err(refused(EnvelopeProblem::UnknownSender));
    };
    check_seq(last, msg.seq, jump)?;
    tx.execute(
        "UPDATE grants SET last_seq = ?2 WHERE id = ?1",
        params![msg.grant, msg.seq],
    )?;
    Ok((Role::parse(&role)?, ended.is_none() && expires > now_unix()))
}

fn contribution_in(
    own: &Profile,
    pid: i64,
    handle: &str,
    msg: &Message,
    resources: &[String],
) -> Result<Applied> {
    let outcome = own.vault().write(|c| {
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (role, active) = out_grant_seq(&tx, pid, msg, false)?;
        let verdict = match refusal(&tx, &msg.grant, role, active, resources)? {
            Some(why) => {
                refuse(&tx, &msg.grant, handle, &why)?;
                None
            }
            None if crate::prefs::load(&tx)?.approve_contributions => {
                // The person asked to see carers' entries first.
                let list = serde_json::to_string(resources)?;
                tx.execute(
                    "INSERT INTO pending_contributions (grant_id, person, resources, received_at)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![msg.grant, handle, list, now_unix()],
                )?;
                let n = resources.len() as u64;
                audit::append(
                    &tx,
                    AuditEvent::ContributionWaiting,
                    Some(handle),
                    &format!("{}: {n} entries wait for approval", msg.grant),
                )?;
                Some(Applied::ContributionWaiting(n))
            }
            None => match store_contributions(&tx, handle, resources) {
                Ok(n) => {
                    audit::append(
                        &tx,
                        AuditEvent::ContributionApplied,
                        Some(handle),
                        &format!("{}: {n} entries", msg.grant),
                    )?;
                    Some(Applied::Contribution(n))
                }
                Err(_) => {
                    refuse(
                        &tx,
                        &msg.grant,
                        handle,
                        "the entries are not patient-entered observations",
                    )?;
                    None
                }
            },
        };
        tx.commit()?;
        Ok(verdict)
    })?;
    outcome.ok_or_else(|| refused(EnvelopeProblem::NotAllowed))
}

/// Why a carer's `resources` on `grant` may not be applied now, if they may not: the
/// grant ended, the role does not write, or an entry is outside the grant's scope.
fn refusal(
    tx: &rusqlite::Transaction<'_>,
    grant: &str,
    role: Role,
    active: bool,
    resources: &[String],
) -> Result<Option<String>> {
    if !active {
        return Ok(Some("the grant has ended".into()));
    }
    if !role.may_contribute() {
        return Ok(Some(format!(
            "a {} may not add to the record",
            role.as_str()
        )));
    }
    let scope = super::grants::doc(tx, grant)?.scope;
    Ok(resources.iter().find_map(|text| {
        let analysis = serde_json::from_str::<Value>(text)
            .map_err(|_| "an entry is not JSON".to_string())
            .and_then(|v| crate::record::analyse(&v).map_err(|e| e.to_string()));
        match analysis {
            Ok(a) => crate::scope::admits(&scope, &a)
                .err()
                .map(|why| format!("an entry is outside the grant: {why}")),
            Err(why) => Some(why),
        }
    }))
}

/// Record a refusal of a carer's entries on `grant` and tell the carer's app why.
fn refuse(tx: &rusqlite::Transaction<'_>, grant: &str, handle: &str, why: &str) -> Result<()> {
    audit::append(
        tx,
        AuditEvent::ContributionRejected,
        Some(handle),
        &format!("{grant}: {why}"),
    )?;
    // The carer's app hears why, outside the grant's sequence.
    tell_refused(tx, grant, why)
}

/// A carer's entries waiting for the person's approval.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PendingContribution {
    /// Its id, for [`approve_contribution`] and [`reject_contribution`].
    pub id: i64,
    /// The carer's short id.
    pub person: String,
    /// The carer's name.
    pub name: String,
    /// The grant they wrote under.
    pub grant: String,
    /// When it arrived (Unix seconds).
    pub received_at: i64,
    /// The entries' display lines.
    pub entries: Vec<String>,
}

/// The carers' entries waiting for approval, oldest first.
pub fn pending(own: &Profile) -> Result<Vec<PendingContribution>> {
    let rows: Vec<(i64, String, String, String, i64, String)> =
        own.vault().read(|c| {
            Ok(c.prepare(
            "SELECT q.id, q.person, coalesce(p.name, ''), q.grant_id, q.received_at, q.resources
             FROM pending_contributions q LEFT JOIN people p ON p.handle = q.person ORDER BY q.id",
        )?
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
        })?
        .collect::<rusqlite::Result<_>>()?)
        })?;
    Ok(rows
        .into_iter()
        .map(|(id, person, name, grant, received_at, list)| {
            let texts: Vec<String> = serde_json::from_str(&list).unwrap_or_default();
            let entries = texts
                .iter()
                .filter_map(|t| serde_json::from_str::<Value>(t).ok())
                .filter_map(|v| crate::record::analyse(&v).ok())
                .map(|a| a.display)
                .collect();
            PendingContribution {
                id,
                person,
                name,
                grant,
                received_at,
                entries,
            }
        })
        .collect())
}

/// Approve (`true`) or reject the waiting entries `id`. Approved entries are checked
/// against the grant again (it may have ended or narrowed since), then applied as on
/// arrival; a refusal then, or a rejection, tells the carer's app why. Returns the
/// entries applied.
pub fn decide(own: &Profile, id: i64, approve: bool) -> Result<u64> {
    own.vault().write(|c| {
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let row: Option<(String, String, String)> = tx
            .query_row(
                "SELECT grant_id, person, resources FROM pending_contributions WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((grant, handle, list)) = row else {
            return Err(Error::not_found(format!(
                "waiting entries {id} (see carry contributions)"
            )));
        };
        let resources: Vec<String> = serde_json::from_str(&list)
            .map_err(|_| Error::internal("stored waiting entries do not parse"))?;
        tx.execute("DELETE FROM pending_contributions WHERE id = ?1", [id])?;
        let applied = if !approve {
            refuse(&tx, &grant, &handle, "the person declined these entries")?;
            0
        } else {
            let (role, active): (String, bool) = tx.query_row(
                "SELECT role, ended_at IS NULL AND expires_at > ?2 FROM grants WHERE id = ?1",
                params![grant, now_unix()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            match refusal(&tx, &grant, Role::parse(&role)?, active, &resources)? {
                Some(why) => {
                    refuse(&tx, &grant, &handle, &why)?;
                    tx.commit()?;
                    return Err(Error::Denied {
                        reason: format!("these entries can no longer be applied: {why}"),
                    });
                }
                None => {
                    let n = store_contributions(&tx, &handle, &resources)?;
                    audit::append(
                        &tx,
                        AuditEvent::ContributionApplied,
                        Some(&handle),
                        &format!("{grant}: {n} entries, approved"),
                    )?;
                    n
                }
            }
        };
        tx.commit()?;
        Ok(applied)
    })
}

/// Queue a `refused` message to the grantee of `grant`, saying `why`.
fn tell_refused(tx: &rusqlite::Transaction<'_>, grant: &str, why: &str) -> Result<()> {
    let me = crate::vault::identity::get(tx)?;
    let row = super::outbox::grant_row(tx, grant)?;
    let message = Message {
        v: 1,
        grant: grant.to_string(),
        seq: 0,
        at: now_unix(),
        body: Body::Refused {
            reason: why.to_string(),
        },
    };
    let tag = people::random_b64(16)?;
    let sealed = envelope::seal(&me, &row.enc, &row.mailbox, &tag, &message)?;
    super::outbox::queue(tx, &row.mailbox, &tag, &sealed)
}

/// Store a carer's observations as the person's own entries (entered by the carer),
/// each with a Provenance naming the carer, and queue them for the providers.
fn store_contributions(
    tx: &rusqlite::Transaction<'_>,
    handle: &str,
    resources: &[String],
) -> Result<u64> {
    let (carer_name, carer_key): (String, Vec<u8>) = tx.query_row(
        "SELECT name, sign_key FROM people WHERE handle = ?1",
        [handle],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let me_name = crate::vault::meta::get(tx, "name")?.unwrap_or_default();
    let patient_ref: Option<String> = tx
        .query_row(
            "SELECT 'Patient/' || r.rid FROM meta m JOIN resources r ON r.id = CAST(m.value AS INTEGER)
             WHERE m.key = 'self_patient' AND r.rid IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let mut subject = json!({ "display": me_name });
    if let Some(r) = &patient_ref {
        subject["reference"] = json!(r);
    }
    let now = now_unix();
    let source = store::ensure_source(tx, SourceKind::Patient, "self", now)?;
    let bad = || Error::invalid("not a patient-entered observation");
    if resources.is_empty() || resources.len() > 100 {
        return Err(bad());
    }
    for text in resources {
        let mut obs: Value = serde_json::from_str(text).map_err(|_| bad())?;
        let ok_type = obs["resourceType"] == "Observation";
        let identifier = obs["identifier"][0]["value"].as_str().map(str::to_string);
        let id = obs["id"].as_str().map(str::to_string);
        let (true, Some(identifier), Some(id)) = (ok_type, identifier, id) else {
            return Err(bad());
        };
        obs["subject"] = subject.clone();
        obs["performer"] = json!([{
            "display": carer_name,
            "identifier": { "system": KEY_SYSTEM, "value": base64_key(&carer_key) }
        }]);
        let raw = serde_json::to_string(&obs)?;
        Writer::new(tx, source, None, EnteredBy::Carer, now).put(&raw, &obs, Some(&identifier))?;
        let provenance = json!({
            "resourceType": "Provenance",
            "id": uuid_v4()?,
            "target": [{ "reference": format!("Observation/{id}") }],
            "recorded": rfc3339(now),
            "agent": [{
                "type": { "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                    "code": "enterer", "display": "Enterer"
                }]},
                "who": {
                    "display": carer_name,
                    "identifier": { "system": KEY_SYSTEM, "value": base64_key(&carer_key) }
                },
                "onBehalfOf": subject.clone()
            }]
        });
        let praw = serde_json::to_string(&provenance)?;
        Writer::new(tx, source, None, EnteredBy::Carer, now).put(&praw, &provenance, None)?;
    }
    crate::outbox::enqueue(tx, now)?;
    Ok(resources.len() as u64)
}

fn base64_key(k: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k)
}

/// Ask the grantor of incoming grant `grant` to send the whole record again.
pub fn request_resync(own: &Profile, grant: &str) -> Result<()> {
    own.vault().write(|c| {
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let me = crate::vault::identity::get(&tx)?;
        let mut row = super::outbox::grant_row(&tx, grant)?;
        super::outbox::send_on_grant(&tx, &me, &mut row, Body::Resync)?;
        tx.commit()?;
        Ok(())
    })
}
