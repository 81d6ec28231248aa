//! `carry dependants`: records the person keeps for people with no phone of their
//! own (an elderly parent, a young child), and handing one over to its owner.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use carry_core::devices::MoveOut;
use carry_core::share::dependants::{self, Dependant, NewDependant, Purpose};
use carry_core::share::proxy::{self, Decider};
use carry_core::share::{Basis, BasisKind};
use carry_core::{Error, Result};
use serde_json::json;

use crate::commands::grants::{date, notice_text, proxy_line};
use crate::context::{endpoint_of, open_own};
use crate::output::{clean, Outcome, Said};
use crate::said;

/// What `carry dependants` does.
#[derive(clap::Subcommand, Debug)]
pub enum DependantsAction {
    /// List them, with where your access stands and the notices that fell due.
    List,
    /// Make a record for someone who has no phone, kept by you on their behalf.
    Add {
        /// Their name.
        #[arg(long)]
        name: String,
        /// Their date of birth (YYYY-MM-DD); needed for a child.
        #[arg(long)]
        born: Option<String>,
        /// Why you may act for them: parental-responsibility,
        /// lasting-power-of-attorney, court-deputy, best-interests or patient-choice
        /// (they asked you to).
        #[arg(long)]
        basis: String,
        /// The evidence you hold for it (an LPA reference, a court order number).
        #[arg(long)]
        evidence: Option<String>,
        /// Who decided that you may: person (the default), practice or court.
        #[arg(long)]
        decided_by: Option<String>,
        /// When your access ends (YYYY-MM-DD), if it is time-limited.
        #[arg(long)]
        until: Option<String>,
    },
    /// Hand a record over to its owner's own phone (they run carry move-in there),
    /// then delete it from this device. They can grant you access back.
    HandOver {
        /// The dependant (profile id or name).
        who: String,
        /// Also write the pairing code as a QR image (.png or .svg).
        #[arg(long, value_name = "FILE")]
        qr: Option<PathBuf>,
        /// How long to wait for their phone, in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 600,
              value_parser = clap::value_parser!(u64).range(1..=3600))]
        wait: u64,
    },
    /// Delete a record you keep from this device, without handing it over.
    Remove {
        /// The dependant (profile id or name).
        who: String,
        /// Delete without asking.
        #[arg(long)]
        yes: bool,
    },
}

/// Run `carry dependants …`. These act on the person's own profile (the keeper's),
/// whichever profile is chosen.
pub fn run(home: &Path, action: Option<DependantsAction>) -> Result<Outcome> {
    match action.unwrap_or(DependantsAction::List) {
        DependantsAction::List => list(home),
        DependantsAction::Add {
            name,
            born,
            basis,
            evidence,
            decided_by,
            until,
        } => {
            let ends_at = until
                .as_deref()
                .map(|u| {
                    proxy::birth_date(u).map(proxy::midnight).ok_or_else(|| {
                        Error::invalid(format!("'{u}' is not a date; write it as YYYY-MM-DD"))
                    })
                })
                .transpose()?;
            let new = NewDependant {
                name,
                born,
                basis: Basis {
                    kind: BasisKind::parse(&basis)?,
                    evidence,
                    decided_by: Some(
                        decided_by
                            .as_deref()
                            .map_or(Ok(Decider::Person), Decider::parse)?,
                    ),
                },
                ends_at,
            };
            add(home, &new)
        }
        DependantsAction::HandOver { who, qr, wait } => {
            hand_over(home, &who, qr, Duration::from_secs(wait))
        }
        DependantsAction::Remove { who, yes } => remove(home, &who, yes),
    }
}

fn add(home: &Path, new: &NewDependant) -> Result<Outcome> {
    let own = open_own(home)?;
    let d = dependants::add(&own, new)?;
    let mut said = Said::new(json!(d));
    {
        said!(
            said,
            "You now keep {}'s record ({}). Act on it with --profile {} (or carry use {}): import, sync with their providers, grant access, back up.",
            clean(&d.name),
            d.profile,
            d.profile,
            d.profile
        );
        said!(said, "  {}", line(&d));
    }
    Ok(Outcome::ok(said))
}

fn line(d: &Dependant) -> String {
    proxy_line(&d.terms.basis, Some(d.standing), d.notices.first())
}

fn list(home: &Path) -> Result<Outcome> {
    let own = open_own(home)?;
    let due = dependants::notices_due(&own)?;
    let all = dependants::list(&own)?;
    let mut said = Said::new(json!({ "dependants": all, "due": due }));
    {
        for n in &due {
            said!(
                said,
                "Notice for {}'s record ({}): {}",
                clean(&n.name),
                date(n.notice.at),
                notice_text(&n.notice)
            );
        }
        if all.is_empty() {
            said!(
                said,
                "You keep no one else's record. Add one: carry dependants add --name NAME --basis BASIS"
            );
        }
        for d in &all {
            let born = d
                .terms
                .born
                .as_deref()
                .map(|b| format!(" born {}", clean(b)))
                .unwrap_or_default();
            let used = d.last_used_at.map_or("never".to_string(), date);
            said!(
                said,
                "{}  {}{born}, kept since {}, last opened {used}",
                d.profile,
                clean(&d.name),
                date(d.terms.since)
            );
            said!(said, "      {}", clean(&line(d)));
        }
    }
    Ok(Outcome::ok(said))
}

fn hand_over(home: &Path, who: &str, qr: Option<PathBuf>, wait: Duration) -> Result<Outcome> {
    let own = open_own(home)?;
    let url = endpoint_of(&own)?;
    let record = Arc::new(dependants::open(&own, who, Purpose::HandOver)?);
    let name = record.info()?.name;
    dependants::mark_handed_over(&record)?;
    let rt = crate::context::runtime()?;
    let out = rt.block_on(MoveOut::start(&url))?;
    crate::commands::devices::pair_and_send(&rt, &record, out, qr, "carry move-in", wait)?;
    record.lock();
    drop(record);
    let removed = dependants::remove(&own, who, true)?;
    let mut said = Said::new(json!({ "handed_over": removed }));
    {
        said!(
            said,
            "{}'s record is on their own phone now, and deleted from this one. They decide who sees it; they can grant you access back (you are among the people they know).",
            clean(&name)
        );
    }
    Ok(Outcome::ok(said))
}

fn remove(home: &Path, who: &str, yes: bool) -> Result<Outcome> {
    let own = open_own(home)?;
    if !yes {
        let answer = crate::prompt::ask(
            &format!("Delete the record you keep for {who} from this device, without handing it over? (yes/no)"),
            crate::prompt::Input::AnyInput,
        )?;
        if !matches!(answer.to_lowercase().as_str(), "y" | "yes") {
            return Err(Error::invalid("not deleted"));
        }
    }
    let name = dependants::remove(&own, who, false)?;
    let mut said = Said::new(json!({ "removed": name }));
    {
        said!(said, "Deleted the record you kept for {}.", clean(&name));
    }
    Ok(Outcome::ok(said))
}
