//! Records the person keeps for people with no phone of their own (dependants), and
//! handing one over to its owner's own phone.

use std::sync::Arc;

use carry_core::devices as cd;
use carry_core::share::dependants as cdep;

use crate::devices::MoveOut;
use crate::error::Result;
use crate::profile::{blocking, Profile};
use crate::proxy::{ProxyNotice, ProxyStanding};
use crate::share::Basis;

/// What the keeper says when making a record for someone.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct NewDependant {
    /// The person's name (at most 500 characters).
    pub name: String,
    /// Their date of birth (a FHIR date, `YYYY-MM-DD`), if known. Required for
    /// parental responsibility: the reviews at 11 and 13 and the suspension at 16
    /// come from it.
    #[uniffi(default = None)]
    pub born: Option<String>,
    /// Why the keeper may act for them, the evidence seen and who decided (null:
    /// the person).
    pub basis: Basis,
    /// When the keeper's access ends (Unix seconds), if it is time-limited.
    #[uniffi(default = None)]
    pub ends_at: Option<i64>,
}

/// A record the person keeps for someone else.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Dependant {
    /// The id to open it by (`open_dependant`).
    pub profile: String,
    /// Whose record it is.
    pub name: String,
    /// Their date of birth, if known.
    pub born: Option<String>,
    /// The basis, evidence and who decided.
    pub basis: Basis,
    /// When the keeper began keeping it (Unix seconds).
    pub since: i64,
    /// When the keeper's access ends (Unix seconds), if it is time-limited.
    pub ends_at: Option<i64>,
    /// When the keeper last opened it (Unix seconds), if ever.
    pub last_used_at: Option<i64>,
    /// Where the keeper's access stands: only `Active` opens it for use.
    pub standing: ProxyStanding,
    /// The notices still ahead, soonest first.
    pub notices: Vec<ProxyNotice>,
}

impl From<cdep::Dependant> for Dependant {
    fn from(d: cdep::Dependant) -> Self {
        Dependant {
            profile: d.profile,
            name: d.name,
            born: d.terms.born,
            basis: d.terms.basis.into(),
            since: d.terms.since,
            ends_at: d.terms.ends_at,
            last_used_at: d.last_used_at,
            standing: d.standing.into(),
            notices: d.notices.into_iter().map(Into::into).collect(),
        }
    }
}

/// A notice that fell due about a record the person keeps.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DependantNotice {
    /// The dependant's profile id.
    pub profile: String,
    /// Their name.
    pub name: String,
    /// The notice.
    pub notice: ProxyNotice,
}

#[uniffi::export(async_runtime = "tokio")]
impl Profile {
    /// The records this person keeps for others (dependants), with where their
    /// access stands and the notices ahead.
    pub async fn dependants(&self) -> Result<Vec<Dependant>> {
        let core = self.core.clone();
        let all = blocking(move || cdep::list(&core)).await?;
        Ok(all.into_iter().map(Into::into).collect())
    }

    /// Make a record for someone with no phone, kept by this person on their
    /// behalf. It is that person's own profile (open it with `open_dependant`);
    /// both audit logs record the basis and who decided. `InvalidInput` for no name,
    /// a date of birth that is not one, parental responsibility without a date of
    /// birth, or an end date already past; `Denied` for parental responsibility for
    /// someone 16 or over.
    pub async fn add_dependant(&self, dependant: NewDependant) -> Result<Dependant> {
        let core = self.core.clone();
        let new = cdep::NewDependant {
            name: dependant.name,
            born: dependant.born,
            basis: dependant.basis.into(),
            ends_at: dependant.ends_at,
        };
        Ok(blocking(move || cdep::add(&core, &new)).await?.into())
    }

    /// Open the record kept for `who` (profile id or name) as a profile of its own:
    /// import into it, sync it with their providers, grant access to it, back it up.
    /// Opening counts as using the access. `Denied` (saying why and what to do) if
    /// the keeper's access is suspended (the young person turned 16), ended, or
    /// removed after five years unused; `NotFound` if no such record is kept.
    pub async fn open_dependant(&self, who: String) -> Result<Arc<Profile>> {
        let core = self.core.clone();
        let opened = blocking(move || cdep::open(&core, &who, cdep::Purpose::Use)).await?;
        Ok(Profile::wrap(opened, self.events.clone()))
    }

    /// Start handing the record kept for `who` over to their own phone, through
    /// this profile's endpoint: a pairing code to show, as for a move, whatever the
    /// keeper's standing. The record is marked as handed over. Then
    /// `wait_for_new_device` and `send` the digits their phone shows (it runs
    /// `start_move_in`), and once sent, `remove_dependant(who, true)`.
    pub async fn start_hand_over(&self, who: String) -> Result<Arc<MoveOut>> {
        let url = self.endpoint_url().await?;
        let core = self.core.clone();
        let record = blocking(move || {
            let p = cdep::open(&core, &who, cdep::Purpose::HandOver)?;
            cdep::mark_handed_over(&p)?;
            Ok(p)
        })
        .await?;
        let out = cd::MoveOut::start(&url).await?;
        MoveOut::wrap(out, Arc::new(record), false)
    }

    /// Delete the record kept for `who` from this device: after a hand-over
    /// (`handed_over`), or because the keeping is over. Its data and its key go
    /// together; the audit log says which. Returns their name.
    pub async fn remove_dependant(&self, who: String, handed_over: bool) -> Result<String> {
        let core = self.core.clone();
        blocking(move || cdep::remove(&core, &who, handed_over)).await
    }

    /// The notices that fell due about the records this person keeps since this was
    /// last asked (reviews at 11 and 13, the coming suspension at 16 and the
    /// suspension itself, the end, removal after five years unused), oldest first;
    /// each is given once. Show them to the keeper, and those for both to the person
    /// too.
    pub async fn dependant_notices(&self) -> Result<Vec<DependantNotice>> {
        let core = self.core.clone();
        let due = blocking(move || cdep::notices_due(&core)).await?;
        Ok(due
            .into_iter()
            .map(|d| DependantNotice {
                profile: d.profile,
                name: d.name,
                notice: d.notice.into(),
            })
            .collect())
    }
}
