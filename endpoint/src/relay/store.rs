//! What the share relay keeps, behind one trait that every [`Store`](crate::storage::Store)
//! also implements, so the relay conformance checks run on every backend.
//!
//! The relay holds the least that works: sign-in challenges and sessions (a session
//! only as the SHA-256 of its token), one directory entry per mailbox (public keys),
//! and envelopes (opaque ciphertext with a tag, the sender's mailbox id, a size and a
//! time). No names, no addresses.

use crate::error::Result;

/// A relay session: who signed in, until when. Kept under the hex SHA-256 of its
/// token, never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The Ed25519 public key that signed in.
    pub key: Vec<u8>,
    /// When it stops being valid, in milliseconds since the epoch.
    pub expires_ms: i64,
}

/// A mailbox's public keys, as its owner published them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    /// The mailbox id (derived from `sign`).
    pub mailbox: String,
    /// The owner's Ed25519 public key.
    pub sign: Vec<u8>,
    /// The owner's X25519 public key, for encrypting to them.
    pub enc: Vec<u8>,
    /// The Ed25519 signature by `sign` over `enc` that binds the two.
    pub binding: Vec<u8>,
    /// When it was last published, in seconds since the epoch.
    pub updated_s: i64,
}

/// An envelope as it is posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEnvelope {
    /// The mailbox it is for.
    pub mailbox: String,
    /// The sender's label for it (a share id, say), so the sender can withdraw it.
    pub tag: String,
    /// The mailbox id of whoever posted it.
    pub sender: String,
    /// The ciphertext.
    pub body: Vec<u8>,
    /// When it was posted, in seconds since the epoch.
    pub created_s: i64,
}

/// An envelope as its recipient fetches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Its id: increasing in the order envelopes were posted to a mailbox.
    pub id: i64,
    /// The sender's tag.
    pub tag: String,
    /// The ciphertext.
    pub body: Vec<u8>,
    /// The mailbox id of whoever posted it (the signed-in key's, so the recipient can
    /// tell senders apart whatever the ciphertext claims).
    pub sender: String,
}

/// How much one mailbox may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Most envelopes.
    pub envelopes: usize,
    /// Most bytes of envelope bodies in all.
    pub bytes: u64,
}

impl Quota {
    /// Whether a mailbox holding `held` envelopes of `bytes` bytes in all refuses one
    /// more of `len` bytes.
    pub fn refuses(&self, held: usize, bytes: i64, len: usize) -> bool {
        let after = u64::try_from(bytes)
            .unwrap_or(0)
            .saturating_add(u64::try_from(len).unwrap_or(u64::MAX));
        held >= self.envelopes || after > self.bytes
    }
}

/// What became of a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posted {
    /// Stored under this id.
    Stored(i64),
    /// The mailbox has no directory entry.
    NoMailbox,
    /// The mailbox already holds its quota of envelopes, or this one would take it
    /// past its quota of bytes.
    Full,
}

/// A key its holder replaced: signed by the key itself, naming its successor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retirement {
    /// The Ed25519 public key that is replaced.
    pub key: Vec<u8>,
    /// Its mailbox id.
    pub mailbox: String,
    /// The Ed25519 public key that replaces it.
    pub successor: Vec<u8>,
    /// The successor's mailbox id.
    pub successor_mailbox: String,
    /// When, in seconds since the epoch.
    pub at_s: i64,
}

/// The statements of a retirement after its row is written, the same for every SQL
/// backend, each with its parameters in order of appearance: what goes with the
/// retired key (`$1`, the key) ...
pub(crate) const RETIRE_KEY_SQL: &[&str] = &["DELETE FROM relay_sessions WHERE key = $1"];
/// ... what goes with its mailbox (`$1`, the mailbox) ...
pub(crate) const RETIRE_MAILBOX_SQL: &[&str] = &[
    "DELETE FROM relay_directory WHERE mailbox = $1",
    "DELETE FROM relay_envelopes WHERE mailbox = $1",
];
/// ... and what passes to the successor (`$1`, the successor's mailbox; `$2`, the
/// retired one).
pub(crate) const RETIRE_HANDOVER_SQL: &[&str] = &[
    "UPDATE relay_envelopes SET sender = $1 WHERE sender = $2",
    "UPDATE shl_links SET owner = $1 WHERE owner = $2",
    "UPDATE backup_locators SET owner = $1 WHERE owner = $2",
];

/// What a second retirement of a key is, given the successor it already has.
pub fn retired_again(existing: &[u8], r: &Retirement) -> Retired {
    if existing == r.successor.as_slice() {
        Retired::Again
    } else {
        Retired::Other
    }
}

/// What became of a retirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retired {
    /// The key is retired now.
    Done,
    /// It already was, in favour of the same successor (a retry).
    Again,
    /// It already was, in favour of another key: nothing changed.
    Other,
}

/// One page of a mailbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// The envelopes, in id order.
    pub envelopes: Vec<Envelope>,
    /// Whether more follow the last one.
    pub more: bool,
}

/// What a prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Expired challenges.
    pub challenges: usize,
    /// Expired sessions.
    pub sessions: usize,
    /// Envelopes past retention.
    pub envelopes: usize,
}

/// Storage for the share relay.
pub trait RelayStore: Send + Sync {
    /// Keep a sign-in challenge (base64url text) issued to `key`, until `expires_ms`.
    fn put_challenge(&self, challenge: &str, key: &[u8], expires_ms: i64) -> Result<()>;
    /// Consume the challenge if it was issued to `key`: it is removed, and the answer
    /// says whether it was there and unexpired at `now_ms`. Atomic: of two concurrent
    /// calls at most one gets `true`. A challenge issued to another key is left alone.
    fn take_challenge(&self, challenge: &str, key: &[u8], now_ms: i64) -> Result<bool>;
    /// Keep a session under `hash` (the hex SHA-256 of its token).
    fn put_session(&self, hash: &str, session: &Session) -> Result<()>;
    /// The session under `hash`, if it has not expired by `now_ms`.
    fn get_session(&self, hash: &str, now_ms: i64) -> Result<Option<Session>>;
    /// Insert or replace the directory entry of `entry.mailbox`.
    fn put_directory(&self, entry: &DirectoryEntry) -> Result<()>;
    /// The directory entry of `mailbox`.
    fn get_directory(&self, mailbox: &str) -> Result<Option<DirectoryEntry>>;
    /// Store an envelope unless its mailbox has no directory entry, already holds
    /// `quota.envelopes` envelopes, or would hold more than `quota.bytes` bytes of
    /// bodies with it. The check and the insert are one step: concurrent posts to one
    /// mailbox take turns, so the quota holds exactly, and ids within a mailbox
    /// increase in the order posts commit.
    fn post_envelope(&self, envelope: &NewEnvelope, quota: &Quota) -> Result<Posted>;
    /// Up to `limit` envelopes of `mailbox` with ids above `after`, in id order, and
    /// at most `max_bytes` of bodies in all (yet always one envelope if any is there).
    fn fetch_envelopes(
        &self,
        mailbox: &str,
        after: i64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Page>;
    /// Delete those of `ids` that are in `mailbox`; returns how many went.
    fn ack_envelopes(&self, mailbox: &str, ids: &[i64]) -> Result<usize>;
    /// Delete every envelope `sender` posted with `tag`, in any mailbox; returns how
    /// many went.
    fn delete_tagged(&self, sender: &str, tag: &str) -> Result<usize>;
    /// Retire `r.key` in favour of `r.successor`, in one step: the key's sessions,
    /// directory entry and mailbox go; what it owns (share links, backups) and the
    /// envelopes it posted pass to the successor's mailbox. The first retirement of a
    /// key stands; a later one changes nothing.
    fn retire_key(&self, r: &Retirement) -> Result<Retired>;
    /// The successor's mailbox, if the key of `mailbox` was retired.
    fn successor_of(&self, mailbox: &str) -> Result<Option<String>>;
    /// Delete challenges and sessions expired by `now_ms` and envelopes created
    /// before `envelopes_before_s`.
    fn prune_relay(&self, now_ms: i64, envelopes_before_s: i64) -> Result<Pruned>;
}

/// Where a page ends, from the ids and body sizes of the first envelopes after the
/// cursor, in id order (one more than `limit` when there are more): at most `limit`
/// envelopes and at most `max_bytes` of bodies, yet at least one. Returns how many
/// make the page and whether more follow it.
pub fn page_cut(sizes: &[(i64, i64)], limit: usize, max_bytes: usize) -> (usize, bool) {
    let (mut n, mut total) = (0usize, 0usize);
    for (_, size) in sizes.iter().take(limit) {
        let size = usize::try_from(*size).unwrap_or(usize::MAX);
        if n > 0 && total.saturating_add(size) > max_bytes {
            break;
        }
        total = total.saturating_add(size);
        n += 1;
    }
    (n, sizes.len() > n)
}

#[cfg(test)]
mod tests {
    use super::{page_cut, Quota};

    #[test]
    fn a_quota_counts_envelopes_and_bytes() {
        let q = Quota {
            envelopes: 3,
            bytes: 100,
        };
        assert!(!q.refuses(0, 0, 100));
        assert!(q.refuses(0, 0, 101));
        assert!(!q.refuses(2, 60, 40));
        assert!(q.refuses(2, 61, 40));
        assert!(q.refuses(3, 0, 1));
    }

    #[test]
    fn pages_stop_at_the_limit_or_the_byte_cap_but_hold_one() {
        let sizes = [(1, 10), (2, 10), (3, 10)];
        assert_eq!(page_cut(&sizes, 2, 100), (2, true));
        assert_eq!(page_cut(&sizes, 3, 100), (3, false));
        assert_eq!(page_cut(&sizes, 3, 25), (2, true));
        assert_eq!(page_cut(&sizes, 3, 5), (1, true), "one even past the cap");
        assert_eq!(page_cut(&[], 3, 5), (0, false));
    }
}
