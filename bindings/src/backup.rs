//! Never lose the record, as apps call it: the recovery code, encrypted backups to a
//! file, and restoring a profile on a fresh install.
//!
//! Thin on purpose: each call forwards to `carry_core::backup`.

use std::path::PathBuf;
use std::sync::Arc;

use carry_core::backup as cb;

use crate::callbacks::{Events, KeyStore, KeyStoreAdapter};
use crate::error::Result;
use crate::profile::{blocking, Profile};

/// Where backups stand.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BackupStatus {
    /// When the last backup was made (Unix seconds), if ever.
    pub last_backup_at: Option<i64>,
    /// Its size in bytes.
    pub last_backup_bytes: Option<i64>,
    /// Whether the person confirmed they wrote the recovery code down.
    pub code_confirmed: bool,
    /// Whether a backup is overdue (none yet, or the last is over a week old): a
    /// good moment to remind the person.
    pub overdue: bool,
}

/// What one backup did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BackupReport {
    /// The backup's id.
    pub id: String,
    /// `full`, or `incremental` (only what changed since the last backup to the
    /// endpoint).
    pub kind: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Resources in it.
    pub resources: u64,
    /// Restores of the backup at the endpoint with the recovery code since this
    /// profile's last backup there: 0 unless someone restored it meanwhile. When it
    /// is not 0 and the person did not restore on a new phone, someone else has the
    /// code: tell them, and offer a new code (`regenerate_recovery_code`).
    pub restores_elsewhere: u64,
    /// When the last of those restores was, RFC 3339; `None` when there were none.
    pub last_restored_at: Option<String>,
}

impl From<cb::BackupReport> for BackupReport {
    fn from(r: cb::BackupReport) -> Self {
        BackupReport {
            id: r.id,
            kind: r.kind,
            bytes: r.bytes,
            resources: r.resources,
            restores_elsewhere: r.restores_elsewhere,
            last_restored_at: r.last_restored_at,
        }
    }
}

/// One group of the recovery code typed back, to confirm it was written down.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CodeGroupAnswer {
    /// Its position, from 1 (see [`recovery_confirmation_positions`]).
    pub position: u32,
    /// What the person typed.
    pub group: String,
}

#[uniffi::export(async_runtime = "tokio")]
impl Profile {
    /// The recovery code (14 groups of 4 characters), made on first use. Show it once
    /// for the person to write down, and keep it off screenshots.
    pub async fn recovery_code(&self) -> Result<String> {
        let core = self.core.clone();
        blocking(move || cb::recovery_code(&core).map(|c| c.to_string())).await
    }

    /// The recovery code as a QR code, for the person to print and keep with the
    /// written code. Show it only on request, and keep it off screenshots.
    pub async fn recovery_code_qr(&self) -> Result<crate::links::QrCode> {
        let core = self.core.clone();
        blocking(move || cb::recovery_qr(&core).map(Into::into)).await
    }

    /// Replace the recovery code; the old one opens no backup made afterwards.
    pub async fn regenerate_recovery_code(&self) -> Result<String> {
        let core = self.core.clone();
        blocking(move || cb::regenerate_recovery_code(&core).map(|c| c.to_string())).await
    }

    /// Check two groups the person typed back; on success the code counts as
    /// written down. A mismatch is `InvalidInput`.
    pub async fn confirm_recovery_code(&self, answers: Vec<CodeGroupAnswer>) -> Result<()> {
        let core = self.core.clone();
        let answers: Vec<(usize, String)> = answers
            .into_iter()
            .map(|a| (a.position as usize, a.group))
            .collect();
        blocking(move || cb::confirm_recovery_code(&core, &answers)).await
    }

    /// When the last backup was made, and whether one is overdue.
    pub async fn backup_status(&self) -> Result<BackupStatus> {
        let core = self.core.clone();
        let s = blocking(move || cb::status(&core)).await?;
        Ok(BackupStatus {
            last_backup_at: s.last_backup_at,
            last_backup_bytes: s.last_backup_bytes,
            code_confirmed: s.code_confirmed,
            overdue: s.overdue,
        })
    }

    /// Write a full, encrypted backup of the whole profile to `path` (written aside
    /// and moved into place when complete).
    pub async fn backup_to_file(&self, path: String) -> Result<BackupReport> {
        let core = self.core.clone();
        Ok(
            blocking(move || cb::backup_to_file(&core, &PathBuf::from(path)))
                .await?
                .into(),
        )
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Profile {
    /// Back up the whole profile to the profile's endpoint, encrypted on the device.
    /// The recovery code alone finds it again (see [`restore_from_endpoint`]); the
    /// endpoint keeps the last few versions. After the first, a backup carries only
    /// what changed since the last one (`kind` says which). `InvalidInput` if no
    /// endpoint is set.
    pub async fn backup_to_endpoint(&self) -> Result<BackupReport> {
        let url = self.endpoint_url().await?;
        let (options, _guard) = crate::share::exchange_options(None);
        Ok(
            cb::backup_to_endpoint(self.core.clone(), &url, &options, false)
                .await?
                .into(),
        )
    }
}

/// Restore from the endpoint at `endpoint` into the empty `folder` with nothing but
/// the recovery `code`. `NotFound` if that endpoint holds no backup for the code
/// (which is also what a mistyped but well-formed code gives); `InvalidInput` for a
/// typo the checksum catches; nothing is left behind on any failure.
#[uniffi::export(async_runtime = "tokio")]
pub async fn restore_from_endpoint(
    folder: String,
    endpoint: String,
    code: String,
    key_store: Arc<dyn KeyStore>,
    events: Option<Arc<dyn Events>>,
) -> Result<Arc<Profile>> {
    let code = zeroize::Zeroizing::new(code);
    let store: Arc<dyn carry_core::KeyStore> = Arc::new(KeyStoreAdapter(key_store));
    let core =
        carry_core::restore::from_endpoint(&PathBuf::from(folder), &endpoint, &code, store).await?;
    Ok(Profile::wrap(core, events))
}

/// Two positions (1-based) of the recovery code to ask the person to type back.
#[uniffi::export]
pub fn recovery_confirmation_positions() -> Result<Vec<u32>> {
    Ok(cb::confirmation_positions()?
        .iter()
        .map(|p| *p as u32)
        .collect())
}

/// Restore the backup in `file` into the empty `folder` with the recovery `code`,
/// wrapping the new vault's key with `key_store`. A wrong code is `WrongKey`, a typo
/// `InvalidInput`; either way nothing is left behind. Each provider needs a fresh
/// sign-in afterwards: sign-ins are never in backups.
#[uniffi::export(async_runtime = "tokio")]
pub async fn restore_from_file(
    folder: String,
    file: String,
    code: String,
    key_store: Arc<dyn KeyStore>,
    events: Option<Arc<dyn Events>>,
) -> Result<Arc<Profile>> {
    let core = blocking(move || {
        let code = zeroize::Zeroizing::new(code);
        carry_core::restore::from_file(
            &PathBuf::from(folder),
            &PathBuf::from(file),
            &code,
            &KeyStoreAdapter(key_store),
        )
    })
    .await?;
    Ok(Profile::wrap(core, events))
}
