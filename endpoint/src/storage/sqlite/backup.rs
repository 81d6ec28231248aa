//! Backups: locators and versions on SQLite.

use super::*;

impl BackupStore for SqliteStore {
    fn backup_put(&self, u: &Upload<'_>) -> Result<Put> {
        let bytes = i64::try_from(u.data.len()).unwrap_or(i64::MAX);
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            // Only a full upload creates a locator; an incremental needs one.
            if u.base.is_none() {
                tx.execute(
                    "INSERT INTO backup_locators
                       (locator, owner, fetch_hash, latest, failures, window_start_s, created_s)
                     VALUES (?1, ?2, ?3, 0, 0, 0, ?4) ON CONFLICT (locator) DO NOTHING",
                    params![u.locator, u.owner, u.fetch_hash, u.now_s],
                )?;
            }
            let row: Option<(String, i64)> = tx
                .query_row(
                    "SELECT owner, latest FROM backup_locators WHERE locator = ?1",
                    [u.locator],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let latest = match row {
                Some((owner, _)) if owner != u.owner => return Ok(Put::NotOwner),
                Some((_, latest)) => Some(latest).filter(|&l| l > 0),
                None => None,
            };
            let chain = match (u.base, latest) {
                // The incrementals after the latest full.
                (Some(_), Some(_)) => tx.query_row(
                    "SELECT count(*) FROM backup_versions
                     WHERE locator = ?1 AND version > coalesce(
                       (SELECT max(version) FROM backup_versions
                        WHERE locator = ?1 AND base IS NULL), 0)",
                    [u.locator],
                    |r| r.get(0),
                )?,
                _ => 0,
            };
            if let Some(refused) = check_base(u.base, latest, chain) {
                // Dropping the transaction rolls it back: nothing changed.
                return Ok(refused);
            }
            let version = latest.unwrap_or(0) + 1;
            tx.execute(
                "UPDATE backup_locators SET latest = ?2, fetch_hash = ?3 WHERE locator = ?1",
                params![u.locator, version, u.fetch_hash],
            )?;
            // Room for the blob first, then its bytes in pieces (incremental blob
            // I/O), so a blob is never whole in memory.
            tx.execute(
                "INSERT INTO backup_versions (locator, version, bytes, created_s, data, base)
                 VALUES (?1, ?2, ?3, ?4, zeroblob(?3), ?5)",
                params![u.locator, version, bytes, u.now_s, u.base],
            )?;
            if !u.data.is_empty() {
                let row = tx.last_insert_rowid();
                let mut blob =
                    tx.blob_open(rusqlite::MAIN_DB, "backup_versions", "data", row, false)?;
                for_each_piece(u.data, |piece| {
                    std::io::Write::write_all(&mut blob, piece)
                        .map_err(|e| StoreError::Backend(format!("write the backup: {e}")))
                })?;
                blob.close()?;
            }
            let fulls = tx
                .prepare(
                    "SELECT version FROM backup_versions WHERE locator = ?1 AND base IS NULL
                     ORDER BY version DESC LIMIT ?2",
                )?
                .query_map(params![u.locator, u.keep.max(1)], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<i64>>>()?;
            if let Some(below) = prune_below(&fulls, u.keep) {
                tx.execute(
                    "DELETE FROM backup_versions WHERE locator = ?1 AND version < ?2",
                    params![u.locator, below],
                )?;
            }
            tx.commit()?;
            Ok(Put::Stored(version))
        })
    }

    fn backup_fetch_to(
        &self,
        locator: &str,
        fetch_hash: &[u8],
        version: Option<i64>,
        now_s: i64,
        out: &mut dyn BlobOut,
    ) -> Result<Fetch> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let row: Option<(Vec<u8>, i64, i64, i64)> = tx
                .query_row(
                    "SELECT fetch_hash, latest, failures, window_start_s
                     FROM backup_locators WHERE locator = ?1",
                    [locator],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            let Some((stored, latest, failures, start_s)) = row else {
                return Ok(Fetch::Unknown);
            };
            let window = Window { failures, start_s };
            let fetch = match decide_fetch(&stored, window, fetch_hash, now_s) {
                FetchStep::Locked(left) => Fetch::Locked(left),
                FetchStep::Wrong(w) => {
                    tx.execute(
                        "UPDATE backup_locators SET failures = ?2, window_start_s = ?3
                         WHERE locator = ?1",
                        params![locator, w.failures, w.start_s],
                    )?;
                    Fetch::Wrong
                }
                FetchStep::Serve => {
                    let want = version.unwrap_or(latest);
                    let row: Option<(i64, Option<i64>)> = tx
                        .query_row(
                            "SELECT rowid, base FROM backup_versions
                             WHERE locator = ?1 AND version = ?2",
                            params![locator, want],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )
                        .optional()?;
                    match row {
                        Some((rowid, base)) => {
                            // The bytes in pieces (incremental blob I/O).
                            let blob = tx.blob_open(
                                rusqlite::MAIN_DB,
                                "backup_versions",
                                "data",
                                rowid,
                                true,
                            )?;
                            let mut buf = vec![0u8; BLOB_PIECE];
                            let mut at = 0;
                            loop {
                                let n = blob.read_at(&mut buf, at)?;
                                if n == 0 {
                                    break;
                                }
                                put_piece(out, &buf[..n])?;
                                at += n;
                            }
                            blob.close()?;
                            if version.is_none() {
                                tx.execute(
                                    "UPDATE backup_locators
                                     SET restores = restores + 1, last_restore_s = ?2
                                     WHERE locator = ?1",
                                    params![locator, now_s],
                                )?;
                            }
                            Fetch::Blob {
                                version: want,
                                base,
                                data: Vec::new(),
                            }
                        }
                        None if version.is_some() => Fetch::NoVersion,
                        None => Fetch::Unknown,
                    }
                }
            };
            tx.commit()?;
            Ok(fetch)
        })
    }

    fn backup_restores(&self, locator: &str, owner: &str) -> Result<Option<Restores>> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT restores, last_restore_s FROM backup_locators
                 WHERE locator = ?1 AND owner = ?2",
                params![locator, owner],
                |r| {
                    Ok(Restores {
                        count: r.get(0)?,
                        last_s: r.get(1)?,
                    })
                },
            )
            .optional()?)
        })
    }

    fn backup_versions(&self, locator: &str, owner: &str) -> Result<Option<Vec<Version>>> {
        self.with(|c| {
            let tx = c.transaction()?;
            let owned = tx
                .query_row(
                    "SELECT 1 FROM backup_locators WHERE locator = ?1 AND owner = ?2",
                    params![locator, owner],
                    |_| Ok(()),
                )
                .optional()?;
            if owned.is_none() {
                return Ok(None);
            }
            let versions = tx
                .prepare(
                    "SELECT version, bytes, created_s, base FROM backup_versions
                     WHERE locator = ?1 ORDER BY version DESC",
                )?
                .query_map([locator], |r| {
                    Ok(Version {
                        version: r.get(0)?,
                        bytes: r.get(1)?,
                        created_s: r.get(2)?,
                        base: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some(versions))
        })
    }

    fn backup_delete(&self, locator: &str, owner: &str) -> Result<bool> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "DELETE FROM backup_locators WHERE locator = ?1 AND owner = ?2",
                params![locator, owner],
            )?;
            if n > 0 {
                tx.execute("DELETE FROM backup_versions WHERE locator = ?1", [locator])?;
            }
            tx.commit()?;
            Ok(n > 0)
        })
    }
}
