//! Sharing, as apps call it: the profile's identity and endpoint, invites, people and
//! their safety numbers, grants (who sees which part of the record, in what role,
//! until when), records others share with this profile, the relay exchange, and the
//! hash-chained audit log.
//!
//! Thin on purpose: each call forwards to `carry_core::share` or `carry_core::audit`
//! on a blocking thread and converts the answer. `Events.on_new_access` is called
//! after the core call has returned, from a thread of its own, never while the vault
//! is locked.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use carry_core as cc;
use carry_core::audit as ca;
use carry_core::net::CallOptions;
use carry_core::share as cs;

use crate::callbacks::Events;
use crate::error::{CarryError, Result};
use crate::profile::{blocking, CancelOnDrop, Profile};
use crate::proxy::{Decider, ProxyNotice, ProxyStanding};
use crate::types::{mirror_enum, Category, Reading, TimelineItem};

/// What a person holding a grant may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Role {
    /// Sees the scoped record.
    Viewer,
    /// Sees it, and may add readings on the person's behalf (`contribute`).
    Contributor,
    /// A contributor who also manages grants (a Lasting Power of Attorney).
    Manager,
}

mirror_enum!(Role, cs::Role, [Viewer, Contributor, Manager]);

/// Why a proxy may act for the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum BasisKind {
    /// The person chose it.
    PatientChoice,
    /// A parent of a child.
    ParentalResponsibility,
    /// A registered Lasting Power of Attorney for health and welfare.
    LastingPowerOfAttorney,
    /// A deputy appointed by the Court of Protection.
    CourtDeputy,
    /// A best-interests decision under the Mental Capacity Act.
    BestInterests,
}

mirror_enum!(
    BasisKind,
    cs::BasisKind,
    [
        PatientChoice,
        ParentalResponsibility,
        LastingPowerOfAttorney,
        CourtDeputy,
        BestInterests
    ]
);

/// The basis of a proxy's access, with a note of the evidence seen.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Basis {
    /// The kind of basis.
    pub kind: BasisKind,
    /// What evidence was seen (an LPA reference, a court order number), at most 500
    /// characters.
    #[uniffi(default = None)]
    pub evidence: Option<String>,
    /// Who decided that the proxy may have access. Null on a grant made before it
    /// was recorded; when granting, null means the person.
    #[uniffi(default = None)]
    pub decided_by: Option<Decider>,
}

impl From<cs::Basis> for Basis {
    fn from(b: cs::Basis) -> Self {
        Basis {
            kind: b.kind.into(),
            evidence: b.evidence,
            decided_by: b.decided_by.map(Into::into),
        }
    }
}

impl From<Basis> for cs::Basis {
    fn from(b: Basis) -> Self {
        cs::Basis {
            kind: b.kind.into(),
            evidence: b.evidence,
            decided_by: Some(b.decided_by.map_or(cs::proxy::Decider::Person, Into::into)),
        }
    }
}

/// Which part of the record a grant covers. Only `categories` is required.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Scope {
    /// The categories shared (at least one).
    pub categories: Vec<Category>,
    /// Only these FHIR resource types, if any are listed.
    #[uniffi(default = [])]
    pub resource_types: Vec<String>,
    /// Only data dated on or after this FHIR date.
    #[uniffi(default = None)]
    pub data_from: Option<String>,
    /// Only data dated before this FHIR date.
    #[uniffi(default = None)]
    pub data_until: Option<String>,
    /// Sensitivity labels (HL7 v3 codes such as `PSY`) whose items are included;
    /// items with any other label are left out. Sharing any label needs a verified
    /// person (`verify_person`), else `Denied`.
    #[uniffi(default = [])]
    pub include_labels: Vec<String>,
    /// Item ids left out one by one.
    #[uniffi(default = [])]
    pub hidden: Vec<i64>,
}

impl From<cs::Scope> for Scope {
    fn from(s: cs::Scope) -> Self {
        Scope {
            categories: s.categories.into_iter().map(Into::into).collect(),
            resource_types: s.resource_types,
            data_from: s.data_from,
            data_until: s.data_until,
            include_labels: s.include_labels,
            hidden: s.hidden,
        }
    }
}

impl From<Scope> for cs::Scope {
    fn from(s: Scope) -> Self {
        cs::Scope {
            categories: s.categories.into_iter().map(Into::into).collect(),
            resource_types: s.resource_types,
            data_from: s.data_from,
            data_until: s.data_until,
            include_labels: s.include_labels,
            hidden: s.hidden,
        }
    }
}

/// A person this profile knows.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Person {
    /// Their short id, to name them in other calls (`grant`, `view_as`, …).
    pub person: String,
    /// Their name.
    pub name: String,
    /// The safety number both of you see; compare it (in person or on a call) before
    /// marking them verified.
    pub fingerprint: String,
    /// Whether the safety number was compared and confirmed.
    pub verified: bool,
    /// When they were added (Unix seconds).
    pub added_at: i64,
}

impl From<cs::Person> for Person {
    fn from(p: cs::Person) -> Self {
        Person {
            person: p.person,
            name: p.name,
            fingerprint: p.fingerprint,
            verified: p.verified,
            added_at: p.added_at,
        }
    }
}

/// An identity's public keys, base64url.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PublicKeys {
    /// The Ed25519 signing key.
    pub sign: String,
    /// The X25519 key.
    pub enc: String,
}

/// This profile's own identity, as others see it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MyIdentity {
    /// The short id others know this profile by.
    pub person: String,
    /// The name.
    pub name: String,
    /// This identity's own fingerprint (30 digits).
    pub fingerprint: String,
    /// The relay mailbox id (opaque).
    pub mailbox: String,
    /// The public keys.
    pub keys: PublicKeys,
    /// The relay and share endpoint, if one is set.
    pub endpoint: Option<String>,
}

impl From<cs::MyIdentity> for MyIdentity {
    fn from(m: cs::MyIdentity) -> Self {
        MyIdentity {
            person: m.person,
            name: m.name,
            fingerprint: m.fingerprint,
            mailbox: m.mailbox,
            keys: PublicKeys {
                sign: m.keys.sign,
                enc: m.keys.enc,
            },
            endpoint: m.endpoint,
        }
    }
}

/// A new invite.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Invite {
    /// The code to pass on, as text or a QR code. It holds no health data.
    pub code: String,
    /// When it stops working (Unix seconds): 24 hours after it was made.
    pub expires_at: i64,
}

impl From<cs::Invite> for Invite {
    fn from(i: cs::Invite) -> Self {
        Invite {
            code: i.code,
            expires_at: i.expires_at,
        }
    }
}

/// What the person asks for when granting access.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct NewGrant {
    /// The person (short id or name).
    pub person: String,
    /// Their role.
    pub role: Role,
    /// The part of the record.
    pub scope: Scope,
    /// Why, in the person's words (at most 500 characters).
    pub purpose: String,
    /// For a proxy: the basis and its evidence.
    #[uniffi(default = None)]
    pub basis: Option<Basis>,
    /// How long it lasts, in seconds, at most about three years. Null: the person's
    /// default grant length (`Preferences.default_grant_days`, 90 days unless changed).
    #[uniffi(default = None)]
    pub duration_seconds: Option<i64>,
    /// Grant even though the person was never verified (safety numbers compared);
    /// without it, such a grant is `Denied`, saying why.
    #[uniffi(default = false)]
    pub unverified: bool,
}

impl From<NewGrant> for cs::NewGrant {
    fn from(g: NewGrant) -> Self {
        cs::NewGrant {
            person: g.person,
            role: g.role.into(),
            scope: g.scope.into(),
            purpose: g.purpose,
            basis: g.basis.map(Into::into),
            duration_s: g.duration_seconds,
            unverified: g.unverified,
        }
    }
}

/// A grant, as lists show it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct GrantInfo {
    /// The grant's id.
    pub grant: String,
    /// `out`: made by this profile; `in`: made to it.
    pub direction: String,
    /// The other person's short id.
    pub person: String,
    /// Their name.
    pub name: String,
    /// The role.
    pub role: Role,
    /// The scope.
    pub scope: Scope,
    /// The purpose.
    pub purpose: String,
    /// The basis, for a proxy.
    pub basis: Option<Basis>,
    /// Review dates (FHIR dates), for a child's record.
    pub review_dates: Vec<String>,
    /// Its revision, from 1.
    pub revision: u32,
    /// When it ends (Unix seconds).
    pub expires_at: i64,
    /// `active`, `revoked` or `expired`.
    pub state: String,
    /// When something was last delivered on it (Unix seconds).
    pub last_delivery_at: Option<i64>,
    /// How many items the grantee holds (on the grantor's side).
    pub items: i64,
    /// Whether this grant gave a new person access, rather than changing a grant
    /// they already held. Set only on the answer to `grant`.
    pub new_access: bool,
    /// For a proxy's grant (one with a basis): where its access stands under the
    /// proxy rules now. Null for any other grant.
    pub standing: Option<ProxyStanding>,
    /// For a proxy's grant: the notices still ahead, soonest first (reviews at 11
    /// and 13, the suspension at 16, the end).
    pub notices: Vec<ProxyNotice>,
}

impl From<cs::GrantInfo> for GrantInfo {
    fn from(g: cs::GrantInfo) -> Self {
        GrantInfo {
            grant: g.grant,
            direction: g.direction,
            person: g.person,
            name: g.name,
            role: g.role.into(),
            scope: g.scope.into(),
            purpose: g.purpose,
            basis: g.basis.map(Into::into),
            review_dates: g.review_dates,
            revision: g.revision,
            expires_at: g.expires_at,
            state: g.state,
            last_delivery_at: g.last_delivery_at,
            items: g.items,
            new_access: g.new_access,
            standing: g.standing.map(Into::into),
            notices: g.notices.into_iter().map(Into::into).collect(),
        }
    }
}

/// A record someone shares with this profile. Open it with `open_received`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ReceivedProfile {
    /// The id to select it by: the sharer's short id.
    pub profile: String,
    /// Whose record it is.
    pub name: String,
    /// Always false: the record belongs to someone else.
    pub owner: bool,
    /// The grant it arrives under.
    pub grant: String,
    /// The role this profile holds.
    pub role: Role,
    /// When access ends (Unix seconds).
    pub expires_at: i64,
}

impl From<cs::ReceivedProfile> for ReceivedProfile {
    fn from(r: cs::ReceivedProfile) -> Self {
        ReceivedProfile {
            profile: r.profile,
            name: r.name,
            owner: r.owner,
            grant: r.grant,
            role: r.role.into(),
            expires_at: r.expires_at,
        }
    }
}

/// One row of the audit log. Rows name events, parties and counts, never health
/// data.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AuditEntry {
    /// Its position, from 1.
    pub seq: i64,
    /// When (Unix seconds).
    pub at: i64,
    /// What happened: `grant-created`, `envelopes-delivered`, `record-removed`, …
    pub event: String,
    /// Who it concerns: a person's short id, a grant or a source, if anyone.
    pub party: Option<String>,
    /// Details: ids, counts and reasons.
    pub detail: String,
}

impl From<ca::AuditEntry> for AuditEntry {
    fn from(e: ca::AuditEntry) -> Self {
        AuditEntry {
            seq: e.seq,
            at: e.at,
            event: e.event,
            party: e.party,
            detail: e.detail,
        }
    }
}

/// The outcome of walking the audit log's hash chain.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AuditCheck {
    /// Rows checked.
    pub entries: i64,
    /// The first row whose hash does not follow, if any.
    pub broken_at: Option<i64>,
    /// Whether the whole chain holds (`broken_at` is null).
    pub ok: bool,
}

impl From<ca::AuditCheck> for AuditCheck {
    fn from(c: ca::AuditCheck) -> Self {
        AuditCheck {
            ok: c.ok(),
            entries: c.entries,
            broken_at: c.broken_at,
        }
    }
}

/// Why an envelope from the relay was refused (and dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum EnvelopeProblem {
    /// It does not open: changed in transit, or not sealed by the sender it names.
    Tampered,
    /// Its sequence number was already taken: a replay.
    Replayed,
    /// Its sequence number skips ahead: envelopes are missing or out of order.
    OutOfOrder,
    /// It comes from nobody this profile knows, or for a grant it does not hold.
    UnknownSender,
    /// The grant it is for has ended or does not allow what it carries.
    NotAllowed,
    /// It opened but its content is not a Carry message this build understands.
    Malformed,
}

mirror_enum!(
    EnvelopeProblem,
    cc::error::EnvelopeProblem,
    [
        Tampered,
        Replayed,
        OutOfOrder,
        UnknownSender,
        NotAllowed,
        Malformed
    ]
);

/// A carer's entries waiting for the person's approval.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PendingContribution {
    /// Its id, for `approve_contribution` and `reject_contribution`.
    pub id: i64,
    /// The carer's short id.
    pub person: String,
    /// The carer's name.
    pub name: String,
    /// The grant they wrote under.
    pub grant: String,
    /// When it arrived (Unix seconds).
    pub received_at: i64,
    /// The entries' display lines.
    pub entries: Vec<String>,
}

impl From<cs::PendingContribution> for PendingContribution {
    fn from(p: cs::PendingContribution) -> Self {
        PendingContribution {
            id: p.id,
            person: p.person,
            name: p.name,
            grant: p.grant,
            received_at: p.received_at,
            entries: p.entries,
        }
    }
}

/// What one exchange with the relay did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ExchangeReport {
    /// Envelopes posted.
    pub posted: u64,
    /// Envelopes fetched from the mailbox.
    pub received: u64,
    /// Of those, applied.
    pub applied: u64,
    /// Of those, refused (and dropped), with why.
    pub refused: Vec<EnvelopeProblem>,
    /// People who took up an invite (short ids).
    pub people_added: Vec<String>,
    /// Grants received or changed (ids).
    pub grants_received: Vec<String>,
    /// Shared records deleted because their grant was revoked or ended (grant ids).
    pub records_removed: Vec<String>,
    /// Carers' entries applied.
    pub contributions: u64,
    /// This profile's own entries to a record shared with it that its owner refused,
    /// with why (outside the grant, or the grant ended).
    pub contributions_refused: Vec<String>,
    /// Carers' entries that arrived and wait for the person's approval
    /// (`pendingContributions`).
    pub contributions_waiting: u64,
    /// Grants this profile made that reached their end date in this exchange.
    pub expired: Vec<String>,
    /// Envelopes deleted at the relay for ended grants.
    pub relay_deleted: u64,
    /// People who gained access to this profile's record in this exchange (short
    /// ids). Each is also reported to `Events.on_new_access`.
    pub new_access: Vec<String>,
    /// People (short ids, or a mailbox id for a recipient not known here) whose relay
    /// mailbox was full: what is queued for them waits, in order, for a later
    /// `exchange`, and the rest of this one went on. Tell the person if it lasts.
    pub mailboxes_full: Vec<String>,
    /// Envelopes left queued because their recipient's mailbox was full.
    pub held_back: u64,
    /// What was exchanged with the person's other devices (all zero on one device).
    pub devices: crate::devices::DevicesReport,
    /// People (short ids) whose keys changed: they removed one of their devices, and
    /// their previous keys vouched for the new ones. Grants to them were re-issued.
    pub keys_changed: Vec<String>,
    /// Whether this profile's previous keys were retired at the endpoint in this
    /// exchange, after `remove_device`: from now on they no longer sign in there.
    pub keys_retired: bool,
}

impl From<cs::ExchangeReport> for ExchangeReport {
    fn from(r: cs::ExchangeReport) -> Self {
        ExchangeReport {
            posted: r.posted,
            received: r.received,
            applied: r.applied,
            refused: r.refused.into_iter().map(|x| x.problem.into()).collect(),
            people_added: r.people_added,
            grants_received: r.grants_received,
            records_removed: r.records_removed,
            contributions: r.contributions,
            contributions_refused: r.contributions_refused,
            contributions_waiting: r.contributions_waiting,
            expired: r.expired,
            relay_deleted: r.relay_deleted,
            new_access: r.new_access,
            mailboxes_full: r.mailboxes_full,
            held_back: r.held_back,
            devices: r.devices.into(),
            keys_changed: r.keys_changed,
            keys_retired: r.keys_retired,
        }
    }
}

/// Someone who gained access, as `Events.on_new_access` reports them.
struct NewAccess {
    person: String,
    name: String,
    grant: String,
}

/// Tell the app's [`Events`] about new access, on a blocking thread of its own: the
/// core call has returned, so no vault lock is held, and the caller's thread is never
/// used. A failing callback does not undo or fail the call that granted access.
async fn tell_new_access(events: Option<Arc<dyn Events>>, found: Vec<NewAccess>) {
    let Some(events) = events else { return };
    if found.is_empty() {
        return;
    }
    let delivered = tokio::task::spawn_blocking(move || {
        for a in found {
            events.on_new_access(a.person, a.name, a.grant);
        }
    })
    .await;
    if delivered.is_err() {
        tracing::warn!("an Events.on_new_access callback failed");
    }
}

/// Exchange options with a cancel flag that is set if the caller's future is dropped.
pub(crate) fn exchange_options(budget_seconds: Option<u32>) -> (CallOptions, CancelOnDrop) {
    let cancel = Arc::new(AtomicBool::new(false));
    let guard = CancelOnDrop(cancel.clone(), true);
    let options = CallOptions {
        budget: budget_seconds.map(|s| Duration::from_secs(u64::from(s.max(1)))),
        cancel: Some(cancel),
    };
    (options, guard)
}

impl Profile {
    /// The endpoint recorded in the profile, on a blocking thread.
    pub(crate) async fn endpoint_url(&self) -> Result<String> {
        let core = self.core.clone();
        blocking(move || cs::endpoint(&core, None)).await
    }

    /// One exchange with the relay at `url`; reports its new access to the app.
    async fn run_exchange(
        &self,
        url: String,
        budget_seconds: Option<u32>,
    ) -> Result<ExchangeReport> {
        let (options, mut guard) = exchange_options(budget_seconds);
        let report = carry_core::exchange::exchange(self.core.clone(), &url, &options).await;
        guard.1 = false;
        let report: ExchangeReport = report?.into();
        if self.events.is_some() && !report.new_access.is_empty() {
            // The report names people only; the grants in force give name and grant.
            let core = self.core.clone();
            let ids = report.new_access.clone();
            let found = blocking(move || {
                let grants = cs::who_can_see(&core)?;
                let people = cs::people(&core)?;
                Ok(ids
                    .into_iter()
                    .map(|id| {
                        let g = grants.iter().find(|g| g.person == id);
                        let name = g
                            .map(|g| g.name.clone())
                            .or_else(|| {
                                people
                                    .iter()
                                    .find(|p| p.person == id)
                                    .map(|p| p.name.clone())
                            })
                            .unwrap_or_default();
                        NewAccess {
                            grant: g.map(|g| g.grant.clone()).unwrap_or_default(),
                            person: id,
                            name,
                        }
                    })
                    .collect::<Vec<_>>())
            })
            .await?;
            tell_new_access(self.events.clone(), found).await;
        }
        Ok(report)
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Profile {
    /// This profile's identity as others see it: short id, name, fingerprint, keys
    /// and endpoint. The identity is made on first use.
    pub async fn my_identity(&self) -> Result<MyIdentity> {
        let core = self.core.clone();
        Ok(blocking(move || cs::my_identity(&core)).await?.into())
    }

    /// Record the endpoint whose relay this profile shares through (`https://`;
    /// `http://` only on loopback). `InvalidInput` for a bad URL.
    pub async fn set_endpoint(&self, url: String) -> Result<()> {
        let core = self.core.clone();
        blocking(move || cs::set_endpoint(&core, &url)).await
    }

    /// The endpoint this profile shares through, or null if none is set yet.
    pub async fn endpoint(&self) -> Result<Option<String>> {
        match self.endpoint_url().await {
            Ok(url) => Ok(Some(url)),
            Err(CarryError::InvalidInput { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Make an invite to pass to someone (valid 24 hours). It first exchanges with
    /// the relay, so this profile's keys are there for the invitee. Needs an
    /// endpoint (`set_endpoint`), else `InvalidInput`; `Network` if the relay cannot
    /// be reached.
    pub async fn create_invite(&self) -> Result<Invite> {
        let url = self.endpoint_url().await?;
        self.run_exchange(url.clone(), None).await?;
        let core = self.core.clone();
        Ok(blocking(move || cs::invite(&core, &url)).await?.into())
    }

    /// Take up an invite code: the inviter is added at once and this profile's keys
    /// are sent to them through the relay. Compare the returned person's
    /// `fingerprint` with them before `verify_person`. `InvalidInput` for a code that
    /// is not a Carry invite, for another endpoint than this profile's, or, when this
    /// profile has no endpoint yet, unless `adopt_endpoint` is true: the invite's
    /// endpoint then becomes this profile's, for sharing and backups, so ask the
    /// person first (or `set_endpoint` yourself). `Expired` for an old one. If the
    /// relay cannot be reached the call fails with `Network`, but the inviter is kept
    /// and the keys go at the next `exchange`.
    #[uniffi::method(default(adopt_endpoint = false))]
    pub async fn accept_invite(&self, code: String, adopt_endpoint: bool) -> Result<Person> {
        let core = self.core.clone();
        let person = blocking(move || cs::accept(&core, &code, adopt_endpoint)).await?;
        let url = self.endpoint_url().await?;
        self.run_exchange(url, None).await?;
        Ok(person.into())
    }

    /// Carers' entries waiting for the person's approval (when
    /// `Preferences.approve_contributions` is on), oldest first.
    pub async fn pending_contributions(&self) -> Result<Vec<PendingContribution>> {
        let core = self.core.clone();
        let all = blocking(move || cs::pending_contributions(&core)).await?;
        Ok(all.into_iter().map(Into::into).collect())
    }

    /// Apply waiting entries `id` to the record, after checking them against the
    /// grant again (`Denied` if it ended or narrowed since; the carer is told).
    /// Returns the entries applied.
    pub async fn approve_contribution(&self, id: i64) -> Result<u64> {
        let core = self.core.clone();
        blocking(move || cs::approve_contribution(&core, id)).await
    }

    /// Decline waiting entries `id`: nothing is applied, and the carer is told.
    pub async fn reject_contribution(&self, id: i64) -> Result<()> {
        let core = self.core.clone();
        blocking(move || cs::reject_contribution(&core, id)).await
    }

    /// Everyone this profile knows.
    pub async fn people(&self) -> Result<Vec<Person>> {
        let core = self.core.clone();
        let all = blocking(move || cs::people(&core)).await?;
        Ok(all.into_iter().map(Into::into).collect())
    }

    /// Mark `person` (short id or name) verified, once the safety numbers match.
    pub async fn verify_person(&self, person: String) -> Result<Person> {
        let core = self.core.clone();
        Ok(blocking(move || cs::verify_person(&core, &person))
            .await?
            .into())
    }

    /// Grant a person access, or change the grant they hold (a new revision). The
    /// record reaches them at the next `exchange`. `Denied` if the scope includes
    /// sensitivity labels and the person is not verified; `InvalidInput` for an empty
    /// scope or a bad duration. A grant that gives someone new access is also
    /// reported to `Events.on_new_access`.
    pub async fn grant(&self, grant: NewGrant) -> Result<GrantInfo> {
        let core = self.core.clone();
        let new: cs::NewGrant = grant.into();
        let info: GrantInfo = blocking(move || cs::grant(&core, &new)).await?.into();
        if info.new_access {
            let found = vec![NewAccess {
                person: info.person.clone(),
                name: info.name.clone(),
                grant: info.grant.clone(),
            }];
            tell_new_access(self.events.clone(), found).await;
        }
        Ok(info)
    }

    /// Every grant, made by this profile (`out`) or to it (`in`), newest first,
    /// ended ones included.
    pub async fn grants(&self) -> Result<Vec<GrantInfo>> {
        let core = self.core.clone();
        let all = blocking(move || cs::grants(&core)).await?;
        Ok(all.into_iter().map(Into::into).collect())
    }

    /// Who can see this record now: each grant in force this profile made, with its
    /// scope, end date and last delivery.
    pub async fn who_can_see(&self) -> Result<Vec<GrantInfo>> {
        let core = self.core.clone();
        let all = blocking(move || cs::who_can_see(&core)).await?;
        Ok(all.into_iter().map(Into::into).collect())
    }

    /// Revoke a grant this profile made. Deliveries stop at once; the relay's copies
    /// are deleted and the revocation sent at the next `exchange`. A copy already
    /// seen cannot be recalled. `Revoked` if it already was.
    pub async fn revoke(&self, grant_id: String) -> Result<GrantInfo> {
        let core = self.core.clone();
        Ok(blocking(move || cs::revoke(&core, &grant_id)).await?.into())
    }

    /// The record exactly as `person` receives it under their grant in force.
    /// `NotFound` if they hold none.
    pub async fn view_as(&self, person: String) -> Result<Vec<TimelineItem>> {
        let core = self.core.clone();
        let items = blocking(move || cs::view_as(&core, &person)).await?;
        Ok(items.into_iter().map(Into::into).collect())
    }

    /// A grant as a FHIR R4 `Consent` resource, as JSON text. Recorded in the audit
    /// log as an export.
    pub async fn consent(&self, grant_id: String) -> Result<String> {
        let core = self.core.clone();
        blocking(move || Ok(cs::consent(&core, &grant_id)?.to_string())).await
    }

    /// The signed grant document of `grant_id` (`schemas/grant.schema.json`), as
    /// JSON text.
    pub async fn grant_document(&self, grant_id: String) -> Result<String> {
        let core = self.core.clone();
        blocking(move || cs::grant_document(&core, &grant_id)).await
    }

    /// Records shared with this profile whose grants are in force. Grants that
    /// reached their end date are ended here and their copies deleted.
    pub async fn received_profiles(&self) -> Result<Vec<ReceivedProfile>> {
        let core = self.core.clone();
        let all = blocking(move || cs::received_profiles(&core)).await?;
        Ok(all.into_iter().map(Into::into).collect())
    }

    /// Open the record `person` (the sharer's short id or name) shares with this
    /// profile, as a profile of its own: read it with `timeline`, `search`, `show`.
    /// It reports to this profile's `Events`. `NotFound` if no such record is held.
    pub async fn open_received(&self, person: String) -> Result<Arc<Profile>> {
        let core = self.core.clone();
        let opened = blocking(move || cs::open_received(&core, &person)).await?;
        Ok(Arc::new(Profile {
            core: Arc::new(opened),
            events: self.events.clone(),
        }))
    }

    /// Add a reading to the record `person` shares with this profile, as their
    /// carer, with an optional note. It is sealed to them at once and sent at the
    /// next `exchange`; their device applies it if the grant still allows it then.
    /// `Denied` for a viewer; `InvalidInput` for an implausible value.
    pub async fn contribute(
        &self,
        person: String,
        reading: Reading,
        note: Option<String>,
    ) -> Result<()> {
        let core = self.core.clone();
        let reading: cc::Reading = reading.into();
        blocking(move || cs::contribute(&core, &person, &reading, note.as_deref())).await
    }

    /// The audit log, newest first, at most `limit` rows.
    pub async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        let core = self.core.clone();
        let all = blocking(move || cs::audit_log(&core, limit)).await?;
        Ok(all.into_iter().map(Into::into).collect())
    }

    /// Walk the audit log's hash chain: `ok` unless a row was edited, removed or
    /// reordered.
    pub async fn verify_audit(&self) -> Result<AuditCheck> {
        let core = self.core.clone();
        Ok(blocking(move || cs::verify_audit(&core)).await?.into())
    }

    /// Exchange with the relay at this profile's endpoint: fetch and apply what was
    /// sent to this profile, seal what changed for each grant in force, post
    /// everything queued, and end grants that reached their end date. Stops after
    /// `budget_seconds` if given; every step resumes at the next exchange. Safe to
    /// cancel. `InvalidInput` if no endpoint is set; `Network` if the relay cannot be
    /// reached.
    pub async fn exchange(&self, budget_seconds: Option<u32>) -> Result<ExchangeReport> {
        let url = self.endpoint_url().await?;
        self.run_exchange(url, budget_seconds).await
    }
}
