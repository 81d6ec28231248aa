//! The embedded SQLite backend (the default). Plain SQLite through the workspace's one
//! rusqlite; a small pool of connections in WAL mode.
//!
//! Writes that check before they write (single-use tokens and challenges, the relay's
//! mailbox quota, a share link's failure cap and one-time use) run in IMMEDIATE
//! transactions: SQLite's one writer makes them exact.

mod schema;

use schema::migrate;
#[cfg(test)]
pub(crate) use schema::MIGRATIONS;
mod backup;
mod fhir;
mod links;
mod relay;

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use crate::backup::store::{
    check_base, decide as decide_fetch, for_each_piece, prune_below, put_piece, BackupStore,
    BlobOut, Fetch, Put, Restores, Step as FetchStep, Upload, Version, Window, BLOB_PIECE,
};
use crate::fhir::store::{
    refresh_step, shared_types_sql, stamp, successor_grant, unstamped, FhirStore, Grant, Query,
    Refresh, RefreshStep, Refreshed, Result, Spent, StoreError, Stored,
};
use crate::links::store::{
    decide, embeds, fetch_step, Access, Answer, Ask, Attempt, Change, Link, LinkStore, NewLink,
    Outcome, Step, Via, OPENING_LOOKBACK, OPENING_WINDOW_S,
};
use crate::relay::store::{
    page_cut, retired_again, DirectoryEntry, Envelope, NewEnvelope, Page, Posted, Pruned, Quota,
    RelayStore, Retired, Retirement, Session, RETIRE_HANDOVER_SQL, RETIRE_KEY_SQL,
    RETIRE_MAILBOX_SQL,
};
use crate::storage::migrations::{self, Ddl, Migration};

const POOL: usize = 8;

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
