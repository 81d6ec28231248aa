//! Display lines worked out again by this build's formatter, for resources stored by
//! an earlier one: a vault upgraded to schema 13, and a restored backup. Readings an
//! older build stored as `82.80592677079234 mm[Hg]` read `82.8 mmHg`, as a fresh
//! import of the same file would; search finds the new line.

use rusqlite::{params, Connection};
use serde_json::Value;

use crate::error::Result;

/// Rows read at a time, so a large record never sits in memory whole.
const BATCH: i64 = 1000;

/// Recompute every resource's display line; returns how many changed.
pub fn all(conn: &Connection) -> Result<u64> {
    let mut changed = 0u64;
    let mut after = i64::MIN;
    loop {
        let rows: Vec<(i64, String, String)> = conn
            .prepare_cached(
                "SELECT id, display, json FROM resources WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?
            .query_map(params![after, BATCH], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let Some(last) = rows.last() else {
            return Ok(changed);
        };
        after = last.0;
        for (id, display, json) in rows {
            // A row that no longer analyses keeps what it has.
            let Ok(v) = serde_json::from_str::<Value>(&json) else {
                continue;
            };
            let Ok(a) = super::analyse(&v) else {
                continue;
            };
            if a.display == display {
                continue;
            }
            conn.prepare_cached("UPDATE resources SET display = ?2 WHERE id = ?1")?
                .execute(params![id, a.display])?;
            conn.prepare_cached("DELETE FROM resources_fts WHERE rowid = ?1")?
                .execute([id])?;
            conn.prepare_cached(
                "INSERT INTO resources_fts (rowid, display, codes) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![id, a.display, super::search_codes(&a)])?;
            changed += 1;
        }
    }
}
