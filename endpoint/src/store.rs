//! Storage behind one trait, so the same conformance tests run on every backend.
//! The SQLite backend is in `sqlite.rs`; PostgreSQL comes next.

use serde_json::Value;

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
#[derive(Debug, Clone, PartialEq)]
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
    /// The resource, with `meta.versionId` and `meta.lastUpdated` set.
    pub resource: Value,
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
    /// Only resources changed strictly after this instant (ms).
    pub updated_after_ms: Option<i64>,
    /// Only resources changed at or after this instant (ms).
    pub updated_since_ms: Option<i64>,
    /// Resume after this key.
    pub after: Option<After>,
    /// At most this many.
    pub limit: usize,
}

/// What a tenant's data lives in.
pub trait Store: Send + Sync + 'static {
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
}
