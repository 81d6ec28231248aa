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

use std::io::{BufReader, BufWriter, Read};
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::KeyStore;
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
    /// `full`.
    pub kind: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Resources in it.
    pub resources: u64,
}

/// How far a restore moves sequence numbers on (see `restore`).
const SEQ_JUMP: i64 = 1_000_000;

/// How long before a backup counts as overdue.
pub const OVERDUE_AFTER_S: i64 = 7 * 86_400;

fn state(conn: &Connection) -> Result<(RecoverySecret, Zeroizing<[u8; 32]>)> {
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
    conn.execute(
        "INSERT INTO backup_state (id, recovery_secret, backup_key, created_at)
         VALUES (1, ?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET recovery_secret = excluded.recovery_secret,
           backup_key = excluded.backup_key, created_at = excluded.created_at,
           confirmed_at = NULL",
        params![secret.as_bytes().as_slice(), key.as_slice(), now_unix()],
    )?;
    Ok((secret, key))
}

/// The recovery code, made on first use.
pub fn recovery_code(profile: &Profile) -> Result<Zeroizing<String>> {
    profile.vault().write(|c| Ok(state(c)?.0.code()))
}

/// Replace the recovery code (and the backup key): the old code opens no backup made
/// from now on. Make a backup afterwards.
pub fn regenerate_recovery_code(profile: &Profile) -> Result<Zeroizing<String>> {
    profile.vault().write(|c| {
        let tx = c.transaction()?;
        // The backups stored under the old code are deleted at the next backup to
        // the endpoint (the first code replaced since then is the one with blobs).
        if crate::share::people::meta(&tx, "stale_backup_locator")?.is_none() {
            let (old, _) = state(&tx)?;
            crate::share::people::set_meta(
                &tx,
                "stale_backup_locator",
                &locator_and_fetch(&old).0,
            )?;
        }
        let (s, _) = renew(&tx)?;
        crate::audit::append(
            &tx,
            crate::audit::AuditEvent::RecoveryCodeChanged,
            None,
            "a new recovery code; the old one opens no new backup",
        )?;
        tx.commit()?;
        Ok(s.code())
    })
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

/// Write a full backup of the profile to `path`. The file is written beside its
/// target and moved into place only when complete, so a crash leaves either no file
/// or a whole one, and the profile is only read.
pub fn backup_to_file(profile: &Profile, path: &Path) -> Result<BackupReport> {
    if path.is_dir() {
        return Err(Error::invalid(
            "the backup path is a folder; give a file name",
        ));
    }
    let tmp = path.with_extension("carry-tmp");
    let result = (|| -> Result<BackupReport> {
        let file = std::fs::File::create(&tmp)?;
        let (report, file) = write_backup(profile, BufWriter::new(file))?;
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
            &format!("full backup {} to {place}, {} bytes", report.id, report.bytes),
        )
    })
}

/// Stream a full backup into `out`.
fn write_backup<W: std::io::Write>(profile: &Profile, out: W) -> Result<(BackupReport, W)> {
    // The keys first (a write: made on first use), then one read snapshot.
    let (secret, key) = profile.vault().write(|c| {
        // The identity travels in the backup, so make sure it exists first.
        crate::share::people::identity(c)?;
        state(c)
    })?;
    let id = {
        let mut b = [0u8; 16];
        crate::keys::fill_random(&mut b)?;
        B64.encode(b)
    };
    let header = format::Header {
        format: "carry-backup".into(),
        version: 1,
        id: id.clone(),
        kind: "full".into(),
        base: None,
        seq: 1,
        created_at: now_unix(),
        schema: SCHEMA_VERSION,
        wrapped_key: format::wrap(&secret.derive(Purpose::Wrap), &key)?,
        nonce_prefix: String::new(),
    };
    let mut w = format::Writer::new(out, header, &key)?;
    let resources = profile.vault().read(|c| {
        c.execute_batch("BEGIN DEFERRED")?;
        let r = dump::dump(c, SCHEMA_VERSION, &mut |bytes| w.write(bytes));
        c.execute_batch("COMMIT")?;
        r
    })?;
    let bytes = w.written;
    let out = w.finish()?;
    Ok((
        BackupReport {
            id,
            kind: "full".into(),
            bytes,
            resources,
        },
        out,
    ))
}

/// The endpoint's name for this code's backups, and the secret that fetches them.
fn locator_and_fetch(secret: &RecoverySecret) -> (String, Zeroizing<String>) {
    (
        B64.encode(secret.derive(Purpose::Locator).as_ref()),
        Zeroizing::new(B64.encode(secret.derive(Purpose::Fetch).as_ref())),
    )
}

/// Back up the whole profile to the endpoint: encrypted on the device, stored as an
/// opaque blob under a locator the recovery code derives, so the code alone finds it
/// again. The endpoint keeps the last few versions.
pub async fn backup_to_endpoint(
    profile: std::sync::Arc<Profile>,
    endpoint: &str,
    options: &crate::sync::SyncOptions,
) -> Result<BackupReport> {
    use crate::sync::db;
    let (report, blob, secret, stale) = db(&profile, |p| {
        let (report, blob) = write_backup(p, Vec::new())?;
        let (secret, stale) = p.vault().read(|c| {
            Ok((
                state(c)?.0,
                crate::share::people::meta(c, "stale_backup_locator")?,
            ))
        })?;
        Ok((report, blob, secret, stale))
    })
    .await?;
    let (locator, _) = locator_and_fetch(&secret);
    // The endpoint keeps only SHA-256 of the 32-byte fetch secret.
    let fetch_hash = B64.encode(ring::digest::digest(
        &ring::digest::SHA256,
        secret.derive(Purpose::Fetch).as_ref(),
    ));
    let me = db(&profile, |p| {
        p.vault().write(|c| crate::share::people::identity(c))
    })
    .await?;
    let deadline = options.budget.map(|b| std::time::Instant::now() + b);
    let http = crate::sync::http::Http::new(deadline, options.cancel.clone())?;
    let relay = crate::share::relay::Relay::connect(http, endpoint, &me).await?;
    let blob = std::sync::Arc::new(blob);
    let r = relay
        .owner(&format!("backup/v1/blobs/{locator}"), |c, url| {
            c.put(url)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .header("X-Carry-Fetch-Hash", fetch_hash.as_str())
                .body(blob.as_ref().clone())
        })
        .await?;
    if r.status != 201 && r.status != 200 {
        return Err(crate::share::relay::status_error("storing the backup", &r));
    }
    // Backups under a code that was replaced are deleted once a new one is stored.
    if let Some(old) = stale {
        let r = relay
            .owner(&format!("backup/v1/blobs/{old}"), |c, url| c.delete(url))
            .await?;
        if matches!(r.status, 200 | 204 | 404) {
            db(&profile, |p| {
                p.vault().write(|c| {
                    c.execute("DELETE FROM meta WHERE key = 'stale_backup_locator'", [])?;
                    Ok(())
                })
            })
            .await?;
        }
    }
    let r2 = report.clone();
    db(&profile, move |p| record_backup(p, &r2, "the endpoint")).await?;
    Ok(report)
}

/// Restore from the endpoint with nothing but the recovery code: the code derives
/// where the backup is and the secret that fetches it. A code with no backup there
/// is [`Error::NotFound`]; repeated wrong tries are slowed down by the endpoint.
pub async fn restore_from_endpoint(
    dir: &Path,
    endpoint: &str,
    code: &str,
    key_store: std::sync::Arc<dyn KeyStore>,
) -> Result<Profile> {
    let secret = RecoverySecret::parse(code)?;
    let (locator, fetch) = locator_and_fetch(&secret);
    let base = crate::share::relay::base_of(endpoint)?;
    let root = base.trim_end_matches("/relay/v1").to_string();
    let http = crate::sync::http::Http::new(None, None)?;
    let url = format!("{root}/backup/v1/blobs/{locator}");
    let r = http
        .send(|| {
            http.client()
                .get(&url)
                .header("X-Carry-Fetch", fetch.as_str())
        })
        .await?;
    match r.status {
        200 => {}
        404 => {
            return Err(Error::NotFound {
                what: "a backup for this recovery code at that endpoint".into(),
            })
        }
        s => {
            return Err(Error::Network {
                reason: format!("the endpoint answered {s}"),
                retry_after_s: None,
            })
        }
    }
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        restore(
            &dir,
            std::io::Cursor::new(r.body),
            &secret,
            key_store.as_ref(),
        )
    })
    .await
    .map_err(|e| Error::internal(format!("the restore task failed: {e}")))?
}

/// Restore the backup in `file` into the empty folder `dir` with `code`, wrapping the
/// new vault's key with `key_store`. A wrong code is [`Error::WrongKey`] and leaves
/// nothing behind; so does any other failure: the profile is built in a folder beside
/// `dir` and moved into place only when whole.
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
    restore(dir, input, &secret, key_store)
}

fn restore<R: Read>(
    dir: &Path,
    mut input: R,
    secret: &RecoverySecret,
    key_store: &dyn KeyStore,
) -> Result<Profile> {
    if dir.join(crate::vault::VAULT_FILE).exists()
        || dir.read_dir().is_ok_and(|mut d| d.next().is_some())
    {
        return Err(Error::Conflict {
            reason: format!("{} is not empty; restore into a new folder", dir.display()),
        });
    }
    let (header, raw) = format::read_header(&mut input)?;
    if header.schema > SCHEMA_VERSION {
        return Err(Error::TooNew {
            found: header.schema,
            supported: SCHEMA_VERSION,
        });
    }
    if header.kind != "full" {
        return Err(Error::invalid("restore starts from a full backup"));
    }
    let key = format::unwrap(&secret.derive(Purpose::Wrap), &header.wrapped_key)?;
    let mut reader = format::Reader::new(input, &header, raw, &key)?;
    let building = dir.with_extension("restoring");
    if building.exists() {
        std::fs::remove_dir_all(&building)?;
    }
    let result = (|| -> Result<()> {
        let profile = Profile::create(&building, "restoring", key_store)?;
        profile.vault().write(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            dump::Loader::clear(&tx)?;
            let mut loader = dump::Loader::new();
            while let Some(chunk) = reader.next_chunk()? {
                loader.feed(&tx, &chunk)?;
            }
            loader.finish(&tx)?;
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
    let profile = Profile::open(dir, key_store)?;
    // Records shared with this profile are not in backups: ask for them again.
    crate::share::resync_received(&profile)?;
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::{self, NewGrant, Role, Scope};
    use crate::{Category, ExportScope, ImportOptions, PassphraseKeyStore, Reading};

    const FILE: &str = "sotf-Ned_Hintz_e4b9259d-0f54-48d1-a35d-b526729a4dfe.json";

    fn ks() -> PassphraseKeyStore {
        PassphraseKeyStore::new("a test passphrase").unwrap()
    }

    fn original(dir: &Path) -> Profile {
        let p = Profile::create(dir, "Ned Hintz", &ks()).unwrap();
        let f = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures/fhir/synthea")
            .join(FILE);
        p.import_file(&f, ImportOptions::default()).unwrap();
        p.add_reading(&Reading::parse("weight", "71kg").unwrap(), Some("morning"))
            .unwrap();
        // A person and a grant to them.
        let other = crate::crypto::identity::Identity::generate()
            .unwrap()
            .public();
        p.vault()
            .write(|c| {
                let tx = c.transaction()?;
                share::people::upsert_person(&tx, "Sam Carer", &other, "http://127.0.0.1:9")?;
                tx.commit()?;
                Ok(())
            })
            .unwrap();
        share::grant(
            &p,
            &NewGrant {
                person: "Sam Carer".into(),
                role: Role::Contributor,
                scope: Scope {
                    categories: vec![Category::VitalSigns],
                    ..Scope::default()
                },
                purpose: "help".into(),
                basis: None,
                duration_s: None,
            },
        )
        .unwrap();
        p
    }

    fn entries(p: &Profile) -> Vec<String> {
        let mut out = Vec::new();
        p.export(&ExportScope::default(), &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let mut e: Vec<String> = v["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.to_string())
            .collect();
        e.sort();
        e
    }

    #[test]
    fn a_restore_equals_the_original_and_a_wrong_code_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = original(&d.path().join("p"));
        assert!(status(&p).unwrap().overdue);
        let code = recovery_code(&p).unwrap();
        let file = d.path().join("backup.carry");
        let r = backup_to_file(&p, &file).unwrap();
        assert!(r.resources > 50);
        let st = status(&p).unwrap();
        assert!(!st.overdue && st.last_backup_bytes == Some(r.bytes as i64));

        // Nothing readable in the blob.
        let blob = std::fs::read(&file).unwrap();
        for word in ["Hintz", "Sam Carer", "Body Weight", "resourceType"] {
            assert!(
                !blob.windows(word.len()).any(|w| w == word.as_bytes()),
                "{word}"
            );
        }

        // A wrong code, a typo, a damaged file: each fails and leaves nothing.
        let target = d.path().join("restored");
        let other = RecoverySecret::generate().unwrap().code();
        assert!(matches!(
            restore_from_file(&target, &file, &other, &ks()),
            Err(Error::WrongKey)
        ));
        let mut typo = code.to_string();
        typo.replace_range(0..1, if typo.starts_with('A') { "B" } else { "A" });
        assert!(matches!(
            restore_from_file(&target, &file, &typo, &ks()),
            Err(Error::InvalidInput { .. })
        ));
        let mut damaged = blob.clone();
        let n = damaged.len();
        damaged[n - 40] ^= 1;
        let bad = d.path().join("damaged.carry");
        std::fs::write(&bad, &damaged).unwrap();
        assert!(restore_from_file(&target, &bad, &code, &ks()).is_err());
        assert!(!target.exists() && !target.with_extension("restoring").exists());

        // The right code: the same record, people, grants, audit chain and identity.
        let q = restore_from_file(&target, &file, &code, &ks()).unwrap();
        assert_eq!(entries(&q), entries(&p));
        assert_eq!(share::people(&q).unwrap(), share::people(&p).unwrap());
        assert_eq!(share::grants(&q).unwrap(), share::grants(&p).unwrap());
        let log = |x: &Profile| share::audit_log(x, 10_000).unwrap();
        assert_eq!(
            log(&q)[..],
            log(&p)[1..],
            "everything up to the backup itself"
        );
        assert!(share::verify_audit(&q).unwrap().ok());
        assert_eq!(
            share::my_identity(&q).unwrap().keys,
            share::my_identity(&p).unwrap().keys
        );
        assert_eq!(recovery_code(&q).unwrap(), code);
        assert_eq!(
            q.search("weight", None).unwrap().len(),
            p.search("weight", None).unwrap().len()
        );
        // Not over an existing profile.
        assert!(matches!(
            restore_from_file(&target, &file, &code, &ks()),
            Err(Error::Conflict { .. })
        ));
    }

    #[test]
    fn a_new_code_retires_the_old_one_and_confirmation_checks_groups() {
        let d = tempfile::tempdir().unwrap();
        let p = Profile::create(&d.path().join("p"), "Ned", &ks()).unwrap();
        let old = recovery_code(&p).unwrap();
        let new = regenerate_recovery_code(&p).unwrap();
        assert_ne!(old, new);
        let file = d.path().join("b.carry");
        backup_to_file(&p, &file).unwrap();
        assert!(matches!(
            restore_from_file(&d.path().join("x"), &file, &old, &ks()),
            Err(Error::WrongKey)
        ));
        let [a, b] = confirmation_positions().unwrap();
        assert!(a < b && b <= code::GROUPS);
        let groups: Vec<&str> = new.split('-').collect();
        assert!(
            confirm_recovery_code(&p, &[(a, "0000".into()), (b, groups[b - 1].into())]).is_err()
        );
        assert!(!status(&p).unwrap().code_confirmed);
        confirm_recovery_code(
            &p,
            &[(a, groups[a - 1].to_lowercase()), (b, groups[b - 1].into())],
        )
        .unwrap();
        assert!(status(&p).unwrap().code_confirmed);
    }
}
