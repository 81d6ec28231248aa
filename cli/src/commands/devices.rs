//! Moving to a new phone: `carry move-out` on the old one, `carry move-in` on the new.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use carry_core::devices::{self, MoveIn, MoveOut};
use carry_core::{Error, Result};
use serde_json::json;

use crate::context::open;
use crate::exit;
use crate::output::{Outcome, Said};
use crate::passphrase;
use crate::prompt::{ask, Input};
use crate::{said, say};

/// Show the pairing code of `out`, wait for the other device, take the digits the
/// person types from its screen, and send the profile.
pub(crate) fn pair_and_send(
    rt: &tokio::runtime::Runtime,
    profile: &Arc<carry_core::Profile>,
    mut out: MoveOut,
    qr: Option<PathBuf>,
    command: &str,
    wait: Duration,
) -> Result<()> {
    if let Some(path) = &qr {
        crate::commands::links::write_qr(&out.qr()?, path)?;
        say!(
            "Scan the QR code in {} with the other device ({command}), or type this code there:",
            path.display()
        );
    } else {
        say!("On the other device, run {command} with this code:");
    }
    say!("{}", out.code());
    // This device does not show the digits: the person types what the other shows.
    rt.block_on(out.wait_for_new_device(wait))?;
    say!("The other device has the code and shows six digits.");
    let typed = ask(
        "Type the six digits the other device shows",
        Input::AnyInput,
    )?;
    rt.block_on(out.send(profile.clone(), &typed, wait))
}

/// `carry move-out [--qr FILE] [--wipe | --keep] [--wait SECONDS]`.
pub fn move_out(
    home: &Path,
    qr: Option<PathBuf>,
    wipe: Option<bool>,
    wait: Duration,
) -> Result<u8> {
    if let Some(id) = crate::context::chosen_dependant() {
        return Err(Error::invalid(format!(
            "{id} is a record you keep for someone else: hand it over with carry dependants hand-over {id}"
        )));
    }
    let profile = Arc::new(open(home)?);
    let url = crate::context::endpoint_of(&profile)?;
    let rt = crate::context::runtime()?;
    let out = rt.block_on(MoveOut::start(&url))?;
    pair_and_send(&rt, &profile, out, qr, "carry move-in", wait)?;
    say!("Your record is on the new phone, with the same identity, people, grants and audit log.");
    let wipe = match wipe {
        Some(w) => w,
        None => ask("Wipe this phone's copy now? (yes/no)", Input::AnyInput)
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
pub fn move_in(home: &Path, code: Option<String>, wait: Duration) -> Result<Outcome> {
    receive(home, code, None, wait)
}

/// Receive a profile into the empty `home`: moved, or (with `joining`, this device's
/// name) as another device of it.
fn receive(
    home: &Path,
    code: Option<String>,
    joining: Option<&str>,
    wait: Duration,
) -> Result<Outcome> {
    if home.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        return Err(Error::Conflict {
            reason: format!("{} is not empty; use a new folder", home.display()),
        });
    }
    let code = match code {
        Some(c) => c,
        None => ask(
            "The code the other device shows (carry:pair:…)",
            Input::AnyInput,
        )?,
    };
    let store = passphrase::new_profile()?;
    let rt = crate::context::runtime()?;
    let incoming = match joining {
        Some(name) => rt.block_on(MoveIn::join(&code, name))?,
        None => rt.block_on(MoveIn::start(&code))?,
    };
    say!(
        "Type these digits into the other device: {}",
        incoming.digits()
    );
    let profile = rt.block_on(incoming.finish(home, Arc::new(store), wait))?;
    let next = if joining.is_some() {
        "This device now keeps the record in step with the others: carry sync exchanges changes."
    } else {
        "Sign in to each provider again (carry source login NAME): sign-ins never travel."
    };
    crate::commands::backup::arrived(home, &profile, "arrived in", next)
}

/// What `carry devices` does.
#[derive(Debug, clap::Subcommand)]
pub enum DevicesAction {
    /// Add another device (a tablet): show a pairing code for it to join with.
    Add {
        /// This device's name in the list, if it is the profile's first.
        #[arg(long, default_value = "phone")]
        name: String,
        /// Also write the pairing code as a QR image (.png or .svg).
        #[arg(long, value_name = "FILE")]
        qr: Option<PathBuf>,
        /// How long to wait for the other device, in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 600,
              value_parser = clap::value_parser!(u64).range(1..=3600))]
        wait: u64,
    },
    /// Join a profile from another of your devices, into an empty folder (--home).
    Join {
        /// The code the other device shows (carry:pair:…); asked for if not given.
        code: Option<String>,
        /// This device's name, as the other devices list it.
        #[arg(long)]
        name: String,
        /// How long to wait for the other device, in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 600,
              value_parser = clap::value_parser!(u64).range(1..=3600))]
        wait: u64,
    },
    /// Make a device the one that talks to other people's devices.
    Primary {
        /// The device's id, from the list.
        id: String,
    },
}

/// `carry devices [--remove ID] [add | join | primary]`.
pub fn devices(
    home: &Path,
    action: Option<DevicesAction>,
    remove: Option<String>,
) -> Result<Outcome> {
    match action {
        Some(DevicesAction::Join { code, name, wait }) => {
            return receive(home, code, Some(&name), Duration::from_secs(wait))
        }
        Some(DevicesAction::Add { name, qr, wait }) => {
            let profile = Arc::new(open(home)?);
            let url = crate::context::endpoint_of(&profile)?;
            let rt = crate::context::runtime()?;
            let out = rt.block_on(MoveOut::add_device(&url, &name))?;
            pair_and_send(
                &rt,
                &profile,
                out,
                qr,
                "carry devices join --name NAME",
                Duration::from_secs(wait),
            )?;
            let mut said = Said::new(json!({ "added": true }));
            said!(
                said,
                "The other device has the record. carry sync keeps the two in step."
            );
            return Ok(Outcome::ok(said));
        }
        Some(DevicesAction::Primary { id }) => {
            let profile = open(home)?;
            devices::set_primary(&profile, &id)?;
            let mut said = Said::new(json!({ "primary": id }));
            said!(
                said,
                "Device {id} now talks to other people's devices (from its next sync)."
            );
            return Ok(Outcome::ok(said));
        }
        None => {}
    }
    let profile = open(home)?;
    if let Some(id) = remove {
        let code = devices::remove(&profile, &id)?;
        let mut said = Said::new(json!({ "removed": id, "code": code.as_str() }));
        said!(said, "Device {id} is removed: it gets no more changes, and what it sends is refused. What it already holds stays on it.");
        said!(said, "The profile has new keys: the people you share with are sent them, and the old keys stop working at the endpoint at this device's next carry sync.");
        said!(said, "");
        crate::commands::backup::code_lines(&mut said, &code);
        said!(said, "This is a new code: the old one opens no backup made from now on. Check it with carry recovery confirm.");
        return Ok(Outcome::ok(said));
    }
    let list = devices::list(&profile)?;
    let mut said = Said::new(json!(list));
    if list.is_empty() {
        said!(
            said,
            "This profile is on this device only. Add another with carry devices add."
        );
    }
    for d in list {
        said!(
            said,
            "{}  {}{}{}{}",
            d.id,
            d.name,
            if d.this_device { "  (this device)" } else { "" },
            if d.primary { "  (primary)" } else { "" },
            if d.removed_at.is_some() {
                "  (removed)"
            } else {
                ""
            }
        );
    }
    Ok(Outcome::ok(said))
}
