//! Never lose the record: `carry recovery`, `carry backup`, `carry restore`.

use std::path::{Path, PathBuf};

use carry_core::backup;
use carry_core::{Error, Profile, Result};
use serde_json::json;

use crate::context::open;
use crate::output::{Outcome, Said};
use crate::passphrase;
use crate::prompt::{ask, Input};
use crate::said;

/// `carry recovery` subcommands.
#[derive(clap::Subcommand)]
pub enum RecoveryAction {
    /// Show the recovery code: write it down and keep it apart from the phone.
    Show {
        /// Also write it as a QR image (.png or .svg), to print and keep with it.
        #[arg(long, value_name = "FILE")]
        qr: Option<PathBuf>,
    },
    /// Replace the code; the old one opens no backup made from now on.
    Regenerate,
    /// Show that you wrote it down: type back two groups when asked.
    Confirm {
        /// Answers as POSITION=GROUP (for scripts); without them you are asked.
        #[arg(long = "group", value_name = "N=GROUP")]
        groups: Vec<String>,
    },
}

/// A recovery code for the person to write down, in `said` (its JSON is `code`).
pub(crate) fn code_lines(said: &mut Said, code: &str) {
    said!(
        said,
        "Your recovery code (14 groups; the last one catches typos):"
    );
    said!(said, "");
    for line in code.split('-').collect::<Vec<_>>().chunks(7) {
        said!(said, "    {}", line.join("-"));
    }
    said!(said, "");
    said!(
        said,
        "Write it down and keep it somewhere other than this phone. With it, and"
    );
    said!(
        said,
        "nothing else, your record can be restored on a new phone."
    );
}

/// A recovery code as an answer: `{"code": …}`, or the lines to write it down from.
fn code_answer(code: &str) -> Said {
    let mut said = Said::new(json!({ "code": code }));
    code_lines(&mut said, code);
    said
}

/// `carry recovery …`.
pub fn recovery(home: &Path, action: RecoveryAction) -> Result<Outcome> {
    let profile = open(home)?;
    let said = match action {
        RecoveryAction::Show { qr } => {
            let mut said = code_answer(&backup::recovery_code(&profile)?);
            if let Some(path) = qr {
                crate::commands::links::write_qr(&backup::recovery_qr(&profile)?, &path)?;
                said!(
                    said,
                    "The QR code in {} holds the same code: print it, then delete the file.",
                    path.display()
                );
            }
            said
        }
        RecoveryAction::Regenerate => {
            let mut said = code_answer(&backup::regenerate_recovery_code(&profile)?);
            said!(
                said,
                "The old code no longer opens new backups. Make one now: carry backup --out FILE"
            );
            said
        }
        RecoveryAction::Confirm { groups } => {
            let answers: Vec<(usize, String)> = if groups.is_empty() {
                backup::confirmation_positions()?
                    .into_iter()
                    .map(|p| {
                        Ok((
                            p,
                            ask(&format!("Group {p} of your recovery code"), Input::Terminal)?,
                        ))
                    })
                    .collect::<Result<_>>()?
            } else {
                groups
                    .iter()
                    .map(|g| {
                        let (n, v) = g
                            .split_once('=')
                            .ok_or_else(|| Error::invalid("give --group as N=GROUP"))?;
                        let n: usize = n
                            .parse()
                            .map_err(|_| Error::invalid("give --group as N=GROUP"))?;
                        Ok((n, v.to_string()))
                    })
                    .collect::<Result<_>>()?
            };
            backup::confirm_recovery_code(&profile, &answers)?;
            let mut said = Said::new(json!({ "confirmed": true }));
            said!(said, "Confirmed: you have the code written down.");
            said
        }
    };
    Ok(Outcome::ok(said))
}

/// `carry backup [--out FILE] [--full]`: to a file, or to the endpoint.
pub fn backup(home: &Path, out: Option<PathBuf>, full: bool) -> Result<Outcome> {
    let profile = std::sync::Arc::new(open(home)?);
    let Some(path) = out else {
        let url = crate::context::endpoint_of(&profile)?;
        let r = crate::context::runtime()?.block_on(backup::backup_to_endpoint(
            profile.clone(),
            &url,
            &Default::default(),
            full,
        ))?;
        let mut said = Said::new(json!({ "id": r.id, "kind": r.kind, "bytes": r.bytes,
            "resources": r.resources, "endpoint": url,
            "restores_elsewhere": r.restores_elsewhere,
            "last_restored_at": r.last_restored_at }));
        if r.restores_elsewhere > 0 {
            said!(
                said,
                "Warning: since your last backup, your backup at {} was restored with your recovery code {} time{}{}. If that was not you on a new phone, someone else has your code: run `carry recovery regenerate`, keep the new code safe, and back up again (that deletes the backups the old code finds).",
                url,
                r.restores_elsewhere,
                if r.restores_elsewhere == 1 { "" } else { "s" },
                r.last_restored_at
                    .as_deref()
                    .map(|t| format!(" (last at {t})"))
                    .unwrap_or_default()
            );
        }
        if r.kind == "incremental" {
            said!(
                said,
                "Backed up what changed since the last backup ({} resources, {} KB, encrypted on this device) to {}.",
                r.resources,
                r.bytes / 1024,
                url
            );
        } else {
            said!(
                said,
                "Backed up {} resources to {} ({} KB, encrypted on this device). Your recovery code alone finds it again.",
                r.resources,
                url,
                r.bytes / 1024
            );
        }
        return Ok(Outcome::ok(said));
    };
    let r = backup::backup_to_file(&profile, &path)?;
    let mut said = Said::new(json!({ "id": r.id, "kind": r.kind, "bytes": r.bytes,
        "resources": r.resources, "file": path }));
    {
        said!(
            said,
            "Backed up {} resources (and your people, grants, audit log and settings) to {} ({} KB, encrypted).",
            r.resources,
            path.display(),
            r.bytes / 1024
        );
        said!(said, "It opens only with your recovery code (carry recovery show). Provider sign-ins are not in it.");
    }
    Ok(Outcome::ok(said))
}

/// Where `carry restore` reads from.
pub enum From {
    /// A backup file.
    File(PathBuf),
    /// The endpoint at this address.
    Endpoint(String),
}

/// `carry restore (--file FILE | --from-endpoint) [--code CODE]` into an empty home.
pub fn restore(home: &Path, from: From, code: Option<String>) -> Result<Outcome> {
    let code = match code {
        Some(c) => c,
        None => ask("Your recovery code", Input::Terminal)?,
    };
    let store = passphrase::new_profile()?;
    let profile: Profile = match from {
        From::File(file) => carry_core::restore::from_file(home, &file, &code, &store)?,
        From::Endpoint(url) => crate::context::runtime()?.block_on(
            carry_core::restore::from_endpoint(home, &url, &code, std::sync::Arc::new(store)),
        )?,
    };
    arrived(
        home,
        &profile,
        "was restored into",
        "Sign in to each provider again (carry source login NAME): sign-ins are never in backups.",
    )
}

/// Say what arrived in `home` (a restore, a move or a joining device): whose record,
/// how many resources, `how` it came, then `next`. JSON: home, name and resources.
pub fn arrived(home: &Path, profile: &Profile, how: &str, next: &str) -> Result<Outcome> {
    let info = profile.info()?;
    let stats = profile.stats()?;
    let mut said =
        Said::new(json!({ "home": home, "name": info.name, "resources": stats.resources }));
    {
        said!(
            said,
            "{}'s record ({} resources) {how} {}, with the same identity, people, grants and audit log.",
            info.name,
            stats.resources,
            home.display()
        );
        said!(said, "{next}");
    }
    Ok(Outcome::ok(said))
}
