//! The FHIR service's storage trait, [`FhirStore`]: tenants' resources and SMART
//! grants. Every backend in `storage/` (`sqlite/`, `postgres/`) implements it with the
//! other services' traits (`crate::storage::Store`), each service holding only its own:
//! the share relay's [`RelayStore`](crate::relay::store::RelayStore), the share-link
//! host's [`LinkStore`](crate::links::store::LinkStore) and the backup host's
//! [`BackupStore`](crate::backup::store::BackupStore).

use serde_json::value::RawValue;
use serde_json::Value;

pub use crate::error::{Result, StoreError};

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
    /// With `patient`: also resources in no Patient's compartment that are of a
    /// [`SHARED_TYPES`] type (Organization, Practitioner, Location…), which every
    /// patient of the tenant may read. A resource of any other type in no compartment
    /// is never included.
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

/// The resource types shared by every patient of a tenant: directory entries and
/// catalogue items, which name no patient. A resource of any other type that cannot be
/// placed in a Patient's compartment is refused when seeding, and never served to a
/// patient's token even if a database holds one (fail closed).
pub const SHARED_TYPES: &[&str] = &[
    "Device",
    "Location",
    "Medication",
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "Substance",
];

/// Whether resources of `rtype` are shared across a tenant's patients when they are in
/// no compartment (see [`SHARED_TYPES`]).
pub fn is_shared_type(rtype: &str) -> bool {
    SHARED_TYPES.contains(&rtype)
}

/// The SQL condition that a row's `rtype` is one of [`SHARED_TYPES`], for every
/// backend. The names are the constants above, never input.
pub fn shared_types_sql() -> String {
    let names: Vec<String> = SHARED_TYPES.iter().map(|t| format!("'{t}'")).collect();
    format!("rtype IN ({})", names.join(", "))
}

/// Something the authorization server issued (a code, an access token or a refresh
/// token). The store keys it by the SHA-256 of the token, never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The tenant it is valid at.
    pub tenant: String,
    /// `code`, `access` or `refresh`; a refresh token once used is `spent`, and one
    /// replaced by a retry within the grace window is `superseded`.
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

/// A refresh token presented at a token endpoint, with the tokens to issue if it is
/// honoured. [`Store::refresh_grant`] decides and acts in one transaction.
#[derive(Debug, Clone, Copy)]
pub struct Refresh<'a> {
    /// The tenant whose token endpoint it was presented to.
    pub tenant: &'a str,
    /// The client that presented it.
    pub client_id: &'a str,
    /// Now, in milliseconds since the epoch.
    pub now_ms: i64,
    /// For how long after it was spent a refresh token may be presented once more (a
    /// client retrying after a lost answer), in milliseconds; 0: never.
    pub grace_ms: i64,
    /// The hash and expiry (ms) of the access token to issue.
    pub access: (&'a str, i64),
    /// The hash and expiry (ms) of the refresh token to issue.
    pub refresh: (&'a str, i64),
}

/// What became of a presented refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// Honoured: the new access and refresh tokens are stored, for the patient and
    /// scope of `grant`, the presented token's grant.
    Issued {
        /// The presented token's grant.
        grant: Grant,
        /// Whether this was the one use of a spent token within the grace window (the
        /// tokens its first use gave are superseded).
        retry: bool,
    },
    /// A replay (a spent token again, past the grace window or a second time within
    /// it, or a superseded one): every grant of the family (this tenant, patient and
    /// client) was revoked; how many went.
    Revoked(usize),
    /// Unknown, expired, not a refresh token, or another tenant's or client's: nothing
    /// was changed.
    Unknown,
}

/// What a spent refresh token's grant keeps as its `data`: when it was spent, whether
/// its one retry has been used, and the hashes of the tokens it was last exchanged for.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Spent {
    /// When it was first exchanged, in milliseconds since the epoch.
    pub spent_ms: i64,
    /// Whether it has been used once more within the grace window.
    #[serde(default)]
    pub retried: bool,
    /// The access token it was last exchanged for.
    #[serde(default)]
    pub next_access: Option<String>,
    /// The refresh token it was last exchanged for.
    #[serde(default)]
    pub next_refresh: Option<String>,
}

impl Spent {
    /// A token first spent at `spent_ms` (and `retried` once since), last exchanged
    /// for the pair `r` issues.
    pub fn exchanged(spent_ms: i64, retried: bool, r: &Refresh<'_>) -> Self {
        Spent {
            spent_ms,
            retried,
            next_access: Some(r.access.0.to_string()),
            next_refresh: Some(r.refresh.0.to_string()),
        }
    }

    /// The spent-token data of a grant (defaults, which allow no retry, if it has
    /// none).
    pub fn of(g: &Grant) -> Self {
        serde_json::from_str(&g.data).unwrap_or_default()
    }

    /// As a grant's `data`.
    pub fn to_data(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

/// What a backend does with a presented refresh token, by [`refresh_step`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshStep {
    /// Change nothing; answer [`Refreshed::Unknown`].
    Unknown,
    /// A live refresh token: mark it `spent` (with a [`Spent`] naming the new tokens)
    /// and store the new pair.
    Rotate,
    /// The one retry of a spent token within the grace window, whose successor is
    /// still unused: delete the successor's access token, mark its refresh token
    /// `superseded`, record the retry and the new tokens, and store the new pair.
    Retry(Spent),
    /// A replay: revoke the family.
    Revoke,
}

/// The rule every backend applies to a presented refresh token. `found` is the grant
/// under its hash, expired or not; `successor_unused` whether the refresh token a spent
/// one was last exchanged for is still a live, unused refresh token (see
/// [`Spent::next_refresh`]; true when a spent grant names none).
pub fn refresh_step(found: Option<&Grant>, successor_unused: bool, r: &Refresh<'_>) -> RefreshStep {
    // Checks that could let a stranger change someone's tokens come first: another
    // tenant's or client's token, or an expired one, is not touched.
    let Some(g) = found
        .filter(|g| g.tenant == r.tenant && g.client_id == r.client_id && g.expires_ms > r.now_ms)
    else {
        return RefreshStep::Unknown;
    };
    match g.kind.as_str() {
        "refresh" => RefreshStep::Rotate,
        "spent" => {
            let spent = Spent::of(g);
            let within = r.grace_ms > 0 && r.now_ms.saturating_sub(spent.spent_ms) <= r.grace_ms;
            if within && !spent.retried && successor_unused {
                RefreshStep::Retry(spent)
            } else {
                RefreshStep::Revoke
            }
        }
        "superseded" => RefreshStep::Revoke,
        _ => RefreshStep::Unknown,
    }
}

/// A grant for a token issued in exchange for `from`'s: same tenant, patient, scope
/// and client.
pub fn successor_grant(from: &Grant, kind: &str, expires_ms: i64) -> Grant {
    Grant {
        tenant: from.tenant.clone(),
        kind: kind.into(),
        patient: from.patient.clone(),
        scope: from.scope.clone(),
        client_id: from.client_id.clone(),
        expires_ms,
        data: "{}".into(),
    }
}

/// What the FHIR service keeps: tenants' resources and SMART grants. Every backend in
/// `storage/` implements it with the other services' traits (`crate::storage::Store`).
pub trait FhirStore: Send + Sync {
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
    /// Remove the grant under `hash` if it is a `kind` grant of `tenant`, and return it
    /// if it had not expired; a grant of another kind or tenant is left as it was.
    /// Atomic: of two concurrent calls at most one gets it (single-use codes).
    fn take_grant(
        &self,
        hash: &str,
        kind: &str,
        tenant: &str,
        now_ms: i64,
    ) -> Result<Option<Grant>>;
    /// Exchange the refresh token under `hash` by [`refresh_step`], in one
    /// transaction that holds the token's row (and its successor's) for its length:
    /// of concurrent exchanges of one token, one rotates it, at most one more is the
    /// grace-window retry, and the rest revoke the family.
    fn refresh_grant(&self, hash: &str, r: &Refresh<'_>) -> Result<Refreshed>;
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
