//! Records other people share with this profile. Each lives in a vault of its own,
//! in `shared/<grant id>/` beside the profile's vault, whose key is wrapped by a key
//! held inside the profile's vault: unlocking the profile unlocks them, and deleting
//! one deletes its data and its key together.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;
use serde_json::Value;

use super::document::{GrantDoc, Role};
use super::envelope::{Part, Shared, PARTS_MAX, PLAINTEXT_MAX};
use super::people;
use crate::error::{EnvelopeProblem, Error, Result};
use crate::keys::{KeyStore, VaultKey};
use crate::profile::Profile;
use crate::record::EnteredBy;
use crate::store::{self, SourceKind, Writer};
use crate::time::now_unix;

const WRAP_AAD: &[u8] = b"carry/vault-key/received/v1";

/// A record shared with this profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceivedProfile {
    /// The profile id to select it by: the sharer's short id.
    pub profile: String,
    /// Whose record it is.
    pub name: String,
    /// Always false: the record belongs to someone else.
    pub owner: bool,
    /// The grant it arrives under.
    pub grant: String,
    /// The role this profile holds.
    pub role: Role,
    /// When access ends (Unix seconds).
    pub expires_at: i64,
}

/// Wraps the vault keys of the records a profile holds beside its own (records shared
/// with it, and its dependants' records) with a key from the profile's vault. Each
/// kind of record wraps under its own associated data, so a key wrapped for one
/// kind never unwraps as another.
pub struct ReceivedKeyStore {
    key: zeroize::Zeroizing<Vec<u8>>,
    aad: &'static [u8],
}

impl ReceivedKeyStore {
    /// The key store for records of one kind (`aad` names the kind), with the
    /// wrapping key from the profile's vault.
    pub fn new(conn: &Connection, aad: &'static [u8]) -> Result<ReceivedKeyStore> {
        Ok(ReceivedKeyStore {
            key: people::received_key(conn)?,
            aad,
        })
    }
}

impl KeyStore for ReceivedKeyStore {
    fn wrap(&self, key: &VaultKey) -> Result<Vec<u8>> {
        let (nonce, ct) = crate::keys::seal(&self.key, self.aad, key.as_bytes())?;
        let mut out = nonce.to_vec();
        out.extend(ct);
        Ok(out)
    }

    fn unwrap(&self, wrapped: &[u8]) -> Result<VaultKey> {
        if wrapped.len() < 12 {
            return Err(Error::WrongKey);
        }
        let (nonce, ct) = wrapped.split_at(12);
        let plain = crate::keys::open(&self.key, self.aad, nonce, ct.to_vec())?;
        VaultKey::from_bytes(&plain)
    }
}

/// The folder of the record received under `grant`.
pub fn dir_of(own: &Path, grant: &str) -> PathBuf {
    own.join("shared").join(grant)
}

fn key_store(conn: &Connection) -> Result<ReceivedKeyStore> {
    ReceivedKeyStore::new(conn, WRAP_AAD)
}

/// Open the record received under `grant`, creating its vault if `create`.
pub fn open(own: &Profile, grant: &str, name: &str, create: bool) -> Result<Profile> {
    let ks = own.vault().read(key_store)?;
    let dir = dir_of(own.vault().dir(), grant);
    if dir.join(crate::vault::VAULT_FILE).exists() {
        return Profile::open(&dir, &ks);
    }
    if !create {
        return Err(Error::not_found(format!("the record shared under {grant}")));
    }
    create_whole(&dir, name, &ks, |made| {
        made.vault().write(|c| {
            crate::vault::meta::set(c, "shared_grant", grant)?;
            crate::vault::meta::set(c, "shared_seq", "0")?;
            Ok(())
        })
    })
}

/// Create a profile called `name` in `dir` under `ks`, set up by `init`. It is made
/// beside its place and moved in whole: a creation cut short leaves no half-made
/// vault where the record belongs, only a `.making` folder that the next attempt (or
/// a deletion) clears.
pub fn create_whole(
    dir: &Path,
    name: &str,
    ks: &dyn KeyStore,
    init: impl FnOnce(&Profile) -> Result<()>,
) -> Result<Profile> {
    let making = making_dir(dir);
    for leftover in [&making, dir] {
        if leftover.exists() {
            std::fs::remove_dir_all(leftover)?;
        }
    }
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let made = Profile::create(&making, name, ks)?;
    init(&made)?;
    made.lock();
    drop(made);
    std::fs::rename(&making, dir)?;
    if let Some(parent) = dir.parent() {
        // Persist the rename itself; not every platform can open a folder.
        if let Ok(d) = std::fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Profile::open(dir, ks)
}

/// Where the record received under the grant of `dir` is made before it moves in.
fn making_dir(dir: &Path) -> PathBuf {
    dir.with_extension("making")
}

/// Delete the record received under `grant`: its vault and its key.
pub fn delete(own: &Path, grant: &str) -> Result<()> {
    delete_whole(&dir_of(own, grant))
}

/// Delete the profile in `dir` made by [`create_whole`], and any half-made copy.
pub fn delete_whole(dir: &Path) -> Result<()> {
    for folder in [making_dir(dir), dir.to_path_buf()] {
        if folder.exists() {
            std::fs::remove_dir_all(&folder)?;
        }
    }
    Ok(())
}

/// Check `seq` against the last one applied; `jump` allows skipping ahead (a reset
/// replaces everything, so nothing before it matters).
pub fn check_seq(last: i64, seq: i64, jump: bool) -> Result<()> {
    if seq <= last {
        Err(Error::Envelope {
            problem: EnvelopeProblem::Replayed,
        })
    } else if seq != last + 1 && !jump {
        Err(Error::Envelope {
            problem: EnvelopeProblem::OutOfOrder,
        })
    } else {
        Ok(())
    }
}

fn last_seq(tx: &Transaction<'_>) -> Result<i64> {
    Ok(crate::vault::meta::get(tx, "shared_seq")?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Record a grant document (new or changed) in the received vault, in sequence.
pub fn apply_grant(p: &Profile, seq: i64, doc: &GrantDoc, text: &str) -> Result<()> {
    p.vault().write(|c| {
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        check_seq(last_seq(&tx)?, seq, false)?;
        crate::vault::meta::set(&tx, "grant_doc", text)?;
        crate::vault::meta::set(&tx, "name", &doc.grantor.name)?;
        crate::vault::meta::set(&tx, "shared_seq", &seq.to_string())?;
        tx.commit()?;
        Ok(())
    })
}

fn source_kind(sk: &str) -> SourceKind {
    match sk {
        "provider" => SourceKind::Provider,
        "self" => SourceKind::Patient,
        _ => SourceKind::File,
    }
}

/// Apply one `records` message in one transaction: all of it, or (on any error)
/// nothing.
pub fn apply_records(
    p: &Profile,
    seq: i64,
    reset: bool,
    upserts: &[Shared],
    removes: &[String],
) -> Result<(u64, u64)> {
    p.vault().write(|c| {
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        check_seq(last_seq(&tx)?, seq, reset)?;
        let now = now_unix();
        if reset {
            tx.execute_batch(
                "DELETE FROM shared_items; DELETE FROM resources_fts; DELETE FROM resource_keys;
                 DELETE FROM outbox; DELETE FROM resources; DELETE FROM shared_parts;",
            )?;
        }
        let malformed = || Error::Envelope {
            problem: EnvelopeProblem::Malformed,
        };
        for k in removes {
            remove_key(&tx, k)?;
        }
        let mut applied = 0u64;
        for item in upserts {
            // A part of an item split across envelopes waits for the others.
            let joined;
            let json = match item.part {
                None => &item.json,
                Some(part) => match part_in(&tx, item, part)? {
                    Some(whole) => {
                        joined = whole;
                        &joined
                    }
                    None => continue,
                },
            };
            let resource: Value = serde_json::from_str(json).map_err(|_| malformed())?;
            let by = EnteredBy::parse(&item.by).map_err(|_| malformed())?;
            let source = store::ensure_source(&tx, source_kind(&item.sk), &item.src, now)?;
            let old: Option<i64> = tx
                .prepare_cached("SELECT resource_id FROM shared_items WHERE rkey = ?1")?
                .query_row([&item.k], |r| r.get(0))
                .optional()?;
            let outcome = Writer::new(&tx, source, None, by, now)
                .for_sync(None)
                .put(json, &resource, item.url.as_deref())
                .map_err(|_| malformed())?;
            if old.is_some_and(|o| o != outcome.item_id()) {
                remove_key(&tx, &item.k)?;
            }
            let also = (!item.also.is_empty())
                .then(|| serde_json::to_string(&item.also))
                .transpose()
                .map_err(|_| malformed())?;
            tx.prepare_cached(
                "INSERT INTO shared_items (rkey, resource_id, also) VALUES (?1, ?2, ?3)
                 ON CONFLICT (rkey) DO UPDATE SET resource_id = excluded.resource_id,
                   also = excluded.also",
            )?
            .execute(params![item.k, outcome.item_id(), also])?;
            applied += 1;
        }
        store::adopt_self_patient(&tx)?;
        crate::vault::meta::set(&tx, "shared_seq", &seq.to_string())?;
        tx.commit()?;
        Ok((applied, removes.len() as u64))
    })
}

/// Keep `item`, part `part` of an item split across envelopes; once every part has
/// arrived, the item's whole text (and the parts are dropped). A part out of range,
/// or more text than an envelope holds, is a malformed envelope.
fn part_in(tx: &Transaction<'_>, item: &Shared, part: Part) -> Result<Option<String>> {
    if part.n == 0 || part.n > PARTS_MAX || part.i >= part.n || item.json.len() > PLAINTEXT_MAX {
        return Err(Error::Envelope {
            problem: EnvelopeProblem::Malformed,
        });
    }
    if part.i == 0 {
        // A first part starts the item afresh (an earlier sending of it may have
        // been cut off).
        tx.prepare_cached("DELETE FROM shared_parts WHERE rkey = ?1")?
            .execute([&item.k])?;
    }
    tx.prepare_cached(
        "INSERT INTO shared_parts (rkey, idx, count, item) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (rkey, idx) DO UPDATE SET count = excluded.count, item = excluded.item",
    )?
    .execute(params![item.k, part.i, part.n, item.json])?;
    let pieces: Vec<(u32, String)> = tx
        .prepare_cached(
            "SELECT idx, item FROM shared_parts WHERE rkey = ?1 AND count = ?2 ORDER BY idx",
        )?
        .query_map(params![item.k, part.n], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let whole = pieces.len() == part.n as usize
        && pieces.iter().zip(0u32..).all(|((i, _), want)| *i == want);
    if !whole {
        return Ok(None);
    }
    tx.prepare_cached("DELETE FROM shared_parts WHERE rkey = ?1")?
        .execute([&item.k])?;
    Ok(Some(pieces.into_iter().map(|(_, text)| text).collect()))
}

/// Remove the item the sender knows as `k`, unless another key still points at it.
fn remove_key(tx: &Transaction<'_>, k: &str) -> Result<()> {
    tx.prepare_cached("DELETE FROM shared_parts WHERE rkey = ?1")?
        .execute([k])?;
    let id: Option<i64> = tx
        .prepare_cached("SELECT resource_id FROM shared_items WHERE rkey = ?1")?
        .query_row([k], |r| r.get(0))
        .optional()?;
    tx.prepare_cached("DELETE FROM shared_items WHERE rkey = ?1")?
        .execute([k])?;
    if let Some(id) = id {
        let others: i64 = tx
            .prepare_cached("SELECT count(*) FROM shared_items WHERE resource_id = ?1")?
            .query_row([id], |r| r.get(0))?;
        if others == 0 {
            store::remove(tx, id)?;
        }
    }
    Ok(())
}

/// The records shared with this profile whose grants are in force.
pub fn list(conn: &Connection) -> Result<Vec<ReceivedProfile>> {
    let rows: Vec<(String, String, String, String, i64)> = conn
        .prepare(
            "SELECT g.id, p.handle, p.name, g.role, g.expires_at FROM grants g
             JOIN people p ON p.id = g.person_id
             WHERE g.direction = 'in' AND g.ended_at IS NULL AND g.expires_at > ?1
             ORDER BY p.name COLLATE NOCASE",
        )?
        .query_map([now_unix()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    rows.into_iter()
        .map(|(grant, handle, name, role, expires_at)| {
            Ok(ReceivedProfile {
                profile: handle,
                name,
                owner: false,
                grant,
                role: Role::parse(&role)?,
                expires_at,
            })
        })
        .collect()
}
