//! Pulling a provider's record into the vault, one page per transaction, each with
//! the checkpoint that says where to resume.
//!
//! Three modes, chosen from discovery and corrected by trying:
//! - `everything`: `Patient/[id]/$everything`, with `_since` after the first run;
//! - `by-type`: the Patient, then a `patient=` search per type with `_lastUpdated=gt`
//!   after that type's own checkpoint;
//! - `plain`: the same searches without `_lastUpdated`, every run in full, keeping
//!   only what changed (content is compared by hash).
//!
//! A server whose `$everything` answers `_since` with older resources ignores it: the
//! source moves to `by-type`, so a sync with nothing new costs one search per type
//! the source holds and fetches nothing. Checkpoints only ever move forward.
//!
//! Every resource must belong to the signed-in patient (see `compartment.rs`); any
//! other patient's is refused and counted. A search that delivers less than its first
//! page promised (`total`) leaves the run partial: its checkpoint does not move, and
//! nothing is marked as gone.
//!
//! Deletions: a *full* run (the first, any `--full`, one a week, and every plain run)
//! marks each resource it sees with the run's number. When it completes, whatever the
//! source held before but the run did not see is marked as gone at the source, and
//! kept. Between full runs, `deletions.rs` lists the ids the source holds, cheaply.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rusqlite::{params, Transaction, TransactionBehavior};
use serde_json::Value;

use super::checkpoint::{self, Checkpoint};
use super::compartment::{self, Belongs};
use super::discover::Capabilities;
use super::login::Authorizer;
use super::page::{read_page, PageRead};
use super::sources::Source;
use super::state::{report, SyncState};
use super::{Counters, SyncOptions};
use crate::error::{Error, Result};
use crate::net::http::{enc, Http, Resp};
use crate::profile::db;
use crate::profile::Profile;
use crate::record::EnteredBy;
use crate::store::{self, PutOutcome, Writer};
use crate::time::now_unix;

/// Resources per page asked for.
pub(crate) const PAGE: usize = 500;
/// A full run at least this often (seconds), to notice deletions.
const FULL_EVERY_S: i64 = 7 * 24 * 3600;
/// Types shared across patients: never searched by patient, fetched when referred to,
/// and never marked as gone by a run that does not list them.
pub(crate) const SHARED: &[&str] = &[
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "Medication",
    "Substance",
];

/// What a pull found wanting, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PullOutcome {
    /// Why the run is partial, if it is: one reason per shortfall.
    pub short: Vec<String>,
    /// Resources refused because they belong to another patient.
    pub refused: u64,
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

fn instant(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// The later of two FHIR instants (by time, not by text).
pub(crate) fn later(a: Option<String>, b: &str) -> Option<String> {
    match (a, instant(b)) {
        (None, Some(_)) => Some(b.to_string()),
        (Some(a), Some(tb)) => match instant(&a) {
            Some(ta) if ta >= tb => Some(a),
            _ => Some(b.to_string()),
        },
        (a, None) => a,
    }
}

/// Whether `lu` is at or before `since`: a resource `_since` should have left out.
fn not_after(lu: &str, since: &str) -> bool {
    matches!((instant(lu), instant(since)), (Some(a), Some(b)) if a <= b)
}

/// The types a run searches: on a full run every type the server offers; otherwise
/// only those the source holds (and has a checkpoint for), so a sync with nothing new
/// costs one search per type held. A type new at the source is found by the next full
/// run (at least weekly).
fn run_types(
    tx: &Transaction<'_>,
    source: &Source,
    offered: &[String],
    full: bool,
) -> Result<Vec<String>> {
    // Shared types are fetched when referred to, never listed by patient: a server
    // that ignores `patient` would answer with every patient's practitioners.
    let offered: Vec<String> = offered
        .iter()
        .filter(|t| !SHARED.contains(&t.as_str()))
        .cloned()
        .collect();
    if full {
        return Ok(offered);
    }
    let held: BTreeSet<String> = tx
        .prepare("SELECT DISTINCT rtype FROM resources WHERE source_id = ?1")?
        .query_map([source.id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(offered
        .iter()
        .filter(|t| held.contains(*t) || source.type_since.contains_key(*t))
        .cloned()
        .collect())
}

/// The URL that starts the current step, or `None` when the run is through.
fn first_url(
    source: &Source,
    patient: &str,
    c: &Checkpoint,
    caps: &Capabilities,
) -> Option<String> {
    let base = &source.info.base_url;
    if c.mode == "everything" {
        if c.type_index > 0 {
            return None;
        }
        let mut u = format!("{base}/Patient/{}/$everything?_count={PAGE}", enc(patient));
        if let Some(s) = &c.since {
            u.push_str(&format!("&_since={}", enc(&just_after(s))));
        }
        return Some(u);
    }
    let since = |t: &str| {
        let by_type = c.mode == "by-type" && !c.full;
        by_type
            .then(|| source.type_since.get(t).or(c.since.as_ref()))
            .flatten()
    };
    if c.type_index == 0 {
        // Asked for only if it changed, where the server can search by `_id`.
        return Some(match since("Patient") {
            Some(s) if !caps.no_id_search => format!(
                "{base}/Patient?_id={}&_lastUpdated={}",
                enc(patient),
                enc(&format!("gt{s}"))
            ),
            _ => format!("{base}/Patient/{}", enc(patient)),
        });
    }
    let t = c.step_type()?;
    // `Patient/id` rather than a bare id: every server tested understands it.
    let mut u = format!(
        "{base}/{t}?patient={}&_count={PAGE}",
        enc(&format!("Patient/{patient}"))
    );
    if let Some(s) = since(t) {
        u.push_str(&format!("&_lastUpdated={}", enc(&format!("gt{s}"))));
    }
    Some(u)
}

/// GET with the source's credentials; a `401` refreshes once.
pub(crate) async fn get(http: &Http, auth: &mut Authorizer, url: &str) -> Result<Resp> {
    authorized(http, auth, || {
        http.client()
            .get(url)
            .header("accept", "application/fhir+json")
    })
    .await
}

/// Send the request `build` makes with the source's authorization: on a 401, sign in
/// again (a refresh) once and send it again.
pub(crate) async fn authorized(
    http: &Http,
    auth: &mut Authorizer,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<Resp> {
    for attempt in 0..2 {
        let header = auth.header(http).await?;
        let resp = http
            .send(|| {
                let r = build();
                match &header {
                    Some(h) => r.header("authorization", h.as_str()),
                    None => r,
                }
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

pub(crate) fn refused(status: u16) -> Error {
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

/// The checkpoint to go on from: the one in flight, or a new run's.
async fn start(profile: &Arc<Profile>, source: &Source, want_full: bool) -> Result<Checkpoint> {
    let caps = source.capabilities.clone().unwrap_or_default();
    let s = source.clone();
    db(profile, move |p| {
        p.vault().write(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Some(cp) = checkpoint::load(&tx, s.id)? {
                return Ok(cp);
            }
            let mode = if caps.everything && !caps.since_ignored {
                "everything"
            } else if caps.last_updated {
                "by-type"
            } else {
                "plain"
            };
            let full = want_full
                || s.since.is_none()
                || mode == "plain"
                || s.full_synced_at
                    .is_none_or(|t| now_unix() - t > FULL_EVERY_S);
            let types = if mode == "everything" {
                Vec::new()
            } else {
                run_types(&tx, &s, &caps.types, full)?
            };
            let cp = Checkpoint {
                mode: mode.into(),
                run: crate::time::now_unix_ms(),
                full,
                since: if full { None } else { s.since.clone() },
                type_index: 0,
                next_url: None,
                newest: None,
                fetched: 0,
                types,
                step_total: None,
                step_got: 0,
                short: Vec::new(),
                refused: 0,
                refs: Default::default(),
            };
            checkpoint::save(&tx, s.id, &cp)?;
            tx.commit()?;
            Ok(cp)
        })
    })
    .await
}

/// Save what was learned by trying (a mode that does not work here) with the
/// checkpoint to go on from.
async fn learn(
    profile: &Arc<Profile>,
    source: &Source,
    next: &Checkpoint,
    learned: &Capabilities,
) -> Result<Checkpoint> {
    let (s, mut n, caps) = (source.clone(), next.clone(), learned.clone());
    db(profile, move |p| {
        p.vault().write(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if n.mode != "everything" && n.types.is_empty() {
                n.types = run_types(&tx, &s, &caps.types, n.full)?;
            }
            checkpoint::save(&tx, s.id, &n)?;
            tx.execute(
                "UPDATE provider_sources SET capabilities = ?2 WHERE source_id = ?1",
                params![s.id, serde_json::to_string(&caps)?],
            )?;
            tx.commit()?;
            Ok(n)
        })
    })
    .await
}

/// A step that could not be run: what to do instead, or the error that ends the run.
fn fall_back(
    cp: &Checkpoint,
    status: u16,
    resuming: bool,
    retried_link: &mut bool,
    thin: bool,
    learned: &mut Capabilities,
) -> Result<Checkpoint> {
    let mut next = cp.clone();
    let patient_search = cp.mode == "by-type" && cp.type_index == 0 && !cp.full;
    if !resuming
        && patient_search
        && !learned.no_id_search
        && matches!(status, 400 | 404 | 405 | 501)
    {
        // No `_id` search: read the Patient instead.
        tracing::info!(status, "no _id search here; reading the Patient");
        learned.no_id_search = true;
    } else if resuming && !*retried_link && (400..500).contains(&status) {
        // The server no longer honours its own next link: redo this step.
        tracing::info!(status, "a next link expired; restarting the step");
        *retried_link = true;
        next.next_url = None;
        next.step_total = None;
        next.step_got = 0;
    } else if !resuming && cp.mode == "everything" && matches!(status, 400 | 404 | 405 | 501) {
        tracing::info!("no $everything here; searching type by type");
        next.mode = if learned.last_updated {
            "by-type"
        } else {
            "plain"
        }
        .into();
        next.types.clear();
        learned.everything = false;
    } else if !resuming
        && thin
        && cp.mode == "by-type"
        && cp.type_index > 0
        && !cp.full
        && status == 400
    {
        tracing::info!("no _lastUpdated here; comparing whole searches");
        next.mode = "plain".into();
        next.full = true;
        next.since = None;
        learned.last_updated = false;
    } else if !resuming && thin && cp.type_index > 0 && matches!(status, 400 | 404) {
        // A guessed type this server does not search: skip it.
        tracing::info!(status, "a guessed type is not offered; skipping it");
        next.type_index += 1;
    } else {
        return Err(refused(status));
    }
    Ok(next)
}

/// Pull everything new from `source`.
pub(crate) async fn pull(
    profile: &Arc<Profile>,
    http: &Http,
    auth: &mut Authorizer,
    source: &Source,
    options: &SyncOptions,
    counters: &Counters,
) -> Result<PullOutcome> {
    let patient = auth
        .patient_id()
        .or_else(|| source.info.patient_id.clone())
        .ok_or_else(|| {
            Error::invalid("the provider has not said which Patient this is; sign in again")
        })?;
    let mut cp = start(profile, source, options.full).await?;
    let thin = source.capabilities.as_ref().is_some_and(|c| c.thin);
    let mut learned = source.capabilities.clone().unwrap_or_default();
    let mut retried_link = false;
    // The page fetched while the one before it was stored, and its address.
    let mut ahead: Option<(String, Result<Resp>)> = None;
    loop {
        let resuming = cp.next_url.is_some();
        let Some(url) = cp
            .next_url
            .clone()
            .or_else(|| first_url(source, &patient, &cp, &learned))
        else {
            break;
        };
        let resp = match ahead.take() {
            Some((fetched, resp)) if fetched == url => resp?,
            _ => get(http, auth, &url).await?,
        };
        if resp.status != 200 {
            let next = fall_back(
                &cp,
                resp.status,
                resuming,
                &mut retried_link,
                thin,
                &mut learned,
            )?;
            // What was learned by trying is kept, so the next sync starts there.
            cp = learn(profile, source, &next, &learned).await?;
            continue;
        }
        retried_link = false;
        let page = read_page(&resp.body, &source.info.base_url)?;
        let n = page.entries.len() as u64;
        // One page ahead: the next page is fetched while this one is stored. It is
        // used only if the checkpoint then points at it; memory holds two pages.
        let (stored, fetched) = match page.next.clone() {
            Some(link) => {
                let store = store_page(profile, source, &patient, &cp, page, &learned);
                let (stored, fetched) = tokio::join!(store, get(http, auth, &link));
                (stored, Some((link, fetched)))
            }
            None => (
                store_page(profile, source, &patient, &cp, page, &learned).await,
                None,
            ),
        };
        let (changed, next, stale) = stored?;
        ahead = fetched;
        if stale {
            tracing::info!("$everything ignores _since here; searching type by type");
            learned.since_ignored = true;
        }
        cp = next;
        counters.fetched.fetch_add(n, Ordering::Relaxed);
        counters.changed.fetch_add(changed, Ordering::Relaxed);
        report(&source.info, SyncState::Pull, options, counters);
    }
    if cp.full && cp.mode != "everything" && cp.fetched <= 1 && cp.short.is_empty() {
        if let Some(why) = only_the_patient(http, auth, source, &patient).await? {
            cp.short.push(why);
        }
    }
    super::refs::fetch(profile, http, auth, source, &cp, &mut learned, counters).await?;
    finish(profile, source, &cp, counters).await?;
    let complete = cp.short.is_empty();
    if complete && cp.full && cp.mode == "everything" && !learned.since_probed {
        probe_since(profile, http, auth, source, &patient, &cp, &mut learned).await?;
    }
    let due = source
        .deletions_at
        .is_none_or(|t| now_unix() - t > super::deletions::EVERY_S);
    if complete && !cp.full && (options.deletions || due) {
        let gone = super::deletions::check(profile, http, auth, source, &patient, &cp).await?;
        counters.gone.fetch_add(gone, Ordering::Relaxed);
    }
    Ok(PullOutcome {
        short: cp.short,
        refused: u64::try_from(cp.refused).unwrap_or(0),
    })
}

/// Store one page with the checkpoint after it, in one transaction. Returns how many
/// resources were new or changed, the checkpoint, and whether the page showed that
/// `$everything` ignores `_since` (the run then goes on type by type).
async fn store_page(
    profile: &Arc<Profile>,
    source: &Source,
    patient: &str,
    cp: &Checkpoint,
    page: PageRead,
    learned: &Capabilities,
) -> Result<(u64, Checkpoint, bool)> {
    let (s, patient, mut next, caps) = (
        source.clone(),
        patient.to_string(),
        cp.clone(),
        learned.clone(),
    );
    db(profile, move |p| {
        p.vault().write(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let first_of_step = next.next_url.is_none();
            if first_of_step {
                next.step_total = if page.bundle {
                    page.total.and_then(|t| i64::try_from(t).ok())
                } else {
                    None
                };
                next.step_got = 0;
                if next.mode != "everything" {
                    next.newest = None;
                }
            }
            next.fetched += page.entries.len() as i64;
            next.step_got += page.matched() as i64;
            let run = next.full.then_some(next.run);
            let mut w = Writer::new(&tx, s.id, None, EnteredBy::Provider, now_unix())
                .for_sync(run)
                .by_logical_id();
            let since = (next.mode == "everything")
                .then(|| next.since.clone())
                .flatten();
            let (mut changed, mut stale) = (0u64, false);
            for e in &page.entries {
                let value: Value = match serde_json::from_str(&e.raw) {
                    Ok(v) => v,
                    Err(_) => continue,
                };
                if compartment::belongs(&value, &patient) == Belongs::Other {
                    next.refused += 1;
                    continue;
                }
                super::refs::collect(&value, &mut next.refs);
                if let Some(lu) = value["meta"]["lastUpdated"].as_str() {
                    next.newest = later(next.newest.take(), lu);
                    let rtype = value["resourceType"].as_str().unwrap_or_default();
                    if since.as_deref().is_some_and(|s| not_after(lu, s))
                        && rtype != "Patient"
                        && !SHARED.contains(&rtype)
                    {
                        stale = true;
                    }
                }
                if crate::mend::taken_back(&tx, &value)? {
                    // The person took this reading back: the provider's copy stays out.
                    continue;
                }
                match w.put(&e.raw, &value, Some(&e.url)) {
                    Ok(PutOutcome::Inserted(_) | PutOutcome::Updated(_)) => changed += 1,
                    Ok(PutOutcome::Unchanged(_)) => {}
                    Err(Error::InvalidInput { reason }) => {
                        tracing::warn!(%reason, "skipped a resource the provider sent");
                    }
                    Err(e) => return Err(e),
                }
            }
            store::adopt_self_patient(&tx)?;
            match &page.next {
                Some(l) => next.next_url = Some(l.clone()),
                None => end_step(&tx, &s, &mut next)?,
            }
            if stale {
                // Go on type by type from the same checkpoint: what this page held is
                // stored, and the types' searches bring only what changed.
                next.mode = "by-type".into();
                next.type_index = 0;
                next.next_url = None;
                next.step_total = None;
                next.step_got = 0;
                let mut caps = caps;
                caps.since_ignored = true;
                next.types = run_types(&tx, &s, &caps.types, next.full)?;
                tx.execute(
                    "UPDATE provider_sources SET capabilities = ?2 WHERE source_id = ?1",
                    params![s.id, serde_json::to_string(&caps)?],
                )?;
            }
            checkpoint::save(&tx, s.id, &next)?;
            tx.commit()?;
            Ok((changed, next, stale))
        })
    })
    .await
}

/// A step's last page is in: check what it delivered against what it promised, and
/// move the type's checkpoint on if it is whole.
fn end_step(tx: &Transaction<'_>, s: &Source, next: &mut Checkpoint) -> Result<()> {
    let what = match next.step_type() {
        Some(t) => format!("the {t} search"),
        None => "$everything".to_string(),
    };
    let whole = match next.step_total {
        Some(t) if next.step_got < t => {
            tracing::warn!(promised = t, got = next.step_got, "a search came up short");
            next.short.push(format!(
                "{what} promised {t} resources and its pages delivered {}",
                next.step_got
            ));
            false
        }
        _ => true,
    };
    if let (true, Some(t), Some(newest)) = (whole, next.step_type(), next.newest.clone()) {
        if next.mode == "by-type" {
            let mut map = s.type_since.clone();
            if let Some(now) = later(map.get(t).cloned(), &newest) {
                map.insert(t.to_string(), now);
            }
            // Only this type's entry moves; the others are as the vault has them.
            tx.execute(
                "UPDATE provider_sources SET type_since = json_set(coalesce(type_since, '{}'),
                   '$.' || json_quote(?2), ?3) WHERE source_id = ?1",
                params![s.id, t, map.get(t)],
            )?;
        }
    }
    next.next_url = None;
    next.type_index += 1;
    Ok(())
}

/// After a first whole `$everything` run: ask it for what changed since, which
/// should be nothing. A server that answers with older resources ignores `_since`, and
/// the source goes type by type from the next sync on, rather than downloading the
/// whole record each time.
async fn probe_since(
    profile: &Arc<Profile>,
    http: &Http,
    auth: &mut Authorizer,
    source: &Source,
    patient: &str,
    cp: &Checkpoint,
    learned: &mut Capabilities,
) -> Result<()> {
    learned.since_probed = true;
    if let Some(newest) = &cp.newest {
        let url = format!(
            "{}/Patient/{}/$everything?_count=5&_since={}",
            source.info.base_url,
            enc(patient),
            enc(&just_after(newest))
        );
        let resp = get(http, auth, &url).await?;
        if resp.status == 200 {
            if let Ok(page) = read_page(&resp.body, &source.info.base_url) {
                let older = page.entries.iter().any(|e| {
                    let Ok(v) = serde_json::from_str::<Value>(&e.raw) else {
                        return false;
                    };
                    let rtype = v["resourceType"].as_str().unwrap_or_default();
                    rtype != "Patient"
                        && !SHARED.contains(&rtype)
                        && v["meta"]["lastUpdated"]
                            .as_str()
                            .is_some_and(|lu| not_after(lu, newest))
                });
                if older {
                    tracing::info!("$everything ignores _since here; searching type by type");
                    learned.since_ignored = true;
                }
            }
        }
    }
    let (sid, caps) = (source.id, learned.clone());
    db(profile, move |p| {
        super::sources::save_learned(p, sid, &caps)
    })
    .await
}

/// After a full type-by-type run that found only the Patient: whether the server's
/// `$everything` says it holds more, which means its searches missed the record.
async fn only_the_patient(
    http: &Http,
    auth: &mut Authorizer,
    source: &Source,
    patient: &str,
) -> Result<Option<String>> {
    let url = format!(
        "{}/Patient/{}/$everything?_count=2",
        source.info.base_url,
        enc(patient)
    );
    let resp = get(http, auth, &url).await?;
    if resp.status != 200 {
        return Ok(None);
    }
    let Ok(page) = read_page(&resp.body, &source.info.base_url) else {
        return Ok(None);
    };
    let holds = page.total.unwrap_or(0).max(page.entries.len() as u64);
    Ok((holds > 1 || page.next.is_some()).then(|| {
        format!(
            "the type-by-type searches returned only the Patient, but $everything holds {} resources",
            if holds > 1 { holds.to_string() } else { "more".into() }
        )
    }))
}

/// The run is through: mark what a whole full run did not see, move the checkpoints
/// on (forward only), and drop the run's checkpoint, all at once. A partial run
/// moves nothing and marks nothing.
async fn finish(
    profile: &Arc<Profile>,
    source: &Source,
    cp: &Checkpoint,
    counters: &Counters,
) -> Result<()> {
    let (sid, done) = (source.id, cp.clone());
    let gone = db(profile, move |p| {
        p.vault().write(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_unix();
            let whole = done.short.is_empty();
            let shared = serde_json::to_string(SHARED)?;
            let gone = if done.full && whole {
                // Only types the run listed: shared resources are fetched when
                // referred to, not listed, so not seeing them says nothing.
                tx.execute(
                    "UPDATE resources SET gone_at = ?3 WHERE source_id = ?1 AND gone_at IS NULL
                       AND (seen_run IS NULL OR seen_run != ?2)
                       AND rtype NOT IN (SELECT value FROM json_each(?4))",
                    params![sid, done.run, now, shared],
                )?
            } else {
                0
            };
            // `since` moves only forward: to the newest change this run saw, or in
            // type-by-type mode to the newest of the types' checkpoints.
            let newest: Option<String> = if done.mode == "everything" {
                done.newest.clone()
            } else {
                let map: Option<String> = tx.query_row(
                    "SELECT type_since FROM provider_sources WHERE source_id = ?1",
                    [sid],
                    |r| r.get(0),
                )?;
                let map: std::collections::BTreeMap<String, String> = map
                    .and_then(|m| serde_json::from_str(&m).ok())
                    .unwrap_or_default();
                map.values().fold(None, |acc, v| later(acc, v))
            };
            let old: Option<String> = tx.query_row(
                "SELECT since FROM provider_sources WHERE source_id = ?1",
                [sid],
                |r| r.get(0),
            )?;
            let since = match (whole, newest) {
                (true, Some(n)) => later(old, &n),
                _ => old,
            };
            // A whole full run has noticed every deletion too.
            tx.execute(
                "UPDATE provider_sources SET since = ?2, last_synced_at = ?3,
                   full_synced_at = CASE WHEN ?4 THEN ?3 ELSE full_synced_at END,
                   deletions_at = CASE WHEN ?4 THEN ?3 ELSE deletions_at END
                 WHERE source_id = ?1",
                params![sid, since, now, done.full && whole],
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
    counters.gone.fetch_add(gone, Ordering::Relaxed);
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
        // Forward only: an older instant never replaces a newer one.
        assert_eq!(
            later(Some("2025-06-01T00:00:00Z".into()), "2020-01-01T00:00:00Z").as_deref(),
            Some("2025-06-01T00:00:00Z")
        );
        assert!(not_after("2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z"));
        assert!(!not_after(
            "2024-01-01T00:00:00.001Z",
            "2024-01-01T00:00:00Z"
        ));
    }
}
