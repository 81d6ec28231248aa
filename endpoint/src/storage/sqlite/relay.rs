//! The relay's challenges, sessions, key directory, mailboxes and retired keys on SQLite.

use super::*;

/// Ids per `DELETE … IN (…)`, well under SQLite's bound on parameters.
const ACK_CHUNK: usize = 500;

fn to_usize(n: i64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

impl RelayStore for SqliteStore {
    fn put_challenge(&self, challenge: &str, key: &[u8], expires_ms: i64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO relay_challenges (challenge, key, expires_ms) VALUES (?1, ?2, ?3)",
                params![challenge, key, expires_ms],
            )?;
            Ok(())
        })
    }

    fn take_challenge(&self, challenge: &str, key: &[u8], now_ms: i64) -> Result<bool> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let expires: Option<i64> = tx
                .query_row(
                    "SELECT expires_ms FROM relay_challenges WHERE challenge = ?1 AND key = ?2",
                    params![challenge, key],
                    |r| r.get(0),
                )
                .optional()?;
            if expires.is_some() {
                tx.execute(
                    "DELETE FROM relay_challenges WHERE challenge = ?1 AND key = ?2",
                    params![challenge, key],
                )?;
            }
            tx.commit()?;
            Ok(expires.is_some_and(|e| e > now_ms))
        })
    }

    fn put_session(&self, hash: &str, session: &Session) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO relay_sessions (hash, key, expires_ms) VALUES (?1, ?2, ?3)",
                params![hash, session.key, session.expires_ms],
            )?;
            Ok(())
        })
    }

    fn get_session(&self, hash: &str, now_ms: i64) -> Result<Option<Session>> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT key, expires_ms FROM relay_sessions WHERE hash = ?1 AND expires_ms > ?2",
                params![hash, now_ms],
                |r| {
                    Ok(Session {
                        key: r.get(0)?,
                        expires_ms: r.get(1)?,
                    })
                },
            )
            .optional()?)
        })
    }

    fn put_directory(&self, e: &DirectoryEntry) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO relay_directory (mailbox, sign, enc, binding, updated_s)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (mailbox) DO UPDATE SET sign = excluded.sign, enc = excluded.enc,
                   binding = excluded.binding, updated_s = excluded.updated_s",
                params![e.mailbox, e.sign, e.enc, e.binding, e.updated_s],
            )?;
            Ok(())
        })
    }

    fn get_directory(&self, mailbox: &str) -> Result<Option<DirectoryEntry>> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT mailbox, sign, enc, binding, updated_s FROM relay_directory WHERE mailbox = ?1",
                [mailbox],
                |r| {
                    Ok(DirectoryEntry {
                        mailbox: r.get(0)?,
                        sign: r.get(1)?,
                        enc: r.get(2)?,
                        binding: r.get(3)?,
                        updated_s: r.get(4)?,
                    })
                },
            )
            .optional()?)
        })
    }

    fn post_envelope(&self, e: &NewEnvelope, quota: &Quota) -> Result<Posted> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let known = tx
                .query_row(
                    "SELECT 1 FROM relay_directory WHERE mailbox = ?1",
                    [&e.mailbox],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !known {
                return Ok(Posted::NoMailbox);
            }
            let (held, bytes): (i64, i64) = tx.query_row(
                "SELECT count(*), coalesce(sum(length(body)), 0) FROM relay_envelopes
                 WHERE mailbox = ?1",
                [&e.mailbox],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            if quota.refuses(to_usize(held), bytes, e.body.len()) {
                return Ok(Posted::Full);
            }
            tx.execute(
                "INSERT INTO relay_envelopes (mailbox, tag, sender, body, created_s)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![e.mailbox, e.tag, e.sender, e.body, e.created_s],
            )?;
            let id = tx.last_insert_rowid();
            tx.commit()?;
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
        self.with(|c| {
            // One snapshot for both reads. Sizes first, so bodies past the page are
            // never read.
            let tx = c.transaction()?;
            let sizes = tx
                .prepare(
                    "SELECT id, length(body) FROM relay_envelopes
                     WHERE mailbox = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                )?
                .query_map(
                    params![
                        mailbox,
                        after,
                        i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1)
                    ],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let (n, more) = page_cut(&sizes, limit, max_bytes);
            let Some(&(last, _)) = n.checked_sub(1).and_then(|i| sizes.get(i)) else {
                return Ok(Page::default());
            };
            let envelopes = tx
                .prepare(
                    "SELECT id, tag, body, sender FROM relay_envelopes
                     WHERE mailbox = ?1 AND id > ?2 AND id <= ?3 ORDER BY id",
                )?
                .query_map(params![mailbox, after, last], |r| {
                    Ok(Envelope {
                        id: r.get(0)?,
                        tag: r.get(1)?,
                        body: r.get(2)?,
                        sender: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            tx.commit()?;
            Ok(Page { envelopes, more })
        })
    }

    fn ack_envelopes(&self, mailbox: &str, ids: &[i64]) -> Result<usize> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut deleted = 0;
            for chunk in ids.chunks(ACK_CHUNK) {
                let marks = vec!["?"; chunk.len()].join(", ");
                let mut args: Vec<rusqlite::types::Value> = vec![mailbox.to_string().into()];
                args.extend(chunk.iter().map(|id| rusqlite::types::Value::from(*id)));
                deleted += tx.execute(
                    &format!("DELETE FROM relay_envelopes WHERE mailbox = ? AND id IN ({marks})"),
                    rusqlite::params_from_iter(args.iter()),
                )?;
            }
            tx.commit()?;
            Ok(deleted)
        })
    }

    fn delete_tagged(&self, sender: &str, tag: &str) -> Result<usize> {
        self.with(|c| {
            Ok(c.execute(
                "DELETE FROM relay_envelopes WHERE sender = ?1 AND tag = ?2",
                params![sender, tag],
            )?)
        })
    }

    fn retire_key(&self, r: &Retirement) -> Result<Retired> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let existing: Option<Vec<u8>> = tx
                .query_row(
                    "SELECT successor FROM relay_retired WHERE key = ?1",
                    [&r.key],
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(existing) = existing {
                return Ok(retired_again(&existing, r));
            }
            tx.execute(
                "INSERT INTO relay_retired (key, mailbox, successor, successor_mailbox, at_s)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![r.key, r.mailbox, r.successor, r.successor_mailbox, r.at_s],
            )?;
            for sql in RETIRE_KEY_SQL {
                tx.execute(sql, [&r.key])?;
            }
            for sql in RETIRE_MAILBOX_SQL {
                tx.execute(sql, [&r.mailbox])?;
            }
            for sql in RETIRE_HANDOVER_SQL {
                tx.execute(sql, params![r.successor_mailbox, r.mailbox])?;
            }
            tx.commit()?;
            Ok(Retired::Done)
        })
    }

    fn successor_of(&self, mailbox: &str) -> Result<Option<String>> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT successor_mailbox FROM relay_retired WHERE mailbox = ?1",
                [mailbox],
                |r| r.get(0),
            )
            .optional()?)
        })
    }

    fn prune_relay(&self, now_ms: i64, envelopes_before_s: i64) -> Result<Pruned> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let pruned = Pruned {
                challenges: tx.execute(
                    "DELETE FROM relay_challenges WHERE expires_ms <= ?1",
                    [now_ms],
                )?,
                sessions: tx.execute(
                    "DELETE FROM relay_sessions WHERE expires_ms <= ?1",
                    [now_ms],
                )?,
                envelopes: tx.execute(
                    "DELETE FROM relay_envelopes WHERE created_s < ?1",
                    [envelopes_before_s],
                )?,
            };
            tx.commit()?;
            Ok(pruned)
        })
    }
}
