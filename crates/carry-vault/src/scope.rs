//! Which part of the record a scope covers ([`Scope`]), and which resources that is:
//! the one rule grants' deliveries, "view as", the grant list and share links all use.
//!
//! A resource is in scope when its category is listed, its type is listed (if types
//! are), its date falls in the window (undated items are left out of a windowed
//! scope), every sensitivity label it carries was included explicitly, and it is not
//! hidden. One fact held by several sources goes once: its most complete copy in
//! scope (the longest), and hiding any copy hides the fact.

use std::collections::BTreeSet;

use rusqlite::types::Value as SqlValue;
use rusqlite::{params_from_iter, Connection, OptionalExtension};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::record::{summary, Category};

/// Which part of the record a grant or a share link covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// The categories (at least one).
    pub categories: Vec<Category>,
    /// Only these FHIR resource types, if any are listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_types: Vec<String>,
    /// Only data dated on or after this FHIR date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_from: Option<String>,
    /// Only data dated before this FHIR date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_until: Option<String>,
    /// Sensitivity labels (HL7 v3 codes such as `PSY`) whose items are included.
    /// Items with any other label are left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_labels: Vec<String>,
    /// Item ids left out individually.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hidden: Vec<i64>,
}

/// One resource in scope: its item id and content hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InScope {
    /// The item id.
    pub id: i64,
    /// The hash of its content as held.
    pub hash: Vec<u8>,
}

/// The key a grantee knows an item by.
pub fn rkey(id: i64) -> String {
    format!("r{id}")
}

/// The item ids `scope` covers, in order.
pub fn ids(conn: &Connection, scope: &Scope) -> Result<Vec<i64>> {
    Ok(in_scope(conn, scope)?.into_iter().map(|i| i.id).collect())
}

/// The resources `scope` covers, in item id order.
pub fn in_scope(conn: &Connection, scope: &Scope) -> Result<Vec<InScope>> {
    if scope.categories.is_empty() {
        return Ok(Vec::new());
    }
    let marks = vec!["?"; scope.categories.len()].join(",");
    let mut sql = format!(
        "SELECT id, content_hash, sensitivity, coalesce(group_id, id), length(json)
         FROM resources WHERE category IN ({marks})"
    );
    let mut args: Vec<SqlValue> = scope
        .categories
        .iter()
        .map(|c| SqlValue::Text(c.as_str().into()))
        .collect();
    if !scope.resource_types.is_empty() {
        let marks = vec!["?"; scope.resource_types.len()].join(",");
        sql.push_str(&format!(" AND rtype IN ({marks})"));
        args.extend(scope.resource_types.iter().cloned().map(SqlValue::Text));
    }
    let date = |d: &str| {
        summary::parse_fhir_date(d)
            .ok_or_else(|| Error::invalid(format!("'{d}' is not a date like 2024-01-31")))
    };
    if scope.data_from.is_some() || scope.data_until.is_some() {
        sql.push_str(" AND date_sort <> ?");
        args.push(SqlValue::Integer(summary::UNDATED));
    }
    if let Some(from) = &scope.data_from {
        sql.push_str(" AND date_sort >= ?");
        args.push(SqlValue::Integer(date(from)?));
    }
    if let Some(until) = &scope.data_until {
        sql.push_str(" AND date_sort < ?");
        args.push(SqlValue::Integer(date(until)?));
    }
    sql.push_str(" ORDER BY id");
    let included: BTreeSet<&str> = scope.include_labels.iter().map(String::as_str).collect();
    // Hiding one copy of a fact hides the fact.
    let mut hidden_facts: BTreeSet<i64> = BTreeSet::new();
    for id in &scope.hidden {
        let fact: Option<i64> = conn
            .prepare_cached("SELECT coalesce(group_id, id) FROM resources WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        hidden_facts.extend(fact);
    }
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    // Per fact, its most complete copy in scope: (size, id, hash), the smaller id on a tie.
    let mut best: std::collections::BTreeMap<i64, (i64, i64, Vec<u8>)> = Default::default();
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let labels: String = r.get(2)?;
        let fact: i64 = r.get(3)?;
        if hidden_facts.contains(&fact) || !labels.split_whitespace().all(|l| included.contains(l))
        {
            continue;
        }
        let size: i64 = r.get(4)?;
        let better = best
            .get(&fact)
            .is_none_or(|(s, i, _)| size > *s || (size == *s && id < *i));
        if better {
            best.insert(fact, (size, id, r.get(1)?));
        }
    }
    let mut out: Vec<InScope> = best
        .into_values()
        .map(|(_, id, hash)| InScope { id, hash })
        .collect();
    out.sort_by_key(|i| i.id);
    Ok(out)
}

/// Whether `scope` covers a resource with `analysis` (by the rule [`in_scope`]
/// applies to the record): `Err` says why not, in words fit for both people.
pub fn admits(
    scope: &Scope,
    analysis: &crate::record::Analysis,
) -> std::result::Result<(), String> {
    if !scope.categories.contains(&analysis.category) {
        let allowed: Vec<&str> = scope.categories.iter().map(|c| c.as_str()).collect();
        return Err(format!(
            "{} is outside the grant's categories ({})",
            analysis.category.as_str(),
            allowed.join(", ")
        ));
    }
    if !scope.resource_types.is_empty() && !scope.resource_types.contains(&analysis.resource_type) {
        return Err(format!(
            "{} is outside the grant's resource types",
            analysis.resource_type
        ));
    }
    let windowed = scope.data_from.is_some() || scope.data_until.is_some();
    let sort = analysis.date.as_ref().map(|(_, s)| *s);
    let before = |d: &Option<String>| -> std::result::Result<Option<i64>, String> {
        d.as_deref()
            .map(|d| summary::parse_fhir_date(d).ok_or_else(|| format!("'{d}' is not a date")))
            .transpose()
    };
    match (windowed, sort) {
        (true, None) => return Err("an undated entry is outside a dated grant".into()),
        (true, Some(at))
            if before(&scope.data_from)?.is_some_and(|from| at < from)
                || before(&scope.data_until)?.is_some_and(|until| at >= until) =>
        {
            return Err("its date is outside the grant's dates".into());
        }
        _ => {}
    }
    if let Some(l) = analysis
        .labels
        .iter()
        .find(|l| !scope.include_labels.contains(&l.label))
    {
        return Err(format!(
            "it is labelled sensitive ({}), which the grant does not include",
            l.label
        ));
    }
    Ok(())
}

/// The sources other than `own` that hold the fact item `id` is a copy of, by name.
pub fn other_sources(conn: &Connection, id: i64, own: &str) -> Result<Vec<String>> {
    Ok(conn
        .prepare_cached(
            "SELECT DISTINCT s.name FROM resources i
             JOIN resources m ON m.group_id = i.group_id AND m.id <> i.id
             JOIN sources s ON s.id = m.source_id
             WHERE i.id = ?1 AND i.group_id IS NOT NULL ORDER BY s.name",
        )?
        .query_map([id], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .filter(|n| n != own)
        .collect())
}
