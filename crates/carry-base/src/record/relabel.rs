//! Labels follow the fact: every copy of a fact held by several sources carries the
//! sensitivity labels of its strictest copy.

use rusqlite::{params, Transaction};

use super::sensitivity::{self, Label};
use crate::error::{Error, Result};

/// What the rule of a label a copy inherited from another copy of its fact starts
/// with; that copy's item id, a colon and its own rule follow.
pub const INHERITED: &str = "same fact as item ";

/// Relabel the copies of the fact that item `id` belongs to (see [`members`]).
pub fn group_of(tx: &Transaction<'_>, id: i64) -> Result<()> {
    let copies: Vec<i64> = tx
        .prepare_cached(
            "SELECT m.id FROM resources r JOIN resources m ON m.group_id = r.group_id
             WHERE r.id = ?1 ORDER BY m.id",
        )?
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if copies.is_empty() {
        return Ok(());
    }
    members(tx, &copies)
}

/// Give each of `members` (the copies of one fact) every sensitivity label any of
/// them carries of its own, so that the fact is as restricted in each copy as in its
/// strictest one: a GP's copy of the person's mood entry stays `PSY`. An inherited
/// label's rule names the copy and the rule it came from; labels inherited before
/// are worked out again, so a copy that leaves the fact keeps only its own.
pub fn members(tx: &Transaction<'_>, members: &[i64]) -> Result<()> {
    let own = |l: &Label| !l.rule.starts_with(INHERITED);
    let mut rows: Vec<(i64, Vec<Label>)> = Vec::with_capacity(members.len());
    for id in members {
        let rules: String = tx
            .prepare_cached("SELECT label_rules FROM resources WHERE id = ?1")?
            .query_row([id], |r| r.get(0))?;
        let labels: Vec<Label> = serde_json::from_str(&rules)
            .map_err(|_| Error::internal("a stored resource's label rules are damaged"))?;
        rows.push((*id, labels));
    }
    let owned: Vec<(i64, Label)> = rows
        .iter()
        .flat_map(|(id, labels)| labels.iter().filter(|l| own(l)).map(|l| (*id, l.clone())))
        .collect();
    for (id, labels) in &rows {
        let mut next: Vec<Label> = labels.iter().filter(|l| own(l)).cloned().collect();
        for (from, l) in &owned {
            if from != id && !next.iter().any(|n| n.label == l.label) {
                next.push(Label {
                    label: l.label.clone(),
                    rule: format!("{INHERITED}{from}: {}", l.rule),
                });
            }
        }
        if &next != labels {
            let rules = serde_json::to_string(&next)?;
            tx.prepare_cached(
                "UPDATE resources SET sensitivity = ?2, label_rules = ?3 WHERE id = ?1",
            )?
            .execute(params![id, sensitivity::label_column(&next), rules])?;
        }
    }
    Ok(())
}

/// Spread labels across every fact held in more than one copy (once, when a vault
/// from before schema 11 is opened; later, the resource writer keeps it so as resources come and go).
pub fn all(tx: &Transaction<'_>) -> Result<()> {
    let groups: Vec<i64> = tx
        .prepare("SELECT DISTINCT group_id FROM resources WHERE group_id IS NOT NULL")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for g in groups {
        group_of(tx, g)?;
    }
    Ok(())
}
