//! Noticing deletions between full runs. FHIR searches do not report what was
//! deleted, so once a day (or when asked) the engine lists the ids the source holds
//! for each type the vault holds from it, with a cheap `_elements=id` search, and
//! marks what the source no longer lists as gone (the resource is kept). A listing that
//! comes up short, or that the server refuses, marks nothing.

use std::sync::Arc;

use rusqlite::{params, TransactionBehavior};
use serde_json::Value;

use super::checkpoint::Checkpoint;
use super::compartment::{self, Belongs};
use super::login::Authorizer;
use super::page::read_page;
use super::pull::{get, refused, SHARED};
use super::sources::Source;
use crate::error::Result;
use crate::net::http::{enc, Http};
use crate::profile::db;
use crate::profile::Profile;
use crate::time::now_unix;

/// How often deletions are listed without being asked (seconds).
pub(crate) const EVERY_S: i64 = 24 * 3600;
/// Ids asked for per page of a listing.
const PAGE: usize = 500;
/// The most pages one type's listing may take.
const MOST_PAGES: usize = 200;

/// The ids the source lists for `rtype`, or `None` if the listing was refused or
/// came up short.
async fn list(
    http: &Http,
    auth: &mut Authorizer,
    source: &Source,
    patient: &str,
    rtype: &str,
) -> Result<Option<Vec<String>>> {
    let base = &source.info.base_url;
    let mut url = Some(format!(
        "{base}/{rtype}?patient={}&_elements=id&_count={PAGE}",
        enc(&format!("Patient/{patient}"))
    ));
    let (mut ids, mut total, mut pages) = (Vec::new(), None, 0usize);
    while let Some(u) = url.take() {
        pages += 1;
        if pages > MOST_PAGES {
            return Ok(None);
        }
        let resp = get(http, auth, &u).await?;
        match resp.status {
            200 => {}
            400 | 404 | 405 | 501 => return Ok(None),
            s => return Err(refused(s)),
        }
        let page = read_page(&resp.body, base)?;
        if !page.bundle {
            return Ok(None);
        }
        total = total.or(page.total);
        for e in page.entries.iter().filter(|e| !e.included) {
            let Ok(v) = serde_json::from_str::<Value>(&e.raw) else {
                continue;
            };
            // A server that ignores `_elements` sends whole resources: only this
            // patient's count (one that ignores `patient` sends everyone's).
            let whole = v.as_object().is_some_and(|o| o.len() > 3);
            if whole && compartment::belongs(&v, patient) == Belongs::Other {
                continue;
            }
            if let Some(id) = v["id"].as_str() {
                ids.push(id.to_string());
            }
        }
        url = page.next;
    }
    if total.is_some_and(|t| (ids.len() as u64) < t) {
        return Ok(None);
    }
    Ok(Some(ids))
}

/// Whether the plain search of `rtype` agrees with a listing of `listed` ids: its
/// `total`, or without one, whether it finds anything at all when the listing did not.
async fn agrees(
    http: &Http,
    auth: &mut Authorizer,
    source: &Source,
    patient: &str,
    rtype: &str,
    listed: usize,
) -> Result<bool> {
    let url = format!(
        "{}/{rtype}?patient={}&_count=1",
        source.info.base_url,
        enc(&format!("Patient/{patient}"))
    );
    let resp = get(http, auth, &url).await?;
    if resp.status != 200 {
        return Ok(false);
    }
    let page = read_page(&resp.body, &source.info.base_url)?;
    Ok(match page.total {
        Some(t) => t == listed as u64,
        None => listed > 0 || page.matched() == 0,
    })
}

/// List each held type and mark what the source no longer holds. Returns how many
/// resources were marked gone.
pub(crate) async fn check(
    profile: &Arc<Profile>,
    http: &Http,
    auth: &mut Authorizer,
    source: &Source,
    patient: &str,
    cp: &Checkpoint,
) -> Result<u64> {
    let sid = source.id;
    let offered = source
        .capabilities
        .as_ref()
        .map(|c| c.types.clone())
        .unwrap_or_default();
    let held: Vec<String> = db(profile, move |p| {
        p.vault().read(|c| {
            let mut stmt = c.prepare(
                "SELECT DISTINCT rtype FROM resources WHERE source_id = ?1 AND gone_at IS NULL",
            )?;
            let v = stmt
                .query_map([sid], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    })
    .await?;
    let types: Vec<String> = held
        .into_iter()
        .filter(|t| t != "Patient" && !SHARED.contains(&t.as_str()))
        .filter(|t| cp.mode == "everything" || offered.is_empty() || offered.contains(t))
        .collect();
    let mut gone = 0u64;
    for t in types {
        let Some(ids) = list(http, auth, source, patient, &t).await? else {
            tracing::info!("a deletion listing was refused or short; nothing marked");
            continue;
        };
        let (t2, listed) = (t.clone(), serde_json::to_string(&ids)?);
        let missing: i64 = db(profile, move |p| {
            p.vault().read(|c| {
                Ok(c.query_row(
                    "SELECT count(*) FROM resources WHERE source_id = ?1 AND rtype = ?2
                       AND gone_at IS NULL AND rid NOT IN (SELECT value FROM json_each(?3))",
                    params![sid, t2, listed],
                    |r| r.get(0),
                )?)
            })
        })
        .await?;
        if missing == 0 {
            continue;
        }
        // Before marking anything, the plain search must agree: a server that does not
        // know `_elements` may answer with nothing at all rather than ignore it.
        if !agrees(http, auth, source, patient, &t, ids.len()).await? {
            tracing::info!("a deletion listing disagrees with the search; nothing marked");
            continue;
        }
        let ids = serde_json::to_string(&ids)?;
        gone += db(profile, move |p| {
            p.vault().write(|c| {
                let n = c.execute(
                    "UPDATE resources SET gone_at = ?4 WHERE source_id = ?1 AND rtype = ?2
                       AND gone_at IS NULL AND rid NOT IN (SELECT value FROM json_each(?3))",
                    params![sid, t, ids, now_unix()],
                )?;
                Ok(n as u64)
            })
        })
        .await?;
    }
    db(profile, move |p| {
        p.vault().write(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "UPDATE provider_sources SET deletions_at = ?2 WHERE source_id = ?1",
                params![sid, now_unix()],
            )?;
            tx.commit()?;
            Ok(())
        })
    })
    .await?;
    if gone > 0 {
        tracing::info!(gone, "deletions at the source were marked");
    }
    Ok(gone)
}
