//! The backends every service's store trait is implemented on: embedded SQLite (the
//! default) and PostgreSQL, each split by service (`fhir.rs`, `relay.rs`, `links.rs`,
//! `backup.rs`) with its schema as numbered migrations (`schema.rs`, after
//! [`migrations`]); and the conformance suite both must pass.

use std::sync::Arc;

use crate::backup::store::BackupStore;
use crate::error::{Result, StoreError};
use crate::fhir::store::FhirStore;
use crate::links::store::LinkStore;
use crate::relay::store::RelayStore;

#[cfg(test)]
mod conformance;
pub(crate) mod migrations;
pub(crate) mod postgres;
pub(crate) mod sqlite;

/// What a backend is: every service's store, so one database holds them all and the
/// same conformance checks run on each. Each service holds only its own trait.
pub trait Store: FhirStore + RelayStore + LinkStore + BackupStore + Send + Sync + 'static {}

impl<T: FhirStore + RelayStore + LinkStore + BackupStore + Send + Sync + 'static> Store for T {}

/// Open the store a `--db` URL names: `sqlite://PATH`, or `postgres://…` (also
/// `postgresql://…`) in libpq's URL form.
pub fn open_url(url: &str) -> Result<Arc<dyn Store>> {
    const USE: &str = "use sqlite://PATH or postgres://USER@HOST:PORT/DATABASE";
    match url.split_once("://") {
        Some(("sqlite", path)) if !path.is_empty() => Ok(Arc::new(sqlite::SqliteStore::open(
            std::path::Path::new(path),
        )?)),
        Some(("postgres" | "postgresql", _)) => Ok(Arc::new(postgres::PostgresStore::open(url)?)),
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
