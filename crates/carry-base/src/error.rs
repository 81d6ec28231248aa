//! The core's error type. Every variant names the problem and, where there is one,
//! the remedy. No variant ever carries health data: reasons name files, positions,
//! fields and limits, never the content of a record.

use std::path::PathBuf;

/// Everything that can go wrong in the core.
///
/// The variants mirror the public error enum in DESIGN.md so that the FFI layer can
/// map them one to one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The profile is locked: unlock it with its key store first.
    #[error("the profile is locked; unlock it first")]
    Locked,
    /// The key or passphrase does not open this vault. Nothing was changed.
    #[error("wrong key or passphrase; the vault was not changed")]
    WrongKey,
    /// The recovery code does not open the backup (it is another profile's, or an
    /// old one replaced since). Nothing was restored.
    #[error("the recovery code is wrong: it does not open this backup; nothing was restored")]
    WrongRecoveryCode,
    /// The thing asked for does not exist.
    #[error("not found: {what}")]
    NotFound {
        /// What was looked for (an id or a path, never content).
        what: String,
    },
    /// The input was rejected before anything was stored.
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// Why, and where (file, line, column, entry).
        reason: String,
    },
    /// The action is not allowed.
    #[error("denied: {reason}")]
    Denied {
        /// Why it was denied.
        reason: String,
    },
    /// A grant or invite has passed its end date.
    #[error("expired: {what}")]
    Expired {
        /// What expired (a grant id, an invite), never content.
        what: String,
    },
    /// A grant was revoked by the person who made it.
    #[error("revoked: {what}")]
    Revoked {
        /// What was revoked (a grant id).
        what: String,
    },
    /// A sealed envelope from the relay was refused; nothing it carried was stored.
    #[error("envelope refused: {problem}")]
    Envelope {
        /// Why it was refused.
        problem: EnvelopeProblem,
    },
    /// The thing already exists, or a concurrent change won.
    #[error("conflict: {reason}")]
    Conflict {
        /// What conflicted.
        reason: String,
    },
    /// The vault file is damaged. It is left in place, untouched, so it can be recovered.
    #[error("the vault file {path} is damaged and was left in place untouched; restore it from a backup ({reason})")]
    Corrupt {
        /// Where the damaged file is.
        path: PathBuf,
        /// What was found.
        reason: String,
    },
    /// The vault was written by a newer version of Carry.
    #[error("the vault has schema version {found}, newer than this build supports ({supported}); update the app")]
    TooNew {
        /// The schema version in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// The storage layer failed (disk full, I/O error, a locked database).
    #[error("storage error: {reason}")]
    Storage {
        /// What failed.
        reason: String,
    },
    /// The key store (the platform keystore, or the passphrase key file) failed.
    #[error("key store error: {reason}")]
    KeyStore {
        /// What failed.
        reason: String,
    },
    /// A provider could not be reached, or kept failing. Anything already fetched is
    /// kept; syncing again resumes where this stopped.
    #[error("network: {reason}")]
    Network {
        /// What failed (a status, a timeout), never content.
        reason: String,
        /// When the server asked to be tried again, in seconds, if it said.
        retry_after_s: Option<u64>,
    },
    /// A provider refused the credentials: sign in to it again.
    #[error("authorization: {reason}")]
    Auth {
        /// What the server said, never a token.
        reason: String,
    },
    /// The caller cancelled the work; nothing of it was kept.
    #[error("cancelled; nothing of the interrupted work was kept")]
    Cancelled,
    /// A bug: an invariant did not hold.
    #[error("internal error: {reason}")]
    Internal {
        /// What did not hold.
        reason: String,
    },
}

/// Why an envelope was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnvelopeProblem {
    /// It does not open: changed in transit, or not sealed by the sender it names.
    Tampered,
    /// Its sequence number was already taken: a replay.
    Replayed,
    /// Its sequence number skips ahead: envelopes are missing or out of order.
    OutOfOrder,
    /// It comes from nobody this profile knows, or for a grant it does not hold.
    UnknownSender,
    /// The grant it is for has ended or does not allow what it carries.
    NotAllowed,
    /// It opened but its content is not a Carry message this build understands.
    Malformed,
}

impl std::fmt::Display for EnvelopeProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EnvelopeProblem::Tampered => "it does not open (tampered, or not from its sender)",
            EnvelopeProblem::Replayed => "it was already received (a replay)",
            EnvelopeProblem::OutOfOrder => "envelopes before it are missing (out of order)",
            EnvelopeProblem::UnknownSender => "it is from an unknown sender or grant",
            EnvelopeProblem::NotAllowed => "the grant does not allow it",
            EnvelopeProblem::Malformed => "its content is not understood",
        })
    }
}

/// The core's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }

    /// Shorthand for [`Error::Internal`].
    pub fn internal(reason: impl Into<String>) -> Self {
        Error::Internal {
            reason: reason.into(),
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        // SQLite's messages name tables and constraints, never row content.
        match &e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase => {
                Error::WrongKey
            }
            // A damaged page (a bit flipped, the file cut short). SQLite does not say
            // which file: the vault names itself when the error passes through it.
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::DatabaseCorrupt =>
            {
                Error::Corrupt {
                    path: PathBuf::from(crate::files::VAULT_FILE),
                    reason: e.to_string(),
                }
            }
            rusqlite::Error::QueryReturnedNoRows => Error::not_found("no such row"),
            _ => Error::Storage {
                reason: e.to_string(),
            },
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Storage {
            reason: e.to_string(),
        }
    }
}

impl From<serde_json::Error> for Error {
    /// Writing or reading the core's own JSON failed: a bug, not bad input (input is
    /// parsed where the place it came from can be named).
    fn from(e: serde_json::Error) -> Self {
        // serde_json's messages name a line and column, never the text.
        Error::internal(format!("JSON: {e}"))
    }
}
