//! Share links, their tokens and their access log on SQLite.

use super::*;

/// The columns [`row_to_link`] reads, in order.
const LINK_COLUMNS: &str = "id, owner, flags, passcode_hash, expires_s, once, max_failures, \
     failures, accesses, created_s, revoked_s, used_s, refused, last_refused_s";

fn row_to_link(r: &rusqlite::Row<'_>) -> rusqlite::Result<Link> {
    Ok(Link {
        id: r.get(0)?,
        owner: r.get(1)?,
        flags: r.get(2)?,
        passcode_hash: r.get(3)?,
        expires_s: r.get(4)?,
        once: r.get(5)?,
        max_failures: r.get(6)?,
        failures: r.get(7)?,
        accesses: r.get(8)?,
        created_s: r.get(9)?,
        revoked_s: r.get(10)?,
        used_s: r.get(11)?,
        refused: r.get(12)?,
        last_refused_s: r.get(13)?,
    })
}

/// One link by id (inside a transaction or not).
fn select_link(c: &Connection, id: &str) -> Result<Option<Link>> {
    Ok(c.query_row(
        &format!("SELECT {LINK_COLUMNS} FROM shl_links WHERE id = ?1"),
        [id],
        row_to_link,
    )
    .optional()?)
}

/// A link's file.
fn select_file(c: &Connection, id: &str) -> Result<String> {
    Ok(
        c.query_row("SELECT file FROM shl_links WHERE id = ?1", [id], |r| {
            r.get(0)
        })?,
    )
}

/// Count a refusal on `link` (whose row the transaction holds): one more refused
/// request at `now_s`, and `failures` wrong passcodes in all.
fn count_refusal(tx: &Connection, link: &Link, failures: i64, now_s: i64) -> Result<()> {
    tx.execute(
        "UPDATE shl_links SET failures = ?2, refused = refused + 1, last_refused_s = ?3
         WHERE id = ?1",
        params![link.id, failures, now_s],
    )?;
    Ok(())
}

/// Append an opening to `link` (whose row the transaction holds) and move its
/// counters: the opening is number `accesses + 1`.
fn record_opening(
    tx: &Connection,
    link: &Link,
    used_s: Option<i64>,
    access: &Access,
) -> Result<()> {
    tx.execute(
        "UPDATE shl_links SET used_s = ?2, accesses = ?3 WHERE id = ?1",
        params![link.id, used_s, access.seq],
    )?;
    tx.execute(
        "INSERT INTO shl_accesses (link, seq, at_s, recipient, outcome, via)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            link.id,
            access.seq,
            access.at_s,
            access.recipient,
            access.outcome.as_str(),
            access.via.as_str()
        ],
    )?;
    Ok(())
}

/// Whether `recipient` opened `link` at or after `since_s`, among its latest
/// [`OPENING_LOOKBACK`] accesses.
fn opened_since(tx: &Connection, link: &Link, recipient: &str, since_s: i64) -> Result<bool> {
    Ok(tx
        .prepare(
            "SELECT 1 FROM shl_accesses WHERE link = ?1 AND seq > ?2 AND recipient = ?3
             AND outcome = 'ok' AND at_s >= ?4 LIMIT 1",
        )?
        .exists(params![
            link.id,
            link.accesses - OPENING_LOOKBACK,
            recipient,
            since_s
        ])?)
}

/// An access-log row that does not parse (a name this build does not know).
fn bad_access_row() -> StoreError {
    StoreError::Backend("shl_accesses: unknown outcome or via".into())
}

impl LinkStore for SqliteStore {
    fn shl_create(&self, l: &NewLink) -> Result<()> {
        let len = i64::try_from(l.file.len()).unwrap_or(i64::MAX);
        self.with(|c| {
            c.execute(
                "INSERT INTO shl_links (id, owner, flags, passcode_hash, expires_s, once,
                   max_failures, failures, accesses, created_s, revoked_s, used_s, file, file_len)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, 0, ?8, NULL, NULL, ?9, ?10)",
                params![
                    l.id,
                    l.owner,
                    l.flags,
                    l.passcode_hash,
                    l.expires_s,
                    l.once,
                    l.max_failures,
                    l.created_s,
                    l.file,
                    len
                ],
            )?;
            Ok(())
        })
    }

    fn shl_link(&self, id: &str) -> Result<Option<Link>> {
        self.with(|c| select_link(c, id))
    }

    fn shl_links(&self, owner: &str) -> Result<Vec<Link>> {
        self.with(|c| {
            let links = c
                .prepare(&format!(
                    "SELECT {LINK_COLUMNS} FROM shl_links WHERE owner = ?1 ORDER BY created_s, id"
                ))?
                .query_map([owner], row_to_link)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(links)
        })
    }

    fn shl_replace_file(&self, id: &str, owner: &str, file: &str, _now_s: i64) -> Result<Change> {
        let len = i64::try_from(file.len()).unwrap_or(i64::MAX);
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let revoked: Option<Option<i64>> = tx
                .query_row(
                    "SELECT revoked_s FROM shl_links WHERE id = ?1 AND owner = ?2",
                    params![id, owner],
                    |r| r.get(0),
                )
                .optional()?;
            let change = match revoked {
                None => Change::NotFound,
                Some(Some(_)) => Change::Revoked,
                Some(None) => {
                    tx.execute(
                        "UPDATE shl_links SET file = ?2, file_len = ?3 WHERE id = ?1",
                        params![id, file, len],
                    )?;
                    Change::Done
                }
            };
            tx.commit()?;
            Ok(change)
        })
    }

    fn shl_revoke(&self, id: &str, owner: &str, now_s: i64) -> Result<Change> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "UPDATE shl_links SET revoked_s = coalesce(revoked_s, ?3), file = '', file_len = 0
                 WHERE id = ?1 AND owner = ?2",
                params![id, owner, now_s],
            )?;
            if n > 0 {
                tx.execute("DELETE FROM shl_tokens WHERE link = ?1", [id])?;
            }
            tx.commit()?;
            Ok(if n > 0 {
                Change::Done
            } else {
                Change::NotFound
            })
        })
    }

    fn shl_access(&self, a: &Attempt) -> Result<Answer> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let Some(link) = select_link(&tx, &a.id)? else {
                tx.commit()?;
                return Ok(Answer::NoLink);
            };
            let answer = match decide(&link, &a.ask, a.now_s) {
                Step::Ended(o) => Answer::Refused(o),
                Step::Refuse(o) => {
                    count_refusal(&tx, &link, link.failures, a.now_s)?;
                    Answer::Refused(o)
                }
                Step::CountFailure => {
                    let failures = link.failures + 1;
                    count_refusal(&tx, &link, failures, a.now_s)?;
                    Answer::WrongPasscode {
                        remaining: (link.max_failures - failures).max(0),
                    }
                }
                Step::Serve => {
                    let used_s = if link.once {
                        Some(a.now_s)
                    } else {
                        link.used_s
                    };
                    let answer = match &a.ask {
                        Ask::Manifest {
                            embed_max,
                            token_hash,
                            token_expires_s,
                        } => {
                            let len: i64 = tx.query_row(
                                "SELECT file_len FROM shl_links WHERE id = ?1",
                                [&a.id],
                                |r| r.get(0),
                            )?;
                            if embeds(*embed_max, len) {
                                Answer::File(select_file(&tx, &a.id)?)
                            } else {
                                tx.execute(
                                    "INSERT INTO shl_tokens (hash, link, recipient, expires_s)
                                     VALUES (?1, ?2, ?3, ?4)",
                                    params![token_hash, a.id, a.recipient, token_expires_s],
                                )?;
                                Answer::Location
                            }
                        }
                        _ => Answer::File(select_file(&tx, &a.id)?),
                    };
                    let access = Access {
                        seq: link.accesses + 1,
                        at_s: a.now_s,
                        recipient: a.recipient.clone(),
                        outcome: Outcome::Ok,
                        via: a.via,
                    };
                    record_opening(&tx, &link, used_s, &access)?;
                    answer
                }
            };
            tx.commit()?;
            Ok(answer)
        })
    }

    fn shl_fetch(&self, token_hash: &str, now_s: i64) -> Result<Answer> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let token: Option<(String, String, i64)> = tx
                .query_row(
                    "SELECT link, recipient, expires_s FROM shl_tokens WHERE hash = ?1",
                    [token_hash],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let Some((id, recipient, expires_s)) = token else {
                tx.commit()?;
                return Ok(Answer::NoLink);
            };
            let Some(link) = select_link(&tx, &id)? else {
                tx.execute("DELETE FROM shl_tokens WHERE hash = ?1", [token_hash])?;
                tx.commit()?;
                return Ok(Answer::NoLink);
            };
            let step = fetch_step(&link, expires_s, now_s);
            // A refused token goes, and so does a one-time link's once it is used.
            if !matches!(step, Step::Serve) || link.once {
                tx.execute("DELETE FROM shl_tokens WHERE hash = ?1", [token_hash])?;
            }
            let answer = match step {
                Step::Ended(o) => Answer::Refused(o),
                Step::Refuse(o) => {
                    count_refusal(&tx, &link, link.failures, now_s)?;
                    Answer::Refused(o)
                }
                // A fetch carries no passcode; `fetch_step` never asks for this.
                Step::CountFailure => Answer::Refused(Outcome::WrongPasscode),
                Step::Serve => {
                    // The file of a manifest the same recipient just asked for is part
                    // of that opening.
                    if !opened_since(&tx, &link, &recipient, now_s - OPENING_WINDOW_S)? {
                        let access = Access {
                            seq: link.accesses + 1,
                            at_s: now_s,
                            recipient,
                            outcome: Outcome::Ok,
                            via: Via::File,
                        };
                        record_opening(&tx, &link, link.used_s, &access)?;
                    }
                    Answer::File(select_file(&tx, &id)?)
                }
            };
            tx.commit()?;
            Ok(answer)
        })
    }

    fn shl_accesses(
        &self,
        id: &str,
        owner: &str,
        after: i64,
        limit: usize,
    ) -> Result<Option<(Link, Vec<Access>)>> {
        self.with(|c| {
            // One snapshot for both reads.
            let tx = c.transaction()?;
            let link = select_link(&tx, id)?.filter(|l| l.owner == owner);
            let Some(link) = link else {
                return Ok(None);
            };
            let rows = tx
                .prepare(
                    "SELECT seq, at_s, recipient, outcome, via FROM shl_accesses
                     WHERE link = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                )?
                .query_map(
                    params![id, after, i64::try_from(limit).unwrap_or(i64::MAX)],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, String>(4)?,
                        ))
                    },
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            tx.commit()?;
            let accesses = rows
                .into_iter()
                .map(|(seq, at_s, recipient, outcome, via)| {
                    Ok(Access {
                        seq,
                        at_s,
                        recipient,
                        outcome: Outcome::parse(&outcome).ok_or_else(bad_access_row)?,
                        via: Via::parse(&via).ok_or_else(bad_access_row)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Some((link, accesses)))
        })
    }

    fn shl_prune(&self, now_s: i64) -> Result<usize> {
        self.with(|c| Ok(c.execute("DELETE FROM shl_tokens WHERE expires_s <= ?1", [now_s])?))
    }
}
