//! The person's preferences, as apps call them: the research and planning opt-outs
//! (recorded in Carry, exportable as FHIR `Consent`), the default grant length, the
//! lock timeout and what the emergency card shows. They are kept in the vault, so
//! they travel with the profile.
//!
//! Thin on purpose: each call forwards to `carry_core::prefs` on a blocking thread.

use carry_core::prefs as cp;

use crate::error::Result;
use crate::profile::{blocking, Profile};

/// A research and planning opt-out as the person recorded it in Carry. Turning one
/// off is kept too, with its date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct OptOut {
    /// Whether the person has opted out.
    pub opted_out: bool,
    /// When they recorded this choice in Carry (Unix seconds).
    pub recorded_at: i64,
}

impl From<cp::OptOut> for OptOut {
    fn from(o: cp::OptOut) -> Self {
        OptOut {
            opted_out: o.opted_out,
            recorded_at: o.recorded_at,
        }
    }
}

/// What the emergency card's summary holds; everything by default. Allergies,
/// medications and problems are required sections of the International Patient
/// Summary: one left out stays in the summary, empty and marked as withheld, so a
/// clinician knows it was left out rather than that there is nothing to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct EmergencyCardContents {
    /// Current allergies and intolerances.
    #[uniffi(default = true)]
    pub allergies: bool,
    /// Current medicines.
    #[uniffi(default = true)]
    pub medications: bool,
    /// Current problems (conditions).
    #[uniffi(default = true)]
    pub problems: bool,
    /// The latest reading of each vital sign.
    #[uniffi(default = true)]
    pub vital_signs: bool,
    /// The latest result of each kind, from the year before the newest.
    #[uniffi(default = true)]
    pub results: bool,
    /// The emergency contacts on the person's Patient record.
    #[uniffi(default = true)]
    pub contacts: bool,
}

impl From<cp::EmergencyCardContents> for EmergencyCardContents {
    fn from(c: cp::EmergencyCardContents) -> Self {
        EmergencyCardContents {
            allergies: c.allergies,
            medications: c.medications,
            problems: c.problems,
            vital_signs: c.vital_signs,
            results: c.results,
            contacts: c.contacts,
        }
    }
}

impl From<EmergencyCardContents> for cp::EmergencyCardContents {
    fn from(c: EmergencyCardContents) -> Self {
        cp::EmergencyCardContents {
            allergies: c.allergies,
            medications: c.medications,
            problems: c.problems,
            vital_signs: c.vital_signs,
            results: c.results,
            contacts: c.contacts,
        }
    }
}

/// The person's preferences, with defaults for any never set.
///
/// Recording an opt-out in Carry does not by itself register it with the NHS: link
/// the person to <https://www.nhs.uk/your-nhs-data-matters/> for the national data
/// opt-out, and tell them to ask their GP practice for a type 1 opt-out.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Preferences {
    /// The national data opt-out (England) as recorded in Carry; null if never set.
    pub national_opt_out: Option<OptOut>,
    /// The type 1 opt-out, held at the GP practice, as recorded in Carry; null if
    /// never set.
    pub type1_opt_out: Option<OptOut>,
    /// How long a new grant lasts when no length is given, in days (default 90, 1 to
    /// 1098).
    pub default_grant_days: u32,
    /// Seconds in the background before the app should lock the profile (default
    /// 300, at most 3600); 0: lock as soon as the app leaves the foreground. The core
    /// only stores this: the app enforces it (call `lock()`).
    pub lock_timeout_s: u32,
    /// What the emergency card shows.
    pub emergency_card: EmergencyCardContents,
    /// Whether carers' entries wait for the person's approval (`pendingContributions`)
    /// before they reach the record or any provider.
    pub approve_contributions: bool,
}

impl From<cp::Preferences> for Preferences {
    fn from(p: cp::Preferences) -> Self {
        Preferences {
            national_opt_out: p.national_opt_out.map(Into::into),
            type1_opt_out: p.type1_opt_out.map(Into::into),
            default_grant_days: p.default_grant_days,
            lock_timeout_s: p.lock_timeout_s,
            emergency_card: p.emergency_card.into(),
            approve_contributions: p.approve_contributions,
        }
    }
}

/// A change to the preferences: each field left null stays as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct PrefsChange {
    /// Opt out (true) or back in (false) of the national data opt-out, as of now.
    #[uniffi(default = None)]
    pub national_opt_out: Option<bool>,
    /// Opt out (true) or back in (false) of the type 1 opt-out, as of now.
    #[uniffi(default = None)]
    pub type1_opt_out: Option<bool>,
    /// The default grant length, 1 to 1098 days.
    #[uniffi(default = None)]
    pub default_grant_days: Option<u32>,
    /// The lock timeout, 0 to 3600 seconds.
    #[uniffi(default = None)]
    pub lock_timeout_s: Option<u32>,
    /// What the emergency card shows.
    #[uniffi(default = None)]
    pub emergency_card: Option<EmergencyCardContents>,
    /// Whether carers' entries wait for approval.
    #[uniffi(default = None)]
    pub approve_contributions: Option<bool>,
}

impl From<PrefsChange> for cp::PrefsChange {
    fn from(c: PrefsChange) -> Self {
        cp::PrefsChange {
            national_opt_out: c.national_opt_out,
            type1_opt_out: c.type1_opt_out,
            default_grant_days: c.default_grant_days,
            lock_timeout_s: c.lock_timeout_s,
            emergency_card: c.emergency_card.map(Into::into),
            approve_contributions: c.approve_contributions,
        }
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Profile {
    /// The person's preferences, with defaults for any never set.
    pub async fn preferences(&self) -> Result<Preferences> {
        let core = self.core.clone();
        Ok(blocking(move || cp::get(&core)).await?.into())
    }

    /// Change the preferences and return them as they now stand. A value out of
    /// range is `InvalidInput` (naming the range) and changes nothing. Setting an
    /// opt-out to what it already is keeps its original date. The change is
    /// recorded in the audit log by key, never by value.
    pub async fn set_preferences(&self, change: PrefsChange) -> Result<Preferences> {
        let core = self.core.clone();
        let change = cp::PrefsChange::from(change);
        Ok(blocking(move || cp::set(&core, &change)).await?.into())
    }

    /// The opt-outs that are on, each as a FHIR R4 `Consent` (JSON text): status
    /// active, scope research, a deny provision for research and planning. Empty
    /// when none is on. They record the person's choice; they are not an NHS
    /// registration. Like every export, one that is not empty is recorded in the
    /// audit log (`exported`).
    pub async fn research_consents(&self) -> Result<Vec<String>> {
        let core = self.core.clone();
        blocking(move || {
            Ok(cp::research_consents(&core)?
                .iter()
                .map(|c| c.to_string())
                .collect())
        })
        .await
    }
}
