//! The person's own readings: recording one, and mending a mistake.
//!
//! Deleting a reading that never left the device removes it. One that reached a
//! provider is also taken back there: the provider's copy is replaced by a version
//! marked `entered-in-error` (an update to the id the provider gave it), queued in
//! `retractions` (vault schema 11) and sent by the next sync, once, like a reading.
//! Copies of it that came back from providers go from the record at once, and a
//! provider's copy marked `entered-in-error` is not stored again. Amending is the
//! same, with the corrected reading recorded in its place in the same transaction,
//! and sent on like any new reading. Grantees' copies follow at the next delivery.

use rusqlite::{params, OptionalExtension, Transaction};
use serde_json::Value;

use crate::audit::{self, AuditEvent};
use crate::error::{Error, Result};
use crate::readings::{self, Reading, Subject};
use crate::store;
use crate::time::rfc3339;

/// How far ahead of this device's clock a reading's time may be (clock skew).
const READING_SKEW_S: i64 = 300;
/// The earliest time a reading may be taken at: 1900-01-01T00:00:00Z.
const EARLIEST_READING: i64 = -2_208_988_800;

/// Check a reading's time: not in the future (beyond clock skew), not before 1900.
pub fn check_time(taken_at: Option<i64>, now: i64) -> Result<()> {
    match taken_at {
        Some(at) if at > now + READING_SKEW_S => {
            Err(Error::invalid("a reading cannot be taken in the future"))
        }
        Some(at) if at < EARLIEST_READING => {
            Err(Error::invalid("a reading's time must be after 1900"))
        }
        _ => Ok(()),
    }
}

/// Record `reading` for the person named `name` in `tx`, taken at `taken_at` (else
/// `now`), and queue it for the providers that take readings. Returns its item id.
pub fn put_reading(
    tx: &Transaction<'_>,
    name: &str,
    self_patient: Option<i64>,
    reading: &Reading,
    note: Option<&str>,
    taken_at: Option<i64>,
    now: i64,
) -> Result<i64> {
    let subject = Subject {
        reference: store::self_patient_reference(tx, self_patient)?,
        display: name.to_string(),
    };
    let mut obs = readings::observation(reading, note, &subject, now)?;
    if let Some(at) = taken_at {
        obs["effectiveDateTime"] = Value::String(rfc3339(at));
    }
    let item = store::put_own(tx, &obs, now)?;
    // Queued for the providers that take readings, in the same transaction.
    crate::outbox::enqueue(tx, now)?;
    Ok(item)
}

/// The stored JSON of item `id`, if it is one of the person's own readings (or a
/// carer's entered in their record); else why not.
fn own_reading(tx: &Transaction<'_>, id: i64) -> Result<Value> {
    let row: Option<(String, String, String, String)> = tx
        .query_row(
            "SELECT r.json, s.kind, r.entered_by, r.rtype FROM resources r
             JOIN sources s ON s.id = r.source_id WHERE r.id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((json, kind, by, rtype)) = row else {
        return Err(Error::not_found(format!("item {id}")));
    };
    if kind != "self" || rtype != "Observation" || !matches!(by.as_str(), "self" | "carer") {
        return Err(Error::invalid(format!(
            "item {id} is not one of your readings: only readings entered here can be \
             deleted or amended (a provider's record is theirs to correct)"
        )));
    }
    serde_json::from_str(&json).map_err(|_| Error::internal("a stored reading does not parse"))
}

/// Delete the reading `id` in `tx` (see the module documentation). Returns how many
/// providers it is to be taken back from.
pub fn delete_in(tx: &Transaction<'_>, id: i64, now: i64) -> Result<u64> {
    let mut obs = own_reading(tx, id)?;
    let sent: Vec<(i64, Option<String>, String)> = tx
        .prepare(
            "SELECT source_id, remote_id, identifier FROM outbox
             WHERE resource_id = ?1 AND state = 'sent'",
        )?
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    obs["status"] = Value::String("entered-in-error".into());
    let retracted = obs.to_string();
    for (source, remote, identifier) in &sent {
        tx.execute(
            "INSERT OR IGNORE INTO retractions (source_id, remote_id, identifier, json, state, created_at)
             VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
            params![source, remote.clone().unwrap_or_default(), identifier, retracted, now],
        )?;
    }
    // The copies providers sent back go with it.
    let copies: Vec<i64> = tx
        .prepare(
            "SELECT m.id FROM resources r JOIN resources m ON m.group_id = r.group_id
             JOIN sources s ON s.id = m.source_id
             WHERE r.id = ?1 AND m.id <> r.id AND s.kind <> 'self'",
        )?
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for copy in copies {
        store::remove(tx, copy)?;
    }
    store::remove(tx, id)?;
    Ok(sent.len() as u64)
}

/// Whether `resource` (from a provider) is the person's reading they took back: it is
/// not stored again.
pub fn taken_back(tx: &Transaction<'_>, resource: &Value) -> Result<bool> {
    let Some(ids) = resource["identifier"].as_array() else {
        return Ok(false);
    };
    for i in ids {
        if let (Some(system), Some(value)) = (i["system"].as_str(), i["value"].as_str()) {
            let key = format!("{system}|{value}");
            let found = tx
                .prepare_cached("SELECT 1 FROM retractions WHERE identifier = ?1 LIMIT 1")?
                .exists([&key])?;
            if found {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Audit a mend.
pub fn audited(tx: &Transaction<'_>, what: &str, id: i64, providers: u64) -> Result<()> {
    audit::append(
        tx,
        AuditEvent::ReadingMended,
        None,
        &format!(
            "item {id} {what}{}",
            if providers > 0 {
                format!("; to be taken back at {providers} providers")
            } else {
                String::new()
            }
        ),
    )
}
