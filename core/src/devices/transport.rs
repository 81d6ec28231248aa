//! The channel between the person's devices: each device signs in to the relay with
//! its own device key and has its own mailbox; batches of changes are sealed from one
//! device's key to another's (see [`super::seal`]) and posted under the tag `device`.
//! A batch from a device that is not (or no longer) in the profile is refused.

use std::sync::Arc;

use crate::share::DevicesReport;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use rusqlite::params;

use super::ops::{self, Batch};
use super::registry;
use crate::error::{EnvelopeProblem, Error, Result};
use crate::net::relay::{Posted, Relay};
use crate::net::CallOptions;
use crate::profile::db;
use crate::profile::Profile;

pub(crate) const MAGIC: &[u8] = b"CD1";
pub(crate) const INFO: &[u8] = b"carry-device-v1";
const TAG: &str = "device";
/// How far a device that becomes the primary moves its grants' sequence numbers on,
/// past anything the previous primary may have sent.
const TAKEOVER_JUMP: i64 = 1_000_000;

/// Open and apply one sealed batch, in one transaction: all of it or nothing.
pub(crate) fn take(profile: &Profile, body: &[u8]) -> Result<ops::Applied> {
    profile.vault().write(|c| {
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (_, me) = registry::this_device(&tx)?;
        let (sender, plain) = super::seal::open(MAGIC, INFO, &me, body)?;
        let from: Option<String> = registry::others(&tx)?
            .into_iter()
            .find(|(_, k)| k.enc == sender)
            .map(|(id, _)| id);
        let Some(from) = from else {
            return Err(Error::Envelope {
                problem: EnvelopeProblem::UnknownSender,
            });
        };
        let batch: Batch = serde_json::from_slice(&plain).map_err(|_| Error::Envelope {
            problem: EnvelopeProblem::Malformed,
        })?;
        if batch.v != 1 || batch.from != from {
            return Err(Error::Envelope {
                problem: EnvelopeProblem::Malformed,
            });
        }
        let applied = ops::apply(&tx, &batch)?;
        tx.commit()?;
        Ok(applied)
    })
}

/// Queue what changed here for the other devices (and, for a device that just became
/// the primary, move its grants' sequence numbers on), in one transaction.
pub(crate) fn queue(profile: &Profile) -> Result<u64> {
    profile.vault().write(|c| {
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let primary = registry::is_primary(&tx)?;
        let was = crate::vault::meta::get(&tx, "device_primary")?;
        let has_devices = !registry::others(&tx)?.is_empty();
        if has_devices && primary && was.as_deref() == Some("0") {
            // Envelopes may have gone out from the primary before: send whole records
            // next, under numbers well past any it used.
            tx.execute(
                "UPDATE grants SET next_seq = next_seq + ?1, reset_next = 1 WHERE direction = 'out'",
                [TAKEOVER_JUMP],
            )?;
        }
        crate::vault::meta::set(&tx, "device_primary", if primary { "1" } else { "0" })?;
        tx.execute(
            "DELETE FROM device_outbox WHERE device IN
               (SELECT id FROM devices WHERE removed_at IS NOT NULL)",
            [],
        )?;
        let n = ops::export(&tx)?;
        tx.commit()?;
        Ok(n)
    })
}

/// This device's channel to the person's other devices: signed in at the relay at
/// `endpoint` with the device's own key. `None` while the profile has never been on
/// another device (nothing to exchange). One channel serves every [`pass`] of an
/// exchange.
pub(crate) async fn connect(
    profile: &Arc<Profile>,
    endpoint: &str,
    options: &CallOptions,
) -> Result<Option<Relay>> {
    let me = db(profile, |p| {
        p.vault().write(|c| {
            // A profile that never had other devices has no mailbox of its own to
            // read; one whose others were all removed still drains (and refuses) what
            // they send.
            let ever: bool = c.query_row("SELECT count(*) > 0 FROM devices", [], |r| r.get(0))?;
            if !ever {
                c.execute("DELETE FROM device_changes", [])?;
                return Ok(None);
            }
            Ok(Some(registry::this_device(c)?.1))
        })
    })
    .await?;
    let Some(me) = me else {
        return Ok(None);
    };
    let http = options.http()?;
    Ok(Some(Relay::connect(http, endpoint, &me).await?))
}

/// Exchange changes with the person's other devices through the relay at `endpoint`:
/// take what they sent, then send what changed here. Nothing happens while the
/// profile is on one device only.
pub async fn exchange(
    profile: Arc<Profile>,
    endpoint: &str,
    options: &CallOptions,
) -> Result<DevicesReport> {
    match connect(&profile, endpoint, options).await? {
        Some(relay) => pass(profile, &relay).await,
        None => Ok(DevicesReport::default()),
    }
}

/// One pass over a [`connect`]ed channel: take what the other devices sent, then
/// send what changed here.
pub(crate) async fn pass(profile: Arc<Profile>, relay: &Relay) -> Result<DevicesReport> {
    let mut report = DevicesReport::default();
    let mut after = 0;
    loop {
        let (envelopes, more) = relay.fetch(after, 100).await?;
        let mut ids = Vec::new();
        for e in envelopes {
            after = after.max(e.id);
            ids.push(e.id);
            if e.tag != TAG {
                report.refused += 1;
                continue;
            }
            let Ok(body) = B64.decode(e.body.as_bytes()) else {
                report.refused += 1;
                continue;
            };
            match db(&profile, move |p| take(p, &body)).await {
                Ok(a) => {
                    report.batches_in += 1;
                    report.changes_in += a.ops;
                }
                Err(Error::Envelope { problem }) => {
                    tracing::warn!(%problem, "a batch from another device was refused");
                    report.refused += 1;
                }
                Err(e) => return Err(e),
            }
        }
        if !ids.is_empty() {
            relay.ack(&ids).await?;
        }
        if !more {
            break;
        }
    }

    db(&profile, queue).await?;
    let outbox: Vec<(i64, Vec<u8>, Vec<u8>, String)> = db(&profile, |p| {
        p.vault().read(|c| {
            Ok(c.prepare(
                "SELECT o.id, d.sign_key, o.body, d.name FROM device_outbox o
                 JOIN devices d ON d.id = o.device AND d.removed_at IS NULL ORDER BY o.id",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?)
        })
    })
    .await?;
    // A device whose mailbox is full gets nothing more in this pass, so its batches
    // still arrive in order; the rest of the exchange goes on.
    let mut full: Vec<Vec<u8>> = Vec::new();
    for (id, sign, body, name) in outbox {
        if full.contains(&sign) {
            continue;
        }
        let mailbox = crate::crypto::identity::mailbox_id(&sign);
        if relay.offer(&mailbox, TAG, &body).await? == Posted::Full {
            tracing::warn!("another device's relay mailbox is full; its batches wait");
            full.push(sign);
            report.full.push(name);
            continue;
        }
        db(&profile, move |p| {
            p.vault().write(|c| {
                c.execute("DELETE FROM device_outbox WHERE id = ?1", params![id])?;
                Ok(())
            })
        })
        .await?;
        report.batches_out += 1;
    }
    Ok(report)
}
