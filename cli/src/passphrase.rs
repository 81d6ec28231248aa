//! Where the passphrase comes from: `CARRY_PASSPHRASE`, or a prompt with no echo.

use std::io::IsTerminal;

use carry_core::{Error, PassphraseKeyStore, Result};
use zeroize::Zeroizing;

/// The environment variable a script sets the passphrase in.
pub const ENV: &str = "CARRY_PASSPHRASE";

fn prompt(text: &str) -> Result<Zeroizing<String>> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::invalid(format!(
            "no passphrase: set {ENV} or run carry in a terminal"
        )));
    }
    rpassword::prompt_password(text)
        .map(Zeroizing::new)
        .map_err(|e| Error::invalid(format!("could not read the passphrase: {e}")))
}

fn from_env() -> Option<Zeroizing<String>> {
    std::env::var(ENV).ok().map(Zeroizing::new)
}

/// The key store for an existing profile.
pub fn existing() -> Result<PassphraseKeyStore> {
    let pass = match from_env() {
        Some(p) => p,
        None => prompt("Passphrase: ")?,
    };
    PassphraseKeyStore::new(pass.as_str())
}

/// The key store for a new profile; a typed passphrase is asked for twice.
pub fn new_profile() -> Result<PassphraseKeyStore> {
    let pass = match from_env() {
        Some(p) => p,
        None => {
            let first = prompt("New passphrase: ")?;
            let again = prompt("Same passphrase again: ")?;
            if first.as_str() != again.as_str() {
                return Err(Error::invalid("the two passphrases differ"));
            }
            first
        }
    };
    if pass.chars().count() < 8 {
        return Err(Error::invalid(
            "choose a passphrase of at least 8 characters",
        ));
    }
    PassphraseKeyStore::new(pass.as_str())
}
