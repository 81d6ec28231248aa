//! The commands: each opens the profile, calls the core, and prints text or JSON.

pub mod backup;
pub mod contacts;
pub mod dependants;
pub mod devices;
pub mod documents;
pub mod grants;
pub mod links;
pub mod prefs;
pub mod record;
pub mod sync;
pub mod trend;

use std::io;
use std::path::Path;

use carry_core::query::TimelineQuery;
use carry_core::{Category, Error, ExportScope, Item, Profile, Reading, Result};

use crate::context::open;
use crate::exit;
use crate::output::Outcome;
use crate::passphrase;
use crate::Command;

/// Filters shared by `timeline` and `export`.
#[derive(clap::Args)]
pub struct Filter {
    /// Only these categories, comma-separated or repeated (conditions, medications,
    /// allergies, immunisations, test-results, vital-signs, procedures, encounters,
    /// appointments, documents, care-plans, social-care, administrative, other).
    /// Without it, every category but administrative (claims and other paperwork).
    #[arg(long, value_delimiter = ',')]
    category: Vec<String>,
    /// Only items dated on or after this date (2024, 2024-05, 2024-05-31).
    #[arg(long)]
    since: Option<String>,
    /// Only items dated before this date.
    #[arg(long)]
    until: Option<String>,
    /// Only items from this source (a file name, or `self`).
    #[arg(long)]
    source: Option<String>,
}

impl Filter {
    fn query(&self) -> Result<TimelineQuery> {
        Ok(TimelineQuery {
            categories: self
                .category
                .iter()
                .map(|c| Category::parse(c.trim()))
                .collect::<Result<_>>()?,
            since: self.since.clone(),
            until: self.until.clone(),
            source: self.source.clone(),
            ..TimelineQuery::default()
        })
    }
}

pub(crate) fn item_line(i: &Item) -> String {
    let date = i
        .date
        .as_deref()
        .map_or("(undated)", |d| d.get(..10).unwrap_or(d));
    let labels = if i.sensitivity.is_empty() {
        String::new()
    } else {
        format!("  [sensitive: {}]", i.sensitivity.join(" "))
    };
    let mut from = i.source.clone();
    for other in &i.also_from {
        from.push_str(" + ");
        from.push_str(other);
    }
    let by = if i.entered_by == carry_core::EnteredBy::Carer {
        "  [entered by a carer]"
    } else {
        ""
    };
    let gone = if i.gone_at_source {
        "  [removed at the source]"
    } else {
        ""
    };
    format!(
        "#{:<6} {:<10}  {:<13} {}  (from {from}){}{}{}",
        i.id,
        date,
        i.category.as_str(),
        i.display,
        labels,
        by,
        gone
    )
}

/// Run one command; returns what it answers (printed once by the caller, as text or
/// as JSON with `--json`) and its exit code. Commands whose output is a document (a
/// FHIR resource, an export to stdout) or a conversation (a move between phones)
/// print it themselves and answer nothing more.
pub fn run(home: &Path, profile_id: &str, command: Command) -> Result<Outcome> {
    use crate::commands::grants as sc;
    use crate::commands::record as rc;
    use crate::context::{open_record, SELF};
    let printed = |r: Result<u8>| r.map(Outcome::printed);
    // The person's own record, or one they keep for a dependant: theirs to change.
    let own_record = profile_id == SELF || crate::context::is_dependant(profile_id);
    match command {
        Command::Init { name } => {
            let store = passphrase::new_profile()?;
            let profile = Profile::create(home, &name, &store)?;
            Ok(Outcome::ok(rc::Created::new(home, profile.info()?.name)))
        }
        Command::Import { files } => {
            if !own_record {
                return Err(Error::invalid(
                    "a record shared with you is kept in step by its owner; import into your own (--profile self)",
                ));
            }
            rc::import(&open(home)?, &files)
        }
        Command::Timeline {
            filter,
            limit,
            cursor,
        } => {
            let profile = open_record(home, profile_id)?;
            let query = TimelineQuery {
                limit,
                cursor,
                ..filter.query()?
            };
            Ok(Outcome::ok(rc::Timeline(profile.timeline(&query)?)))
        }
        Command::Trend { concept } => {
            let profile = open_record(home, profile_id)?;
            trend::trend(&profile, &concept.join(" "))
        }
        Command::Appointments => Ok(Outcome::ok(rc::Items::new(
            open_record(home, profile_id)?.appointments()?,
            "No appointments to come.",
        ))),
        Command::Attach {
            file,
            title,
            content_type,
        } => {
            if !own_record {
                return Err(Error::invalid(
                    "a record shared with you is kept by its owner; attach to your own (--profile self)",
                ));
            }
            documents::attach(&open(home)?, &file, title, content_type)
        }
        Command::OpenDocument { id, out } => {
            documents::open_document(&open_record(home, profile_id)?, id, out)
        }
        Command::Contacts { action } => {
            let listing = matches!(action, None | Some(contacts::ContactsAction::List));
            if !own_record && !listing {
                return Err(Error::invalid(
                    "a record shared with you is kept by its owner; add contacts to your own (--profile self)",
                ));
            }
            contacts::contacts(&open_record(home, profile_id)?, action)
        }
        Command::Search { text, limit } => Ok(Outcome::ok(rc::Items::new(
            open_record(home, profile_id)?.search(&text.join(" "), limit)?,
            "No matches.",
        ))),
        Command::Show { id } => {
            let profile = open_record(home, profile_id)?;
            let item_id = match id.parse::<i64>() {
                Ok(n) => n,
                Err(_) => *profile
                    .find(&id)?
                    .last()
                    .ok_or_else(|| Error::not_found(format!("{id} is not in the record")))?,
            };
            Ok(Outcome::ok(rc::Card::new(profile.show(item_id)?)?))
        }
        Command::Stats => Ok(Outcome::ok(rc::Counted(
            open_record(home, profile_id)?.stats()?,
        ))),
        Command::Add {
            kind,
            value,
            note,
            at,
        } => {
            let reading = Reading::parse(&kind, &value)?;
            let taken_at = when(at.as_deref())?;
            if taken_at.is_some() && !own_record {
                return Err(Error::invalid(
                    "--at is for your own readings; a carer's entry is dated when it is made",
                ));
            }
            if !own_record {
                carry_core::share::contribute(&open(home)?, profile_id, &reading, note.as_deref())?;
                return Ok(Outcome::ok(rc::Queued::new(profile_id)));
            }
            let item = open(home)?.add_reading_at(&reading, note.as_deref(), taken_at)?;
            Ok(Outcome::ok(rc::Entered::added(item)))
        }
        Command::Delete { id } => {
            if !own_record {
                return Err(Error::invalid(
                    "only the record's owner can delete its readings",
                ));
            }
            let n = open(home)?.delete_reading(id)?;
            Ok(Outcome::ok(rc::Deleted::new(id, n)))
        }
        Command::Amend {
            id,
            kind,
            value,
            note,
            at,
        } => {
            if !own_record {
                return Err(Error::invalid(
                    "only the record's owner can amend its readings",
                ));
            }
            let reading = Reading::parse(&kind, &value)?;
            let item =
                open(home)?.amend_reading(id, &reading, note.as_deref(), when(at.as_deref())?)?;
            Ok(Outcome::ok(rc::Entered::amended(id, item)))
        }
        Command::Export {
            out,
            filter,
            one_per_fact,
        } => {
            let profile = open_record(home, profile_id)?;
            let scope = ExportScope {
                one_per_fact,
                ..ExportScope::from(&filter.query()?)
            };
            let count = match &out {
                Some(path) => profile.export_to_file(&scope, path)?,
                None => {
                    let stdout = io::stdout();
                    let mut lock = io::BufWriter::new(stdout.lock());
                    profile.export(&scope, &mut lock)?
                }
            };
            // To stdout, the export is the output; to a file, the answer says so.
            Ok(match out {
                Some(path) => Outcome::ok(rc::Exported::new(count, path)),
                None => Outcome::printed(exit::OK),
            })
        }
        Command::Info => Ok(Outcome::ok(rc::Info::new(
            open_record(home, profile_id)?.info()?,
            home,
        ))),
        Command::Source { action } => crate::commands::sync::source(home, action),
        Command::Sync {
            name,
            budget,
            full,
            deletions,
        } => crate::commands::sync::sync_now(home, name, budget, full, deletions),
        Command::Outbox { action } => crate::commands::sync::outbox(home, action),
        Command::Endpoint { action } => sc::endpoint(home, action),
        Command::Id => sc::id(home),
        Command::Invite => sc::invite(home),
        Command::Accept {
            code,
            adopt_endpoint,
        } => sc::accept(home, &code, adopt_endpoint),
        Command::People { action } => sc::people(home, action),
        Command::Grant { args } => sc::grant(home, args),
        Command::Grants {
            document: Some(id), ..
        } => printed(sc::document(home, &id)),
        Command::Grants { active, .. } => sc::grants(home, active),
        Command::Revoke { grant, all } => match grant {
            Some(grant) if !all => sc::revoke(home, &grant),
            _ => sc::revoke_all(home),
        },
        Command::ViewAs { person, out } => sc::view_as(home, &person, out),
        Command::Consent { grant } => printed(sc::consent(home, &grant)),
        Command::Contributions { action } => sc::contributions(home, action),
        Command::Profiles => sc::profiles(home, profile_id),
        Command::Dependants { action } => crate::commands::dependants::run(home, action),
        Command::Use { profile } => sc::use_profile(home, &profile),
        Command::Audit { verify, limit } => sc::audit(home, verify, limit),
        Command::Prefs { args } => crate::commands::prefs::prefs(home, args),
        Command::Recovery { action } => crate::commands::backup::recovery(home, action),
        Command::Backup { out, full } => crate::commands::backup::backup(home, out, full),
        Command::MoveOut {
            qr,
            wipe,
            keep,
            wait,
        } => printed(crate::commands::devices::move_out(
            home,
            qr,
            (wipe || keep).then_some(wipe),
            std::time::Duration::from_secs(wait),
        )),
        Command::Devices { action, remove } => {
            crate::commands::devices::devices(home, action, remove)
        }
        Command::MoveIn { code, wait } => {
            crate::commands::devices::move_in(home, code, std::time::Duration::from_secs(wait))
        }
        Command::Restore {
            file,
            from_endpoint,
            endpoint,
            code,
        } => {
            let from = match (file, from_endpoint) {
                (Some(f), _) => crate::commands::backup::From::File(f),
                (None, _) => crate::commands::backup::From::Endpoint(
                    endpoint
                        .or_else(|| std::env::var(carry_core::share::ENDPOINT_ENV).ok())
                        .ok_or_else(|| {
                            Error::invalid("give the endpoint: --endpoint URL or CARRY_ENDPOINT")
                        })?,
                ),
            };
            crate::commands::backup::restore(home, from, code)
        }
        Command::Share { args } => crate::commands::links::share(home, args),
        Command::Shares => crate::commands::links::shares(home),
        Command::Unshare { id } => crate::commands::links::unshare(home, &id),
        Command::Summary { preset, out } => {
            printed(crate::commands::links::summary(home, &preset, out))
        }
        Command::EmergencyCard { qr } => crate::commands::links::emergency_card(home, qr),
        Command::Open {
            link,
            passcode,
            recipient,
        } => crate::commands::links::open_link(&link, passcode, recipient),
        Command::Check => {
            open_record(home, profile_id)?.integrity_check()?;
            Ok(Outcome::ok(rc::Checked::sound()))
        }
    }
}

/// A reading's time as `--at` takes it: `2026-12-06T08:30` (UTC), with an offset, or a
/// day; `None` when not given.
fn when(at: Option<&str>) -> Result<Option<i64>> {
    at.map(|w| {
        carry_core::record::summary::parse_fhir_date(w.trim()).ok_or_else(|| {
            Error::invalid(format!(
                "'{w}' is not a time like 2026-12-06T08:30 or 2026-12-06"
            ))
        })
    })
    .transpose()
}
