//! Moving to a new phone: `carry move-out` on the old one, `carry move-in` on the new.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use carry_core::devices::{self, MoveIn, MoveOut};
use carry_core::{Error, Result};
use serde_json::json;

use crate::commands::{open, print_json};
use crate::exit;
use crate::passphrase;
use crate::say;

/// Read one line the person types (also from a pipe): the prompt goes to stderr.
fn answer(prompt: &str) -> Result<String> {
    eprint!("{prompt}: ");
    let mut s = String::new();
    let n = std::io::stdin()
        .lock()
        .read_line(&mut s)
        .map_err(|e| Error::invalid(format!("could not read: {e}")))?;
    if n == 0 {
        return Err(Error::invalid(format!("{prompt}: no answer was typed")));
    }
    Ok(s.trim().to_string())
}

/// `carry move-out [--qr FILE] [--wipe | --keep] [--wait SECONDS]`.
pub fn move_out(
    home: &Path,
    qr: Option<PathBuf>,
    wipe: Option<bool>,
    wait: Duration,
) -> Result<u8> {
    let profile = Arc::new(open(home)?);
    let url = crate::share_cmds::endpoint_of(&profile)?;
    let rt = crate::sync_cmds::runtime()?;
    let mut out = rt.block_on(MoveOut::start(&url))?;
    if let Some(path) = &qr {
        crate::shl_cmds::write_qr(&out.qr()?, path)?;
        say!(
            "Scan the QR code in {} with the new phone (carry move-in), or type this code there:",
            path.display()
        );
    } else {
        say!("On the new phone, run carry move-in with this code:");
    }
    say!("{}", out.code());
    // This phone does not show the digits: the person types what the new one shows.
    rt.block_on(out.wait_for_new_device(wait))?;
    say!("The new phone has the code and shows six digits.");
    let typed = answer("Type the six digits the new phone shows")?;
    rt.block_on(out.send(profile.clone(), &typed, wait))?;
    say!("Your record is on the new phone, with the same identity, people, grants and audit log.");
    let wipe = match wipe {
        Some(w) => w,
        None => answer("Wipe this phone's copy now? (yes/no)")
            .map(|a| matches!(a.to_lowercase().as_str(), "y" | "yes"))
            .unwrap_or(false),
    };
    profile.lock();
    drop(profile);
    if wipe {
        devices::wipe(home)?;
        say!("This phone's copy is wiped.");
    } else {
        say!("This phone still holds the record. Don't use both phones for it: the new one is now the one your carers and providers reach. To wipe this copy later, delete the folder {}.", home.display());
    }
    Ok(exit::OK)
}

/// `carry move-in [CODE] [--wait SECONDS]` into an empty home.
pub fn move_in(home: &Path, as_json: bool, code: Option<String>, wait: Duration) -> Result<u8> {
    if home.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        return Err(Error::Conflict {
            reason: format!("{} is not empty; move into a new folder", home.display()),
        });
    }
    let code = match code {
        Some(c) => c,
        None => answer("The code the old phone shows (carry:pair:…)")?,
    };
    let store = passphrase::new_profile()?;
    let rt = crate::sync_cmds::runtime()?;
    let incoming = rt.block_on(MoveIn::start(&code))?;
    say!(
        "Type these digits into the old phone: {}",
        incoming.digits()
    );
    let profile = rt.block_on(incoming.finish(home, Arc::new(store), wait))?;
    let info = profile.info()?;
    let stats = profile.stats()?;
    if as_json {
        print_json(&json!({ "home": home, "name": info.name, "resources": stats.resources }))?;
    } else {
        say!(
            "{}'s record ({} resources) arrived in {}, with the same identity, people, grants and audit log.",
            info.name,
            stats.resources,
            home.display()
        );
        say!("Sign in to each provider again (carry source login NAME): sign-ins never travel.");
    }
    Ok(exit::OK)
}
