//! Shared resources the record refers to: after a run, the Practitioners,
//! Organizations, Locations and Medications that the run's resources point at (noted
//! page by page, in the checkpoint) and that the vault does not hold are fetched, so that a
//! `medicationReference` resolves for the timeline, search, summaries and share links.
//! Searched by `_id` in batches where the server allows it, read one by one where it
//! does not. What the source does not have is remembered and asked for again only
//! after a week.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rusqlite::{params, TransactionBehavior};
use serde_json::Value;

use super::checkpoint::Checkpoint;
use super::discover::Capabilities;
use super::login::Authorizer;
use super::page::read_page;
use super::pull::{get, refused, SHARED};
use super::sources::Source;
use super::Counters;
use crate::error::Result;
use crate::net::http::{enc, Http};
use crate::profile::db;
use crate::profile::Profile;
use crate::record::EnteredBy;
use crate::store::{PutOutcome, Writer};
use crate::time::now_unix;

/// Ids asked for in one `_id` search.
const BATCH: usize = 50;
/// The most references fetched in one run; the rest wait for the next.
const MOST: usize = 1000;
/// How long a reference the source did not have is left before asking again.
const RETRY_AFTER_S: i64 = 7 * 24 * 3600;

/// `Type/id` of a reference to a shared resource: relative, or absolute with any
/// base, with or without `/_history/n`.
fn shared_target(reference: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = reference.split('/').collect();
    let at = parts.iter().rposition(|p| SHARED.contains(p))?;
    let id = parts.get(at + 1)?;
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    ok.then(|| (parts[at].to_string(), id.to_string()))
}

/// Note the shared resources `resource` refers to, up to [`MOST`] in one run.
pub(crate) fn collect(resource: &Value, into: &mut BTreeSet<String>) {
    match resource {
        Value::Object(o) => {
            for (k, v) in o {
                match (k.as_str(), v) {
                    ("reference", Value::String(r)) => {
                        if into.len() < MOST {
                            if let Some((t, id)) = shared_target(r) {
                                into.insert(format!("{t}/{id}"));
                            }
                        }
                    }
                    _ => collect(v, into),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect(v, into)),
        _ => {}
    }
}

/// What to fetch: by type, the ids of `refs` that are neither held nor recently
/// found missing.
fn wanted(
    profile: &Profile,
    source_id: i64,
    refs: &BTreeSet<String>,
) -> Result<BTreeMap<String, Vec<String>>> {
    profile.vault().read(|c| {
        let mut held = c.prepare_cached(
            "SELECT 1 FROM resources WHERE source_id = ?1 AND identity = ?2
             UNION ALL SELECT 1 FROM sync_unresolved WHERE source_id = ?1 AND ref = ?2
               AND tried_at > ?3",
        )?;
        let recent = now_unix() - RETRY_AFTER_S;
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for key in refs {
            let Some((t, id)) = key.split_once('/') else {
                continue;
            };
            if !held.exists(params![source_id, key, recent])? {
                out.entry(t.to_string()).or_default().push(id.to_string());
            }
        }
        Ok(out)
    })
}

/// Fetch the shared resources the run's resources refer to.
pub(crate) async fn fetch(
    profile: &Arc<Profile>,
    http: &Http,
    auth: &mut Authorizer,
    source: &Source,
    cp: &Checkpoint,
    learned: &mut Capabilities,
    counters: &Counters,
) -> Result<()> {
    let (sid, refs) = (source.id, cp.refs.clone());
    let wanted = db(profile, move |p| wanted(p, sid, &refs)).await?;
    let base = &source.info.base_url;
    for (rtype, ids) in wanted {
        let mut found: Vec<(String, String)> = Vec::new();
        for batch in ids.chunks(BATCH) {
            if !learned.no_id_search {
                let url = format!(
                    "{base}/{rtype}?_id={}&_count={}",
                    enc(&batch.join(",")),
                    batch.len()
                );
                let resp = get(http, auth, &url).await?;
                if resp.status == 200 {
                    let page = read_page(&resp.body, base)?;
                    found.extend(page.entries.into_iter().map(|e| (e.url, e.raw)));
                    continue;
                }
                if !matches!(resp.status, 400 | 404 | 405 | 501) {
                    return Err(refused(resp.status));
                }
                tracing::info!(
                    status = resp.status,
                    "no _id search here; reading one by one"
                );
                learned.no_id_search = true;
                let caps = learned.clone();
                db(profile, move |p| {
                    super::sources::save_learned(p, sid, &caps)
                })
                .await?;
            }
            for id in batch {
                let resp = get(http, auth, &format!("{base}/{rtype}/{}", enc(id))).await?;
                match resp.status {
                    200 => {
                        let page = read_page(&resp.body, base)?;
                        found.extend(page.entries.into_iter().map(|e| (e.url, e.raw)));
                    }
                    404 | 410 => {}
                    s => return Err(refused(s)),
                }
            }
        }
        let n = found.len() as u64;
        let (run, t2) = (cp.full.then_some(cp.run), rtype.clone());
        let asked: Vec<String> = ids.clone();
        let changed = db(profile, move |p| {
            p.vault().write(|c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let now = now_unix();
                let mut w = Writer::new(&tx, sid, None, EnteredBy::Provider, now)
                    .for_sync(run)
                    .by_logical_id();
                let mut got = BTreeSet::new();
                let mut changed = 0u64;
                for (url, raw) in &found {
                    let Ok(value) = serde_json::from_str::<Value>(raw) else {
                        continue;
                    };
                    // Only what was asked for: a search that ignores `_id` sends more.
                    let id = value["id"].as_str().unwrap_or_default().to_string();
                    if value["resourceType"] != t2.as_str() || !asked.contains(&id) {
                        continue;
                    }
                    match w.put(raw, &value, Some(url)) {
                        Ok(PutOutcome::Inserted(_) | PutOutcome::Updated(_)) => changed += 1,
                        Ok(PutOutcome::Unchanged(_)) => {}
                        Err(crate::error::Error::InvalidInput { reason }) => {
                            tracing::warn!(%reason, "skipped a resource the provider sent");
                        }
                        Err(e) => return Err(e),
                    }
                    got.insert(id);
                }
                for id in asked.iter().filter(|i| !got.contains(*i)) {
                    tx.execute(
                        "INSERT INTO sync_unresolved (source_id, ref, tried_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (source_id, ref) DO UPDATE SET tried_at = excluded.tried_at",
                        params![sid, format!("{t2}/{id}"), now],
                    )?;
                }
                tx.commit()?;
                Ok(changed)
            })
        })
        .await?;
        counters.fetched.fetch_add(n, Ordering::Relaxed);
        counters.changed.fetch_add(changed, Ordering::Relaxed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{collect, shared_target};
    use std::collections::BTreeSet;

    #[test]
    fn references_are_collected_at_any_depth_once_each() {
        let r = serde_json::json!({"resourceType":"MedicationRequest",
            "medicationReference":{"reference":"Medication/m1"},
            "requester":{"reference":"https://gp.example/fhir/Practitioner/d1"},
            "subject":{"reference":"Patient/p"},
            "dosageInstruction":[{"additionalInstruction":[{"reference":"Medication/m1"}]}]});
        let mut into = BTreeSet::new();
        collect(&r, &mut into);
        let want: BTreeSet<String> = ["Medication/m1", "Practitioner/d1"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(into, want);
    }

    #[test]
    fn references_to_shared_resources_are_recognised_in_every_spelling() {
        let want = Some(("Medication".to_string(), "m1".to_string()));
        assert_eq!(shared_target("Medication/m1"), want);
        assert_eq!(shared_target("https://gp.example/fhir/Medication/m1"), want);
        assert_eq!(shared_target("Medication/m1/_history/3"), want);
        assert_eq!(shared_target("Patient/p"), None);
        assert_eq!(shared_target("urn:uuid:1234"), None);
        assert_eq!(shared_target("Organization/"), None);
        assert_eq!(shared_target("Organization/a b"), None);
    }
}
