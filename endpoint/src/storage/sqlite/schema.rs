//! The SQLite schema, as numbered migrations (see `storage::migrations`).

use super::*;

/// The schema, in numbered steps (see [`crate::storage::migrations`]); every step is safe to
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
pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
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
