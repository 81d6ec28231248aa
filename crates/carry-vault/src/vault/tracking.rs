//! The change-tracking triggers, and setting them aside for bulk writes.
//!
//! Two sets of triggers record changed rows: `backup_*` for the next incremental
//! backup (while a chain at the endpoint is being extended) and `device_*` for the
//! person's other devices (while another device is paired). All but two (the device
//! list's own, which always record) fire only when their condition holds, but merely
//! existing, a trigger makes every write to its table a
//! multi-statement program: SQLite then keeps a statement journal, a copy of every
//! page the write touches. In a large import that copying costs 10 to 15% of the
//! time (BENCHMARKS.md).
//!
//! So a bulk write in one transaction may set the conditional triggers aside while
//! nothing is tracking, and put them back before it commits. Both happen inside the
//! transaction: a crash, an error or a rollback leaves them as they were.

use rusqlite::Transaction;

use crate::error::Result;

/// The triggers a bulk write set aside, to be put back in the same transaction.
#[must_use = "put the triggers back before the transaction commits"]
pub struct SetAside {
    sql: Vec<String>,
}

/// The conditions the tracking triggers fire on: a backup chain being extended, and
/// another device paired. [`idle`] is true when neither holds.
const CONDITIONS: [&str; 2] = [
    "(SELECT tracking FROM backup_state WHERE id = 1) IS NOT NULL",
    "EXISTS (SELECT 1 FROM device_sync_on)",
];

/// Whether no change is being tracked: no backup chain is being extended and no other
/// device is paired, so a trigger that fires on one of [`CONDITIONS`] records nothing.
pub fn idle(tx: &Transaction<'_>) -> Result<bool> {
    let sql = format!("SELECT NOT ({}) AND NOT ({})", CONDITIONS[0], CONDITIONS[1]);
    Ok(tx.query_row(&sql, [], |r| r.get(0))?)
}

/// Drop the change-tracking triggers (`backup_*` and `device_*`) within `tx`, keeping
/// their SQL to create them again.
pub fn set_aside(tx: &Transaction<'_>) -> Result<SetAside> {
    drop_where(tx, |_| true)
}

/// Drop, while nothing is tracking ([`idle`]), the tracking triggers that fire only on
/// one of [`CONDITIONS`], within `tx`; `None` when tracking is on. Triggers that fire
/// unconditionally (on the device list) stay.
pub fn set_aside_if_idle(tx: &Transaction<'_>) -> Result<Option<SetAside>> {
    if !idle(tx)? {
        return Ok(None);
    }
    drop_where(tx, |sql| {
        let when = sql
            .split_once("WHEN")
            .and_then(|(_, rest)| rest.split_once("BEGIN"))
            .map_or("", |(when, _)| when);
        CONDITIONS.iter().any(|c| when.contains(c))
    })
    .map(Some)
}

/// Drop the tracking triggers whose SQL `chosen` accepts, keeping that SQL.
fn drop_where(tx: &Transaction<'_>, chosen: impl Fn(&str) -> bool) -> Result<SetAside> {
    let triggers: Vec<(String, String)> = tx
        .prepare(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'
             AND (name LIKE 'backup\\_%' ESCAPE '\\' OR name LIKE 'device\\_%' ESCAPE '\\')",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .filter(|t| {
            t.as_ref()
                .map_or(true, |(_, sql): &(String, String)| chosen(sql))
        })
        .collect::<rusqlite::Result<_>>()?;
    for (name, _) in &triggers {
        tx.execute_batch(&format!("DROP TRIGGER \"{name}\""))?;
    }
    Ok(SetAside {
        sql: triggers.into_iter().map(|(_, sql)| sql).collect(),
    })
}

impl SetAside {
    /// Create the triggers again, within the same transaction, before it commits.
    pub fn put_back(self, tx: &Transaction<'_>) -> Result<()> {
        for sql in &self.sql {
            tx.execute_batch(sql)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::migrations;
    use rusqlite::Connection;

    fn vault() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        migrations::migrate(&mut conn).unwrap();
        conn
    }

    /// The first column of every row of `sql`.
    fn strings(conn: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn.prepare(sql).unwrap();
        let rows = stmt.query_map([], |r| r.get(0)).unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }

    fn triggers(conn: &Connection) -> Vec<String> {
        strings(
            conn,
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name",
        )
    }

    #[test]
    fn set_aside_and_put_back_restores_the_same_triggers() {
        let mut conn = vault();
        let before = triggers(&conn);
        assert!(before.iter().any(|t| t.contains("backup_resources_in")));
        assert!(before.iter().any(|t| t.contains("device_resources_in")));
        let tx = conn.transaction().unwrap();
        assert!(idle(&tx).unwrap(), "a new vault tracks nothing");
        // All of them, as a restore sets them aside (an import leaves two: below).
        let aside = set_aside(&tx).unwrap();
        let during = strings(&tx, "SELECT name FROM sqlite_master WHERE type = 'trigger'");
        assert!(
            during
                .iter()
                .all(|n| !n.starts_with("backup_") && !n.starts_with("device_")),
            "{during:?}"
        );
        // The audit log's own guards are not change tracking: they stay.
        assert!(during.iter().any(|n| n == "audit_log_no_update"));
        aside.put_back(&tx).unwrap();
        tx.commit().unwrap();
        assert_eq!(triggers(&conn), before);
    }

    #[test]
    fn a_rollback_keeps_the_triggers_and_tracking_keeps_them_in_place() {
        let mut conn = vault();
        let before = triggers(&conn);
        {
            let tx = conn.transaction().unwrap();
            let _aside = set_aside(&tx).unwrap();
            // Dropped without putting back or committing: rolled back.
        }
        assert_eq!(triggers(&conn), before);
        conn.execute(
            "INSERT INTO backup_state (id, recovery_secret, backup_key, created_at, tracking)
             VALUES (1, x'00', x'00', 0, 1)",
            [],
        )
        .unwrap();
        let tx = conn.transaction().unwrap();
        assert!(!idle(&tx).unwrap(), "a backup chain is being extended");
        assert!(set_aside_if_idle(&tx).unwrap().is_none());
    }

    /// What `set_aside_if_idle` leaves in place are exactly the tracking triggers that
    /// fire on no condition `idle` knows (the device list's), so nothing it drops would
    /// have recorded anything while idle.
    #[test]
    fn idle_sets_aside_only_triggers_on_a_condition_it_knows() {
        let mut conn = vault();
        let tx = conn.transaction().unwrap();
        let aside = set_aside_if_idle(&tx).unwrap().unwrap();
        assert!(aside.sql.len() >= 20, "{} set aside", aside.sql.len());
        for sql in &aside.sql {
            assert!(CONDITIONS.iter().any(|c| sql.contains(c)), "{sql}");
        }
        let left = strings(
            &tx,
            "SELECT name FROM sqlite_master WHERE type = 'trigger'
             AND (name LIKE 'backup%' OR name LIKE 'device%') ORDER BY name",
        );
        assert_eq!(left, ["device_devices_in", "device_devices_up"]);
    }

    #[test]
    fn another_paired_device_keeps_the_triggers_in_place() {
        let mut conn = vault();
        conn.execute_batch(
            "INSERT INTO device_self (id, device, sign_pkcs8, enc_secret) VALUES (1, 'a', x'00', x'00');
             INSERT INTO devices (id, name, sign_key, enc_key, added_at)
             VALUES ('a', 'phone', x'00', x'00', 0);",
        )
        .unwrap();
        let tx = conn.transaction().unwrap();
        assert!(idle(&tx).unwrap(), "this device alone");
        tx.execute(
            "INSERT INTO devices (id, name, sign_key, enc_key, added_at)
             VALUES ('b', 'tablet', x'00', x'00', 0)",
            [],
        )
        .unwrap();
        assert!(!idle(&tx).unwrap(), "another device is paired");
        tx.execute("UPDATE devices SET removed_at = 1 WHERE id = 'b'", [])
            .unwrap();
        assert!(idle(&tx).unwrap(), "the other device was removed");
    }
}
