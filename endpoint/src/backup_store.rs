//! What the backup host keeps, behind one trait that every
//! [`Store`](crate::store::Store) also implements, so the backup conformance checks
//! run on every backend.
//!
//! A backup is an opaque encrypted blob under a locator (32 bytes the client derives
//! from the person's recovery code, base64url). With the locator the store keeps its
//! owner's mailbox id, the SHA-256 of the fetch secret (never the secret), a counter
//! of wrong fetch secrets in the current window, and up to a number of versions, each
//! with its size and creation time. No names, no addresses.
//!
//! Every call is one step in the store: the locator's row is locked (SQLite: an
//! IMMEDIATE transaction; PostgreSQL: `SELECT … FOR UPDATE`), so concurrent uploads
//! number versions without gaps or duplicates, and concurrent wrong guesses are all
//! counted.

use crate::store::Result;

/// Wrong fetch secrets a locator takes within [`WRONG_WINDOW_S`] before it refuses
/// every fetch until the window passes.
pub const MAX_WRONG: i64 = 5;
/// How long the wrong-try window lasts, in seconds, from the first wrong try in it.
pub const WRONG_WINDOW_S: i64 = 15 * 60;

/// One stored version, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Its number, from 1 per locator.
    pub version: i64,
    /// Its size in bytes.
    pub bytes: i64,
    /// When it was stored, in seconds since the epoch.
    pub created_s: i64,
}

/// An upload, as [`BackupStore::backup_put`] takes it.
#[derive(Debug, Clone, Copy)]
pub struct Upload<'a> {
    /// The locator (base64url of 32 bytes).
    pub locator: &'a str,
    /// The uploader's mailbox id; the first upload makes it the owner.
    pub owner: &'a str,
    /// SHA-256 of the fetch secret (32 bytes); replaces the stored one.
    pub fetch_hash: &'a [u8],
    /// The blob.
    pub data: &'a [u8],
    /// Versions to keep, at least 1; older ones are deleted.
    pub keep: i64,
    /// Now, in seconds since the epoch.
    pub now_s: i64,
}

/// What came of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// Stored as this version.
    Stored(i64),
    /// The locator belongs to someone else; nothing changed.
    NotOwner,
}

/// What came of a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetch {
    /// No such locator.
    Unknown,
    /// A wrong fetch secret (counted).
    Wrong,
    /// Too many wrong secrets lately: refused for this many more seconds.
    Locked(i64),
    /// The latest version and its bytes.
    Blob {
        /// Its number.
        version: i64,
        /// The blob.
        data: Vec<u8>,
    },
}

/// A locator's wrong-try state, as the store reads it under lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Wrong tries counted in the current window.
    pub failures: i64,
    /// When the current window began (seconds; meaningless when `failures` is 0).
    pub start_s: i64,
}

impl Window {
    /// Seconds left while the locator refuses fetches at `now_s`, if it does.
    pub fn locked(&self, now_s: i64) -> Option<i64> {
        let end = self.start_s + WRONG_WINDOW_S;
        (self.failures >= MAX_WRONG && now_s < end).then_some(end - now_s)
    }

    /// The window after one more wrong try at `now_s`: a new one when the last has
    /// passed.
    pub fn after_wrong(&self, now_s: i64) -> Window {
        if self.failures == 0 || now_s >= self.start_s + WRONG_WINDOW_S {
            Window {
                failures: 1,
                start_s: now_s,
            }
        } else {
            Window {
                failures: self.failures + 1,
                start_s: self.start_s,
            }
        }
    }
}

/// Whether two hashes are equal, in time that depends only on their lengths.
pub fn same_hash(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Storage for encrypted backups.
pub trait BackupStore: Send + Sync {
    /// Add a version under the upload's locator, in one step: create the locator
    /// (owned by the uploader) if it is new, refuse another owner, number the version
    /// one past the last, store the fetch hash, and delete versions beyond `keep`.
    fn backup_put(&self, upload: &Upload<'_>) -> Result<Put>;
    /// The latest version under `locator` if `fetch_hash` matches the stored hash
    /// (compared with [`same_hash`]), in one step: a locked-out locator refuses, a
    /// wrong hash is counted in the wrong-try window.
    fn backup_fetch(&self, locator: &str, fetch_hash: &[u8], now_s: i64) -> Result<Fetch>;
    /// `owner`'s versions under `locator`, newest first; `None` when there is no such
    /// locator of this owner.
    fn backup_versions(&self, locator: &str, owner: &str) -> Result<Option<Vec<Version>>>;
    /// Delete every version of `owner`'s `locator` and the locator; whether there
    /// was such a locator of this owner.
    fn backup_delete(&self, locator: &str, owner: &str) -> Result<bool>;
}

/// The decision [`BackupStore::backup_fetch`] makes once it holds the locator, the
/// same on every backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Refuse for this many seconds (nothing changes).
    Locked(i64),
    /// Store this window and answer [`Fetch::Wrong`].
    Wrong(Window),
    /// Read and serve the latest version.
    Serve,
}

/// Decide a fetch with `fetch_hash` of a locator holding `stored` and `window`.
pub fn decide(stored: &[u8], window: Window, fetch_hash: &[u8], now_s: i64) -> Step {
    if let Some(left) = window.locked(now_s) {
        Step::Locked(left)
    } else if same_hash(stored, fetch_hash) {
        Step::Serve
    } else {
        Step::Wrong(window.after_wrong(now_s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_wrong_tries_lock_until_the_window_passes() {
        let mut w = Window {
            failures: 0,
            start_s: 0,
        };
        for i in 0..5 {
            assert_eq!(decide(b"a", w, b"a", 100 + i), Step::Serve);
            match decide(b"a", w, b"b", 100 + i) {
                Step::Wrong(next) => w = next,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            w,
            Window {
                failures: 5,
                start_s: 100
            }
        );
        assert_eq!(decide(b"a", w, b"a", 110), Step::Locked(890));
        assert_eq!(decide(b"a", w, b"a", 1000), Step::Serve);
        // A wrong try after the window starts a new one.
        assert_eq!(
            decide(b"a", w, b"b", 1000),
            Step::Wrong(Window {
                failures: 1,
                start_s: 1000
            })
        );
    }

    #[test]
    fn hashes_compare_by_content_and_length() {
        assert!(same_hash(&[1, 2, 3], &[1, 2, 3]));
        assert!(!same_hash(&[1, 2, 3], &[1, 2, 4]));
        assert!(!same_hash(&[1, 2], &[1, 2, 3]));
    }
}
