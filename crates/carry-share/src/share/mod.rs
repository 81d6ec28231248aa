//! People, grants and delivery: the person chooses who sees which part of the record,
//! one person at a time, and the record reaches them end-to-end encrypted through the
//! endpoint's relay.
//!
//! - Each profile has an identity ([`crate::crypto::identity`]). People exchange keys
//!   with an invite code and compare a safety number.
//! - A grant ([`document::GrantDoc`]) is a signed document: role, scope, purpose, basis
//!   and a required end date.
//! - The grantor's device seals the scoped record, then every change to it, to the
//!   grantee ([`envelope`]); the grantee's device keeps it as a separate profile
//!   ([`received`]). A contributor's readings travel back and are applied only if
//!   the grant allows them at that moment.
//! - Revoking or reaching the end date deletes the relay's copies and the grantee's.
//!   A copy someone has already seen cannot be recalled; the docs say so plainly.
//! - Everything is recorded in the hash-chained audit log ([`crate::audit`]).

pub mod consent;
pub mod dependants;
pub mod document;
pub mod envelope;
pub mod grants;
pub mod incoming;
pub mod outbox;
pub mod people;
/// The NHS proxy access lifecycle: reviews, suspension at 16, end dates and removal.
pub mod proxy;
pub mod received;
pub mod rotation;

pub use incoming::PendingContribution;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

use crate::audit::{self, AuditCheck, AuditEntry, AuditEvent};
use crate::error::{EnvelopeProblem, Error, Result};
use crate::export;
use crate::net::http::Http;
use crate::net::CallOptions;
use crate::profile::db;
use crate::profile::Profile;
use crate::query::{self, Item};
use crate::readings::{self, Reading, Subject};
use crate::time::now_unix;

pub use document::{Basis, BasisKind, GrantDoc, Role, Scope};
pub use grants::{GrantInfo, NewGrant};
pub use people::{Invite, MyIdentity, Person};
pub use received::ReceivedProfile;

/// The environment variable that overrides the profile's endpoint.
pub const ENDPOINT_ENV: &str = "CARRY_ENDPOINT";

/// The profile's identity (created on first use), as others see it.
pub fn my_identity(profile: &Profile) -> Result<MyIdentity> {
    profile.vault().write(|c| people::my_identity(c))
}

/// Record the endpoint whose relay and share host this profile uses.
pub fn set_endpoint(profile: &Profile, url: &str) -> Result<()> {
    let url = url.trim().trim_end_matches('/');
    crate::net::relay::base_of(url)?;
    profile
        .vault()
        .write(|c| crate::vault::meta::set(c, "endpoint", url))
}

/// The endpoint this profile uses: `override_url` (from `CARRY_ENDPOINT`) if given,
/// else the one recorded.
pub fn endpoint(profile: &Profile, override_url: Option<&str>) -> Result<String> {
    if let Some(u) = override_url.filter(|u| !u.trim().is_empty()) {
        crate::net::relay::base_of(u)?;
        return Ok(u.trim().trim_end_matches('/').to_string());
    }
    profile
        .vault()
        .read(|c| crate::vault::meta::get(c, "endpoint"))?
        .ok_or_else(|| Error::invalid("no endpoint is set: carry endpoint set URL"))
}

/// Make an invite: a code holding the endpoint, this profile's public keys and a
/// one-time secret, valid for 24 hours.
pub fn invite(profile: &Profile, endpoint: &str) -> Result<Invite> {
    crate::net::relay::base_of(endpoint)?;
    profile
        .vault()
        .write(|c| people::create_invite(c, endpoint))
}

/// Take up an invite. The inviter is added at once; this profile's keys reach them
/// through the relay at the next [`exchange`]. A profile without an endpoint takes the
/// invite's only with `adopt_endpoint`; otherwise the invite is refused with
/// [`Error::InvalidInput`] saying so.
pub fn accept(profile: &Profile, code: &str, adopt_endpoint: bool) -> Result<Person> {
    profile
        .vault()
        .write(|c| people::accept(c, code, adopt_endpoint))
}

/// Everyone this profile knows.
pub fn people(profile: &Profile) -> Result<Vec<Person>> {
    profile.vault().write(|c| people::list(c))
}

/// Mark a person verified once the safety numbers match.
pub fn verify_person(profile: &Profile, who: &str) -> Result<Person> {
    profile.vault().write(|c| people::verify(c, who))
}

/// Grant a person access, or change the grant they hold. Restricted labels need a
/// verified person.
pub fn grant(profile: &Profile, new: &NewGrant) -> Result<GrantInfo> {
    profile.vault().write(|c| grants::grant(c, new))
}

/// Every grant, made by or to this profile, newest first.
pub fn grants(profile: &Profile) -> Result<Vec<GrantInfo>> {
    profile.vault().write(|c| {
        grants::expire_due(c)?;
        grants::list(c, false)
    })
}

/// Who can see this record now: each grant in force that this profile made, with
/// scope, end date and last delivery.
pub fn who_can_see(profile: &Profile) -> Result<Vec<GrantInfo>> {
    profile.vault().write(|c| {
        grants::expire_due(c)?;
        Ok(grants::list(c, true)?
            .into_iter()
            .filter(|g| g.direction == "out")
            .collect())
    })
}

/// Revoke a grant. Deliveries stop at once; the relay's copies are deleted and the
/// revocation is sent at the next [`exchange`].
pub fn revoke(profile: &Profile, grant_id: &str) -> Result<GrantInfo> {
    profile.vault().write(|c| grants::revoke(c, grant_id))
}

/// The record exactly as the person would receive it under their grant in force.
pub fn view_as(profile: &Profile, who: &str) -> Result<Vec<Item>> {
    profile.vault().read(|c| {
        let doc = grants::active_to(c, who)?;
        query::items(c, &crate::scope::ids(c, &doc.scope)?)
    })
}

/// Write what the person would receive as a FHIR collection Bundle.
pub fn view_as_export(profile: &Profile, who: &str, out: &mut dyn std::io::Write) -> Result<u64> {
    profile.vault().read(|c| {
        let doc = grants::active_to(c, who)?;
        export::export_items(c, &crate::scope::ids(c, &doc.scope)?, out)
    })
}

/// A grant as a FHIR `Consent`.
pub fn consent(profile: &Profile, grant_id: &str) -> Result<serde_json::Value> {
    profile.vault().write(|c| {
        let info = grants::info(c, grant_id)?;
        let doc = grants::doc(c, grant_id)?;
        let v = consent::consent(c, &doc, &info.state)?;
        audit::append(
            c,
            AuditEvent::Exported,
            Some(&info.person),
            &format!("{grant_id} as a FHIR Consent"),
        )?;
        Ok(v)
    })
}

/// The signed grant document of `grant_id`, as JSON text.
pub fn grant_document(profile: &Profile, grant_id: &str) -> Result<String> {
    profile
        .vault()
        .read(|c| grants::doc(c, grant_id)?.to_json())
}

/// Records shared with this profile whose grants are in force. Grants that reached
/// their end date are ended here, and their copies deleted, without anyone acting.
pub fn received_profiles(profile: &Profile) -> Result<Vec<ReceivedProfile>> {
    expire_received(profile)?;
    let all = profile.vault().read(received::list)?;
    // A grant whose record has not arrived yet (its first delivery was interrupted
    // before the copy's vault was made) is not listed: the next exchange completes it.
    let own = profile.vault().dir().to_path_buf();
    Ok(all
        .into_iter()
        .filter(|r| {
            received::dir_of(&own, &r.grant)
                .join(crate::vault::VAULT_FILE)
                .exists()
        })
        .collect())
}

/// Open the record `who` (a sharer's short id or name) shares with this profile.
pub fn open_received(profile: &Profile, who: &str) -> Result<Profile> {
    let all = received_profiles(profile)?;
    let found = all
        .iter()
        .find(|r| r.profile == who)
        .or_else(|| all.iter().find(|r| r.name.eq_ignore_ascii_case(who)))
        .ok_or_else(|| {
            Error::not_found(format!("a record shared by '{who}'; see carry profiles"))
        })?;
    received::open(profile, &found.grant, &found.name, false)
}

/// Add a reading to the record `who` shares with this profile, as their carer. It is
/// sealed to them and applied by their device if the grant allows it then.
pub fn contribute(
    profile: &Profile,
    who: &str,
    reading: &Reading,
    note: Option<&str>,
) -> Result<()> {
    let all = received_profiles(profile)?;
    let r = all
        .iter()
        .find(|r| r.profile == who || r.name.eq_ignore_ascii_case(who))
        .ok_or_else(|| Error::not_found(format!("a record shared by '{who}'")))?;
    if !r.role.may_contribute() {
        return Err(Error::Denied {
            reason: format!(
                "as a {} you can see this record but not add to it",
                r.role.as_str()
            ),
        });
    }
    let subject = Subject {
        reference: None,
        display: r.name.clone(),
    };
    let obs = readings::observation(reading, note, &subject, now_unix())?;
    let text = serde_json::to_string(&obs)?;
    profile.vault().write(|c| {
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Only inside the grant: the person's device refuses anything else anyway.
        let held = grants::doc(&tx, &r.grant)?;
        if let Err(why) = crate::scope::admits(&held.scope, &crate::record::analyse(&obs)?) {
            audit::append(
                &tx,
                AuditEvent::ContributionRejected,
                Some(&r.profile),
                &format!("{}: not sent: {why}", r.grant),
            )?;
            tx.commit()?;
            return Err(Error::Denied {
                reason: format!("{} did not share that with you to add to: {why}", r.name),
            });
        }
        let me = crate::vault::identity::get(&tx)?;
        let mut row = outbox::grant_row(&tx, &r.grant)?;
        outbox::send_on_grant(
            &tx,
            &me,
            &mut row,
            envelope::Body::Contribution {
                resources: vec![text],
            },
        )?;
        tx.commit()?;
        Ok(())
    })
}

/// Carers' entries waiting for the person's approval (when they asked to approve
/// them: `Preferences::approve_contributions`), oldest first.
pub fn pending_contributions(profile: &Profile) -> Result<Vec<PendingContribution>> {
    incoming::pending(profile)
}

/// Apply the waiting entries `id`, after checking them against the grant again (it
/// may have ended or narrowed since: then `Denied`, and the carer is told why).
/// Returns the entries applied; they go on to providers like the person's own.
pub fn approve_contribution(profile: &Profile, id: i64) -> Result<u64> {
    incoming::decide(profile, id, true)
}

/// Decline the waiting entries `id`: nothing is applied, and the carer is told.
pub fn reject_contribution(profile: &Profile, id: i64) -> Result<()> {
    incoming::decide(profile, id, false).map(|_| ())
}

/// Ask the grantor of every incoming grant in force to send the whole record again
/// (after a restore: backups hold grants, not the records they carry).
pub fn resync_received(profile: &Profile) -> Result<()> {
    let ids: Vec<String> = profile.vault().read(|c| {
        Ok(c.prepare(
            "SELECT id FROM grants WHERE direction = 'in' AND ended_at IS NULL AND expires_at > ?1",
        )?
        .query_map([now_unix()], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
    })?;
    for id in ids {
        incoming::request_resync(profile, &id)?;
    }
    Ok(())
}

/// End the records shared with this profile whose grants have run out.
pub fn expire_received(profile: &Profile) -> Result<()> {
    let due: Vec<(String, String)> = profile.vault().read(|c| {
        Ok(c.prepare(
            "SELECT g.id, p.handle FROM grants g JOIN people p ON p.id = g.person_id
             WHERE g.direction = 'in' AND g.ended_at IS NULL AND g.expires_at <= ?1",
        )?
        .query_map([now_unix()], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?)
    })?;
    for (grant, handle) in due {
        incoming::end_in(profile, &grant, &handle, "expired")?;
    }
    Ok(())
}

/// The audit log, newest first.
pub fn audit_log(profile: &Profile, limit: u32) -> Result<Vec<AuditEntry>> {
    profile.vault().read(|c| audit::list(c, limit))
}

/// Walk the audit chain.
pub fn verify_audit(profile: &Profile) -> Result<AuditCheck> {
    profile.vault().read(audit::verify)
}

/// An envelope that was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refused {
    /// Why.
    pub problem: EnvelopeProblem,
}

/// What one exchange with the relay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExchangeReport {
    /// Envelopes posted.
    pub posted: u64,
    /// Envelopes fetched from the mailbox.
    pub received: u64,
    /// Of those, applied.
    pub applied: u64,
    /// Of those, refused (and dropped), with why.
    pub refused: Vec<Refused>,
    /// People who took up an invite (short ids).
    pub people_added: Vec<String>,
    /// Grants received or changed (ids).
    pub grants_received: Vec<String>,
    /// Shared records deleted because their grant was revoked or ended.
    pub records_removed: Vec<String>,
    /// Carers' entries applied.
    pub contributions: u64,
    /// This profile's own entries to a record shared with it that its owner refused,
    /// with why (outside the grant, the grant ended).
    pub contributions_refused: Vec<String>,
    /// Carers' entries that arrived and wait for the person's approval
    /// ([`pending_contributions`]).
    pub contributions_waiting: u64,
    /// Grants this profile made that reached their end date in this exchange.
    pub expired: Vec<String>,
    /// Envelopes deleted at the relay for ended grants.
    pub relay_deleted: u64,
    /// People who gained access to this profile's record through this exchange
    /// (short ids), for the app to tell the person. Grants made on this device are
    /// reported by [`grant`] instead (`GrantInfo::new_access`); this list is for
    /// access granted elsewhere, such as a link being opened, and is empty until
    /// those land.
    pub new_access: Vec<String>,
    /// People (short ids, or the mailbox id of a recipient the profile does not
    /// know) whose relay mailbox was full: what is queued for them stays queued, in
    /// order, and goes at a later exchange. The rest of the exchange goes on.
    pub mailboxes_full: Vec<String>,
    /// Envelopes left queued because their recipient's mailbox was full.
    pub held_back: u64,
    /// What was exchanged with the person's other devices.
    pub devices: DevicesReport,
    /// People (short ids) whose keys changed: they removed one of their devices, and
    /// their old keys vouched for the new ones.
    pub keys_changed: Vec<String>,
    /// Whether this profile's previous keys were retired at the endpoint in this
    /// exchange (after a device was removed): they no longer sign in there.
    pub keys_retired: bool,
}

/// What one exchange between the person's devices did (the devices' part of an
/// [`ExchangeReport`]).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct DevicesReport {
    /// Batches taken from the other devices.
    pub batches_in: u64,
    /// Changes in them.
    pub changes_in: u64,
    /// Batches sent to the other devices.
    pub batches_out: u64,
    /// Batches refused (from a removed or unknown device, replayed, or damaged).
    pub refused: u64,
    /// Devices (by name) whose relay mailbox was full: their batches stay queued, in
    /// order, for a later exchange.
    pub full: Vec<String>,
}

/// Envelopes refused in one exchange, by the mailbox that posted them (as the relay
/// saw it signed in), so that a flood adds one audit row per sender, not one per
/// envelope.
#[derive(Default)]
struct Refusals {
    /// Per sender mailbox (`None`: the relay did not say), why each was refused.
    by_sender: BTreeMap<Option<String>, BTreeMap<String, u64>>,
    /// Their relay ids, acknowledged once the refusals are in the audit log.
    ids: Vec<i64>,
}

impl Refusals {
    fn add(&mut self, sender: Option<String>, id: i64, problem: EnvelopeProblem) {
        *self
            .by_sender
            .entry(sender)
            .or_default()
            .entry(problem.to_string())
            .or_insert(0) += 1;
        self.ids.push(id);
    }
}

/// The exchange with other people's devices, which only the primary device runs
/// (the whole exchange is the `exchange` module's, above this one).
pub async fn exchange_with_people(
    profile: Arc<Profile>,
    endpoint: &str,
    options: &CallOptions,
) -> Result<ExchangeReport> {
    let mut report = ExchangeReport::default();
    let deadline = options.deadline();
    let me = db(&profile, |p| {
        p.vault().write(|c| crate::vault::identity::get(c))
    })
    .await?;
    report.expired = db(&profile, |p| {
        expire_received(p)?;
        p.vault().write(grants::expire_due)
    })
    .await?;
    // Keys replaced when a device was removed: read their mailbox to the end, then
    // retire them at the endpoint, before the new ones sign in.
    for pending in db(&profile, rotation::pending).await? {
        retire_old(&profile, endpoint, options, pending, &mut report).await?;
    }
    let http = Http::new(deadline, options.cancel.clone())?;
    let relay = crate::net::relay::Relay::connect(http, endpoint, &me).await?;

    // Ended grants: delete what the relay still holds for them.
    let ended: Vec<(String, String)> = db(&profile, |p| {
        p.vault().read(|c| {
            Ok(c.prepare(
                "SELECT id, tag FROM grants WHERE direction = 'out' AND ended_at IS NOT NULL
                 AND relay_cleared = 0",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?)
        })
    })
    .await?;
    for (id, tag) in ended {
        report.relay_deleted += relay.delete_tag(&tag).await?;
        db(&profile, move |p| {
            p.vault().write(|c| {
                c.execute("UPDATE grants SET relay_cleared = 1 WHERE id = ?1", [&id])?;
                Ok(())
            })
        })
        .await?;
    }

    // The mailbox. Refusals are settled (recorded, then acknowledged) at the end,
    // however the reading ended.
    let me = Arc::new(me);
    let mut refusals = Refusals::default();
    let mut acked = 0u64;
    let read = read_mailbox(
        &profile,
        &relay,
        &me,
        endpoint,
        &mut report,
        &mut refusals,
        &mut acked,
    )
    .await;
    let settled = settle(&profile, &relay, refusals, &mut acked).await;
    if acked > 0 {
        db(&profile, move |p| {
            p.vault().write(|c| {
                audit::append(
                    c,
                    AuditEvent::EnvelopesAcknowledged,
                    None,
                    &format!("{acked} envelopes"),
                )
            })
        })
        .await?;
    }
    read?;
    settled?;

    // Deliveries, then everything queued.
    db(&profile, |p| p.vault().write(outbox::prepare_deliveries)).await?;
    let queued = db(&profile, |p| p.vault().read(outbox::pending)).await?;
    let mut per_tag: HashMap<String, u64> = HashMap::new();
    // Mailboxes found full: what follows for them waits, so that each recipient
    // still gets its envelopes in order.
    let mut full: HashSet<String> = HashSet::new();
    for q in queued {
        if full.contains(&q.mailbox) {
            report.held_back += 1;
            continue;
        }
        match relay.offer(&q.mailbox, &q.tag, &q.body).await {
            Ok(crate::net::relay::Posted::Stored(_)) => {}
            Ok(crate::net::relay::Posted::Full) => {
                tracing::warn!("a recipient's relay mailbox is full; their envelopes wait");
                report.held_back += 1;
                let mailbox = q.mailbox.clone();
                let who = db(&profile, move |p| {
                    p.vault().read(|c| {
                        Ok(rusqlite::OptionalExtension::optional(c.query_row(
                            "SELECT handle FROM people WHERE mailbox = ?1",
                            [&mailbox],
                            |r| r.get::<_, String>(0),
                        ))?)
                    })
                })
                .await?;
                report
                    .mailboxes_full
                    .push(who.unwrap_or_else(|| q.mailbox.clone()));
                full.insert(q.mailbox);
                continue;
            }
            // Refused for good (too large, or the recipient has no mailbox any
            // more): drop it rather than block everything queued behind it.
            Err(e @ (Error::InvalidInput { .. } | Error::NotFound { .. })) => {
                tracing::warn!(error = %e, "the relay refused an envelope; dropped");
                let (id, why) = (q.id, e.to_string());
                db(&profile, move |p| {
                    p.vault().write(|c| {
                        c.execute("DELETE FROM relay_outbox WHERE id = ?1", [id])?;
                        audit::append(
                            c,
                            AuditEvent::EnvelopeRejected,
                            None,
                            &format!("not posted: {why}"),
                        )
                    })
                })
                .await?;
                continue;
            }
            Err(e) => return Err(e),
        }
        report.posted += 1;
        *per_tag.entry(q.tag.clone()).or_insert(0) += 1;
        let (id, tag) = (q.id, q.tag);
        db(&profile, move |p| {
            p.vault().write(|c| outbox::posted(c, id, &tag))
        })
        .await?;
    }
    if !per_tag.is_empty() {
        db(&profile, move |p| {
            p.vault().write(|c| {
                for (tag, n) in &per_tag {
                    let party: Option<String> =
                        rusqlite::OptionalExtension::optional(c.query_row(
                            "SELECT p.handle FROM grants g JOIN people p ON p.id = g.person_id
                         WHERE g.tag = ?1",
                            [tag],
                            |r| r.get(0),
                        ))?;
                    audit::append(
                        c,
                        AuditEvent::EnvelopesDelivered,
                        party.as_deref(),
                        &format!("{n} envelopes"),
                    )?;
                }
                Ok(())
            })
        })
        .await?;
    }
    Ok(report)
}

/// Read the mailbox of keys this profile replaced to the end, then retire them at
/// the endpoint in favour of the current ones. Keys the endpoint already retired in
/// favour of the current ones are done; in favour of others is [`Error::Denied`].
async fn retire_old(
    profile: &Arc<Profile>,
    endpoint: &str,
    options: &CallOptions,
    pending: rotation::Pending,
    report: &mut ExchangeReport,
) -> Result<()> {
    let http = options.http()?;
    let successor = crate::crypto::identity::mailbox_id(&pending.successor);
    let old = Arc::new(pending.old);
    let detail = match crate::net::relay::Relay::sign_in(http, endpoint, &old).await? {
        crate::net::relay::SignIn::Replaced { successor: s } if s == successor => {
            "the previous keys were already retired at the endpoint"
        }
        crate::net::relay::SignIn::Replaced { .. } => {
            return Err(crate::net::relay::replaced_by_another())
        }
        crate::net::relay::SignIn::Session(session) => {
            let mut refusals = Refusals::default();
            let mut acked = 0u64;
            let read = read_mailbox(
                profile,
                &session,
                &old,
                endpoint,
                report,
                &mut refusals,
                &mut acked,
            )
            .await;
            settle(profile, &session, refusals, &mut acked).await?;
            read?;
            session.retire(&old, &pending.successor).await?;
            "the previous keys were retired at the endpoint; they no longer sign in"
        }
    };
    let id = pending.id;
    db(profile, move |p| rotation::finished(p, id, detail)).await?;
    report.keys_retired = true;
    Ok(())
}

/// Read the whole mailbox: apply each envelope, acknowledging the applied ones page
/// by page; refused ones are tallied in `refusals` for [`settle`].
async fn read_mailbox(
    profile: &Arc<Profile>,
    relay: &crate::net::relay::Relay,
    me: &Arc<crate::crypto::identity::Identity>,
    endpoint: &str,
    report: &mut ExchangeReport,
    refusals: &mut Refusals,
    acked: &mut u64,
) -> Result<()> {
    let mut after = 0;
    loop {
        let (page, more) = relay.fetch(after, 100).await?;
        let mut ack = Vec::with_capacity(page.len());
        for env in page {
            after = after.max(env.id);
            report.received += 1;
            let body = match base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                &env.body,
            ) {
                Ok(b) => b,
                Err(_) => {
                    let problem = EnvelopeProblem::Malformed;
                    report.refused.push(Refused { problem });
                    refusals.add(env.sender, env.id, problem);
                    continue;
                }
            };
            let (me2, mailbox, ep) = (me.clone(), relay.mailbox.clone(), endpoint.to_string());
            let tag = env.tag.clone();
            let outcome = db(profile, move |p| {
                incoming::process(p, &me2, &ep, &mailbox, &tag, &body)
            })
            .await;
            match outcome {
                Ok(applied) => {
                    report.applied += 1;
                    match applied {
                        incoming::Applied::PersonAdded(h) => report.people_added.push(h),
                        incoming::Applied::Grant { grant, .. } => {
                            if !report.grants_received.contains(&grant) {
                                report.grants_received.push(grant)
                            }
                        }
                        incoming::Applied::Revoked(g) => report.records_removed.push(g),
                        incoming::Applied::Contribution(n) => report.contributions += n,
                        incoming::Applied::KeysChanged(h) => report.keys_changed.push(h),
                        incoming::Applied::ContributionRefused(why) => {
                            report.contributions_refused.push(why)
                        }
                        incoming::Applied::ContributionWaiting(n) => {
                            report.contributions_waiting += n
                        }
                        incoming::Applied::Records { .. } | incoming::Applied::Resync => {}
                    }
                    ack.push(env.id);
                }
                // The vault could not be written (locked, full, busy): stop here and
                // leave the envelope at the relay for the next exchange.
                Err(
                    e @ (Error::Storage { .. }
                    | Error::Locked
                    | Error::Cancelled
                    | Error::Corrupt { .. }
                    | Error::KeyStore { .. }),
                ) => {
                    // What was applied before it goes now; the error is the news.
                    if relay.ack(&ack).await.is_ok() {
                        *acked += ack.len() as u64;
                    }
                    return Err(e);
                }
                Err(e) => {
                    let problem = match e {
                        Error::Envelope { problem } => problem,
                        // Anything else about one envelope (content that does not
                        // store, a record folder gone missing) refuses that envelope
                        // alone, so one bad envelope never blocks the mailbox.
                        other => {
                            tracing::warn!(error = %other, "an envelope could not be applied");
                            EnvelopeProblem::Malformed
                        }
                    };
                    tracing::debug!(%problem, "an envelope was refused");
                    report.refused.push(Refused { problem });
                    refusals.add(env.sender, env.id, problem);
                }
            }
        }
        relay.ack(&ack).await?;
        *acked += ack.len() as u64;
        if !more {
            break;
        }
    }
    Ok(())
}

/// Record the envelopes refused in this exchange, one audit row per sender with the
/// count and the reasons, then acknowledge them at the relay (so a refusal is always
/// recorded before its envelope goes; if the acknowledgement fails, they are refused
/// and counted again at the next exchange).
async fn settle(
    profile: &Arc<Profile>,
    relay: &crate::net::relay::Relay,
    refusals: Refusals,
    acked: &mut u64,
) -> Result<()> {
    if refusals.ids.is_empty() {
        return Ok(());
    }
    let Refusals { by_sender, ids } = refusals;
    let senders = by_sender.len();
    let total = ids.len();
    db(profile, move |p| {
        p.vault().write(|c| {
            let tx = c.transaction()?;
            for (sender, problems) in &by_sender {
                let n: u64 = problems.values().sum();
                let why = problems
                    .iter()
                    .map(|(problem, k)| format!("{problem} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let person: Option<String> = match sender {
                    Some(m) => rusqlite::OptionalExtension::optional(tx.query_row(
                        "SELECT handle FROM people WHERE mailbox = ?1",
                        [m],
                        |r| r.get(0),
                    ))?,
                    None => None,
                };
                let from = match (sender, &person) {
                    (_, Some(_)) => String::new(),
                    (Some(m), None) => format!(" from mailbox {m}"),
                    (None, None) => " from an unnamed sender".to_string(),
                };
                let noun = if n == 1 { "envelope" } else { "envelopes" };
                audit::append(
                    &tx,
                    AuditEvent::EnvelopeRejected,
                    person.as_deref(),
                    &format!("{n} {noun}{from} refused: {why}"),
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    })
    .await?;
    tracing::warn!(envelopes = total, senders, "envelopes were refused");
    relay.ack(&ids).await?;
    *acked += total as u64;
    Ok(())
}

#[doc(hidden)]
pub mod testing;
#[cfg(test)]
mod tests;
