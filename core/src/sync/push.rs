//! The outbox: the patient's own readings on their way to providers. Each reading is
//! queued per provider in the vault, sent with a conditional create keyed on its
//! identifier (so a retry after a lost answer finds the copy instead of making a
//! second), and marked sent only when the provider confirms. A refused reading is
//! tried again at the next sync; one that could not be sent for want of a connection,
//! after a growing pause. After five failed tries it is marked stuck, for the app to
//! show, and is not sent again on its own.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rusqlite::params;
use serde::Serialize;
use serde_json::{json, Value};

use super::http::{enc, Http};
use super::login::Authorizer;
use super::sources::Source;
use super::{db, Counters};
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::time::now_unix;

/// Tries before a reading is marked stuck.
pub const MAX_ATTEMPTS: i64 = 5;

/// A reading in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxEntry {
    /// The reading's item id in the record.
    pub item_id: i64,
    /// The provider it is going to.
    pub source: String,
    /// `pending`, `sent` or `stuck`.
    pub state: String,
    /// How many times sending it failed.
    pub attempts: i64,
    /// Why the last try failed, if it did. Never content.
    pub last_error: Option<String>,
    /// The reading's display line.
    pub display: String,
    /// When it was sent (Unix seconds).
    pub sent_at: Option<i64>,
}

pub(crate) fn list(profile: &Profile) -> Result<Vec<OutboxEntry>> {
    profile.vault().read(|c| {
        let mut stmt = c.prepare(
            "SELECT o.resource_id, s.name, o.state, o.attempts, o.last_error, r.display, o.sent_at
             FROM outbox o JOIN sources s ON s.id = o.source_id JOIN resources r ON r.id = o.resource_id
             ORDER BY o.id DESC",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(OutboxEntry {
                    item_id: r.get(0)?,
                    source: r.get(1)?,
                    state: r.get(2)?,
                    attempts: r.get(3)?,
                    last_error: r.get(4)?,
                    display: r.get(5)?,
                    sent_at: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    })
}

/// Queue every reading the person (or their carer) entered that is not yet queued for
/// every provider that takes readings. Runs when a reading is added and before each
/// push, so a source added later also receives the readings made before it.
pub(crate) fn enqueue(tx: &rusqlite::Connection, now: i64) -> Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO outbox (resource_id, source_id, identifier, state, created_at)
         SELECT r.id, p.source_id, json_extract(r.json, '$.identifier[0].system') || '|' ||
                json_extract(r.json, '$.identifier[0].value'), 'pending', ?1
         FROM resources r JOIN sources s ON s.id = r.source_id
         CROSS JOIN provider_sources p
         WHERE p.push AND s.kind = 'self' AND r.rtype = 'Observation'
           AND r.entered_by IN ('self', 'carer')
           AND json_extract(r.json, '$.identifier[0].value') IS NOT NULL",
        [now],
    )?;
    Ok(())
}

/// Queue what is new, and return what is due now for `source_id`: (outbox id,
/// identifier, resource JSON).
fn due(profile: &Profile, source_id: i64) -> Result<Vec<(i64, String, String)>> {
    profile.vault().write(|c| {
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let now = now_unix();
        enqueue(&tx, now)?;
        let rows = {
            let mut stmt = tx.prepare(
                "SELECT o.id, o.identifier, r.json FROM outbox o JOIN resources r ON r.id = o.resource_id
                 WHERE o.source_id = ?1 AND o.state = 'pending' AND o.next_attempt_at <= ?2
                 ORDER BY o.id",
            )?;
            let rows = stmt
                .query_map(params![source_id, now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows
        };
        tx.commit()?;
        Ok(rows)
    })
}

/// The reading as this provider should receive it: about its Patient there.
fn for_provider(json: &str, patient: &str) -> Result<Value> {
    let mut v: Value = serde_json::from_str(json)
        .map_err(|e| Error::internal(format!("a stored reading does not parse: {e}")))?;
    if let Some(o) = v.as_object_mut() {
        o.remove("id");
        o.remove("meta");
        let me = json!({ "reference": format!("Patient/{patient}") });
        o.insert("subject".into(), me.clone());
        o.insert("performer".into(), json!([me]));
    }
    Ok(v)
}

/// How a try ended.
enum Outcome {
    /// The provider holds it, under this id.
    Sent(String),
    /// The provider refused it: tried again at the next sync.
    Refused(String),
    /// The provider could not be reached: tried again after a growing pause
    /// (1, 2, 4… minutes, at most a day).
    Unreachable(String),
}

fn record(profile: &Profile, outbox_id: i64, outcome: Outcome) -> Result<()> {
    profile.vault().write(|c| {
        let now = now_unix();
        let fail = |reason: String, pause: bool| {
            c.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2,
                   state = CASE WHEN attempts + 1 >= ?3 THEN 'stuck' ELSE state END,
                   next_attempt_at = ?4 + CASE WHEN ?5 THEN min(60 << min(attempts, 10), 86400) ELSE 0 END
                 WHERE id = ?1",
                params![outbox_id, reason, MAX_ATTEMPTS, now, pause],
            )
        };
        match outcome {
            Outcome::Sent(remote) => c.execute(
                "UPDATE outbox SET state = 'sent', remote_id = ?2, sent_at = ?3, last_error = NULL WHERE id = ?1",
                params![outbox_id, remote, now],
            )?,
            Outcome::Refused(reason) => fail(reason, false)?,
            Outcome::Unreachable(reason) => fail(reason, true)?,
        };
        Ok(())
    })
}

/// Send what is due to `source`.
pub(crate) async fn push(
    profile: &Arc<Profile>,
    http: &Http,
    auth: &mut Authorizer,
    source: &Source,
    counters: &Counters,
) -> Result<()> {
    let Some(patient) = auth.patient_id().or_else(|| source.info.patient_id.clone()) else {
        return Ok(());
    };
    let sid = source.id;
    let due = db(profile, move |p| due(p, sid)).await?;
    let url = format!("{}/Observation", source.info.base_url);
    for (outbox_id, identifier, json) in due {
        let body = for_provider(&json, &patient)?.to_string();
        let condition = format!("identifier={}", enc(&identifier));
        let mut outcome = None;
        for attempt in 0..2 {
            let header = auth.header(http).await?;
            let sent = http
                .send(|| {
                    let mut r = http
                        .client()
                        .post(&url)
                        .header("content-type", "application/fhir+json")
                        .header("accept", "application/fhir+json")
                        .header("if-none-exist", &condition)
                        .body(body.clone());
                    if let Some(h) = &header {
                        r = r.header("authorization", h.as_str());
                    }
                    r
                })
                .await;
            match sent {
                Ok(resp) if resp.status == 401 && attempt == 0 => auth.rejected(http).await?,
                other => {
                    outcome = Some(other);
                    break;
                }
            }
        }
        match outcome {
            Some(Ok(resp)) if resp.status == 200 || resp.status == 201 => {
                let remote = serde_json::from_slice::<Value>(&resp.body)
                    .ok()
                    .and_then(|v| v["id"].as_str().map(str::to_string))
                    .unwrap_or_default();
                db(profile, move |p| {
                    record(p, outbox_id, Outcome::Sent(remote))
                })
                .await?;
                counters.pushed.fetch_add(1, Ordering::Relaxed);
            }
            Some(Ok(resp)) => {
                let reason = format!("the provider refused it ({})", resp.status);
                tracing::warn!(status = resp.status, "a reading was refused");
                db(profile, move |p| {
                    record(p, outbox_id, Outcome::Refused(reason))
                })
                .await?;
            }
            Some(Err(e)) => {
                let reason = e.to_string();
                db(profile, move |p| {
                    record(p, outbox_id, Outcome::Unreachable(reason))
                })
                .await?;
                return Err(e);
            }
            None => {
                return Err(Error::Auth {
                    reason: "the provider refused a fresh token".into(),
                })
            }
        }
    }
    Ok(())
}
