//! The local audit log: append-only and hash-chained.
//!
//! Each row's hash is SHA-256 over the previous row's hash and the row's own fields,
//! so editing, removing or reordering any row breaks every hash after it, and
//! [`verify`] says where. Triggers refuse `UPDATE` and `DELETE` on the table.
//!
//! Rows name events, parties (a person's short id or a link id) and counts, never
//! health data.

use ring::digest::{Context, SHA256};
use rusqlite::{params, Connection};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::time::now_unix;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditEvent {
    /// A person's keys were added (an invite accepted in either direction).
    PersonAdded,
    /// A person was marked verified.
    PersonVerified,
    /// An invite was created.
    InviteCreated,
    /// A grant was created.
    GrantCreated,
    /// A grant was changed (a new revision).
    GrantChanged,
    /// A grant was revoked.
    GrantRevoked,
    /// A grant reached its end date.
    GrantExpired,
    /// Envelopes were sealed and posted for a grant.
    EnvelopesDelivered,
    /// The recipient took envelopes (acknowledged at the relay).
    EnvelopesAcknowledged,
    /// An envelope was refused (tampered, replayed, out of order, or no grant).
    EnvelopeRejected,
    /// A shared record was received or updated.
    RecordReceived,
    /// A shared record was deleted (the grant ended).
    RecordRemoved,
    /// A carer's entry was applied.
    ContributionApplied,
    /// A carer's entry was refused.
    ContributionRejected,
    /// Part of the record left the device as a file.
    Exported,
    /// The record was synced with a provider.
    Synced,
    /// A share link was made.
    ShareCreated,
    /// Someone opened a share link (or tried to).
    ShareAccessed,
    /// A share link was revoked.
    ShareRevoked,
    /// A backup was made.
    BackedUp,
    /// The recovery code was replaced.
    RecoveryCodeChanged,
    /// The recovery code was shown (as text or as a QR code): whoever saw it can
    /// restore the profile from the endpoint.
    RecoveryCodeShown,
    /// The profile was restored from a backup (from a file or the endpoint).
    Restored,
    /// The endpoint said the backup there was restored with the recovery code since
    /// the last backup from this profile: by the person on another phone, or by
    /// whoever else holds the code.
    RestoredElsewhere,
    /// The profile was sent to a new phone.
    MovedOut,
    /// The profile arrived from the old phone.
    MovedIn,
    /// Another device of the person's joined the profile.
    DeviceAdded,
    /// A device was removed from the profile.
    DeviceRemoved,
    /// The profile's identity was replaced (a device was removed), or its old keys
    /// were retired at the endpoint.
    KeysReplaced,
    /// A person's keys changed, vouched for by their previous keys.
    PersonKeysChanged,
    /// The person deleted or amended one of their readings.
    ReadingMended,
    /// A carer's entries wait for the person's approval.
    ContributionWaiting,
    /// The person changed their preferences (the detail names the keys only).
    PreferencesChanged,
    /// This profile became the keeper of a record made for someone with no phone of
    /// their own (a dependant); the detail names the basis and who decided.
    DependantAdded,
    /// This record was made and is kept by a keeper on the dependant's behalf; the
    /// detail names the keeper, the basis and who decided.
    KeeperRecorded,
    /// A dependant's record was handed over to their own device.
    HandedOver,
    /// A dependant's record was deleted from the keeper's device without a hand-over.
    DependantRemoved,
}

impl AuditEvent {
    /// The stored id.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditEvent::PersonAdded => "person-added",
            AuditEvent::PersonVerified => "person-verified",
            AuditEvent::InviteCreated => "invite-created",
            AuditEvent::GrantCreated => "grant-created",
            AuditEvent::GrantChanged => "grant-changed",
            AuditEvent::GrantRevoked => "grant-revoked",
            AuditEvent::GrantExpired => "grant-expired",
            AuditEvent::EnvelopesDelivered => "envelopes-delivered",
            AuditEvent::EnvelopesAcknowledged => "envelopes-acknowledged",
            AuditEvent::EnvelopeRejected => "envelope-rejected",
            AuditEvent::RecordReceived => "record-received",
            AuditEvent::RecordRemoved => "record-removed",
            AuditEvent::ContributionApplied => "contribution-applied",
            AuditEvent::ContributionRejected => "contribution-rejected",
            AuditEvent::Exported => "exported",
            AuditEvent::Synced => "synced",
            AuditEvent::ShareCreated => "share-created",
            AuditEvent::ShareAccessed => "share-accessed",
            AuditEvent::ShareRevoked => "share-revoked",
            AuditEvent::BackedUp => "backed-up",
            AuditEvent::RecoveryCodeChanged => "recovery-code-changed",
            AuditEvent::RecoveryCodeShown => "recovery-code-shown",
            AuditEvent::Restored => "restored",
            AuditEvent::RestoredElsewhere => "restored-elsewhere",
            AuditEvent::MovedOut => "moved-out",
            AuditEvent::MovedIn => "moved-in",
            AuditEvent::DeviceAdded => "device-added",
            AuditEvent::DeviceRemoved => "device-removed",
            AuditEvent::KeysReplaced => "keys-replaced",
            AuditEvent::PersonKeysChanged => "person-keys-changed",
            AuditEvent::ReadingMended => "reading-mended",
            AuditEvent::ContributionWaiting => "contribution-waiting",
            AuditEvent::PreferencesChanged => "preferences-changed",
            AuditEvent::DependantAdded => "dependant-added",
            AuditEvent::KeeperRecorded => "keeper-recorded",
            AuditEvent::HandedOver => "handed-over",
            AuditEvent::DependantRemoved => "dependant-removed",
        }
    }
}

/// One row of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Its position, from 1.
    pub seq: i64,
    /// When (Unix seconds).
    pub at: i64,
    /// What happened (see [`AuditEvent::as_str`]).
    pub event: String,
    /// Who it concerns: a person's short id, a grant or a source, if anyone.
    pub party: Option<String>,
    /// Details: ids, counts and reasons, never health data.
    pub detail: String,
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditCheck {
    /// Rows checked.
    pub entries: i64,
    /// The first row whose hash does not follow, if any.
    pub broken_at: Option<i64>,
}

impl AuditCheck {
    /// Whether the whole chain holds.
    pub fn ok(&self) -> bool {
        self.broken_at.is_none()
    }
}

fn row_hash(
    prev: &[u8],
    seq: i64,
    at: i64,
    event: &str,
    party: Option<&str>,
    detail: &str,
) -> Vec<u8> {
    let mut c = Context::new(&SHA256);
    c.update(b"carry-audit-v1");
    c.update(prev);
    c.update(&seq.to_be_bytes());
    c.update(&at.to_be_bytes());
    for field in [event, party.unwrap_or("\u{0}"), detail] {
        c.update(&(field.len() as u64).to_be_bytes());
        c.update(field.as_bytes());
    }
    c.finish().as_ref().to_vec()
}

/// Append one row, inside the caller's transaction.
pub fn append(
    conn: &Connection,
    event: AuditEvent,
    party: Option<&str>,
    detail: &str,
) -> Result<()> {
    append_at(conn, now_unix(), event.as_str(), party, detail)
}

/// Append an entry made at `at` (an entry another of the person's devices made).
pub fn append_at(
    conn: &Connection,
    at: i64,
    event: &str,
    party: Option<&str>,
    detail: &str,
) -> Result<()> {
    let (last_seq, prev): (i64, Vec<u8>) = conn
        .query_row(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok((0, vec![0u8; 32])),
            e => Err(e),
        })?;
    let seq = last_seq + 1;
    let hash = row_hash(&prev, seq, at, event, party, detail);
    conn.prepare_cached(
        "INSERT INTO audit_log (seq, at, event, party, detail, prev, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![seq, at, event, party, detail, prev, hash])?;
    Ok(())
}

/// The newest `limit` rows, newest first.
pub fn list(conn: &Connection, limit: u32) -> Result<Vec<AuditEntry>> {
    let mut stmt = conn.prepare(
        "SELECT seq, at, event, party, detail FROM audit_log ORDER BY seq DESC LIMIT ?1",
    )?;
    let rows = stmt
        .query_map([limit], |r| {
            Ok(AuditEntry {
                seq: r.get(0)?,
                at: r.get(1)?,
                event: r.get(2)?,
                party: r.get(3)?,
                detail: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Walk the whole chain and report the first row that does not follow.
pub fn verify(conn: &Connection) -> Result<AuditCheck> {
    let mut stmt = conn
        .prepare("SELECT seq, at, event, party, detail, prev, hash FROM audit_log ORDER BY seq")?;
    let mut rows = stmt.query([])?;
    let mut prev = vec![0u8; 32];
    let mut expected_seq = 1;
    let mut entries = 0;
    while let Some(r) = rows.next()? {
        entries += 1;
        let seq: i64 = r.get(0)?;
        let stored_prev: Vec<u8> = r.get(5)?;
        let stored: Vec<u8> = r.get(6)?;
        let event: String = r.get(2)?;
        let party: Option<String> = r.get(3)?;
        let detail: String = r.get(4)?;
        let hash = row_hash(&prev, seq, r.get(1)?, &event, party.as_deref(), &detail);
        let follows = seq == expected_seq
            && crate::keys::same_secret(&stored_prev, &prev)
            && crate::keys::same_secret(&stored, &hash);
        if !follows {
            return Ok(AuditCheck {
                entries,
                broken_at: Some(seq),
            });
        }
        prev = stored;
        expected_seq += 1;
    }
    Ok(AuditCheck {
        entries,
        broken_at: None,
    })
}

/// Turn a failed check into an error, for callers that need the chain whole.
pub fn require(check: &AuditCheck) -> Result<()> {
    match check.broken_at {
        None => Ok(()),
        Some(seq) => Err(Error::Corrupt {
            path: std::path::PathBuf::from("audit_log"),
            reason: format!("the audit chain breaks at entry {seq}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PassphraseKeyStore;
    use crate::vault::Vault;

    #[test]
    fn chain_verifies_and_an_edited_row_breaks_it() {
        let dir = tempfile::tempdir().unwrap();
        let ks = PassphraseKeyStore::new("pw-for-tests").unwrap();
        let p = Vault::create(dir.path(), &ks).unwrap();
        p.write(|c| {
            append(c, AuditEvent::GrantCreated, Some("abc"), "grant g1")?;
            append(
                c,
                AuditEvent::EnvelopesDelivered,
                Some("abc"),
                "3 envelopes",
            )?;
            append(c, AuditEvent::GrantRevoked, Some("abc"), "grant g1")?;
            Ok(())
        })
        .unwrap();
        let check = p.read(verify).unwrap();
        assert_eq!(
            check,
            AuditCheck {
                entries: 3,
                broken_at: None
            }
        );
        // The table refuses edits; someone with the key and the file can drop the
        // trigger, and the chain still tells.
        let refused =
            p.write(|c| Ok(c.execute("UPDATE audit_log SET detail = 'x' WHERE seq = 2", [])?));
        assert!(refused.is_err());
        p.write(|c| {
            c.execute_batch(
                "DROP TRIGGER audit_log_no_update;
                     UPDATE audit_log SET detail = 'grant g2' WHERE seq = 2;",
            )?;
            Ok(())
        })
        .unwrap();
        let check = p.read(verify).unwrap();
        assert_eq!(check.broken_at, Some(2));
        assert!(require(&check).is_err());
    }
}
