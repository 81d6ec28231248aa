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
    "outbox",
    "identity",
    "people",
    "invites",
    "grants",
    "grant_items",
    "relay_outbox",
    "shared_items",
    "audit_log",
    "shares",
    "backup_state",
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

/// Write every table as JSON lines to `out`. Returns the resource count.
pub(crate) fn dump(
    conn: &Connection,
    schema: i64,
    out: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<u64> {
    let mut line = |v: &Value| -> Result<()> {
        let mut s = serde_json::to_vec(v).map_err(|e| Error::internal(e.to_string()))?;
        s.push(b'\n');
        out(&s)
    };
    line(&json!({ "carry_backup_content": 1, "schema": schema }))?;
    let mut resources = 0;
    for table in TABLES {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table}"))?;
        let columns: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
        line(&json!({ "table": table, "columns": columns }))?;
        let n = columns.len();
        let mut rows = stmt.query([])?;
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
    Ok(resources)
}

/// Reads JSON lines back into a vault, in the caller's transaction.
pub(crate) struct Loader {
    table: Option<(String, String)>,
    started: bool,
    /// Rows loaded into `resources`.
    pub resources: u64,
    pending: Vec<u8>,
}

impl Loader {
    pub fn new() -> Self {
        Loader {
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
            if v["carry_backup_content"] != 1 {
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

    /// Check that the content ended cleanly, and rebuild the full-text index.
    pub fn finish(self, conn: &Connection) -> Result<u64> {
        if !self.pending.is_empty() || !self.started {
            return Err(Error::invalid("the backup's content ends mid-way"));
        }
        conn.execute_batch(
            "DELETE FROM resources_fts;
             INSERT INTO resources_fts (rowid, display, codes)
             SELECT r.id, r.display,
                    coalesce((SELECT group_concat(trim(coalesce(json_extract(c.value, '$.display'), '')
                               || ' ' || coalesce(json_extract(c.value, '$.code'), '')), ' ')
                              FROM json_each(r.codes) c), '')
             FROM resources r;",
        )?;
        Ok(self.resources)
    }
}
