//! Restore: a whole backup, and any increments on it in order, into an empty folder.
//! The profile is built in a folder beside the target, checked, and moved into place
//! only when whole, so a failure or a crash leaves nothing half-restored.

use std::io::{BufReader, Read};
use std::path::Path;

use super::code::{Purpose, RecoverySecret};
use super::{clear_chain, dump, format};
use crate::error::{Error, Result};
use crate::keys::KeyStore;
use crate::profile::Profile;
use crate::vault::SCHEMA_VERSION;

/// What records a joining device in the vault being restored, inside the restore's
/// transaction.
pub type Join = dyn Fn(&rusqlite::Connection) -> Result<()> + Send + Sync;

/// How far a restore moves sequence numbers on (see [`restore`]).
const SEQ_JUMP: i64 = 1_000_000;

/// Restore the backup in `file` into the empty folder `dir` with `code`, wrapping the
/// new vault's key with `key_store`. A wrong code is [`Error::WrongRecoveryCode`] and leaves
/// nothing behind; so does any other failure: the profile is built in a folder beside
/// `dir` and moved into place only when whole. The vault only: records shared with the
/// person are not in backups, and `carry_core::restore::from_file` asks for them again.
pub fn restore_from_file(
    dir: &Path,
    file: &Path,
    code: &str,
    key_store: &dyn KeyStore,
) -> Result<Profile> {
    let secret = RecoverySecret::parse(code)?;
    let input = BufReader::new(std::fs::File::open(file).map_err(|e| Error::NotFound {
        what: format!("the backup file ({e})"),
    })?);
    let profile = restore(dir, vec![input], &secret, key_store, None)?;
    record_restored(&profile, "from a backup file")?;
    Ok(profile)
}

/// Record in the restored profile's audit log that it was restored, and from where:
/// the person reviewing the log on the new phone sees where its history resumes.
pub(super) fn record_restored(profile: &Profile, from: &str) -> Result<()> {
    profile.vault().write(|c| {
        crate::audit::append(c, crate::audit::AuditEvent::Restored, None, from)?;
        super::remote::forget_restores_seen(c)
    })
}

/// Restore from `inputs`: a whole backup first, then each increment on the one
/// before it. A restored profile is on one device: other devices are added again.
/// With `join`, it is instead another device of the profile and keeps the device
/// list: `join` records this device in the restored vault (the device feature's
/// part, given by it).
pub fn restore<R: Read>(
    dir: &Path,
    inputs: Vec<R>,
    secret: &RecoverySecret,
    key_store: &dyn KeyStore,
    join: Option<&Join>,
) -> Result<Profile> {
    if dir.join(crate::vault::VAULT_FILE).exists()
        || dir.read_dir().is_ok_and(|mut d| d.next().is_some())
    {
        return Err(Error::Conflict {
            reason: format!("{} is not empty; restore into a new folder", dir.display()),
        });
    }
    // Check every header (and the code) before anything is written.
    let kek = secret.derive(Purpose::Wrap);
    let mut opened = Vec::with_capacity(inputs.len());
    let mut before: Option<format::Header> = None;
    // The oldest schema any of the backups was made under.
    let mut oldest = SCHEMA_VERSION;
    for mut input in inputs {
        let (header, raw) = format::read_header(&mut input)?;
        oldest = oldest.min(header.schema);
        if header.schema > SCHEMA_VERSION {
            return Err(Error::TooNew {
                found: header.schema,
                supported: SCHEMA_VERSION,
            });
        }
        let follows = match (&before, header.kind.as_str()) {
            (None, "full") => true,
            (Some(b), "incremental") => {
                header.base.as_deref() == Some(b.id.as_str()) && header.seq == b.seq + 1
            }
            _ => false,
        };
        if !follows {
            return Err(Error::invalid(if before.is_none() {
                "restore starts from a full backup"
            } else {
                "the backups do not form one chain (an increment is missing or out of order)"
            }));
        }
        let key = format::unwrap(&kek, &header.wrapped_key)?;
        let reader = format::Reader::new(input, &header, raw, &key)?;
        before = Some(header);
        opened.push(reader);
    }
    if opened.is_empty() {
        return Err(Error::invalid("there is no backup to restore"));
    }
    let building = dir.with_extension("restoring");
    if building.exists() {
        std::fs::remove_dir_all(&building)?;
    }
    let result = (|| -> Result<()> {
        let profile = Profile::create(&building, "restoring", key_store)?;
        profile.vault().write(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            // Increments replace whole small tables that others refer to; the
            // references are checked once everything is in.
            tx.pragma_update(None, "defer_foreign_keys", true)?;
            // The change-tracking triggers would record every row loaded, only for
            // the records to be cleared below: they are set aside while loading.
            let tracking = crate::vault::tracking::set_aside(&tx)?;
            dump::Loader::clear(&tx)?;
            for (i, reader) in opened.iter_mut().enumerate() {
                let mut loader = dump::Loader::new(i > 0);
                while let Some(chunk) = reader.next_chunk()? {
                    loader.feed(&tx, &chunk)?;
                }
                loader.finish()?;
            }
            dump::Loader::rebuild(&tx)?;
            // A backup made before the administrative category holds claims under
            // `other`, as the vault it came from did before its upgrade.
            crate::record::category::recategorise_administrative(&tx)?;
            // And display lines from an older formatter (before schema 13) read as
            // this build writes them; a newer backup's already do.
            if oldest < 13 {
                crate::record::redisplay::all(&tx)?;
            }
            // Provider sign-ins are not in backups: each source signs in again.
            tx.execute(
                "UPDATE provider_sources SET state = 'authorize', last_error = NULL",
                [],
            )?;
            // Envelopes may have gone out after this backup was made: move every
            // sequence number well past anything used since, and send whole records
            // next (a whole record, or a resync request, may skip ahead; nothing
            // else may, so nothing stale is ever taken for new).
            tx.execute(
                "UPDATE grants SET next_seq = next_seq + ?1,
                   reset_next = CASE WHEN direction = 'out' THEN 1 ELSE reset_next END",
                [SEQ_JUMP],
            )?;
            // The next backup to the endpoint starts a new chain.
            clear_chain(&tx)?;
            match join {
                Some(join) => join(&tx)?,
                None => {
                    tx.execute("DELETE FROM devices", [])?;
                }
            }
            tx.execute_batch("DELETE FROM device_changes; DELETE FROM device_outbox;")?;
            tracking.put_back(&tx)?;
            tx.commit()?;
            Ok(())
        })?;
        profile.integrity_check()?;
        let check = profile.vault().read(crate::audit::verify)?;
        crate::audit::require(&check)?;
        profile.lock();
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&building);
        return Err(e);
    }
    if dir.exists() {
        std::fs::remove_dir(dir)?;
    }
    std::fs::rename(&building, dir)?;
    Profile::open(dir, key_store)
}

/// Restore the backup in `file` as another device of the profile, recorded by `join`
/// (what the tests of devices joining use in place of the relay).
pub fn restore_file_joining(
    dir: &Path,
    file: &Path,
    code: &str,
    key_store: &dyn KeyStore,
    join: &Join,
) -> Result<Profile> {
    let secret = RecoverySecret::parse(code)?;
    let input = BufReader::new(std::fs::File::open(file)?);
    restore(dir, vec![input], &secret, key_store, Some(join))
}

/// Drop the change-tracking triggers (incremental backups, other devices) from
/// `profile`: the benchmarks' yardstick for what they cost, and nothing else.
#[cfg(feature = "plaintext-baseline")]
pub fn without_change_tracking(profile: &Profile) -> Result<()> {
    profile.vault().write(|c| {
        let tx = c.transaction()?;
        // Committed without putting them back: gone for good.
        let _gone = crate::vault::tracking::set_aside(&tx)?;
        tx.commit()?;
        Ok(())
    })
}
