//! The profile's identity and the people it knows: invites made and taken up, and
//! verification by safety number.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use ring::digest::{digest, SHA256};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

use super::envelope::{self, Body, Message};
use crate::audit::{self, AuditEvent};
use crate::crypto::identity::{PublicIdentity, PublicKeys};
use crate::error::{EnvelopeProblem, Error, Result};
use crate::keys::fill_random;
use crate::time::now_unix;
use crate::vault::identity::get as identity;
use crate::vault::meta::{get as meta, set as set_meta};

/// How long an invite stays valid.
pub const INVITE_TTL_S: i64 = 24 * 3600;
/// The prefix of an invite code.
pub const INVITE_PREFIX: &str = "carry:invite:";

/// A person this profile knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Person {
    /// Their short id, used in commands (`carry grant ID`).
    pub person: String,
    /// Their name.
    pub name: String,
    /// The safety number both of you see; compare it before marking them verified.
    pub fingerprint: String,
    /// Whether the safety number was compared and confirmed.
    pub verified: bool,
    /// When they were added (Unix seconds).
    pub added_at: i64,
}

/// The profile's own identity, as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MyIdentity {
    /// The short id others know this profile by.
    pub person: String,
    /// The name.
    pub name: String,
    /// This identity's own fingerprint (30 digits).
    pub fingerprint: String,
    /// The relay mailbox id (opaque).
    pub mailbox: String,
    /// The public keys.
    pub keys: PublicKeys,
    /// The relay and share endpoint, if one is set.
    pub endpoint: Option<String>,
}

/// A new invite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invite {
    /// The code to pass on (as text or a QR code).
    pub code: String,
    /// When it stops working (Unix seconds).
    pub expires_at: i64,
}

/// What an invite code holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct InviteCode {
    v: u32,
    /// The relay's endpoint URL.
    r: String,
    /// The inviter's name.
    n: String,
    /// The inviter's signing key.
    s: String,
    /// The inviter's X25519 key.
    e: String,
    /// The one-time secret.
    k: String,
    /// Expiry (Unix seconds).
    x: i64,
}

/// The key that wraps the vaults of records shared with this profile.
pub fn received_key(conn: &Connection) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    identity(conn)?;
    Ok(zeroize::Zeroizing::new(conn.query_row(
        "SELECT received_key FROM identity WHERE id = 1",
        [],
        |r| r.get(0),
    )?))
}

/// The profile's identity as others see it.
pub fn my_identity(conn: &Connection) -> Result<MyIdentity> {
    let id = identity(conn)?.public();
    Ok(MyIdentity {
        person: id.handle(),
        name: meta(conn, "name")?.unwrap_or_default(),
        fingerprint: id.fingerprint(),
        mailbox: id.mailbox(),
        keys: id.to_keys(),
        endpoint: meta(conn, "endpoint")?,
    })
}

/// Random base64url text of `n` bytes.
pub fn random_b64(n: usize) -> Result<String> {
    let mut b = zeroize::Zeroizing::new(vec![0u8; n]);
    fill_random(&mut b)?;
    Ok(B64.encode(&*b))
}

/// Make an invite for `endpoint`.
pub fn create_invite(conn: &mut Connection, endpoint: &str) -> Result<Invite> {
    let tx = conn.transaction()?;
    let me = identity(&tx)?.public();
    let name = meta(&tx, "name")?.unwrap_or_default();
    let mut secret = zeroize::Zeroizing::new([0u8; 32]);
    fill_random(secret.as_mut())?;
    let now = now_unix();
    let expires_at = now + INVITE_TTL_S;
    tx.execute(
        "INSERT INTO invites (secret_hash, created_at, expires_at) VALUES (?1, ?2, ?3)",
        params![digest(&SHA256, secret.as_ref()).as_ref(), now, expires_at],
    )?;
    audit::append(&tx, AuditEvent::InviteCreated, None, "valid 24 hours")?;
    let keys = me.to_keys();
    let code = InviteCode {
        v: 1,
        r: endpoint.to_string(),
        n: name,
        s: keys.sign,
        e: keys.enc,
        k: B64.encode(secret.as_ref()),
        x: expires_at,
    };
    let json = serde_json::to_vec(&code)?;
    tx.commit()?;
    Ok(Invite {
        code: format!("{INVITE_PREFIX}{}", B64.encode(json)),
        expires_at,
    })
}

/// A decoded invite: the relay, the inviter and the secret.
pub struct Decoded {
    /// The relay the inviter uses.
    pub endpoint: String,
    /// The inviter's name.
    pub name: String,
    /// The inviter's public keys.
    pub keys: PublicIdentity,
    /// The one-time secret that proves the invite.
    pub secret: String,
}

/// Decode an invite code and check that it has not expired.
pub fn decode_invite(code: &str) -> Result<Decoded> {
    let bad = || Error::invalid("this is not a Carry invite code");
    let body = code.trim().strip_prefix(INVITE_PREFIX).ok_or_else(bad)?;
    let json = B64.decode(body).map_err(|_| bad())?;
    let c: InviteCode = serde_json::from_slice(&json).map_err(|_| bad())?;
    if c.v != 1 {
        return Err(Error::invalid(
            "this invite is from a newer Carry; update the app",
        ));
    }
    if c.x <= now_unix() {
        return Err(Error::Expired {
            what: "the invite (invites last 24 hours; ask for a new one)".into(),
        });
    }
    let name = c.n.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(bad());
    }
    crate::net::relay::base_of(&c.r)?;
    Ok(Decoded {
        endpoint: c.r,
        name,
        keys: PublicIdentity::from_keys(&PublicKeys {
            sign: c.s,
            enc: c.e,
        })?,
        secret: c.k,
    })
}

/// Add (or refresh) a person; returns their row id.
pub fn upsert_person(
    tx: &Transaction<'_>,
    name: &str,
    keys: &PublicIdentity,
    relay: &str,
) -> Result<i64> {
    tx.execute(
        "INSERT INTO people (handle, name, sign_key, enc_key, mailbox, relay, added_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (sign_key) DO UPDATE SET name = excluded.name, relay = excluded.relay,
           verified_at = CASE WHEN people.enc_key = excluded.enc_key THEN people.verified_at END,
           enc_key = excluded.enc_key",
        params![
            keys.handle(),
            name,
            keys.sign.as_slice(),
            keys.enc.as_slice(),
            keys.mailbox(),
            relay,
            now_unix()
        ],
    )?;
    Ok(tx.query_row(
        "SELECT id FROM people WHERE sign_key = ?1",
        [keys.sign.as_slice()],
        |r| r.get(0),
    )?)
}

/// Take up an invite: add the inviter, and queue the sealed acceptance that carries
/// this profile's keys to them. Returns the inviter. A profile with no endpoint yet
/// takes the invite's only when `adopt_endpoint` says so: the endpoint is where later
/// backups and share links go, so an invite alone must not choose it.
pub fn accept(conn: &mut Connection, code: &str, adopt_endpoint: bool) -> Result<Person> {
    let inv = decode_invite(code)?;
    let tx = conn.transaction()?;
    let me = identity(&tx)?;
    if inv.keys == me.public() {
        return Err(Error::invalid("this is your own invite"));
    }
    match meta(&tx, "endpoint")? {
        None if adopt_endpoint => set_meta(&tx, "endpoint", &inv.endpoint)?,
        None => {
            return Err(Error::invalid(format!(
                "the invite is for the endpoint {}, and this profile has none yet: accept it \
                 adopting that endpoint for this profile's sharing and backups only if you \
                 trust it, or set your own endpoint first",
                inv.endpoint
            )))
        }
        Some(e) if e.trim_end_matches('/') == inv.endpoint.trim_end_matches('/') => {}
        Some(e) => {
            return Err(Error::invalid(format!(
                "the invite is for the endpoint {}, but this profile uses {e}; \
                 set it with carry endpoint set first",
                inv.endpoint
            )))
        }
    }
    let pid = upsert_person(&tx, &inv.name, &inv.keys, &inv.endpoint)?;
    let name = meta(&tx, "name")?.unwrap_or_default();
    let message = Message {
        v: 1,
        grant: String::new(),
        seq: 0,
        at: now_unix(),
        body: Body::Accept {
            secret: inv.secret,
            name,
            keys: me.public().to_keys(),
            binding: B64.encode(me.binding()),
        },
    };
    let tag = random_b64(16)?;
    let mailbox = inv.keys.mailbox();
    let sealed = envelope::seal(&me, &inv.keys.enc, &mailbox, &tag, &message)?;
    super::outbox::queue(&tx, &mailbox, &tag, &sealed)?;
    let handle = inv.keys.handle();
    audit::append(
        &tx,
        AuditEvent::PersonAdded,
        Some(&handle),
        "invite accepted",
    )?;
    let person = load(&tx, pid, &me.public())?;
    tx.commit()?;
    Ok(person)
}

/// Apply an invite acceptance: the invitee's keys, proved by the secret.
pub fn apply_accept(
    tx: &Transaction<'_>,
    sender_enc: &[u8; 32],
    body: &Body,
    relay: &str,
) -> Result<String> {
    let Body::Accept {
        secret,
        name,
        keys,
        binding,
    } = body
    else {
        return Err(Error::Envelope {
            problem: EnvelopeProblem::UnknownSender,
        });
    };
    let not_allowed = || Error::Envelope {
        problem: EnvelopeProblem::NotAllowed,
    };
    let secret = B64.decode(secret).map_err(|_| not_allowed())?;
    let hash = digest(&SHA256, &secret);
    let invites: Vec<(i64, Vec<u8>, i64, Option<i64>)> = tx
        .prepare("SELECT id, secret_hash, expires_at, used_at FROM invites")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let found = invites
        .into_iter()
        .find(|(_, h, _, _)| crate::keys::same_secret(h, hash.as_ref()));
    let Some((invite_id, _, expires_at, used_at)) = found else {
        return Err(not_allowed());
    };
    if used_at.is_some() || expires_at <= now_unix() {
        return Err(not_allowed());
    }
    let id = PublicIdentity::from_keys(keys).map_err(|_| not_allowed())?;
    let binding = B64.decode(binding).map_err(|_| not_allowed())?;
    id.verify_binding(&binding).map_err(|_| not_allowed())?;
    if &id.enc != sender_enc {
        return Err(not_allowed());
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(not_allowed());
    }
    let pid = upsert_person(tx, name, &id, relay)?;
    tx.execute(
        "UPDATE invites SET used_at = ?2, person_id = ?3 WHERE id = ?1",
        params![invite_id, now_unix(), pid],
    )?;
    let handle = id.handle();
    audit::append(
        tx,
        AuditEvent::PersonAdded,
        Some(&handle),
        "took up an invite",
    )?;
    Ok(handle)
}

fn load(conn: &Connection, pid: i64, me: &PublicIdentity) -> Result<Person> {
    conn.query_row(
        "SELECT handle, name, sign_key, enc_key, verified_at, added_at FROM people WHERE id = ?1",
        [pid],
        |r| {
            let sign: Vec<u8> = r.get(2)?;
            let enc: Vec<u8> = r.get(3)?;
            Ok((r.get(0)?, r.get(1)?, sign, enc, r.get(4)?, r.get(5)?))
        },
    )
    .map_err(Error::from)
    .and_then(
        |(handle, name, sign, enc, verified, added_at): (
            String,
            String,
            Vec<u8>,
            Vec<u8>,
            Option<i64>,
            i64,
        )| {
            let id = person_identity(&sign, &enc)?;
            Ok(Person {
                person: handle,
                name,
                fingerprint: me.safety_number(&id),
                verified: verified.is_some(),
                added_at,
            })
        },
    )
}

/// A stored person's keys.
pub fn person_identity(sign: &[u8], enc: &[u8]) -> Result<PublicIdentity> {
    Ok(PublicIdentity {
        sign: sign
            .try_into()
            .map_err(|_| Error::internal("a stored signing key is not 32 bytes"))?,
        enc: enc
            .try_into()
            .map_err(|_| Error::internal("a stored X25519 key is not 32 bytes"))?,
    })
}

/// Everyone this profile knows, by name.
pub fn list(conn: &Connection) -> Result<Vec<Person>> {
    let me = identity(conn)?.public();
    let ids: Vec<i64> = conn
        .prepare("SELECT id FROM people ORDER BY name COLLATE NOCASE, id")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    ids.into_iter().map(|id| load(conn, id, &me)).collect()
}

/// Find a person by short id or (unambiguous, case-insensitive) name. Returns the row
/// id, the handle, the name, the keys and whether they are verified.
pub fn find(conn: &Connection, who: &str) -> Result<(i64, Person, PublicIdentity)> {
    let who = who.trim();
    if who.is_empty() {
        return Err(Error::invalid(
            "name a person: their id or name (see carry people)",
        ));
    }
    let want = who.to_lowercase();
    let all: Vec<(i64, String, String)> = conn
        .prepare("SELECT id, handle, name FROM people ORDER BY id")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    // Their id, else their whole name, else a prefix of either that only one has.
    let by = |f: &dyn Fn(&(i64, String, String)) -> bool| -> Vec<&(i64, String, String)> {
        all.iter().filter(|p| f(p)).collect()
    };
    let mut found = by(&|p| p.1 == who);
    if found.is_empty() {
        found = by(&|p| p.2.to_lowercase() == want);
    }
    if found.is_empty() {
        found = by(&|p| p.1.starts_with(&want) || p.2.to_lowercase().starts_with(&want));
    }
    match found.as_slice() {
        [] => Err(Error::not_found(format!(
            "no person '{}'; see carry people",
            crate::text::escaped(who, 100)
        ))),
        [(id, _, _)] => {
            let me = identity(conn)?.public();
            let person = load(conn, *id, &me)?;
            let (sign, enc): (Vec<u8>, Vec<u8>) = conn.query_row(
                "SELECT sign_key, enc_key FROM people WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok((*id, person, person_identity(&sign, &enc)?))
        }
        many => Err(Error::invalid(format!(
            "'{}' matches more than one person: {}; use their id",
            crate::text::escaped(who, 100),
            many.iter()
                .map(|(_, handle, name)| format!("{} ({handle})", crate::text::escaped(name, 100)))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The person whose X25519 key is `enc`: row id, handle and keys.
pub fn by_enc_key(conn: &Connection, enc: &[u8]) -> Result<Option<(i64, String, PublicIdentity)>> {
    let row: Option<(i64, String, Vec<u8>, Vec<u8>)> = conn
        .query_row(
            "SELECT id, handle, sign_key, enc_key FROM people WHERE enc_key = ?1",
            [enc],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    row.map(|(id, h, s, e)| Ok((id, h, person_identity(&s, &e)?)))
        .transpose()
}

/// Record the person `pid` as verified now, if not already (no audit entry: the
/// caller says why).
pub fn mark_verified(conn: &Connection, pid: i64) -> Result<()> {
    conn.execute(
        "UPDATE people SET verified_at = coalesce(verified_at, ?2) WHERE id = ?1",
        params![pid, now_unix()],
    )?;
    Ok(())
}

/// Mark a person verified, after comparing the safety number.
pub fn verify(conn: &mut Connection, who: &str) -> Result<Person> {
    let tx = conn.transaction()?;
    let (pid, person, _) = find(&tx, who)?;
    mark_verified(&tx, pid)?;
    audit::append(
        &tx,
        AuditEvent::PersonVerified,
        Some(&person.person),
        "safety number compared",
    )?;
    let me = identity(&tx)?.public();
    let person = load(&tx, pid, &me)?;
    tx.commit()?;
    Ok(person)
}
