//! Never lose the record: a recovery code, and encrypted backups that restore on a
//! fresh install with the same identity, people, grants, audit chain and settings.
//!
//! At first use the core makes a 256-bit recovery secret and a random backup key. The
//! person keeps the secret as a recovery code ([`code`]); the code derives the key
//! that wraps the backup key inside every backup's header. A backup is the whole
//! profile ([`dump`]) streamed through AES-256-GCM chunks ([`format`]). Provider
//! tokens are left out by design: a restored profile signs in to its providers again.

pub mod code;
mod dump;
pub mod format;
mod remote;
pub mod restore;

pub use remote::backup_to_endpoint;
pub use remote::restore_from_endpoint;
pub use remote::{restore_as, stage_move};
pub use restore::restore_file_joining;
pub use restore::restore_from_file;
#[cfg(feature = "plaintext-baseline")]
pub use restore::without_change_tracking;
pub use restore::Join;

use std::io::BufWriter;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::time::now_unix;
use crate::vault::SCHEMA_VERSION;
use code::{Purpose, RecoverySecret};

/// Where backups stand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupStatus {
    /// When the last backup was made (Unix seconds), if ever.
    pub last_backup_at: Option<i64>,
    /// Its size in bytes.
    pub last_backup_bytes: Option<i64>,
    /// Whether the person confirmed they wrote the recovery code down.
    pub code_confirmed: bool,
    /// Whether a backup is overdue: none yet, or the last is over a week old.
    pub overdue: bool,
}

/// What one backup did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupReport {
    /// The backup's id.
    pub id: String,
    /// `full`, or `incremental`: only what changed since the backup before.
    pub kind: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Resources in it.
    pub resources: u64,
    /// Restores of the backup at the endpoint, with the recovery code, since the last
    /// backup from this profile there: 0 unless someone restored it meanwhile (the
    /// person on a new phone, or whoever else holds the code). Always 0 for a file.
    pub restores_elsewhere: u64,
    /// When the last of those restores was, RFC 3339; `None` when there were none.
    pub last_restored_at: Option<String>,
}

/// How long before a backup counts as overdue.
pub const OVERDUE_AFTER_S: i64 = 7 * 86_400;

/// The profile's recovery secret and backup key.
pub fn state(conn: &Connection) -> Result<(RecoverySecret, Zeroizing<[u8; 32]>)> {
    let row: Option<(Vec<u8>, Vec<u8>)> = conn
        .query_row(
            "SELECT recovery_secret, backup_key FROM backup_state WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match row {
        Some((s, k)) => {
            let s = Zeroizing::new(s);
            let k = Zeroizing::new(k);
            let key: [u8; 32] = k
                .as_slice()
                .try_into()
                .map_err(|_| Error::internal("the stored backup key is not 32 bytes"))?;
            Ok((RecoverySecret::from_bytes(&s)?, Zeroizing::new(key)))
        }
        None => renew(conn),
    }
}

/// A new recovery secret and backup key, replacing any before.
fn renew(conn: &Connection) -> Result<(RecoverySecret, Zeroizing<[u8; 32]>)> {
    let secret = RecoverySecret::generate()?;
    let mut key = Zeroizing::new([0u8; 32]);
    crate::keys::fill_random(key.as_mut())?;
    store_keys(conn, &secret, key.as_slice())?;
    Ok((secret, key))
}

/// Keep `secret` and `key` as the recovery secret and backup key, replacing any
/// before; the person has yet to confirm the code.
fn store_keys(conn: &Connection, secret: &RecoverySecret, key: &[u8]) -> Result<()> {
    conn.execute(
        "INSERT INTO backup_state (id, recovery_secret, backup_key, created_at)
         VALUES (1, ?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET recovery_secret = excluded.recovery_secret,
           backup_key = excluded.backup_key, created_at = excluded.created_at,
           confirmed_at = NULL",
        params![secret.as_bytes().as_slice(), key, now_unix()],
    )?;
    Ok(())
}

/// The recovery code, made on first use. Each showing is recorded in the audit log
/// (`recovery-code-shown`), since whoever sees the code can restore the profile.
pub fn recovery_code(profile: &Profile) -> Result<Zeroizing<String>> {
    shown(profile, "as text")
}

/// The recovery code as a QR matrix, to print and keep with the written code;
/// recorded in the audit log like [`recovery_code`].
pub fn recovery_qr(profile: &Profile) -> Result<crate::qr::QrMatrix> {
    crate::qr::qr(&shown(profile, "as a QR code")?)
}

/// The recovery code (made on first use), with its showing `how` audited in the same
/// transaction.
fn shown(profile: &Profile, how: &str) -> Result<Zeroizing<String>> {
    profile.vault().write(|c| {
        let tx = c.transaction()?;
        let code = state(&tx)?.0.code();
        crate::audit::append(&tx, crate::audit::AuditEvent::RecoveryCodeShown, None, how)?;
        tx.commit()?;
        Ok(code)
    })
}

/// Replace the recovery code (and the backup key): the old code opens no backup made
/// from now on. Make a backup afterwards.
pub fn regenerate_recovery_code(profile: &Profile) -> Result<Zeroizing<String>> {
    profile.vault().write(|c| {
        let tx = c.transaction()?;
        let code = rekey(&tx, "a new recovery code; the old one opens no new backup")?;
        tx.commit()?;
        Ok(code)
    })
}

/// Replace the recovery secret and the backup key in `tx`, audited with `why`: the
/// old code opens no backup made from now on, and the backups stored under it are
/// deleted at the next backup to the endpoint (the first code replaced since then is
/// the one with blobs). The person is asked to confirm the new code.
pub fn rekey(tx: &rusqlite::Transaction<'_>, why: &str) -> Result<Zeroizing<String>> {
    if crate::vault::meta::get(tx, "stale_backup_locator")?.is_none() {
        let (old, _) = state(tx)?;
        crate::vault::meta::set(
            tx,
            "stale_backup_locator",
            &remote::locator_and_fetch(&old).0,
        )?;
    }
    let (s, _) = renew(tx)?;
    // Backups under the new key start a new chain with a whole one.
    clear_chain(tx)?;
    crate::audit::append(tx, crate::audit::AuditEvent::RecoveryCodeChanged, None, why)?;
    Ok(s.code())
}

/// Take a recovery secret and backup key made on another of the person's devices
/// (see [`rekey`]): the person confirms the code again, and the next backup is whole.
pub fn adopt_keys(tx: &rusqlite::Transaction<'_>, secret: &[u8], key: &[u8]) -> Result<()> {
    let secret = RecoverySecret::from_bytes(secret)?;
    if key.len() != 32 {
        return Err(Error::invalid("the backup key is not 32 bytes"));
    }
    store_keys(tx, &secret, key)?;
    clear_chain(tx)
}

/// Two group positions (1-based) to ask back, to check the code was written down.
pub fn confirmation_positions() -> Result<[usize; 2]> {
    let mut b = [0u8; 2];
    crate::keys::fill_random(&mut b)?;
    let first = 1 + usize::from(b[0]) % code::GROUPS;
    let mut second = 1 + usize::from(b[1]) % (code::GROUPS - 1);
    if second >= first {
        second += 1;
    }
    Ok([first.min(second), first.max(second)])
}

/// Check the groups the person typed at `positions`; on success, record that the
/// code is written down. A mismatch is [`Error::InvalidInput`].
pub fn confirm_recovery_code(profile: &Profile, answers: &[(usize, String)]) -> Result<()> {
    if answers.len() < 2 {
        return Err(Error::invalid("type back two groups of the code"));
    }
    profile.vault().write(|c| {
        let (s, _) = state(c)?;
        for (pos, typed) in answers {
            let want = s.groups(&[*pos]);
            let ok = want.first().is_some_and(|w| {
                crate::keys::same_secret(w.as_bytes(), code::normalise_group(typed).as_bytes())
            });
            if !ok {
                return Err(Error::invalid(format!(
                    "group {pos} does not match the recovery code; check what you wrote down"
                )));
            }
        }
        c.execute(
            "UPDATE backup_state SET confirmed_at = ?1 WHERE id = 1",
            [now_unix()],
        )?;
        Ok(())
    })
}

/// When the last backup was made, and whether one is overdue.
pub fn status(profile: &Profile) -> Result<BackupStatus> {
    profile.vault().read(|c| {
        let row: Option<(Option<i64>, Option<i64>, Option<i64>)> = c
            .query_row(
                "SELECT last_backup_at, last_backup_bytes, confirmed_at FROM backup_state WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let (last, bytes, confirmed) = row.unwrap_or((None, None, None));
        Ok(BackupStatus {
            last_backup_at: last,
            last_backup_bytes: bytes,
            code_confirmed: confirmed.is_some(),
            overdue: last.is_none_or(|t| now_unix() - t > OVERDUE_AFTER_S),
        })
    })
}

/// Write a full backup of the profile to `path`, readable by its owner only (mode
/// 0600). The file is written beside its target and moved into place only when
/// complete, so a crash leaves either no file or a whole one, and the profile is
/// only read.
pub fn backup_to_file(profile: &Profile, path: &Path) -> Result<BackupReport> {
    if path.is_dir() {
        return Err(Error::invalid(
            "the backup path is a folder; give a file name",
        ));
    }
    let tmp = path.with_extension("carry-tmp");
    let result = (|| -> Result<BackupReport> {
        let file = crate::private_file::create(&tmp).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::invalid(format!("the folder for {} does not exist", path.display()))
            }
            std::io::ErrorKind::PermissionDenied => Error::invalid(format!(
                "{} cannot be written here (permission denied)",
                path.display()
            )),
            _ => Error::from(e),
        })?;
        let (report, file, _) = write_backup(profile, BufWriter::new(file), None, None, false)?;
        file.into_inner()
            .map_err(|e| Error::from(e.into_error()))?
            .sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(report)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    let report = result?;
    record_backup(profile, &report, "a file")?;
    Ok(report)
}

/// Note a finished backup: when, which and how large, and an audit line.
fn record_backup(profile: &Profile, report: &BackupReport, place: &str) -> Result<()> {
    profile.vault().write(|c| {
        c.execute(
            "UPDATE backup_state SET last_backup_at = ?1, last_backup_id = ?2, last_backup_bytes = ?3
             WHERE id = 1",
            params![now_unix(), report.id, report.bytes as i64],
        )?;
        crate::audit::append(
            c,
            crate::audit::AuditEvent::BackedUp,
            None,
            &format!(
                "{} backup {} to {place}, {} bytes",
                report.kind, report.id, report.bytes
            ),
        )
    })
}

/// Where an incremental backup goes: on top of the backup `base_id`, at `seq` in
/// its chain.
pub struct Link {
    base_id: String,
    seq: u32,
}

/// The chain of backups at the endpoint, as of the last upload.
pub struct Chain {
    /// The endpoint's version number of the last upload.
    pub version: i64,
    id: String,
    seq: u32,
    full_bytes: i64,
    since_full_bytes: i64,
}

/// Incrementals allowed after a full backup before the next whole one.
const MAX_INCREMENTALS: u32 = 16;

impl Chain {
    /// The link for an incremental backup on top of this chain, unless the next one
    /// should be whole: the chain is long, or its increments add up to half the full
    /// backup (a whole one is then cheaper to restore).
    pub fn next(&self) -> Option<Link> {
        (self.seq <= MAX_INCREMENTALS && self.since_full_bytes * 2 < self.full_bytes).then(|| {
            Link {
                base_id: self.id.clone(),
                seq: self.seq + 1,
            }
        })
    }
}

/// The chain of backups at the endpoint this profile extends, if any.
pub fn chain(conn: &Connection) -> Result<Option<Chain>> {
    Ok(conn
        .query_row(
            "SELECT chain_version, chain_id, chain_seq, chain_full_bytes, chain_since_full_bytes
             FROM backup_state WHERE id = 1 AND chain_version IS NOT NULL",
            [],
            |r| {
                Ok(Chain {
                    version: r.get(0)?,
                    id: r.get(1)?,
                    seq: r.get(2)?,
                    full_bytes: r.get(3)?,
                    since_full_bytes: r.get(4)?,
                })
            },
        )
        .optional()?)
}

/// Forget the chain: the next backup to the endpoint is a whole one.
fn clear_chain(conn: &Connection) -> Result<()> {
    conn.execute(
        "UPDATE backup_state SET chain_version = NULL, chain_id = NULL, chain_seq = NULL,
           chain_full_bytes = NULL, chain_since_full_bytes = NULL, tracking = NULL
         WHERE id = 1",
        [],
    )?;
    Ok(())
}

/// Note an upload stored at the endpoint as `version`, and clear the changes it
/// carried (up to `changes_upto`), in one transaction. A chain always has tracking on
/// (it was switched on before the snapshot; this keeps it so whatever came between).
pub fn extend_chain(
    profile: &Profile,
    report: &BackupReport,
    version: i64,
    changes_upto: i64,
) -> Result<()> {
    profile.vault().write(|c| {
        let tx = c.transaction()?;
        let before = chain(&tx)?;
        let bytes = report.bytes as i64;
        let (seq, full, since) = match (report.kind.as_str(), before) {
            ("incremental", Some(b)) => (b.seq + 1, b.full_bytes, b.since_full_bytes + bytes),
            _ => (1, bytes, 0),
        };
        tx.execute(
            "UPDATE backup_state SET chain_version = ?1, chain_id = ?2, chain_seq = ?3,
               chain_full_bytes = ?4, chain_since_full_bytes = ?5, tracking = 1 WHERE id = 1",
            params![version, report.id, seq, full, since],
        )?;
        tx.execute("DELETE FROM backup_changes WHERE seq <= ?1", [changes_upto])?;
        tx.commit()?;
        Ok(())
    })
}

/// Stream a backup into `out`: a whole one, or with `link`, an incremental one of
/// what changed since the chain's last. The backup key is wrapped under the recovery
/// code, or under `wrap_with` (a one-time secret, for a move). With `chain` (a backup
/// to the endpoint), changes are tracked from here on for the next incremental. Also
/// returns the last change it covers.
pub fn write_backup<W: std::io::Write>(
    profile: &Profile,
    out: W,
    link: Option<&Link>,
    wrap_with: Option<&RecoverySecret>,
    chain: bool,
) -> Result<(BackupReport, W, i64)> {
    // The keys first (a write: made on first use), then one read snapshot.
    let (secret, key) = profile.vault().write(|c| {
        let tx = c.transaction()?;
        // The identity travels in the backup, so make sure it exists first.
        crate::vault::identity::get(&tx)?;
        let keys = state(&tx)?;
        if chain {
            // Before the snapshot: whatever is written after it is recorded.
            tx.execute("UPDATE backup_state SET tracking = 1 WHERE id = 1", [])?;
        }
        tx.commit()?;
        Ok(keys)
    })?;
    let id = {
        let mut b = [0u8; 16];
        crate::keys::fill_random(&mut b)?;
        B64.encode(b)
    };
    let kind = if link.is_some() {
        "incremental"
    } else {
        "full"
    };
    let header = format::Header {
        format: "carry-backup".into(),
        version: 1,
        id: id.clone(),
        kind: kind.into(),
        base: link.map(|l| l.base_id.clone()),
        seq: link.map_or(1, |l| l.seq),
        created_at: now_unix(),
        schema: SCHEMA_VERSION,
        wrapped_key: format::wrap(&wrap_with.unwrap_or(&secret).derive(Purpose::Wrap), &key)?,
        nonce_prefix: String::new(),
    };
    let mut w = format::Writer::new(out, header, &key)?;
    let dumped = profile.vault().read(|c| {
        c.execute_batch("BEGIN DEFERRED")?;
        let r = dump::dump(c, SCHEMA_VERSION, link.is_some(), &mut |bytes| {
            w.write(bytes)
        });
        c.execute_batch("COMMIT")?;
        r
    })?;
    let (out, bytes) = w.finish()?;
    Ok((
        BackupReport {
            id,
            kind: kind.into(),
            bytes,
            resources: dumped.resources,
            restores_elsewhere: 0,
            last_restored_at: None,
        },
        out,
        dumped.changes_upto,
    ))
}

/// Read `data` as a backup with a fixed key: the header, then every chunk (fuzzing).
#[cfg(feature = "fuzzing")]
pub fn read_for_fuzzing(data: &[u8]) {
    let mut input = data;
    let Ok((header, raw)) = format::read_header(&mut input) else {
        return;
    };
    if let Ok(mut reader) = format::Reader::new(input, &header, raw, &[9u8; 32]) {
        while let Ok(Some(_)) = reader.next_chunk() {}
    }
}

/// Load `content` into a migrated in-memory vault, as a restore does, and roll it back
/// (fuzzing).
#[cfg(feature = "fuzzing")]
pub fn load_for_fuzzing(incremental: bool, content: &[u8]) {
    thread_local! {
        /// One migrated in-memory vault per thread: each input loads inside a
        /// transaction that is rolled back, so the schema is built once, not per input.
        static VAULT: std::cell::RefCell<Option<Connection>> = const { std::cell::RefCell::new(None) };
    }
    VAULT.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let Ok(mut conn) = Connection::open_in_memory() else {
                return;
            };
            if crate::vault::migrations::migrate(&mut conn).is_err() {
                return;
            }
            *slot = Some(conn);
        }
        let Some(conn) = slot.as_mut() else {
            return;
        };
        let Ok(tx) = conn.transaction() else {
            return;
        };
        let _ = tx.pragma_update(None, "defer_foreign_keys", true);
        let mut loader = dump::Loader::new(incremental);
        if loader.feed(&tx, content).is_ok() && loader.finish().is_ok() {
            let _ = dump::Loader::rebuild(&tx);
        }
        // Dropped without a commit: rolled back, for the next input.
    });
}
