//! A person's profile: their vault and every operation on their record. This is the
//! type apps and the CLI hold.

use std::io::Write;
use std::path::Path;

use rusqlite::{params, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::export::{self, ExportScope};
use crate::import::{self, FileReport, ImportOptions};
use crate::keys::KeyStore;
use crate::query::{self, Detail, Item, Page, Stats, TimelineQuery};
use crate::readings::Reading;
use crate::time::now_unix;
use crate::vault::{Vault, SCHEMA_VERSION};

/// Longest profile name, in characters.
const NAME_MAX: usize = 100;

/// Facts about a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileInfo {
    /// The name the person gave the profile.
    pub name: String,
    /// When it was created (Unix seconds).
    pub created_at: i64,
    /// The vault's schema version.
    pub schema_version: i64,
    /// The item id of the Patient resource the profile is about, once known.
    pub self_patient: Option<i64>,
}

/// A person's profile, backed by an encrypted vault.
#[derive(Debug)]
pub struct Profile {
    vault: Vault,
}

impl Profile {
    /// Create a profile named `name` in the folder `dir`, with its key wrapped by
    /// `key_store`. Fails with [`Error::Conflict`] if `dir` already holds one.
    pub fn create(dir: &Path, name: &str, key_store: &dyn KeyStore) -> Result<Profile> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > NAME_MAX {
            return Err(Error::invalid(format!(
                "the profile name must be 1 to {NAME_MAX} characters"
            )));
        }
        let vault = Vault::create(dir, key_store)?;
        let profile = Profile { vault };
        profile.init_meta(name)?;
        Ok(profile)
    }

    /// Create a profile on a plaintext vault: the benchmark yardstick only.
    #[cfg(feature = "plaintext-baseline")]
    pub fn create_plaintext(dir: &Path, name: &str) -> Result<Profile> {
        let profile = Profile {
            vault: Vault::create_plaintext(dir)?,
        };
        profile.init_meta(name)?;
        Ok(profile)
    }

    fn init_meta(&self, name: &str) -> Result<()> {
        self.vault.write(|conn| {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('name', ?1), ('created_at', ?2)",
                params![name, now_unix().to_string()],
            )?;
            // The profile's identity: its signing and encryption key pairs.
            crate::vault::identity::get(conn)?;
            Ok(())
        })
    }

    /// Open the profile in `dir`. See [`Vault::open`] for the errors.
    pub fn open(dir: &Path, key_store: &dyn KeyStore) -> Result<Profile> {
        Ok(Profile {
            vault: Vault::open(dir, key_store)?,
        })
    }

    /// Close the vault and wipe its key from memory.
    pub fn lock(&self) {
        self.vault.lock();
    }

    /// Close the vault's files but keep the key (for iOS suspension). The next call,
    /// or [`Profile::resume`], reopens them.
    pub fn pause(&self) {
        self.vault.pause();
    }

    /// Reopen the files after [`Profile::pause`].
    pub fn resume(&self) -> Result<()> {
        self.vault.resume()
    }

    /// Unlock a locked profile.
    pub fn unlock(&self, key_store: &dyn KeyStore) -> Result<()> {
        self.vault.unlock(key_store)
    }

    /// Whether the profile is locked.
    pub fn is_locked(&self) -> bool {
        self.vault.is_locked()
    }

    /// Wrap the vault key with a different key store (a new passphrase).
    pub fn rewrap(&self, key_store: &dyn KeyStore) -> Result<()> {
        self.vault.rewrap(key_store)
    }

    /// The underlying vault.
    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// Name, creation time and schema version.
    pub fn info(&self) -> Result<ProfileInfo> {
        self.vault.read(|conn| {
            let get = |k: &str| -> Result<Option<String>> {
                Ok(conn
                    .query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))
                    .optional()?)
            };
            Ok(ProfileInfo {
                name: get("name")?.unwrap_or_default(),
                created_at: get("created_at")?.and_then(|v| v.parse().ok()).unwrap_or(0),
                schema_version: SCHEMA_VERSION,
                self_patient: get("self_patient")?.and_then(|v| v.parse().ok()),
            })
        })
    }

    /// Import one FHIR JSON or NDJSON file. A file that cannot be read at all comes
    /// back as a report with one `file` rejection and nothing stored.
    pub fn import_file(&self, path: &Path, options: ImportOptions<'_>) -> Result<FileReport> {
        self.vault
            .write(|conn| import::import_file(conn, path, options))
    }

    /// Record a reading the person took just now. Returns its timeline item.
    pub fn add_reading(&self, reading: &Reading, note: Option<&str>) -> Result<Item> {
        self.add_reading_at(reading, note, None)
    }

    /// Record a reading the person took at `taken_at` (Unix seconds; `None`: now), for
    /// one noted down earlier. A time in the future (beyond five minutes of clock
    /// skew) or before 1900 is `InvalidInput`.
    pub fn add_reading_at(
        &self,
        reading: &Reading,
        note: Option<&str>,
        taken_at: Option<i64>,
    ) -> Result<Item> {
        let info = self.info()?;
        let now = now_unix();
        crate::mend::check_time(taken_at, now)?;
        let id = self.vault.write(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let id = crate::mend::put_reading(
                &tx,
                &info.name,
                info.self_patient,
                reading,
                note,
                taken_at,
                now,
            )?;
            tx.commit()?;
            Ok(id)
        })?;
        Ok(self.show(id)?.item)
    }

    /// Delete the person's reading `id`. One that reached a provider is taken back
    /// there (marked `entered-in-error`) at the next sync, once; copies providers sent
    /// back go too. Returns how many providers it is to be taken back from.
    /// `InvalidInput` for anything but a reading entered here.
    pub fn delete_reading(&self, id: i64) -> Result<u64> {
        let now = now_unix();
        self.vault.write(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = crate::mend::delete_in(&tx, id, now)?;
            crate::mend::audited(&tx, "deleted", id, n)?;
            tx.commit()?;
            Ok(n)
        })
    }

    /// Replace the person's reading `id` with `reading` (taken at `taken_at`, else at
    /// the time of the one it replaces): the old one is deleted as by
    /// [`Profile::delete_reading`] and the new one recorded and sent on, in one step.
    /// Returns the new reading's timeline item.
    pub fn amend_reading(
        &self,
        id: i64,
        reading: &Reading,
        note: Option<&str>,
        taken_at: Option<i64>,
    ) -> Result<Item> {
        let info = self.info()?;
        let now = now_unix();
        crate::mend::check_time(taken_at, now)?;
        let new = self.vault.write(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let when = match taken_at {
                Some(t) => Some(t),
                None => tx
                    .query_row(
                        "SELECT json_extract(json, '$.effectiveDateTime') FROM resources WHERE id = ?1",
                        [id],
                        |r| r.get::<_, Option<String>>(0),
                    )
                    .optional()?
                    .flatten()
                    .and_then(|d| crate::record::summary::parse_fhir_date(&d)),
            };
            // The correction first, so it never takes the old one's item id.
            let new = crate::mend::put_reading(
                &tx,
                &info.name,
                info.self_patient,
                reading,
                note,
                when,
                now,
            )?;
            let n = crate::mend::delete_in(&tx, id, now)?;
            crate::mend::audited(&tx, &format!("amended as item {new}"), id, n)?;
            tx.commit()?;
            Ok(new)
        })?;
        Ok(self.show(new)?.item)
    }

    /// The people to contact: the ones the person added (oldest first), then those
    /// their providers' records name, each person once.
    pub fn contacts(&self) -> Result<Vec<crate::contacts::Contact>> {
        self.vault.read(crate::contacts::list)
    }

    /// Add someone to contact: kept in the record as a `RelatedPerson` entered by the
    /// person, shown on the emergency card and in summaries, never sent to a provider.
    /// `InvalidInput` for no name, or a telephone number or email that is not one.
    pub fn add_contact(
        &self,
        contact: &crate::contacts::NewContact,
    ) -> Result<crate::contacts::Contact> {
        let info = self.info()?;
        let now = now_unix();
        self.vault.write(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let added = crate::contacts::add_in(&tx, &info.name, info.self_patient, contact, now)?;
            tx.commit()?;
            Ok(added)
        })
    }

    /// Remove the contact `item` the person added. `InvalidInput` for anything else
    /// (a provider's record is theirs to correct), `NotFound` for no such item.
    pub fn remove_contact(&self, item: i64) -> Result<()> {
        self.vault.write(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            crate::contacts::remove_in(&tx, item)?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Keep a PDF or an image (JPEG, PNG, HEIC) of at most 20 MB as a document titled
    /// `title`, inside a `DocumentReference` in the record (encrypted with it, and
    /// shared wherever documents are). `content_type`, when given, must be what the
    /// bytes are. Returns its timeline item. `InvalidInput` for an empty, too large or
    /// unknown file, or no title.
    pub fn attach_document(
        &self,
        bytes: &[u8],
        title: &str,
        content_type: Option<&str>,
    ) -> Result<Item> {
        let info = self.info()?;
        let now = now_unix();
        let id = self.vault.write(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let id = crate::documents::attach_in(
                &tx,
                &info.name,
                info.self_patient,
                bytes,
                title,
                content_type,
                now,
            )?;
            tx.commit()?;
            Ok(id)
        })?;
        Ok(self.show(id)?.item)
    }

    /// The file of the document `id` (one added here, or a provider's whose content
    /// the record holds). See [`crate::documents`] for the errors.
    pub fn document_file(&self, id: i64) -> Result<crate::documents::DocumentFile> {
        self.vault.read(|conn| crate::documents::file(conn, id))
    }

    /// A page of the timeline, newest first.
    pub fn timeline(&self, query: &TimelineQuery) -> Result<Page> {
        self.vault.read(|conn| query::timeline(conn, query))
    }

    /// Full-text search: the best matches, newest first.
    pub fn search(&self, text: &str, limit: Option<u32>) -> Result<Vec<Item>> {
        self.vault.read(|conn| query::search(conn, text, limit))
    }

    /// One resource in full.
    pub fn show(&self, id: i64) -> Result<Detail> {
        self.vault.read(|conn| query::show(conn, id))
    }

    /// Item ids of the resources with FHIR type and id `Type/id`.
    pub fn find(&self, type_and_id: &str) -> Result<Vec<i64>> {
        let (t, i) = type_and_id.split_once('/').ok_or_else(|| {
            Error::invalid(format!("'{type_and_id}' is neither an item id nor Type/id"))
        })?;
        self.vault.read(|conn| query::find_by_type_id(conn, t, i))
    }

    /// Appointments still to come, soonest first (at most 500); cancelled, missed
    /// and mistaken ones left out.
    pub fn appointments(&self) -> Result<Vec<Item>> {
        let now = now_unix();
        self.vault
            .read(|conn| query::upcoming_appointments(conn, now))
    }

    /// Counts over the record.
    pub fn stats(&self) -> Result<Stats> {
        self.vault.read(query::stats)
    }

    /// Write the scoped record to `out` as a FHIR collection Bundle.
    pub fn export(&self, scope: &ExportScope, out: &mut dyn Write) -> Result<u64> {
        self.vault.read(|conn| export::export(conn, scope, out))
    }

    /// Write the scoped record to the file at `path` as a FHIR collection Bundle.
    /// The file is written beside its target (mode 0600) and moved into place only
    /// when complete, so a failure never leaves half a file under `path`.
    pub fn export_to_file(&self, scope: &ExportScope, path: &Path) -> Result<u64> {
        if path.is_dir() {
            return Err(Error::invalid(
                "the export path is a folder; give a file name",
            ));
        }
        let tmp = path.with_extension("carry-tmp");
        let mut w = std::io::BufWriter::new(crate::private_file::create(&tmp)?);
        let written = self.export(scope, &mut w).and_then(|n| {
            w.into_inner()
                .map_err(|e| Error::from(e.into_error()))?
                .sync_all()?;
            Ok(n)
        });
        match written {
            Ok(n) => {
                std::fs::rename(&tmp, path)?;
                self.vault.write(|c| {
                    crate::audit::append(
                        c,
                        crate::audit::AuditEvent::Exported,
                        None,
                        &format!("{n} resources to a file"),
                    )
                })?;
                Ok(n)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// The values of one concept over time, newest first: `what` is a concept's id
    /// (`hba1c`, `bp`, `weight`, `bmi`, `cholesterol`, `egfr`, `creatinine`,
    /// `glucose`), a synonym (`a1c`, `blood pressure`) or a LOINC code (`2093-3`).
    /// One value per fact, however many sources hold it. `InvalidInput` for a word
    /// that names no concept.
    pub fn trend(&self, what: &str) -> Result<crate::trend::Series> {
        self.vault.read(|c| crate::trend::series(c, what))
    }

    /// Run SQLite's full integrity check. `Ok` means the vault is sound.
    pub fn integrity_check(&self) -> Result<()> {
        self.vault.read(|conn| {
            let mut stmt = conn.prepare("PRAGMA integrity_check")?;
            let rows: Vec<String> = stmt
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            if rows == ["ok"] {
                return Ok(());
            }
            // SQLite's report runs to many lines: the first few problems say enough.
            const SHOWN: usize = 5;
            let problems: Vec<&str> = rows
                .iter()
                .flat_map(|r| r.lines())
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("***"))
                .collect();
            let mut reason = format!(
                "integrity check: {}",
                problems
                    .iter()
                    .take(SHOWN)
                    .copied()
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            if problems.len() > SHOWN {
                reason.push_str(&format!(" and {} more", problems.len() - SHOWN));
            }
            Err(Error::Corrupt {
                path: self.vault.db_path(),
                reason,
            })
        })
    }
}

/// Run `f` against the profile on a blocking thread.
pub async fn db<T: Send + 'static>(
    profile: &std::sync::Arc<Profile>,
    f: impl FnOnce(&Profile) -> Result<T> + Send + 'static,
) -> Result<T> {
    let p = profile.clone();
    tokio::task::spawn_blocking(move || f(&p))
        .await
        .map_err(|e| Error::internal(format!("a vault task failed: {e}")))?
}
