//! Writing resources into the vault: the one place that turns a FHIR resource into a
//! row, so imports, readings, sync and received records all index the same way.

use ring::digest::{digest, SHA256};
use rusqlite::{params, OptionalExtension, Transaction};
use serde_json::Value;

use crate::error::Result;
use crate::record::{self, sameness, sensitivity, Analysis, EnteredBy};

/// What writing one resource did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// A new resource.
    Inserted(i64),
    /// A resource already held under the same identity, now with new content.
    Updated(i64),
    /// The same resource, byte for byte: nothing written.
    Unchanged(i64),
}

impl PutOutcome {
    /// The row id of the resource.
    pub fn item_id(self) -> i64 {
        match self {
            PutOutcome::Inserted(id) | PutOutcome::Updated(id) | PutOutcome::Unchanged(id) => id,
        }
    }
}

/// The kind of a source of resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A file the person imported.
    File,
    /// A care provider's FHIR endpoint.
    Provider,
    /// The person's own entries.
    Patient,
}

impl SourceKind {
    fn as_str(self) -> &'static str {
        match self {
            SourceKind::File => "file",
            SourceKind::Provider => "provider",
            SourceKind::Patient => "self",
        }
    }
}

/// `Patient/{id}`, the reference to the profile's own Patient, when the item
/// `self_patient` is one with an id.
pub fn self_patient_reference(
    tx: &Transaction<'_>,
    self_patient: Option<i64>,
) -> Result<Option<String>> {
    let Some(item) = self_patient else {
        return Ok(None);
    };
    Ok(tx
        .query_row(
            "SELECT rid FROM resources WHERE id = ?1 AND rtype = 'Patient'",
            [item],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()?
        .flatten()
        .map(|rid| format!("Patient/{rid}")))
}

/// Store `resource` as one the person entered, in their own source (`self`), under
/// its first identifier's value as its full URL. Returns its item id.
pub fn put_own(tx: &Transaction<'_>, resource: &Value, now: i64) -> Result<i64> {
    let text = serde_json::to_string(resource)?;
    let full_url = resource["identifier"][0]["value"].as_str();
    let source_id = ensure_source(tx, SourceKind::Patient, "self", now)?;
    let outcome =
        Writer::new(tx, source_id, None, EnteredBy::Patient, now).put(&text, resource, full_url)?;
    Ok(outcome.item_id())
}

/// The id of a source, created on first use.
pub fn ensure_source(tx: &Transaction<'_>, kind: SourceKind, name: &str, now: i64) -> Result<i64> {
    tx.execute(
        "INSERT INTO sources (kind, name, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (kind, name) DO NOTHING",
        params![kind.as_str(), name, now],
    )?;
    Ok(tx.query_row(
        "SELECT id FROM sources WHERE kind = ?1 AND name = ?2",
        params![kind.as_str(), name],
        |r| r.get(0),
    )?)
}

/// A resource made ready to store: everything [`Writer::put`] works out from the
/// resource alone, without the vault (its analysis, minified text, hash, search text
/// and sameness keys). An import makes these on one thread while another writes.
pub struct Prepared {
    analysis: Analysis,
    json: String,
    hash: [u8; 32],
    codes: String,
    rules: String,
    labels: String,
    fts_codes: String,
    keys: sameness::Keys,
    full_url: Option<String>,
    /// The text it arrived in, when it was converted from an earlier FHIR release.
    original: Option<String>,
}

impl Prepared {
    /// Make `resource` (parsed from `raw`, its exact text) ready to store under the
    /// entry's `full_url`. Invalid resources are refused with [`Error::InvalidInput`].
    pub fn new(raw: &str, resource: &Value, full_url: Option<&str>) -> Result<Self> {
        let analysis = record::analyse(resource)?;
        let json = record::minify(raw);
        let mut hash = [0u8; 32];
        hash.copy_from_slice(digest(&SHA256, json.as_bytes()).as_ref());
        Ok(Prepared {
            codes: serde_json::to_string(&analysis.codes)?,
            rules: serde_json::to_string(&analysis.labels)?,
            labels: sensitivity::label_column(&analysis.labels),
            fts_codes: record::search_codes(&analysis),
            keys: sameness::keys(resource, &analysis),
            full_url: full_url.map(str::to_string),
            original: None,
            analysis,
            json,
            hash,
        })
    }

    /// Convert `parsed`, an STU3 resource whose exact text is `raw`, to R4 and make
    /// the R4 view ready to store under `full_url` with the original kept beside it
    /// ([`Prepared::with_original`]). Returns the R4 view too. A type with no
    /// conversion, or content the converter refuses, is [`Error::InvalidInput`]
    /// saying why (`FHIR STU3: …`).
    pub fn from_stu3(raw: &str, parsed: &Value, full_url: Option<&str>) -> Result<(Self, Value)> {
        Self::from_stu3_with(raw, parsed, full_url, |_| {})
    }

    /// As [`Prepared::from_stu3`], with `fill` given the R4 view to complete from
    /// what came with it before it is prepared (a sync fills a medication
    /// reference's name from the Medication in the same answer). The original is
    /// kept unchanged.
    pub fn from_stu3_with(
        raw: &str,
        parsed: &Value,
        full_url: Option<&str>,
        fill: impl FnOnce(&mut Value),
    ) -> Result<(Self, Value)> {
        let mut converted =
            carry_stu3::to_r4(parsed).map_err(|e| crate::error::Error::InvalidInput {
                reason: format!("FHIR STU3: {e}"),
            })?;
        if !converted.notes.is_empty() {
            // The notes name elements, never values; the original text keeps them.
            tracing::debug!(
                notes = converted.notes.len(),
                "STU3 elements R4 cannot hold"
            );
        }
        fill(&mut converted.resource);
        let text = serde_json::to_string(&converted.resource)?;
        let prepared = Prepared::new(&text, &converted.resource, full_url)?.with_original(raw);
        Ok((prepared, converted.resource))
    }

    /// Keep `original`, the text the resource arrived in before it was converted to
    /// the R4 this was made from, beside it. Its hash then covers both texts, so a
    /// new original with the same R4 view is stored too.
    pub fn with_original(mut self, original: &str) -> Self {
        let original = record::minify(original);
        let mut both = ring::digest::Context::new(&SHA256);
        both.update(self.json.as_bytes());
        both.update(&[0]);
        both.update(original.as_bytes());
        self.hash.copy_from_slice(both.finish().as_ref());
        self.original = Some(original);
        self
    }
}

/// Search rows a batched writer holds back before writing them together.
const FTS_BATCH: usize = 2048;

/// One resource's search row.
const FTS_INSERT: &str = "INSERT INTO resources_fts (rowid, display, codes) VALUES (?1, ?2, ?3)";

/// Writes resources for one source inside one transaction. Writers of two sources are
/// not interleaved in one transaction: whether another source holds resources (without
/// which nothing can group) is asked once, at a writer's first insert.
pub struct Writer<'t, 'c> {
    tx: &'t Transaction<'c>,
    source_id: i64,
    import_id: Option<i64>,
    entered_by: EnteredBy,
    now: i64,
    keep_versions: bool,
    seen_run: Option<i64>,
    identity: Option<String>,
    by_id: bool,
    /// Search rows held back (`Some` once [`Writer::batched`]): rowid, display, codes.
    pending_fts: Option<Vec<(i64, String, String)>>,
    /// Whether a source other than this one holds resources, once asked.
    others: Option<bool>,
}

impl<'t, 'c> Writer<'t, 'c> {
    /// A writer into `source_id` within `tx`, for resources entered by `entered_by`.
    pub fn new(
        tx: &'t Transaction<'c>,
        source_id: i64,
        import_id: Option<i64>,
        entered_by: EnteredBy,
        now: i64,
    ) -> Self {
        Writer {
            tx,
            source_id,
            import_id,
            entered_by,
            now,
            keep_versions: true,
            seen_run: None,
            identity: None,
            by_id: false,
            pending_fts: None,
            others: None,
        }
    }

    /// Hold the search rows back and write them together, every few thousand resources
    /// and at [`Writer::finish`], which the caller must call before it commits: FTS5
    /// then merges one batch of terms at a time instead of flushing a segment for each
    /// resource. For bulk writes (an import) that read no search results meanwhile.
    pub fn batched(mut self) -> Self {
        self.pending_fts = Some(Vec::new());
        self
    }

    /// Write what a batched writer holds back. Nothing is held by other writers.
    pub fn finish(&mut self) -> Result<()> {
        let Some(pending) = self.pending_fts.as_mut() else {
            return Ok(());
        };
        let mut insert = self.tx.prepare_cached(FTS_INSERT)?;
        for (id, display, codes) in pending.drain(..) {
            insert.execute(params![id, display, codes])?;
        }
        Ok(())
    }

    /// Whether a source other than this writer's holds resources (asked once).
    fn others(&mut self) -> Result<bool> {
        if let Some(known) = self.others {
            return Ok(known);
        }
        // Two seeks on the (source_id, identity) index, however large the vault.
        let held: bool = self
            .tx
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM resources WHERE source_id < ?1)
                     OR EXISTS (SELECT 1 FROM resources WHERE source_id > ?1)",
            )?
            .query_row([self.source_id], |r| r.get(0))?;
        self.others = Some(held);
        Ok(held)
    }

    /// Write as a provider sync does: a new version replaces the old one (the provider
    /// holds the history), and with `seen_run`, every resource written or confirmed
    /// unchanged is marked as seen by that full run (deletion detection).
    pub fn for_sync(mut self, seen_run: Option<i64>) -> Self {
        self.keep_versions = false;
        self.seen_run = seen_run;
        self
    }

    /// Know each resource by its type and logical id, as a FHIR server does, and not
    /// by the fullUrl the server built for it, which changes with its base address.
    pub fn by_logical_id(mut self) -> Self {
        self.by_id = true;
        self
    }

    /// Store the next resource under `identity` as it is (one that another of the
    /// person's devices stored under it), in place of one derived from it.
    pub fn with_identity(mut self, identity: &str) -> Self {
        self.identity = Some(identity.to_string());
        self
    }

    /// Store `resource` (already parsed from `raw`, its exact text) under the entry's
    /// `full_url`. Invalid resources are refused with [`Error::InvalidInput`].
    pub fn put(
        &mut self,
        raw: &str,
        resource: &Value,
        full_url: Option<&str>,
    ) -> Result<PutOutcome> {
        self.put_prepared(Prepared::new(raw, resource, full_url)?)
    }

    /// Store a resource [`Prepared::new`] made ready, as [`Writer::put`] does.
    pub fn put_prepared(&mut self, p: Prepared) -> Result<PutOutcome> {
        let Prepared {
            analysis: a,
            json,
            hash,
            codes,
            rules,
            labels,
            fts_codes,
            keys,
            full_url,
            original,
        } = p;
        let full_url = full_url.as_deref();
        let identity = match &self.identity {
            Some(i) => i.clone(),
            None if self.by_id && a.id.is_some() => {
                format!(
                    "{}/{}",
                    a.resource_type,
                    a.id.as_deref().unwrap_or_default()
                )
            }
            None => identity(full_url, &a, &hash, self.keep_versions),
        };
        let existing: Option<(i64, Vec<u8>)> = self
            .tx
            .prepare_cached(
                "SELECT id, content_hash FROM resources WHERE source_id = ?1 AND identity = ?2",
            )?
            .query_row(params![self.source_id, identity], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        // An unchanged resource needs nothing more than its hash.
        if let Some((id, old)) = &existing {
            if old.as_slice() == hash.as_slice() {
                if let Some(run) = self.seen_run {
                    self.tx
                        .prepare_cached(
                            "UPDATE resources SET seen_run = ?2, gone_at = NULL WHERE id = ?1",
                        )?
                        .execute(params![id, run])?;
                }
                return Ok(PutOutcome::Unchanged(*id));
            }
        }
        let (date, date_sort) = match &a.date {
            Some((d, s)) => (Some(d.as_str()), *s),
            None => (None, record::summary::UNDATED),
        };
        let outcome = match existing {
            Some((id, _)) => {
                self.tx
                    .prepare_cached(
                        "UPDATE resources SET rtype=?2, rid=?3, full_url=?4, category=?5, date=?6,
                         date_sort=?7, display=?8, codes=?9, sensitivity=?10, label_rules=?11,
                         entered_by=?12, content_hash=?13, json=?14, import_id=?15, updated_at=?16,
                         seen_run=?17, gone_at=NULL, original=?18
                         WHERE id=?1",
                    )?
                    .execute(params![
                        id,
                        a.resource_type,
                        a.id,
                        full_url,
                        a.category.as_str(),
                        date,
                        date_sort,
                        a.display,
                        codes,
                        labels,
                        rules,
                        self.entered_by.as_str(),
                        hash.as_slice(),
                        json,
                        self.import_id,
                        self.now,
                        self.seen_run,
                        original
                    ])?;
                self.tx
                    .prepare_cached("DELETE FROM resources_fts WHERE rowid = ?1")?
                    .execute([id])?;
                if let Some(pending) = self.pending_fts.as_mut() {
                    pending.retain(|(rowid, _, _)| *rowid != id);
                }
                PutOutcome::Updated(id)
            }
            None => {
                self.tx
                    .prepare_cached(
                        "INSERT INTO resources (source_id, identity, rtype, rid, full_url, category,
                         date, date_sort, display, codes, sensitivity, label_rules, entered_by,
                         content_hash, json, import_id, updated_at, seen_run, original)
                         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19)",
                    )?
                    .execute(params![
                        self.source_id, identity, a.resource_type, a.id, full_url,
                        a.category.as_str(), date, date_sort, a.display, codes, labels, rules,
                        self.entered_by.as_str(), hash.as_slice(), json, self.import_id, self.now,
                        self.seen_run, original
                    ])?;
                PutOutcome::Inserted(self.tx.last_insert_rowid())
            }
        };
        let item = outcome.item_id();
        match self.pending_fts.as_mut() {
            Some(pending) => {
                pending.push((item, a.display, fts_codes));
                if pending.len() >= FTS_BATCH {
                    self.finish()?;
                }
            }
            None => {
                self.tx
                    .prepare_cached(FTS_INSERT)?
                    .execute(params![item, a.display, fts_codes])?;
            }
        }
        // Keys group only across sources: with no other source, there is nothing to
        // look up (the keys are still kept, for the sources to come).
        let lookups = matches!(outcome, PutOutcome::Inserted(_)) && self.others()?;
        group(self.tx, outcome, self.source_id, &keys, lookups)?;
        if let PutOutcome::Updated(id) = outcome {
            // Its own labels may have changed: its fact's copies follow.
            record::relabel::group_of(self.tx, id)?;
        }
        Ok(outcome)
    }
}

/// The identity a resource is kept under within its source: its `fullUrl`, else
/// `Type/id`, else a hash of its content; plus `/_history/<versionId>` when it has one,
/// so that the versions a Bundle lists side by side are all kept.
fn identity(full_url: Option<&str>, a: &Analysis, hash: &[u8], keep_versions: bool) -> String {
    let base = match (full_url.filter(|u| !u.is_empty()), &a.id) {
        (Some(url), _) => url.to_string(),
        (None, Some(id)) => format!("{}/{}", a.resource_type, id),
        (None, None) => return format!("sha256:{}", hex::encode(hash)),
    };
    match &a.version_id {
        Some(v) if keep_versions && !base.contains("/_history/") => format!("{base}/_history/{v}"),
        _ => base,
    }
}

/// More resources than this sharing one sameness key means the key names no single fact.
const KEY_USE_MAX: i64 = 32;

/// Record `keys` for the resource `outcome` wrote, and on insert (with `lookups`, when
/// another source holds resources) put it in the group of a resource from another
/// source that shares a key (identifiers first, then the equivalence key), unless that
/// group already holds one from this source: within a source, two resources are two
/// facts. An update keeps its group.
fn group(
    tx: &Transaction<'_>,
    outcome: PutOutcome,
    source_id: i64,
    keys: &sameness::Keys,
    lookups: bool,
) -> Result<()> {
    let id = outcome.item_id();
    if matches!(outcome, PutOutcome::Updated(_)) {
        tx.prepare_cached("DELETE FROM resource_keys WHERE resource_id = ?1")?
            .execute([id])?;
    }
    let all: Vec<&String> = keys
        .identifiers
        .iter()
        .chain(keys.equivalence.iter())
        .collect();
    for key in &all {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO resource_keys (key, resource_id) VALUES (?1, ?2)",
        )?
        .execute(params![key, id])?;
    }
    if !matches!(outcome, PutOutcome::Inserted(_)) || !lookups {
        return Ok(());
    }
    // A key that many resources share (a constant such as Synthea's claim-group
    // number) names no single fact: it groups nothing, and is not searched, so the
    // cost of grouping stays bounded however large the record.
    let mut common = tx.prepare_cached(
        "SELECT count(*) FROM (SELECT 1 FROM resource_keys WHERE key = ?1 LIMIT ?2)",
    )?;
    // An identifier several resources of one source share names no single fact either.
    let mut shared_in = tx.prepare_cached(
        "SELECT count(*) FROM resource_keys k JOIN resources r ON r.id = k.resource_id
         WHERE k.key = ?1 AND r.source_id = ?2 AND r.id != ?3",
    )?;
    let mut distinctive = |key: &str, source: i64, except: i64| -> Result<bool> {
        let n: i64 = shared_in.query_row(params![key, source, except], |r| r.get(0))?;
        Ok(n == 0)
    };
    let mut find = tx.prepare_cached(
        "SELECT r.id, r.group_id, r.source_id FROM resource_keys k JOIN resources r ON r.id = k.resource_id
         WHERE k.key = ?1 AND r.source_id != ?2
           AND NOT EXISTS (SELECT 1 FROM resources m
                           WHERE m.group_id = coalesce(r.group_id, r.id) AND m.source_id = ?2)
         ORDER BY r.id LIMIT 1",
    )?;
    for key in &all {
        let uses: i64 = common.query_row(params![key, KEY_USE_MAX + 1], |r| r.get(0))?;
        if uses > KEY_USE_MAX {
            continue;
        }
        let found: Option<(i64, Option<i64>, i64)> = find
            .query_row(params![key, source_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        if let Some((other, other_group, other_source)) = found {
            if key.starts_with("id|")
                && !(distinctive(key, source_id, id)? && distinctive(key, other_source, other)?)
            {
                continue;
            }
            let g = other_group.unwrap_or(other);
            tx.prepare_cached("UPDATE resources SET group_id = ?1 WHERE id IN (?1, ?2) AND (group_id IS NULL OR id = ?2)")?
                .execute(params![g, id])?;
            record::relabel::group_of(tx, id)?;
            break;
        }
    }
    Ok(())
}

/// Remember the first Patient stored as the one the profile is about, if none is set.
pub fn adopt_self_patient(tx: &Transaction<'_>) -> Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO meta (key, value)
         SELECT 'self_patient', CAST(id AS TEXT) FROM resources
         WHERE rtype = 'Patient' ORDER BY id LIMIT 1",
        [],
    )?;
    Ok(())
}

/// Delete the resource `id` and everything indexed for it. A group it headed passes
/// to its next member; a group left with one member dissolves.
pub fn remove(tx: &Transaction<'_>, id: i64) -> Result<()> {
    tx.prepare_cached("DELETE FROM resources_fts WHERE rowid = ?1")?
        .execute([id])?;
    tx.prepare_cached("DELETE FROM resource_keys WHERE resource_id = ?1")?
        .execute([id])?;
    tx.prepare_cached("DELETE FROM outbox WHERE resource_id = ?1")?
        .execute([id])?;
    let group: Option<i64> = tx
        .prepare_cached("SELECT group_id FROM resources WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?
        .flatten();
    tx.prepare_cached("DELETE FROM resources WHERE id = ?1")?
        .execute([id])?;
    if let Some(g) = group {
        let members: Vec<i64> = tx
            .prepare_cached("SELECT id FROM resources WHERE group_id = ?1 ORDER BY id")?
            .query_map([g], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        match members.as_slice() {
            [] => {}
            [only] => {
                tx.prepare_cached("UPDATE resources SET group_id = NULL WHERE id = ?1")?
                    .execute([only])?;
            }
            [head, ..] => {
                tx.prepare_cached("UPDATE resources SET group_id = ?1 WHERE group_id = ?2")?
                    .execute(params![head, g])?;
            }
        }
        // What the deleted copy lent the others goes with it.
        record::relabel::members(tx, &members)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vault() -> rusqlite::Connection {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::vault::migrations::migrate(&mut conn).unwrap();
        conn
    }

    fn condition(id: &str, text: &str) -> (String, Value) {
        let v = json!({
            "resourceType": "Condition",
            "id": id,
            "code": { "text": text },
            "onsetDateTime": "2020-01-02"
        });
        (v.to_string(), v)
    }

    fn matches(tx: &Transaction<'_>, word: &str) -> Vec<i64> {
        tx.prepare("SELECT rowid FROM resources_fts WHERE resources_fts MATCH ?1 ORDER BY rowid")
            .unwrap()
            .query_map([word], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn a_batched_writer_indexes_each_resource_once_with_its_last_content() {
        let mut conn = vault();
        let tx = conn.transaction().unwrap();
        let source = ensure_source(&tx, SourceKind::File, "f.json", 1).unwrap();
        let mut w = Writer::new(&tx, source, None, EnteredBy::Provider, 1).batched();
        let mut ids = Vec::new();
        for i in 0..(FTS_BATCH + 10) {
            let (raw, v) = condition(&format!("c{i}"), "asthma");
            ids.push(w.put(&raw, &v, None).unwrap().item_id());
        }
        // The same resource again, changed, while its first search row is still held;
        // and one whose search row was already written.
        let (raw, v) = condition(&format!("c{}", FTS_BATCH + 5), "eczema");
        let updated = w.put(&raw, &v, None).unwrap();
        assert!(matches!(updated, PutOutcome::Updated(_)));
        let (raw, v) = condition("c3", "eczema");
        let written = w.put(&raw, &v, None).unwrap();
        assert!(matches!(written, PutOutcome::Updated(_)));
        w.finish().unwrap();
        let asthma = matches(&tx, "asthma");
        let eczema = matches(&tx, "eczema");
        let total: i64 = tx
            .query_row("SELECT count(*) FROM resources_fts", [], |r| r.get(0))
            .unwrap();
        let rows: i64 = tx
            .query_row("SELECT count(*) FROM resources", [], |r| r.get(0))
            .unwrap();
        assert_eq!(total, rows, "one search row per resource");
        assert_eq!(asthma.len() + eczema.len(), rows as usize);
        assert_eq!(eczema, vec![written.item_id(), updated.item_id()]);
        assert_eq!(asthma.len(), FTS_BATCH + 8);
    }

    #[test]
    fn a_second_source_groups_with_the_first_and_a_lone_source_looks_nothing_up() {
        let mut conn = vault();
        let tx = conn.transaction().unwrap();
        let fact = json!({
            "resourceType": "Immunization",
            "id": "x",
            "identifier": [{ "system": "urn:gp", "value": "imm-1" }],
            "status": "completed",
            "vaccineCode": { "text": "Influenza" },
            "occurrenceDateTime": "2021-10-01"
        });
        let raw = fact.to_string();
        let first = ensure_source(&tx, SourceKind::File, "gp.json", 1).unwrap();
        let mut w = Writer::new(&tx, first, None, EnteredBy::Provider, 1).batched();
        let a = w.put(&raw, &fact, None).unwrap().item_id();
        assert_eq!(w.others, Some(false));
        w.finish().unwrap();
        let second = ensure_source(&tx, SourceKind::Provider, "hospital", 1).unwrap();
        let mut w = Writer::new(&tx, second, None, EnteredBy::Provider, 1);
        let b = w.put(&raw, &fact, None).unwrap().item_id();
        assert_eq!(w.others, Some(true));
        let group = |id: i64| -> Option<i64> {
            tx.query_row("SELECT group_id FROM resources WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap()
        };
        assert_eq!(group(a), Some(a));
        assert_eq!(group(b), Some(a));
    }
}
