//! Changes between the person's devices, and how concurrent ones merge.
//!
//! Triggers note what changed on this device (`device_changes`, vault schema 8). At
//! each exchange the current state of each changed row goes to every other device as
//! an *op*, in sealed batches. Each op carries the whole row, so applying one is
//! idempotent, and the merge rules make the order of concurrent changes irrelevant:
//!
//! - **Records are append-only facts**, named by source and identity. A fact already
//!   held is kept; another version of it replaces it only if newer.
//! - **People and invites are unions**: a person verified on either device is
//!   verified; an invite used on either is used.
//! - **Grants resolve by Lamport time** (then device id): the later change wins, and
//!   a change made here and not yet sent counts as later than anything received (it
//!   will be sent with a later time). **A revocation always wins**: an ended grant
//!   stays ended, whatever concurrent change arrives.
//! - **Audit chains merge**: each device appends the others' entries to its own
//!   chain, once each, marked with the device they came from; the chain still
//!   verifies on every device.
//! - **Devices**: a removed device stays removed; the primary mark resolves by Lamport
//!   time.
//! - **Preferences** resolve by Lamport time (then value), like grants.
//! - **The identity** (replaced when a device is removed) and the recovery secret
//!   that goes with it: the latest replacement wins; a person's keys, the latest
//!   change of them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::registry;
use crate::error::{EnvelopeProblem, Error, Result};
use crate::record::EnteredBy;
use crate::store::{self, SourceKind, Writer};
use crate::time::now_unix;

/// The most serialised ops in one batch.
const BATCH_BYTES: usize = 512 * 1024;
/// The tables whose changes travel, in the order ops are applied.
const TABLES: &[&str] = &[
    "devices",
    "identity",
    "prefs",
    "people",
    "invites",
    "grants",
    "resources",
    "audit_log",
];

/// One change, as the row now stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub(crate) enum Op {
    /// A device of the person's.
    Device {
        id: String,
        name: String,
        sign: String,
        enc: String,
        added_at: i64,
        removed_at: Option<i64>,
        primary: bool,
        lamport: i64,
        lamport_device: String,
    },
    /// The profile's identity and recovery secret, after a device was removed.
    Keys {
        sign_pkcs8: String,
        enc_secret: String,
        recovery_secret: String,
        backup_key: String,
        rotated_at: i64,
    },
    /// A preference (see [`crate::prefs`]).
    Pref {
        key: String,
        value: String,
        updated_at: i64,
        lamport: i64,
    },
    /// A person whose keys the profile holds.
    Person {
        handle: String,
        name: String,
        sign: String,
        enc: String,
        mailbox: String,
        relay: String,
        verified_at: Option<i64>,
        added_at: i64,
        /// When their keys last changed (0: as first exchanged).
        #[serde(default)]
        keys_at: i64,
    },
    /// An invite the profile made.
    Invite {
        secret_hash: String,
        created_at: i64,
        expires_at: i64,
        used_at: Option<i64>,
        person: Option<String>,
    },
    /// A grant the profile made.
    Grant {
        id: String,
        person: String,
        doc: String,
        role: String,
        revision: i64,
        created_at: i64,
        expires_at: i64,
        ended_at: Option<i64>,
        ended_why: Option<String>,
        tag: String,
        lamport: i64,
        lamport_device: String,
    },
    /// A fact in the record.
    Fact {
        src: String,
        sk: String,
        identity: String,
        by: String,
        json: String,
        url: Option<String>,
        updated_at: i64,
    },
    /// An audit entry made on the sending device.
    Audit {
        seq: i64,
        at: i64,
        event: String,
        party: Option<String>,
        detail: String,
        hash: String,
    },
    /// The sender lost track: send everything again.
    Resync,
}

/// What one sealed message between devices carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Batch {
    pub v: u32,
    /// The sending device.
    pub from: String,
    /// Counts up from 1 per sender and recipient.
    pub seq: i64,
    /// The sender's Lamport time.
    pub lamport: i64,
    pub ops: Vec<Op>,
}

fn b64(b: &[u8]) -> String {
    B64.encode(b)
}

fn unb64(s: &str) -> Result<Vec<u8>> {
    B64.decode(s.as_bytes()).map_err(|_| Error::Envelope {
        problem: EnvelopeProblem::Malformed,
    })
}

fn op_for(tx: &Transaction<'_>, table: &str, k: &rusqlite::types::Value) -> Result<Option<Op>> {
    let op = match table {
        "devices" => tx
            .query_row(
                "SELECT id, name, sign_key, enc_key, added_at, removed_at, is_primary, lamport,
                        lamport_device FROM devices WHERE id = ?1",
                [k],
                |r| {
                    Ok(Op::Device {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        sign: b64(&r.get::<_, Vec<u8>>(2)?),
                        enc: b64(&r.get::<_, Vec<u8>>(3)?),
                        added_at: r.get(4)?,
                        removed_at: r.get(5)?,
                        primary: r.get(6)?,
                        lamport: r.get(7)?,
                        lamport_device: r.get(8)?,
                    })
                },
            )
            .optional()?,
        "identity" => tx
            .query_row(
                "SELECT i.sign_pkcs8, i.enc_secret, b.recovery_secret, b.backup_key, i.rotated_at
                 FROM identity i JOIN backup_state b ON b.id = 1 WHERE i.id = 1",
                [],
                |r| {
                    Ok(Op::Keys {
                        sign_pkcs8: b64(&r.get::<_, Vec<u8>>(0)?),
                        enc_secret: b64(&r.get::<_, Vec<u8>>(1)?),
                        recovery_secret: b64(&r.get::<_, Vec<u8>>(2)?),
                        backup_key: b64(&r.get::<_, Vec<u8>>(3)?),
                        rotated_at: r.get(4)?,
                    })
                },
            )
            .optional()?,
        "prefs" => tx
            .query_row(
                "SELECT key, value, updated_at, lamport FROM prefs WHERE key = ?1",
                [k],
                |r| {
                    Ok(Op::Pref {
                        key: r.get(0)?,
                        value: r.get(1)?,
                        updated_at: r.get(2)?,
                        lamport: r.get(3)?,
                    })
                },
            )
            .optional()?,
        "people" => tx
            .query_row(
                "SELECT handle, name, sign_key, enc_key, mailbox, relay, verified_at, added_at,
                        keys_at FROM people WHERE handle = ?1",
                [k],
                |r| {
                    Ok(Op::Person {
                        handle: r.get(0)?,
                        name: r.get(1)?,
                        sign: b64(&r.get::<_, Vec<u8>>(2)?),
                        enc: b64(&r.get::<_, Vec<u8>>(3)?),
                        mailbox: r.get(4)?,
                        relay: r.get(5)?,
                        verified_at: r.get(6)?,
                        added_at: r.get(7)?,
                        keys_at: r.get(8)?,
                    })
                },
            )
            .optional()?,
        "invites" => tx
            .query_row(
                "SELECT i.secret_hash, i.created_at, i.expires_at, i.used_at, p.handle
                 FROM invites i LEFT JOIN people p ON p.id = i.person_id WHERE i.id = ?1",
                [k],
                |r| {
                    Ok(Op::Invite {
                        secret_hash: b64(&r.get::<_, Vec<u8>>(0)?),
                        created_at: r.get(1)?,
                        expires_at: r.get(2)?,
                        used_at: r.get(3)?,
                        person: r.get(4)?,
                    })
                },
            )
            .optional()?,
        "grants" => tx
            .query_row(
                "SELECT g.id, p.handle, g.doc, g.role, g.revision, g.created_at, g.expires_at,
                        g.ended_at, g.ended_why, g.tag, g.lamport, g.lamport_device
                 FROM grants g JOIN people p ON p.id = g.person_id
                 WHERE g.id = ?1 AND g.direction = 'out'",
                [k],
                |r| {
                    Ok(Op::Grant {
                        id: r.get(0)?,
                        person: r.get(1)?,
                        doc: r.get(2)?,
                        role: r.get(3)?,
                        revision: r.get(4)?,
                        created_at: r.get(5)?,
                        expires_at: r.get(6)?,
                        ended_at: r.get(7)?,
                        ended_why: r.get(8)?,
                        tag: r.get(9)?,
                        lamport: r.get(10)?,
                        lamport_device: r.get(11)?,
                    })
                },
            )
            .optional()?,
        "resources" => tx
            .query_row(
                "SELECT s.name, s.kind, r.identity, r.entered_by, r.json, r.full_url, r.updated_at
                 FROM resources r JOIN sources s ON s.id = r.source_id WHERE r.id = ?1",
                [k],
                |r| {
                    Ok(Op::Fact {
                        src: r.get(0)?,
                        sk: r.get(1)?,
                        identity: r.get(2)?,
                        by: r.get(3)?,
                        json: r.get(4)?,
                        url: r.get(5)?,
                        updated_at: r.get(6)?,
                    })
                },
            )
            .optional()?,
        "audit_log" => tx
            .query_row(
                "SELECT seq, at, event, party, detail, hash FROM audit_log WHERE seq = ?1",
                [k],
                |r| {
                    Ok(Op::Audit {
                        seq: r.get(0)?,
                        at: r.get(1)?,
                        event: r.get(2)?,
                        party: r.get(3)?,
                        detail: r.get(4)?,
                        hash: b64(&r.get::<_, Vec<u8>>(5)?),
                    })
                },
            )
            .optional()?,
        _ => None,
    };
    Ok(op)
}

/// Turn what changed here into sealed batches queued for every other device, in
/// the caller's transaction. Returns the batches queued.
pub(crate) fn export(tx: &Transaction<'_>) -> Result<u64> {
    let others = registry::others(tx)?;
    if others.is_empty() {
        tx.execute("DELETE FROM device_changes", [])?;
        return Ok(0);
    }
    let (me_id, me) = registry::this_device(tx)?;
    if !registry::is_primary(tx)? {
        // Only the primary posts to other people's devices; it sends what this
        // device changed once the change reaches it.
        tx.execute("DELETE FROM relay_outbox", [])?;
    }
    let clock: i64 = tx.query_row(
        "UPDATE device_self SET lamport = lamport + 1 WHERE id = 1 RETURNING lamport",
        [],
        |r| r.get(0),
    )?;
    for table in ["grants", "devices"] {
        tx.execute(
            &format!(
                "UPDATE {table} SET lamport = ?1, lamport_device = ?2
                 WHERE id IN (SELECT k FROM device_changes WHERE tbl = ?3)"
            ),
            params![clock, me_id, table],
        )?;
    }
    tx.execute(
        "UPDATE prefs SET lamport = ?1 WHERE key IN (SELECT k FROM device_changes WHERE tbl = 'prefs')",
        [clock],
    )?;
    let mut ops = Vec::new();
    for table in TABLES {
        let keys: Vec<rusqlite::types::Value> = tx
            .prepare_cached("SELECT k FROM device_changes WHERE tbl = ?1 ORDER BY seq")?
            .query_map([table], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for k in &keys {
            if let Some(op) = op_for(tx, table, k)? {
                ops.push(op);
            }
        }
    }
    let resync_from: Vec<String> = tx
        .prepare_cached("SELECT k FROM device_changes WHERE tbl = 'resync'")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    tx.execute("DELETE FROM device_changes", [])?;

    // Split into batches of bounded size.
    let mut batches: Vec<Vec<Op>> = Vec::new();
    let mut size = 0;
    for op in ops {
        let n = serde_json::to_vec(&op)?.len();
        if batches.is_empty() || size + n > BATCH_BYTES {
            batches.push(Vec::new());
            size = 0;
        }
        size += n;
        if let Some(last) = batches.last_mut() {
            last.push(op);
        }
    }
    let now = now_unix();
    let mut queued = 0;
    for (id, keys) in &others {
        let mut mine = batches.clone();
        if resync_from.contains(id) {
            mine.push(vec![Op::Resync]);
        }
        for ops in mine {
            let seq: i64 = tx.query_row(
                "UPDATE devices SET sent_seq = sent_seq + 1 WHERE id = ?1 RETURNING sent_seq",
                [id],
                |r| r.get(0),
            )?;
            let batch = Batch {
                v: 1,
                from: me_id.clone(),
                seq,
                lamport: clock,
                ops,
            };
            let plain = zeroize::Zeroizing::new(serde_json::to_vec(&batch)?);
            let body = super::seal::seal(
                super::transport::MAGIC,
                super::transport::INFO,
                &me,
                keys,
                &plain,
            )?;
            tx.execute(
                "INSERT INTO device_outbox (device, body, created_at) VALUES (?1, ?2, ?3)",
                params![id, body, now],
            )?;
            queued += 1;
        }
    }
    Ok(queued)
}

/// What applying one batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Applied {
    /// Ops applied (some may have changed nothing).
    pub ops: u64,
    /// Whether the batch came after a gap (a resync was asked for).
    pub gap: bool,
}

/// Apply a batch from the other device `from`, in the caller's transaction.
pub(crate) fn apply(tx: &Transaction<'_>, batch: &Batch) -> Result<Applied> {
    let last: i64 = tx.query_row(
        "SELECT last_seq FROM devices WHERE id = ?1",
        [&batch.from],
        |r| r.get(0),
    )?;
    if batch.seq <= last {
        return Err(Error::Envelope {
            problem: EnvelopeProblem::Replayed,
        });
    }
    let gap = batch.seq > last + 1;
    let mark: i64 = tx.query_row(
        "SELECT coalesce(max(seq), 0) FROM device_changes",
        [],
        |r| r.get(0),
    )?;
    tx.execute(
        "UPDATE device_self SET lamport = max(lamport, ?1) WHERE id = 1",
        [batch.lamport],
    )?;
    let primary = registry::is_primary(tx)?;
    let name: String = tx.query_row(
        "SELECT name FROM devices WHERE id = ?1",
        [&batch.from],
        |r| r.get(0),
    )?;
    let mut resync = false;
    for op in &batch.ops {
        match op {
            Op::Resync => resync = true,
            Op::Device { .. } => apply_device(tx, op)?,
            Op::Keys { .. } => apply_keys(tx, op)?,
            Op::Pref { .. } => apply_pref(tx, op)?,
            Op::Person { .. } => apply_person(tx, op)?,
            Op::Invite { .. } => apply_invite(tx, op)?,
            Op::Grant { .. } => apply_grant(tx, op, primary)?,
            Op::Fact { .. } => apply_fact(tx, op)?,
            Op::Audit { .. } => apply_audit(tx, op, &batch.from, &name)?,
        }
    }
    // What applying wrote is not a change made here: don't send it back.
    tx.execute("DELETE FROM device_changes WHERE seq > ?1", [mark])?;
    if resync {
        mark_everything(tx)?;
    }
    if gap {
        tx.execute(
            "INSERT OR IGNORE INTO device_changes (tbl, k) VALUES ('resync', ?1)",
            [&batch.from],
        )?;
    }
    tx.execute(
        "UPDATE devices SET last_seq = ?2 WHERE id = ?1",
        params![batch.from, batch.seq],
    )?;
    Ok(Applied {
        ops: batch.ops.len() as u64,
        gap,
    })
}

/// Note every row as changed, so the next exchange sends the whole state.
pub(crate) fn mark_everything(tx: &Transaction<'_>) -> Result<()> {
    tx.execute_batch(
        "INSERT OR IGNORE INTO device_changes (tbl, k) SELECT 'devices', id FROM devices;
         INSERT OR IGNORE INTO device_changes (tbl, k) SELECT 'identity', id FROM identity;
         INSERT OR IGNORE INTO device_changes (tbl, k) SELECT 'prefs', key FROM prefs;
         INSERT OR IGNORE INTO device_changes (tbl, k) SELECT 'people', handle FROM people;
         INSERT OR IGNORE INTO device_changes (tbl, k) SELECT 'invites', id FROM invites;
         INSERT OR IGNORE INTO device_changes (tbl, k)
           SELECT 'grants', id FROM grants WHERE direction = 'out';
         INSERT OR IGNORE INTO device_changes (tbl, k) SELECT 'resources', id FROM resources;
         INSERT OR IGNORE INTO device_changes (tbl, k) SELECT 'audit_log', seq FROM audit_log;",
    )?;
    Ok(())
}

fn pending(tx: &Transaction<'_>, table: &str, k: &str) -> Result<bool> {
    Ok(tx
        .prepare_cached("SELECT 1 FROM device_changes WHERE tbl = ?1 AND k = ?2")?
        .query_row(params![table, k], |_| Ok(()))
        .optional()?
        .is_some())
}

fn apply_device(tx: &Transaction<'_>, op: &Op) -> Result<()> {
    let Op::Device {
        id,
        name,
        sign,
        enc,
        added_at,
        removed_at,
        primary,
        lamport,
        lamport_device,
    } = op
    else {
        return Ok(());
    };
    let row: Option<(i64, String)> = tx
        .query_row(
            "SELECT lamport, lamport_device FROM devices WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match row {
        None => {
            tx.execute(
                "INSERT INTO devices (id, name, sign_key, enc_key, added_at, removed_at, is_primary,
                   lamport, lamport_device) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    id,
                    name,
                    unb64(sign)?,
                    unb64(enc)?,
                    added_at,
                    removed_at,
                    primary,
                    lamport,
                    lamport_device
                ],
            )?;
        }
        Some(local) => {
            let wins = !pending(tx, "devices", id)?
                && (*lamport, lamport_device.as_str()) > (local.0, local.1.as_str());
            if wins {
                tx.execute(
                    "UPDATE devices SET name = ?2, is_primary = ?3, lamport = ?4, lamport_device = ?5
                     WHERE id = ?1",
                    params![id, name, primary, lamport, lamport_device],
                )?;
            }
            // Removal wins, at its earliest time.
            if let Some(at) = removed_at {
                tx.execute(
                    "UPDATE devices SET removed_at = min(coalesce(removed_at, ?2), ?2), is_primary = 0
                     WHERE id = ?1",
                    params![id, at],
                )?;
            }
        }
    }
    Ok(())
}

fn apply_pref(tx: &Transaction<'_>, op: &Op) -> Result<()> {
    let Op::Pref {
        key,
        value,
        updated_at,
        lamport,
    } = op
    else {
        return Ok(());
    };
    if key.is_empty() || key.len() > 64 || serde_json::from_str::<Value>(value).is_err() {
        return Err(Error::Envelope {
            problem: EnvelopeProblem::Malformed,
        });
    }
    let local: Option<(i64, String)> = tx
        .query_row(
            "SELECT lamport, value FROM prefs WHERE key = ?1",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let wins = match &local {
        None => true,
        Some((l, v)) => {
            !pending(tx, "prefs", key)? && (*lamport, value.as_str()) > (*l, v.as_str())
        }
    };
    if wins {
        tx.execute(
            "INSERT INTO prefs (key, value, updated_at, lamport) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value,
               updated_at = excluded.updated_at, lamport = excluded.lamport",
            params![key, value, updated_at, lamport],
        )?;
    }
    Ok(())
}

fn apply_person(tx: &Transaction<'_>, op: &Op) -> Result<()> {
    let Op::Person {
        handle,
        name,
        sign,
        enc,
        mailbox,
        relay,
        verified_at,
        added_at,
        keys_at,
    } = op
    else {
        return Ok(());
    };
    // Their keys: the latest change wins (each was vouched for by the keys before it
    // on the device that took it in).
    tx.execute(
        "INSERT INTO people (handle, name, sign_key, enc_key, mailbox, relay, verified_at, added_at,
           keys_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (handle) DO UPDATE SET
           sign_key = CASE WHEN excluded.keys_at > people.keys_at THEN excluded.sign_key
                           ELSE people.sign_key END,
           enc_key = CASE WHEN excluded.keys_at > people.keys_at THEN excluded.enc_key
                          ELSE people.enc_key END,
           mailbox = CASE WHEN excluded.keys_at > people.keys_at THEN excluded.mailbox
                          ELSE people.mailbox END,
           keys_at = max(people.keys_at, excluded.keys_at),
           verified_at = CASE WHEN people.verified_at IS NULL THEN excluded.verified_at
                              WHEN excluded.verified_at IS NULL THEN people.verified_at
                              ELSE min(people.verified_at, excluded.verified_at) END,
           added_at = min(people.added_at, excluded.added_at)",
        params![
            handle,
            name,
            unb64(sign)?,
            unb64(enc)?,
            mailbox,
            relay,
            verified_at,
            added_at,
            keys_at
        ],
    )?;
    Ok(())
}

/// Take the profile's identity and recovery secret from the device that replaced
/// them, if that replacement is later than this device's.
fn apply_keys(tx: &Transaction<'_>, op: &Op) -> Result<()> {
    let Op::Keys {
        sign_pkcs8,
        enc_secret,
        recovery_secret,
        backup_key,
        rotated_at,
    } = op
    else {
        return Ok(());
    };
    let (sign_pkcs8, enc_secret) = (unb64(sign_pkcs8)?, unb64(enc_secret)?);
    // Refuse keys that do not load before anything is replaced.
    let incoming = crate::crypto::identity::Identity::from_parts(&sign_pkcs8, &enc_secret)
        .map_err(|_| Error::Envelope {
            problem: EnvelopeProblem::Malformed,
        })?;
    let local = crate::vault::identity::get(tx)?.public().sign;
    let local_at: i64 = tx.query_row("SELECT rotated_at FROM identity WHERE id = 1", [], |r| {
        r.get(0)
    })?;
    if (*rotated_at, incoming.public().sign) <= (local_at, local) {
        return Ok(());
    }
    super::rotation::adopt(
        tx,
        &sign_pkcs8,
        &enc_secret,
        *rotated_at,
        &unb64(recovery_secret)?,
        &unb64(backup_key)?,
    )
}

fn apply_invite(tx: &Transaction<'_>, op: &Op) -> Result<()> {
    let Op::Invite {
        secret_hash,
        created_at,
        expires_at,
        used_at,
        person,
    } = op
    else {
        return Ok(());
    };
    tx.execute(
        "INSERT INTO invites (secret_hash, created_at, expires_at, used_at, person_id)
         VALUES (?1, ?2, ?3, ?4, (SELECT id FROM people WHERE handle = ?5))
         ON CONFLICT (secret_hash) DO UPDATE SET
           used_at = CASE WHEN invites.used_at IS NULL THEN excluded.used_at
                          WHEN excluded.used_at IS NULL THEN invites.used_at
                          ELSE min(invites.used_at, excluded.used_at) END,
           person_id = coalesce(invites.person_id, excluded.person_id)",
        params![unb64(secret_hash)?, created_at, expires_at, used_at, person],
    )?;
    Ok(())
}

fn apply_grant(tx: &Transaction<'_>, op: &Op, primary: bool) -> Result<()> {
    let Op::Grant {
        id,
        person,
        doc,
        role,
        revision,
        created_at,
        expires_at,
        ended_at,
        ended_why,
        tag,
        lamport,
        lamport_device,
    } = op
    else {
        return Ok(());
    };
    let Some(person_id): Option<i64> = tx
        .query_row("SELECT id FROM people WHERE handle = ?1", [person], |r| {
            r.get(0)
        })
        .optional()?
    else {
        tracing::warn!("a grant from another device names a person not yet known; skipped");
        return Ok(());
    };
    type Local = (String, Option<i64>, Option<String>, i64, String);
    let local: Option<Local> = tx
        .query_row(
            "SELECT doc, ended_at, ended_why, lamport, lamport_device FROM grants
             WHERE id = ?1 AND direction = 'out'",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    let (doc_changed, was_ended) = match &local {
        None => {
            tx.execute(
                "INSERT INTO grants (id, direction, person_id, doc, role, revision, created_at,
                   expires_at, tag, lamport, lamport_device)
                 VALUES (?1, 'out', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    id,
                    person_id,
                    doc,
                    role,
                    revision,
                    created_at,
                    expires_at,
                    tag,
                    lamport,
                    lamport_device
                ],
            )?;
            (true, false)
        }
        Some((local_doc, local_ended, _, l, ld)) => {
            let wins = !pending(tx, "grants", id)?
                && (*lamport, lamport_device.as_str()) > (*l, ld.as_str());
            if wins {
                tx.execute(
                    "UPDATE grants SET doc = ?2, role = ?3, revision = ?4, expires_at = ?5,
                       lamport = ?6, lamport_device = ?7 WHERE id = ?1",
                    params![id, doc, role, revision, expires_at, lamport, lamport_device],
                )?;
            }
            (wins && local_doc != doc, local_ended.is_some())
        }
    };
    // An end on either device ends it: the earliest time, and revoked over expired.
    if let Some(at) = ended_at {
        let why = ended_why.as_deref().unwrap_or("revoked");
        if !matches!(why, "revoked" | "expired") {
            return Err(Error::Envelope {
                problem: EnvelopeProblem::Malformed,
            });
        }
        tx.execute(
            "UPDATE grants SET
               ended_why = CASE WHEN ended_at IS NULL THEN ?3
                                WHEN ended_why = 'revoked' OR ?3 = 'revoked' THEN 'revoked'
                                ELSE 'expired' END,
               ended_at = min(coalesce(ended_at, ?2), ?2)
             WHERE id = ?1",
            params![id, at, why],
        )?;
        if primary && !was_ended {
            crate::share::grants::announce_end(tx, id)?;
        }
    } else if primary && doc_changed && !was_ended {
        // A grant made or changed on another device: the primary tells the grantee.
        let me = crate::vault::identity::get(tx)?;
        let mut row = crate::share::outbox::grant_row(tx, id)?;
        crate::share::outbox::send_on_grant(
            tx,
            &me,
            &mut row,
            crate::share::envelope::Body::Grant { doc: doc.clone() },
        )?;
    }
    Ok(())
}

fn apply_fact(tx: &Transaction<'_>, op: &Op) -> Result<()> {
    let Op::Fact {
        src,
        sk,
        identity,
        by,
        json,
        url,
        updated_at,
    } = op
    else {
        return Ok(());
    };
    let malformed = || Error::Envelope {
        problem: EnvelopeProblem::Malformed,
    };
    let kind = match sk.as_str() {
        "provider" => SourceKind::Provider,
        "self" => SourceKind::Patient,
        "file" => SourceKind::File,
        _ => return Err(malformed()),
    };
    let now = now_unix();
    let source = store::ensure_source(tx, kind, src, now)?;
    let local: Option<(String, i64)> = tx
        .prepare_cached(
            "SELECT json, updated_at FROM resources WHERE source_id = ?1 AND identity = ?2",
        )?
        .query_row(params![source, identity], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((local_json, local_at)) = local {
        // Held already, or held in a newer version (ties go to the larger text).
        if local_json == *json || (local_at, local_json.as_str()) > (*updated_at, json.as_str()) {
            return Ok(());
        }
    }
    let value: Value = serde_json::from_str(json).map_err(|_| malformed())?;
    let by = EnteredBy::parse(by).map_err(|_| malformed())?;
    Writer::new(tx, source, None, by, now)
        .for_sync(None)
        .with_identity(identity)
        .put(json, &value, url.as_deref())
        .map_err(|_| malformed())?;
    store::adopt_self_patient(tx)?;
    Ok(())
}

fn apply_audit(tx: &Transaction<'_>, op: &Op, from: &str, from_name: &str) -> Result<()> {
    let Op::Audit {
        seq,
        at,
        event,
        party,
        detail,
        hash,
    } = op
    else {
        return Ok(());
    };
    let seen = tx
        .prepare_cached("SELECT 1 FROM device_audit_seen WHERE device = ?1 AND origin_seq = ?2")?
        .query_row(params![from, seq], |_| Ok(()))
        .optional()?
        .is_some();
    if seen {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO device_audit_seen (device, origin_seq) VALUES (?1, ?2)",
        params![from, seq],
    )?;
    // The history both devices share (from before they were paired) is already here.
    let shared = tx
        .prepare_cached("SELECT 1 FROM audit_log WHERE seq = ?1 AND hash = ?2")?
        .query_row(params![seq, unb64(hash)?], |_| Ok(()))
        .optional()?
        .is_some();
    if shared {
        return Ok(());
    }
    if event.is_empty()
        || event.len() > 40
        || !event.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
    {
        return Err(Error::Envelope {
            problem: EnvelopeProblem::Malformed,
        });
    }
    crate::audit::append_at(
        tx,
        *at,
        event,
        party.as_deref(),
        &format!("{detail} (on {from_name})"),
    )
}
