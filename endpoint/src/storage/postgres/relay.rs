//! The relay's challenges, sessions, key directory, mailboxes and retired keys on PostgreSQL.

use super::*;

impl RelayStore for PostgresStore {
    fn put_challenge(&self, challenge: &str, key: &[u8], expires_ms: i64) -> Result<()> {
        self.tx("put challenge", |t| {
            t.execute(
                "INSERT INTO relay_challenges (challenge, key, expires_ms) VALUES ($1, $2, $3)",
                &[&challenge, &key, &expires_ms],
            )
            .op("put challenge")?;
            Ok(())
        })
    }

    fn take_challenge(&self, challenge: &str, key: &[u8], now_ms: i64) -> Result<bool> {
        self.tx("take challenge", |t| {
            // Of concurrent takers, the one whose delete lands gets the row.
            let expires: Option<i64> = t
                .query_opt(
                    "DELETE FROM relay_challenges WHERE challenge = $1 AND key = $2
                     RETURNING expires_ms",
                    &[&challenge, &key],
                )
                .op("take challenge")?
                .map(|r| r.try_get(0))
                .transpose()
                .op("take challenge")?;
            Ok(expires.is_some_and(|e| e > now_ms))
        })
    }

    fn put_session(&self, hash: &str, session: &Session) -> Result<()> {
        self.tx("put session", |t| {
            t.execute(
                "INSERT INTO relay_sessions (hash, key, expires_ms) VALUES ($1, $2, $3)",
                &[&hash, &session.key, &session.expires_ms],
            )
            .op("put session")?;
            Ok(())
        })
    }

    fn get_session(&self, hash: &str, now_ms: i64) -> Result<Option<Session>> {
        self.read(|c| {
            c.query_opt(
                "SELECT key, expires_ms FROM relay_sessions WHERE hash = $1 AND expires_ms > $2",
                &[&hash, &now_ms],
            )
            .op("read session")?
            .map(|r| {
                Ok(Session {
                    key: r.try_get(0).op("read session")?,
                    expires_ms: r.try_get(1).op("read session")?,
                })
            })
            .transpose()
        })
    }

    fn put_directory(&self, e: &DirectoryEntry) -> Result<()> {
        self.tx("put directory entry", |t| {
            t.execute(
                "INSERT INTO relay_directory (mailbox, sign, enc, binding, updated_s)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (mailbox) DO UPDATE SET sign = excluded.sign, enc = excluded.enc,
                   binding = excluded.binding, updated_s = excluded.updated_s",
                &[&e.mailbox, &e.sign, &e.enc, &e.binding, &e.updated_s],
            )
            .op("put directory entry")?;
            Ok(())
        })
    }

    fn get_directory(&self, mailbox: &str) -> Result<Option<DirectoryEntry>> {
        const WHAT: &str = "read directory entry";
        self.read(|c| {
            c.query_opt(
                "SELECT mailbox, sign, enc, binding, updated_s FROM relay_directory
                 WHERE mailbox = $1",
                &[&mailbox],
            )
            .op(WHAT)?
            .map(|r| {
                Ok(DirectoryEntry {
                    mailbox: r.try_get(0).op(WHAT)?,
                    sign: r.try_get(1).op(WHAT)?,
                    enc: r.try_get(2).op(WHAT)?,
                    binding: r.try_get(3).op(WHAT)?,
                    updated_s: r.try_get(4).op(WHAT)?,
                })
            })
            .transpose()
        })
    }

    fn post_envelope(&self, e: &NewEnvelope, quota: &Quota) -> Result<Posted> {
        self.tx("post envelope", |t| {
            // Posts to one mailbox take turns on its directory row (see the top of
            // this file): the count below is then exact, and ids follow commit order.
            let known = t
                .query_opt(
                    "SELECT mailbox FROM relay_directory WHERE mailbox = $1 FOR UPDATE",
                    &[&e.mailbox],
                )
                .op("post envelope: lock mailbox")?
                .is_some();
            if !known {
                return Ok(Posted::NoMailbox);
            }
            let row = t
                .query_one(
                    "SELECT count(*), coalesce(sum(octet_length(body)), 0)::BIGINT
                     FROM relay_envelopes WHERE mailbox = $1",
                    &[&e.mailbox],
                )
                .op("post envelope: count")?;
            let held: i64 = row.try_get(0).op("post envelope: count")?;
            let bytes: i64 = row.try_get(1).op("post envelope: count")?;
            let held = usize::try_from(held).unwrap_or(usize::MAX);
            if quota.refuses(held, bytes, e.body.len()) {
                return Ok(Posted::Full);
            }
            let id: i64 = t
                .query_one(
                    "INSERT INTO relay_envelopes (mailbox, tag, sender, body, created_s)
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    &[&e.mailbox, &e.tag, &e.sender, &e.body, &e.created_s],
                )
                .op("post envelope: insert")?
                .try_get(0)
                .op("post envelope: insert")?;
            Ok(Posted::Stored(id))
        })
    }

    fn fetch_envelopes(
        &self,
        mailbox: &str,
        after: i64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Page> {
        const WHAT: &str = "fetch envelopes";
        let probe = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
        self.read(|c| {
            // Sizes first, so bodies past the page are never sent. Ids only grow, so
            // the second read can miss an envelope acked meanwhile, never add one.
            let sizes = c
                .query(
                    "SELECT id, octet_length(body)::BIGINT FROM relay_envelopes
                     WHERE mailbox = $1 AND id > $2 ORDER BY id LIMIT $3",
                    &[&mailbox, &after, &probe],
                )
                .op(WHAT)?
                .iter()
                .map(|r| Ok((r.try_get(0).op(WHAT)?, r.try_get(1).op(WHAT)?)))
                .collect::<Res<Vec<(i64, i64)>>>()?;
            let (n, more) = page_cut(&sizes, limit, max_bytes);
            let Some(&(last, _)) = n.checked_sub(1).and_then(|i| sizes.get(i)) else {
                return Ok(Page::default());
            };
            let envelopes = c
                .query(
                    "SELECT id, tag, body, sender FROM relay_envelopes
                     WHERE mailbox = $1 AND id > $2 AND id <= $3 ORDER BY id",
                    &[&mailbox, &after, &last],
                )
                .op(WHAT)?
                .iter()
                .map(|r| {
                    Ok(Envelope {
                        id: r.try_get(0).op(WHAT)?,
                        tag: r.try_get(1).op(WHAT)?,
                        body: r.try_get(2).op(WHAT)?,
                        sender: r.try_get(3).op(WHAT)?,
                    })
                })
                .collect::<Res<Vec<_>>>()?;
            Ok(Page { envelopes, more })
        })
    }

    fn ack_envelopes(&self, mailbox: &str, ids: &[i64]) -> Result<usize> {
        let ids = ids.to_vec();
        self.tx("ack envelopes", |t| {
            let n = t
                .execute(
                    "DELETE FROM relay_envelopes WHERE mailbox = $1 AND id = ANY($2)",
                    &[&mailbox, &ids],
                )
                .op("ack envelopes")?;
            Ok(rows(n))
        })
    }

    fn delete_tagged(&self, sender: &str, tag: &str) -> Result<usize> {
        self.tx("delete tagged envelopes", |t| {
            let n = t
                .execute(
                    "DELETE FROM relay_envelopes WHERE sender = $1 AND tag = $2",
                    &[&sender, &tag],
                )
                .op("delete tagged envelopes")?;
            Ok(rows(n))
        })
    }

    fn retire_key(&self, r: &Retirement) -> Result<Retired> {
        const WHAT: &str = "retire a key";
        self.tx(WHAT, |t| {
            // Of concurrent retirements of one key, the one whose insert lands stands.
            let inserted = t
                .execute(
                    "INSERT INTO relay_retired (key, mailbox, successor, successor_mailbox, at_s)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO NOTHING",
                    &[
                        &r.key,
                        &r.mailbox,
                        &r.successor,
                        &r.successor_mailbox,
                        &r.at_s,
                    ],
                )
                .op(WHAT)?;
            if inserted == 0 {
                let existing: Vec<u8> = t
                    .query_one(
                        "SELECT successor FROM relay_retired WHERE key = $1",
                        &[&r.key],
                    )
                    .op(WHAT)?
                    .try_get(0)
                    .op(WHAT)?;
                return Ok(retired_again(&existing, r));
            }
            for sql in RETIRE_KEY_SQL {
                t.execute(*sql, &[&r.key]).op(WHAT)?;
            }
            for sql in RETIRE_MAILBOX_SQL {
                t.execute(*sql, &[&r.mailbox]).op(WHAT)?;
            }
            for sql in RETIRE_HANDOVER_SQL {
                t.execute(*sql, &[&r.successor_mailbox, &r.mailbox])
                    .op(WHAT)?;
            }
            Ok(Retired::Done)
        })
    }

    fn successor_of(&self, mailbox: &str) -> Result<Option<String>> {
        const WHAT: &str = "read retirement";
        self.read(|c| {
            c.query_opt(
                "SELECT successor_mailbox FROM relay_retired WHERE mailbox = $1",
                &[&mailbox],
            )
            .op(WHAT)?
            .map(|r| r.try_get(0).op(WHAT))
            .transpose()
        })
    }

    fn prune_relay(&self, now_ms: i64, envelopes_before_s: i64) -> Result<Pruned> {
        self.tx("prune relay", |t| {
            Ok(Pruned {
                challenges: rows(
                    t.execute(
                        "DELETE FROM relay_challenges WHERE expires_ms <= $1",
                        &[&now_ms],
                    )
                    .op("prune relay: challenges")?,
                ),
                sessions: rows(
                    t.execute(
                        "DELETE FROM relay_sessions WHERE expires_ms <= $1",
                        &[&now_ms],
                    )
                    .op("prune relay: sessions")?,
                ),
                envelopes: rows(
                    t.execute(
                        "DELETE FROM relay_envelopes WHERE created_s < $1",
                        &[&envelopes_before_s],
                    )
                    .op("prune relay: envelopes")?,
                ),
            })
        })
    }
}
