//! The embedded SQLite backend (the default). Plain SQLite through the workspace's one
//! rusqlite; a small pool of connections in WAL mode.
//!
//! Writes that check before they write (single-use tokens and challenges, the relay's
//! mailbox quota, a share link's failure cap and one-time use) run in IMMEDIATE
//! transactions: SQLite's one writer makes them exact.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use crate::backup_store::{
    check_base, decide as decide_fetch, for_each_piece, prune_below, put_piece, BackupStore,
    BlobOut, Fetch, Put, Restores, Step as FetchStep, Upload, Version, Window, BLOB_PIECE,
};
use crate::fhir_store::{
    refresh_step, shared_types_sql, stamp, successor_grant, unstamped, Grant, Query, Refresh,
    RefreshStep, Refreshed, Result, Spent, Store, StoreError, Stored,
};
use crate::links_store::{
    decide, embeds, fetch_step, Access, Answer, Ask, Attempt, Change, Link, NewLink, Outcome,
    ShlStore, Step, Via, OPENING_LOOKBACK, OPENING_WINDOW_S,
};
use crate::migrations::{self, Ddl, Migration};
use crate::relay_store::{
    page_cut, retired_again, DirectoryEntry, Envelope, NewEnvelope, Page, Posted, Pruned, Quota,
    RelayStore, Retired, Retirement, Session, RETIRE_HANDOVER_SQL, RETIRE_KEY_SQL,
    RETIRE_MAILBOX_SQL,
};

const POOL: usize = 8;

/// The schema, in numbered steps (see [`crate::migrations`]); every step is safe to
/// run again. Kept in step with the PostgreSQL backend's list.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        what: "the FHIR facade, the relay, share links and backups",
        steps: &[Ddl::Run(FIRST)],
    },
    Migration {
        version: 2,
        what: "incremental backups: each version names its base (NULL: a whole one)",
        steps: &[Ddl::AddColumn {
            table: "backup_versions",
            column: "base",
            ddl: "ALTER TABLE backup_versions ADD COLUMN base INTEGER",
        }],
    },
    Migration {
        version: 3,
        what: "restores counted per backup (none before they were)",
        steps: &[
            Ddl::AddColumn {
                table: "backup_locators",
                column: "restores",
                ddl: "ALTER TABLE backup_locators ADD COLUMN restores INTEGER NOT NULL DEFAULT 0",
            },
            Ddl::AddColumn {
                table: "backup_locators",
                column: "last_restore_s",
                ddl: "ALTER TABLE backup_locators ADD COLUMN last_restore_s INTEGER",
            },
        ],
    },
    Migration {
        version: 4,
        what: "refused share-link requests counted, not logged row by row (old rows stay)",
        steps: &[
            Ddl::AddColumn {
                table: "shl_links",
                column: "refused",
                ddl: "ALTER TABLE shl_links ADD COLUMN refused INTEGER NOT NULL DEFAULT 0",
            },
            Ddl::AddColumn {
                table: "shl_links",
                column: "last_refused_s",
                ddl: "ALTER TABLE shl_links ADD COLUMN last_refused_s INTEGER",
            },
        ],
    },
    Migration {
        version: 5,
        what: "relay keys retired when a device is removed, and their successors",
        steps: &[Ddl::Run(
            "CREATE TABLE IF NOT EXISTS relay_retired (
                 key               BLOB PRIMARY KEY,
                 mailbox           TEXT NOT NULL UNIQUE,
                 successor         BLOB NOT NULL,
                 successor_mailbox TEXT NOT NULL,
                 at_s              INTEGER NOT NULL
             );",
        )],
    },
];

/// Migration 1: the tables as first released.
const FIRST: &str = "
CREATE TABLE IF NOT EXISTS tenants (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS resources (
    tenant          TEXT NOT NULL,
    rtype           TEXT NOT NULL,
    id              TEXT NOT NULL,
    version         INTEGER NOT NULL,
    last_updated_ms INTEGER NOT NULL,
    patient         TEXT,
    json            TEXT NOT NULL,
    PRIMARY KEY (tenant, rtype, id)
);
CREATE INDEX IF NOT EXISTS resources_changes ON resources (tenant, last_updated_ms, rtype, id);
CREATE INDEX IF NOT EXISTS resources_patient ON resources (tenant, patient, last_updated_ms, rtype, id);
CREATE TABLE IF NOT EXISTS identifiers (
    tenant  TEXT NOT NULL,
    rtype   TEXT NOT NULL,
    patient TEXT NOT NULL,
    key     TEXT NOT NULL,
    id      TEXT NOT NULL,
    PRIMARY KEY (tenant, rtype, patient, key)
);
CREATE TABLE IF NOT EXISTS grants (
    hash       TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    patient    TEXT NOT NULL,
    scope      TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    data       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS grants_family ON grants (tenant, patient, client_id);
CREATE TABLE IF NOT EXISTS relay_challenges (
    challenge  TEXT PRIMARY KEY,
    key        BLOB NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS relay_challenges_expiry ON relay_challenges (expires_ms);
CREATE TABLE IF NOT EXISTS relay_sessions (
    hash       TEXT PRIMARY KEY,
    key        BLOB NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS relay_sessions_expiry ON relay_sessions (expires_ms);
CREATE TABLE IF NOT EXISTS relay_directory (
    mailbox   TEXT PRIMARY KEY,
    sign      BLOB NOT NULL,
    enc       BLOB NOT NULL,
    binding   BLOB NOT NULL,
    updated_s INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS relay_envelopes (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    mailbox   TEXT NOT NULL,
    tag       TEXT NOT NULL,
    sender    TEXT NOT NULL,
    body      BLOB NOT NULL,
    created_s INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS relay_envelopes_mailbox ON relay_envelopes (mailbox, id);
CREATE INDEX IF NOT EXISTS relay_envelopes_sender ON relay_envelopes (sender, tag);
CREATE INDEX IF NOT EXISTS relay_envelopes_age ON relay_envelopes (created_s);
CREATE TABLE IF NOT EXISTS shl_links (
    id            TEXT PRIMARY KEY,
    owner         TEXT NOT NULL,
    flags         TEXT NOT NULL,
    passcode_hash TEXT,
    expires_s     INTEGER,
    once          INTEGER NOT NULL,
    max_failures  INTEGER NOT NULL,
    failures      INTEGER NOT NULL,
    accesses      INTEGER NOT NULL,
    created_s     INTEGER NOT NULL,
    revoked_s     INTEGER,
    used_s        INTEGER,
    file          TEXT NOT NULL,
    file_len      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS shl_links_owner ON shl_links (owner, created_s);
CREATE TABLE IF NOT EXISTS shl_tokens (
    hash      TEXT PRIMARY KEY,
    link      TEXT NOT NULL,
    recipient TEXT NOT NULL,
    expires_s INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS shl_tokens_link ON shl_tokens (link);
CREATE INDEX IF NOT EXISTS shl_tokens_expiry ON shl_tokens (expires_s);
CREATE TABLE IF NOT EXISTS shl_accesses (
    link      TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    at_s      INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    via       TEXT NOT NULL,
    PRIMARY KEY (link, seq)
);
CREATE TABLE IF NOT EXISTS backup_locators (
    locator        TEXT PRIMARY KEY,
    owner          TEXT NOT NULL,
    fetch_hash     BLOB NOT NULL,
    latest         INTEGER NOT NULL,
    failures       INTEGER NOT NULL,
    window_start_s INTEGER NOT NULL,
    created_s      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS backup_versions (
    locator   TEXT NOT NULL,
    version   INTEGER NOT NULL,
    bytes     INTEGER NOT NULL,
    created_s INTEGER NOT NULL,
    data      BLOB NOT NULL,
    PRIMARY KEY (locator, version)
);
";

/// Bring the database to the newest schema: the migrations it lacks, in one
/// IMMEDIATE transaction, so processes opening the same file at once do not race;
/// a database made by a newer endpoint is refused.
fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let found: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let pending = migrations::pending(MIGRATIONS, found)?;
    if pending.is_empty() {
        return Ok(());
    }
    for m in pending {
        for step in m.steps {
            match step {
                Ddl::Run(sql) => tx.execute_batch(sql)?,
                Ddl::AddColumn { table, column, ddl } => {
                    let has = tx
                        .prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?
                        .exists(params![table, column])?;
                    if !has {
                        tx.execute(ddl, [])?;
                    }
                }
            }
        }
    }
    tx.pragma_update(None, "user_version", migrations::latest(MIGRATIONS))?;
    tx.commit()?;
    Ok(())
}

/// Create the database file at `path`, if it is missing, readable and writable by
/// this user only (0600) whatever the umask; SQLite gives its `-wal` and `-shm` files
/// the database file's mode. An existing file keeps its mode, with a warning when
/// others may read it.
fn private_file(path: &Path) -> Result<()> {
    if path.as_os_str() == ":memory:" || path.to_string_lossy().starts_with("file:") {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            #[cfg(unix)]
            for suffix in ["", "-wal", "-shm"] {
                let mut name = path.as_os_str().to_owned();
                name.push(suffix);
                if let Ok(meta) = std::fs::metadata(&name) {
                    let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
                    if mode & 0o077 != 0 {
                        tracing::warn!(
                            file = %Path::new(&name).display(),
                            mode = format!("{:o}", mode & 0o777),
                            "the database file is open to other users: chmod 600 it"
                        );
                    }
                }
            }
            Ok(())
        }
        Err(e) => Err(StoreError::Backend(format!(
            "cannot create the database file: {e}"
        ))),
    }
}

/// SQLite storage in one file.
pub struct SqliteStore {
    path: std::path::PathBuf,
    pool: Mutex<Vec<Connection>>,
}

impl SqliteStore {
    /// Open (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        private_file(path)?;
        let mut conn = Self::connect(path)?;
        migrate(&mut conn)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            pool: Mutex::new(vec![conn]),
        })
    }

    fn connect(path: &Path) -> Result<Connection> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")?;
        Ok(conn)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => Self::connect(&self.path)?,
        };
        let out = f(&mut conn);
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < POOL {
            pool.push(conn);
        }
        out
    }
}

fn row_to_stored(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<(String, String, i64, i64, Option<String>, String)> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn stored(parts: (String, String, i64, i64, Option<String>, String)) -> Result<Stored> {
    let (rtype, id, version, last_updated_ms, patient, json) = parts;
    Ok(Stored {
        rtype,
        id,
        version,
        last_updated_ms,
        patient,
        json: Stored::raw(json)?,
    })
}

/// One resource by tenant, type and id.
fn select_one(c: &Connection, tenant: &str, rtype: &str, id: &str) -> Result<Option<Stored>> {
    c.query_row(
        "SELECT rtype, id, version, last_updated_ms, patient, json FROM resources
         WHERE tenant = ?1 AND rtype = ?2 AND id = ?3",
        params![tenant, rtype, id],
        row_to_stored,
    )
    .optional()?
    .map(stored)
    .transpose()
}

/// Insert or replace inside an open transaction (see [`Store::put`]).
fn put_in(
    tx: &Connection,
    tenant: &str,
    rtype: &str,
    id: &str,
    patient: Option<&str>,
    resource: &Value,
    now_ms: i64,
) -> Result<Stored> {
    let existing = select_one(tx, tenant, rtype, id)?;
    if let Some(old) = &existing {
        if unstamped(&old.resource()) == unstamped(resource) && old.patient.as_deref() == patient {
            return Ok(old.clone());
        }
    }
    let version = existing.map_or(1, |o| o.version + 1);
    // Keep change times strictly increasing per tenant so paging by them is exact.
    let last: Option<i64> = tx.query_row(
        "SELECT max(last_updated_ms) FROM resources WHERE tenant = ?1",
        [tenant],
        |r| r.get(0),
    )?;
    let when = last.map_or(now_ms, |l| now_ms.max(l + 1));
    let doc = stamp(resource, version, when);
    let json = serde_json::to_string(&doc).map_err(|e| StoreError::Backend(e.to_string()))?;
    tx.execute(
        "INSERT INTO resources (tenant, rtype, id, version, last_updated_ms, patient, json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (tenant, rtype, id) DO UPDATE SET version = excluded.version,
           last_updated_ms = excluded.last_updated_ms, patient = excluded.patient, json = excluded.json",
        params![tenant, rtype, id, version, when, patient, json],
    )?;
    Ok(Stored {
        rtype: rtype.into(),
        id: id.into(),
        version,
        last_updated_ms: when,
        patient: patient.map(str::to_string),
        json: Stored::raw(json)?,
    })
}

fn row_to_grant(r: &rusqlite::Row<'_>) -> rusqlite::Result<Grant> {
    Ok(Grant {
        tenant: r.get(0)?,
        kind: r.get(1)?,
        patient: r.get(2)?,
        scope: r.get(3)?,
        client_id: r.get(4)?,
        expires_ms: r.get(5)?,
        data: r.get(6)?,
    })
}

const GRANT_COLUMNS: &str = "tenant, kind, patient, scope, client_id, expires_ms, data";

impl Store for SqliteStore {
    fn ensure_tenant(&self, tenant: &str) -> Result<()> {
        self.with(|c| {
            c.execute("INSERT OR IGNORE INTO tenants (name) VALUES (?1)", [tenant])?;
            Ok(())
        })
    }

    fn has_tenant(&self, tenant: &str) -> Result<bool> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT 1 FROM tenants WHERE name = ?1",
                [tenant],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
        })
    }

    fn put(
        &self,
        tenant: &str,
        rtype: &str,
        id: &str,
        patient: Option<&str>,
        resource: &Value,
        now_ms: i64,
    ) -> Result<Stored> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let out = put_in(&tx, tenant, rtype, id, patient, resource, now_ms)?;
            tx.commit()?;
            Ok(out)
        })
    }

    fn get(&self, tenant: &str, rtype: &str, id: &str) -> Result<Option<Stored>> {
        self.with(|c| select_one(c, tenant, rtype, id))
    }

    fn search(&self, tenant: &str, q: &Query) -> Result<Vec<Stored>> {
        let mut sql = String::from(
            "SELECT rtype, id, version, last_updated_ms, patient, json FROM resources WHERE tenant = ?1",
        );
        let mut args: Vec<rusqlite::types::Value> = vec![tenant.to_string().into()];
        let mut arg = |sql: &mut String, clause: &str, v: rusqlite::types::Value| {
            args.push(v);
            sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
        };
        if let Some(t) = &q.rtype {
            arg(&mut sql, " AND rtype = ?", t.clone().into());
        }
        if let Some(p) = &q.patient {
            if q.include_shared {
                arg(
                    &mut sql,
                    &format!(
                        " AND (patient = ? OR (patient IS NULL AND {}))",
                        shared_types_sql()
                    ),
                    p.clone().into(),
                );
            } else {
                arg(&mut sql, " AND patient = ?", p.clone().into());
            }
        }
        if let Some(ms) = q.updated_after_ms {
            arg(&mut sql, " AND last_updated_ms > ?", ms.into());
        }
        if let Some(ms) = q.updated_since_ms {
            arg(&mut sql, " AND last_updated_ms >= ?", ms.into());
        }
        if let Some(a) = &q.after {
            arg(
                &mut sql,
                " AND (last_updated_ms, rtype, id) > (?",
                a.last_updated_ms.into(),
            );
            arg(&mut sql, ", ?", a.rtype.clone().into());
            arg(&mut sql, ", ?)", a.id.clone().into());
        }
        sql.push_str(" ORDER BY last_updated_ms, rtype, id");
        arg(&mut sql, " LIMIT ?", (q.limit as i64).into());
        self.with(|c| {
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args.iter()), row_to_stored)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().map(stored).collect()
        })
    }

    fn types(&self, tenant: &str) -> Result<Vec<String>> {
        self.with(|c| {
            let mut stmt =
                c.prepare("SELECT DISTINCT rtype FROM resources WHERE tenant = ?1 ORDER BY rtype")?;
            let types = stmt
                .query_map([tenant], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(types)
        })
    }

    fn delete(&self, tenant: &str, rtype: &str, id: &str) -> Result<bool> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "DELETE FROM resources WHERE tenant = ?1 AND rtype = ?2 AND id = ?3",
                params![tenant, rtype, id],
            )?;
            tx.execute(
                "DELETE FROM identifiers WHERE tenant = ?1 AND rtype = ?2 AND id = ?3",
                params![tenant, rtype, id],
            )?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn create_unique(
        &self,
        tenant: &str,
        rtype: &str,
        id: &str,
        patient: &str,
        key: &str,
        resource: &Value,
        now_ms: i64,
    ) -> Result<(Stored, bool)> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let found: Option<String> = tx
                .query_row(
                    "SELECT id FROM identifiers WHERE tenant = ?1 AND rtype = ?2 AND patient = ?3 AND key = ?4",
                    params![tenant, rtype, patient, key],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(existing) = found {
                if let Some(s) = select_one(&tx, tenant, rtype, &existing)? {
                    return Ok((s, false));
                }
            }
            tx.execute(
                "INSERT OR REPLACE INTO identifiers (tenant, rtype, patient, key, id) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![tenant, rtype, patient, key, id],
            )?;
            let s = put_in(&tx, tenant, rtype, id, Some(patient), resource, now_ms)?;
            tx.commit()?;
            Ok((s, true))
        })
    }

    fn put_grant(&self, hash: &str, g: &Grant) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO grants (hash, tenant, kind, patient, scope, client_id, expires_ms, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![hash, g.tenant, g.kind, g.patient, g.scope, g.client_id, g.expires_ms, g.data],
            )?;
            Ok(())
        })
    }

    fn get_grant(&self, hash: &str, now_ms: i64) -> Result<Option<Grant>> {
        self.with(|c| {
            Ok(c.query_row(
                &format!("SELECT {GRANT_COLUMNS} FROM grants WHERE hash = ?1 AND expires_ms > ?2"),
                params![hash, now_ms],
                row_to_grant,
            )
            .optional()?)
        })
    }

    fn take_grant(
        &self,
        hash: &str,
        kind: &str,
        tenant: &str,
        now_ms: i64,
    ) -> Result<Option<Grant>> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let g = tx
                .query_row(
                    &format!(
                        "SELECT {GRANT_COLUMNS} FROM grants WHERE hash = ?1 AND kind = ?2 AND tenant = ?3"
                    ),
                    params![hash, kind, tenant],
                    row_to_grant,
                )
                .optional()?;
            tx.execute(
                "DELETE FROM grants WHERE hash = ?1 AND kind = ?2 AND tenant = ?3",
                params![hash, kind, tenant],
            )?;
            // Expired grants go whenever one is taken, so the table stays small.
            tx.execute("DELETE FROM grants WHERE expires_ms <= ?1", [now_ms])?;
            tx.commit()?;
            Ok(g.filter(|g| g.expires_ms > now_ms))
        })
    }

    fn refresh_grant(&self, hash: &str, r: &Refresh<'_>) -> Result<Refreshed> {
        self.with(|c| {
            // SQLite's one writer: the IMMEDIATE transaction holds every row it reads.
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let found = tx
                .query_row(
                    &format!("SELECT {GRANT_COLUMNS} FROM grants WHERE hash = ?1"),
                    [hash],
                    row_to_grant,
                )
                .optional()?;
            let successor_unused = match found
                .as_ref()
                .filter(|g| g.kind == "spent")
                .and_then(|g| Spent::of(g).next_refresh)
            {
                Some(next) => tx
                    .query_row(
                        "SELECT 1 FROM grants WHERE hash = ?1 AND kind = 'refresh' AND expires_ms > ?2",
                        params![next, r.now_ms],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some(),
                None => true,
            };
            let out = match (refresh_step(found.as_ref(), successor_unused, r), found) {
                (RefreshStep::Rotate, Some(g)) => {
                    let spent = Spent::exchanged(r.now_ms, false, r);
                    tx.execute(
                        "UPDATE grants SET kind = 'spent', data = ?2 WHERE hash = ?1",
                        params![hash, spent.to_data()],
                    )?;
                    insert_pair(&tx, &g, r)?;
                    Refreshed::Issued {
                        grant: g,
                        retry: false,
                    }
                }
                (RefreshStep::Retry(old), Some(g)) => {
                    if let Some(a) = &old.next_access {
                        tx.execute(
                            "DELETE FROM grants WHERE hash = ?1 AND kind = 'access'",
                            [a],
                        )?;
                    }
                    if let Some(n) = &old.next_refresh {
                        tx.execute(
                            "UPDATE grants SET kind = 'superseded', data = '{}' WHERE hash = ?1",
                            [n],
                        )?;
                    }
                    let spent = Spent::exchanged(old.spent_ms, true, r);
                    tx.execute(
                        "UPDATE grants SET data = ?2 WHERE hash = ?1",
                        params![hash, spent.to_data()],
                    )?;
                    insert_pair(&tx, &g, r)?;
                    Refreshed::Issued {
                        grant: g,
                        retry: true,
                    }
                }
                (RefreshStep::Revoke, Some(g)) => Refreshed::Revoked(tx.execute(
                    "DELETE FROM grants WHERE tenant = ?1 AND patient = ?2 AND client_id = ?3",
                    params![g.tenant, g.patient, g.client_id],
                )?),
                _ => Refreshed::Unknown,
            };
            tx.commit()?;
            Ok(out)
        })
    }
}

/// Store the access and refresh token a refresh exchange issues, for `from`'s patient.
fn insert_pair(tx: &rusqlite::Transaction<'_>, from: &Grant, r: &Refresh<'_>) -> Result<()> {
    for (hash, kind, expires_ms) in [
        (r.access.0, "access", r.access.1),
        (r.refresh.0, "refresh", r.refresh.1),
    ] {
        let g = successor_grant(from, kind, expires_ms);
        tx.execute(
            "INSERT INTO grants (hash, tenant, kind, patient, scope, client_id, expires_ms, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                hash,
                g.tenant,
                g.kind,
                g.patient,
                g.scope,
                g.client_id,
                g.expires_ms,
                g.data
            ],
        )?;
    }
    Ok(())
}

/// Ids per `DELETE … IN (…)`, well under SQLite's bound on parameters.
const ACK_CHUNK: usize = 500;

fn to_usize(n: i64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

impl RelayStore for SqliteStore {
    fn put_challenge(&self, challenge: &str, key: &[u8], expires_ms: i64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO relay_challenges (challenge, key, expires_ms) VALUES (?1, ?2, ?3)",
                params![challenge, key, expires_ms],
            )?;
            Ok(())
        })
    }

    fn take_challenge(&self, challenge: &str, key: &[u8], now_ms: i64) -> Result<bool> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let expires: Option<i64> = tx
                .query_row(
                    "SELECT expires_ms FROM relay_challenges WHERE challenge = ?1 AND key = ?2",
                    params![challenge, key],
                    |r| r.get(0),
                )
                .optional()?;
            if expires.is_some() {
                tx.execute(
                    "DELETE FROM relay_challenges WHERE challenge = ?1 AND key = ?2",
                    params![challenge, key],
                )?;
            }
            tx.commit()?;
            Ok(expires.is_some_and(|e| e > now_ms))
        })
    }

    fn put_session(&self, hash: &str, session: &Session) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO relay_sessions (hash, key, expires_ms) VALUES (?1, ?2, ?3)",
                params![hash, session.key, session.expires_ms],
            )?;
            Ok(())
        })
    }

    fn get_session(&self, hash: &str, now_ms: i64) -> Result<Option<Session>> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT key, expires_ms FROM relay_sessions WHERE hash = ?1 AND expires_ms > ?2",
                params![hash, now_ms],
                |r| {
                    Ok(Session {
                        key: r.get(0)?,
                        expires_ms: r.get(1)?,
                    })
                },
            )
            .optional()?)
        })
    }

    fn put_directory(&self, e: &DirectoryEntry) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO relay_directory (mailbox, sign, enc, binding, updated_s)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (mailbox) DO UPDATE SET sign = excluded.sign, enc = excluded.enc,
                   binding = excluded.binding, updated_s = excluded.updated_s",
                params![e.mailbox, e.sign, e.enc, e.binding, e.updated_s],
            )?;
            Ok(())
        })
    }

    fn get_directory(&self, mailbox: &str) -> Result<Option<DirectoryEntry>> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT mailbox, sign, enc, binding, updated_s FROM relay_directory WHERE mailbox = ?1",
                [mailbox],
                |r| {
                    Ok(DirectoryEntry {
                        mailbox: r.get(0)?,
                        sign: r.get(1)?,
                        enc: r.get(2)?,
                        binding: r.get(3)?,
                        updated_s: r.get(4)?,
                    })
                },
            )
            .optional()?)
        })
    }

    fn post_envelope(&self, e: &NewEnvelope, quota: &Quota) -> Result<Posted> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let known = tx
                .query_row(
                    "SELECT 1 FROM relay_directory WHERE mailbox = ?1",
                    [&e.mailbox],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !known {
                return Ok(Posted::NoMailbox);
            }
            let (held, bytes): (i64, i64) = tx.query_row(
                "SELECT count(*), coalesce(sum(length(body)), 0) FROM relay_envelopes
                 WHERE mailbox = ?1",
                [&e.mailbox],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            if quota.refuses(to_usize(held), bytes, e.body.len()) {
                return Ok(Posted::Full);
            }
            tx.execute(
                "INSERT INTO relay_envelopes (mailbox, tag, sender, body, created_s)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![e.mailbox, e.tag, e.sender, e.body, e.created_s],
            )?;
            let id = tx.last_insert_rowid();
            tx.commit()?;
            Ok(Posted::Stored(id))
        })
    }

    fn fetch_envelopes(
        &self,
        mailbox: &str,
        after: i64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Page> {
        self.with(|c| {
            // One snapshot for both reads. Sizes first, so bodies past the page are
            // never read.
            let tx = c.transaction()?;
            let sizes = tx
                .prepare(
                    "SELECT id, length(body) FROM relay_envelopes
                     WHERE mailbox = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                )?
                .query_map(
                    params![
                        mailbox,
                        after,
                        i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1)
                    ],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let (n, more) = page_cut(&sizes, limit, max_bytes);
            let Some(&(last, _)) = n.checked_sub(1).and_then(|i| sizes.get(i)) else {
                return Ok(Page::default());
            };
            let envelopes = tx
                .prepare(
                    "SELECT id, tag, body, sender FROM relay_envelopes
                     WHERE mailbox = ?1 AND id > ?2 AND id <= ?3 ORDER BY id",
                )?
                .query_map(params![mailbox, after, last], |r| {
                    Ok(Envelope {
                        id: r.get(0)?,
                        tag: r.get(1)?,
                        body: r.get(2)?,
                        sender: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            tx.commit()?;
            Ok(Page { envelopes, more })
        })
    }

    fn ack_envelopes(&self, mailbox: &str, ids: &[i64]) -> Result<usize> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut deleted = 0;
            for chunk in ids.chunks(ACK_CHUNK) {
                let marks = vec!["?"; chunk.len()].join(", ");
                let mut args: Vec<rusqlite::types::Value> = vec![mailbox.to_string().into()];
                args.extend(chunk.iter().map(|id| rusqlite::types::Value::from(*id)));
                deleted += tx.execute(
                    &format!("DELETE FROM relay_envelopes WHERE mailbox = ? AND id IN ({marks})"),
                    rusqlite::params_from_iter(args.iter()),
                )?;
            }
            tx.commit()?;
            Ok(deleted)
        })
    }

    fn delete_tagged(&self, sender: &str, tag: &str) -> Result<usize> {
        self.with(|c| {
            Ok(c.execute(
                "DELETE FROM relay_envelopes WHERE sender = ?1 AND tag = ?2",
                params![sender, tag],
            )?)
        })
    }

    fn retire_key(&self, r: &Retirement) -> Result<Retired> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let existing: Option<Vec<u8>> = tx
                .query_row(
                    "SELECT successor FROM relay_retired WHERE key = ?1",
                    [&r.key],
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(existing) = existing {
                return Ok(retired_again(&existing, r));
            }
            tx.execute(
                "INSERT INTO relay_retired (key, mailbox, successor, successor_mailbox, at_s)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![r.key, r.mailbox, r.successor, r.successor_mailbox, r.at_s],
            )?;
            for sql in RETIRE_KEY_SQL {
                tx.execute(sql, [&r.key])?;
            }
            for sql in RETIRE_MAILBOX_SQL {
                tx.execute(sql, [&r.mailbox])?;
            }
            for sql in RETIRE_HANDOVER_SQL {
                tx.execute(sql, params![r.successor_mailbox, r.mailbox])?;
            }
            tx.commit()?;
            Ok(Retired::Done)
        })
    }

    fn successor_of(&self, mailbox: &str) -> Result<Option<String>> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT successor_mailbox FROM relay_retired WHERE mailbox = ?1",
                [mailbox],
                |r| r.get(0),
            )
            .optional()?)
        })
    }

    fn prune_relay(&self, now_ms: i64, envelopes_before_s: i64) -> Result<Pruned> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let pruned = Pruned {
                challenges: tx.execute(
                    "DELETE FROM relay_challenges WHERE expires_ms <= ?1",
                    [now_ms],
                )?,
                sessions: tx.execute(
                    "DELETE FROM relay_sessions WHERE expires_ms <= ?1",
                    [now_ms],
                )?,
                envelopes: tx.execute(
                    "DELETE FROM relay_envelopes WHERE created_s < ?1",
                    [envelopes_before_s],
                )?,
            };
            tx.commit()?;
            Ok(pruned)
        })
    }
}

/// The columns [`row_to_link`] reads, in order.
const LINK_COLUMNS: &str = "id, owner, flags, passcode_hash, expires_s, once, max_failures, \
     failures, accesses, created_s, revoked_s, used_s, refused, last_refused_s";

fn row_to_link(r: &rusqlite::Row<'_>) -> rusqlite::Result<Link> {
    Ok(Link {
        id: r.get(0)?,
        owner: r.get(1)?,
        flags: r.get(2)?,
        passcode_hash: r.get(3)?,
        expires_s: r.get(4)?,
        once: r.get(5)?,
        max_failures: r.get(6)?,
        failures: r.get(7)?,
        accesses: r.get(8)?,
        created_s: r.get(9)?,
        revoked_s: r.get(10)?,
        used_s: r.get(11)?,
        refused: r.get(12)?,
        last_refused_s: r.get(13)?,
    })
}

/// One link by id (inside a transaction or not).
fn select_link(c: &Connection, id: &str) -> Result<Option<Link>> {
    Ok(c.query_row(
        &format!("SELECT {LINK_COLUMNS} FROM shl_links WHERE id = ?1"),
        [id],
        row_to_link,
    )
    .optional()?)
}

/// A link's file.
fn select_file(c: &Connection, id: &str) -> Result<String> {
    Ok(
        c.query_row("SELECT file FROM shl_links WHERE id = ?1", [id], |r| {
            r.get(0)
        })?,
    )
}

/// Count a refusal on `link` (whose row the transaction holds): one more refused
/// request at `now_s`, and `failures` wrong passcodes in all.
fn count_refusal(tx: &Connection, link: &Link, failures: i64, now_s: i64) -> Result<()> {
    tx.execute(
        "UPDATE shl_links SET failures = ?2, refused = refused + 1, last_refused_s = ?3
         WHERE id = ?1",
        params![link.id, failures, now_s],
    )?;
    Ok(())
}

/// Append an opening to `link` (whose row the transaction holds) and move its
/// counters: the opening is number `accesses + 1`.
fn record_opening(
    tx: &Connection,
    link: &Link,
    used_s: Option<i64>,
    access: &Access,
) -> Result<()> {
    tx.execute(
        "UPDATE shl_links SET used_s = ?2, accesses = ?3 WHERE id = ?1",
        params![link.id, used_s, access.seq],
    )?;
    tx.execute(
        "INSERT INTO shl_accesses (link, seq, at_s, recipient, outcome, via)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            link.id,
            access.seq,
            access.at_s,
            access.recipient,
            access.outcome.as_str(),
            access.via.as_str()
        ],
    )?;
    Ok(())
}

/// Whether `recipient` opened `link` at or after `since_s`, among its latest
/// [`OPENING_LOOKBACK`] accesses.
fn opened_since(tx: &Connection, link: &Link, recipient: &str, since_s: i64) -> Result<bool> {
    Ok(tx
        .prepare(
            "SELECT 1 FROM shl_accesses WHERE link = ?1 AND seq > ?2 AND recipient = ?3
             AND outcome = 'ok' AND at_s >= ?4 LIMIT 1",
        )?
        .exists(params![
            link.id,
            link.accesses - OPENING_LOOKBACK,
            recipient,
            since_s
        ])?)
}

/// An access-log row that does not parse (a name this build does not know).
fn bad_access_row() -> StoreError {
    StoreError::Backend("shl_accesses: unknown outcome or via".into())
}

impl ShlStore for SqliteStore {
    fn shl_create(&self, l: &NewLink) -> Result<()> {
        let len = i64::try_from(l.file.len()).unwrap_or(i64::MAX);
        self.with(|c| {
            c.execute(
                "INSERT INTO shl_links (id, owner, flags, passcode_hash, expires_s, once,
                   max_failures, failures, accesses, created_s, revoked_s, used_s, file, file_len)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, 0, ?8, NULL, NULL, ?9, ?10)",
                params![
                    l.id,
                    l.owner,
                    l.flags,
                    l.passcode_hash,
                    l.expires_s,
                    l.once,
                    l.max_failures,
                    l.created_s,
                    l.file,
                    len
                ],
            )?;
            Ok(())
        })
    }

    fn shl_link(&self, id: &str) -> Result<Option<Link>> {
        self.with(|c| select_link(c, id))
    }

    fn shl_links(&self, owner: &str) -> Result<Vec<Link>> {
        self.with(|c| {
            let links = c
                .prepare(&format!(
                    "SELECT {LINK_COLUMNS} FROM shl_links WHERE owner = ?1 ORDER BY created_s, id"
                ))?
                .query_map([owner], row_to_link)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(links)
        })
    }

    fn shl_replace_file(&self, id: &str, owner: &str, file: &str, _now_s: i64) -> Result<Change> {
        let len = i64::try_from(file.len()).unwrap_or(i64::MAX);
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let revoked: Option<Option<i64>> = tx
                .query_row(
                    "SELECT revoked_s FROM shl_links WHERE id = ?1 AND owner = ?2",
                    params![id, owner],
                    |r| r.get(0),
                )
                .optional()?;
            let change = match revoked {
                None => Change::NotFound,
                Some(Some(_)) => Change::Revoked,
                Some(None) => {
                    tx.execute(
                        "UPDATE shl_links SET file = ?2, file_len = ?3 WHERE id = ?1",
                        params![id, file, len],
                    )?;
                    Change::Done
                }
            };
            tx.commit()?;
            Ok(change)
        })
    }

    fn shl_revoke(&self, id: &str, owner: &str, now_s: i64) -> Result<Change> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "UPDATE shl_links SET revoked_s = coalesce(revoked_s, ?3), file = '', file_len = 0
                 WHERE id = ?1 AND owner = ?2",
                params![id, owner, now_s],
            )?;
            if n > 0 {
                tx.execute("DELETE FROM shl_tokens WHERE link = ?1", [id])?;
            }
            tx.commit()?;
            Ok(if n > 0 {
                Change::Done
            } else {
                Change::NotFound
            })
        })
    }

    fn shl_access(&self, a: &Attempt) -> Result<Answer> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let Some(link) = select_link(&tx, &a.id)? else {
                tx.commit()?;
                return Ok(Answer::NoLink);
            };
            let answer = match decide(&link, &a.ask, a.now_s) {
                Step::Ended(o) => Answer::Refused(o),
                Step::Refuse(o) => {
                    count_refusal(&tx, &link, link.failures, a.now_s)?;
                    Answer::Refused(o)
                }
                Step::CountFailure => {
                    let failures = link.failures + 1;
                    count_refusal(&tx, &link, failures, a.now_s)?;
                    Answer::WrongPasscode {
                        remaining: (link.max_failures - failures).max(0),
                    }
                }
                Step::Serve => {
                    let used_s = if link.once {
                        Some(a.now_s)
                    } else {
                        link.used_s
                    };
                    let answer = match &a.ask {
                        Ask::Manifest {
                            embed_max,
                            token_hash,
                            token_expires_s,
                        } => {
                            let len: i64 = tx.query_row(
                                "SELECT file_len FROM shl_links WHERE id = ?1",
                                [&a.id],
                                |r| r.get(0),
                            )?;
                            if embeds(*embed_max, len) {
                                Answer::File(select_file(&tx, &a.id)?)
                            } else {
                                tx.execute(
                                    "INSERT INTO shl_tokens (hash, link, recipient, expires_s)
                                     VALUES (?1, ?2, ?3, ?4)",
                                    params![token_hash, a.id, a.recipient, token_expires_s],
                                )?;
                                Answer::Location
                            }
                        }
                        _ => Answer::File(select_file(&tx, &a.id)?),
                    };
                    let access = Access {
                        seq: link.accesses + 1,
                        at_s: a.now_s,
                        recipient: a.recipient.clone(),
                        outcome: Outcome::Ok,
                        via: a.via,
                    };
                    record_opening(&tx, &link, used_s, &access)?;
                    answer
                }
            };
            tx.commit()?;
            Ok(answer)
        })
    }

    fn shl_fetch(&self, token_hash: &str, now_s: i64) -> Result<Answer> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let token: Option<(String, String, i64)> = tx
                .query_row(
                    "SELECT link, recipient, expires_s FROM shl_tokens WHERE hash = ?1",
                    [token_hash],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let Some((id, recipient, expires_s)) = token else {
                tx.commit()?;
                return Ok(Answer::NoLink);
            };
            let Some(link) = select_link(&tx, &id)? else {
                tx.execute("DELETE FROM shl_tokens WHERE hash = ?1", [token_hash])?;
                tx.commit()?;
                return Ok(Answer::NoLink);
            };
            let step = fetch_step(&link, expires_s, now_s);
            // A refused token goes, and so does a one-time link's once it is used.
            if !matches!(step, Step::Serve) || link.once {
                tx.execute("DELETE FROM shl_tokens WHERE hash = ?1", [token_hash])?;
            }
            let answer = match step {
                Step::Ended(o) => Answer::Refused(o),
                Step::Refuse(o) => {
                    count_refusal(&tx, &link, link.failures, now_s)?;
                    Answer::Refused(o)
                }
                // A fetch carries no passcode; `fetch_step` never asks for this.
                Step::CountFailure => Answer::Refused(Outcome::WrongPasscode),
                Step::Serve => {
                    // The file of a manifest the same recipient just asked for is part
                    // of that opening.
                    if !opened_since(&tx, &link, &recipient, now_s - OPENING_WINDOW_S)? {
                        let access = Access {
                            seq: link.accesses + 1,
                            at_s: now_s,
                            recipient,
                            outcome: Outcome::Ok,
                            via: Via::File,
                        };
                        record_opening(&tx, &link, link.used_s, &access)?;
                    }
                    Answer::File(select_file(&tx, &id)?)
                }
            };
            tx.commit()?;
            Ok(answer)
        })
    }

    fn shl_accesses(
        &self,
        id: &str,
        owner: &str,
        after: i64,
        limit: usize,
    ) -> Result<Option<(Link, Vec<Access>)>> {
        self.with(|c| {
            // One snapshot for both reads.
            let tx = c.transaction()?;
            let link = select_link(&tx, id)?.filter(|l| l.owner == owner);
            let Some(link) = link else {
                return Ok(None);
            };
            let rows = tx
                .prepare(
                    "SELECT seq, at_s, recipient, outcome, via FROM shl_accesses
                     WHERE link = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                )?
                .query_map(
                    params![id, after, i64::try_from(limit).unwrap_or(i64::MAX)],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, String>(4)?,
                        ))
                    },
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            tx.commit()?;
            let accesses = rows
                .into_iter()
                .map(|(seq, at_s, recipient, outcome, via)| {
                    Ok(Access {
                        seq,
                        at_s,
                        recipient,
                        outcome: Outcome::parse(&outcome).ok_or_else(bad_access_row)?,
                        via: Via::parse(&via).ok_or_else(bad_access_row)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Some((link, accesses)))
        })
    }

    fn shl_prune(&self, now_s: i64) -> Result<usize> {
        self.with(|c| Ok(c.execute("DELETE FROM shl_tokens WHERE expires_s <= ?1", [now_s])?))
    }
}

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
