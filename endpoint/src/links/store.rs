//! What the SMART Health Links host keeps, behind one trait that every
//! [`Store`](crate::storage::Store) also implements, so the link conformance checks run
//! on every backend.
//!
//! A link holds the least that works: the encrypted file (a JWE whose key never reaches
//! the server), the owner's mailbox id, its flags, a salted slow hash of its passcode,
//! its expiry, counters (passcode failures, openings, refused requests and when the
//! last was refused) and when it was revoked or used. Location tokens are kept only as
//! the SHA-256 of the token.
//!
//! What is recorded is bounded by what the owner allowed, not by what a link's holder
//! sends: only successful openings are logged row by row, with the recipient as the
//! client claimed it (no addresses); a manifest and the file fetched through its
//! location by the same recipient within [`OPENING_WINDOW_S`] are one opening. A refused
//! request on a link in force (a wrong passcode, a request the link does not serve, a
//! location past its life) only moves the link's counter of refusals. Once a link has
//! ended (revoked, expired, locked or used up) nothing more is recorded at all.
//!
//! Every public access is one step in the store ([`LinkStore::shl_access`],
//! [`LinkStore::shl_fetch`]): the link's row is locked (SQLite: an IMMEDIATE
//! transaction; PostgreSQL: `SELECT … FOR UPDATE`), its state decided, its counters
//! moved and any opening appended, so concurrent guesses cannot pass the failure cap
//! and a one-time link is served once.

use crate::error::Result;

/// How long after an opening the same recipient's fetch of the file through a
/// manifest's location counts as part of that opening, in seconds.
pub const OPENING_WINDOW_S: i64 = 300;

/// How many of a link's latest openings are searched for the one a file fetch belongs
/// to (bounds the lookup however often a link is opened).
pub const OPENING_LOOKBACK: i64 = 64;

/// Why a link is not served, or that it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Served.
    Ok,
    /// A wrong or missing passcode (counted against the cap).
    WrongPasscode,
    /// Refused: too many wrong passcodes.
    Locked,
    /// Refused: the link (or a location token) had expired.
    Expired,
    /// Refused: the owner revoked the link.
    Revoked,
    /// Refused: a one-time link already used, or a request the link does not serve
    /// (a direct GET of a link without the U flag).
    Inactive,
}

impl Outcome {
    /// The name in the access log.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::WrongPasscode => "wrong-passcode",
            Outcome::Locked => "locked",
            Outcome::Expired => "expired",
            Outcome::Revoked => "revoked",
            Outcome::Inactive => "inactive",
        }
    }

    /// The outcome an access-log name stands for.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ok" => Outcome::Ok,
            "wrong-passcode" => Outcome::WrongPasscode,
            "locked" => Outcome::Locked,
            "expired" => Outcome::Expired,
            "revoked" => Outcome::Revoked,
            "inactive" => Outcome::Inactive,
            _ => return None,
        })
    }
}

/// How a link was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A manifest request (`POST /shl/m/{id}`).
    Manifest,
    /// A direct file request of a U link (`GET /shl/m/{id}?recipient=`).
    Direct,
    /// A location from a manifest (`GET /shl/f/{token}`).
    File,
}

impl Via {
    /// The name in the access log.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Manifest => "manifest",
            Via::Direct => "direct",
            Via::File => "file",
        }
    }

    /// The route an access-log name stands for.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "manifest" => Via::Manifest,
            "direct" => Via::Direct,
            "file" => Via::File,
            _ => return None,
        })
    }
}

/// Where a link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Served to whoever holds it (and its passcode).
    Active,
    /// Revoked by its owner.
    Revoked,
    /// Past its expiry.
    Expired,
    /// Locked after too many wrong passcodes.
    Locked,
    /// A one-time link that has been used.
    Used,
}

impl LinkState {
    /// The name the owner API shows.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Active => "active",
            LinkState::Revoked => "revoked",
            LinkState::Expired => "expired",
            LinkState::Locked => "locked",
            LinkState::Used => "used",
        }
    }

    /// What an access to a link in this state is logged as when it is refused.
    pub fn refusal(self) -> Outcome {
        match self {
            LinkState::Active | LinkState::Used => Outcome::Inactive,
            LinkState::Revoked => Outcome::Revoked,
            LinkState::Expired => Outcome::Expired,
            LinkState::Locked => Outcome::Locked,
        }
    }
}

/// A link as it is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLink {
    /// Its id: 32 random bytes, base64url (43 characters).
    pub id: String,
    /// The owner's mailbox id (see [`crate::relay::mailbox_id`]).
    pub owner: String,
    /// Its flags, among `L`, `P`, `U`.
    pub flags: String,
    /// The passcode's salted slow hash (see [`crate::links::hash_passcode`]), for `P`.
    pub passcode_hash: Option<String>,
    /// When it expires, in seconds since the epoch.
    pub expires_s: Option<i64>,
    /// Whether it stops after the first successful access.
    pub once: bool,
    /// Wrong passcodes it takes over its lifetime before it locks.
    pub max_failures: i64,
    /// The encrypted file (a compact JWE).
    pub file: String,
    /// When it was created, in seconds since the epoch.
    pub created_s: i64,
}

/// A link as stored, without its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Its id.
    pub id: String,
    /// The owner's mailbox id.
    pub owner: String,
    /// Its flags.
    pub flags: String,
    /// The passcode's hash, for `P`.
    pub passcode_hash: Option<String>,
    /// When it expires, in seconds since the epoch.
    pub expires_s: Option<i64>,
    /// Whether it stops after the first successful access.
    pub once: bool,
    /// Wrong passcodes it takes before it locks.
    pub max_failures: i64,
    /// Wrong passcodes so far.
    pub failures: i64,
    /// Accesses logged so far (the last access's `seq`): since refusals are only
    /// counted, these are the openings (a database from before that may hold refused
    /// accesses too).
    pub accesses: i64,
    /// Requests refused while the link was in force (wrong passcodes included).
    pub refused: i64,
    /// When the last of those was refused, in seconds since the epoch.
    pub last_refused_s: Option<i64>,
    /// When it was created.
    pub created_s: i64,
    /// When it was revoked, if it was.
    pub revoked_s: Option<i64>,
    /// When a one-time link was used, if it was.
    pub used_s: Option<i64>,
}

impl Link {
    /// Where the link stands at `now_s`. Revocation wins over everything, then expiry,
    /// then a lockout, then a spent one-time link.
    pub fn state(&self, now_s: i64) -> LinkState {
        if self.revoked_s.is_some() {
            LinkState::Revoked
        } else if self.expires_s.is_some_and(|e| e <= now_s) {
            LinkState::Expired
        } else if self.failures >= self.max_failures {
            LinkState::Locked
        } else if self.once && self.used_s.is_some() {
            LinkState::Used
        } else {
            LinkState::Active
        }
    }

    /// Wrong passcodes left before the link locks.
    pub fn remaining_attempts(&self) -> i64 {
        (self.max_failures - self.failures).max(0)
    }
}

/// One logged access: an opening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// Its number within the link, from 1.
    pub seq: i64,
    /// When, in seconds since the epoch.
    pub at_s: i64,
    /// The recipient as the client claimed it.
    pub recipient: String,
    /// What came of it.
    pub outcome: Outcome,
    /// How the link was reached.
    pub via: Via,
}

/// What a public request asks of a link (after the handler checked any passcode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    /// A wrong or missing passcode: count it (if the link is active).
    WrongPasscode,
    /// A request the link does not serve: counted as refused ([`Outcome::Inactive`])
    /// when the link is active; nothing is recorded once it has ended.
    Refuse,
    /// A manifest: the file embedded when it is at most `embed_max` bytes long, else a
    /// location token (kept under `token_hash` until `token_expires_s`).
    Manifest {
        /// The client's `embeddedLengthMax`.
        embed_max: Option<u64>,
        /// The hex SHA-256 of a fresh location token.
        token_hash: String,
        /// When that token stops working, in seconds since the epoch.
        token_expires_s: i64,
    },
    /// The file itself (a U link's direct request).
    Direct,
}

/// A public request, as [`LinkStore::shl_access`] takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The link.
    pub id: String,
    /// The recipient as the client claimed it.
    pub recipient: String,
    /// How the link was reached.
    pub via: Via,
    /// What is asked.
    pub ask: Ask,
    /// Now, in seconds since the epoch.
    pub now_s: i64,
}

/// What came of a public request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// No such link (nothing recorded).
    NoLink,
    /// Refused, for this reason (counted on a link in force; nothing recorded on one
    /// that has ended).
    Refused(Outcome),
    /// A wrong passcode was counted; this many remain.
    WrongPasscode {
        /// Wrong passcodes left before the link locks (0: it is now locked).
        remaining: i64,
    },
    /// The file, to embed in the manifest or to send as is.
    File(String),
    /// The location token was stored.
    Location,
}

/// What an owner's change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Done.
    Done,
    /// No such link of this owner.
    NotFound,
    /// The link is revoked (its file cannot be replaced).
    Revoked,
}

/// Storage for SMART Health Links.
pub trait LinkStore: Send + Sync {
    /// Store a new link (its id is fresh and random).
    fn shl_create(&self, link: &NewLink) -> Result<()>;
    /// A link, without its file.
    fn shl_link(&self, id: &str) -> Result<Option<Link>>;
    /// An owner's links, oldest first.
    fn shl_links(&self, owner: &str) -> Result<Vec<Link>>;
    /// Replace the file of `owner`'s link `id`, unless it is revoked.
    fn shl_replace_file(&self, id: &str, owner: &str, file: &str, now_s: i64) -> Result<Change>;
    /// Revoke `owner`'s link `id` (again: still [`Change::Done`]). Its file and
    /// location tokens are deleted; the link and its access log stay for the owner.
    fn shl_revoke(&self, id: &str, owner: &str, now_s: i64) -> Result<Change>;
    /// One public request, in one step: lock the link, decide by its state at
    /// `now_s` ([`decide`]), move its counters, keep a location token if one is asked
    /// for, and append the opening if it was served. Concurrent calls on one link take
    /// turns, so at most `max_failures` wrong passcodes are ever counted and a
    /// one-time link is served once.
    fn shl_access(&self, attempt: &Attempt) -> Result<Answer>;
    /// Dereference a location token (by its hash): the file, if the token has not
    /// expired and its link is still served (a spent one-time link still serves the
    /// token its one access minted, once), decided by [`fetch_step`]. A served fetch is
    /// an opening under the token's recipient, unless that recipient opened the link
    /// within [`OPENING_WINDOW_S`] (among its last [`OPENING_LOOKBACK`] openings):
    /// then it is part of that opening and adds no row.
    fn shl_fetch(&self, token_hash: &str, now_s: i64) -> Result<Answer>;
    /// `owner`'s link `id` and up to `limit` of its accesses after `after`, in order;
    /// `None` when there is no such link of this owner.
    fn shl_accesses(
        &self,
        id: &str,
        owner: &str,
        after: i64,
        limit: usize,
    ) -> Result<Option<(Link, Vec<Access>)>>;
    /// Delete location tokens expired by `now_s`; returns how many went.
    fn shl_prune(&self, now_s: i64) -> Result<usize>;
}

/// The decision [`LinkStore::shl_access`] and [`LinkStore::shl_fetch`] make once they
/// hold the link, the same on every backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The link has ended: answer [`Answer::Refused`] with `outcome` and record
    /// nothing.
    Ended(Outcome),
    /// Count one more refusal on the link (and when), and answer [`Answer::Refused`].
    Refuse(Outcome),
    /// Count one more failure (and refusal), and answer how many remain.
    CountFailure,
    /// Serve: record the opening, mark a one-time link used.
    Serve,
}

/// Decide what to do with `ask` on `link` at `now_s`.
pub fn decide(link: &Link, ask: &Ask, now_s: i64) -> Step {
    match (link.state(now_s), ask) {
        (LinkState::Active, Ask::WrongPasscode) => Step::CountFailure,
        (LinkState::Active, Ask::Refuse) => Step::Refuse(Outcome::Inactive),
        (LinkState::Active, Ask::Manifest { .. } | Ask::Direct) => Step::Serve,
        (state, _) => Step::Ended(state.refusal()),
    }
}

/// Decide what to do with a location token that stops working at `token_expires_s`,
/// minted for `link`, fetched at `now_s`: served while the link serves it
/// ([`token_serves`]) and the token lasts; a token past its life is a refusal counted
/// on a link in force; nothing is recorded for a link that has ended.
pub fn fetch_step(link: &Link, token_expires_s: i64, now_s: i64) -> Step {
    match token_serves(link, now_s) {
        Err(o) => Step::Ended(o),
        Ok(()) if token_expires_s > now_s => Step::Serve,
        Ok(()) if link.state(now_s) == LinkState::Active => Step::Refuse(Outcome::Expired),
        Ok(()) => Step::Ended(Outcome::Expired),
    }
}

/// Whether a location token minted for `link` may be dereferenced at `now_s`: the
/// link must not be revoked, expired or locked. A spent one-time link still serves
/// the token its access minted.
pub fn token_serves(link: &Link, now_s: i64) -> std::result::Result<(), Outcome> {
    match link.state(now_s) {
        LinkState::Active | LinkState::Used => Ok(()),
        other => Err(other.refusal()),
    }
}

/// Whether a manifest embeds a file of `len` bytes for a client that asked for at
/// most `embed_max`.
pub fn embeds(embed_max: Option<u64>, len: i64) -> bool {
    embed_max.is_some_and(|m| u64::try_from(len).is_ok_and(|l| l <= m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> Link {
        Link {
            id: "l".into(),
            owner: "o".into(),
            flags: "P".into(),
            passcode_hash: None,
            expires_s: Some(100),
            once: true,
            max_failures: 3,
            failures: 0,
            accesses: 0,
            refused: 0,
            last_refused_s: None,
            created_s: 1,
            revoked_s: None,
            used_s: None,
        }
    }

    #[test]
    fn state_precedence_is_revoked_expired_locked_used() {
        let mut l = link();
        assert_eq!(l.state(50), LinkState::Active);
        l.used_s = Some(10);
        assert_eq!(l.state(50), LinkState::Used);
        l.failures = 3;
        assert_eq!(l.state(50), LinkState::Locked);
        assert_eq!(l.remaining_attempts(), 0);
        assert_eq!(l.state(100), LinkState::Expired);
        l.revoked_s = Some(20);
        assert_eq!(l.state(100), LinkState::Revoked);
    }

    #[test]
    fn decisions_follow_the_state() {
        let mut l = link();
        assert_eq!(decide(&l, &Ask::WrongPasscode, 1), Step::CountFailure);
        assert_eq!(decide(&l, &Ask::Direct, 1), Step::Serve);
        assert_eq!(decide(&l, &Ask::Refuse, 1), Step::Refuse(Outcome::Inactive));
        assert_eq!(fetch_step(&l, 10, 1), Step::Serve);
        assert_eq!(
            fetch_step(&l, 10, 10),
            Step::Refuse(Outcome::Expired),
            "a spent token on a link in force is counted"
        );
        l.failures = 3;
        assert_eq!(
            decide(&l, &Ask::WrongPasscode, 1),
            Step::Ended(Outcome::Locked),
            "nothing is recorded once the link is locked"
        );
        assert_eq!(decide(&l, &Ask::Refuse, 1), Step::Ended(Outcome::Locked));
        assert_eq!(token_serves(&l, 1), Err(Outcome::Locked));
        assert_eq!(fetch_step(&l, 10, 1), Step::Ended(Outcome::Locked));
        l.failures = 0;
        l.used_s = Some(1);
        assert_eq!(decide(&l, &Ask::Direct, 1), Step::Ended(Outcome::Inactive));
        assert_eq!(token_serves(&l, 1), Ok(()));
        assert_eq!(
            fetch_step(&l, 10, 1),
            Step::Serve,
            "its one token still works"
        );
        assert_eq!(fetch_step(&l, 10, 10), Step::Ended(Outcome::Expired));
        assert_eq!(token_serves(&l, 100), Err(Outcome::Expired));
        l.revoked_s = Some(2);
        assert_eq!(decide(&l, &Ask::Refuse, 3), Step::Ended(Outcome::Revoked));
    }

    #[test]
    fn embedding_needs_a_maximum_at_least_the_length() {
        assert!(!embeds(None, 10));
        assert!(embeds(Some(10), 10));
        assert!(!embeds(Some(9), 10));
    }

    #[test]
    fn names_round_trip() {
        for o in [
            Outcome::Ok,
            Outcome::WrongPasscode,
            Outcome::Locked,
            Outcome::Expired,
            Outcome::Revoked,
            Outcome::Inactive,
        ] {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
        for v in [Via::Manifest, Via::Direct, Via::File] {
            assert_eq!(Via::parse(v.as_str()), Some(v));
        }
    }
}
