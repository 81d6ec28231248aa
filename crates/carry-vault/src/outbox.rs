//! The readings outbox's queue: which readings the person (or their carer) entered
//! wait to go to which provider, under the person's push rules. Entering, amending
//! or receiving a reading queues it here; sync sends what is queued.

use rusqlite::params;
use serde_json::Value;

use crate::error::Result;

/// A reading not yet queued for a provider that takes readings.
pub struct Candidate {
    /// The reading's item id.
    pub item_id: i64,
    /// The provider's source id.
    pub source_id: i64,
    /// The provider's name.
    pub source_name: String,
    /// The reading's identifier, `system|value`.
    pub identifier: String,
    /// What kind of reading it is (`weight`, `bp`…), if known.
    pub kind: Option<&'static str>,
    /// Whether it carries a sensitivity label.
    pub sensitive: bool,
    /// Its display line.
    pub display: String,
}

/// Every reading the person (or their carer) entered that is not yet queued for a
/// provider that takes readings, once per such provider.
pub fn candidates(c: &rusqlite::Connection) -> Result<Vec<Candidate>> {
    let mut stmt = c.prepare(
        "SELECT r.id, p.source_id, ps.name, json_extract(r.json, '$.identifier[0].system') || '|' ||
                json_extract(r.json, '$.identifier[0].value'), r.json, r.sensitivity, r.display
         FROM resources r JOIN sources s ON s.id = r.source_id
         CROSS JOIN provider_sources p JOIN sources ps ON ps.id = p.source_id
         WHERE p.push AND s.kind = 'self' AND r.rtype = 'Observation'
           AND r.entered_by IN ('self', 'carer')
           AND json_extract(r.json, '$.identifier[0].value') IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM outbox o
                           WHERE o.resource_id = r.id AND o.source_id = p.source_id)
         ORDER BY r.id",
    )?;
    let rows = stmt
        .query_map([], |r| {
            let json: String = r.get(4)?;
            let labels: String = r.get(5)?;
            Ok(Candidate {
                item_id: r.get(0)?,
                source_id: r.get(1)?,
                source_name: r.get(2)?,
                identifier: r.get(3)?,
                kind: serde_json::from_str::<Value>(&json)
                    .ok()
                    .and_then(|v| crate::readings::kind_of(&v)),
                sensitive: !labels.trim().is_empty(),
                display: r.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// The push-policy name for every reading labelled sensitive.
pub const SENSITIVE: &str = "sensitive";

/// The person's push policy: per source (0: every source) and kind, allowed or not.
pub struct Policy(std::collections::HashMap<(i64, String), bool>);

impl Policy {
    /// The policy as the vault holds it.
    pub fn load(c: &rusqlite::Connection) -> Result<Policy> {
        let rows = c
            .prepare("SELECT source_id, kind, allow FROM push_policy")?
            .query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(Policy(rows))
    }

    /// The rule for `kind` to `source` (else to every source), if there is one.
    pub fn rule(&self, source: i64, kind: &str) -> Option<bool> {
        self.0
            .get(&(source, kind.to_string()))
            .or_else(|| self.0.get(&(0, kind.to_string())))
            .copied()
    }

    /// A rule for the reading's kind decides; else a sensitive reading goes only
    /// where sensitive readings are allowed; else it goes.
    pub fn allows(&self, c: &Candidate) -> bool {
        match c.kind.and_then(|k| self.rule(c.source_id, k)) {
            Some(allow) => allow,
            None if c.sensitive => self.rule(c.source_id, SENSITIVE).unwrap_or(false),
            None => true,
        }
    }
}

/// Queue every reading the person (or their carer) entered that is not yet queued,
/// for every provider that takes readings and that the push policy lets it go to.
/// Runs when a reading is added and before each push, so a source added later also
/// receives the readings made before it, and a rule relaxed later sends what it kept.
pub fn enqueue(tx: &rusqlite::Connection, now: i64) -> Result<()> {
    let policy = Policy::load(tx)?;
    for c in candidates(tx)? {
        if policy.allows(&c) {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO outbox (resource_id, source_id, identifier, state, created_at)
                 VALUES (?1, ?2, ?3, 'pending', ?4)",
            )?
            .execute(params![c.item_id, c.source_id, c.identifier, now])?;
        }
    }
    Ok(())
}
