//! Never lose the record: `carry recovery`, `carry backup`, `carry restore`.

use std::path::{Path, PathBuf};

use carry_core::backup;
use carry_core::{Error, Profile, Result};
use serde_json::json;

use crate::context::open;
use crate::exit;
use crate::output::print_json;
use crate::passphrase;
use crate::prompt::{ask, Input};
use crate::say;

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

/// Print a recovery code for the person to write down (or as JSON).
pub(crate) fn print_code(code: &str, as_json: bool) -> Result<()> {
    if as_json {
        print_json(&json!({ "code": code }))?;
    } else {
        say!("Your recovery code (14 groups; the last one catches typos):");
        say!("");
        for line in code.split('-').collect::<Vec<_>>().chunks(7) {
            say!("    {}", line.join("-"));
        }
        say!("");
        say!("Write it down and keep it somewhere other than this phone. With it, and");
        say!("nothing else, your record can be restored on a new phone.");
    }
    Ok(())
}

/// `carry recovery …`.
pub fn recovery(home: &Path, as_json: bool, action: RecoveryAction) -> Result<u8> {
    let profile = open(home)?;
    match action {
        RecoveryAction::Show { qr } => {
            print_code(&backup::recovery_code(&profile)?, as_json)?;
            if let Some(path) = qr {
                crate::commands::links::write_qr(&backup::recovery_qr(&profile)?, &path)?;
                if !as_json {
                    say!(
                        "The QR code in {} holds the same code: print it, then delete the file.",
                        path.display()
                    );
                }
            }
        }
        RecoveryAction::Regenerate => {
            let code = backup::regenerate_recovery_code(&profile)?;
            print_code(&code, as_json)?;
            if !as_json {
                say!("The old code no longer opens new backups. Make one now: carry backup --out FILE");
            }
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
            if as_json {
                print_json(&json!({ "confirmed": true }))?;
            } else {
                say!("Confirmed: you have the code written down.");
            }
        }
    }
    Ok(exit::OK)
}

/// `carry backup [--out FILE] [--full]`: to a file, or to the endpoint.
pub fn backup(home: &Path, as_json: bool, out: Option<PathBuf>, full: bool) -> Result<u8> {
    let profile = std::sync::Arc::new(open(home)?);
    let Some(path) = out else {
        let url = crate::context::endpoint_of(&profile)?;
        let r = crate::context::runtime()?.block_on(backup::backup_to_endpoint(
            profile.clone(),
            &url,
            &Default::default(),
            full,
        ))?;
        if as_json {
            print_json(&json!({ "id": r.id, "kind": r.kind, "bytes": r.bytes,
                "resources": r.resources, "endpoint": url,
                "restores_elsewhere": r.restores_elsewhere,
                "last_restored_at": r.last_restored_at }))?;
            return Ok(exit::OK);
        }
        if r.restores_elsewhere > 0 {
            say!(
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
            say!(
                "Backed up what changed since the last backup ({} resources, {} KB, encrypted on this device) to {}.",
                r.resources,
                r.bytes / 1024,
                url
            );
        } else {
            say!(
                "Backed up {} resources to {} ({} KB, encrypted on this device). Your recovery code alone finds it again.",
                r.resources,
                url,
                r.bytes / 1024
            );
        }
        return Ok(exit::OK);
    };
    let r = backup::backup_to_file(&profile, &path)?;
    if as_json {
        print_json(&json!({ "id": r.id, "kind": r.kind, "bytes": r.bytes,
            "resources": r.resources, "file": path }))?;
    } else {
        say!(
            "Backed up {} resources (and your people, grants, audit log and settings) to {} ({} KB, encrypted).",
            r.resources,
            path.display(),
            r.bytes / 1024
        );
        say!("It opens only with your recovery code (carry recovery show). Provider sign-ins are not in it.");
    }
    Ok(exit::OK)
}

/// Where `carry restore` reads from.
pub enum From {
    /// A backup file.
    File(PathBuf),
    /// The endpoint at this address.
    Endpoint(String),
}

/// `carry restore (--file FILE | --from-endpoint) [--code CODE]` into an empty home.
pub fn restore(home: &Path, as_json: bool, from: From, code: Option<String>) -> Result<u8> {
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
        as_json,
        &profile,
        "was restored into",
        "Sign in to each provider again (carry source login NAME): sign-ins are never in backups.",
    )
}

/// Say what arrived in `home` (a restore, a move or a joining device): whose record,
/// how many resources, `how` it came, then `next`. JSON: home, name and resources.
pub fn arrived(home: &Path, as_json: bool, profile: &Profile, how: &str, next: &str) -> Result<u8> {
    let info = profile.info()?;
    let stats = profile.stats()?;
    if as_json {
        print_json(&json!({ "home": home, "name": info.name, "resources": stats.resources }))?;
    } else {
        say!(
            "{}'s record ({} resources) {how} {}, with the same identity, people, grants and audit log.",
            info.name,
            stats.resources,
            home.display()
        );
        say!("{next}");
    }
    Ok(exit::OK)
}
