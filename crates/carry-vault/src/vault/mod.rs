//! The encrypted vault: one SQLCipher database per person profile, one writer
//! connection and a small pool of readers, opened with a raw 256-bit key.

pub mod identity;
mod keyfile;
pub mod meta;
pub mod migrations;
pub mod tracking;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Once, RwLock};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::{KeyStore, VaultKey};
use keyfile::KeyFile;
pub use migrations::SCHEMA_VERSION;

pub use crate::files::{KEY_FILE, VAULT_FILE};
/// How long a connection waits for another one's lock before giving up.
const BUSY_TIMEOUT_MS: u32 = 5_000;
/// Reader connections kept open for reuse.
const READER_POOL: usize = 4;
/// Page cache of the writer (KiB). Bulk imports keep index pages hot, so SQLCipher
/// decrypts each page once instead of on every revisit.
const WRITER_CACHE_KIB: i64 = 64 * 1024;
/// Page cache of each reader (KiB).
const READER_CACHE_KIB: i64 = 8 * 1024;

/// How the database file is protected.
#[derive(Clone)]
enum Cipher {
    /// SQLCipher with this raw key.
    Key(VaultKey),
    /// No encryption: only the benchmark yardstick uses it.
    #[cfg(feature = "plaintext-baseline")]
    Plain,
}

impl Cipher {
    fn key(&self) -> Option<&VaultKey> {
        match self {
            Cipher::Key(k) => Some(k),
            #[cfg(feature = "plaintext-baseline")]
            Cipher::Plain => None,
        }
    }
}

/// Open connections of an unlocked vault. Dropping it closes them and wipes the key.
struct Session {
    cipher: Cipher,
    db_path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

/// A person's vault. Cheap to share across threads; every call either runs on an
/// unlocked vault or returns [`Error::Locked`].
pub struct Vault {
    dir: PathBuf,
    state: RwLock<State>,
}

/// Where a vault is in its life.
enum State {
    /// No key in memory.
    Locked,
    /// Key in memory, files closed (the app is in the background).
    Paused(Cipher),
    /// Key in memory and connections open.
    Open(Arc<Session>),
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("dir", &self.dir)
            .field("locked", &self.is_locked())
            .finish()
    }
}

impl Vault {
    /// Create a new, empty vault in `dir` (created if missing) and leave it unlocked.
    ///
    /// Fails with [`Error::Conflict`] if `dir` already holds a vault. The database is
    /// built under a temporary name and moved into place only after its key file is
    /// safely written, so a crash never leaves a vault without a key.
    pub fn create(dir: &Path, key_store: &dyn KeyStore) -> Result<Vault> {
        if dir.exists() && !dir.is_dir() {
            return Err(Error::invalid(
                "the profile folder is a file; choose a folder",
            ));
        }
        fs::create_dir_all(dir)?;
        restrict_permissions(dir, 0o700);
        let db_path = dir.join(VAULT_FILE);
        if db_path.exists() || dir.join(KEY_FILE).exists() {
            return Err(Error::Conflict {
                reason: format!("{} already holds a profile", dir.display()),
            });
        }
        let key = VaultKey::generate()?;
        let wrapped = key_store.wrap(&key)?;
        let tmp = dir.join("vault.db.creating");
        let _ = fs::remove_file(&tmp);
        {
            let mut conn = open_connection(&tmp, &Cipher::Key(key.clone()), true)?;
            migrations::migrate(&mut conn)?;
        }
        restrict_permissions(&tmp, 0o600);
        KeyFile::new(&key, &wrapped).write(&dir.join(KEY_FILE))?;
        fs::rename(&tmp, &db_path)?;
        let vault = Vault::closed(dir);
        vault.start(Cipher::Key(key))?;
        Ok(vault)
    }

    /// Open the vault in `dir` with its key store.
    ///
    /// A key store that cannot unwrap the key, or a key that is not this vault's,
    /// gives [`Error::WrongKey`] and the files are not touched. A vault file that does
    /// not decrypt with its own key gives [`Error::Corrupt`] and is left in place.
    pub fn open(dir: &Path, key_store: &dyn KeyStore) -> Result<Vault> {
        let vault = Vault::closed(dir);
        vault.unlock(key_store)?;
        Ok(vault)
    }

    /// Unlock a locked vault again. A no-op on an unlocked one.
    pub fn unlock(&self, key_store: &dyn KeyStore) -> Result<()> {
        if !self.is_locked() {
            return Ok(());
        }
        let key_file = KeyFile::read(&self.dir.join(KEY_FILE))?;
        let key = key_store.unwrap(&key_file.wrapped()?)?;
        if !key_file.matches(&key) {
            return Err(Error::WrongKey);
        }
        self.start(Cipher::Key(key))
    }

    /// Change how the vault key is wrapped (a new passphrase, a new platform key).
    /// The vault itself is not rewritten.
    pub fn rewrap(&self, key_store: &dyn KeyStore) -> Result<()> {
        let session = self.session()?;
        let key = session
            .cipher
            .key()
            .ok_or_else(|| Error::invalid("a plaintext vault has no key to wrap"))?;
        let wrapped = key_store.wrap(key)?;
        KeyFile::new(key, &wrapped).write(&self.dir.join(KEY_FILE))
    }

    /// Close every connection and wipe the key from memory. Calls made afterwards
    /// return [`Error::Locked`] until [`Vault::unlock`]. Work already running
    /// finishes first.
    pub fn lock(&self) {
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = State::Locked;
    }

    /// Close the database files but keep the key, so iOS can suspend the app without
    /// holding file locks. The next call reopens them; [`Vault::resume`] does it now.
    /// A no-op unless the vault is open.
    pub fn pause(&self) {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if let State::Open(session) = &*state {
            let cipher = session.cipher.clone();
            *state = State::Paused(cipher);
        }
    }

    /// Reopen the files after [`Vault::pause`]. A no-op unless paused.
    pub fn resume(&self) -> Result<()> {
        self.session().map(|_| ())
    }

    /// Whether the vault is locked.
    pub fn is_locked(&self) -> bool {
        matches!(
            *self.state.read().unwrap_or_else(|p| p.into_inner()),
            State::Locked
        )
    }

    /// The profile folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.dir.join(VAULT_FILE)
    }

    /// Create a plaintext vault: the benchmark yardstick only.
    #[cfg(feature = "plaintext-baseline")]
    pub fn create_plaintext(dir: &Path) -> Result<Vault> {
        fs::create_dir_all(dir)?;
        let db_path = dir.join(VAULT_FILE);
        {
            let mut conn = open_connection(&db_path, &Cipher::Plain, true)?;
            migrations::migrate(&mut conn)?;
        }
        let vault = Vault::closed(dir);
        vault.start(Cipher::Plain)?;
        Ok(vault)
    }

    fn closed(dir: &Path) -> Vault {
        Vault {
            dir: dir.to_path_buf(),
            state: RwLock::new(State::Locked),
        }
    }

    fn start(&self, cipher: Cipher) -> Result<()> {
        let session = self.connect(cipher)?;
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = State::Open(Arc::new(session));
        Ok(())
    }

    /// Open the writer (migrating if needed) for `cipher`.
    fn connect(&self, cipher: Cipher) -> Result<Session> {
        let db_path = self.dir.join(VAULT_FILE);
        let writer = (|| -> Result<Connection> {
            let mut writer = open_existing(&db_path, &cipher)?;
            // Refuse a newer vault before anything (even the journal mode) is written.
            let version: i64 = writer.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if version > SCHEMA_VERSION {
                return Err(Error::TooNew {
                    found: version,
                    supported: SCHEMA_VERSION,
                });
            }
            writer.pragma_update(None, "journal_mode", "WAL")?;
            writer.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
            migrations::migrate(&mut writer)?;
            Ok(writer)
        })()
        .map_err(|e| named(e, &db_path))?;
        Ok(Session {
            cipher,
            db_path,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        })
    }

    fn session(&self) -> Result<Arc<Session>> {
        if let State::Open(session) = &*self.state.read().unwrap_or_else(|p| p.into_inner()) {
            return Ok(session.clone());
        }
        // Locked, or paused: reopen under the write lock, once.
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        let cipher = match &*state {
            State::Open(session) => return Ok(session.clone()),
            State::Locked => return Err(Error::Locked),
            State::Paused(cipher) => cipher.clone(),
        };
        let session = Arc::new(self.connect(cipher)?);
        *state = State::Open(session.clone());
        Ok(session)
    }

    /// Run `f` on the writer connection. There is one writer; callers queue here.
    pub fn write<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let session = self.session()?;
        let mut conn = lock_mutex(&session.writer);
        f(&mut conn).map_err(|e| named(e, &session.db_path))
    }

    /// Run `f` on a reader connection, which sees the last committed state.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let session = self.session()?;
        let pooled = lock_mutex(&session.readers).pop();
        let conn = match pooled {
            Some(c) => c,
            None => (|| -> Result<Connection> {
                let c = open_existing(&session.db_path, &session.cipher)?;
                c.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
                c.pragma_update(None, "query_only", true)?;
                Ok(c)
            })()
            .map_err(|e| named(e, &session.db_path))?,
        };
        let out = f(&conn).map_err(|e| named(e, &session.db_path));
        let mut pool = lock_mutex(&session.readers);
        if pool.len() < READER_POOL {
            pool.push(conn);
        }
        out
    }
}

/// `e`, with a damage report from SQLite (which does not know the file) naming the
/// vault file at `db_path`.
fn named(e: Error, db_path: &Path) -> Error {
    match e {
        Error::Corrupt { path, reason } if path == Path::new(VAULT_FILE) => Error::Corrupt {
            path: db_path.to_path_buf(),
            reason,
        },
        other => other,
    }
}

fn lock_mutex<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave SQLite half-written (transactions
    // roll back on drop), so a poisoned lock is safe to take over.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Open an existing vault file, refusing files that cannot be one.
fn open_existing(path: &Path, cipher: &Cipher) -> Result<Connection> {
    let len = match fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::not_found(
                "no profile here: the vault file is missing (create a profile first)",
            ))
        }
        Err(e) => return Err(e.into()),
    };
    if len < 512 {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            reason: format!("the file is {len} bytes, too short to be a vault"),
        });
    }
    let conn = open_connection(path, cipher, false)?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version == 0 {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            reason: "the file has no Carry schema".into(),
        });
    }
    Ok(conn)
}

/// Open a connection, apply the key, prove it decrypts, and set the pragmas every
/// connection needs. Nothing is written before the key is proven.
fn open_connection(path: &Path, cipher: &Cipher, create: bool) -> Result<Connection> {
    sqlcipher_ready();
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags)?;
    match cipher {
        Cipher::Key(key) => {
            // Keep SQLCipher from printing HMAC failures to stderr.
            conn.execute_batch("PRAGMA cipher_log_level = NONE;")?;
            let mut sql = Zeroizing::new(String::with_capacity(96));
            sql.push_str("PRAGMA key = \"");
            sql.push_str(&key.sqlcipher_literal());
            sql.push_str("\";");
            conn.execute_batch(&sql)?;
        }
        #[cfg(feature = "plaintext-baseline")]
        Cipher::Plain => {}
    }
    let probe = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    });
    if let Err(e) = probe {
        // The key was checked against the key file, so it is right: the file is bad.
        return Err(match Error::from(e) {
            Error::WrongKey => Error::Corrupt {
                path: path.to_path_buf(),
                reason: "it does not decrypt with its own key".into(),
            },
            other => other,
        });
    }
    conn.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS.into()))?;
    conn.execute_batch(
        "PRAGMA secure_delete = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA foreign_keys = ON;
         PRAGMA synchronous = FULL;",
    )?;
    Ok(conn)
}

/// Wait, once per process, until SQLCipher can key a database.
///
/// SQLite marks itself initialised before SQLCipher's own set-up (its crypto provider)
/// has finished, and another thread that keys a database in that window fails with
/// "An error occurred with PRAGMA key". Keying an in-memory database succeeds only
/// once the set-up is done and derives nothing, so it is the probe; every other
/// opener waits on the `Once` meanwhile. A set-up that never completes is left for
/// the real open to report.
fn sqlcipher_ready() {
    static READY: Once = Once::new();
    READY.call_once(|| {
        for _ in 0..SQLCIPHER_READY_TRIES {
            let keyed =
                Connection::open_in_memory().and_then(|c| c.execute_batch("PRAGMA key = 'probe';"));
            if keyed.is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        tracing::warn!("SQLCipher did not finish its set-up; opening anyway");
    });
}

/// How many times [`sqlcipher_ready`] probes, 5 ms apart.
const SQLCIPHER_READY_TRIES: u32 = 200;

fn restrict_permissions(path: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Raw;
    impl KeyStore for Raw {
        fn wrap(&self, key: &VaultKey) -> Result<Vec<u8>> {
            Ok(key.as_bytes().to_vec())
        }
        fn unwrap(&self, wrapped: &[u8]) -> Result<VaultKey> {
            VaultKey::from_bytes(wrapped)
        }
    }

    #[test]
    fn a_vault_from_a_newer_build_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::create(dir.path(), &Raw).unwrap();
        vault
            .write(|c| Ok(c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)?))
            .unwrap();
        vault.lock();
        let before = fs::read(vault.db_path()).unwrap();
        let err = vault.unlock(&Raw).unwrap_err();
        assert!(matches!(err, Error::TooNew { found, .. } if found == SCHEMA_VERSION + 1));
        assert!(vault.is_locked());
        assert_eq!(fs::read(vault.db_path()).unwrap(), before);
    }

    #[test]
    fn pause_closes_files_and_the_next_call_reopens_them() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::create(dir.path(), &Raw).unwrap();
        vault
            .write(|c| Ok(c.execute("INSERT INTO meta VALUES ('k', 'v')", [])?))
            .unwrap();
        vault.pause();
        assert!(!vault.is_locked());
        assert!(matches!(*vault.state.read().unwrap(), State::Paused(_)));
        // With every connection closed, the WAL was checkpointed away.
        assert!(!dir.path().join("vault.db-wal").exists());
        let v: String = vault
            .read(|c| Ok(c.query_row("SELECT value FROM meta WHERE key='k'", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(v, "v");
        vault.pause();
        vault.resume().unwrap();
        assert!(matches!(*vault.state.read().unwrap(), State::Open(_)));
        vault.lock();
        assert!(matches!(vault.resume(), Err(Error::Locked)));
    }

    #[test]
    fn readers_see_committed_writes_and_pool_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::create(dir.path(), &Raw).unwrap();
        vault
            .write(|c| Ok(c.execute("INSERT INTO meta VALUES ('k', 'v')", [])?))
            .unwrap();
        for _ in 0..10 {
            let v: String = vault
                .read(
                    |c| Ok(c.query_row("SELECT value FROM meta WHERE key='k'", [], |r| r.get(0))?),
                )
                .unwrap();
            assert_eq!(v, "v");
        }
        let session = vault.session().unwrap();
        assert_eq!(lock_mutex(&session.readers).len(), 1);
        // A reader cannot write.
        let err = vault.read(|c| Ok(c.execute("DELETE FROM meta", [])?));
        assert!(err.is_err());
    }
}
