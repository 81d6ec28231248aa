//! The endpoint's schema, as numbered migrations: each backend lists the same
//! versions in its own SQL dialect, and opening a database applies the ones it lacks
//! in order and records the version reached (SQLite in `PRAGMA user_version`,
//! PostgreSQL in the one-row table `carry_schema`).
//!
//! Databases made before the schema was versioned read as version 0, though they
//! hold tables and columns from later steps. So every step is safe to run again:
//! tables and indexes are created `IF NOT EXISTS`, and a column is added only when
//! it is missing. That also lets two processes open one new database at once. A
//! database at a version this build does not know (made by a newer endpoint) is
//! refused, not touched.

use crate::error::{Result, StoreError};

/// One step of a migration.
#[derive(Debug)]
pub(crate) enum Ddl {
    /// A statement that is safe to run again (`CREATE … IF NOT EXISTS`).
    Run(&'static str),
    /// Add `column` to `table` with `ddl`, unless the table has it already.
    AddColumn {
        table: &'static str,
        column: &'static str,
        ddl: &'static str,
    },
}

/// One numbered migration: what it brings, and its steps.
#[derive(Debug)]
pub(crate) struct Migration {
    /// Its version: the migrations of a backend count 1, 2, 3… with no gap.
    pub version: i64,
    /// What it brings, for logs and for the tests that keep the backends in step.
    pub what: &'static str,
    /// Its statements, in order.
    pub steps: &'static [Ddl],
}

/// The version a database is at once every migration in `all` has run.
pub(crate) fn latest(all: &[Migration]) -> i64 {
    all.last().map_or(0, |m| m.version)
}

/// The migrations a database at version `found` still needs, in order; a database
/// made by a newer endpoint is refused.
pub(crate) fn pending(all: &[Migration], found: i64) -> Result<&[Migration]> {
    let latest = latest(all);
    if found > latest {
        return Err(StoreError::TooNew {
            found,
            supported: latest,
        });
    }
    let done = all.iter().take_while(|m| m.version <= found).count();
    if let Some(m) = all.get(done) {
        tracing::info!(
            from = found,
            to = latest,
            first = m.what,
            "upgrading the endpoint's database"
        );
    }
    Ok(&all[done..])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Versions count 1, 2, 3… in each backend, and the backends list the same
    /// migrations, so a database moved from one engine to the other means the same.
    #[test]
    fn backends_number_the_same_migrations() {
        for all in [
            crate::storage::sqlite::MIGRATIONS,
            crate::storage::postgres::MIGRATIONS,
        ] {
            for (i, m) in all.iter().enumerate() {
                assert_eq!(m.version, i as i64 + 1, "{}", m.what);
                assert!(!m.steps.is_empty(), "{}", m.what);
            }
        }
        let what = |all: &[Migration]| all.iter().map(|m| m.what).collect::<Vec<_>>();
        assert_eq!(
            what(crate::storage::sqlite::MIGRATIONS),
            what(crate::storage::postgres::MIGRATIONS)
        );
    }

    #[test]
    fn pending_starts_after_the_version_found_and_refuses_a_newer_one() {
        let all = crate::storage::sqlite::MIGRATIONS;
        let top = latest(all);
        assert_eq!(pending(all, 0).map(<[_]>::len).ok(), Some(all.len()));
        assert_eq!(pending(all, 2).map(|p| p[0].version).ok(), Some(3));
        assert!(pending(all, top).is_ok_and(<[_]>::is_empty));
        assert!(matches!(
            pending(all, top + 1),
            Err(StoreError::TooNew { found, supported }) if found == top + 1 && supported == top
        ));
    }
}
