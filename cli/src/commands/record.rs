//! The commands on the record itself (`init`, `import`, `timeline`, `appointments`,
//! `search`, `show`, `stats`, `add`, `delete`, `amend`, `export`, `info`, `check`):
//! each returns an answer that is both text and JSON, and the one printer picks.

use std::fmt;
use std::path::{Path, PathBuf};

use carry_core::query::{Detail, Page, Stats};
use carry_core::{FileReport, ImportOptions, Item, Profile, ProfileInfo, Result};
use serde::Serialize;

use super::item_line;
use crate::exit;
use crate::note;
use crate::output::{clean, json_mode, Outcome};

/// `carry init`.
#[derive(Serialize)]
pub struct Created {
    home: PathBuf,
    name: String,
}

impl Created {
    /// The profile `name` made in `home`.
    pub fn new(home: &Path, name: String) -> Created {
        Created {
            home: home.to_path_buf(),
            name,
        }
    }
}

impl fmt::Display for Created {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Created the profile '{}' in {}.",
            clean(&self.name),
            self.home.display()
        )?;
        writeln!(f, "Its record is encrypted; only your passphrase opens it.")
    }
}

/// `carry import`: every file's report and the totals.
#[derive(Serialize)]
struct Imported {
    imported: u64,
    updated: u64,
    unchanged: u64,
    skipped: u64,
    converted: u64,
    rejected: Vec<carry_core::Rejection>,
    files: Vec<FileReport>,
}

impl fmt::Display for Imported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for report in &self.files {
            if report.failed() {
                writeln!(
                    f,
                    "{}: not imported; nothing of it was stored",
                    clean(&report.file)
                )?;
            } else {
                writeln!(
                    f,
                    "{}: {} imported, {} updated, {} unchanged, {} skipped, {} rejected",
                    clean(&report.file),
                    report.imported,
                    report.updated,
                    report.unchanged,
                    report.skipped,
                    report.rejected.len()
                )?;
                if report.converted > 0 {
                    writeln!(
                        f,
                        "  {} converted from FHIR STU3 to R4 (each keeps the text it arrived in)",
                        report.converted
                    )?;
                }
            }
        }
        if self.files.len() > 1 {
            writeln!(
                f,
                "Total: {} imported, {} updated, {} unchanged, {} rejected.",
                self.imported,
                self.updated,
                self.unchanged,
                self.rejected.len()
            )?;
        }
        Ok(())
    }
}

/// `carry import FILE…`: exit 2 when anything was rejected.
pub fn import(profile: &Profile, files: &[PathBuf]) -> Result<Outcome> {
    let mut reports: Vec<FileReport> = Vec::new();
    for f in files {
        let report = profile.import_file(f, ImportOptions::default())?;
        if !json_mode() {
            // As each file is done, on stderr: what was refused and why.
            for r in &report.rejected {
                note!("  rejected {} {}: {}", r.file, r.entry, r.reason);
            }
        }
        reports.push(report);
    }
    let sum = |f: fn(&FileReport) -> u64| reports.iter().map(f).sum::<u64>();
    let rejected: Vec<carry_core::Rejection> = reports
        .iter()
        .flat_map(|r| r.rejected.iter().cloned())
        .collect();
    let code = if rejected.is_empty() {
        exit::OK
    } else {
        exit::USAGE
    };
    Ok(Outcome::with_code(
        Imported {
            imported: sum(|r| r.imported),
            updated: sum(|r| r.updated),
            unchanged: sum(|r| r.unchanged),
            skipped: sum(|r| r.skipped),
            converted: sum(|r| r.converted),
            rejected,
            files: reports,
        },
        code,
    ))
}

/// A list of timeline items, a line each.
#[derive(Serialize)]
pub struct Items {
    items: Vec<Item>,
    #[serde(skip)]
    empty: &'static str,
}

impl Items {
    /// `items`, saying `empty` when there are none.
    pub fn new(items: Vec<Item>, empty: &'static str) -> Items {
        Items { items, empty }
    }
}

impl fmt::Display for Items {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.items.is_empty() {
            writeln!(f, "{}", self.empty)?;
        }
        for i in &self.items {
            writeln!(f, "{}", clean(&item_line(i)))?;
        }
        Ok(())
    }
}

/// `carry timeline`: a page, and how to get the next.
#[derive(Serialize)]
#[serde(transparent)]
pub struct Timeline(pub Page);

impl fmt::Display for Timeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.items.is_empty() {
            writeln!(f, "Nothing in the record matches.")?;
        }
        for i in &self.0.items {
            writeln!(f, "{}", clean(&item_line(i)))?;
        }
        if let Some(c) = &self.0.next_cursor {
            writeln!(f, "More: carry timeline --cursor {c}")?;
        }
        Ok(())
    }
}

/// `carry show`: a card a person reads; `--json` has the resource as received.
#[derive(Serialize)]
pub struct Card {
    item: Item,
    full_url: Option<String>,
    codes: Vec<carry_core::Code>,
    labels: Vec<carry_core::Label>,
    references: Vec<carry_core::Reference>,
    resource: serde_json::Value,
    /// For a resource converted from FHIR STU3, the resource as it arrived.
    #[serde(skip_serializing_if = "Option::is_none")]
    original: Option<serde_json::Value>,
}

impl Card {
    /// The card of `detail`.
    pub fn new(detail: Detail) -> Result<Card> {
        let resource: serde_json::Value = serde_json::from_str(&detail.json)?;
        let original = detail
            .original
            .as_deref()
            .map(serde_json::from_str)
            .transpose()?;
        Ok(Card {
            item: detail.item,
            full_url: detail.full_url,
            codes: detail.codes,
            labels: detail.labels,
            references: detail.references,
            resource,
            original,
        })
    }
}

impl fmt::Display for Card {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rtype = self.item.resource_type.as_str();
        let r = &self.resource;
        writeln!(f, "{}", clean(&item_line(&self.item)))?;
        let mut row = |label: &str, value: &str| writeln!(f, "  {label:<11} {}", clean(value));
        row("Type", rtype)?;
        if let Some(s) = carry_core::record::summary::status(rtype, r) {
            row("Status", &s)?;
        }
        if let Some(d) = &self.item.date {
            row("Date", d)?;
        }
        if let Some(how) = carry_core::record::summary::dosage(r) {
            row("How taken", &how)?;
        }
        for c in self.codes.iter().filter(|c| c.code.is_some()) {
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
            row("Code", line.trim())?;
        }
        row("Source", &self.item.source)?;
        if self.original.is_some() {
            row(
                "Converted",
                "from FHIR STU3; the original is kept (carry show --json)",
            )?;
        }
        row(
            "Entered by",
            &format!("{:?}", self.item.entered_by).to_lowercase(),
        )?;
        for l in &self.labels {
            row("Sensitive", &format!("{} ({})", l.label, l.rule))?;
        }
        for r in &self.references {
            let to = r
                .target
                .map_or("not in the record".to_string(), |t| format!("#{t}"));
            row("Refers to", &format!("{} {} ({to})", r.path, r.reference))?;
        }
        if rtype == "DocumentReference" {
            writeln!(
                f,
                "Open the document: carry open-document {} --out FILE",
                self.item.id
            )?;
        }
        writeln!(
            f,
            "The resource as received: carry show {} --json",
            self.item.id
        )
    }
}

/// `carry stats`.
#[derive(Serialize)]
#[serde(transparent)]
pub struct Counted(pub Stats);

impl fmt::Display for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.0;
        writeln!(
            f,
            "{} resources from {} sources; {} carry a sensitivity label.",
            s.resources, s.sources, s.sensitive
        )?;
        for (c, n) in &s.by_category {
            writeln!(f, "  {c:<14} {n}")?;
        }
        Ok(())
    }
}

/// `carry add` by a carer: sealed for the record's owner.
#[derive(Serialize)]
pub struct Queued {
    queued: bool,
    profile: String,
}

impl Queued {
    /// A reading sealed for the owner of `profile`.
    pub fn new(profile: &str) -> Queued {
        Queued {
            queued: true,
            profile: profile.to_string(),
        }
    }
}

impl fmt::Display for Queued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Sealed for the record's owner; it is sent at the next carry sync, and their device adds it if your grant allows.")
    }
}

/// `carry add` and `carry amend`: the reading's item (its JSON is the item).
#[derive(Serialize)]
#[serde(transparent)]
pub struct Entered {
    item: Item,
    #[serde(skip)]
    replaced: Option<i64>,
}

impl Entered {
    /// A reading added.
    pub fn added(item: Item) -> Entered {
        Entered {
            item,
            replaced: None,
        }
    }

    /// A reading that replaced item `old`.
    pub fn amended(old: i64, item: Item) -> Entered {
        Entered {
            item,
            replaced: Some(old),
        }
    }
}

impl fmt::Display for Entered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.replaced {
            None => writeln!(f, "Added: {}", clean(&item_line(&self.item))),
            Some(old) => writeln!(f, "Amended #{old}: {}", clean(&item_line(&self.item))),
        }
    }
}

/// `carry delete`.
#[derive(Serialize)]
pub struct Deleted {
    deleted: i64,
    taken_back_from: u64,
}

impl Deleted {
    /// Item `deleted`, to be taken back from `taken_back_from` providers.
    pub fn new(deleted: i64, taken_back_from: u64) -> Deleted {
        Deleted {
            deleted,
            taken_back_from,
        }
    }
}

impl fmt::Display for Deleted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (id, n) = (self.deleted, self.taken_back_from);
        if n > 0 {
            writeln!(f, "Deleted #{id}. It reached {n} provider(s): it is marked entered-in-error there at the next carry sync.")
        } else {
            writeln!(f, "Deleted #{id}.")
        }
    }
}

/// `carry export --out FILE`.
#[derive(Serialize)]
pub struct Exported {
    exported: u64,
    file: PathBuf,
}

impl Exported {
    /// `exported` resources written to `file`.
    pub fn new(exported: u64, file: PathBuf) -> Exported {
        Exported { exported, file }
    }
}

impl fmt::Display for Exported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Exported {} resources to {}.",
            self.exported,
            self.file.display()
        )
    }
}

/// `carry info`: the profile's facts (its JSON is the core's).
#[derive(Serialize)]
#[serde(transparent)]
pub struct Info {
    info: ProfileInfo,
    #[serde(skip)]
    home: PathBuf,
}

impl Info {
    /// `info` of the profile in `home`.
    pub fn new(info: ProfileInfo, home: &Path) -> Info {
        Info {
            info,
            home: home.to_path_buf(),
        }
    }
}

impl fmt::Display for Info {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} (schema {}) in {}",
            clean(&self.info.name),
            self.info.schema_version,
            self.home.display()
        )
    }
}

/// `carry check`.
#[derive(Serialize)]
pub struct Checked {
    integrity: &'static str,
}

impl Checked {
    /// The vault passed its integrity check.
    pub fn sound() -> Checked {
        Checked { integrity: "ok" }
    }
}

impl fmt::Display for Checked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "The vault is sound.")
    }
}
