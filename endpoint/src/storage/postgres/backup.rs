//! Backups: locators and versions on PostgreSQL, streamed in pieces.

use super::*;

/// Insert backup version `version` of upload `u` with binary `COPY`, its blob streamed
/// in pieces from the upload, so a blob is never whole in the endpoint's memory (the
/// server still assembles the `bytea` value).
fn copy_version(t: &mut Transaction<'_>, u: &Upload<'_>, version: i64) -> Res<()> {
    const WHAT: &str = "put backup: copy";
    let len = i32::try_from(u.data.len())
        .map_err(|_| Fail::Store(StoreError::Backend("the backup is over 2 GiB".into())))?;
    let bytes = i64::from(len);
    let io = |e: std::io::Error| Fail::Store(StoreError::Backend(format!("{WHAT}: {e}")));
    let mut head = Vec::with_capacity(128 + u.locator.len());
    head.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    head.extend_from_slice(&0i32.to_be_bytes()); // flags
    head.extend_from_slice(&0i32.to_be_bytes()); // header extension
    head.extend_from_slice(&6i16.to_be_bytes()); // fields
    let field = |head: &mut Vec<u8>, value: &[u8]| {
        head.extend_from_slice(&i32::try_from(value.len()).unwrap_or(i32::MAX).to_be_bytes());
        head.extend_from_slice(value);
    };
    field(&mut head, u.locator.as_bytes());
    field(&mut head, &version.to_be_bytes());
    field(&mut head, &bytes.to_be_bytes());
    field(&mut head, &u.now_s.to_be_bytes());
    head.extend_from_slice(&len.to_be_bytes());
    let mut tail = Vec::with_capacity(16);
    match u.base {
        Some(b) => field(&mut tail, &b.to_be_bytes()),
        None => tail.extend_from_slice(&(-1i32).to_be_bytes()),
    }
    tail.extend_from_slice(&(-1i16).to_be_bytes()); // the end of the data
    let mut w = t
        .copy_in(
            "COPY backup_versions (locator, version, bytes, created_s, data, base)
             FROM STDIN (FORMAT binary)",
        )
        .op(WHAT)?;
    w.write_all(&head).map_err(io)?;
    for_each_piece(u.data, |piece| {
        w.write_all(piece)
            .map_err(|e| StoreError::Backend(format!("{WHAT}: {e}")))
    })
    .map_err(Fail::Store)?;
    w.write_all(&tail).map_err(io)?;
    w.finish().op(WHAT)?;
    Ok(())
}

impl BackupStore for PostgresStore {
    fn backup_put(&self, u: &Upload<'_>) -> Result<Put> {
        const WHAT: &str = "put backup";
        let keep = u.keep.max(1);
        self.tx(WHAT, |t| {
            // Only a full upload creates a locator; an incremental needs one.
            if u.base.is_none() {
                t.execute(
                    "INSERT INTO backup_locators
                       (locator, owner, fetch_hash, latest, failures, window_start_s, created_s)
                     VALUES ($1, $2, $3, 0, 0, 0, $4) ON CONFLICT (locator) DO NOTHING",
                    &[&u.locator, &u.owner, &u.fetch_hash, &u.now_s],
                )
                .op(WHAT)?;
            }
            let row = t
                .query_opt(
                    "SELECT owner, latest FROM backup_locators WHERE locator = $1 FOR UPDATE",
                    &[&u.locator],
                )
                .op("put backup: lock")?;
            let latest = match row {
                Some(row) => {
                    let owner: String = row.try_get(0).op(WHAT)?;
                    if owner != u.owner {
                        return Ok(Put::NotOwner);
                    }
                    Some(row.try_get::<_, i64>(1).op(WHAT)?).filter(|&l| l > 0)
                }
                None => None,
            };
            let chain: i64 = match (u.base, latest) {
                // The incrementals after the latest full.
                (Some(_), Some(_)) => t
                    .query_one(
                        "SELECT count(*) FROM backup_versions
                         WHERE locator = $1 AND version > coalesce(
                           (SELECT max(version) FROM backup_versions
                            WHERE locator = $1 AND base IS NULL), 0)",
                        &[&u.locator],
                    )
                    .op("put backup: chain")?
                    .try_get(0)
                    .op(WHAT)?,
                _ => 0,
            };
            if let Some(refused) = check_base(u.base, latest, chain) {
                // Nothing was written: an incremental inserts no locator row.
                return Ok(refused);
            }
            let version = latest.unwrap_or(0) + 1;
            t.execute(
                "UPDATE backup_locators SET latest = $2, fetch_hash = $3 WHERE locator = $1",
                &[&u.locator, &version, &u.fetch_hash],
            )
            .op(WHAT)?;
            copy_version(t, u, version)?;
            let fulls = t
                .query(
                    "SELECT version FROM backup_versions WHERE locator = $1 AND base IS NULL
                     ORDER BY version DESC LIMIT $2",
                    &[&u.locator, &keep],
                )
                .op("put backup: fulls")?
                .iter()
                .map(|r| r.try_get(0).op(WHAT))
                .collect::<Res<Vec<i64>>>()?;
            if let Some(below) = prune_below(&fulls, keep) {
                t.execute(
                    "DELETE FROM backup_versions WHERE locator = $1 AND version < $2",
                    &[&u.locator, &below],
                )
                .op("put backup: prune")?;
            }
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
        const WHAT: &str = "fetch backup";
        self.tx(WHAT, |t| {
            let Some(row) = t
                .query_opt(
                    "SELECT fetch_hash, latest, failures, window_start_s
                     FROM backup_locators WHERE locator = $1 FOR UPDATE",
                    &[&locator],
                )
                .op(WHAT)?
            else {
                return Ok(Fetch::Unknown);
            };
            let stored: Vec<u8> = row.try_get(0).op(WHAT)?;
            let latest: i64 = row.try_get(1).op(WHAT)?;
            let window = Window {
                failures: row.try_get(2).op(WHAT)?,
                start_s: row.try_get(3).op(WHAT)?,
            };
            Ok(match decide_fetch(&stored, window, fetch_hash, now_s) {
                FetchStep::Locked(left) => Fetch::Locked(left),
                FetchStep::Wrong(w) => {
                    t.execute(
                        "UPDATE backup_locators SET failures = $2, window_start_s = $3
                         WHERE locator = $1",
                        &[&locator, &w.failures, &w.start_s],
                    )
                    .op("fetch backup: count")?;
                    Fetch::Wrong
                }
                FetchStep::Serve => {
                    let want = version.unwrap_or(latest);
                    match t
                        .query_opt(
                            "SELECT base, octet_length(data) FROM backup_versions
                             WHERE locator = $1 AND version = $2",
                            &[&locator, &want],
                        )
                        .op("fetch backup: data")?
                    {
                        Some(r) => {
                            let len: i32 = r.try_get(1).op(WHAT)?;
                            // The bytes in pieces, under the locator's lock (a retried
                            // transaction writes them again).
                            out.restart().map_err(|e| {
                                Fail::Store(StoreError::Backend(format!("{WHAT}: {e}")))
                            })?;
                            let mut at: i32 = 0;
                            while at < len {
                                let piece = t
                                    .query_one(
                                        "SELECT substring(data FROM $3 FOR $4)
                                         FROM backup_versions
                                         WHERE locator = $1 AND version = $2",
                                        &[&locator, &want, &(at + 1), &FETCH_PIECE],
                                    )
                                    .op("fetch backup: piece")?;
                                let bytes: &[u8] = piece.try_get(0).op(WHAT)?;
                                if bytes.is_empty() {
                                    break;
                                }
                                put_piece(out, bytes).map_err(Fail::Store)?;
                                at = at
                                    .saturating_add(i32::try_from(bytes.len()).unwrap_or(i32::MAX));
                            }
                            if version.is_none() {
                                t.execute(
                                    "UPDATE backup_locators
                                     SET restores = restores + 1, last_restore_s = $2
                                     WHERE locator = $1",
                                    &[&locator, &now_s],
                                )
                                .op("fetch backup: count the restore")?;
                            }
                            Fetch::Blob {
                                version: want,
                                base: r.try_get(0).op(WHAT)?,
                                data: Vec::new(),
                            }
                        }
                        None if version.is_some() => Fetch::NoVersion,
                        None => Fetch::Unknown,
                    }
                }
            })
        })
    }

    fn backup_restores(&self, locator: &str, owner: &str) -> Result<Option<Restores>> {
        const WHAT: &str = "count backup restores";
        self.read(|c| {
            c.query_opt(
                "SELECT restores, last_restore_s FROM backup_locators
                 WHERE locator = $1 AND owner = $2",
                &[&locator, &owner],
            )
            .op(WHAT)?
            .map(|r| {
                Ok(Restores {
                    count: r.try_get(0).op(WHAT)?,
                    last_s: r.try_get(1).op(WHAT)?,
                })
            })
            .transpose()
        })
    }

    fn backup_versions(&self, locator: &str, owner: &str) -> Result<Option<Vec<Version>>> {
        const WHAT: &str = "list backup versions";
        self.read(|c| {
            let owned = c
                .query_opt(
                    "SELECT 1 FROM backup_locators WHERE locator = $1 AND owner = $2",
                    &[&locator, &owner],
                )
                .op(WHAT)?;
            if owned.is_none() {
                return Ok(None);
            }
            c.query(
                "SELECT version, bytes, created_s, base FROM backup_versions
                 WHERE locator = $1 ORDER BY version DESC",
                &[&locator],
            )
            .op(WHAT)?
            .iter()
            .map(|r| {
                Ok(Version {
                    version: r.try_get(0).op(WHAT)?,
                    bytes: r.try_get(1).op(WHAT)?,
                    created_s: r.try_get(2).op(WHAT)?,
                    base: r.try_get(3).op(WHAT)?,
                })
            })
            .collect::<Res<Vec<_>>>()
            .map(Some)
        })
    }

    fn backup_delete(&self, locator: &str, owner: &str) -> Result<bool> {
        const WHAT: &str = "delete backup";
        self.tx(WHAT, |t| {
            let n = t
                .execute(
                    "DELETE FROM backup_locators WHERE locator = $1 AND owner = $2",
                    &[&locator, &owner],
                )
                .op(WHAT)?;
            if n > 0 {
                t.execute(
                    "DELETE FROM backup_versions WHERE locator = $1",
                    &[&locator],
                )
                .op("delete backup: versions")?;
            }
            Ok(n > 0)
        })
    }
}
