//! What every command works in: the home folder, the profile chosen, the endpoint,
//! and the async runtime the network commands run on.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use carry_core::share::dependants::{self, Purpose};
use carry_core::share::{self, ENDPOINT_ENV};
use carry_core::{Error, Profile, Result};

use crate::passphrase;

/// The file in the home folder naming the profile commands act on.
pub(crate) const CURRENT_FILE: &str = "current-profile";
/// The profile id of the person's own record.
pub const SELF: &str = "self";

/// `$CARRY_HOME`, else `~/.carry`.
pub fn default_home() -> Option<PathBuf> {
    std::env::var_os("CARRY_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".carry")))
}

/// The profile chosen for this run (`--profile`, else `carry use`), set once by
/// [`choose`].
static CHOSEN: OnceLock<String> = OnceLock::new();

/// Record the profile this run acts on.
pub fn choose(profile: &str) {
    let _ = CHOSEN.set(profile.to_string());
}

/// The dependant's record chosen for this run, if one is.
pub fn chosen_dependant() -> Option<&'static str> {
    CHOSEN.get().map(String::as_str).filter(|p| is_dependant(p))
}

/// Whether a profile id names a dependant's record (one this person keeps for
/// someone with no phone).
pub fn is_dependant(profile: &str) -> bool {
    profile.starts_with("d-")
}

/// Open the profile that commands which change a record act on: the person's own, or
/// (when one is chosen) the record of a dependant they keep, whose access must be in
/// force. A dependant's record is a whole profile: it imports, syncs, grants and
/// backs up like the person's own.
pub(crate) fn open(home: &Path) -> Result<Profile> {
    let own = open_own(home)?;
    match CHOSEN.get() {
        Some(id) if is_dependant(id) => dependants::open(&own, id, Purpose::Use),
        _ => Ok(own),
    }
}

/// Open the person's own profile in `home`, asking for its passphrase (or reading
/// `CARRY_PASSPHRASE`); a folder with no profile is [`Error::NotFound`].
pub(crate) fn open_own(home: &Path) -> Result<Profile> {
    if !home.join(carry_core::vault::VAULT_FILE).exists() {
        return Err(Error::not_found(format!(
            "no profile in {} (create one with `carry init --name NAME`)",
            home.display()
        )));
    }
    Profile::open(home, &passphrase::existing()?)
}

/// The profile id chosen by `--profile`, else by `carry use`, else the own record.
pub fn selected(home: &Path, flag: Option<&str>) -> String {
    flag.map(str::to_string)
        .or_else(|| {
            std::fs::read_to_string(home.join(CURRENT_FILE))
                .ok()
                .map(|s| s.trim().to_string())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| SELF.to_string())
}

/// Open the record the selected profile names: the person's own, or one shared with
/// them.
pub fn open_record(home: &Path, profile: &str) -> Result<Profile> {
    let own = open_own(home)?;
    if profile == SELF {
        return Ok(own);
    }
    if is_dependant(profile) {
        return dependants::open(&own, profile, Purpose::Use);
    }
    share::open_received(&own, profile)
}

/// The endpoint: `CARRY_ENDPOINT`, else the profile's.
pub fn endpoint_of(profile: &Profile) -> Result<String> {
    let env = std::env::var(ENDPOINT_ENV).ok();
    share::endpoint(profile, env.as_deref())
}

/// The async runtime the network commands block on: two worker threads.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::internal(format!("could not start the async runtime: {e}")))
}
