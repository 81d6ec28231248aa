//! One exchange with the endpoint's relay: with the person's other devices, then
//! (on the primary device) with other people's, then with the devices again. It
//! spans the sharing and device features, so it sits above both.

use std::sync::Arc;

use crate::error::Result;
use crate::net::CallOptions;
use crate::profile::{db, Profile};
use crate::share::{self, DevicesReport, ExchangeReport};

/// Exchange with the relay: end grants that reached their end date, delete ended
/// grants' envelopes at the relay, fetch and apply the mailbox, seal what changed
/// for each grant in force, and post everything queued. With more than one device,
/// first and last exchange changes with the person's other devices; only the primary
/// device talks to other people's devices.
///
/// Every step is resumable: envelopes are acknowledged only after they were applied
/// (or refused), and queued envelopes leave the queue only once the relay has them.
pub async fn exchange(
    profile: Arc<Profile>,
    endpoint: &str,
    options: &CallOptions,
) -> Result<ExchangeReport> {
    // One sign-in to the device channel serves both passes.
    let devices = crate::devices::connect(&profile, endpoint, options).await?;
    let first = match &devices {
        Some(relay) => crate::devices::pass(profile.clone(), relay).await?,
        None => DevicesReport::default(),
    };
    let primary = db(&profile, |p| p.vault().read(crate::devices::is_primary)).await?;
    let mut report = if primary {
        share::exchange_with_people(profile.clone(), endpoint, options).await?
    } else {
        ExchangeReport {
            expired: db(&profile, |p| {
                share::expire_received(p)?;
                p.vault().write(share::grants::expire_due)
            })
            .await?,
            ..ExchangeReport::default()
        }
    };
    let last = match &devices {
        Some(relay) => crate::devices::pass(profile, relay).await?,
        None => DevicesReport::default(),
    };
    let mut full = first.full;
    full.extend(
        last.full
            .into_iter()
            .filter(|d| !full.contains(d))
            .collect::<Vec<_>>(),
    );
    report.devices = DevicesReport {
        batches_in: first.batches_in + last.batches_in,
        changes_in: first.changes_in + last.changes_in,
        batches_out: first.batches_out + last.batches_out,
        refused: first.refused + last.refused,
        full,
    };
    Ok(report)
}
