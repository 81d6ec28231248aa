//! Storage behind one trait, so the same conformance tests run on every backend.
//! The SQLite backend is in `sqlite.rs`, PostgreSQL in `postgres.rs`. What the share
//! relay keeps is in a trait of its own, [`RelayStore`], which every store implements;
//! so is what the share-link host keeps, [`ShlStore`], and what the backup host
//! keeps, [`BackupStore`].

use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::Value;

use crate::backup_store::BackupStore;
use crate::relay_store::RelayStore;
use crate::shl_store::ShlStore;

/// A storage failure. Messages name tables and operations, never record content.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed.
    #[error("storage: {0}")]
    Backend(String),
    /// The database URL is not one this build can open.
    #[error("{0}")]
    Url(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// Result of a storage call.
pub type Result<T> = std::result::Result<T, StoreError>;

/// One resource as a tenant holds it.
#[derive(Debug, Clone)]
pub struct Stored {
    /// `resourceType`.
    pub rtype: String,
    /// `id`.
    pub id: String,
    /// The version, counting from 1.
    pub version: i64,
    /// When it last changed, in milliseconds since the epoch.
    pub last_updated_ms: i64,
    /// The Patient whose compartment it is in, if any.
    pub patient: Option<String>,
    /// The resource as stored, with `meta.versionId` and `meta.lastUpdated` set: the
    /// exact text, served without being parsed again.
    pub json: Box<RawValue>,
}

impl Stored {
    /// The resource, parsed.
    pub fn resource(&self) -> Value {
        serde_json::from_str(self.json.get()).unwrap_or(Value::Null)
    }

    /// Wrap stored text, checking that it is JSON.
    pub fn raw(text: String) -> Result<Box<RawValue>> {
        RawValue::from_string(text).map_err(|e| StoreError::Backend(format!("stored JSON: {e}")))
    }
}

impl PartialEq for Stored {
    fn eq(&self, o: &Self) -> bool {
        (
            &self.rtype,
            &self.id,
            self.version,
            self.last_updated_ms,
            &self.patient,
            self.json.get(),
        ) == (
            &o.rtype,
            &o.id,
            o.version,
            o.last_updated_ms,
            &o.patient,
            o.json.get(),
        )
    }
}

/// Where a page of results starts: strictly after this (last_updated, type, id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    /// Milliseconds since the epoch.
    pub last_updated_ms: i64,
    /// Resource type.
    pub rtype: String,
    /// Resource id.
    pub id: String,
}

/// A search over one tenant, in (last_updated, type, id) order.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Only this resource type (`None`: every type, as `$everything` needs).
    pub rtype: Option<String>,
    /// Only this Patient's compartment.
    pub patient: Option<String>,
    /// With `patient`: also resources in no Patient's compartment (Organization,
    /// Practitioner, Location…), which every patient of the tenant may read.
    pub include_shared: bool,
    /// Only resources changed strictly after this instant (ms).
    pub updated_after_ms: Option<i64>,
    /// Only resources changed at or after this instant (ms).
    pub updated_since_ms: Option<i64>,
    /// Resume after this key.
    pub after: Option<After>,
    /// At most this many.
    pub limit: usize,
}

/// Something the authorization server issued (a code, an access token or a refresh
/// token). The store keys it by the SHA-256 of the token, never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The tenant it is valid at.
    pub tenant: String,
    /// `code`, `access` or `refresh`.
    pub kind: String,
    /// The Patient it speaks for.
    pub patient: String,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// The client it was issued to.
    pub client_id: String,
    /// When it stops being valid, in milliseconds since the epoch.
    pub expires_ms: i64,
    /// Opaque data the issuer keeps with it (for a code: the PKCE challenge and the
    /// redirect URI), as JSON text.
    pub data: String,
}

/// What a tenant's data (and the relay's, the share links' and the backups', through
/// [`RelayStore`], [`ShlStore`] and [`BackupStore`]) lives in.
pub trait Store: RelayStore + ShlStore + BackupStore + Send + Sync + 'static {
    /// Create the tenant if it is new.
    fn ensure_tenant(&self, tenant: &str) -> Result<()>;
    /// Whether the tenant exists.
    fn has_tenant(&self, tenant: &str) -> Result<bool>;
    /// Insert or replace a resource: a new version when the content changed, nothing
    /// when it did not. Returns the stored version.
    fn put(
        &self,
        tenant: &str,
        rtype: &str,
        id: &str,
        patient: Option<&str>,
        resource: &Value,
        now_ms: i64,
    ) -> Result<Stored>;
    /// One resource.
    fn get(&self, tenant: &str, rtype: &str, id: &str) -> Result<Option<Stored>>;
    /// A page of resources.
    fn search(&self, tenant: &str, q: &Query) -> Result<Vec<Stored>>;
    /// The resource types the tenant holds, sorted.
    fn types(&self, tenant: &str) -> Result<Vec<String>>;
    /// Remove a resource, so reads and searches no longer find it. Returns whether
    /// it was there.
    fn delete(&self, tenant: &str, rtype: &str, id: &str) -> Result<bool>;
    /// Conditional create: store `resource` as `rtype/id` unless a resource of that
    /// type in that patient's compartment already holds `key` (an identifier as
    /// `system|value`). Atomic: of two concurrent calls with the same key exactly one
    /// creates. Returns the stored resource (the existing one on a match) and whether
    /// it was created.
    #[allow(clippy::too_many_arguments)]
    fn create_unique(
        &self,
        tenant: &str,
        rtype: &str,
        id: &str,
        patient: &str,
        key: &str,
        resource: &Value,
        now_ms: i64,
    ) -> Result<(Stored, bool)>;
    /// Keep a grant under `hash` (the hex SHA-256 of the token).
    fn put_grant(&self, hash: &str, grant: &Grant) -> Result<()>;
    /// The grant under `hash`, if it has not expired by `now_ms`.
    fn get_grant(&self, hash: &str, now_ms: i64) -> Result<Option<Grant>>;
    /// Remove the grant under `hash` and return it if it had not expired. Atomic: of
    /// two concurrent calls at most one gets it (single-use codes, refresh rotation).
    fn take_grant(&self, hash: &str, now_ms: i64) -> Result<Option<Grant>>;
    /// Remove every grant issued to `client_id` for this patient at this tenant (used
    /// when a spent refresh token is replayed: the whole family is revoked). Returns
    /// how many went.
    fn revoke_grants(&self, tenant: &str, patient: &str, client_id: &str) -> Result<usize>;
}

/// Open the store a `--db` URL names: `sqlite://PATH`, or `postgres://…` (also
/// `postgresql://…`) in libpq's URL form.
pub fn open_url(url: &str) -> Result<Arc<dyn Store>> {
    const USE: &str = "use sqlite://PATH or postgres://USER@HOST:PORT/DATABASE";
    match url.split_once("://") {
        Some(("sqlite", path)) if !path.is_empty() => Ok(Arc::new(
            crate::sqlite::SqliteStore::open(std::path::Path::new(path))?,
        )),
        Some(("postgres" | "postgresql", _)) => {
            Ok(Arc::new(crate::postgres::PostgresStore::open(url)?))
        }
        // Echo only a plausible scheme, never the rest: a URL can carry a password.
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
        {
            Err(StoreError::Url(format!(
                "unsupported --db URL scheme '{scheme}://' (or no path): {USE}"
            )))
        }
        _ => Err(StoreError::Url(format!("unsupported --db URL: {USE}"))),
    }
}

/// Set `meta.versionId` and `meta.lastUpdated` on `resource` (every backend stamps
/// the same way).
pub fn stamp(resource: &Value, version: i64, last_updated_ms: i64) -> Value {
    let mut r = resource.clone();
    if let Some(obj) = r.as_object_mut() {
        let meta = obj
            .entry("meta")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(m) = meta.as_object_mut() {
            m.insert("versionId".into(), Value::String(version.to_string()));
            m.insert(
                "lastUpdated".into(),
                Value::String(crate::time::instant(last_updated_ms)),
            );
        }
    }
    r
}

/// The resource without the meta fields the server sets, for change detection.
pub fn unstamped(resource: &Value) -> Value {
    let mut r = resource.clone();
    if let Some(meta) = r.get_mut("meta").and_then(Value::as_object_mut) {
        meta.remove("versionId");
        meta.remove("lastUpdated");
        if meta.is_empty() {
            if let Some(o) = r.as_object_mut() {
                o.remove("meta");
            }
        }
    }
    r
}
