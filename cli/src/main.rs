//! `carry`: the terminal client. It drives the core the way an app does, for
//! newcomers, scripts, the demo and operators. Every read command takes `--json`.

#![forbid(unsafe_code)]

mod commands;
mod context;
mod exit;
mod output;
mod passphrase;
mod prompt;
mod signer;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Carry: your health record, encrypted on your own device.
#[derive(Parser)]
#[command(name = "carry", version, about, long_about = None)]
struct Cli {
    /// The profile folder. Defaults to $CARRY_HOME, else ~/.carry.
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Act on this profile: `self` (your own record) or the id of a record shared
    /// with you (see carry profiles). Defaults to the one chosen with carry use.
    #[arg(long, global = true, value_name = "ID")]
    profile: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new profile (asks for a passphrase, or reads CARRY_PASSPHRASE).
    Init {
        /// The person's name, as the profile shows it.
        #[arg(long)]
        name: String,
    },
    /// Import FHIR R4 JSON files: single resources, Bundles of any type, or NDJSON.
    Import {
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// The record, newest first, one page at a time.
    Timeline {
        #[command(flatten)]
        filter: commands::Filter,
        /// Items per page (1-500).
        #[arg(long)]
        limit: Option<u32>,
        /// The cursor printed at the end of the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// One result over time: its values newest first, with a sparkline. CONCEPT is
    /// hba1c, bp, weight, bmi, cholesterol, egfr, creatinine, glucose, a synonym
    /// (a1c, blood pressure) or a LOINC code (2093-3).
    Trend {
        /// The concept, in words (several words are joined).
        #[arg(required = true)]
        concept: Vec<String>,
    },
    /// Appointments still to come, soonest first.
    Appointments,
    /// Keep a PDF or an image (JPEG, PNG, HEIC; up to 20 MB) in your record as a document.
    Attach {
        /// The file.
        file: PathBuf,
        /// Its title (default: the file's name).
        #[arg(long)]
        title: Option<String>,
        /// Its content type, checked against the file (application/pdf, image/jpeg…).
        #[arg(long = "type", value_name = "CONTENT-TYPE")]
        content_type: Option<String>,
    },
    /// Write a document in the record out as a file again.
    OpenDocument {
        /// The document's item id.
        id: i64,
        /// Where to write it (default: a file named from its title, here).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// The people to contact: list them, add one, remove one you added.
    Contacts {
        #[command(subcommand)]
        action: Option<commands::contacts::ContactsAction>,
    },
    /// Search display lines and codes.
    Search {
        /// Words to look for (each matches as a prefix).
        #[arg(required = true)]
        text: Vec<String>,
        /// At most this many results (1-500).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// One resource in full: by item id (from the timeline) or as Type/id.
    Show {
        /// An item id like 42, or Patient/123.
        id: String,
    },
    /// Counts over the record.
    Stats,
    /// Record a reading: weight 72.5kg | bp 120/80 | pulse 64 | glucose 5.6mmol/L | mood 3.
    Add {
        /// weight (72.5kg, 160lb, 11st 6lb), bp, pulse, glucose, temp (37.2C), spo2 (97%),
        /// peak-flow (420) or mood (1 to 5).
        kind: String,
        /// The value with its unit.
        value: String,
        /// A note to keep with it.
        #[arg(long)]
        note: Option<String>,
        /// When it was taken, if not now: 2026-12-06T08:30 (UTC), or with an offset
        /// (2026-12-06T08:30+01:00), or a day (2026-12-06).
        #[arg(long, value_name = "WHEN")]
        at: Option<String>,
    },
    /// Delete one of your readings. One that reached a provider is taken back there
    /// (marked entered-in-error) at the next sync.
    Delete {
        /// The reading's item id (from carry timeline).
        id: i64,
    },
    /// Correct one of your readings: the old one is deleted (and taken back from
    /// providers), the corrected one recorded in its place and sent on.
    Amend {
        /// The reading's item id (from carry timeline).
        id: i64,
        /// The kind, as for carry add.
        kind: String,
        /// The corrected value with its unit.
        value: String,
        /// A note to keep with it.
        #[arg(long)]
        note: Option<String>,
        /// When it was taken (default: the time of the reading it replaces).
        #[arg(long, value_name = "WHEN")]
        at: Option<String>,
    },
    /// Export the record (or part of it) as one FHIR Bundle of type collection.
    Export {
        /// Write here instead of to standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        filter: commands::Filter,
        /// One copy of each fact (as the timeline shows it), not every copy every
        /// source sent.
        #[arg(long)]
        one_per_fact: bool,
    },
    /// Facts about the profile.
    Info,
    /// Check the vault's integrity.
    Check,
    /// Providers' FHIR endpoints: add, list, sign in.
    Source {
        #[command(subcommand)]
        action: commands::sync::SourceAction,
    },
    /// Fetch what changed at your providers and send your readings.
    Sync {
        /// Only this provider (default: all).
        name: Option<String>,
        /// Stop after this long (30s, 2m); the next sync resumes where it stopped.
        #[arg(long, value_parser = commands::sync::parse_budget)]
        budget: Option<std::time::Duration>,
        /// List everything the provider holds and mark what it no longer does.
        #[arg(long)]
        full: bool,
        /// List the ids each provider holds (cheaply) to notice deletions now; done
        /// anyway once a day.
        #[arg(long)]
        deletions: bool,
    },
    /// Your readings on their way to providers (and any kept back or stuck); hold,
    /// release or drop one before it leaves.
    Outbox {
        #[command(subcommand)]
        action: Option<commands::sync::OutboxAction>,
    },
    /// The endpoint whose relay and share host this profile uses.
    Endpoint {
        #[command(subcommand)]
        action: commands::grants::EndpointAction,
    },
    /// Your identity: id, fingerprint, endpoint.
    Id,
    /// Invite someone: prints a code (valid 24 hours) holding your keys.
    Invite,
    /// Take up someone's invite code.
    Accept {
        /// The code they gave you.
        code: String,
        /// If this profile has no endpoint yet, use the one the invite names for
        /// sharing and backups (otherwise the invite is refused: set your own first
        /// with `carry endpoint set`, or accept with this only if you trust it).
        #[arg(long)]
        adopt_endpoint: bool,
    },
    /// The people you have exchanged keys with; `verify` one after comparing numbers.
    People {
        #[command(subcommand)]
        action: Option<commands::grants::PeopleAction>,
    },
    /// Let a person see part of your record (or change what they see).
    Grant {
        #[command(flatten)]
        args: commands::grants::GrantArgs,
    },
    /// Your grants: to others, and to you. `--active` lists who can see your record now.
    Grants {
        /// Only who can see your record now.
        #[arg(long)]
        active: bool,
        /// Print this grant's signed document instead.
        #[arg(long, value_name = "GRANT", conflicts_with = "active")]
        document: Option<String>,
    },
    /// End a grant now: deliveries stop, the relay's copies and theirs are deleted.
    /// `--all` ends everyone's access at once: every grant and every share link.
    Revoke {
        /// The grant's id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        grant: Option<String>,
        /// Stop sharing with everyone: revoke every grant in force and end every share
        /// link in force, the emergency card's too.
        #[arg(long)]
        all: bool,
    },
    /// Your record exactly as a person receives it under their grant.
    ViewAs {
        /// Their id or name.
        person: String,
        /// Write it as a FHIR Bundle to this file instead of listing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Carers' entries waiting for your approval (with carry prefs
    /// --approve-contributions on); approve or reject one.
    Contributions {
        #[command(subcommand)]
        action: Option<commands::grants::ContributionAction>,
    },
    /// A grant as a FHIR Consent resource.
    Consent {
        /// The grant's id.
        grant: String,
    },
    /// Your record, the records you keep for others, and the records shared with you.
    Profiles,
    /// Records you keep for people with no phone of their own: list them, add one,
    /// hand one over to its owner's own phone, or delete one. Act on one with
    /// --profile ID (or carry use ID) like your own record.
    Dependants {
        #[command(subcommand)]
        action: Option<commands::dependants::DependantsAction>,
    },
    /// Choose the profile later commands act on (self, or a shared record's id).
    Use {
        /// The profile id (see carry profiles).
        profile: String,
    },
    /// Show a clinician: a SMART Health Link to a summary of your record, with a QR code.
    Share {
        #[command(flatten)]
        args: commands::links::ShareArgs,
    },
    /// Your share links and who opened them.
    Shares,
    /// End a share link now.
    Unshare {
        /// The link's id (from carry shares; the first 10 characters are enough).
        /// Ids may begin with a dash.
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Save a summary of your record (the International Patient Summary, a FHIR
    /// document) to a file, or print it: what a share link carries, without a link.
    Summary {
        /// What goes in: emergency, meds-allergies or all-but-restricted.
        #[arg(long, default_value = "emergency")]
        preset: String,
        /// Write it to this file (readable by you only) instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Make or refresh your emergency card: an always-ready link and a summary to show offline.
    EmergencyCard {
        /// Write its QR code to this file (.png or .svg).
        #[arg(long, value_name = "FILE")]
        qr: Option<PathBuf>,
    },
    /// Open a SMART Health Link someone gave you (the clinician's side).
    Open {
        /// The link: shlink:/… or https://…#shlink:/….
        link: String,
        /// The passcode, if the link needs one.
        #[arg(long)]
        passcode: Option<String>,
        /// Who you are, as the patient will see it ("claimed by").
        #[arg(long)]
        recipient: Option<String>,
    },
    /// Your recovery code: show it, replace it, or confirm you wrote it down.
    Recovery {
        #[command(subcommand)]
        action: commands::backup::RecoveryAction,
    },
    /// Back up the whole profile, encrypted, to the endpoint (or to a file). After the
    /// first, a backup to the endpoint carries only what changed.
    Backup {
        /// Write it to this file instead of the endpoint (always a whole backup).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Send a whole backup to the endpoint even when an incremental one would do.
        #[arg(long, conflicts_with = "out")]
        full: bool,
    },
    /// Restore a profile from a backup into an empty folder (--home).
    Restore {
        /// From this backup file.
        #[arg(long, value_name = "FILE", required_unless_present = "from_endpoint")]
        file: Option<PathBuf>,
        /// From the endpoint: the recovery code finds the backup there.
        #[arg(long, conflicts_with = "file")]
        from_endpoint: bool,
        /// The endpoint's address (default: $CARRY_ENDPOINT).
        #[arg(long, value_name = "URL", requires = "from_endpoint")]
        endpoint: Option<String>,
        /// The recovery code (asked for if not given).
        #[arg(long)]
        code: Option<String>,
    },
    /// Move this profile to a new phone: show a pairing code, check the digits the
    /// new phone shows, send the record sealed to it, then offer to wipe this copy.
    MoveOut {
        /// Also write the pairing code as a QR image (.png or .svg).
        #[arg(long, value_name = "FILE")]
        qr: Option<PathBuf>,
        /// Wipe this copy once the new phone has it (else you are asked).
        #[arg(long, conflicts_with = "keep")]
        wipe: bool,
        /// Keep this copy (else you are asked).
        #[arg(long)]
        keep: bool,
        /// How long to wait for the new phone, in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 600,
              value_parser = clap::value_parser!(u64).range(1..=3600))]
        wait: u64,
    },
    /// Receive a profile from the old phone into an empty folder (--home).
    MoveIn {
        /// The code the old phone shows (carry:pair:…); asked for if not given.
        code: Option<String>,
        /// How long to wait for the old phone, in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 600,
              value_parser = clap::value_parser!(u64).range(1..=3600))]
        wait: u64,
    },
    /// Your devices: list them, add one, join from one, remove one.
    Devices {
        #[command(subcommand)]
        action: Option<commands::devices::DevicesAction>,
        /// Remove this device from the profile (its id, from the list).
        #[arg(long, value_name = "ID")]
        remove: Option<String>,
    },
    /// Your preferences: research and planning opt-outs, the default grant length,
    /// the lock timeout and what the emergency card shows. No options: show them.
    Prefs {
        #[command(flatten)]
        args: commands::prefs::PrefsArgs,
    },
    /// The audit log: grants, deliveries, contributions, exports.
    Audit {
        /// Check that no entry was changed or removed.
        #[arg(long)]
        verify: bool,
        /// At most this many entries, newest first.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(|| output::LogLine)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CARRY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let home = match cli.home.clone().or_else(context::default_home) {
        Some(h) => h,
        None => {
            eprintln!("error: no profile folder: pass --home DIR or set CARRY_HOME");
            return ExitCode::from(exit::USAGE);
        }
    };
    let profile = context::selected(&home, cli.profile.as_deref());
    context::choose(&profile);
    output::set_json_mode(cli.json);
    match commands::run(&home, &profile, cli.command).and_then(|o| {
        o.print(cli.json)?;
        Ok(o.code)
    }) {
        Ok(code) => ExitCode::from(code),
        Err(e) => exit::report(&e),
    }
}
