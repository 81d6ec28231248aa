//! The outbox: the patient's own readings on their way to providers. Each reading is
//! queued per provider in the vault, sent with a conditional create keyed on its
//! identifier (so a retry after a lost answer finds the copy instead of making a
//! second), and marked sent only when the provider confirms. A refused reading is
//! tried again at the next sync; one that could not be sent for want of a connection,
//! after a growing pause. After five failed tries it is marked stuck, for the app to
//! show, and is not sent again on its own.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use serde_json::{json, Value};

use super::login::Authorizer;
use super::sources::Source;
use super::Counters;
use crate::error::{Error, Result};
use crate::net::http::{enc, Http};
use crate::outbox::{candidates, enqueue, Policy, SENSITIVE};
use crate::profile::db;
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
    /// `pending` (goes at the next sync), `held` (kept back until released),
    /// `dropped` (never goes), `withheld` (the push policy keeps it back: a sensitive
    /// reading, or a kind not sent to this provider), `sent` or `stuck`.
    pub state: String,
    /// How many times sending it failed.
    pub attempts: i64,
    /// Why the last try failed, if it did. Never content.
    pub last_error: Option<String>,
    /// The reading's display line.
    pub display: String,
    /// When it was sent (Unix seconds).
    pub sent_at: Option<i64>,
    /// Whether this is the correction of a reading the person took back (deleted or
    /// amended after it was sent): the provider's copy is marked entered-in-error.
    /// `item_id` is then 0 (the reading is gone from the record).
    pub correction: bool,
}

pub(crate) fn list(profile: &Profile) -> Result<Vec<OutboxEntry>> {
    profile.vault().read(|c| {
        let mut stmt = c.prepare(
            "SELECT o.resource_id, s.name, coalesce(o.hold, o.state), o.attempts, o.last_error,
                    r.display, o.sent_at
             FROM outbox o JOIN sources s ON s.id = o.source_id JOIN resources r ON r.id = o.resource_id
             ORDER BY o.id DESC",
        )?;
        let mut rows: Vec<OutboxEntry> = stmt
            .query_map([], |r| {
                Ok(OutboxEntry {
                    item_id: r.get(0)?,
                    source: r.get(1)?,
                    state: r.get(2)?,
                    attempts: r.get(3)?,
                    last_error: r.get(4)?,
                    display: r.get(5)?,
                    sent_at: r.get(6)?,
                    correction: false,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let corrections: Vec<OutboxEntry> = c
            .prepare(
                "SELECT s.name, x.state, x.attempts, x.last_error,
                        coalesce(json_extract(x.json, '$.code.text'), 'A reading'), x.sent_at
                 FROM retractions x JOIN sources s ON s.id = x.source_id ORDER BY x.id DESC",
            )?
            .query_map([], |r| {
                Ok(OutboxEntry {
                    item_id: 0,
                    source: r.get(0)?,
                    state: r.get(1)?,
                    attempts: r.get(2)?,
                    last_error: r.get(3)?,
                    display: format!("{} (taken back: entered in error)", r.get::<_, String>(4)?),
                    sent_at: r.get(5)?,
                    correction: true,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        rows.extend(corrections);
        // What the policy keeps back is listed too, so the person sees that it stays.
        let policy = Policy::load(c)?;
        for cand in candidates(c)? {
            if !policy.allows(&cand) {
                rows.push(OutboxEntry {
                    item_id: cand.item_id,
                    source: cand.source_name,
                    state: "withheld".into(),
                    attempts: 0,
                    last_error: None,
                    display: cand.display,
                    sent_at: None,
                    correction: false,
                });
            }
        }
        Ok(rows)
    })
}

/// Set the push rule for `kind` (a reading kind, or [`SENSITIVE`]) for the provider
/// `source` or, with `None`, every provider: `Some(allow)`, or `None` to remove it.
/// What a stricter rule would keep back but is already queued stays queued: hold or
/// drop it.
pub(crate) fn set_policy(
    profile: &Profile,
    source: Option<&str>,
    kind: &str,
    allow: Option<bool>,
) -> Result<()> {
    let kind = kind.trim().to_ascii_lowercase();
    if kind != SENSITIVE && !crate::readings::KINDS.contains(&kind.as_str()) {
        return Err(Error::invalid(format!(
            "'{kind}' is not a reading kind: {} or {SENSITIVE}",
            crate::readings::KINDS.join(", ")
        )));
    }
    profile.vault().write(|c| {
        let tx = c.transaction()?;
        let source_id: i64 = match source {
            None => 0,
            Some(name) => tx
                .query_row(
                    "SELECT p.source_id FROM provider_sources p JOIN sources s ON s.id = p.source_id
                     WHERE s.name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or_else(|| Error::not_found(format!("source '{name}'")))?,
        };
        match allow {
            Some(a) => tx.execute(
                "INSERT INTO push_policy (source_id, kind, allow) VALUES (?1, ?2, ?3)
                 ON CONFLICT (source_id, kind) DO UPDATE SET allow = excluded.allow",
                params![source_id, kind, a],
            )?,
            None => tx.execute(
                "DELETE FROM push_policy WHERE source_id = ?1 AND kind = ?2",
                params![source_id, kind],
            )?,
        };
        enqueue(&tx, now_unix())?;
        tx.commit()?;
        Ok(())
    })
}

/// One rule of the push policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushRule {
    /// The provider it applies to; `None`: every provider.
    pub source: Option<String>,
    /// The reading kind, or `sensitive`.
    pub kind: String,
    /// Whether such readings go.
    pub allow: bool,
}

pub(crate) fn policy(profile: &Profile) -> Result<Vec<PushRule>> {
    profile.vault().read(|c| {
        Ok(c.prepare(
            "SELECT s.name, p.kind, p.allow FROM push_policy p
             LEFT JOIN sources s ON s.id = p.source_id ORDER BY p.source_id, p.kind",
        )?
        .query_map([], |r| {
            Ok(PushRule {
                source: r.get(0)?,
                kind: r.get(1)?,
                allow: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?)
    })
}

/// What to do with a reading on its way to providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Keep it back until released.
    Hold,
    /// Let a held reading go at the next sync.
    Release,
    /// Never send it.
    Drop,
}

impl Hold {
    fn verb(self) -> &'static str {
        match self {
            Hold::Hold => "hold",
            Hold::Release => "release",
            Hold::Drop => "drop",
        }
    }
}

/// Hold, release or drop the reading `item_id` on its way to `source` (or to every
/// provider). Only what has not gone can be held or dropped, and a dropped reading
/// stays dropped. Returns how many queue entries changed.
pub(crate) fn hold(
    profile: &Profile,
    item_id: i64,
    source: Option<&str>,
    what: Hold,
) -> Result<u64> {
    profile.vault().write(|c| {
        let tx = c.transaction()?;
        enqueue(&tx, now_unix())?;
        let rows: Vec<(i64, String, Option<String>)> = tx
            .prepare(
                "SELECT o.id, o.state, o.hold FROM outbox o JOIN sources s ON s.id = o.source_id
                 WHERE o.resource_id = ?1 AND (?2 IS NULL OR s.name = ?2)",
            )?
            .query_map(params![item_id, source], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        if rows.is_empty() {
            return Err(Error::not_found(format!(
                "item {item_id} on its way to {} (see carry outbox)",
                source.unwrap_or("a provider")
            )));
        }
        let mut changed = 0u64;
        for (id, state, current) in rows {
            let next = match (state.as_str(), what, current.as_deref()) {
                ("sent", _, _) | (_, _, Some("dropped")) => continue,
                (_, Hold::Hold, _) => Some("held"),
                (_, Hold::Release, Some("held")) => None,
                (_, Hold::Release, _) => continue,
                (_, Hold::Drop, _) => Some("dropped"),
            };
            changed += tx.execute(
                "UPDATE outbox SET hold = ?2 WHERE id = ?1",
                params![id, next],
            )? as u64;
        }
        if changed == 0 {
            return Err(Error::Conflict {
                reason: format!(
                    "item {item_id} has nothing to {}: it was sent, dropped, or is not held",
                    what.verb()
                ),
            });
        }
        tx.commit()?;
        Ok(changed)
    })
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
                 WHERE o.source_id = ?1 AND o.state = 'pending' AND o.hold IS NULL
                   AND o.next_attempt_at <= ?2
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
        // The provider keeps its own id, version and dates; the sensitivity labels go
        // with the reading (a provider that drops them still finds its copy grouped
        // with the person's entry, and so labelled, when it comes back).
        let security = o.get("meta").and_then(|m| m.get("security")).cloned();
        o.remove("meta");
        if let Some(security) = security {
            o.insert("meta".into(), json!({ "security": security }));
        }
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

/// The queues [`record`] writes to: readings, and corrections of readings sent.
#[derive(Clone, Copy)]
enum Queue {
    Outbox,
    Retractions,
}

impl Queue {
    fn table(self) -> &'static str {
        match self {
            Queue::Outbox => "outbox",
            Queue::Retractions => "retractions",
        }
    }
}

fn record(profile: &Profile, queue: Queue, outbox_id: i64, outcome: Outcome) -> Result<()> {
    let table = queue.table();
    profile.vault().write(|c| {
        let now = now_unix();
        let fail = |reason: String, pause: bool| {
            c.execute(
                &format!(
                    "UPDATE {table} SET attempts = attempts + 1, last_error = ?2,
                       state = CASE WHEN attempts + 1 >= ?3 THEN 'stuck' ELSE state END,
                       next_attempt_at = ?4 + CASE WHEN ?5 THEN min(60 << min(attempts, 10), 86400) ELSE 0 END
                     WHERE id = ?1"
                ),
                params![outbox_id, reason, MAX_ATTEMPTS, now, pause],
            )
        };
        match outcome {
            Outcome::Sent(remote) => c.execute(
                &format!(
                    "UPDATE {table} SET state = 'sent', remote_id = coalesce(nullif(?2, ''), remote_id),
                       sent_at = ?3, last_error = NULL WHERE id = ?1"
                ),
                params![outbox_id, remote, now],
            )?,
            Outcome::Refused(reason) => fail(reason, false)?,
            Outcome::Unreachable(reason) => fail(reason, true)?,
        };
        Ok(())
    })
}

/// Send `build`'s request with the provider's authorization, refreshing it once on a
/// `401`. `None` when a fresh token was refused too.
async fn authorized(
    http: &Http,
    auth: &mut Authorizer,
    build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
) -> Result<Option<Result<crate::net::http::Resp>>> {
    for attempt in 0..2 {
        let header = auth.header(http).await?;
        let sent = http
            .send(|| {
                let r = build(http.client())
                    .header("content-type", "application/fhir+json")
                    .header("accept", "application/fhir+json");
                match &header {
                    Some(h) => r.header("authorization", h.as_str()),
                    None => r,
                }
            })
            .await;
        match sent {
            Ok(resp) if resp.status == 401 && attempt == 0 => auth.rejected(http).await?,
            other => return Ok(Some(other)),
        }
    }
    Ok(None)
}

/// Send what is due to `source`: new readings, then corrections of readings the
/// person took back.
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
        let outcome = authorized(http, auth, |c| {
            c.post(&url)
                .header("if-none-exist", &condition)
                .body(body.clone())
        })
        .await?;
        settle(
            profile,
            Queue::Outbox,
            outbox_id,
            outcome,
            &[200, 201],
            counters,
        )
        .await?;
    }
    let corrections = db(profile, move |p| corrections_due(p, sid)).await?;
    for (id, remote, json) in corrections {
        if remote.is_empty() {
            let reason = "the provider gave no id for it, so it cannot be corrected there".into();
            db(profile, move |p| {
                record(p, Queue::Retractions, id, Outcome::Refused(reason))
            })
            .await?;
            continue;
        }
        let mut body = for_provider(&json, &patient)?;
        body["id"] = Value::String(remote.clone());
        let body = body.to_string();
        let target = format!("{url}/{}", enc(&remote));
        let outcome = authorized(http, auth, |c| c.put(&target).body(body.clone())).await?;
        // Gone there already is as good as taken back.
        settle(
            profile,
            Queue::Retractions,
            id,
            outcome,
            &[200, 201, 404, 410],
            counters,
        )
        .await?;
    }
    Ok(())
}

/// Record how sending one queued item ended; `done` are the statuses that count as
/// sent. A failure to reach the provider ends the push with that error.
async fn settle(
    profile: &Arc<Profile>,
    queue: Queue,
    id: i64,
    outcome: Option<Result<crate::net::http::Resp>>,
    done: &[u16],
    counters: &Counters,
) -> Result<()> {
    match outcome {
        Some(Ok(resp)) if done.contains(&resp.status) => {
            let remote = serde_json::from_slice::<Value>(&resp.body)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_string))
                .unwrap_or_default();
            db(profile, move |p| {
                record(p, queue, id, Outcome::Sent(remote))
            })
            .await?;
            counters.pushed.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Some(Ok(resp)) => {
            let reason = match resp.status {
                403 => "the provider refused it (403: the sign-in does not allow it; sign in \
                        again to allow sending and correcting readings)"
                    .to_string(),
                s => format!("the provider refused it ({s})"),
            };
            tracing::warn!(status = resp.status, "a reading was refused");
            db(profile, move |p| {
                record(p, queue, id, Outcome::Refused(reason))
            })
            .await
        }
        Some(Err(e)) => {
            let reason = e.to_string();
            db(profile, move |p| {
                record(p, queue, id, Outcome::Unreachable(reason))
            })
            .await?;
            Err(e)
        }
        None => Err(Error::Auth {
            reason: "the provider refused a fresh token".into(),
        }),
    }
}

/// The corrections due for `source_id`: (id, the provider's id, the JSON to send).
fn corrections_due(profile: &Profile, source_id: i64) -> Result<Vec<(i64, String, String)>> {
    let now = now_unix();
    profile.vault().read(|c| {
        Ok(c.prepare(
            "SELECT id, remote_id, json FROM retractions
             WHERE source_id = ?1 AND state = 'pending' AND next_attempt_at <= ?2 ORDER BY id",
        )?
        .query_map(params![source_id, now], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?)
    })
}
