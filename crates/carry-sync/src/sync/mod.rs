//! Sync with providers' FHIR R4 endpoints.
//!
//! A provider source is a FHIR base URL plus how to sign in to it (SMART App Launch,
//! a static bearer token, or nothing). Each sync runs one explicit state machine per
//! source: discover → authorize → pull → push → idle, or error / offline. Pulls are
//! paged and checkpointed in the same transaction as each page's resources, so a sync
//! killed halfway resumes where it stopped and neither loses nor duplicates anything.
//! The patient's own readings go out through a persisted outbox with conditional
//! create, so a retry never makes a second copy at the provider.
//!
//! Everything here that touches the network is async (tokio); everything that touches
//! the vault runs on blocking threads. Every future may be dropped at any await: the
//! vault only ever holds whole pages, and the outbox only ever marks what the server
//! confirmed.

mod checkpoint;
mod compartment;
mod deletions;
mod discover;
pub mod gp_connect;
mod login;
pub mod nhs_login;
mod page;
mod pull;
mod push;
mod refs;
mod sources;
mod state;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::net::{http, CallOptions};
use crate::profile::db;
use crate::profile::Profile;

pub use crate::outbox::SENSITIVE;
pub use login::{sandbox_consent, sandbox_sign_in, LoginStart};
pub use push::{Hold, OutboxEntry, PushRule};
pub use sources::{
    Api, AuthKind, NewSource, ProviderKind, SourceInfo, DEFAULT_CLIENT_ID, DEFAULT_SCOPE,
};
pub use state::SyncState;

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(&SyncProgress) + Send + Sync>;

/// Options for one sync call.
#[derive(Clone, Default)]
pub struct SyncOptions {
    /// The time budget and cancel flag: on either, what was fetched so far is kept,
    /// and the next sync resumes from there.
    pub call: CallOptions,
    /// Called as the sync moves on. Never called while the vault is locked for writing.
    pub progress: Option<ProgressFn>,
    /// List everything the source holds, not only what changed, and mark what it no
    /// longer holds. Done anyway on the first sync and then once a week.
    pub full: bool,
    /// List the ids the source holds to notice deletions now, without a full run.
    /// Done anyway once a day.
    pub deletions: bool,
}

impl std::fmt::Debug for SyncOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncOptions")
            .field("call", &self.call)
            .field("full", &self.full)
            .field("deletions", &self.deletions)
            .finish_non_exhaustive()
    }
}

/// Where a sync is, for a progress line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncProgress {
    /// The source's name.
    pub source: String,
    /// The state it is in.
    pub state: SyncState,
    /// Resources received so far.
    pub fetched: u64,
    /// Readings sent so far.
    pub pushed: u64,
    /// HTTP requests made so far.
    pub requests: u64,
}

/// What one source's sync did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// The source's name.
    pub source: String,
    /// Where it ended: `idle` when complete; `partial` when it ran through but the
    /// provider's answers were short or held another patient's resources (see
    /// `partial`); `error`, `offline` or `authorize` when it failed; the state it had
    /// reached (`pull`, `push`…) when the budget ran out.
    pub state: SyncState,
    /// Resources received from the provider.
    pub fetched: u64,
    /// Of those, how many were new or changed.
    pub changed: u64,
    /// Resources the provider no longer holds, now marked as removed (and kept).
    pub gone: u64,
    /// Resources the provider sent that belong to another patient: never stored.
    pub refused: u64,
    /// Readings sent to the provider.
    pub pushed: u64,
    /// HTTP requests made.
    pub requests: u64,
    /// Whether the pull and push both finished with nothing found wanting.
    pub complete: bool,
    /// Why the run is partial (state `partial`): what the provider promised and did
    /// not deliver, or that it sent another patient's resources. Never content.
    pub partial: Option<String>,
    /// Why it did not finish, if it did not. Never content or tokens.
    pub error: Option<String>,
}

/// Counters shared by one source's run, readable after a budget cut it short.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub fetched: AtomicU64,
    pub changed: AtomicU64,
    pub gone: AtomicU64,
    pub refused: AtomicU64,
    pub pushed: AtomicU64,
    pub requests: Arc<AtomicU64>,
}

impl Counters {
    fn get(v: &AtomicU64) -> u64 {
        v.load(Ordering::Relaxed)
    }
}

/// Add a provider source.
pub fn add_source(profile: &Profile, source: &NewSource) -> Result<SourceInfo> {
    sources::add(profile, source)
}

/// Point a source at a new base address (the provider moved, or is reached by another
/// name). What was synced stays, known by type and id, so nothing is held twice.
pub fn set_source_url(profile: &Profile, name: &str, base_url: &str) -> Result<SourceInfo> {
    sources::set_url(profile, name, base_url)
}

/// Every provider source, by name.
pub fn list_sources(profile: &Profile) -> Result<Vec<SourceInfo>> {
    sources::list(profile)
}

/// The patient's readings on their way to providers, newest first.
pub fn outbox(profile: &Profile) -> Result<Vec<OutboxEntry>> {
    push::list(profile)
}

/// Hold, release or drop the reading `item_id` on its way to `source` (or every
/// provider) before it leaves; a sent reading cannot be. Returns the queue entries
/// changed; `NotFound` if it is not on its way there, `Conflict` if nothing could be.
pub fn hold_reading(
    profile: &Profile,
    item_id: i64,
    source: Option<&str>,
    what: Hold,
) -> Result<u64> {
    push::hold(profile, item_id, source, what)
}

/// Whether readings of `kind` (weight, bp, pulse, glucose, mood, or `sensitive` for
/// anything labelled) go to the provider `source` (or, with `None`, every provider):
/// `Some(allow)` sets the rule, `None` removes it. Without a rule a reading goes unless
/// it is labelled sensitive (a mood-diary entry is).
pub fn set_push_rule(
    profile: &Profile,
    source: Option<&str>,
    kind: &str,
    allow: Option<bool>,
) -> Result<()> {
    push::set_policy(profile, source, kind, allow)
}

/// The push rules the person set.
pub fn push_rules(profile: &Profile) -> Result<Vec<PushRule>> {
    push::policy(profile)
}

/// Start signing in to a SMART source: the URL to open in a browser. The app then
/// passes the URL the browser was redirected to (to `redirect_uri`) to
/// [`complete_login`].
pub async fn begin_login(
    profile: &Arc<Profile>,
    name: &str,
    redirect_uri: &str,
) -> Result<LoginStart> {
    let http = http::Http::new(None, None)?;
    login::begin(profile, &http, name, redirect_uri).await
}

/// Finish signing in with the redirect URL that carries the code.
pub async fn complete_login(
    profile: &Arc<Profile>,
    name: &str,
    redirected_to: &str,
) -> Result<SourceInfo> {
    let http = http::Http::new(None, None)?;
    login::complete(profile, &http, name, redirected_to).await
}

/// Sync one source (`Some(name)`) or every source, one after another. A source that
/// fails does not stop the others; its report says why.
pub async fn sync(
    profile: &Arc<Profile>,
    name: Option<&str>,
    options: &SyncOptions,
) -> Result<Vec<SyncReport>> {
    let all = db(profile, sources::list).await?;
    let chosen: Vec<SourceInfo> = match name {
        Some(n) => {
            let s = all
                .into_iter()
                .find(|s| s.name == n)
                .ok_or_else(|| Error::not_found(format!("source '{n}'")))?;
            vec![s]
        }
        None => all,
    };
    let deadline = options.call.deadline();
    let mut reports = Vec::with_capacity(chosen.len());
    for source in chosen {
        let counters = Arc::new(Counters::default());
        let http = http::Http::new(deadline, options.call.cancel.clone())?
            .counting(counters.requests.clone());
        let run = state::run(profile, &http, &source, options, &counters);
        // The budget bounds the whole run; cutting it off mid-page is safe.
        let outcome = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                tokio::time::timeout(left, run).await.ok()
            }
            None => Some(run.await),
        };
        let c = &counters;
        let (state, complete, error) = match outcome {
            Some(Ok(None)) => (SyncState::Idle, true, None),
            Some(Ok(Some(why))) => (SyncState::Partial, false, Some(why)),
            // The budget ran out mid-run: the source stays in the state it reached,
            // and the next sync resumes from its checkpoint.
            None => {
                let name = source.name.clone();
                let st = db(profile, move |p| {
                    sources::get(p, &name).map(|s| s.info.state)
                })
                .await
                .unwrap_or(SyncState::Pull);
                let why = "the time budget ran out; sync again to resume".to_string();
                state::report(&source, st, options, c);
                (st, false, Some(why))
            }
            Some(Err(e)) => {
                let st = state::after_error(&e);
                let reason = e.to_string();
                let (name, r2) = (source.name.clone(), reason.clone());
                // Record where it stopped; a failure to record is logged, not raised.
                if let Err(e2) = db(profile, move |p| {
                    sources::set_state(p, &name, st, Some(&r2))
                })
                .await
                {
                    tracing::warn!(error = %e2, "could not record the sync state");
                }
                if matches!(e, Error::Cancelled | Error::Locked) {
                    return Err(e);
                }
                state::report(&source, st, options, c);
                (st, false, Some(reason))
            }
        };
        let (partial, error) = match state {
            SyncState::Partial => (error, None),
            _ => (None, error),
        };
        let report = SyncReport {
            source: source.name.clone(),
            state,
            fetched: Counters::get(&c.fetched),
            changed: Counters::get(&c.changed),
            gone: Counters::get(&c.gone),
            refused: Counters::get(&c.refused),
            pushed: Counters::get(&c.pushed),
            requests: Counters::get(&c.requests),
            complete,
            partial,
            error,
        };
        // Only syncs that moved something, or refused something, are worth a line in
        // the audit log.
        if report.changed + report.gone + report.pushed + report.refused > 0 {
            let mut detail = format!(
                "{} new or changed, {} gone, {} readings sent",
                report.changed, report.gone, report.pushed
            );
            if report.refused > 0 {
                detail.push_str(&format!(
                    ", {} resources of another patient refused",
                    report.refused
                ));
            }
            let name = source.name.clone();
            db(profile, move |p| {
                p.vault().write(|conn| {
                    crate::audit::append(
                        conn,
                        crate::audit::AuditEvent::Synced,
                        Some(&name),
                        &detail,
                    )
                })
            })
            .await?;
        }
        reports.push(report);
    }
    Ok(reports)
}
