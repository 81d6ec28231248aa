//! The embedded SQLite backend (the default). Plain SQLite through the workspace's one
//! rusqlite; a small pool of connections in WAL mode.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use crate::store::{Query, Result, Store, StoreError, Stored};

const POOL: usize = 8;

const SCHEMA: &str = "
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
";

/// SQLite storage in one file.
pub struct SqliteStore {
    path: std::path::PathBuf,
    pool: Mutex<Vec<Connection>>,
}

impl SqliteStore {
    /// Open (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Self::connect(path)?;
        conn.execute_batch(SCHEMA)?;
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
    let resource = serde_json::from_str(&json)
        .map_err(|e| StoreError::Backend(format!("stored JSON: {e}")))?;
    Ok(Stored {
        rtype,
        id,
        version,
        last_updated_ms,
        patient,
        resource,
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

/// Set `meta.versionId` and `meta.lastUpdated` on `resource`.
pub fn stamp(resource: &Value, version: i64, last_updated_ms: i64) -> Value {
    let mut r = resource.clone();
    if let Some(obj) = r.as_object_mut() {
        let meta = obj
            .entry("meta")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(m) = meta.as_object_mut() {
            m.insert("versionId".into(), Value::String(version.to_string()));
            m.insert(
                "lastUpdated".into(),
                Value::String(crate::time::instant(last_updated_ms)),
            );
        }
    }
    r
}

/// The resource without the meta fields the server sets, for change detection.
fn unstamped(resource: &Value) -> Value {
    let mut r = resource.clone();
    if let Some(meta) = r.get_mut("meta").and_then(Value::as_object_mut) {
        meta.remove("versionId");
        meta.remove("lastUpdated");
        if meta.is_empty() {
            if let Some(o) = r.as_object_mut() {
                o.remove("meta");
            }
        }
    }
    r
}

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
            let existing = select_one(&tx, tenant, rtype, id)?;
            if let Some(old) = &existing {
                if unstamped(&old.resource) == unstamped(resource) && old.patient.as_deref() == patient {
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
            tx.commit()?;
            Ok(Stored {
                rtype: rtype.into(),
                id: id.into(),
                version,
                last_updated_ms: when,
                patient: patient.map(str::to_string),
                resource: doc,
            })
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
            arg(&mut sql, " AND patient = ?", p.clone().into());
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
}

/// Open the store a `--db` URL names.
pub fn open_url(url: &str) -> Result<SqliteStore> {
    match url.strip_prefix("sqlite://") {
        Some(path) if !path.is_empty() => SqliteStore::open(Path::new(path)),
        _ => Err(StoreError::Url(format!(
            "unsupported --db '{url}': use sqlite://PATH (PostgreSQL support is not built yet)"
        ))),
    }
}
