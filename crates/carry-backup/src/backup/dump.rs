//! The content of a backup: the vault's tables as JSON lines, read in one
//! transaction (one consistent snapshot) and written back in one.
//!
//! The first line names the content version and the vault schema; then, per table,
//! a line `{"table": NAME, "columns": [...]}` followed by one JSON array per row.
//! Values are JSON numbers (integers), strings, `null`, `{"b": base64}` for blobs and
//! `{"r": number}` for reals.
//!
//! Left out on purpose: provider tokens (a restored profile signs in again), sync
//! checkpoints (the next sync starts afresh), and the full-text index (rebuilt).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::Connection;
use serde_json::{json, Value};

use crate::error::{Error, Result};

/// The tables a backup holds, in an order that satisfies their references.
pub(crate) const TABLES: &[&str] = &[
    "meta",
    "sources",
    "imports",
    "resources",
    "resource_keys",
    "provider_sources",
    "push_policy",
    "outbox",
    "retractions",
    "identity",
    "people",
    "invites",
    "grants",
    "grant_items",
    "relay_outbox",
    "shared_items",
    "pending_contributions",
    "audit_log",
    "shares",
    "backup_state",
    "devices",
    "prefs",
];

fn to_json(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => json!(i),
        ValueRef::Real(f) => json!({ "r": f }),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => json!({ "b": B64.encode(b) }),
    }
}

fn from_json(v: &Value) -> Result<SqlValue> {
    let bad = || Error::invalid("the backup's content is damaged (a value)");
    Ok(match v {
        Value::Null => SqlValue::Null,
        Value::Number(n) => SqlValue::Integer(n.as_i64().ok_or_else(bad)?),
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Object(o) => match (o.get("b"), o.get("r")) {
            (Some(Value::String(b)), None) => SqlValue::Blob(B64.decode(b).map_err(|_| bad())?),
            (None, Some(r)) => SqlValue::Real(r.as_f64().ok_or_else(bad)?),
            _ => return Err(bad()),
        },
        _ => return Err(bad()),
    })
}

/// The tables tracked for incremental backups, each with the column that names a
/// row's owner in `backup_changes` (see vault schema 7).
pub(crate) const TRACKED: &[(&str, &str)] = &[
    ("resources", "id"),
    ("resource_keys", "resource_id"),
    ("grant_items", "grant_id"),
    ("audit_log", "seq"),
];

/// What a dump wrote.
pub(crate) struct Dumped {
    /// Resources in it.
    pub resources: u64,
    /// The last `backup_changes` entry it covers: entries up to here may be cleared
    /// once the backup is safely stored.
    pub changes_upto: i64,
}

/// Write the profile as JSON lines to `out`: every table whole, or for an
/// `incremental` dump, the tracked tables' changed rows (by owner) and the other,
/// small tables whole. Call inside one read transaction.
pub(crate) fn dump(
    conn: &Connection,
    schema: i64,
    incremental: bool,
    out: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<Dumped> {
    let mut line = |v: &Value| -> Result<()> {
        let mut s = serde_json::to_vec(v)?;
        s.push(b'\n');
        out(&s)
    };
    let changes_upto: i64 = conn.query_row(
        "SELECT coalesce(max(seq), 0) FROM backup_changes",
        [],
        |r| r.get(0),
    )?;
    let kind = if incremental { "incremental" } else { "full" };
    line(&json!({ "carry_backup_content": 1, "schema": schema, "kind": kind }))?;
    let mut resources = 0;
    for table in TABLES {
        let tracked = TRACKED.iter().find(|(t, _)| t == table).map(|(_, k)| *k);
        let (sql, mode, owners) = match (incremental, tracked) {
            (false, _) => (format!("SELECT * FROM {table}"), "insert", None),
            (true, None) => (format!("SELECT * FROM {table}"), "replace", None),
            (true, Some(key)) => {
                let mut stmt = conn.prepare_cached(
                    "SELECT k FROM backup_changes WHERE tbl = ?1 AND seq <= ?2 ORDER BY seq",
                )?;
                let owners: Vec<Value> = stmt
                    .query_map(rusqlite::params![table, changes_upto], |r| {
                        Ok(to_json(r.get_ref(0)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                (
                    format!(
                        "SELECT * FROM {table} WHERE {key} IN
                         (SELECT k FROM backup_changes WHERE tbl = ?1 AND seq <= ?2)"
                    ),
                    "owners",
                    Some((key, owners)),
                )
            }
        };
        let mut stmt = conn.prepare(&sql)?;
        let columns: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
        let mut head = json!({ "table": table, "columns": columns, "mode": mode });
        if let Some((key, owners)) = owners {
            head["key"] = json!(key);
            head["owners"] = Value::Array(owners);
        }
        line(&head)?;
        let n = columns.len();
        let mut rows = if incremental && tracked.is_some() {
            stmt.query(rusqlite::params![table, changes_upto])?
        } else {
            stmt.query([])?
        };
        while let Some(r) = rows.next()? {
            let mut vals = Vec::with_capacity(n);
            for i in 0..n {
                vals.push(to_json(r.get_ref(i)?));
            }
            line(&Value::Array(vals))?;
            if *table == "resources" {
                resources += 1;
            }
        }
    }
    Ok(Dumped {
        resources,
        changes_upto,
    })
}

/// Reads JSON lines back into a vault, in the caller's transaction.
pub(crate) struct Loader {
    /// Whether this content is an incremental one (checked against its first line).
    incremental: bool,
    table: Option<(String, String)>,
    started: bool,
    /// Rows loaded into `resources`.
    pub resources: u64,
    pending: Vec<u8>,
}

impl Loader {
    /// A loader for full content, or for `incremental` content applied on top.
    pub fn new(incremental: bool) -> Self {
        Loader {
            incremental,
            table: None,
            started: false,
            resources: 0,
            pending: Vec::new(),
        }
    }

    /// Empty the tables a backup fills (the fresh vault's own `meta` rows included).
    pub fn clear(conn: &Connection) -> Result<()> {
        for table in TABLES.iter().rev() {
            conn.execute(&format!("DELETE FROM {table}"), [])?;
        }
        Ok(())
    }

    /// Feed content bytes; whole lines are applied as they complete.
    pub fn feed(&mut self, conn: &Connection, bytes: &[u8]) -> Result<()> {
        self.pending.extend_from_slice(bytes);
        while let Some(pos) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=pos).collect();
            self.line(conn, &line[..line.len() - 1])?;
        }
        Ok(())
    }

    fn line(&mut self, conn: &Connection, line: &[u8]) -> Result<()> {
        let bad = || Error::invalid("the backup's content is damaged (a line)");
        let v: Value = serde_json::from_slice(line).map_err(|_| bad())?;
        if !self.started {
            let kind = v.get("kind").and_then(Value::as_str).unwrap_or("full");
            if v["carry_backup_content"] != 1 || (kind == "incremental") != self.incremental {
                return Err(bad());
            }
            self.started = true;
            return Ok(());
        }
        if let Some(table) = v.get("table").and_then(Value::as_str) {
            if !TABLES.contains(&table) {
                return Err(bad());
            }
            let columns: Vec<String> = v["columns"]
                .as_array()
                .ok_or_else(bad)?
                .iter()
                .map(|c| c.as_str().map(str::to_string).ok_or_else(bad))
                .collect::<Result<_>>()?;
            // Only names this build's schema has: the statement is prepared below.
            if columns.iter().any(|c| {
                c.is_empty() || !c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            }) {
                return Err(bad());
            }
            let mode = v.get("mode").and_then(Value::as_str).unwrap_or("insert");
            match mode {
                "insert" => {}
                "replace" if !self.incremental => return Err(bad()),
                // The audit log only grows: its new entries are inserted as they are.
                "replace" => {
                    if TRACKED.iter().any(|(t, _)| *t == table) {
                        return Err(bad());
                    }
                    conn.execute(&format!("DELETE FROM {table}"), [])?;
                }
                "owners" if self.incremental => {
                    let key = TRACKED
                        .iter()
                        .find(|(t, _)| *t == table)
                        .map(|(_, k)| *k)
                        .ok_or_else(bad)?;
                    if v["key"] != key {
                        return Err(bad());
                    }
                    if table != "audit_log" {
                        let mut del =
                            conn.prepare(&format!("DELETE FROM {table} WHERE {key} = ?1"))?;
                        for owner in v["owners"].as_array().ok_or_else(bad)? {
                            del.execute([from_json(owner)?])?;
                        }
                    }
                }
                _ => return Err(bad()),
            }
            let marks = vec!["?"; columns.len()].join(",");
            let sql = format!(
                "INSERT INTO {table} ({}) VALUES ({marks})",
                columns.join(",")
            );
            self.table = Some((table.to_string(), sql));
            return Ok(());
        }
        let (table, sql) = self.table.as_ref().ok_or_else(bad)?;
        let vals: Vec<SqlValue> = v
            .as_array()
            .ok_or_else(bad)?
            .iter()
            .map(from_json)
            .collect::<Result<_>>()?;
        conn.prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(vals))?;
        if table == "resources" {
            self.resources += 1;
        }
        Ok(())
    }

    /// Check that the content ended cleanly.
    pub fn finish(self) -> Result<u64> {
        if !self.pending.is_empty() || !self.started {
            return Err(Error::invalid("the backup's content ends mid-way"));
        }
        Ok(self.resources)
    }

    /// After the last content: rebuild the full-text index, and start change
    /// tracking afresh (the next backup to the endpoint is a whole one).
    pub fn rebuild(conn: &Connection) -> Result<()> {
        conn.execute_batch(
            "DELETE FROM resources_fts;
             INSERT INTO resources_fts (rowid, display, codes)
             SELECT r.id, r.display,
                    coalesce((SELECT group_concat(trim(coalesce(json_extract(c.value, '$.display'), '')
                               || ' ' || coalesce(json_extract(c.value, '$.code'), '')), ' ')
                              FROM json_each(r.codes) c), '')
             FROM resources r;
             DELETE FROM backup_changes;",
        )?;
        Ok(())
    }
}
