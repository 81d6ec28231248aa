//! Reading the record: the timeline, search, one resource, and statistics.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::record::{summary, Category, Code, EnteredBy, Label};

/// Default and largest page sizes.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page a caller may ask for.
pub const MAX_LIMIT: u32 = 500;

/// One line of the timeline or of search results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    /// The item id, for `show`.
    pub id: i64,
    /// The FHIR resource type.
    pub resource_type: String,
    /// The patient-facing category.
    pub category: Category,
    /// The clinically relevant date as written, if any.
    pub date: Option<String>,
    /// The one-line display.
    pub display: String,
    /// The source's name (a file name, a provider, or `self`).
    pub source: String,
    /// Sensitivity labels (HL7 v3 codes).
    pub sensitivity: Vec<String>,
    /// Who entered it.
    pub entered_by: EnteredBy,
    /// Other sources that hold the same fact (see `record::sameness`), grouped
    /// under this item rather than listed twice.
    pub also_from: Vec<String>,
    /// Whether the provider it came from no longer holds it. It is kept, and shown
    /// as removed at the source.
    pub gone_at_source: bool,
}

const ITEM_COLUMNS: &str = "r.id, r.rtype, r.category, r.date, r.display, s.name, r.sensitivity, \
     r.entered_by, r.date_sort, r.group_id, r.gone_at";

fn item_from_row(row: &Row<'_>) -> rusqlite::Result<(Item, i64)> {
    let category: String = row.get(2)?;
    let labels: String = row.get(6)?;
    let entered: String = row.get(7)?;
    let conv = |e: Error| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    };
    Ok((
        Item {
            id: row.get(0)?,
            resource_type: row.get(1)?,
            category: Category::parse(&category).map_err(conv)?,
            date: row.get(3)?,
            display: row.get(4)?,
            source: row.get(5)?,
            sensitivity: labels.split_whitespace().map(str::to_string).collect(),
            entered_by: EnteredBy::parse(&entered).map_err(conv)?,
            also_from: Vec::new(),
            gone_at_source: row.get::<_, Option<i64>>(10)?.is_some(),
        },
        row.get(8)?,
    ))
}

/// Fill `also_from` for the items that belong to a group, in one query.
fn fill_groups(conn: &Connection, items: &mut [Item]) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let marks = vec!["?"; items.len()].join(",");
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT i.id, s.name FROM resources i
         JOIN resources r ON r.group_id = i.group_id AND r.id != i.id
         JOIN sources s ON s.id = r.source_id
         WHERE i.id IN ({marks}) AND i.group_id IS NOT NULL"
    ))?;
    let pairs: Vec<(i64, String)> = stmt
        .query_map(
            rusqlite::params_from_iter(items.iter().map(|i| i.id)),
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .collect::<rusqlite::Result<_>>()?;
    for (id, name) in pairs {
        if let Some(item) = items.iter_mut().find(|i| i.id == id) {
            if name != item.source && !item.also_from.contains(&name) {
                item.also_from.push(name);
            }
        }
    }
    // In a record shared with this profile, the other sources the sender named.
    let mut named = conn.prepare_cached(
        "SELECT also FROM shared_items WHERE resource_id = ?1 AND also IS NOT NULL",
    )?;
    for item in items.iter_mut() {
        let lists: Vec<String> = named
            .query_map([item.id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for list in lists {
            for name in serde_json::from_str::<Vec<String>>(&list).unwrap_or_default() {
                if name != item.source && !item.also_from.contains(&name) {
                    item.also_from.push(name);
                }
            }
        }
        item.also_from.sort();
    }
    Ok(())
}

/// The items with ids `ids`, newest first (every member, not only group heads).
pub fn items(conn: &Connection, ids: &[i64]) -> Result<Vec<Item>> {
    let list = serde_json::to_string(ids)?;
    let mut stmt = conn.prepare(&format!(
        "SELECT {ITEM_COLUMNS} FROM resources r JOIN sources s ON s.id = r.source_id
         WHERE r.id IN (SELECT value FROM json_each(?1))
         ORDER BY r.date_sort DESC, r.id DESC"
    ))?;
    let mut items = stmt
        .query_map([list], |r| item_from_row(r).map(|(i, _)| i))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    fill_groups(conn, &mut items)?;
    Ok(items)
}

/// Appointments still to come (starting at or after `now`, Unix seconds), soonest
/// first, one per fact; cancelled, missed and mistaken ones left out.
pub fn upcoming_appointments(conn: &Connection, now: i64) -> Result<Vec<Item>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {ITEM_COLUMNS} FROM resources r JOIN sources s ON s.id = r.source_id
         WHERE r.rtype = 'Appointment' AND r.date_sort >= ?1
           AND coalesce(json_extract(r.json, '$.status'), '')
               NOT IN ('cancelled', 'noshow', 'entered-in-error', 'fulfilled')
           AND r.id = (SELECT min(m.id) FROM resources m
                       WHERE coalesce(m.group_id, m.id) = coalesce(r.group_id, r.id))
         ORDER BY r.date_sort ASC, r.id ASC LIMIT 500"
    ))?;
    let mut items = stmt
        .query_map([now], |r| item_from_row(r).map(|(i, _)| i))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    fill_groups(conn, &mut items)?;
    Ok(items)
}

/// Filters and paging for the timeline.
#[derive(Debug, Clone, Default)]
pub struct TimelineQuery {
    /// Only these categories; none listed means every category but
    /// [`Category::Administrative`] (claims and other paperwork), which shows only
    /// when listed.
    pub categories: Vec<Category>,
    /// Only items dated on or after this FHIR date (`2019`, `2019-05-01`, …).
    pub since: Option<String>,
    /// Only items dated before this FHIR date.
    pub until: Option<String>,
    /// Only items from this source (its name).
    pub source: Option<String>,
    /// Page size; default 50, at most 500.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of items, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    /// The items.
    pub items: Vec<Item>,
    /// Pass this back for the next page; `None` at the end.
    pub next_cursor: Option<String>,
}

fn encode_cursor(date_sort: i64, id: i64) -> String {
    B64.encode(format!("{date_sort}:{id}"))
}

fn decode_cursor(cursor: &str) -> Result<(i64, i64)> {
    let bad = || Error::invalid("the cursor is not one this vault gave out");
    let text = String::from_utf8(B64.decode(cursor).map_err(|_| bad())?).map_err(|_| bad())?;
    let (d, i) = text.split_once(':').ok_or_else(bad)?;
    Ok((d.parse().map_err(|_| bad())?, i.parse().map_err(|_| bad())?))
}

fn parse_date_filter(text: &str, what: &str) -> Result<i64> {
    summary::parse_fhir_date(text)
        .ok_or_else(|| Error::invalid(format!("{what} '{text}' is not a date like 2024-01-31")))
}

fn page_limit(limit: Option<u32>) -> Result<u32> {
    match limit.unwrap_or(DEFAULT_LIMIT) {
        0 => Err(Error::invalid("the limit must be at least 1")),
        n if n > MAX_LIMIT => Err(Error::invalid(format!(
            "the limit must be at most {MAX_LIMIT}"
        ))),
        n => Ok(n),
    }
}

/// The timeline: newest first, filtered, one page at a time.
pub fn timeline(conn: &Connection, q: &TimelineQuery) -> Result<Page> {
    let limit = page_limit(q.limit)?;
    let mut sql = format!(
        "SELECT {ITEM_COLUMNS} FROM resources r JOIN sources s ON s.id = r.source_id WHERE 1=1"
    );
    let mut args: Vec<SqlValue> = Vec::new();
    if q.categories.is_empty() {
        sql.push_str(" AND r.category <> 'administrative'");
    } else {
        sql.push_str(&format!(
            " AND r.category IN ({})",
            vec!["?"; q.categories.len()].join(",")
        ));
        args.extend(
            q.categories
                .iter()
                .map(|c| SqlValue::Text(c.as_str().into())),
        );
    }
    if let Some(since) = &q.since {
        sql.push_str(" AND r.date_sort >= ?");
        args.push(SqlValue::Integer(parse_date_filter(since, "since")?));
    }
    if let Some(until) = &q.until {
        sql.push_str(" AND r.date_sort < ? AND r.date_sort <> ?");
        args.push(SqlValue::Integer(parse_date_filter(until, "until")?));
        args.push(SqlValue::Integer(summary::UNDATED));
    }
    if let Some(source) = &q.source {
        sql.push_str(" AND s.name = ?");
        args.push(SqlValue::Text(source.clone()));
    } else {
        // One line per fact: a group shows as its first member.
        sql.push_str(" AND (r.group_id IS NULL OR r.group_id = r.id)");
    }
    if let Some(cursor) = &q.cursor {
        let (d, i) = decode_cursor(cursor)?;
        sql.push_str(" AND (r.date_sort < ? OR (r.date_sort = ? AND r.id < ?))");
        args.extend([
            SqlValue::Integer(d),
            SqlValue::Integer(d),
            SqlValue::Integer(i),
        ]);
    }
    sql.push_str(" ORDER BY r.date_sort DESC, r.id DESC LIMIT ?");
    args.push(SqlValue::Integer(i64::from(limit) + 1));
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows: Vec<(Item, i64)> = stmt
        .query_map(rusqlite::params_from_iter(args), item_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = match (more, rows.last()) {
        (true, Some((item, date_sort))) => Some(encode_cursor(*date_sort, item.id)),
        _ => None,
    };
    let mut items: Vec<Item> = rows.into_iter().map(|(i, _)| i).collect();
    fill_groups(conn, &mut items)?;
    Ok(Page { items, next_cursor })
}

/// Turn what a person typed into an FTS5 query: every word must match, each as a
/// prefix, and nothing typed is read as FTS5 syntax.
fn fts_query(text: &str) -> Option<String> {
    let terms: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{}\"*", w.replace('"', "\"\"")))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// Full-text search over display lines and code displays: the best matches (at most
/// `limit`), shown newest first as the timeline is. A search for a concept a person
/// follows over time (`hba1c`, `a1c`, `bp`, `blood pressure`, `egfr`… see
/// [`crate::trend::CONCEPTS`]) gives its results instead, newest first, whatever words
/// the records use for them.
pub fn search(conn: &Connection, text: &str, limit: Option<u32>) -> Result<Vec<Item>> {
    let limit = page_limit(limit)?;
    if crate::trend::concept(text).is_some() {
        let series = crate::trend::newest(conn, text, limit as usize)?;
        let ids: Vec<i64> = series.points.iter().map(|p| p.item_id).collect();
        return items(conn, &ids);
    }
    let query =
        fts_query(text).ok_or_else(|| Error::invalid("give at least one word to search for"))?;
    // One row per fact, as the timeline: a match in any copy shows the fact once, as
    // its first copy (the timeline's), at the rank of its best-matching copy. FTS5
    // serves the best matches first; a window of them is grouped, and widened only
    // when copies of the same facts crowd it.
    let mut candidates = conn.prepare_cached(
        "SELECT coalesce(r.group_id, r.id) FROM resources_fts f
         JOIN resources r ON r.id = f.rowid
         WHERE resources_fts MATCH ?1 ORDER BY f.rank LIMIT ?2",
    )?;
    let want = limit as usize;
    let mut window = want * 2 + 8;
    let facts: Vec<i64> = loop {
        let got: Vec<i64> = candidates
            .query_map(params![query, window as i64], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut facts: Vec<i64> = Vec::with_capacity(want);
        for f in &got {
            if !facts.contains(f) {
                facts.push(*f);
                if facts.len() == want {
                    break;
                }
            }
        }
        if facts.len() == want || got.len() < window {
            break facts;
        }
        window *= 4;
    };
    let mut items = Vec::with_capacity(facts.len());
    let mut one = conn.prepare_cached(&format!(
        "SELECT {ITEM_COLUMNS} FROM resources r JOIN sources s ON s.id = r.source_id
         WHERE r.id = ?1"
    ))?;
    let mut dated = Vec::with_capacity(facts.len());
    for f in facts {
        if let Some(found) = one.query_row([f], item_from_row).optional()? {
            dated.push(found);
        }
    }
    // The best matches, newest first (undated last), as the timeline orders them.
    dated.sort_by(|(a, sa), (b, sb)| sb.cmp(sa).then(b.id.cmp(&a.id)));
    items.extend(dated.into_iter().map(|(i, _)| i));
    fill_groups(conn, &mut items)?;
    Ok(items)
}

/// A reference inside a resource and what it points to in the vault.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reference {
    /// Where in the resource, e.g. `subject` or `performer[0]`.
    pub path: String,
    /// The reference as written.
    pub reference: String,
    /// The item it resolves to, if the vault holds it.
    pub target: Option<i64>,
}

/// One resource in full.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detail {
    /// The timeline line for it.
    pub item: Item,
    /// The `fullUrl` it arrived with, if any.
    pub full_url: Option<String>,
    /// Its codes.
    pub codes: Vec<Code>,
    /// Its sensitivity labels and the rules that set them.
    pub labels: Vec<Label>,
    /// Its references, resolved within the vault.
    pub references: Vec<Reference>,
    /// The resource exactly as received (JSON text), or for one converted from an
    /// earlier FHIR release, its R4 view.
    pub json: String,
    /// For a resource converted from FHIR STU3, the text it arrived in (minified).
    pub original: Option<String>,
}

fn collect_references(v: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("reference") {
                out.push((path.to_string(), r.clone()));
            }
            for (k, child) in map {
                if k == "contained" {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                collect_references(child, &p, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                collect_references(child, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Resolve `reference` as FHIR does inside a Bundle: `urn:` and absolute URLs by
/// fullUrl; relative `Type/id` against the entry's own RESTful base when it has one.
/// Failing that, an absolute or base-less reference falls back to its type and id,
/// preferring the same source.
fn resolve(
    conn: &Connection,
    source_id: i64,
    own_full_url: Option<&str>,
    reference: &str,
) -> Result<Option<i64>> {
    if reference.starts_with('#') {
        return Ok(None);
    }
    let absolute = reference.starts_with("urn:") || reference.contains("://");
    let base = own_full_url.and_then(restful_base);
    let keys = match (absolute, base) {
        (true, _) => vec![reference.to_string()],
        (false, Some(base)) => vec![format!("{base}{reference}")],
        (false, None) => vec![reference.to_string()],
    };
    let mut by_identity = conn.prepare_cached(
        "SELECT id FROM resources WHERE source_id = ?1 AND (identity = ?2 OR (identity > (?2 || '/_history/') AND identity < (?2 || '/_history0')))
         ORDER BY id DESC LIMIT 1",
    )?;
    for key in &keys {
        if let Some(id) = by_identity
            .query_row(params![source_id, key], |r| r.get(0))
            .optional()?
        {
            return Ok(Some(id));
        }
    }
    // A relative reference from a resource with a RESTful fullUrl means that server's
    // resource only; otherwise fall back to Type/id (optionally /_history/v).
    if !absolute && base.is_some() {
        return Ok(None);
    }
    let parts: Vec<&str> = reference.trim_end_matches('/').split('/').collect();
    let (rtype, rid) = match parts.as_slice() {
        [.., t, i, "_history", _] | [.., t, i] => (*t, *i),
        _ => return Ok(None),
    };
    let found = conn
        .prepare_cached(
            "SELECT id FROM resources WHERE rtype = ?1 AND rid = ?2
             ORDER BY (source_id = ?3) DESC, id DESC LIMIT 1",
        )?
        .query_row(params![rtype, rid, source_id], |r| r.get(0))
        .optional()?;
    Ok(found)
}

/// `http://x/fhir/` from `http://x/fhir/Observation/1` (or with `/_history/v`).
fn restful_base(full_url: &str) -> Option<&str> {
    if !full_url.contains("://") {
        return None;
    }
    let trimmed = match full_url.find("/_history/") {
        Some(i) => &full_url[..i],
        None => full_url,
    };
    let without_id = &trimmed[..trimmed.rfind('/')?];
    Some(&trimmed[..=without_id.rfind('/')?])
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|e| Error::internal(format!("stored JSON does not parse: {e}")))
}

/// One resource in full, by item id.
pub fn show(conn: &Connection, id: i64) -> Result<Detail> {
    let row = conn
        .query_row(
            &format!(
                "SELECT {ITEM_COLUMNS}, r.full_url, r.codes, r.label_rules, r.json, r.source_id,
                        r.original
                 FROM resources r JOIN sources s ON s.id = r.source_id WHERE r.id = ?1"
            ),
            [id],
            |r| {
                Ok((
                    (
                        item_from_row(r)?.0,
                        r.get::<_, Option<String>>(11)?,
                        r.get::<_, String>(12)?,
                        r.get::<_, String>(13)?,
                        r.get::<_, String>(14)?,
                        r.get::<_, i64>(15)?,
                    ),
                    r.get::<_, Option<String>>(16)?,
                ))
            },
        )
        .optional()?
        .ok_or_else(|| Error::not_found(format!("item {id}")))?;
    let ((mut item, full_url, codes, rules, json, source_id), original) = row;
    fill_groups(conn, std::slice::from_mut(&mut item))?;
    let value: Value = parse_json(&json)?;
    let mut raw_refs = Vec::new();
    collect_references(&value, "", &mut raw_refs);
    let mut references = Vec::with_capacity(raw_refs.len());
    for (path, reference) in raw_refs {
        let target = resolve(conn, source_id, full_url.as_deref(), &reference)?;
        references.push(Reference {
            path,
            reference,
            target,
        });
    }
    Ok(Detail {
        item,
        full_url,
        codes: parse_json(&codes)?,
        labels: parse_json(&rules)?,
        references,
        json,
        original,
    })
}

/// Item ids of resources with this FHIR type and id (`Patient/123`).
pub fn find_by_type_id(conn: &Connection, rtype: &str, rid: &str) -> Result<Vec<i64>> {
    let mut stmt =
        conn.prepare_cached("SELECT id FROM resources WHERE rtype = ?1 AND rid = ?2 ORDER BY id")?;
    let ids = stmt
        .query_map(params![rtype, rid], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

/// Counts over the whole record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Resources held.
    pub resources: u64,
    /// Resources per FHIR type.
    pub by_type: BTreeMap<String, u64>,
    /// Resources per category id.
    pub by_category: BTreeMap<String, u64>,
    /// Resources carrying at least one sensitivity label.
    pub sensitive: u64,
    /// Sources (files, providers, the person).
    pub sources: u64,
}

/// Counts over the whole record.
pub fn stats(conn: &Connection) -> Result<Stats> {
    let group = |col: &str| -> Result<BTreeMap<String, u64>> {
        let mut stmt = conn.prepare(&format!(
            "SELECT {col}, count(*) FROM resources GROUP BY {col}"
        ))?;
        let map = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(map)
    };
    let count =
        |sql: &str| -> Result<u64> { Ok(conn.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64) };
    let by_type = group("rtype")?;
    Ok(Stats {
        resources: by_type.values().sum(),
        by_category: group("category")?,
        by_type,
        sensitive: count("SELECT count(*) FROM resources WHERE sensitivity <> ''")?,
        sources: count("SELECT count(*) FROM sources")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts_query_quotes_every_word() {
        assert_eq!(
            fts_query("blood  pressure").unwrap(),
            "\"blood\"* \"pressure\"*"
        );
        assert_eq!(
            fts_query("NEAR(a\" OR b)").unwrap(),
            "\"NEAR\"* \"a\"* \"OR\"* \"b\"*"
        );
        assert!(fts_query("  -- ").is_none());
    }

    #[test]
    fn cursor_round_trip_and_garbage() {
        let c = encode_cursor(i64::MIN, 7);
        assert_eq!(decode_cursor(&c).unwrap(), (i64::MIN, 7));
        assert!(decode_cursor("not-a-cursor").is_err());
    }

    #[test]
    fn restful_base_of_full_urls() {
        assert_eq!(
            restful_base("http://x/fhir/Observation/1"),
            Some("http://x/fhir/")
        );
        assert_eq!(
            restful_base("http://x/fhir/Patient/45/_history/2"),
            Some("http://x/fhir/")
        );
        assert_eq!(restful_base("urn:uuid:abc"), None);
    }
}
