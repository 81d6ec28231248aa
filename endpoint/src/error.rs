//! Errors of the endpoint's storage, shared by every service's store trait and every
//! backend.

/// A storage failure. Messages name tables and operations, never record content.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed.
    #[error("storage: {0}")]
    Backend(String),
    /// The database URL is not one this build can open.
    #[error("{0}")]
    Url(String),
    /// The database was made by a newer endpoint: its schema is at a version this
    /// build does not know, so it is left untouched.
    #[error(
        "the database was made by a newer endpoint (schema version {found}; this one \
         knows up to {supported}): run that version or later"
    )]
    TooNew {
        /// The database's schema version.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// Result of a storage call.
pub type Result<T> = std::result::Result<T, StoreError>;
