//! Pulling a provider's record into the vault, one page per transaction, each with
//! the checkpoint that says where to resume.
//!
//! Three modes, chosen from discovery and corrected by trying:
//! - `everything`: `Patient/[id]/$everything`, with `_since` after the first run;
//! - `by-type`: the Patient, then a `patient=` search per type with `_lastUpdated=gt`;
//! - `plain`: the same searches without `_lastUpdated`, every run in full, keeping
//!   only what changed (content is compared by hash).
//!
//! Deletions: a *full* run (the first, any `--full`, one a week, and every plain run)
//! marks each resource it sees with the run's number. When it completes, whatever the
//! source held before but the run did not see is marked as gone at the source, and
//! kept. Incremental runs cannot see deletions, which FHIR searches do not report.

use std::sync::Arc;

use rusqlite::{params, OptionalExtension, Transaction};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::http::{enc, Http, Resp};
use super::login::Authorizer;
use super::sources::Source;
use super::state::{report, SyncState};
use super::{db, Counters, SyncOptions};
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::record::EnteredBy;
use crate::store::{self, PutOutcome, Writer};
use crate::time::now_unix;

/// Resources per page asked for.
const PAGE: usize = 100;
/// A full run at least this often (seconds), to notice deletions.
const FULL_EVERY_S: i64 = 7 * 24 * 3600;

/// Where a run is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Checkpoint {
    mode: String,
    run: i64,
    full: bool,
    since: Option<String>,
    type_index: i64,
    next_url: Option<String>,
    newest: Option<String>,
    fetched: i64,
}

fn load(tx: &rusqlite::Connection, source_id: i64) -> Result<Option<Checkpoint>> {
    Ok(tx
        .query_row(
            "SELECT mode, run, full, since, type_index, next_url, newest, fetched
             FROM sync_checkpoints WHERE source_id = ?1",
            [source_id],
            |r| {
                Ok(Checkpoint {
                    mode: r.get(0)?,
                    run: r.get(1)?,
                    full: r.get(2)?,
                    since: r.get(3)?,
                    type_index: r.get(4)?,
                    next_url: r.get(5)?,
                    newest: r.get(6)?,
                    fetched: r.get(7)?,
                })
            },
        )
        .optional()?)
}

fn save(tx: &Transaction<'_>, source_id: i64, c: &Checkpoint) -> Result<()> {
    tx.execute(
        "INSERT INTO sync_checkpoints (source_id, mode, run, full, since, type_index, next_url, newest, fetched)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (source_id) DO UPDATE SET mode = excluded.mode, run = excluded.run,
           full = excluded.full, since = excluded.since, type_index = excluded.type_index,
           next_url = excluded.next_url, newest = excluded.newest, fetched = excluded.fetched",
        params![source_id, c.mode, c.run, c.full, c.since, c.type_index, c.next_url, c.newest, c.fetched],
    )?;
    Ok(())
}

/// One millisecond after `instant`, for `_since` (which includes its bound).
fn just_after(instant: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    match time::OffsetDateTime::parse(instant, &Rfc3339) {
        Ok(t) => (t + time::Duration::milliseconds(1))
            .to_offset(time::UtcOffset::UTC)
            .format(&Rfc3339)
            .unwrap_or_else(|_| instant.to_string()),
        Err(_) => instant.to_string(),
    }
}

/// The later of two FHIR instants (by time, not by text).
fn later(a: Option<String>, b: &str) -> Option<String> {
    use time::format_description::well_known::Rfc3339;
    let parse = |s: &str| time::OffsetDateTime::parse(s, &Rfc3339).ok();
    match (a, parse(b)) {
        (None, Some(_)) => Some(b.to_string()),
        (Some(a), Some(tb)) => match parse(&a) {
            Some(ta) if ta >= tb => Some(a),
            _ => Some(b.to_string()),
        },
        (a, None) => a,
    }
}

/// The URL that starts the current step, or `None` when the run is through.
fn first_url(source: &Source, patient: &str, c: &Checkpoint, types: &[String]) -> Option<String> {
    let base = &source.info.base_url;
    match c.mode.as_str() {
        "everything" => {
            if c.type_index > 0 {
                return None;
            }
            let mut u = format!("{base}/Patient/{}/$everything?_count={PAGE}", enc(patient));
            if let Some(s) = &c.since {
                u.push_str(&format!("&_since={}", enc(&just_after(s))));
            }
            Some(u)
        }
        _ => {
            if c.type_index == 0 {
                return Some(format!("{base}/Patient/{}", enc(patient)));
            }
            let t = types.get(usize::try_from(c.type_index - 1).ok()?)?;
            let mut u = format!("{base}/{t}?patient={}&_count={PAGE}", enc(patient));
            if let (Some(s), "by-type") = (&c.since, c.mode.as_str()) {
                u.push_str(&format!("&_lastUpdated={}", enc(&format!("gt{s}"))));
            }
            Some(u)
        }
    }
}

#[derive(Deserialize)]
struct Page<'a> {
    #[serde(rename = "resourceType")]
    resource_type: String,
    /// Set when the answer is one resource rather than a Bundle.
    id: Option<String>,
    #[serde(default)]
    link: Vec<Link>,
    #[serde(default, borrow)]
    entry: Vec<Entry<'a>>,
}

#[derive(Deserialize)]
struct Link {
    relation: String,
    url: String,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(rename = "fullUrl")]
    full_url: Option<String>,
    #[serde(borrow)]
    resource: Option<&'a RawValue>,
    search: Option<Search>,
}

#[derive(Deserialize)]
struct Search {
    mode: Option<String>,
}

/// One page: its resources as (fullUrl, raw text), and its next link.
type PageRead = (Vec<(String, String)>, Option<String>);

/// Read one page of search results (or a single resource from a read).
fn read_page(body: &[u8], base: &str) -> Result<PageRead> {
    let bad = |what: &str| Error::Network {
        reason: format!("the provider sent {what}"),
        retry_after_s: None,
    };
    let text = std::str::from_utf8(body).map_err(|_| bad("a page that is not UTF-8"))?;
    let page: Page<'_> =
        serde_json::from_str(text).map_err(|_| bad("a page that is not FHIR JSON"))?;
    if page.resource_type != "Bundle" {
        // A read (the Patient) answers with the resource itself.
        let id = page.id.unwrap_or_default();
        let url = format!("{base}/{}/{id}", page.resource_type);
        return Ok((vec![(url, text.to_string())], None));
    }
    let next = page
        .link
        .into_iter()
        .find(|l| l.relation == "next")
        .map(|l| l.url);
    let entries = page
        .entry
        .into_iter()
        .filter(|e| e.search.as_ref().and_then(|s| s.mode.as_deref()) != Some("outcome"))
        .filter_map(|e| {
            let raw = e.resource?.get().to_string();
            let url = match e.full_url {
                Some(u) => u,
                None => {
                    let v: Value = serde_json::from_str(&raw).ok()?;
                    format!(
                        "{base}/{}/{}",
                        v["resourceType"].as_str()?,
                        v["id"].as_str()?
                    )
                }
            };
            Some((url, raw))
        })
        .collect();
    Ok((entries, next))
}

/// GET with the source's credentials; a `401` refreshes once.
async fn get(http: &Http, auth: &mut Authorizer, url: &str) -> Result<Resp> {
    for attempt in 0..2 {
        let header = auth.header(http).await?;
        let resp = http
            .send(|| {
                let mut r = http
                    .client()
                    .get(url)
                    .header("accept", "application/fhir+json");
                if let Some(h) = &header {
                    r = r.header("authorization", h.as_str());
                }
                r
            })
            .await?;
        if resp.status == 401 && attempt == 0 {
            auth.rejected(http).await?;
            continue;
        }
        return Ok(resp);
    }
    Err(Error::Auth {
        reason: "the provider refused a fresh token".into(),
    })
}

fn refused(status: u16) -> Error {
    match status {
        401 => Error::Auth {
            reason: "the provider refused the token; sign in again".into(),
        },
        403 => Error::Denied {
            reason: "the provider does not allow this record to be read with the granted scopes"
                .into(),
        },
        404 => Error::not_found("the patient at this provider"),
        s => Error::Network {
            reason: format!("the provider answered {s}"),
            retry_after_s: None,
        },
    }
}

/// Pull everything new from `source`.
pub(crate) async fn pull(
    profile: &Arc<Profile>,
    http: &Http,
    auth: &mut Authorizer,
    source: &Source,
    options: &SyncOptions,
    counters: &Counters,
) -> Result<()> {
    let patient = auth
        .patient_id()
        .or_else(|| source.info.patient_id.clone())
        .ok_or_else(|| {
            Error::invalid("the provider has not said which Patient this is; sign in again")
        })?;
    let caps = source.capabilities.clone().unwrap_or_default();
    let types = caps.types.clone();
    let sid = source.id;
    let (since, full_at) = (source.since.clone(), source.full_synced_at);
    let want_full = options.full;
    let mut cp = db(profile, move |p| {
        p.vault().write(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if let Some(cp) = load(&tx, sid)? {
                return Ok(cp);
            }
            let mode = if caps.everything {
                "everything"
            } else if caps.last_updated {
                "by-type"
            } else {
                "plain"
            };
            let full = want_full
                || since.is_none()
                || mode == "plain"
                || full_at.is_none_or(|t| now_unix() - t > FULL_EVERY_S);
            let cp = Checkpoint {
                mode: mode.into(),
                run: crate::time::now_unix_ms(),
                full,
                since: if full { None } else { since },
                type_index: 0,
                next_url: None,
                newest: None,
                fetched: 0,
            };
            save(&tx, sid, &cp)?;
            tx.commit()?;
            Ok(cp)
        })
    })
    .await?;
    let thin = source.capabilities.as_ref().is_some_and(|c| c.thin);
    let mut learned = source.capabilities.clone().unwrap_or_default();
    let mut retried_link = false;
    loop {
        let resuming = cp.next_url.is_some();
        let Some(url) = cp
            .next_url
            .clone()
            .or_else(|| first_url(source, &patient, &cp, &types))
        else {
            break;
        };
        let resp = get(http, auth, &url).await?;
        if resp.status != 200 {
            let mut next = cp.clone();
            if resuming && !retried_link && (400..500).contains(&resp.status) {
                // The server no longer honours its own next link: redo this step.
                tracing::info!(
                    status = resp.status,
                    "a next link expired; restarting the step"
                );
                retried_link = true;
                next.next_url = None;
            } else if !resuming
                && thin
                && cp.mode == "everything"
                && matches!(resp.status, 400 | 404 | 405 | 501)
            {
                tracing::info!("no $everything here; searching type by type");
                next.mode = "by-type".into();
                learned.everything = false;
            } else if !resuming
                && thin
                && cp.mode == "by-type"
                && cp.type_index > 0
                && cp.since.is_some()
                && resp.status == 400
            {
                tracing::info!("no _lastUpdated here; comparing whole searches");
                next.mode = "plain".into();
                next.full = true;
                next.since = None;
                learned.last_updated = false;
            } else if !resuming && thin && cp.type_index > 0 && matches!(resp.status, 400 | 404) {
                // A guessed type this server does not search: skip it.
                tracing::info!(
                    status = resp.status,
                    "a guessed type is not offered; skipping it"
                );
                next.type_index += 1;
            } else {
                return Err(refused(resp.status));
            }
            // What was learned by trying is kept, so the next sync starts there.
            let (n2, caps_json) = (next.clone(), serde_json::to_string(&learned).ok());
            db(profile, move |p| {
                p.vault().write(|c| {
                    let tx =
                        c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                    save(&tx, sid, &n2)?;
                    tx.execute(
                        "UPDATE provider_sources SET capabilities = coalesce(?2, capabilities)
                         WHERE source_id = ?1",
                        params![sid, caps_json],
                    )?;
                    tx.commit()?;
                    Ok(())
                })
            })
            .await?;
            cp = next;
            continue;
        }
        retried_link = false;
        let base = source.info.base_url.clone();
        let (entries, next_link) = read_page(&resp.body, &base)?;
        let mut next = cp.clone();
        next.fetched += entries.len() as i64;
        match next_link {
            Some(l) => next.next_url = Some(l),
            None => {
                next.next_url = None;
                next.type_index += 1;
            }
        }
        let n = entries.len() as u64;
        let (changed, newest) = db(profile, move |p| {
            p.vault().write(|c| {
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let run = next.full.then_some(next.run);
                let mut w =
                    Writer::new(&tx, sid, None, EnteredBy::Provider, now_unix()).for_sync(run);
                let mut changed = 0u64;
                for (url, raw) in &entries {
                    let value: Value = match serde_json::from_str(raw) {
                        Ok(v) => v,
                        Err(_) => continue,
                    };
                    if let Some(lu) = value["meta"]["lastUpdated"].as_str() {
                        next.newest = later(next.newest.take(), lu);
                    }
                    match w.put(raw, &value, Some(url)) {
                        Ok(PutOutcome::Inserted(_) | PutOutcome::Updated(_)) => changed += 1,
                        Ok(PutOutcome::Unchanged(_)) => {}
                        Err(Error::InvalidInput { reason }) => {
                            tracing::warn!(%reason, "skipped a resource the provider sent");
                        }
                        Err(e) => return Err(e),
                    }
                }
                store::adopt_self_patient(&tx)?;
                save(&tx, sid, &next)?;
                tx.commit()?;
                Ok((changed, next))
            })
        })
        .await?;
        cp = newest;
        counters
            .fetched
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        counters
            .changed
            .fetch_add(changed, std::sync::atomic::Ordering::Relaxed);
        report(&source.info, SyncState::Pull, options, counters);
    }
    // The run is through: mark what a full run did not see, move `since` on, and
    // drop the checkpoint, all at once.
    let done = cp.clone();
    let gone = db(profile, move |p| {
        p.vault().write(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let now = now_unix();
            let gone = if done.full {
                tx.execute(
                    "UPDATE resources SET gone_at = ?3 WHERE source_id = ?1 AND gone_at IS NULL
                       AND (seen_run IS NULL OR seen_run != ?2)",
                    params![sid, done.run, now],
                )?
            } else {
                0
            };
            tx.execute(
                "UPDATE provider_sources SET since = coalesce(?2, since), last_synced_at = ?3,
                   full_synced_at = CASE WHEN ?4 THEN ?3 ELSE full_synced_at END
                 WHERE source_id = ?1",
                params![sid, done.newest, now, done.full],
            )?;
            tx.execute("DELETE FROM sync_checkpoints WHERE source_id = ?1", [sid])?;
            tx.commit()?;
            Ok(gone as u64)
        })
    })
    .await?;
    if gone > 0 {
        tracing::info!(gone, "resources no longer held at the source were marked");
    }
    counters
        .gone
        .fetch_add(gone, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_compare_by_time_and_step_a_millisecond() {
        assert_eq!(
            just_after("2024-01-01T00:00:00Z"),
            "2024-01-01T00:00:00.001Z"
        );
        assert_eq!(
            later(
                Some("2024-01-01T01:00:00+01:00".into()),
                "2024-01-01T00:30:00Z"
            )
            .as_deref(),
            Some("2024-01-01T00:30:00Z")
        );
        assert_eq!(later(None, "not a date"), None);
    }

    #[test]
    fn pages_yield_resources_and_next_links() {
        let body = br#"{"resourceType":"Bundle","type":"searchset","link":[{"relation":"self","url":"s"},{"relation":"next","url":"n"}],
          "entry":[{"fullUrl":"http://x/fhir/Condition/1","resource":{"resourceType":"Condition","id":"1","x":1.50}},
                   {"resource":{"resourceType":"OperationOutcome"},"search":{"mode":"outcome"}},
                   {"resource":{"resourceType":"Observation","id":"2"}}]}"#;
        let (entries, next) = read_page(body, "http://x/fhir").unwrap();
        assert_eq!(next.as_deref(), Some("n"));
        assert_eq!(entries.len(), 2);
        assert!(entries[0].1.contains("1.50"), "kept as sent");
        assert_eq!(entries[1].0, "http://x/fhir/Observation/2");
        assert!(read_page(b"{\"resourceType\":\"Bundle\",\"entry\":[", "b").is_err());
    }
}
