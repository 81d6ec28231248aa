//! Ending everyone's access at once: what a person reaches for when a relationship
//! ends, a phone was shown to the wrong person, or someone pressures them. Every grant
//! in force is revoked and every share link in force (the emergency card's too) stops
//! being served, each recorded in the audit log as if ended one by one.

use std::sync::Arc;

use serde::Serialize;

use crate::error::Result;
use crate::links::{self, ShareInfo};
use crate::net::CallOptions;
use crate::profile::db;
use crate::profile::Profile;
use crate::share::{self, GrantInfo};

/// A share link [`stop_all`] could not end, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkNotEnded {
    /// The link's id.
    pub id: String,
    /// Why the endpoint did not end it (it still serves the link).
    pub reason: String,
}

/// What [`stop_all`] ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stopped {
    /// The grants revoked: each was in force. Deliveries to them stopped at once.
    pub grants: Vec<GrantInfo>,
    /// The share links the endpoint no longer serves.
    pub links: Vec<ShareInfo>,
    /// Links the endpoint could not be asked to end (it was unreachable or refused):
    /// these still work until a later attempt succeeds.
    pub links_not_ended: Vec<LinkNotEnded>,
    /// Whether the revocations reached the relay now, so the relay's copies are gone
    /// and the people's apps are told to delete theirs; otherwise at the next sync.
    pub sent: bool,
}

impl Stopped {
    /// Whether nobody keeps access: every grant revoked and every link ended.
    pub fn complete(&self) -> bool {
        self.links_not_ended.is_empty()
    }
}

/// Revoke every grant this profile made that is in force, end every share link in
/// force at `endpoint`, and send the revocations. Grants end on the device even when
/// the endpoint is unreachable (`endpoint` `None`, or a network failure); links need
/// the endpoint, and those it could not end are listed in
/// [`Stopped::links_not_ended`]. Copies someone has already seen cannot be recalled.
pub async fn stop_all(
    profile: Arc<Profile>,
    endpoint: Option<&str>,
    options: &CallOptions,
) -> Result<Stopped> {
    let grants = db(&profile, |p| {
        share::who_can_see(p)?
            .iter()
            .map(|g| share::revoke(p, &g.grant))
            .collect::<Result<Vec<_>>>()
    })
    .await?;
    let live: Vec<ShareInfo> = db(&profile, links::list)
        .await?
        .into_iter()
        .filter(|l| l.state == "active")
        .collect();
    let (mut links, mut links_not_ended) = (Vec::new(), Vec::new());
    for link in live {
        let ended = match endpoint {
            Some(url) => links::revoke(profile.clone(), url, &link.id, options)
                .await
                .map_err(|e| e.to_string()),
            None => Err("no endpoint is set for this profile".to_string()),
        };
        match ended {
            Ok(info) => links.push(info),
            Err(reason) => {
                tracing::warn!(%reason, "a share link could not be ended");
                links_not_ended.push(LinkNotEnded {
                    id: link.id,
                    reason,
                });
            }
        }
    }
    let sent = match endpoint {
        Some(url) if !grants.is_empty() => {
            match crate::exchange::exchange(profile, url, options).await {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "the revocations wait for the next sync");
                    false
                }
            }
        }
        _ => grants.is_empty(),
    };
    Ok(Stopped {
        grants,
        links,
        links_not_ended,
        sent,
    })
}
