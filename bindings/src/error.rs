//! The one error enum apps branch on. Every variant carries a `reason`, so Kotlin and
//! Swift exceptions always have a message; none carries health data.

use carry_core::Error;

/// Everything that can go wrong, as apps see it.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum CarryError {
    /// The profile is locked; unlock it first.
    #[error("{reason}")]
    Locked {
        /// What happened.
        reason: String,
    },
    /// The key or passphrase does not open this vault. Nothing was changed.
    #[error("{reason}")]
    WrongKey {
        /// What happened.
        reason: String,
    },
    /// The thing asked for does not exist.
    #[error("{reason}")]
    NotFound {
        /// What was missing.
        reason: String,
    },
    /// The input was refused before anything was stored.
    #[error("{reason}")]
    InvalidInput {
        /// Why, and where.
        reason: String,
    },
    /// A network failure; retry after `retry_after_s` seconds when given.
    #[error("{reason}")]
    Network {
        /// Seconds to wait before retrying, when the server said.
        retry_after_s: Option<u64>,
        /// What failed.
        reason: String,
    },
    /// Authentication with a provider failed; sign in again.
    #[error("{reason}")]
    Auth {
        /// What failed.
        reason: String,
    },
    /// The action is not allowed.
    #[error("{reason}")]
    Denied {
        /// Why.
        reason: String,
    },
    /// A grant or link has expired.
    #[error("{reason}")]
    Expired {
        /// What expired.
        reason: String,
    },
    /// A grant or link was revoked.
    #[error("{reason}")]
    Revoked {
        /// What was revoked.
        reason: String,
    },
    /// The thing already exists, or a concurrent change won.
    #[error("{reason}")]
    Conflict {
        /// What conflicted.
        reason: String,
    },
    /// Storage failed, or the vault is damaged (it is left in place, never deleted).
    #[error("{reason}")]
    Storage {
        /// What failed.
        reason: String,
    },
    /// The call was cancelled (its budget ran out with nothing to keep, or it was
    /// cancelled): nothing half-done was kept. Not a bug; try again when it suits.
    #[error("{reason}")]
    Cancelled {
        /// What was cancelled.
        reason: String,
    },
    /// The vault or backup was made by a newer version of the app: update the app.
    /// Nothing was changed.
    #[error("{reason}")]
    NeedsUpdate {
        /// What was found, and what this build supports.
        reason: String,
    },
    /// A bug, or a failure in an app callback.
    #[error("{reason}")]
    Internal {
        /// What happened.
        reason: String,
    },
}

impl From<Error> for CarryError {
    fn from(e: Error) -> Self {
        // The single choke point from core errors to public ones, and where they are
        // logged. Only the kind is logged: a reason can name a file, and a file name
        // can name a person.
        let reason = e.to_string();
        let public = match e {
            Error::Locked => CarryError::Locked { reason },
            // A wrong recovery code is a wrong key to apps; its reason says which.
            Error::WrongKey | Error::WrongRecoveryCode => CarryError::WrongKey { reason },
            Error::NotFound { .. } => CarryError::NotFound { reason },
            Error::InvalidInput { .. } => CarryError::InvalidInput { reason },
            Error::Denied { .. } | Error::Envelope { .. } => CarryError::Denied { reason },
            Error::Expired { .. } => CarryError::Expired { reason },
            Error::Revoked { .. } => CarryError::Revoked { reason },
            Error::Conflict { .. } => CarryError::Conflict { reason },
            Error::Network { retry_after_s, .. } => CarryError::Network {
                retry_after_s,
                reason,
            },
            Error::Auth { .. } => CarryError::Auth { reason },
            Error::Corrupt { .. } | Error::Storage { .. } => CarryError::Storage { reason },
            Error::TooNew { .. } => CarryError::NeedsUpdate { reason },
            Error::Cancelled => CarryError::Cancelled { reason },
            Error::KeyStore { .. } | Error::Internal { .. } => CarryError::Internal { reason },
        };
        tracing::debug!(kind = public.kind(), "call failed");
        public
    }
}

impl CarryError {
    /// The variant's name, for logs.
    fn kind(&self) -> &'static str {
        match self {
            CarryError::Locked { .. } => "Locked",
            CarryError::WrongKey { .. } => "WrongKey",
            CarryError::NotFound { .. } => "NotFound",
            CarryError::InvalidInput { .. } => "InvalidInput",
            CarryError::Network { .. } => "Network",
            CarryError::Auth { .. } => "Auth",
            CarryError::Denied { .. } => "Denied",
            CarryError::Expired { .. } => "Expired",
            CarryError::Revoked { .. } => "Revoked",
            CarryError::Conflict { .. } => "Conflict",
            CarryError::Storage { .. } => "Storage",
            CarryError::Cancelled { .. } => "Cancelled",
            CarryError::NeedsUpdate { .. } => "NeedsUpdate",
            CarryError::Internal { .. } => "Internal",
        }
    }
}

impl From<uniffi::UnexpectedUniFFICallbackError> for CarryError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        CarryError::Internal {
            reason: format!("an app callback failed: {}", e.reason),
        }
    }
}

impl From<tokio::task::JoinError> for CarryError {
    fn from(e: tokio::task::JoinError) -> Self {
        CarryError::Internal {
            reason: if e.is_panic() {
                "the core panicked; the vault was left as it was".into()
            } else {
                "the call was cancelled".into()
            },
        }
    }
}

/// Shorthand for results across the FFI.
pub type Result<T, E = CarryError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_and_a_cancel_are_their_own_kinds() {
        let too_new: CarryError = Error::TooNew {
            found: 99,
            supported: 11,
        }
        .into();
        assert!(
            matches!(too_new, CarryError::NeedsUpdate { .. }),
            "{too_new:?}"
        );
        let cancelled: CarryError = Error::Cancelled.into();
        assert!(
            matches!(cancelled, CarryError::Cancelled { .. }),
            "{cancelled:?}"
        );
        let damaged: CarryError = Error::Storage {
            reason: "disk full".into(),
        }
        .into();
        assert!(matches!(damaged, CarryError::Storage { .. }));
    }
}
