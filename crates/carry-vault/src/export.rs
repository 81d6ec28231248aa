//! Export of the record as one FHIR Bundle of type `collection`, streamed to a writer.
//! Each resource is written exactly as it was received, under its original `fullUrl`.

use std::io::Write;

use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::query::TimelineQuery;
use crate::readings::uuid_v4;
use crate::record::{summary, Category};
use crate::time::{now_unix, rfc3339};

/// Which part of the record to export. The default is everything.
#[derive(Debug, Clone, Default)]
pub struct ExportScope {
    /// Only these categories (empty: all).
    pub categories: Vec<Category>,
    /// Only resources dated on or after this FHIR date.
    pub since: Option<String>,
    /// Only resources dated before this FHIR date.
    pub until: Option<String>,
    /// Only this source (its name).
    pub source: Option<String>,
    /// One copy per fact (the first, as the timeline shows it) instead of every copy
    /// every source sent; the default keeps every copy, losslessly.
    pub one_per_fact: bool,
}

impl From<&TimelineQuery> for ExportScope {
    fn from(q: &TimelineQuery) -> Self {
        ExportScope {
            categories: q.categories.clone(),
            since: q.since.clone(),
            until: q.until.clone(),
            source: q.source.clone(),
            one_per_fact: false,
        }
    }
}

fn date_arg(text: &str, what: &str) -> Result<i64> {
    summary::parse_fhir_date(text)
        .ok_or_else(|| Error::invalid(format!("{what} '{text}' is not a date like 2024-01-31")))
}

fn io(e: std::io::Error) -> Error {
    Error::Storage {
        reason: format!("writing the export failed: {e}"),
    }
}

/// Write the scoped record to `out` as a collection Bundle. Returns the entry count.
/// The read runs in one transaction, so the export is one consistent snapshot.
pub fn export(conn: &Connection, scope: &ExportScope, out: &mut dyn Write) -> Result<u64> {
    let mut sql = String::from(
        "SELECT r.full_url, r.json FROM resources r JOIN sources s ON s.id = r.source_id WHERE 1=1",
    );
    let mut args: Vec<SqlValue> = Vec::new();
    if !scope.categories.is_empty() {
        let marks = vec!["?"; scope.categories.len()].join(",");
        sql.push_str(&format!(" AND r.category IN ({marks})"));
        args.extend(
            scope
                .categories
                .iter()
                .map(|c| SqlValue::Text(c.as_str().into())),
        );
    }
    if let Some(since) = &scope.since {
        sql.push_str(" AND r.date_sort >= ?");
        args.push(SqlValue::Integer(date_arg(since, "since")?));
    }
    if let Some(until) = &scope.until {
        sql.push_str(" AND r.date_sort < ? AND r.date_sort <> ?");
        args.push(SqlValue::Integer(date_arg(until, "until")?));
        args.push(SqlValue::Integer(summary::UNDATED));
    }
    if let Some(source) = &scope.source {
        sql.push_str(" AND s.name = ?");
        args.push(SqlValue::Text(source.clone()));
    }
    if scope.one_per_fact {
        sql.push_str(" AND (r.group_id IS NULL OR r.group_id = r.id)");
    }
    sql.push_str(" ORDER BY r.id");
    write_bundle(conn, &sql, args, out)
}

/// Write the resources with item ids `ids` as a collection Bundle (what a grantee
/// receives, for "view as").
pub fn export_items(conn: &Connection, ids: &[i64], out: &mut dyn Write) -> Result<u64> {
    let list = serde_json::to_string(ids)?;
    write_bundle(
        conn,
        "SELECT r.full_url, r.json FROM resources r
         WHERE r.id IN (SELECT value FROM json_each(?)) ORDER BY r.id",
        vec![SqlValue::Text(list)],
        out,
    )
}

/// Stream the rows `sql` selects (full_url, json) as a collection Bundle, in one read
/// transaction.
fn write_bundle(
    conn: &Connection,
    sql: &str,
    args: Vec<SqlValue>,
    out: &mut dyn Write,
) -> Result<u64> {
    conn.execute_batch("BEGIN DEFERRED")?;
    let result = (|| -> Result<u64> {
        let now = rfc3339(now_unix());
        write!(
            out,
            "{{\"resourceType\":\"Bundle\",\"id\":\"{}\",\"meta\":{{\"lastUpdated\":\"{now}\"}},\"type\":\"collection\",\"timestamp\":\"{now}\",\"entry\":[",
            uuid_v4()?
        )
        .map_err(io)?;
        let mut stmt = conn.prepare(sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
        let mut count = 0u64;
        while let Some(row) = rows.next()? {
            let full_url: Option<String> = row.get(0)?;
            let json: String = row.get(1)?;
            if count > 0 {
                out.write_all(b",").map_err(io)?;
            }
            out.write_all(b"\n{").map_err(io)?;
            if let Some(u) = full_url {
                let quoted = serde_json::to_string(&u)?;
                write!(out, "\"fullUrl\":{quoted},").map_err(io)?;
            }
            write!(out, "\"resource\":{json}}}").map_err(io)?;
            count += 1;
        }
        out.write_all(b"\n]}\n").map_err(io)?;
        out.flush().map_err(io)?;
        Ok(count)
    })();
    conn.execute_batch("COMMIT")?;
    result
}
