//! The per-source state machine: discover → authorize → pull → push → idle, with
//! error and offline as the ways out. Each state is recorded in the vault as it is
//! entered, so an app can show where every source is.

use std::sync::Arc;

use serde::Serialize;

use super::sources::{self, SourceInfo};
use super::{discover, gp_connect, login, pull, push, Counters, SyncOptions, SyncProgress};
use crate::error::{Error, Result};
use crate::net::http::Http;
use crate::profile::db;
use crate::profile::Profile;
use crate::time::now_unix;

/// How long what discovery found is trusted, in seconds.
const REDISCOVER_AFTER_S: i64 = 24 * 3600;

/// Where a source's sync is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncState {
    /// Reading the server's `metadata` and SMART configuration.
    Discover,
    /// Getting a usable access token; if this is where it stopped, sign in again.
    Authorize,
    /// Fetching resources, page by page.
    Pull,
    /// Sending the patient's readings.
    Push,
    /// Up to date.
    Idle,
    /// Ran through, but the provider's answers were found wanting (a search delivered
    /// less than it promised, or sent another patient's resources); the reason is
    /// recorded, and the next sync tries again.
    Partial,
    /// The server refused or broke; the reason is recorded.
    Error,
    /// The server could not be reached.
    Offline,
}

impl SyncState {
    /// The id used in the vault and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Discover => "discover",
            SyncState::Authorize => "authorize",
            SyncState::Pull => "pull",
            SyncState::Push => "push",
            SyncState::Idle => "idle",
            SyncState::Partial => "partial",
            SyncState::Error => "error",
            SyncState::Offline => "offline",
        }
    }

    /// Parse an id.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "discover" => SyncState::Discover,
            "authorize" => SyncState::Authorize,
            "pull" => SyncState::Pull,
            "push" => SyncState::Push,
            "idle" => SyncState::Idle,
            "partial" => SyncState::Partial,
            "error" => SyncState::Error,
            "offline" => SyncState::Offline,
            other => return Err(Error::internal(format!("unknown sync state '{other}'"))),
        })
    }
}

/// The state a failed run ends in.
pub(crate) fn after_error(e: &Error) -> SyncState {
    match e {
        Error::Auth { .. } => SyncState::Authorize,
        Error::Network { .. } => SyncState::Offline,
        _ => SyncState::Error,
    }
}

/// Enter `state`: record it and tell the app.
async fn enter(
    profile: &Arc<Profile>,
    source: &SourceInfo,
    state: SyncState,
    options: &SyncOptions,
    counters: &Counters,
) -> Result<()> {
    tracing::debug!(state = state.as_str(), "sync state");
    let name = source.name.clone();
    db(profile, move |p| sources::set_state(p, &name, state, None)).await?;
    report(source, state, options, counters);
    Ok(())
}

/// Tell the app where the sync is.
pub(crate) fn report(source: &SourceInfo, state: SyncState, options: &SyncOptions, c: &Counters) {
    if let Some(progress) = &options.progress {
        progress(&SyncProgress {
            source: source.name.clone(),
            state,
            fetched: Counters::get(&c.fetched),
            pushed: Counters::get(&c.pushed),
            requests: Counters::get(&c.requests),
        });
    }
}

/// One source's whole run. `Some(reason)` when it ran through but is partial.
pub(crate) async fn run(
    profile: &Arc<Profile>,
    http: &Http,
    info: &SourceInfo,
    options: &SyncOptions,
    counters: &Counters,
) -> Result<Option<String>> {
    let name = info.name.clone();
    let mut source = db(profile, move |p| sources::get(p, &name)).await?;

    // What a server offers changes rarely: discover again once a day, on a full sync,
    // or when nothing is known yet.
    let known = source.capabilities.is_some()
        && source
            .discovered_at
            .is_some_and(|t| now_unix() - t < REDISCOVER_AFTER_S);
    let gp_connect = source.info.api == sources::Api::GpConnect;
    // GP Connect publishes no R4 capabilities to discover: its one operation is known.
    if !gp_connect && (!known || options.full) {
        enter(profile, info, SyncState::Discover, options, counters).await?;
        let smart = source.info.auth == "smart";
        let mut caps = discover::discover(http, &source.info.base_url, smart).await?;
        // What was learned by trying outlives a new look at metadata.
        if let Some(old) = &source.capabilities {
            caps.since_ignored |= old.since_ignored;
            caps.since_probed |= old.since_probed;
            caps.no_id_search |= old.no_id_search;
        }
        let (id, c2) = (source.id, caps.clone());
        db(profile, move |p| sources::save_capabilities(p, id, &c2)).await?;
        source.capabilities = Some(caps);
    }

    enter(profile, info, SyncState::Authorize, options, counters).await?;
    let mut auth = login::Authorizer::new(profile.clone(), &source);
    auth.ensure(http).await?;
    if let Some(p) = auth.patient_id() {
        source.info.patient_id = Some(p);
    }

    enter(profile, info, SyncState::Pull, options, counters).await?;
    let pulled = if gp_connect {
        gp_connect::pull(profile, http, &mut auth, &source, counters).await?
    } else {
        pull::pull(profile, http, &mut auth, &source, options, counters).await?
    };
    counters
        .refused
        .fetch_add(pulled.refused, std::sync::atomic::Ordering::Relaxed);
    let mut why = pulled.short;
    if pulled.refused > 0 {
        why.push(format!(
            "the provider sent {} resources that belong to another patient; none were stored",
            pulled.refused
        ));
    }
    let partial = (!why.is_empty()).then(|| why.join("; "));

    if source.info.push {
        enter(profile, info, SyncState::Push, options, counters).await?;
        push::push(profile, http, &mut auth, &source, counters).await?;
    }

    let (name, end, why) = (
        info.name.clone(),
        if partial.is_some() {
            SyncState::Partial
        } else {
            SyncState::Idle
        },
        partial.clone(),
    );
    db(profile, move |p| {
        sources::set_state(p, &name, end, why.as_deref())
    })
    .await?;
    report(info, end, options, counters);
    Ok(partial)
}
