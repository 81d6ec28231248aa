//! The PostgreSQL backend, through the sync `postgres` client and a small pool of
//! connections. It behaves as `sqlite.rs` does, call for call, and passes the same
//! conformance suite.
//!
//! Resources are kept as TEXT, not JSONB: the record must stay byte for byte as it
//! was stamped, and JSONB reorders keys. Text columns that order or page results use
//! `COLLATE "C"`, so order is bytewise as in SQLite whatever the database's locale.
//!
//! Connections are made without TLS ([`postgres::NoTls`]): the endpoint is meant to
//! reach its database on loopback or a private socket. For a remote database, TLS
//! termination (a local proxy or tunnel, or the server's `sslmode` policy) is the
//! operator's job; a URL asking for `sslmode=require` fails to connect here rather
//! than silently going in the clear.
//!
//! The SQL keeps to what PostgreSQL, Citus, YugabyteDB and CockroachDB share: plain
//! tables with primary keys, `ON CONFLICT`, `RETURNING`, `SELECT … FOR UPDATE` and
//! row-value comparison; no advisory locks, stored procedures or JSONB operators.
//! Statements that need care on those engines:
//!
//! - Schema: `COLLATE "C"` on the key columns. CockroachDB already orders STRING
//!   bytewise; a version that rejects `"C"` (or treats it as a locale collation that
//!   cannot be compared with uncollated parameters) needs the clauses dropped.
//!   Statements run one at a time, never as one multi-statement DDL transaction.
//! - `put`/`delete` lock the tenant's row (`SELECT name FROM tenants WHERE name = $1
//!   FOR UPDATE`) and then read `max(last_updated_ms)`. That read must see writers
//!   that committed while we waited for the lock: true under READ COMMITTED (asked for
//!   explicitly) and under SERIALIZABLE (the engine aborts one side with 40001, which
//!   is retried here with jittered backoff; the suite passes with SERIALIZABLE forced
//!   on PostgreSQL). Snapshot isolation (REPEATABLE READ) does not guarantee it: on
//!   YugabyteDB, where READ COMMITTED means REPEATABLE READ unless
//!   `yb_enable_read_committed_isolation` is on, turn that on or run serializable.
//! - Citus: these tables are created as plain local tables. To distribute them, use
//!   `tenant`/`name` as the distribution column of `tenants`, `resources` and
//!   `identifiers` (co-located, so every transaction here stays on one node). `grants`
//!   is keyed by `hash` alone, so it is distributed by `hash` (or kept local);
//!   `revoke_grants` and the expired-grant purge in `take_grant` then span shards.
//! - CockroachDB: transactions are SERIALIZABLE and may be aborted with 40001 under
//!   contention; every transaction here is retried a few times on 40001 and deadlock
//!   (40P01). Its retry errors can name keys (tenant, type, id), never content.
//! - The expired-grant purge (`DELETE FROM grants WHERE expires_ms <= $1`) is a range
//!   delete over the whole table (with an index on `expires_ms`); on a distributed
//!   engine it is the one statement here that touches many ranges.

use std::sync::Mutex;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, Config, GenericClient, IsolationLevel, NoTls, Row, Transaction};
use serde_json::Value;

use crate::store::{stamp, unstamped, Grant, Query, Result, Store, StoreError, Stored};

/// Connections kept open between calls.
const POOL: usize = 8;
/// How many times a transaction is tried when the engine asks for a retry.
const ATTEMPTS: u32 = 10;

/// One statement each: no engine is asked to run DDL as a multi-statement transaction.
const SCHEMA: &[&str] = &[
    r#"CREATE TABLE IF NOT EXISTS tenants (name TEXT COLLATE "C" PRIMARY KEY)"#,
    r#"CREATE TABLE IF NOT EXISTS resources (
        tenant          TEXT COLLATE "C" NOT NULL,
        rtype           TEXT COLLATE "C" NOT NULL,
        id              TEXT COLLATE "C" NOT NULL,
        version         BIGINT NOT NULL,
        last_updated_ms BIGINT NOT NULL,
        patient         TEXT COLLATE "C",
        json            TEXT NOT NULL,
        PRIMARY KEY (tenant, rtype, id)
    )"#,
    "CREATE INDEX IF NOT EXISTS resources_changes ON resources (tenant, last_updated_ms, rtype, id)",
    "CREATE INDEX IF NOT EXISTS resources_patient ON resources (tenant, patient, last_updated_ms, rtype, id)",
    r#"CREATE TABLE IF NOT EXISTS identifiers (
        tenant  TEXT COLLATE "C" NOT NULL,
        rtype   TEXT COLLATE "C" NOT NULL,
        patient TEXT COLLATE "C" NOT NULL,
        key     TEXT COLLATE "C" NOT NULL,
        id      TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (tenant, rtype, patient, key)
    )"#,
    r#"CREATE TABLE IF NOT EXISTS grants (
        hash       TEXT COLLATE "C" PRIMARY KEY,
        tenant     TEXT NOT NULL,
        kind       TEXT NOT NULL,
        patient    TEXT NOT NULL,
        scope      TEXT NOT NULL,
        client_id  TEXT NOT NULL,
        expires_ms BIGINT NOT NULL,
        data       TEXT NOT NULL
    )"#,
    "CREATE INDEX IF NOT EXISTS grants_family ON grants (tenant, patient, client_id)",
    "CREATE INDEX IF NOT EXISTS grants_expiry ON grants (expires_ms)",
];

/// A failure inside one call. The driver's error is kept (with the operation it
/// broke) until the end, so a transaction the engine aborted can be retried.
enum Fail {
    /// A statement failed.
    Db(&'static str, postgres::Error),
    /// Anything else (stored JSON that does not parse, an identifier that kept moving).
    Store(StoreError),
}

/// Result inside one call.
type Res<T> = std::result::Result<T, Fail>;

/// Name the operation a driver error broke.
trait Op<T> {
    fn op(self, what: &'static str) -> Res<T>;
}

impl<T> Op<T> for std::result::Result<T, postgres::Error> {
    fn op(self, what: &'static str) -> Res<T> {
        self.map_err(|e| Fail::Db(what, e))
    }
}

impl Fail {
    /// Whether the engine aborted the transaction and asks for it to be run again.
    fn retryable(&self) -> bool {
        match self {
            Fail::Db(_, e) => e.code().is_some_and(|c| {
                *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
            }),
            Fail::Store(_) => false,
        }
    }
}

impl From<Fail> for StoreError {
    fn from(f: Fail) -> Self {
        match f {
            Fail::Db(what, e) => StoreError::Backend(format!("{what}: {}", describe(&e))),
            Fail::Store(e) => e,
        }
    }
}

/// A driver error for a message: the server's message and SQLSTATE only, since its
/// DETAIL and WHERE parts can quote the values of a row.
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        // The driver's own errors (I/O, closed connection, timeouts) with their cause.
        None => match std::error::Error::source(e) {
            Some(cause) if !e.to_string().ends_with(&cause.to_string()) => {
                format!("{e}: {cause}")
            }
            _ => e.to_string(),
        },
    }
}

/// PostgreSQL storage (or an engine that speaks its protocol and SQL).
pub struct PostgresStore {
    /// Where to connect. Kept parsed, never as the URL text, so no message can carry
    /// the password.
    config: Config,
    pool: Mutex<Vec<Client>>,
}

impl PostgresStore {
    /// Connect to the database a `postgres://` (or `postgresql://`) URL names and
    /// create the tables if they are missing.
    pub fn open(url: &str) -> Result<Self> {
        // The parser's messages name an option, never its value or the URL.
        let config: Config = url
            .parse()
            .map_err(|e| StoreError::Url(format!("invalid PostgreSQL URL: {e}")))?;
        Self::with_config(config)
    }

    /// Connect with an already parsed configuration and create the tables if they
    /// are missing. Safe to call from async code (the server opens its store there):
    /// the work runs on a thread of its own.
    pub fn with_config(config: Config) -> Result<Self> {
        on_own_thread(move || Self::setup(config))?
    }

    fn setup(mut config: Config) -> Result<Self> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let mut client = connect(&config)?;
        for statement in SCHEMA {
            if let Err(e) = client.batch_execute(statement) {
                // Two processes opening a new database at once can race to create the
                // same table; the loser's error means the object is there.
                let raced = e.code().is_some_and(|c| {
                    *c == SqlState::UNIQUE_VIOLATION
                        || *c == SqlState::DUPLICATE_TABLE
                        || *c == SqlState::DUPLICATE_OBJECT
                });
                if !raced {
                    return Err(Fail::Db("create schema", e).into());
                }
            }
        }
        Ok(PostgresStore {
            config,
            pool: Mutex::new(vec![client]),
        })
    }

    /// A pooled connection the server has not closed, or a new one.
    fn checkout(&self) -> Result<Client> {
        loop {
            let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
            match pooled {
                Some(c) if !c.is_closed() => return Ok(c),
                Some(_) => continue,
                None => return connect(&self.config),
            }
        }
    }

    /// Return a connection to the pool unless it is closed or the pool is full.
    fn checkin(&self, client: Client) {
        if client.is_closed() {
            return;
        }
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < POOL {
            pool.push(client);
        }
    }

    /// Forget every pooled connection: one was found closed by the server, which
    /// usually means it restarted or dropped them all.
    fn drop_pooled(&self) {
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Run a read. Retried on a fresh connection when the pooled one turns out to have
    /// been closed by the server, and when the engine asks for a retry.
    fn read<T>(&self, mut f: impl FnMut(&mut Client) -> Res<T>) -> Result<T> {
        let mut tries = 0;
        loop {
            tries += 1;
            let mut client = self.checkout()?;
            let out = f(&mut client);
            let stale = out.is_err() && client.is_closed();
            self.checkin(client);
            match out {
                Err(_) if tries < ATTEMPTS && stale => self.drop_pooled(),
                Err(e) if tries < ATTEMPTS && e.retryable() => backoff(tries),
                other => return other.map_err(StoreError::from),
            }
        }
    }

    /// Run `f` in one READ COMMITTED transaction and commit it. Retried when the
    /// engine aborts it (serialization failure, deadlock) and when the pooled
    /// connection is found closed before anything was sent; never after a statement
    /// may have taken effect.
    fn tx<T>(
        &self,
        what: &'static str,
        mut f: impl FnMut(&mut Transaction<'_>) -> Res<T>,
    ) -> Result<T> {
        let mut tries = 0;
        loop {
            tries += 1;
            let mut client = self.checkout()?;
            let (out, stale) = match client
                .build_transaction()
                .isolation_level(IsolationLevel::ReadCommitted)
                .start()
            {
                Err(e) => (Err(Fail::Db(what, e)), true),
                Ok(mut t) => match f(&mut t) {
                    Ok(v) => (t.commit().op(what).map(|()| v), false),
                    // Dropping the transaction rolls it back.
                    Err(e) => (Err(e), false),
                },
            };
            let stale = stale && client.is_closed();
            self.checkin(client);
            match out {
                Err(_) if tries < ATTEMPTS && stale => self.drop_pooled(),
                Err(e) if tries < ATTEMPTS && e.retryable() => backoff(tries),
                other => return other.map_err(StoreError::from),
            }
        }
    }
}

impl Drop for PostgresStore {
    /// Close the pooled connections on a thread of their own: closing blocks on the
    /// client's private runtime, which must not happen on a thread that runs async
    /// tasks (where the server drops its store when it stops).
    fn drop(&mut self) {
        let clients = std::mem::take(self.pool.get_mut().unwrap_or_else(|p| p.into_inner()));
        if !clients.is_empty() {
            let _ = on_own_thread(move || drop(clients));
        }
    }
}

/// Run `f` on a plain thread and wait for it. The sync client drives each connection
/// with a runtime of its own, and starting or dropping one panics on a thread that
/// is driving async tasks. Calls through [`Store`] must already be off those threads
/// (the server uses `spawn_blocking`); opening and dropping the store go through here.
fn on_own_thread<T: Send>(f: impl FnOnce() -> T + Send) -> Result<T> {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("carry-postgres".into())
            .spawn_scoped(s, f)
            .map_err(|e| StoreError::Backend(format!("starting a PostgreSQL thread: {e}")))?
            .join()
            .map_err(|_| StoreError::Backend("a PostgreSQL thread panicked".into()))
    })
}

/// A new connection. Its error names the step, never the URL or password.
fn connect(config: &Config) -> Result<Client> {
    config
        .connect(NoTls)
        .map_err(|e| StoreError::Backend(format!("connecting to PostgreSQL: {}", describe(&e))))
}

/// Wait before trying again: a random time around a bound that doubles with each
/// aborted try (4 ms, 8 ms, … up to 256 ms), so racing writers spread out.
fn backoff(tries: u32) {
    use std::hash::{BuildHasher, Hasher};
    let bound = 2u64 << tries.min(7);
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    std::thread::sleep(Duration::from_micros(
        1000 * bound / 2 + random % (1000 * bound),
    ));
}

/// The columns [`stored`] reads, in order.
const RESOURCE_COLUMNS: &str = "rtype, id, version, last_updated_ms, patient, json";

/// A row of [`RESOURCE_COLUMNS`] as a [`Stored`].
fn stored(row: &Row, what: &'static str) -> Res<Stored> {
    let json: String = row.try_get(5).op(what)?;
    let json = Stored::raw(json).map_err(Fail::Store)?;
    Ok(Stored {
        rtype: row.try_get(0).op(what)?,
        id: row.try_get(1).op(what)?,
        version: row.try_get(2).op(what)?,
        last_updated_ms: row.try_get(3).op(what)?,
        patient: row.try_get(4).op(what)?,
        json,
    })
}

/// One resource by tenant, type and id.
fn select_one(
    c: &mut impl GenericClient,
    tenant: &str,
    rtype: &str,
    id: &str,
    what: &'static str,
) -> Res<Option<Stored>> {
    c.query_opt(
        &format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources WHERE tenant = $1 AND rtype = $2 AND id = $3"
        ),
        &[&tenant, &rtype, &id],
    )
    .op(what)?
    .map(|r| stored(&r, what))
    .transpose()
}

/// Hold the tenant's row until the transaction ends, so writers to one tenant take
/// turns and change times stay strictly increasing. A tenant that was never created
/// has no row to lock: writes to it still work, as in SQLite, but without that
/// guarantee against concurrent writers (every caller creates its tenants first).
fn lock_tenant(tx: &mut Transaction<'_>, tenant: &str, what: &'static str) -> Res<()> {
    tx.query_opt(
        "SELECT name FROM tenants WHERE name = $1 FOR UPDATE",
        &[&tenant],
    )
    .op(what)?;
    Ok(())
}

/// Insert or replace inside an open transaction (see [`Store::put`]).
fn put_in(
    tx: &mut Transaction<'_>,
    tenant: &str,
    rtype: &str,
    id: &str,
    patient: Option<&str>,
    resource: &Value,
    now_ms: i64,
) -> Res<Stored> {
    lock_tenant(tx, tenant, "put: lock tenant")?;
    let existing = select_one(tx, tenant, rtype, id, "put: read current version")?;
    if let Some(old) = &existing {
        if unstamped(&old.resource()) == unstamped(resource) && old.patient.as_deref() == patient {
            return Ok(old.clone());
        }
    }
    let version = existing.map_or(1, |o| o.version + 1);
    // Keep change times strictly increasing per tenant so paging by them is exact.
    let last: Option<i64> = tx
        .query_one(
            "SELECT max(last_updated_ms) FROM resources WHERE tenant = $1",
            &[&tenant],
        )
        .op("put: read latest change time")?
        .try_get(0)
        .op("put: read latest change time")?;
    let when = last.map_or(now_ms, |l| now_ms.max(l + 1));
    let doc = stamp(resource, version, when);
    let json = serde_json::to_string(&doc)
        .map_err(|e| Fail::Store(StoreError::Backend(format!("put: serialise: {e}"))))?;
    tx.execute(
        "INSERT INTO resources (tenant, rtype, id, version, last_updated_ms, patient, json)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (tenant, rtype, id) DO UPDATE SET version = excluded.version,
           last_updated_ms = excluded.last_updated_ms, patient = excluded.patient,
           json = excluded.json",
        &[&tenant, &rtype, &id, &version, &when, &patient, &json],
    )
    .op("put: write resource")?;
    Ok(Stored {
        rtype: rtype.into(),
        id: id.into(),
        version,
        last_updated_ms: when,
        patient: patient.map(str::to_string),
        json: Stored::raw(json).map_err(Fail::Store)?,
    })
}

/// The columns [`grant`] reads, in order.
const GRANT_COLUMNS: &str = "tenant, kind, patient, scope, client_id, expires_ms, data";

/// A row of [`GRANT_COLUMNS`] as a [`Grant`].
fn grant(r: &Row, what: &'static str) -> Res<Grant> {
    Ok(Grant {
        tenant: r.try_get(0).op(what)?,
        kind: r.try_get(1).op(what)?,
        patient: r.try_get(2).op(what)?,
        scope: r.try_get(3).op(what)?,
        client_id: r.try_get(4).op(what)?,
        expires_ms: r.try_get(5).op(what)?,
        data: r.try_get(6).op(what)?,
    })
}

impl Store for PostgresStore {
    fn ensure_tenant(&self, tenant: &str) -> Result<()> {
        self.tx("ensure tenant", |t| {
            t.execute(
                "INSERT INTO tenants (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
                &[&tenant],
            )
            .op("ensure tenant")?;
            Ok(())
        })
    }

    fn has_tenant(&self, tenant: &str) -> Result<bool> {
        self.read(|c| {
            Ok(
                c.query_opt("SELECT 1 FROM tenants WHERE name = $1", &[&tenant])
                    .op("read tenant")?
                    .is_some(),
            )
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
        self.tx("put", |t| {
            put_in(t, tenant, rtype, id, patient, resource, now_ms)
        })
    }

    fn get(&self, tenant: &str, rtype: &str, id: &str) -> Result<Option<Stored>> {
        self.read(|c| select_one(c, tenant, rtype, id, "read resource"))
    }

    fn search(&self, tenant: &str, q: &Query) -> Result<Vec<Stored>> {
        let mut sql = format!("SELECT {RESOURCE_COLUMNS} FROM resources WHERE tenant = $1");
        let mut args: Vec<Box<dyn ToSql + Sync>> = vec![Box::new(tenant.to_string())];
        // `clause` holds one `?` per value, numbered here in order.
        let mut arg = |sql: &mut String, clause: &str, v: Box<dyn ToSql + Sync>| {
            args.push(v);
            sql.push_str(&clause.replace('?', &format!("${}", args.len())));
        };
        if let Some(t) = &q.rtype {
            arg(&mut sql, " AND rtype = ?", Box::new(t.clone()));
        }
        if let Some(p) = &q.patient {
            if q.include_shared {
                arg(
                    &mut sql,
                    " AND (patient = ? OR patient IS NULL)",
                    Box::new(p.clone()),
                );
            } else {
                arg(&mut sql, " AND patient = ?", Box::new(p.clone()));
            }
        }
        if let Some(ms) = q.updated_after_ms {
            arg(&mut sql, " AND last_updated_ms > ?", Box::new(ms));
        }
        if let Some(ms) = q.updated_since_ms {
            arg(&mut sql, " AND last_updated_ms >= ?", Box::new(ms));
        }
        if let Some(a) = &q.after {
            arg(
                &mut sql,
                " AND (last_updated_ms, rtype, id) > (?",
                Box::new(a.last_updated_ms),
            );
            arg(&mut sql, ", ?", Box::new(a.rtype.clone()));
            arg(&mut sql, ", ?)", Box::new(a.id.clone()));
        }
        sql.push_str(" ORDER BY last_updated_ms, rtype, id");
        let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
        arg(&mut sql, " LIMIT ?", Box::new(limit));
        let args: Vec<&(dyn ToSql + Sync)> = args.iter().map(|b| b.as_ref()).collect();
        self.read(|c| {
            c.query(sql.as_str(), &args)
                .op("search")?
                .iter()
                .map(|r| stored(r, "search"))
                .collect()
        })
    }

    fn types(&self, tenant: &str) -> Result<Vec<String>> {
        self.read(|c| {
            c.query(
                "SELECT DISTINCT rtype FROM resources WHERE tenant = $1 ORDER BY rtype",
                &[&tenant],
            )
            .op("list types")?
            .iter()
            .map(|r| r.try_get(0).op("list types"))
            .collect()
        })
    }

    fn delete(&self, tenant: &str, rtype: &str, id: &str) -> Result<bool> {
        self.tx("delete", |t| {
            // Take turns with `put` in this tenant, as SQLite's one writer does.
            lock_tenant(t, tenant, "delete: lock tenant")?;
            let n = t
                .execute(
                    "DELETE FROM resources WHERE tenant = $1 AND rtype = $2 AND id = $3",
                    &[&tenant, &rtype, &id],
                )
                .op("delete: resource")?;
            t.execute(
                "DELETE FROM identifiers WHERE tenant = $1 AND rtype = $2 AND id = $3",
                &[&tenant, &rtype, &id],
            )
            .op("delete: identifiers")?;
            Ok(n > 0)
        })
    }

    fn create_unique(
        &self,
        tenant: &str,
        rtype: &str,
        id: &str,
        patient: &str,
        key: &str,
        resource: &Value,
        now_ms: i64,
    ) -> Result<(Stored, bool)> {
        self.tx("create unique", |t| {
            // The identifier row decides who creates: the one whose insert lands. A
            // concurrent inserter of the same key waits for us, then sees our row.
            for _ in 0..3 {
                let claimed = t
                    .query_opt(
                        "INSERT INTO identifiers (tenant, rtype, patient, key, id)
                         VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (tenant, rtype, patient, key) DO NOTHING RETURNING id",
                        &[&tenant, &rtype, &patient, &key, &id],
                    )
                    .op("create unique: claim identifier")?;
                if claimed.is_some() {
                    let s = put_in(t, tenant, rtype, id, Some(patient), resource, now_ms)?;
                    return Ok((s, true));
                }
                let holder: Option<String> = t
                    .query_opt(
                        "SELECT id FROM identifiers
                         WHERE tenant = $1 AND rtype = $2 AND patient = $3 AND key = $4",
                        &[&tenant, &rtype, &patient, &key],
                    )
                    .op("create unique: read identifier")?
                    .map(|r| r.try_get(0))
                    .transpose()
                    .op("create unique: read identifier")?;
                let Some(holder) = holder else {
                    // Deleted between the two statements: claim it again.
                    continue;
                };
                if let Some(s) =
                    select_one(t, tenant, rtype, &holder, "create unique: read match")?
                {
                    return Ok((s, false));
                }
                // The identifier names a resource that is gone: take it over, as SQLite
                // does, but only if nobody else has meanwhile.
                let moved = t
                    .execute(
                        "UPDATE identifiers SET id = $5
                         WHERE tenant = $1 AND rtype = $2 AND patient = $3 AND key = $4 AND id = $6",
                        &[&tenant, &rtype, &patient, &key, &id, &holder],
                    )
                    .op("create unique: take over identifier")?;
                if moved == 1 {
                    let s = put_in(t, tenant, rtype, id, Some(patient), resource, now_ms)?;
                    return Ok((s, true));
                }
            }
            Err(Fail::Store(StoreError::Backend(
                "create unique: the identifier kept changing under concurrent writers".into(),
            )))
        })
    }

    fn put_grant(&self, hash: &str, g: &Grant) -> Result<()> {
        self.tx("put grant", |t| {
            t.execute(
                "INSERT INTO grants (hash, tenant, kind, patient, scope, client_id, expires_ms, data)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &hash,
                    &g.tenant,
                    &g.kind,
                    &g.patient,
                    &g.scope,
                    &g.client_id,
                    &g.expires_ms,
                    &g.data,
                ],
            )
            .op("put grant")?;
            Ok(())
        })
    }

    fn get_grant(&self, hash: &str, now_ms: i64) -> Result<Option<Grant>> {
        self.read(|c| {
            c.query_opt(
                &format!("SELECT {GRANT_COLUMNS} FROM grants WHERE hash = $1 AND expires_ms > $2"),
                &[&hash, &now_ms],
            )
            .op("read grant")?
            .map(|r| grant(&r, "read grant"))
            .transpose()
        })
    }

    fn take_grant(&self, hash: &str, now_ms: i64) -> Result<Option<Grant>> {
        self.tx("take grant", |t| {
            // Of concurrent takers, the one whose delete lands gets the row.
            let g = t
                .query_opt(
                    &format!("DELETE FROM grants WHERE hash = $1 RETURNING {GRANT_COLUMNS}"),
                    &[&hash],
                )
                .op("take grant")?
                .map(|r| grant(&r, "take grant"))
                .transpose()?;
            // Expired grants go whenever one is taken, so the table stays small.
            t.execute("DELETE FROM grants WHERE expires_ms <= $1", &[&now_ms])
                .op("take grant: purge expired")?;
            Ok(g.filter(|g| g.expires_ms > now_ms))
        })
    }

    fn revoke_grants(&self, tenant: &str, patient: &str, client_id: &str) -> Result<usize> {
        self.tx("revoke grants", |t| {
            let n = t
                .execute(
                    "DELETE FROM grants WHERE tenant = $1 AND patient = $2 AND client_id = $3",
                    &[&tenant, &patient, &client_id],
                )
                .op("revoke grants")?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }
}
