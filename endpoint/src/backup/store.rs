//! What the backup host keeps, behind one trait that every
//! [`Store`](crate::storage::Store) also implements, so the backup conformance checks
//! run on every backend.
//!
//! A backup is an opaque encrypted blob under a locator (32 bytes the client derives
//! from the person's recovery code, base64url). With the locator the store keeps its
//! owner's mailbox id, the SHA-256 of the fetch secret (never the secret), a counter
//! of wrong fetch secrets in the current window, how often it was restored and when
//! last, and its versions, each with its size, creation time and base. No names, no
//! addresses.
//!
//! A version is *full* (no base) or *incremental* on top of the version before it
//! (its base, which had to be the locator's latest when it was uploaded). A full and
//! the incrementals after it, up to the next full, form a chain; a restore fetches the
//! chain's versions from the full on. Pruning keeps chains whole (see [`prune_below`]),
//! and a chain holds at most [`MAX_CHAIN`] incrementals.
//!
//! Every call is one step in the store: the locator's row is locked (SQLite: an
//! IMMEDIATE transaction; PostgreSQL: `SELECT … FOR UPDATE`), so concurrent uploads
//! number versions without gaps or duplicates, of several incrementals on the same
//! base exactly one is stored, and concurrent wrong guesses are all counted.

use crate::error::{Result, StoreError};

/// Wrong fetch secrets a locator takes within [`WRONG_WINDOW_S`] before it refuses
/// every fetch until the window passes.
pub const MAX_WRONG: i64 = 5;
/// How long the wrong-try window lasts, in seconds, from the first wrong try in it.
pub const WRONG_WINDOW_S: i64 = 15 * 60;
/// Incrementals a chain holds at most after its full: an incremental beyond it is
/// refused ([`Put::FullRequired`]) until the device uploads a full again.
pub const MAX_CHAIN: i64 = 64;

/// One stored version, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Its number, from 1 per locator.
    pub version: i64,
    /// Its size in bytes.
    pub bytes: i64,
    /// When it was stored, in seconds since the epoch.
    pub created_s: i64,
    /// The version it is an incremental on top of; `None` for a full version.
    pub base: Option<i64>,
}

/// How often a locator's backup was restored: the fetches of its latest version
/// (`GET /backup/v1/blobs/{locator}`) served to the right secret. Every restore
/// starts with one; the versions a chain restore fetches after it are not counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restores {
    /// Restores since the locator was made.
    pub count: i64,
    /// When the last one was served, in seconds since the epoch; `None` before the
    /// first.
    pub last_s: Option<i64>,
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
    /// The blob: bytes in memory, or an upload spooled to a file, which the stores
    /// copy in pieces of [`BLOB_PIECE`] bytes so a blob is never whole in memory.
    pub data: Blob<'a>,
    /// `None` for a full version; for an incremental, the version it builds on, which
    /// must be the locator's latest.
    pub base: Option<i64>,
    /// Full versions to keep, at least 1 (see [`prune_below`]).
    pub keep: i64,
    /// Now, in seconds since the epoch.
    pub now_s: i64,
}

/// How many bytes of a blob the stores copy at a time.
pub const BLOB_PIECE: usize = 64 << 10;

/// A blob to store, read by position (the stores may read it more than once, when a
/// transaction is retried).
#[derive(Debug, Clone, Copy)]
pub enum Blob<'a> {
    /// Bytes in memory.
    Bytes(&'a [u8]),
    /// An upload spooled to a file.
    Spooled(&'a crate::http::body::Spooled),
}

impl<'a> From<&'a [u8]> for Blob<'a> {
    fn from(b: &'a [u8]) -> Self {
        Blob::Bytes(b)
    }
}

impl Blob<'_> {
    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Blob::Bytes(b) => b.len() as u64,
            Blob::Spooled(s) => s.len(),
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Read into `buf` from `offset`; how many bytes were read (0 at the end).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Blob::Bytes(b) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(b.len());
                let n = buf.len().min(b.len() - start);
                buf[..n].copy_from_slice(&b[start..start + n]);
                Ok(n)
            }
            Blob::Spooled(s) => s.read_at(offset, buf),
        }
    }
}

/// Where a fetched blob goes, piece by piece.
pub trait BlobOut: Send {
    /// Drop what was written and start again (a retried transaction writes again).
    fn restart(&mut self) -> std::io::Result<()>;
    /// Append `piece`.
    fn put(&mut self, piece: &[u8]) -> std::io::Result<()>;
}

impl BlobOut for Vec<u8> {
    fn restart(&mut self) -> std::io::Result<()> {
        self.clear();
        Ok(())
    }

    fn put(&mut self, piece: &[u8]) -> std::io::Result<()> {
        self.extend_from_slice(piece);
        Ok(())
    }
}

impl BlobOut for std::fs::File {
    fn restart(&mut self) -> std::io::Result<()> {
        self.set_len(0)?;
        std::io::Seek::seek(self, std::io::SeekFrom::Start(0))?;
        Ok(())
    }

    fn put(&mut self, piece: &[u8]) -> std::io::Result<()> {
        std::io::Write::write_all(self, piece)
    }
}

/// Write `piece` to `out`, as a storage error if it fails.
pub fn put_piece(out: &mut dyn BlobOut, piece: &[u8]) -> Result<()> {
    out.put(piece)
        .map_err(|e| StoreError::Backend(format!("write the fetched backup: {e}")))
}

/// Call `each` with the pieces of `blob` in order, [`BLOB_PIECE`] bytes at a time; a
/// blob that ends before its length is an error.
pub fn for_each_piece(blob: Blob<'_>, mut each: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
    let len = blob.len();
    let mut buf = vec![0u8; BLOB_PIECE.min(usize::try_from(len).unwrap_or(usize::MAX))];
    let mut at = 0u64;
    while at < len {
        let want = usize::try_from(len - at)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = blob
            .read_at(at, &mut buf[..want])
            .map_err(|e| StoreError::Backend(format!("read the upload: {e}")))?;
        if n == 0 {
            return Err(StoreError::Backend("the upload ended early".into()));
        }
        each(&buf[..n])?;
        at += n as u64;
    }
    Ok(())
}

/// What came of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// Stored as this version.
    Stored(i64),
    /// The locator belongs to someone else; nothing changed.
    NotOwner,
    /// An incremental whose base is not the locator's latest version (given; `None`
    /// when the locator does not exist); nothing changed.
    Stale(Option<i64>),
    /// An incremental on a chain that already holds [`MAX_CHAIN`] incrementals;
    /// nothing changed.
    FullRequired,
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
    /// The right secret, but the version asked for is not kept (not counted as a
    /// wrong try).
    NoVersion,
    /// The version asked for (the latest by default) and its bytes.
    Blob {
        /// Its number.
        version: i64,
        /// The version it is an incremental on top of; `None` for a full version.
        base: Option<i64>,
        /// The blob (empty from `backup_fetch_to`, which writes it elsewhere).
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
    /// (owned by the uploader) if it is new and the upload is full, refuse another
    /// owner, refuse an incremental whose base is not the latest version
    /// ([`Put::Stale`]) or whose chain is full ([`check_base`]), number the version one
    /// past the last, store it with its base and the fetch hash, and delete the
    /// versions [`prune_below`] names. A refused upload changes nothing.
    fn backup_put(&self, upload: &Upload<'_>) -> Result<Put>;
    /// [`backup_fetch_to`](Self::backup_fetch_to) with the blob collected in memory
    /// into [`Fetch::Blob`]'s `data` (the conformance suite's form).
    #[cfg(test)]
    fn backup_fetch(
        &self,
        locator: &str,
        fetch_hash: &[u8],
        version: Option<i64>,
        now_s: i64,
    ) -> Result<Fetch> {
        let mut data = Vec::new();
        Ok(
            match self.backup_fetch_to(locator, fetch_hash, version, now_s, &mut data)? {
                Fetch::Blob { version, base, .. } => Fetch::Blob {
                    version,
                    base,
                    data,
                },
                other => other,
            },
        )
    }
    /// Version `version` under `locator` (the latest when `None`) if `fetch_hash`
    /// matches the stored hash (compared with [`same_hash`]), in one step: a
    /// locked-out locator refuses, a wrong hash is counted in the wrong-try window, and
    /// a version that is not kept is [`Fetch::NoVersion`] (not counted). A latest
    /// version served (`version` `None`) counts as a restore (see [`Restores`]). The
    /// blob is written to `out` in pieces (a [`Fetch::Blob`]'s `data` is left empty),
    /// so it is never whole in memory; if writing fails, nothing is counted.
    fn backup_fetch_to(
        &self,
        locator: &str,
        fetch_hash: &[u8],
        version: Option<i64>,
        now_s: i64,
        out: &mut dyn BlobOut,
    ) -> Result<Fetch>;
    /// `owner`'s versions under `locator`, newest first; `None` when there is no such
    /// locator of this owner.
    fn backup_versions(&self, locator: &str, owner: &str) -> Result<Option<Vec<Version>>>;
    /// How often `owner`'s `locator` was restored; `None` when there is no such
    /// locator of this owner.
    fn backup_restores(&self, locator: &str, owner: &str) -> Result<Option<Restores>>;
    /// Delete every version of `owner`'s `locator` and the locator; whether there
    /// was such a locator of this owner.
    fn backup_delete(&self, locator: &str, owner: &str) -> Result<bool>;
}

/// The decision [`BackupStore::backup_put`] makes for an upload with `base` once it
/// holds the locator whose latest version is `latest` (`None`: no such locator), with
/// `chain` incrementals after its latest full: `None` to store it, else the refusal.
/// A full upload (`base` is `None`) is always stored.
pub fn check_base(base: Option<i64>, latest: Option<i64>, chain: i64) -> Option<Put> {
    let base = base?;
    if latest != Some(base) {
        Some(Put::Stale(latest))
    } else if chain >= MAX_CHAIN {
        Some(Put::FullRequired)
    } else {
        None
    }
}

/// The version below which an upload's pruning deletes everything: the oldest of the
/// newest `keep` full versions, given the full versions' numbers newest first. `None`
/// (delete nothing) while fewer than `keep` fulls are kept. Every version from a kept
/// full on stays, so each kept chain stays whole and incrementals never count toward
/// `keep`.
pub fn prune_below(fulls_newest_first: &[i64], keep: i64) -> Option<i64> {
    let keep = usize::try_from(keep.max(1)).unwrap_or(usize::MAX);
    fulls_newest_first.get(keep - 1).copied()
}

/// The decision [`BackupStore::backup_fetch`] makes once it holds the
/// locator, the same on every backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Refuse for this many seconds (nothing changes).
    Locked(i64),
    /// Store this window and answer [`Fetch::Wrong`].
    Wrong(Window),
    /// Read and serve the version asked for.
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
    fn incrementals_need_the_latest_as_base_and_room_in_the_chain() {
        assert_eq!(check_base(None, None, 0), None);
        assert_eq!(check_base(None, Some(9), MAX_CHAIN), None);
        assert_eq!(check_base(Some(1), None, 0), Some(Put::Stale(None)));
        assert_eq!(check_base(Some(3), Some(4), 0), Some(Put::Stale(Some(4))));
        assert_eq!(check_base(Some(4), Some(4), MAX_CHAIN - 1), None);
        assert_eq!(
            check_base(Some(4), Some(4), MAX_CHAIN),
            Some(Put::FullRequired)
        );
    }

    #[test]
    fn pruning_keeps_the_newest_fulls_and_what_follows_them() {
        assert_eq!(prune_below(&[], 2), None);
        assert_eq!(prune_below(&[5], 2), None);
        assert_eq!(prune_below(&[8, 5, 1], 2), Some(5));
        assert_eq!(prune_below(&[8, 5, 1], 1), Some(8));
        assert_eq!(prune_below(&[8, 5, 1], 0), Some(8), "keep is at least 1");
        assert_eq!(prune_below(&[8, 5, 1], 3), Some(1));
    }

    #[test]
    fn hashes_compare_by_content_and_length() {
        assert!(same_hash(&[1, 2, 3], &[1, 2, 3]));
        assert!(!same_hash(&[1, 2, 3], &[1, 2, 4]));
        assert!(!same_hash(&[1, 2], &[1, 2, 3]));
    }
}
