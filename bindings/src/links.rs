//! Showing a clinician, as apps call it: SMART Health Links carrying an
//! International Patient Summary. The person makes a link (with a QR code) from a
//! preset, lists and revokes their links, sees who opened them, and keeps an
//! emergency card ready; a clinician's app opens anyone's link with
//! [`open_share_link`].
//!
//! Thin on purpose: each call forwards to `carry_core::links` at the profile's
//! recorded endpoint and converts the answer. The link's key never reaches the
//! endpoint: it travels in the link itself (after `#`).

use carry_core::links as cl;

use crate::error::{CarryError, Result};
use crate::profile::{blocking, Profile};
use crate::share::{exchange_options, GrantInfo, Scope};

/// What a link's summary holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SharePreset {
    /// Allergies, current medicines, current problems, the latest vital signs, and
    /// emergency contacts.
    Emergency,
    /// Medicines and allergies.
    MedsAllergies,
    /// Everything except items with a sensitivity label.
    AllButRestricted,
    /// The part of the record given as `scope` in [`NewShareLink`], as for grants.
    Custom,
}

impl SharePreset {
    /// The preset of a stored link, by the name the core records.
    fn of_name(name: &str) -> Result<Self> {
        match name {
            "emergency" => Ok(SharePreset::Emergency),
            "meds-allergies" => Ok(SharePreset::MedsAllergies),
            "all-but-restricted" => Ok(SharePreset::AllButRestricted),
            "custom" => Ok(SharePreset::Custom),
            other => Err(CarryError::Internal {
                reason: format!("a stored link has an unknown preset '{other}'"),
            }),
        }
    }
}

/// What the person asks for when making a link. Only `preset` is required.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct NewShareLink {
    /// What goes in the summary.
    pub preset: SharePreset,
    /// The part of the record, for `Custom` (and only then): `InvalidInput` if
    /// `Custom` comes without one, or another preset with one.
    #[uniffi(default = None)]
    pub scope: Option<Scope>,
    /// How long the link works, in seconds: default an hour, from a minute to a
    /// year (else `InvalidInput`).
    #[uniffi(default = None)]
    pub expires_seconds: Option<i64>,
    /// A passcode (4 to 64 characters) the clinician must type. The endpoint locks
    /// the link after repeated wrong guesses. Tell it to the clinician separately
    /// from the QR code.
    #[uniffi(default = None)]
    pub passcode: Option<String>,
    /// The link works for one successful opening only.
    #[uniffi(default = false)]
    pub once: bool,
    /// The endpoint's copy follows the record as it changes (`refresh_share_links`
    /// uploads it).
    #[uniffi(default = false)]
    pub long_lived: bool,
    /// A label the person scanning sees (at most 80 characters). Off by default: it
    /// makes the QR code larger.
    #[uniffi(default = None)]
    pub label: Option<String>,
}

impl TryFrom<NewShareLink> for cl::NewShare {
    type Error = CarryError;

    fn try_from(n: NewShareLink) -> Result<Self> {
        let preset = match (n.preset, n.scope) {
            (SharePreset::Custom, Some(scope)) => cl::Preset::Custom(scope.into()),
            (SharePreset::Custom, None) => {
                return Err(CarryError::InvalidInput {
                    reason: "the custom preset needs a scope".into(),
                })
            }
            (_, Some(_)) => {
                return Err(CarryError::InvalidInput {
                    reason: "a scope goes with the custom preset only".into(),
                })
            }
            (SharePreset::Emergency, None) => cl::Preset::Emergency,
            (SharePreset::MedsAllergies, None) => cl::Preset::MedsAllergies,
            (SharePreset::AllButRestricted, None) => cl::Preset::AllButRestricted,
        };
        Ok(cl::NewShare {
            preset,
            expires_s: n.expires_seconds,
            passcode: n.passcode,
            once: n.once,
            long_lived: n.long_lived,
            direct: false,
            label: n.label,
        })
    }
}

/// A link the person made.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ShareLinkInfo {
    /// Its id (lists may show the first ten characters; calls accept either).
    pub id: String,
    /// The link to give out: the endpoint's viewer address with the `shlink:/`
    /// payload (holding the key) after `#`. Anyone holding it (and the passcode, if
    /// any) can read the summary until it expires or is revoked.
    pub link: String,
    /// The preset it was made from.
    pub preset: SharePreset,
    /// Its SMART Health Link flags: `L` long-lived, `P` passcode, `U` direct.
    pub flags: String,
    /// The label, if any.
    pub label: Option<String>,
    /// When it stops working (Unix seconds).
    pub expires_at: Option<i64>,
    /// When it was made (Unix seconds).
    pub created_at: i64,
    /// `active`, `revoked` or `expired` as this device knows it, or `locked` (wrong
    /// passcodes) or `used` (a one-time link opened) as the endpoint said when the
    /// access log was last fetched.
    pub state: String,
    /// Clinical resources in the summary.
    pub resources: i64,
    /// Openings the endpoint reported so far (see `share_link_accesses`).
    pub accesses: i64,
    /// Requests the endpoint refused while the link was in force (wrong passcodes,
    /// requests the link does not serve), as last fetched. They are counted, not
    /// listed; nothing is counted once the link has ended.
    pub refused: i64,
    /// When the last of those was refused (Unix seconds), as last fetched.
    pub last_refused_at: Option<i64>,
    /// Whether this is the emergency card's link.
    pub emergency_card: bool,
}

impl TryFrom<cl::ShareInfo> for ShareLinkInfo {
    type Error = CarryError;

    fn try_from(s: cl::ShareInfo) -> Result<Self> {
        Ok(ShareLinkInfo {
            preset: SharePreset::of_name(&s.preset)?,
            id: s.id,
            link: s.link,
            flags: s.flags,
            label: s.label,
            expires_at: s.expires_at,
            created_at: s.created_at,
            state: s.state,
            resources: s.resources,
            accesses: s.accesses,
            refused: s.refused,
            last_refused_at: s.last_refused_at,
            emergency_card: s.emergency_card,
        })
    }
}

/// What `stop_all_sharing` ended.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SharingStopped {
    /// The grants revoked (each was in force). Deliveries to them stopped at once.
    pub grants: Vec<GrantInfo>,
    /// The share links the endpoint no longer serves, the emergency card's too.
    pub links: Vec<ShareLinkInfo>,
    /// Ids of links the endpoint could not be asked to end (it was unreachable or
    /// refused): they still work. Tell the person, and call again.
    pub links_not_ended: Vec<String>,
    /// Whether the revocations reached the relay now, so its copies are gone and the
    /// people's apps are told to delete theirs; otherwise at the next `exchange`.
    pub sent: bool,
}

/// One access to a link, as the endpoint logged it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ShareAccess {
    /// Its number in the link's log, from 1.
    pub seq: i64,
    /// When (Unix seconds).
    pub at: i64,
    /// Who the opener said they were. Nothing checks this: show it as "claimed by".
    pub recipient: String,
    /// `ok`, `wrong-passcode`, `locked`, `expired`, `revoked` or `inactive`.
    pub outcome: String,
    /// `manifest`, `direct` or `file`.
    pub via: String,
}

impl From<cl::Access> for ShareAccess {
    fn from(a: cl::Access) -> Self {
        ShareAccess {
            seq: a.seq,
            at: a.at,
            recipient: a.recipient,
            outcome: a.outcome,
            via: a.via,
        }
    }
}

/// A QR code as a square of modules, for the app to draw (byte mode, error
/// correction level M). Leave a quiet zone of four modules around it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct QrCode {
    /// The QR version (1 to 40).
    pub version: u8,
    /// Modules per side, without the quiet zone.
    pub width: u32,
    /// `width * width` modules, row by row from the top left; `true` is dark.
    pub modules: Vec<bool>,
}

impl From<cl::QrMatrix> for QrCode {
    fn from(q: cl::QrMatrix) -> Self {
        QrCode {
            version: q.version,
            width: q.width,
            modules: q.modules,
        }
    }
}

/// A new link, with its QR code.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CreatedShareLink {
    /// The link.
    pub info: ShareLinkInfo,
    /// Its QR code.
    pub qr: QrCode,
}

/// One section of a [`PatientSummary`].
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SummarySection {
    /// Its LOINC code: `48765-2` allergies, `10160-0` medicines, `11450-4` problems,
    /// `11369-6` immunisations, `30954-2` results, `47519-4` procedures, `8716-3`
    /// vital signs.
    pub code: String,
    /// Its title.
    pub title: String,
    /// One line per entry; none when the section is empty.
    pub lines: Vec<String>,
    /// Whether it is empty because the patient left it out of the summary (the
    /// emergency card's contents), not because there is nothing to list.
    pub withheld: bool,
}

/// An International Patient Summary as a clinician reads it: who, when, and each
/// section's lines.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PatientSummary {
    /// The patient's name.
    pub name: Option<String>,
    /// Their date of birth (a FHIR date).
    pub birth_date: Option<String>,
    /// Their NHS number, where present.
    pub nhs_number: Option<String>,
    /// Their age in whole years when the summary was made.
    pub age: Option<u32>,
    /// Their preferred language.
    pub language: Option<String>,
    /// Whether the record says an interpreter is needed.
    pub interpreter_needed: bool,
    /// Their GP practice, as the record names it.
    pub gp_practice: Option<String>,
    /// The people to contact: name, relationship, telephone, a line each.
    pub contacts: Vec<String>,
    /// When the summary was made (a FHIR instant).
    pub made_at: Option<String>,
    /// The sections, in the document's order.
    pub sections: Vec<SummarySection>,
}

impl From<cl::Summary> for PatientSummary {
    fn from(s: cl::Summary) -> Self {
        PatientSummary {
            name: s.name,
            birth_date: s.birth_date,
            nhs_number: s.nhs_number,
            age: s.age,
            language: s.language,
            interpreter_needed: s.interpreter_needed,
            gp_practice: s.gp_practice,
            contacts: s.contacts,
            made_at: s.made_at,
            sections: s
                .sections
                .into_iter()
                .map(|x| SummarySection {
                    code: x.code,
                    title: x.title,
                    lines: x.lines,
                    withheld: x.withheld,
                })
                .collect(),
        }
    }
}

/// The emergency card: an always-ready link to the emergency summary, with its QR
/// code and the summary itself for showing without a network (a lock screen).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct EmergencyCard {
    /// The link: long-lived, direct (flags `LU`), valid a year, with no passcode, so
    /// anyone holding the QR code can read the emergency summary. Revoke it with
    /// `revoke_share_link` if the card is lost.
    pub info: ShareLinkInfo,
    /// Its QR code.
    pub qr: QrCode,
    /// The emergency summary as of now.
    pub summary: PatientSummary,
}

/// What a link held, as a clinician's app opens it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct OpenedShareLink {
    /// The FHIR Bundle, as decrypted, as JSON text.
    pub bundle_json: String,
    /// Its summary, if it is an IPS document.
    pub summary: Option<PatientSummary>,
    /// The link's label, if any.
    pub label: Option<String>,
    /// When the link expires (Unix seconds), if it says.
    pub expires_at: Option<i64>,
}

impl From<cl::Opened> for OpenedShareLink {
    fn from(o: cl::Opened) -> Self {
        OpenedShareLink {
            bundle_json: o.bundle.to_string(),
            summary: o.summary.map(Into::into),
            label: o.label,
            expires_at: o.expires_at,
        }
    }
}

fn infos(all: Vec<cl::ShareInfo>) -> Result<Vec<ShareLinkInfo>> {
    all.into_iter().map(TryInto::try_into).collect()
}

#[uniffi::export(async_runtime = "tokio")]
impl Profile {
    /// Make a link to a summary of the record: the summary is built, encrypted
    /// under a fresh key on this device, and uploaded to this profile's endpoint,
    /// which never sees the key. Give out `info.link` or show `qr`. Recorded in the
    /// audit log (`share-created`). `InvalidInput` if no endpoint is set, for a bad
    /// expiry, passcode or label, or a scope without the custom preset (or the
    /// reverse); `Network` if the endpoint cannot be reached. Safe to cancel.
    pub async fn create_share_link(&self, link: NewShareLink) -> Result<CreatedShareLink> {
        let new: cl::NewShare = link.try_into()?;
        let url = self.endpoint_url().await?;
        let (options, mut guard) = exchange_options(None);
        let made = cl::create(self.core.clone(), &url, &new, &options).await;
        guard.1 = false;
        let made = made?;
        Ok(CreatedShareLink {
            info: made.info.try_into()?,
            qr: made.qr.into(),
        })
    }

    /// The patient summary for `preset` (the International Patient Summary a link
    /// carries) as the JSON text of a FHIR document Bundle, to save or hand over
    /// without a link; every reference in it resolves inside it. Recorded in the
    /// audit log (`exported`). `InvalidInput` for the custom preset, which needs a
    /// scope: make a link for that.
    pub async fn summary_document(&self, preset: SharePreset) -> Result<String> {
        let preset = match preset {
            SharePreset::Emergency => cl::Preset::Emergency,
            SharePreset::MedsAllergies => cl::Preset::MedsAllergies,
            SharePreset::AllButRestricted => cl::Preset::AllButRestricted,
            SharePreset::Custom => {
                return Err(CarryError::InvalidInput {
                    reason: "a custom summary needs a scope: make a share link for it".into(),
                })
            }
        };
        let core = self.core.clone();
        let bundle = blocking(move || cl::summary_document(&core, &preset)).await?;
        Ok(bundle.to_string())
    }

    /// Every link this profile made, newest first, revoked and expired ones
    /// included. Access counts are as last fetched (`share_link_accesses`,
    /// `refresh_share_links`).
    pub async fn share_links(&self) -> Result<Vec<ShareLinkInfo>> {
        let core = self.core.clone();
        infos(blocking(move || cl::list(&core)).await?)
    }

    /// Who opened the link `id` (or the start of it), as the endpoint logged it,
    /// oldest first; new openings are copied into the audit log (`share-accessed`),
    /// each once, and one by one up to 100 per link (then one row per call counts
    /// the rest). Refused requests are a count: `ShareLinkInfo.refused`.
    /// `NotFound` for an unknown link; `InvalidInput` if no endpoint is set;
    /// `Network` if it cannot be reached.
    pub async fn share_link_accesses(&self, id: String) -> Result<Vec<ShareAccess>> {
        let url = self.endpoint_url().await?;
        let (options, mut guard) = exchange_options(None);
        let all = cl::accesses(self.core.clone(), &url, &id, &options).await;
        guard.1 = false;
        Ok(all?.into_iter().map(Into::into).collect())
    }

    /// Revoke the link `id` (or the start of it): the endpoint stops serving it at
    /// once. A summary already opened cannot be recalled. Recorded in the audit log
    /// (`share-revoked`). `NotFound` for an unknown link.
    pub async fn revoke_share_link(&self, id: String) -> Result<ShareLinkInfo> {
        let url = self.endpoint_url().await?;
        let (options, mut guard) = exchange_options(None);
        let info = cl::revoke(self.core.clone(), &url, &id, &options).await;
        guard.1 = false;
        info?.try_into()
    }

    /// Stop sharing with everyone at once: revoke every grant in force and end every
    /// share link in force, the emergency card's too, each recorded in the audit log.
    /// Grants end on this device even without the endpoint; links need it, and those
    /// it could not end are in `links_not_ended`. Copies already seen cannot be
    /// recalled.
    pub async fn stop_all_sharing(&self) -> Result<SharingStopped> {
        let url = self.endpoint_url().await.ok();
        let (options, mut guard) = exchange_options(None);
        let stopped =
            carry_core::stop_sharing::stop_all(self.core.clone(), url.as_deref(), &options).await;
        guard.1 = false;
        let stopped = stopped?;
        Ok(SharingStopped {
            grants: stopped.grants.into_iter().map(Into::into).collect(),
            links: stopped
                .links
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_>>()?,
            links_not_ended: stopped.links_not_ended.into_iter().map(|l| l.id).collect(),
            sent: stopped.sent,
        })
    }

    /// Keep links current: upload the summary of every long-lived link in force
    /// whose content changed, and copy new accesses into the audit log. Returns how
    /// many links were updated. Run it after an import or sync, and in the same
    /// background work. Safe to cancel.
    pub async fn refresh_share_links(&self) -> Result<u64> {
        let url = self.endpoint_url().await?;
        let (options, mut guard) = exchange_options(None);
        let updated = cl::refresh(self.core.clone(), &url, &options).await;
        guard.1 = false;
        Ok(updated?)
    }

    /// The emergency card, made on first call and kept current after: a
    /// long-lived direct link to the emergency summary (valid a year, no passcode),
    /// its QR code, and the summary for showing offline. Later calls return the
    /// same link, uploading the summary if it changed; a revoked or expiring card is
    /// replaced by a new one. `InvalidInput` if no endpoint is set.
    pub async fn emergency_card(&self) -> Result<EmergencyCard> {
        let url = self.endpoint_url().await?;
        let (options, mut guard) = exchange_options(None);
        let card = cl::emergency_card(self.core.clone(), &url, &options).await;
        guard.1 = false;
        let card = card?;
        Ok(EmergencyCard {
            info: card.info.try_into()?,
            qr: card.qr.into(),
            summary: card.summary.into(),
        })
    }
}

/// Open a SMART Health Link made by anyone (a bare `shlink:/…` or one behind a
/// viewer address): the clinician's side, no profile needed. `recipient` is who is
/// opening it, as the link's owner will see it (`Carry` if blank). Only `https`
/// addresses are followed (plain `http` only on this machine). `Denied` if a
/// passcode is needed or wrong (the reason says how many attempts are left);
/// `Revoked` if the link is revoked, expired at the endpoint, used up or locked;
/// `Expired` if the link says it has expired; `InvalidInput` for text that is not
/// a link or content that does not decrypt; `Network` if its server cannot be
/// reached.
#[uniffi::export(async_runtime = "tokio", default(passcode = None))]
pub async fn open_share_link(
    link: String,
    passcode: Option<String>,
    recipient: String,
) -> Result<OpenedShareLink> {
    let options = cl::OpenOptions {
        passcode,
        recipient,
        budget: None,
    };
    Ok(cl::open(&link, &options).await?.into())
}
