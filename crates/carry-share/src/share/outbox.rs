//! Envelopes on their way to the relay, and the deliveries that fill them.
//!
//! A delivery compares what a grant's scope covers now with what the grantee was
//! last sent (`grant_items`), seals the difference (new, changed, and removed items:
//! deleted, hidden or now out of scope), and queues the envelopes, all in one
//! transaction. Posting drains the queue in order, so a crash at any point neither
//! loses a change nor sends one twice under two sequence numbers.

use std::collections::HashMap;

use rusqlite::{params, Connection, Transaction};

use super::document::GrantDoc;
use super::envelope::{self, Body, Message, Part, Shared, PARTS_MAX, PART_MAX, PLAINTEXT_MAX};
use super::people;
use crate::crypto::identity::Identity;
use crate::error::{Error, Result};
use crate::scope;
use crate::time::now_unix;

/// Queue a sealed envelope.
pub fn queue(tx: &Transaction<'_>, mailbox: &str, tag: &str, body: &[u8]) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO relay_outbox (mailbox, tag, body, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![mailbox, tag, body, now_unix()])?;
    Ok(())
}

/// One queued envelope.
pub struct Queued {
    /// Its row.
    pub id: i64,
    /// The mailbox it goes to.
    pub mailbox: String,
    /// Its tag, which makes a repost harmless.
    pub tag: String,
    /// The sealed envelope.
    pub body: Vec<u8>,
}

/// The queue, oldest first.
pub fn pending(conn: &Connection) -> Result<Vec<Queued>> {
    let rows = conn
        .prepare("SELECT id, mailbox, tag, body FROM relay_outbox ORDER BY id")?
        .query_map([], |r| {
            Ok(Queued {
                id: r.get(0)?,
                mailbox: r.get(1)?,
                tag: r.get(2)?,
                body: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// Drop a posted envelope from the queue, and note the delivery on its grant.
pub fn posted(conn: &Connection, id: i64, tag: &str) -> Result<()> {
    conn.execute("DELETE FROM relay_outbox WHERE id = ?1", [id])?;
    conn.execute(
        "UPDATE grants SET last_delivery_at = ?2 WHERE tag = ?1",
        params![tag, now_unix()],
    )?;
    Ok(())
}

/// A grant row, as deliveries need it.
pub struct GrantRow {
    /// The grant's id.
    pub id: String,
    /// The signed grant document.
    pub doc: GrantDoc,
    /// The tag of its envelopes.
    pub tag: String,
    /// The sequence number the next envelope takes.
    pub next_seq: i64,
    /// The grantee's mailbox.
    pub mailbox: String,
    /// The grantee's encryption key.
    pub enc: [u8; 32],
    /// The grantee's handle.
    pub handle: String,
}

/// Seal `body` on grant `g` with its next sequence number and queue it.
pub fn send_on_grant(
    tx: &Transaction<'_>,
    me: &Identity,
    g: &mut GrantRow,
    body: Body,
) -> Result<()> {
    let message = Message {
        v: 1,
        grant: g.id.clone(),
        seq: g.next_seq,
        at: now_unix(),
        body,
    };
    let sealed = envelope::seal(me, &g.enc, &g.mailbox, &g.tag, &message)?;
    queue(tx, &g.mailbox, &g.tag, &sealed)?;
    g.next_seq += 1;
    tx.prepare_cached("UPDATE grants SET next_seq = ?2 WHERE id = ?1")?
        .execute(params![g.id, g.next_seq])?;
    Ok(())
}

/// Load a grant row with its person's keys.
pub fn grant_row(conn: &Connection, grant_id: &str) -> Result<GrantRow> {
    let (doc, tag, next_seq, sign, enc, handle): (String, String, i64, Vec<u8>, Vec<u8>, String) =
        conn.query_row(
            "SELECT g.doc, g.tag, g.next_seq, p.sign_key, p.enc_key, p.handle
             FROM grants g JOIN people p ON p.id = g.person_id WHERE g.id = ?1",
            [grant_id],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )?;
    let keys = people::person_identity(&sign, &enc)?;
    let doc: GrantDoc =
        serde_json::from_str(&doc).map_err(|e| Error::internal(format!("stored grant: {e}")))?;
    Ok(GrantRow {
        id: grant_id.to_string(),
        doc,
        tag,
        next_seq,
        mailbox: keys.mailbox(),
        enc: keys.enc,
        handle,
    })
}

/// Seal and queue what changed for every active grant this profile made. Returns the
/// envelopes queued per grantee handle.
pub fn prepare_deliveries(conn: &mut Connection) -> Result<HashMap<String, u64>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let me = crate::vault::identity::get(&tx)?;
    let now = now_unix();
    let active: Vec<(String, bool)> = tx
        .prepare(
            "SELECT id, reset_next FROM grants
             WHERE direction = 'out' AND ended_at IS NULL AND expires_at > ?1 ORDER BY id",
        )?
        .query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut counts = HashMap::new();
    for (id, reset) in active {
        let mut g = grant_row(&tx, &id)?;
        let n = deliver(&tx, &me, &mut g, reset)?;
        if n > 0 {
            *counts.entry(g.handle.clone()).or_insert(0) += n;
        }
    }
    tx.commit()?;
    Ok(counts)
}

/// Seal the difference for one grant; returns the envelopes queued.
fn deliver(tx: &Transaction<'_>, me: &Identity, g: &mut GrantRow, reset: bool) -> Result<u64> {
    if reset {
        tx.execute("DELETE FROM grant_items WHERE grant_id = ?1", [&g.id])?;
    }
    let now_in = scope::in_scope(tx, &g.doc.scope)?;
    let held: HashMap<String, Vec<u8>> = tx
        .prepare("SELECT rkey, hash FROM grant_items WHERE grant_id = ?1")?
        .query_map([&g.id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut send: Vec<i64> = Vec::new();
    let mut keep: std::collections::HashSet<String> = std::collections::HashSet::new();
    for item in &now_in {
        let k = scope::rkey(item.id);
        if held.get(&k) != Some(&item.hash) {
            send.push(item.id);
        }
        keep.insert(k);
    }
    let removes: Vec<String> = held
        .keys()
        .filter(|k| !keep.contains(*k))
        .cloned()
        .collect();
    if send.is_empty() && removes.is_empty() && !reset {
        return Ok(0);
    }
    let hashes: HashMap<i64, &Vec<u8>> = now_in.iter().map(|i| (i.id, &i.hash)).collect();
    let mut out = Envelopes {
        tx,
        me,
        g,
        hashes: &hashes,
        reset,
        removes: Some(removes),
        first: true,
        items: Vec::new(),
        bytes: 0,
        sent: 0,
    };
    // Load in slices so a large record never sits in memory whole.
    for ids in send.chunks(256) {
        for mut item in delivery_items(tx, ids)? {
            // As it will be written: the resource is a JSON string inside the message.
            let escapes = item
                .json
                .bytes()
                .filter(|b| matches!(b, b'"' | b'\\'))
                .count();
            let size = item.json.len() + escapes + item.src.len() + 64;
            if size > PART_MAX {
                // Larger than one envelope (a document with its file inside): it goes
                // in parts, an envelope each, applied once all have arrived.
                let text = std::mem::take(&mut item.json);
                let parts = envelope::split(&text, PART_MAX);
                let n = u32::try_from(parts.len()).unwrap_or(u32::MAX);
                if n > PARTS_MAX {
                    tracing::warn!(bytes = size, "an item is too large to share; left out");
                    continue;
                }
                if !out.items.is_empty() {
                    out.seal()?;
                }
                for (i, piece) in (0u32..).zip(parts) {
                    out.items.push(Shared {
                        json: piece.to_string(),
                        part: Some(Part { i, n }),
                        ..item.clone()
                    });
                    out.seal()?;
                }
                continue;
            }
            if !out.items.is_empty() && out.bytes + size > PLAINTEXT_MAX {
                out.seal()?;
            }
            out.bytes += size;
            out.items.push(item);
        }
    }
    // The rest; or, when nothing went yet, the removals and the reset on their own.
    if !out.items.is_empty() || out.first {
        out.seal()?;
    }
    let sent = out.sent;
    tx.execute("UPDATE grants SET reset_next = 0 WHERE id = ?1", [&g.id])?;
    Ok(sent)
}

/// The envelopes of one delivery as they fill: items gather until the next would not
/// fit, then are sealed and queued together. The first envelope carries the reset and
/// the removals.
struct Envelopes<'a, 't> {
    tx: &'a Transaction<'t>,
    me: &'a Identity,
    g: &'a mut GrantRow,
    hashes: &'a HashMap<i64, &'a Vec<u8>>,
    reset: bool,
    removes: Option<Vec<String>>,
    first: bool,
    items: Vec<Shared>,
    /// The size of `items` as they will be written.
    bytes: usize,
    /// Envelopes queued so far.
    sent: u64,
}

impl Envelopes<'_, '_> {
    /// Seal the items gathered (and, first, the removals) and queue the envelope; note
    /// what the grantee now holds.
    fn seal(&mut self) -> Result<()> {
        let (tx, g) = (self.tx, &mut *self.g);
        let removes = self.removes.take().unwrap_or_default();
        for k in &removes {
            tx.prepare_cached("DELETE FROM grant_items WHERE grant_id = ?1 AND rkey = ?2")?
                .execute(params![g.id, k])?;
        }
        for item in &self.items {
            let id: i64 = item.k[1..]
                .parse()
                .map_err(|_| Error::internal("an item key is not r<id>"))?;
            let hash = self
                .hashes
                .get(&id)
                .ok_or_else(|| Error::internal("an item left the scope mid-delivery"))?;
            tx.prepare_cached(
                "INSERT INTO grant_items (grant_id, rkey, hash) VALUES (?1, ?2, ?3)
                 ON CONFLICT (grant_id, rkey) DO UPDATE SET hash = excluded.hash",
            )?
            .execute(params![g.id, item.k, hash])?;
        }
        let body = Body::Records {
            reset: self.reset && self.first,
            upserts: std::mem::take(&mut self.items),
            removes,
        };
        self.first = false;
        self.bytes = 0;
        self.sent += 1;
        send_on_grant(tx, self.me, g, body)
    }
}

/// The delivery items for `ids`.
fn delivery_items(conn: &Connection, ids: &[i64]) -> Result<Vec<Shared>> {
    let list = serde_json::to_string(ids)?;
    let mut stmt = conn.prepare(
        "SELECT r.id, s.name, s.kind, r.entered_by, r.json, r.full_url
         FROM resources r JOIN sources s ON s.id = r.source_id
         WHERE r.id IN (SELECT value FROM json_each(?1)) ORDER BY r.id",
    )?;
    let mut rows = stmt
        .query_map([list], |r| {
            Ok(Shared {
                k: scope::rkey(r.get(0)?),
                src: r.get(1)?,
                sk: r.get(2)?,
                by: r.get(3)?,
                json: r.get(4)?,
                url: r.get(5)?,
                also: Vec::new(),
                part: None,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    // The other sources of each fact, named with the one copy that goes.
    for row in rows.iter_mut() {
        if let Some(id) = row.k.strip_prefix('r').and_then(|n| n.parse::<i64>().ok()) {
            row.also = scope::other_sources(conn, id, &row.src)?;
        }
    }
    Ok(rows)
}
