//! The profile's own keys replaced as a device is removed, and taken on the person's
//! other devices: see [`crate::share::rotation`] for the whole exchange.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use rusqlite::{params, Transaction};

use crate::audit::{self, AuditEvent};
use crate::crypto::identity::Identity;
use crate::error::Result;
use crate::share::envelope::{self, Body, Message};
use crate::share::rotation::{active_grants, reissue};
use crate::share::{outbox, people};
use crate::time::now_unix;

/// Replace the profile's identity and recovery secret in `tx`, as a device is removed
/// (see [`crate::share::rotation`]). Returns the new recovery code, for the person to
/// write down.
pub(crate) fn rotate(tx: &Transaction<'_>) -> Result<zeroize::Zeroizing<String>> {
    let old = crate::vault::identity::get(tx)?;
    let new = Identity::generate()?;
    let vouch = old.vouch_for(&new.public());
    let now = now_unix();
    tx.execute(
        "INSERT INTO identity_retired (sign_pkcs8, enc_secret, vouch, successor_sign, retired_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            old.sign_pkcs8(),
            old.enc_secret().as_bytes().as_slice(),
            vouch.as_slice(),
            new.public().sign.as_slice(),
            now
        ],
    )?;
    tx.execute(
        "UPDATE identity SET sign_pkcs8 = ?1, enc_secret = ?2, rotated_at = ?3 WHERE id = 1",
        params![
            new.sign_pkcs8(),
            new.enc_secret().as_bytes().as_slice(),
            now
        ],
    )?;

    // The people the profile knows hear of the new keys first, from the old ones ...
    let known: Vec<(Vec<u8>, Vec<u8>)> = tx
        .prepare("SELECT sign_key, enc_key FROM people ORDER BY id")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let announcement = Message {
        v: 1,
        grant: String::new(),
        seq: 0,
        at: now,
        body: Body::Keys {
            keys: new.public().to_keys(),
            vouch: B64.encode(vouch),
        },
    };
    for (sign, enc) in &known {
        let person = people::person_identity(sign, enc)?;
        let tag = people::random_b64(16)?;
        let sealed = envelope::seal(&old, &person.enc, &person.mailbox(), &tag, &announcement)?;
        outbox::queue(tx, &person.mailbox(), &tag, &sealed)?;
    }
    // ... then their grants, signed by the new ones.
    for id in active_grants(tx, None)? {
        reissue(tx, &new, &id, None)?;
    }

    let code = crate::backup::rekey(
        tx,
        "a new recovery code with the new keys; the old one opens no new backup",
    )?;
    // The person's other devices take the new identity and code in their next batch.
    tx.execute(
        "INSERT OR IGNORE INTO device_changes (tbl, k)
         SELECT 'identity', 1 WHERE EXISTS (SELECT 1 FROM device_sync_on)",
        [],
    )?;
    audit::append(
        tx,
        AuditEvent::KeysReplaced,
        None,
        &format!(
            "new keys ({}); {} people to tell; the old keys are retired at the next exchange",
            new.public().handle(),
            known.len()
        ),
    )?;
    Ok(code)
}

/// Take an identity and recovery secret replaced on another of the person's devices
/// (a device op), in `tx`.
pub(crate) fn adopt(
    tx: &Transaction<'_>,
    sign_pkcs8: &[u8],
    enc_secret: &[u8],
    rotated_at: i64,
    recovery_secret: &[u8],
    backup_key: &[u8],
) -> Result<()> {
    tx.execute(
        "UPDATE identity SET sign_pkcs8 = ?1, enc_secret = ?2, rotated_at = ?3 WHERE id = 1",
        params![sign_pkcs8, enc_secret, rotated_at],
    )?;
    crate::backup::adopt_keys(tx, recovery_secret, backup_key)?;
    audit::append(
        tx,
        AuditEvent::KeysReplaced,
        None,
        "new keys and recovery code from another of the person's devices",
    )
}
