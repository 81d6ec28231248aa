//! The commands: each opens the profile, calls the core, and prints text or JSON.

pub mod backup;
pub mod contacts;
pub mod devices;
pub mod documents;
pub mod grants;
pub mod links;
pub mod prefs;
pub mod sync;
pub mod trend;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use carry_core::query::TimelineQuery;
use carry_core::{
    Category, Error, ExportScope, FileReport, ImportOptions, Item, Profile, Reading, Result,
};
use serde_json::json;

use crate::context::open;
use crate::exit;
use crate::output::print_json;
use crate::passphrase;
use crate::Command;
use crate::{note, say};

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

/// Run one command; returns the exit code.
pub fn run(home: &Path, profile_id: &str, as_json: bool, command: Command) -> Result<u8> {
    use crate::commands::grants as sc;
    use crate::context::{open_record, SELF};
    match command {
        Command::Init { name } => {
            let store = passphrase::new_profile()?;
            let profile = Profile::create(home, &name, &store)?;
            let info = profile.info()?;
            if as_json {
                print_json(&json!({ "home": home, "name": info.name }))?;
            } else {
                say!("Created the profile '{}' in {}.", info.name, home.display());
                say!("Its record is encrypted; only your passphrase opens it.");
            }
            Ok(exit::OK)
        }
        Command::Import { files } => {
            if profile_id != SELF {
                return Err(Error::invalid(
                    "a record shared with you is kept in step by its owner; import into your own (--profile self)",
                ));
            }
            import(&open(home)?, &files, as_json)
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
            let page = profile.timeline(&query)?;
            if as_json {
                print_json(&page)?;
            } else {
                if page.items.is_empty() {
                    say!("Nothing in the record matches.");
                }
                for item in &page.items {
                    say!("{}", item_line(item));
                }
                if let Some(c) = &page.next_cursor {
                    say!("More: carry timeline --cursor {c}");
                }
            }
            Ok(exit::OK)
        }
        Command::Trend { concept } => {
            let profile = open_record(home, profile_id)?;
            trend::trend(&profile, &concept.join(" "), as_json)
        }
        Command::Appointments => {
            let items = open_record(home, profile_id)?.appointments()?;
            if as_json {
                print_json(&json!({ "items": items }))?;
            } else if items.is_empty() {
                say!("No appointments to come.");
            } else {
                for i in &items {
                    say!("{}", item_line(i));
                }
            }
            Ok(exit::OK)
        }
        Command::Attach {
            file,
            title,
            content_type,
        } => {
            if profile_id != SELF {
                return Err(Error::invalid(
                    "a record shared with you is kept by its owner; attach to your own (--profile self)",
                ));
            }
            documents::attach(&open(home)?, as_json, &file, title, content_type)
        }
        Command::OpenDocument { id, out } => {
            documents::open_document(&open_record(home, profile_id)?, as_json, id, out)
        }
        Command::Contacts { action } => {
            let listing = matches!(action, None | Some(contacts::ContactsAction::List));
            if profile_id != SELF && !listing {
                return Err(Error::invalid(
                    "a record shared with you is kept by its owner; add contacts to your own (--profile self)",
                ));
            }
            contacts::contacts(&open_record(home, profile_id)?, as_json, action)
        }
        Command::Search { text, limit } => {
            let items = open_record(home, profile_id)?.search(&text.join(" "), limit)?;
            if as_json {
                print_json(&json!({ "items": items }))?;
            } else {
                if items.is_empty() {
                    say!("No matches.");
                }
                for item in &items {
                    say!("{}", item_line(item));
                }
            }
            Ok(exit::OK)
        }
        Command::Show { id } => {
            let profile = open_record(home, profile_id)?;
            let item_id = match id.parse::<i64>() {
                Ok(n) => n,
                Err(_) => *profile
                    .find(&id)?
                    .last()
                    .ok_or_else(|| Error::not_found(format!("{id} is not in the record")))?,
            };
            let detail = profile.show(item_id)?;
            if as_json {
                let resource: serde_json::Value = serde_json::from_str(&detail.json)
                    .map_err(|e| Error::internal(e.to_string()))?;
                print_json(&json!({
                    "item": detail.item, "full_url": detail.full_url, "codes": detail.codes,
                    "labels": detail.labels, "references": detail.references, "resource": resource,
                }))?;
            } else {
                // A card a person reads; the resource as received is --json's.
                let resource: serde_json::Value = serde_json::from_str(&detail.json)
                    .map_err(|e| Error::internal(e.to_string()))?;
                let rtype = detail.item.resource_type.as_str();
                let row = |label: &str, value: &str| say!("  {label:<11} {value}");
                say!("{}", item_line(&detail.item));
                row("Type", rtype);
                if let Some(s) = carry_core::record::summary::status(rtype, &resource) {
                    row("Status", &s);
                }
                if let Some(d) = &detail.item.date {
                    row("Date", d);
                }
                if let Some(how) = carry_core::record::summary::dosage(&resource) {
                    row("How taken", &how);
                }
                for c in detail.codes.iter().filter(|c| c.code.is_some()) {
                    let system = match c.system.as_deref() {
                        Some("http://loinc.org") => "LOINC",
                        Some("http://snomed.info/sct") => "SNOMED CT",
                        Some("http://www.nlm.nih.gov/research/umls/rxnorm") => "RxNorm",
                        Some(other) => other,
                        None => "",
                    };
                    let line = format!(
                        "{system} {} {}",
                        c.code.as_deref().unwrap_or(""),
                        c.display.as_deref().unwrap_or("")
                    );
                    row("Code", line.trim());
                }
                row("Source", &detail.item.source);
                row(
                    "Entered by",
                    &format!("{:?}", detail.item.entered_by).to_lowercase(),
                );
                for l in &detail.labels {
                    row("Sensitive", &format!("{} ({})", l.label, l.rule));
                }
                for r in &detail.references {
                    let to = r
                        .target
                        .map_or("not in the record".to_string(), |t| format!("#{t}"));
                    row("Refers to", &format!("{} {} ({to})", r.path, r.reference));
                }
                if rtype == "DocumentReference" {
                    say!(
                        "Open the document: carry open-document {} --out FILE",
                        detail.item.id
                    );
                }
                say!(
                    "The resource as received: carry show {} --json",
                    detail.item.id
                );
            }
            Ok(exit::OK)
        }
        Command::Stats => {
            let stats = open_record(home, profile_id)?.stats()?;
            if as_json {
                print_json(&stats)?;
            } else {
                say!(
                    "{} resources from {} sources; {} carry a sensitivity label.",
                    stats.resources,
                    stats.sources,
                    stats.sensitive
                );
                for (c, n) in &stats.by_category {
                    say!("  {c:<14} {n}");
                }
            }
            Ok(exit::OK)
        }
        Command::Add {
            kind,
            value,
            note,
            at,
        } => {
            let reading = Reading::parse(&kind, &value)?;
            let taken_at = when(at.as_deref())?;
            if taken_at.is_some() && profile_id != SELF {
                return Err(Error::invalid(
                    "--at is for your own readings; a carer's entry is dated when it is made",
                ));
            }
            if profile_id != SELF {
                carry_core::share::contribute(&open(home)?, profile_id, &reading, note.as_deref())?;
                if as_json {
                    print_json(&json!({ "queued": true, "profile": profile_id }))?;
                } else {
                    say!("Sealed for the record's owner; it is sent at the next carry sync, and their device adds it if your grant allows.");
                }
                return Ok(exit::OK);
            }
            let item = open(home)?.add_reading_at(&reading, note.as_deref(), taken_at)?;
            if as_json {
                print_json(&item)?;
            } else {
                say!("Added: {}", item_line(&item));
            }
            Ok(exit::OK)
        }
        Command::Delete { id } => {
            if profile_id != SELF {
                return Err(Error::invalid(
                    "only the record's owner can delete its readings",
                ));
            }
            let n = open(home)?.delete_reading(id)?;
            if as_json {
                print_json(&json!({ "deleted": id, "taken_back_from": n }))?;
            } else if n > 0 {
                say!("Deleted #{id}. It reached {n} provider(s): it is marked entered-in-error there at the next carry sync.");
            } else {
                say!("Deleted #{id}.");
            }
            Ok(exit::OK)
        }
        Command::Amend {
            id,
            kind,
            value,
            note,
            at,
        } => {
            if profile_id != SELF {
                return Err(Error::invalid(
                    "only the record's owner can amend its readings",
                ));
            }
            let reading = Reading::parse(&kind, &value)?;
            let item =
                open(home)?.amend_reading(id, &reading, note.as_deref(), when(at.as_deref())?)?;
            if as_json {
                print_json(&item)?;
            } else {
                say!("Amended #{id}: {}", item_line(&item));
            }
            Ok(exit::OK)
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
            if let Some(path) = &out {
                if as_json {
                    print_json(&json!({ "exported": count, "file": path }))?;
                } else {
                    say!("Exported {count} resources to {}.", path.display());
                }
            }
            Ok(exit::OK)
        }
        Command::Info => {
            let info = open_record(home, profile_id)?.info()?;
            if as_json {
                print_json(&info)?;
            } else {
                say!(
                    "{} (schema {}) in {}",
                    info.name,
                    info.schema_version,
                    home.display()
                );
            }
            Ok(exit::OK)
        }
        Command::Source { action } => crate::commands::sync::source(home, as_json, action),
        Command::Sync {
            name,
            budget,
            full,
            deletions,
        } => crate::commands::sync::sync_now(home, as_json, name, budget, full, deletions),
        Command::Outbox { action } => crate::commands::sync::outbox(home, as_json, action),
        Command::Endpoint { action } => sc::endpoint(home, as_json, action),
        Command::Id => sc::id(home, as_json),
        Command::Invite => sc::invite(home, as_json),
        Command::Accept {
            code,
            adopt_endpoint,
        } => sc::accept(home, as_json, &code, adopt_endpoint),
        Command::People { action } => sc::people(home, as_json, action),
        Command::Grant { args } => sc::grant(home, as_json, args),
        Command::Grants {
            document: Some(id), ..
        } => sc::document(home, &id),
        Command::Grants { active, .. } => sc::grants(home, as_json, active),
        Command::Revoke { grant, all } => match grant {
            Some(grant) if !all => sc::revoke(home, as_json, &grant),
            _ => sc::revoke_all(home, as_json),
        },
        Command::ViewAs { person, out } => sc::view_as(home, as_json, &person, out),
        Command::Consent { grant } => sc::consent(home, &grant),
        Command::Contributions { action } => sc::contributions(home, as_json, action),
        Command::Profiles => sc::profiles(home, as_json, profile_id),
        Command::Use { profile } => sc::use_profile(home, as_json, &profile),
        Command::Audit { verify, limit } => sc::audit(home, as_json, verify, limit),
        Command::Prefs { args } => crate::commands::prefs::prefs(home, as_json, args),
        Command::Recovery { action } => crate::commands::backup::recovery(home, as_json, action),
        Command::Backup { out, full } => crate::commands::backup::backup(home, as_json, out, full),
        Command::MoveOut {
            qr,
            wipe,
            keep,
            wait,
        } => crate::commands::devices::move_out(
            home,
            qr,
            (wipe || keep).then_some(wipe),
            std::time::Duration::from_secs(wait),
        ),
        Command::Devices { action, remove } => {
            crate::commands::devices::devices(home, as_json, action, remove)
        }
        Command::MoveIn { code, wait } => crate::commands::devices::move_in(
            home,
            as_json,
            code,
            std::time::Duration::from_secs(wait),
        ),
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
            crate::commands::backup::restore(home, as_json, from, code)
        }
        Command::Share { args } => crate::commands::links::share(home, as_json, args),
        Command::Shares => crate::commands::links::shares(home, as_json),
        Command::Unshare { id } => crate::commands::links::unshare(home, as_json, &id),
        Command::Summary { preset, out } => crate::commands::links::summary(home, &preset, out),
        Command::EmergencyCard { qr } => crate::commands::links::emergency_card(home, as_json, qr),
        Command::Open {
            link,
            passcode,
            recipient,
        } => crate::commands::links::open_link(as_json, &link, passcode, recipient),
        Command::Check => {
            open_record(home, profile_id)?.integrity_check()?;
            if as_json {
                print_json(&json!({ "integrity": "ok" }))?;
            } else {
                say!("The vault is sound.");
            }
            Ok(exit::OK)
        }
    }
}

fn import(profile: &Profile, files: &[PathBuf], as_json: bool) -> Result<u8> {
    let mut reports: Vec<FileReport> = Vec::new();
    for f in files {
        let report = profile.import_file(f, ImportOptions::default())?;
        if !as_json {
            if report.failed() {
                say!("{}: not imported; nothing of it was stored", report.file);
            } else {
                say!(
                    "{}: {} imported, {} updated, {} unchanged, {} skipped, {} rejected",
                    report.file,
                    report.imported,
                    report.updated,
                    report.unchanged,
                    report.skipped,
                    report.rejected.len()
                );
            }
            for r in &report.rejected {
                note!("  rejected {} {}: {}", r.file, r.entry, r.reason);
            }
        }
        reports.push(report);
    }
    let sum = |f: fn(&FileReport) -> u64| reports.iter().map(f).sum::<u64>();
    let rejected: Vec<_> = reports.iter().flat_map(|r| r.rejected.iter()).collect();
    if as_json {
        print_json(&json!({
            "imported": sum(|r| r.imported),
            "updated": sum(|r| r.updated),
            "unchanged": sum(|r| r.unchanged),
            "skipped": sum(|r| r.skipped),
            "rejected": rejected,
            "files": reports,
        }))?;
    } else if files.len() > 1 {
        say!(
            "Total: {} imported, {} updated, {} unchanged, {} rejected.",
            sum(|r| r.imported),
            sum(|r| r.updated),
            sum(|r| r.unchanged),
            rejected.len()
        );
    }
    io::stdout().flush()?;
    Ok(if rejected.is_empty() {
        exit::OK
    } else {
        exit::USAGE
    })
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
