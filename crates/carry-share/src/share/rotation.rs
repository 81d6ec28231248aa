//! New keys: the profile's own when one of the person's devices is removed, and a
//! person's when they replace theirs.
//!
//! Every device of a person holds the profile's identity keys and recovery code, so a
//! removed device (a lost tablet) could go on acting as the person. Removing it
//! replaces them, in the removal's transaction (`devices::rotation::rotate`):
//!
//! - a new Ed25519 and X25519 key pair becomes the identity; the old one is kept in
//!   `identity_retired` (vault schema 11) on this device only;
//! - each person the profile knows is sent the new keys, vouched for by the old
//!   signing key and sealed from the old keys they know ([`Body::Keys`]); grants in
//!   force are re-issued under the new keys, after it;
//! - the recovery code and the backup key are replaced (the person writes the new
//!   code down), so the old code opens no later backup;
//! - the person's other devices get the new identity and code in their next batch.
//!
//! At the next exchange the primary device ([`finish`]) reads the old mailbox to the
//! end and retires the old key at the endpoint: the key never signs in again, its
//! mailbox closes, and what it owned there (share links, backups, posted envelopes)
//! passes to the new key. Someone who receives new keys ([`keys_in`]) checks the
//! vouch, takes them, moves what was queued for the old mailbox to the new one, and
//! re-issues their own grants to the person under the new keys.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use rusqlite::{params, Transaction};

use super::document::GrantDoc;
use super::envelope::{self, Body, Message};
use super::incoming::Applied;
use super::{grants, outbox};
use crate::audit::{self, AuditEvent};
use crate::crypto::identity::{Identity, PublicIdentity, PublicKeys, SIGNATURE_LEN};
use crate::error::{EnvelopeProblem, Error, Result};
use crate::profile::Profile;
use crate::time::now_unix;

/// A retired identity whose retirement at the endpoint is still to be done.
pub struct Pending {
    /// Its row in `identity_retired`.
    pub id: i64,
    /// The old keys.
    pub old: Identity,
    /// The signing key that replaced it.
    pub successor: [u8; 32],
}

/// The grants this profile made that are in force, to person `pid` or to anyone.
pub fn active_grants(tx: &Transaction<'_>, pid: Option<i64>) -> Result<Vec<String>> {
    Ok(tx
        .prepare(
            "SELECT id FROM grants WHERE direction = 'out' AND ended_at IS NULL
             AND expires_at > ?1 AND (?2 IS NULL OR person_id = ?2) ORDER BY id",
        )?
        .query_map(params![now_unix(), pid], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

/// Sign grant `id` again as the next revision, naming `me` as the grantor (and
/// `grantee`'s new keys, if given), and queue it to the grantee.
pub fn reissue(
    tx: &Transaction<'_>,
    me: &Identity,
    id: &str,
    grantee: Option<&PublicIdentity>,
) -> Result<()> {
    let mut doc: GrantDoc = grants::doc(tx, id)?;
    doc.revision += 1;
    doc.grantor.keys = me.public().to_keys();
    if let Some(g) = grantee {
        doc.grantee.keys = g.to_keys();
    }
    doc.signature = None;
    let doc = doc.sign(me)?;
    let text = doc.to_json()?;
    tx.execute(
        "UPDATE grants SET doc = ?2, revision = ?3 WHERE id = ?1",
        params![id, text, doc.revision],
    )?;
    let mut row = outbox::grant_row(tx, id)?;
    outbox::send_on_grant(tx, me, &mut row, Body::Grant { doc: text })
}

/// Take the new keys of person `pid` (known until now by `sender`), vouched for by
/// `vouch`: check it, replace their keys, move what is queued for their old mailbox
/// to the new one, and re-issue this profile's grants to them.
pub fn keys_in(
    own: &Profile,
    pid: i64,
    handle: &str,
    sender: &PublicIdentity,
    keys: &PublicKeys,
    vouch: &str,
) -> Result<Applied> {
    let refused = |problem| Error::Envelope { problem };
    let new = PublicIdentity::from_keys(keys).map_err(|_| refused(EnvelopeProblem::Malformed))?;
    let vouch = B64
        .decode(vouch)
        .ok()
        .filter(|v| v.len() == SIGNATURE_LEN)
        .ok_or_else(|| refused(EnvelopeProblem::Malformed))?;
    sender
        .verify_successor(&new, &vouch)
        .map_err(|_| refused(EnvelopeProblem::Tampered))?;
    if new.sign == sender.sign || new.enc == sender.enc {
        return Err(refused(EnvelopeProblem::Malformed));
    }
    own.vault().write(|c| {
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let taken: bool = tx.query_row(
            "SELECT count(*) > 0 FROM people WHERE (sign_key = ?1 OR enc_key = ?2) AND id <> ?3",
            params![new.sign.as_slice(), new.enc.as_slice(), pid],
            |r| r.get(0),
        )?;
        if taken {
            return Err(refused(EnvelopeProblem::NotAllowed));
        }
        tx.execute(
            "UPDATE people SET sign_key = ?2, enc_key = ?3, mailbox = ?4, keys_at = ?5
             WHERE id = ?1",
            params![
                pid,
                new.sign.as_slice(),
                new.enc.as_slice(),
                new.mailbox(),
                now_unix()
            ],
        )?;
        // Sealed to the old keys: the new holder keeps them to open what was sent.
        tx.execute(
            "UPDATE relay_outbox SET mailbox = ?2 WHERE mailbox = ?1",
            params![sender.mailbox(), new.mailbox()],
        )?;
        let me = crate::vault::identity::get(&tx)?;
        let ours = active_grants(&tx, Some(pid))?;
        for id in &ours {
            reissue(&tx, &me, id, Some(&new))?;
        }
        audit::append(
            &tx,
            AuditEvent::PersonKeysChanged,
            Some(handle),
            &format!(
                "new keys ({}), vouched for by their previous keys; {} grants re-issued",
                new.handle(),
                ours.len()
            ),
        )?;
        tx.commit()?;
        Ok(Applied::KeysChanged(handle.to_string()))
    })
}

/// A stored retired identity: row id, PKCS#8, X25519 secret, successor's key.
type RetiredRow = (i64, Vec<u8>, Vec<u8>, Vec<u8>);

/// The retired identities whose retirement at the endpoint is still to be done.
pub fn pending(own: &Profile) -> Result<Vec<Pending>> {
    let rows: Vec<RetiredRow> = own.vault().read(|c| {
        Ok(c.prepare(
            "SELECT r.id, r.sign_pkcs8, r.enc_secret, r.successor_sign FROM identity_retired r
             WHERE r.finished_at IS NULL ORDER BY r.id",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?)
    })?;
    rows.into_iter()
        .map(|(id, sign, enc, successor)| {
            Ok(Pending {
                id,
                old: Identity::from_parts(&sign, &enc)?,
                successor: successor
                    .as_slice()
                    .try_into()
                    .map_err(|_| Error::internal("a stored successor key is not 32 bytes"))?,
            })
        })
        .collect()
}

/// Note that the retirement of row `id` is done.
pub fn finished(own: &Profile, id: i64, detail: &str) -> Result<()> {
    own.vault().write(|c| {
        let tx = c.transaction()?;
        tx.execute(
            "UPDATE identity_retired SET finished_at = ?2 WHERE id = ?1",
            params![id, now_unix()],
        )?;
        audit::append(&tx, AuditEvent::KeysReplaced, None, detail)?;
        tx.commit()?;
        Ok(())
    })
}

/// Open `body` with a retired identity, at the mailbox it had: for envelopes sealed
/// to the old keys before the sender heard of the new ones, and moved on by them.
pub fn open_retired(own: &Profile, tag: &str, body: &[u8]) -> Result<Option<([u8; 32], Message)>> {
    let retired: Vec<(Vec<u8>, Vec<u8>)> = own.vault().read(|c| {
        Ok(
            c.prepare("SELECT sign_pkcs8, enc_secret FROM identity_retired ORDER BY id DESC")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?,
        )
    })?;
    for (sign, enc) in retired {
        let old = Identity::from_parts(&sign, &enc)?;
        if let Ok(opened) = envelope::open(&old, &old.public().mailbox(), tag, body) {
            return Ok(Some(opened));
        }
    }
    Ok(None)
}
