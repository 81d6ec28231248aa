//! Share links, their tokens and their access log on PostgreSQL.

use super::*;

/// The columns [`link`] reads, in order.
const LINK_COLUMNS: &str = "id, owner, flags, passcode_hash, expires_s, once, max_failures, \
     failures, accesses, created_s, revoked_s, used_s, refused, last_refused_s";

/// A row of [`LINK_COLUMNS`] as a [`Link`].
fn link(r: &Row, what: &'static str) -> Res<Link> {
    Ok(Link {
        id: r.try_get(0).op(what)?,
        owner: r.try_get(1).op(what)?,
        flags: r.try_get(2).op(what)?,
        passcode_hash: r.try_get(3).op(what)?,
        expires_s: r.try_get(4).op(what)?,
        once: r.try_get(5).op(what)?,
        max_failures: r.try_get(6).op(what)?,
        failures: r.try_get(7).op(what)?,
        accesses: r.try_get(8).op(what)?,
        created_s: r.try_get(9).op(what)?,
        revoked_s: r.try_get(10).op(what)?,
        used_s: r.try_get(11).op(what)?,
        refused: r.try_get(12).op(what)?,
        last_refused_s: r.try_get(13).op(what)?,
    })
}

/// One link by id, its row locked until the transaction ends.
fn lock_link(t: &mut Transaction<'_>, id: &str, what: &'static str) -> Res<Option<Link>> {
    t.query_opt(
        &format!("SELECT {LINK_COLUMNS} FROM shl_links WHERE id = $1 FOR UPDATE"),
        &[&id],
    )
    .op(what)?
    .map(|r| link(&r, what))
    .transpose()
}

/// A link's file.
fn link_file(t: &mut Transaction<'_>, id: &str, what: &'static str) -> Res<String> {
    t.query_one("SELECT file FROM shl_links WHERE id = $1", &[&id])
        .op(what)?
        .try_get(0)
        .op(what)
}

/// Count a refusal on `l` (whose row the transaction holds): one more refused request
/// at `now_s`, and `failures` wrong passcodes in all.
fn count_refusal(
    t: &mut Transaction<'_>,
    l: &Link,
    failures: i64,
    now_s: i64,
    what: &'static str,
) -> Res<()> {
    t.execute(
        "UPDATE shl_links SET failures = $2, refused = refused + 1, last_refused_s = $3
         WHERE id = $1",
        &[&l.id, &failures, &now_s],
    )
    .op(what)?;
    Ok(())
}

/// Append an opening to `l` (whose row the transaction holds) and move its counters:
/// the opening is number `accesses + 1`.
fn record_opening(
    t: &mut Transaction<'_>,
    l: &Link,
    used_s: Option<i64>,
    a: &Access,
    what: &'static str,
) -> Res<()> {
    t.execute(
        "UPDATE shl_links SET used_s = $2, accesses = $3 WHERE id = $1",
        &[&l.id, &used_s, &a.seq],
    )
    .op(what)?;
    t.execute(
        "INSERT INTO shl_accesses (link, seq, at_s, recipient, outcome, via)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &l.id,
            &a.seq,
            &a.at_s,
            &a.recipient,
            &a.outcome.as_str(),
            &a.via.as_str(),
        ],
    )
    .op(what)?;
    Ok(())
}

/// Whether `recipient` opened `l` at or after `since_s`, among its latest
/// [`OPENING_LOOKBACK`] accesses.
fn opened_since(
    t: &mut Transaction<'_>,
    l: &Link,
    recipient: &str,
    since_s: i64,
    what: &'static str,
) -> Res<bool> {
    Ok(t.query_opt(
        "SELECT 1 FROM shl_accesses WHERE link = $1 AND seq > $2 AND recipient = $3
             AND outcome = 'ok' AND at_s >= $4 LIMIT 1",
        &[
            &l.id,
            &(l.accesses - OPENING_LOOKBACK),
            &recipient,
            &since_s,
        ],
    )
    .op(what)?
    .is_some())
}

/// An access-log row that does not parse (a name this build does not know).
fn bad_access_row() -> Fail {
    Fail::Store(StoreError::Backend(
        "shl_accesses: unknown outcome or via".into(),
    ))
}

impl LinkStore for PostgresStore {
    fn shl_create(&self, l: &NewLink) -> Result<()> {
        let len = i64::try_from(l.file.len()).unwrap_or(i64::MAX);
        self.tx("create link", |t| {
            t.execute(
                "INSERT INTO shl_links (id, owner, flags, passcode_hash, expires_s, once,
                   max_failures, failures, accesses, created_s, revoked_s, used_s, file, file_len)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0, $8, NULL, NULL, $9, $10)",
                &[
                    &l.id,
                    &l.owner,
                    &l.flags,
                    &l.passcode_hash,
                    &l.expires_s,
                    &l.once,
                    &l.max_failures,
                    &l.created_s,
                    &l.file,
                    &len,
                ],
            )
            .op("create link")?;
            Ok(())
        })
    }

    fn shl_link(&self, id: &str) -> Result<Option<Link>> {
        self.read(|c| {
            c.query_opt(
                &format!("SELECT {LINK_COLUMNS} FROM shl_links WHERE id = $1"),
                &[&id],
            )
            .op("read link")?
            .map(|r| link(&r, "read link"))
            .transpose()
        })
    }

    fn shl_links(&self, owner: &str) -> Result<Vec<Link>> {
        self.read(|c| {
            c.query(
                &format!(
                    "SELECT {LINK_COLUMNS} FROM shl_links WHERE owner = $1 ORDER BY created_s, id"
                ),
                &[&owner],
            )
            .op("list links")?
            .iter()
            .map(|r| link(r, "list links"))
            .collect()
        })
    }

    fn shl_replace_file(&self, id: &str, owner: &str, file: &str, _now_s: i64) -> Result<Change> {
        let len = i64::try_from(file.len()).unwrap_or(i64::MAX);
        self.tx("replace link file", |t| {
            let Some(l) = lock_link(t, id, "replace link file: lock")? else {
                return Ok(Change::NotFound);
            };
            if l.owner != owner {
                return Ok(Change::NotFound);
            }
            if l.revoked_s.is_some() {
                return Ok(Change::Revoked);
            }
            t.execute(
                "UPDATE shl_links SET file = $2, file_len = $3 WHERE id = $1",
                &[&id, &file, &len],
            )
            .op("replace link file")?;
            Ok(Change::Done)
        })
    }

    fn shl_revoke(&self, id: &str, owner: &str, now_s: i64) -> Result<Change> {
        self.tx("revoke link", |t| {
            let n = t
                .execute(
                    "UPDATE shl_links SET revoked_s = coalesce(revoked_s, $3), file = '', file_len = 0
                     WHERE id = $1 AND owner = $2",
                    &[&id, &owner, &now_s],
                )
                .op("revoke link")?;
            if n == 0 {
                return Ok(Change::NotFound);
            }
            t.execute("DELETE FROM shl_tokens WHERE link = $1", &[&id])
                .op("revoke link: tokens")?;
            Ok(Change::Done)
        })
    }

    fn shl_access(&self, a: &Attempt) -> Result<Answer> {
        const WHAT: &str = "link access";
        self.tx(WHAT, |t| {
            let Some(l) = lock_link(t, &a.id, WHAT)? else {
                return Ok(Answer::NoLink);
            };
            Ok(match decide(&l, &a.ask, a.now_s) {
                Step::Ended(o) => Answer::Refused(o),
                Step::Refuse(o) => {
                    count_refusal(t, &l, l.failures, a.now_s, WHAT)?;
                    Answer::Refused(o)
                }
                Step::CountFailure => {
                    let failures = l.failures + 1;
                    count_refusal(t, &l, failures, a.now_s, WHAT)?;
                    Answer::WrongPasscode {
                        remaining: (l.max_failures - failures).max(0),
                    }
                }
                Step::Serve => {
                    let used_s = if l.once { Some(a.now_s) } else { l.used_s };
                    let answer = match &a.ask {
                        Ask::Manifest {
                            embed_max,
                            token_hash,
                            token_expires_s,
                        } => {
                            let len: i64 = t
                                .query_one("SELECT file_len FROM shl_links WHERE id = $1", &[&a.id])
                                .op(WHAT)?
                                .try_get(0)
                                .op(WHAT)?;
                            if embeds(*embed_max, len) {
                                Answer::File(link_file(t, &a.id, WHAT)?)
                            } else {
                                t.execute(
                                    "INSERT INTO shl_tokens (hash, link, recipient, expires_s)
                                     VALUES ($1, $2, $3, $4)",
                                    &[token_hash, &a.id, &a.recipient, token_expires_s],
                                )
                                .op("link access: store token")?;
                                Answer::Location
                            }
                        }
                        _ => Answer::File(link_file(t, &a.id, WHAT)?),
                    };
                    let access = Access {
                        seq: l.accesses + 1,
                        at_s: a.now_s,
                        recipient: a.recipient.clone(),
                        outcome: Outcome::Ok,
                        via: a.via,
                    };
                    record_opening(t, &l, used_s, &access, WHAT)?;
                    answer
                }
            })
        })
    }

    fn shl_fetch(&self, token_hash: &str, now_s: i64) -> Result<Answer> {
        const WHAT: &str = "link file";
        self.tx(WHAT, |t| {
            let token_of = |t: &mut Transaction<'_>| -> Res<Option<(String, String, i64)>> {
                t.query_opt(
                    "SELECT link, recipient, expires_s FROM shl_tokens WHERE hash = $1",
                    &[&token_hash],
                )
                .op(WHAT)?
                .map(|r| {
                    Ok((
                        r.try_get(0).op(WHAT)?,
                        r.try_get(1).op(WHAT)?,
                        r.try_get(2).op(WHAT)?,
                    ))
                })
                .transpose()
            };
            let Some((id, _, _)) = token_of(t)? else {
                return Ok(Answer::NoLink);
            };
            // The link's row first (the order every call here locks in), then the
            // token again: a concurrent fetch of a one-time token may have spent it.
            let Some(l) = lock_link(t, &id, WHAT)? else {
                return Ok(Answer::NoLink);
            };
            let Some((_, recipient, expires_s)) = token_of(t)? else {
                return Ok(Answer::NoLink);
            };
            let step = fetch_step(&l, expires_s, now_s);
            // A refused token goes, and so does a one-time link's once it is used.
            if !matches!(step, Step::Serve) || l.once {
                t.execute("DELETE FROM shl_tokens WHERE hash = $1", &[&token_hash])
                    .op("link file: spend token")?;
            }
            Ok(match step {
                Step::Ended(o) => Answer::Refused(o),
                Step::Refuse(o) => {
                    count_refusal(t, &l, l.failures, now_s, WHAT)?;
                    Answer::Refused(o)
                }
                // A fetch carries no passcode; `fetch_step` never asks for this.
                Step::CountFailure => Answer::Refused(Outcome::WrongPasscode),
                Step::Serve => {
                    // The file of a manifest the same recipient just asked for is part
                    // of that opening.
                    if !opened_since(t, &l, &recipient, now_s - OPENING_WINDOW_S, WHAT)? {
                        let access = Access {
                            seq: l.accesses + 1,
                            at_s: now_s,
                            recipient,
                            outcome: Outcome::Ok,
                            via: Via::File,
                        };
                        record_opening(t, &l, l.used_s, &access, WHAT)?;
                    }
                    Answer::File(link_file(t, &id, WHAT)?)
                }
            })
        })
    }

    fn shl_accesses(
        &self,
        id: &str,
        owner: &str,
        after: i64,
        limit: usize,
    ) -> Result<Option<(Link, Vec<Access>)>> {
        const WHAT: &str = "read link accesses";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|c| {
            let Some(l) = c
                .query_opt(
                    &format!("SELECT {LINK_COLUMNS} FROM shl_links WHERE id = $1"),
                    &[&id],
                )
                .op(WHAT)?
                .map(|r| link(&r, WHAT))
                .transpose()?
                .filter(|l| l.owner == owner)
            else {
                return Ok(None);
            };
            // Accesses only append, so reading them after the link can add ones newer
            // than its counter, never lose one.
            let accesses = c
                .query(
                    "SELECT seq, at_s, recipient, outcome, via FROM shl_accesses
                     WHERE link = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                    &[&id, &after, &limit],
                )
                .op(WHAT)?
                .iter()
                .map(|r| {
                    let outcome: String = r.try_get(3).op(WHAT)?;
                    let via: String = r.try_get(4).op(WHAT)?;
                    Ok(Access {
                        seq: r.try_get(0).op(WHAT)?,
                        at_s: r.try_get(1).op(WHAT)?,
                        recipient: r.try_get(2).op(WHAT)?,
                        outcome: Outcome::parse(&outcome).ok_or_else(bad_access_row)?,
                        via: Via::parse(&via).ok_or_else(bad_access_row)?,
                    })
                })
                .collect::<Res<Vec<_>>>()?;
            Ok(Some((l, accesses)))
        })
    }

    fn shl_prune(&self, now_s: i64) -> Result<usize> {
        self.tx("prune link tokens", |t| {
            Ok(rows(
                t.execute("DELETE FROM shl_tokens WHERE expires_s <= $1", &[&now_s])
                    .op("prune link tokens")?,
            ))
        })
    }
}
