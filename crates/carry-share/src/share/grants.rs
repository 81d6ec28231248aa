//! Making, changing, listing and ending grants on the grantor's side.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;

use super::document::{Basis, BasisKind, GrantDoc, Party, Role, Scope, GRANT_FORMAT, MAX_DAYS};
use super::envelope::Body;
use super::outbox;
use super::people::{self, random_b64};
use super::proxy;
use crate::audit::{self, AuditEvent};
use crate::error::{Error, Result};
use crate::record::summary;
use crate::time::{now_unix, rfc3339};

/// What the person asks for when granting access.
#[derive(Debug, Clone)]
pub struct NewGrant {
    /// The person (short id or name).
    pub person: String,
    /// Their role.
    pub role: Role,
    /// The part of the record.
    pub scope: Scope,
    /// Why, in the person's words.
    pub purpose: String,
    /// For a proxy: the basis and its evidence.
    pub basis: Option<Basis>,
    /// How long it lasts, in seconds, at most about three years. `None`: the person's
    /// default grant length ([`crate::prefs::Preferences::default_grant_days`], 90
    /// days unless they changed it).
    pub duration_s: Option<i64>,
    /// Grant even though the person's keys were never verified (safety numbers
    /// compared). Without it, a grant to an unverified person is refused with why.
    pub unverified: bool,
}

/// A grant, as lists show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantInfo {
    /// The grant's id.
    pub grant: String,
    /// `out`: made by this profile; `in`: made to it.
    pub direction: String,
    /// The other person's short id.
    pub person: String,
    /// Their name.
    pub name: String,
    /// The role.
    pub role: Role,
    /// The scope.
    pub scope: Scope,
    /// The purpose.
    pub purpose: String,
    /// The basis, if a proxy.
    pub basis: Option<Basis>,
    /// Review dates, for a child's record.
    pub review_dates: Vec<String>,
    /// Its revision.
    pub revision: u32,
    /// When it ends (Unix seconds).
    pub expires_at: i64,
    /// `active`, `revoked` or `expired`.
    pub state: String,
    /// When something was last delivered on it (Unix seconds).
    pub last_delivery_at: Option<i64>,
    /// How many items the grantee holds (grantor's side).
    pub items: i64,
    /// Whether this grant gave a new person access (not a change to a grant they
    /// already held). Set only on the answer to [`crate::share::document`].
    pub new_access: bool,
    /// For a proxy's grant (one with a basis): where its access stands under the
    /// proxy rules ([`proxy::standing`]) now. `None` for any other grant.
    pub standing: Option<proxy::Standing>,
    /// For a proxy's grant: the notices still ahead under the proxy rules
    /// ([`proxy::notices`]), soonest first: reviews, the suspension at 16, the end.
    pub notices: Vec<proxy::Notice>,
}

/// The review dates for a child born on `birth` (ages 11, 13 and 16:
/// [`proxy::review_dates`]) still ahead.
fn review_dates(birth: &str, now: i64) -> Vec<String> {
    let Some(born) = proxy::birth_date(birth) else {
        return Vec::new();
    };
    proxy::review_dates(born)
        .into_iter()
        .map(|d| format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day()))
        .filter(|d| summary::parse_fhir_date(d).is_some_and(|t| t > now))
        .collect()
}

/// The record's person's date of birth: from their Patient resource, else (a
/// dependant's record with no Patient yet) from the keeper's terms.
fn birth_date(conn: &Connection) -> Result<Option<String>> {
    if let Some(b) = patient_birth_date(conn)? {
        return Ok(Some(b));
    }
    Ok(super::dependants::terms_if_any(conn)?.and_then(|t| t.born))
}

fn patient_birth_date(conn: &Connection) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT json_extract(r.json, '$.birthDate') FROM meta m
             JOIN resources r ON r.id = CAST(m.value AS INTEGER)
             WHERE m.key = 'self_patient'",
            [],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()?
        .flatten())
}

/// Create a grant, or change the active one to the same person (a new revision).
pub fn grant(conn: &mut Connection, new: &NewGrant) -> Result<GrantInfo> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let me = crate::vault::identity::get(&tx)?;
    let (pid, person, keys) = people::find(&tx, &new.person)?;
    if !new.scope.include_labels.is_empty() && !person.verified {
        return Err(Error::Denied {
            reason: format!(
                "compare the safety number with {} and mark them verified (carry people verify {}) \
                 before sharing restricted categories",
                person.name, person.person
            ),
        });
    }
    if !person.verified && !new.unverified {
        return Err(Error::Denied {
            reason: format!(
                "{} is not verified: nothing yet shows that the keys you hold are theirs. Compare \
                 the safety number with them in person or on a call, then carry people verify {}; \
                 or grant anyway with --unverified",
                person.name, person.person
            ),
        });
    }
    if new.scope.categories.is_empty() {
        return Err(Error::invalid("choose at least one category to share"));
    }
    let duration = match new.duration_s {
        Some(d) => d,
        None => i64::from(crate::prefs::load(&tx)?.default_grant_days) * 86_400,
    };
    if !(1..=MAX_DAYS * 86_400).contains(&duration) {
        return Err(Error::invalid(format!(
            "a grant lasts from a second to {MAX_DAYS} days"
        )));
    }
    for id in &new.scope.hidden {
        let n: i64 = tx.query_row("SELECT count(*) FROM resources WHERE id = ?1", [id], |r| {
            r.get(0)
        })?;
        if n == 0 {
            return Err(Error::not_found(format!("item {id} to hide")));
        }
    }
    let now = now_unix();
    let mut expires = now + duration;
    let mut reviews = Vec::new();
    if let Some(birth) = birth_date(&tx)? {
        reviews = review_dates(&birth, now);
        // Under 16: access is reviewed at 11, 13 and 16, so it ends at the next one.
        if let Some(first) = reviews.first().and_then(|d| summary::parse_fhir_date(d)) {
            expires = expires.min(first);
        }
    }
    let basis = match (&new.basis, reviews.is_empty()) {
        (Some(b), _) => Some(b.clone()),
        (None, false) => Some(Basis {
            kind: BasisKind::ParentalResponsibility,
            evidence: None,
            decided_by: Some(proxy::Decider::Person),
        }),
        (None, true) => None,
    };
    let existing: Option<(String, u32, String)> = tx
        .query_row(
            "SELECT id, revision, tag FROM grants
             WHERE direction = 'out' AND person_id = ?1 AND ended_at IS NULL AND expires_at > ?2",
            params![pid, now],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let new_access = existing.is_none();
    let (id, revision, tag) = match existing {
        Some((id, rev, tag)) => (id, rev + 1, tag),
        None => (format!("g-{}", random_b64(16)?), 1, random_b64(16)?),
    };
    let my_name = crate::vault::meta::get(&tx, "name")?.unwrap_or_default();
    let doc = GrantDoc {
        format: GRANT_FORMAT.into(),
        version: 1,
        id: id.clone(),
        revision,
        grantor: Party {
            name: my_name,
            keys: me.public().to_keys(),
        },
        grantee: Party {
            name: person.name.clone(),
            keys: keys.to_keys(),
        },
        role: new.role,
        scope: new.scope.clone(),
        purpose: new.purpose.trim().to_string(),
        basis,
        review_dates: reviews,
        issued_at: rfc3339(now),
        expires_at: rfc3339(expires),
        signature: None,
    }
    .sign(&me)?;
    let text = doc.to_json()?;
    tx.execute(
        "INSERT INTO grants (id, direction, person_id, doc, role, revision, created_at, expires_at, tag)
         VALUES (?1, 'out', ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, role = excluded.role,
           revision = excluded.revision, expires_at = excluded.expires_at",
        params![id, pid, text, new.role.as_str(), revision, now, expires, tag],
    )?;
    let mut row = outbox::grant_row(&tx, &id)?;
    outbox::send_on_grant(&tx, &me, &mut row, Body::Grant { doc: text })?;
    let event = if new_access {
        AuditEvent::GrantCreated
    } else {
        AuditEvent::GrantChanged
    };
    audit::append(
        &tx,
        event,
        Some(&person.person),
        &format!(
            "{id} revision {revision}: {} of {}; until {}",
            new.role.as_str(),
            categories_text(&new.scope),
            rfc3339(expires)
        ),
    )?;
    let mut info = info(&tx, &id)?;
    info.new_access = new_access;
    tx.commit()?;
    Ok(info)
}

fn categories_text(scope: &Scope) -> String {
    let mut s = scope
        .categories
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(",");
    if !scope.include_labels.is_empty() {
        s.push_str(&format!(" including {}", scope.include_labels.join(",")));
    }
    s
}

/// One grant as lists show it.
pub fn info(conn: &Connection, id: &str) -> Result<GrantInfo> {
    let row = conn.query_row(
        "SELECT g.direction, p.handle, p.name, g.doc, g.expires_at, g.ended_why,
                g.last_delivery_at, (SELECT count(*) FROM grant_items i WHERE i.grant_id = g.id),
                g.created_at
         FROM grants g JOIN people p ON p.id = g.person_id WHERE g.id = ?1",
        [id],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<i64>>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, i64>(8)?,
            ))
        },
    );
    let (direction, handle, name, doc, expires_at, ended, last, items, created) = match row {
        Ok(r) => r,
        Err(rusqlite::Error::QueryReturnedNoRows) => {
            return Err(Error::not_found(format!("grant {id}")))
        }
        Err(e) => return Err(e.into()),
    };
    let doc: GrantDoc =
        serde_json::from_str(&doc).map_err(|e| Error::internal(format!("stored grant: {e}")))?;
    let now = now_unix();
    let state = match ended {
        Some(why) => why,
        None if expires_at <= now => "expired".into(),
        None => "active".into(),
    };
    let born = match direction.as_str() {
        "out" => birth_date(conn)?.and_then(|b| proxy::birth_date(&b)),
        _ => None,
    };
    let terms = doc.basis.as_ref().map(|b| proxy::Terms {
        basis: b.kind,
        decided_by: b.decided_by.unwrap_or(proxy::Decider::Person),
        granted_at: created,
        ends_at: Some(expires_at),
        born,
        last_used_at: last,
    });
    let standing = terms.as_ref().map(|t| proxy::standing(t, now));
    let notices = terms.as_ref().map_or_else(Vec::new, |t| {
        proxy::notices(t)
            .into_iter()
            .filter(|n| n.at > now)
            .collect()
    });
    Ok(GrantInfo {
        grant: id.to_string(),
        direction,
        person: handle,
        name,
        role: doc.role,
        scope: doc.scope,
        purpose: doc.purpose,
        basis: doc.basis,
        review_dates: doc.review_dates,
        revision: doc.revision,
        expires_at,
        state,
        last_delivery_at: last,
        items,
        new_access: false,
        standing,
        notices,
    })
}

/// Every grant, newest first; with `active_only`, only those in force.
pub fn list(conn: &Connection, active_only: bool) -> Result<Vec<GrantInfo>> {
    let ids: Vec<String> = conn
        .prepare(
            "SELECT id FROM grants WHERE NOT ?1 OR (ended_at IS NULL AND expires_at > ?2)
             ORDER BY created_at DESC, rowid DESC",
        )?
        .query_map(params![active_only, now_unix()], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    ids.iter().map(|id| info(conn, id)).collect()
}

/// End a grant this profile made: stop deliveries, drop queued envelopes for it, and
/// queue the sealed revocation. The relay's copies are deleted at the next exchange.
pub fn end(tx: &Transaction<'_>, id: &str, why: &str) -> Result<String> {
    tx.execute(
        "UPDATE grants SET ended_at = ?2, ended_why = ?3 WHERE id = ?1 AND ended_at IS NULL",
        params![id, now_unix(), why],
    )?;
    let handle = announce_end(tx, id)?;
    let event = if why == "revoked" {
        AuditEvent::GrantRevoked
    } else {
        AuditEvent::GrantExpired
    };
    audit::append(tx, event, Some(&handle), id)?;
    Ok(handle)
}

/// Tell the grantee a grant ended (it is already marked ended): forget what they
/// hold, drop envelopes not yet posted, and queue the revocation. Returns the
/// grantee's handle.
pub fn announce_end(tx: &Transaction<'_>, id: &str) -> Result<String> {
    let me = crate::vault::identity::get(tx)?;
    let mut row = outbox::grant_row(tx, id)?;
    tx.execute("DELETE FROM grant_items WHERE grant_id = ?1", [id])?;
    tx.execute("DELETE FROM relay_outbox WHERE tag = ?1", [&row.tag])?;
    // The revocation travels under a tag of its own, so deleting the grant's
    // envelopes at the relay does not delete it too.
    row.tag = random_b64(16)?;
    outbox::send_on_grant(tx, &me, &mut row, Body::Revoke)?;
    Ok(row.handle)
}

/// Revoke a grant this profile made.
pub fn revoke(conn: &mut Connection, id: &str) -> Result<GrantInfo> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let current = info(&tx, id)?;
    if current.direction != "out" {
        return Err(Error::invalid(
            "this grant was made to you; only the person who made it can revoke it",
        ));
    }
    if current.state == "revoked" {
        return Err(Error::Revoked {
            what: format!("grant {id} was already revoked"),
        });
    }
    end(&tx, id, "revoked")?;
    let out = info(&tx, id)?;
    tx.commit()?;
    Ok(out)
}

/// End every grant this profile made whose end date has passed. Returns their ids.
pub fn expire_due(conn: &mut Connection) -> Result<Vec<String>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let due: Vec<String> = tx
        .prepare(
            "SELECT id FROM grants
             WHERE direction = 'out' AND ended_at IS NULL AND expires_at <= ?1",
        )?
        .query_map([now_unix()], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in &due {
        end(&tx, id, "expired")?;
    }
    tx.commit()?;
    Ok(due)
}

/// The active grant to a person (by short id or name).
pub fn active_to(conn: &Connection, who: &str) -> Result<GrantDoc> {
    let (pid, person, _) = people::find(conn, who)?;
    let doc: Option<String> = conn
        .query_row(
            "SELECT doc FROM grants WHERE direction = 'out' AND person_id = ?1
             AND ended_at IS NULL AND expires_at > ?2",
            params![pid, now_unix()],
            |r| r.get(0),
        )
        .optional()?;
    let doc = doc.ok_or_else(|| Error::not_found(format!("an active grant to {}", person.name)))?;
    serde_json::from_str(&doc).map_err(|e| Error::internal(format!("stored grant: {e}")))
}

/// The stored document of grant `id`.
pub fn doc(conn: &Connection, id: &str) -> Result<GrantDoc> {
    let doc: Option<String> = conn
        .query_row("SELECT doc FROM grants WHERE id = ?1", [id], |r| r.get(0))
        .optional()?;
    let doc = doc.ok_or_else(|| Error::not_found(format!("grant {id}")))?;
    serde_json::from_str(&doc).map_err(|e| Error::internal(format!("stored grant: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_dates_for_a_child_are_the_ones_ahead() {
        let now = summary::parse_fhir_date("2026-06-01").unwrap();
        assert_eq!(
            review_dates("2014-03-05", now),
            vec!["2027-03-05", "2030-03-05"]
        );
        assert!(review_dates("1980-01-01", now).is_empty());
        assert_eq!(review_dates("2020", now).len(), 3);
    }
}
