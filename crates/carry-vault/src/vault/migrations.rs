//! Numbered schema migrations, keyed on `PRAGMA user_version`.
//!
//! Migration N takes the schema from version N-1 to N inside one transaction, which
//! also sets `user_version`, so a crash leaves the old version or the new one. A
//! database newer than this build is refused untouched.

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Error, Result};

/// One schema step.
pub struct Migration {
    /// The version this step produces.
    pub version: i64,
    /// The SQL of the step.
    pub sql: &'static str,
    /// What SQL alone cannot do, run after it in the same transaction.
    pub then: Option<fn(&rusqlite::Transaction<'_>) -> Result<()>>,
}

/// Every migration, in order. Append new steps; never edit a released one.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("schema_v1.sql"),
        then: None,
    },
    Migration {
        version: 2,
        sql: include_str!("schema_v2.sql"),
        then: None,
    },
    Migration {
        version: 3,
        sql: include_str!("schema_v3.sql"),
        then: None,
    },
    Migration {
        version: 4,
        sql: include_str!("schema_v4.sql"),
        then: None,
    },
    Migration {
        version: 5,
        sql: include_str!("schema_v5.sql"),
        then: None,
    },
    Migration {
        version: 6,
        sql: include_str!("schema_v6.sql"),
        then: None,
    },
    Migration {
        version: 7,
        sql: include_str!("schema_v7.sql"),
        then: None,
    },
    Migration {
        version: 8,
        sql: include_str!("schema_v8.sql"),
        then: None,
    },
    Migration {
        version: 9,
        sql: include_str!("schema_v9.sql"),
        then: None,
    },
    Migration {
        version: 10,
        sql: include_str!("schema_v10.sql"),
        then: None,
    },
    Migration {
        version: 11,
        sql: include_str!("schema_v11.sql"),
        then: Some(crate::record::relabel::all),
    },
    Migration {
        version: 12,
        sql: include_str!("schema_v12.sql"),
        then: Some(|tx| crate::record::category::recategorise_administrative(tx)),
    },
    Migration {
        version: 13,
        sql: include_str!("schema_v13.sql"),
        // Display lines from this build's formatter (three significant figures,
        // readable units, drug names without catalogue numbers).
        then: Some(|tx| crate::record::redisplay::all(tx).map(|_| ())),
    },
    Migration {
        version: 14,
        sql: include_str!("schema_v14.sql"),
        then: None,
    },
    Migration {
        version: 15,
        sql: include_str!("schema_v15.sql"),
        then: None,
    },
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 15;

/// Bring `conn` up to the newest schema.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    migrate_with(conn, MIGRATIONS)
}

/// Bring `conn` up to the last of `steps`. Split out so tests can run other lists.
pub fn migrate_with(conn: &mut Connection, steps: &[Migration]) -> Result<()> {
    let latest = steps.last().map_or(0, |m| m.version);
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > latest {
        return Err(Error::TooNew {
            found: current,
            supported: latest,
        });
    }
    for step in steps.iter().filter(|m| m.version > current) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(step.sql).map_err(|e| Error::Storage {
            reason: format!("migration to schema {} failed: {e}", step.version),
        })?;
        if let Some(then) = step.then {
            then(&tx)?;
        }
        tx.pragma_update(None, "user_version", step.version)?;
        tx.commit()?;
        tracing::info!(version = step.version, "vault schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(conn: &Connection) -> i64 {
        conn.pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    }

    fn schema(conn: &Connection) -> Vec<(String, String)> {
        let mut st = conn
            .prepare("SELECT name, coalesce(sql,'') FROM sqlite_master ORDER BY name")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    #[test]
    fn fresh_database_reaches_latest_and_rerun_is_a_no_op() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(version(&conn), SCHEMA_VERSION);
        let before = schema(&conn);
        migrate(&mut conn).unwrap();
        assert_eq!(schema(&conn), before);
    }

    #[test]
    fn stepwise_upgrade_equals_fresh_schema() {
        // Upgrading from every earlier version must give the same schema as a fresh
        // database. Each version is reproduced here by running the steps up to it;
        // vaults saved from releases are checked below.
        let mut fresh = Connection::open_in_memory().unwrap();
        migrate(&mut fresh).unwrap();
        for stop in 0..MIGRATIONS.len() {
            let mut old = Connection::open_in_memory().unwrap();
            migrate_with(&mut old, &MIGRATIONS[..stop]).unwrap();
            migrate(&mut old).unwrap();
            assert_eq!(schema(&old), schema(&fresh), "upgrade from version {stop}");
        }
    }

    /// A connection to the vault in `dir`, keyed but not migrated.
    fn keyed(dir: &std::path::Path, keys: &dyn crate::keys::KeyStore) -> Connection {
        let file = super::super::keyfile::KeyFile::read(&dir.join(super::super::KEY_FILE)).unwrap();
        let key = keys.unwrap(&file.wrapped().unwrap()).unwrap();
        super::super::open_connection(
            &dir.join(super::super::VAULT_FILE),
            &super::super::Cipher::Key(key),
            false,
        )
        .unwrap()
    }

    /// Every table's rows, as text, sorted: of the columns `only` names for it.
    fn rows(
        conn: &Connection,
        only: &std::collections::BTreeMap<String, Vec<String>>,
    ) -> std::collections::BTreeMap<String, Vec<String>> {
        only.iter()
            .map(|(t, cols)| {
                let list = cols
                    .iter()
                    .map(|c| format!("\"{c}\""))
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut st = conn
                    .prepare(&format!("SELECT {list} FROM \"{t}\""))
                    .unwrap();
                let mut got: Vec<String> = st
                    .query_map([], |r| {
                        (0..cols.len())
                            .map(|i| {
                                r.get::<_, rusqlite::types::Value>(i)
                                    .map(|v| format!("{v:?}"))
                            })
                            .collect::<rusqlite::Result<Vec<_>>>()
                            .map(|v| v.join("|"))
                    })
                    .unwrap()
                    .map(|r| r.unwrap())
                    .collect();
                got.sort();
                (t.clone(), got)
            })
            .collect()
    }

    /// The columns of the vault's own tables (not FTS5's shadow tables, whose rows
    /// the index rewrites at will), by table.
    fn columns(conn: &Connection) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut out = std::collections::BTreeMap::<String, Vec<String>>::new();
        let mut st = conn
            .prepare(
                "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'
                   AND m.sql NOT LIKE 'CREATE VIRTUAL%'
                   AND NOT EXISTS (SELECT 1 FROM sqlite_master v WHERE v.sql LIKE 'CREATE VIRTUAL%'
                                   AND m.name LIKE v.name || '\\_%' ESCAPE '\\')
                 ORDER BY m.name, p.cid",
            )
            .unwrap();
        for pair in st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .unwrap()
        {
            let (t, c) = pair.unwrap();
            out.entry(t).or_default().push(c);
        }
        out
    }

    /// Vaults saved from released builds (`tests/fixtures/RELEASE/PROFILE/`, made by
    /// `tests/release-fixtures.sh` from the release's own demo) open with this build:
    /// the release's schema version is upgraded to the schema of a vault made new
    /// today, no row the release wrote is changed (beyond the columns upgrades add),
    /// the audit chain still holds, and opening again changes nothing.
    #[test]
    fn vaults_saved_from_releases_upgrade_to_the_schema_of_a_new_vault() {
        // (release, profile, its passphrase in that demo, its schema version)
        let releases = [("2026-11-23", "carer", "another demo passphrase", 9)];
        let fixtures =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../core/tests/fixtures");
        let fresh_dir = tempfile::tempdir().unwrap();
        let keys = crate::keys::PassphraseKeyStore::new("a passphrase").unwrap();
        drop(super::super::Vault::create(fresh_dir.path(), &keys).unwrap());
        let fresh = schema(&keyed(fresh_dir.path(), &keys));
        for (release, profile, passphrase, was) in releases {
            let dir = tempfile::tempdir().unwrap();
            for f in [super::super::VAULT_FILE, super::super::KEY_FILE] {
                std::fs::copy(
                    fixtures.join(release).join(profile).join(f),
                    dir.path().join(f),
                )
                .unwrap();
            }
            let keys = crate::keys::PassphraseKeyStore::new(passphrase).unwrap();
            let (old_columns, old_rows) = {
                let c = keyed(dir.path(), &keys);
                assert_eq!(version(&c), was, "{release}/{profile}");
                let cols = columns(&c);
                let rows = rows(&c, &cols);
                (cols, rows)
            };
            let p = super::super::Vault::open(dir.path(), &keys).unwrap();
            let people: i64 = p
                .read(|c| Ok(c.query_row("SELECT count(*) FROM people", [], |r| r.get(0))?))
                .unwrap();
            assert!(people > 0, "{release}/{profile}: people kept");
            let audit = p.read(crate::audit::verify).unwrap();
            assert!(
                audit.ok() && audit.entries > 0,
                "{release}/{profile}: {audit:?}"
            );
            drop(p);

            let c = keyed(dir.path(), &keys);
            assert_eq!(version(&c), SCHEMA_VERSION);
            assert_eq!(
                schema(&c),
                fresh,
                "{release}/{profile}: the schema of a new vault"
            );
            // Every row the release wrote, as it wrote it (the columns upgrades add
            // aside).
            assert_eq!(rows(&c, &old_columns), old_rows, "{release}/{profile}");
            drop(c);
            let again = super::super::Vault::open(dir.path(), &keys).unwrap();
            drop(again);
            assert_eq!(schema(&keyed(dir.path(), &keys)), fresh);
        }
    }

    #[test]
    fn a_version_1_record_survives_the_upgrade_to_2() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_with(&mut conn, &MIGRATIONS[..1]).unwrap();
        conn.execute_batch(
            "INSERT INTO sources (id, kind, name, created_at) VALUES (1, 'file', 'a.json', 0);
             INSERT INTO resources (source_id, identity, rtype, category, date_sort, display,
               codes, sensitivity, label_rules, entered_by, content_hash, json, updated_at)
             VALUES (1, 'Patient/p', 'Patient', 'other', 0, 'P', '[]', '', '[]', 'provider',
               x'00', '{}', 0);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let row: (String, Option<i64>, Option<i64>) = conn
            .query_row(
                "SELECT identity, group_id, gone_at FROM resources",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(row, ("Patient/p".to_string(), None, None));
    }

    #[test]
    fn synced_resources_are_known_by_type_and_id_from_10_and_doubles_are_set_aside() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_with(&mut conn, &MIGRATIONS[..9]).unwrap();
        // A record synced under schema 9, after the server's base address changed:
        // the same Observation under two fullUrls, and a file import beside it.
        conn.execute_batch(
            "INSERT INTO sources (id, kind, name, created_at) VALUES (1, 'provider', 'gp', 0),
               (2, 'file', 'a.json', 0);
             INSERT INTO provider_sources (source_id, kind, base_url, auth, client_id, scope, push)
               VALUES (1, 'gp', 'http://localhost/fhir', 'none', '', '', 0);
             INSERT INTO resources (source_id, identity, rtype, rid, full_url, category, date_sort,
               display, codes, sensitivity, label_rules, entered_by, content_hash, json, updated_at)
             VALUES
               (1, 'http://127.0.0.1/fhir/Observation/o1', 'Observation', 'o1',
                'http://127.0.0.1/fhir/Observation/o1', 'other', 0, 'O', '[]', '', '[]',
                'provider', x'00', '{}', 0),
               (1, 'http://localhost/fhir/Observation/o1', 'Observation', 'o1',
                'http://localhost/fhir/Observation/o1', 'other', 0, 'O', '[]', '', '[]',
                'provider', x'01', '{}', 1),
               (1, 'http://127.0.0.1/fhir/Patient/p', 'Patient', 'p', NULL, 'other', 0, 'P',
                '[]', '', '[]', 'provider', x'02', '{}', 0),
               (2, 'urn:uuid:x', 'Patient', 'p', 'urn:uuid:x', 'other', 0, 'P', '[]', '', '[]',
                'provider', x'03', '{}', 0);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let rows: Vec<(i64, String, bool)> = conn
            .prepare("SELECT id, identity, gone_at IS NOT NULL FROM resources ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(
            rows,
            vec![
                (1, "http://127.0.0.1/fhir/Observation/o1".into(), true),
                (2, "Observation/o1".into(), false),
                (3, "Patient/p".into(), false),
                (4, "urn:uuid:x".into(), false),
            ],
            "the newest copy takes the new identity; the older is kept, marked gone; files keep theirs"
        );
    }

    #[test]
    fn a_chain_begun_under_version_8_keeps_being_tracked_in_9() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_with(&mut conn, &MIGRATIONS[..8]).unwrap();
        conn.execute(
            "INSERT INTO backup_state (id, recovery_secret, backup_key, created_at,
               chain_version) VALUES (1, x'00', x'00', 0, 3)",
            [],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let tracking: Option<i64> = conn
            .query_row("SELECT tracking FROM backup_state", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            tracking,
            Some(1),
            "changes since its last backup still go into the next"
        );
    }

    #[test]
    fn claims_held_under_other_move_to_administrative_in_12() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_with(&mut conn, &MIGRATIONS[..11]).unwrap();
        conn.execute_batch(
            "INSERT INTO sources (id, kind, name, created_at) VALUES (1, 'file', 'a.json', 0);",
        )
        .unwrap();
        for (id, rtype) in [
            (1, "Claim"),
            (2, "ExplanationOfBenefit"),
            (3, "Organization"),
        ] {
            conn.execute(
                "INSERT INTO resources (id, source_id, identity, rtype, category, date_sort,
                   display, codes, sensitivity, label_rules, entered_by, content_hash, json,
                   updated_at)
                 VALUES (?1, 1, ?2 || '/r', ?2, 'other', 0, ?2, '[]', '', '[]', 'provider',
                   x'00', '{}', 0)",
                rusqlite::params![id, rtype],
            )
            .unwrap();
        }
        migrate(&mut conn).unwrap();
        let categories: Vec<String> = conn
            .prepare("SELECT category FROM resources ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(categories, ["administrative", "administrative", "other"]);
    }

    #[test]
    fn display_lines_from_an_older_formatter_are_worked_out_again_in_13() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_with(&mut conn, &MIGRATIONS[..12]).unwrap();
        let obs = serde_json::json!({"resourceType": "Observation", "id": "o1", "status": "final",
            "code": {"text": "Diastolic blood pressure"},
            "valueQuantity": {"value": 82.80592677079234, "unit": "mm[Hg]", "code": "mm[Hg]"}});
        let old = "Diastolic blood pressure 82.80592677079234 mm[Hg]";
        conn.execute_batch(
            "INSERT INTO sources (id, kind, name, created_at) VALUES (1, 'file', 'a.json', 0);",
        )
        .unwrap();
        conn.execute(
            "INSERT INTO resources (id, source_id, identity, rtype, category, date_sort,
               display, codes, sensitivity, label_rules, entered_by, content_hash, json,
               updated_at)
             VALUES (1, 1, 'Observation/o1', 'Observation', 'vital-signs', 0, ?1, '[]', '',
               '[]', 'provider', x'00', ?2, 0)",
            rusqlite::params![old, obs.to_string()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO resources_fts (rowid, display, codes) VALUES (1, ?1, '')",
            [old],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let now = crate::record::analyse(&obs).unwrap().display;
        assert!(now.contains("82.8 mmHg"), "{now}");
        let display: String = conn
            .query_row("SELECT display FROM resources", [], |r| r.get(0))
            .unwrap();
        assert_eq!(display, now);
        // Search finds the new line, and no longer the old one.
        let found = |word: &str| -> i64 {
            conn.query_row(
                "SELECT count(*) FROM resources_fts WHERE resources_fts MATCH ?1",
                [word],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!((found("mmHg"), found("80592677079234")), (1, 0));
    }

    #[test]
    fn newer_database_is_refused_untouched() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = migrate(&mut conn).unwrap_err();
        assert!(matches!(err, Error::TooNew { found, .. } if found == SCHEMA_VERSION + 1));
        assert!(schema(&conn).is_empty());
    }

    #[test]
    fn failing_step_rolls_back_whole() {
        let steps = [
            Migration {
                version: 1,
                sql: "CREATE TABLE a(x);",
                then: None,
            },
            Migration {
                version: 2,
                sql: "CREATE TABLE b(x); INSERT INTO nowhere VALUES (1);",
                then: None,
            },
        ];
        let mut conn = Connection::open_in_memory().unwrap();
        let err = migrate_with(&mut conn, &steps).unwrap_err();
        assert!(matches!(err, Error::Storage { .. }));
        assert_eq!(version(&conn), 1);
        let names: Vec<String> = schema(&conn).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["a".to_string()]);
    }

    #[test]
    fn the_backup_trigger_watches_every_resource_column_but_seen_run() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'backup_resources_up'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let mut stmt = conn
            .prepare("SELECT name FROM pragma_table_info('resources')")
            .unwrap();
        let columns: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        for c in columns.iter().filter(|c| *c != "seen_run") {
            assert!(
                sql.contains(&format!("NEW.{c} IS NOT OLD.{c}")),
                "a change to resources.{c} would not reach the next incremental backup"
            );
        }
    }
}
