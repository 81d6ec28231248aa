//! Exit codes, which are part of the CLI's interface, and error reports with remedies.

use std::process::ExitCode;

use carry_core::Error;

/// Success.
pub const OK: u8 = 0;
/// Anything not listed below.
pub const OTHER: u8 = 1;
/// Bad input or usage.
pub const USAGE: u8 = 2;
/// Wrong key, passphrase or recovery code, or the profile is locked.
pub const KEY: u8 = 3;
/// Denied, expired or revoked; or a provider refused the sign-in.
pub const DENIED: u8 = 4;
/// A provider could not be reached or kept failing.
pub const NETWORK: u8 = 5;

/// The exit code for `e`.
pub fn code(e: &Error) -> u8 {
    match e {
        Error::InvalidInput { .. } | Error::NotFound { .. } | Error::Conflict { .. } => USAGE,
        Error::WrongKey | Error::WrongRecoveryCode | Error::Locked => KEY,
        Error::Denied { .. }
        | Error::Auth { .. }
        | Error::Expired { .. }
        | Error::Revoked { .. }
        | Error::Envelope { .. } => DENIED,
        Error::Network { .. } => NETWORK,
        _ => OTHER,
    }
}

/// What to do about `e`, if there is something.
fn remedy(e: &Error) -> Option<&'static str> {
    match e {
        Error::WrongKey => {
            Some("check the passphrase (CARRY_PASSPHRASE or the prompt); the vault was not changed")
        }
        Error::WrongRecoveryCode => Some(
            "check the recovery code against the one you wrote down (carry recovery show on a device that has the profile)",
        ),
        Error::Locked => Some("unlock the profile first"),
        Error::Auth { .. } => Some("sign in to the provider again: carry source login NAME"),
        Error::Network { .. } => {
            Some("nothing fetched so far was lost; run carry sync again to resume")
        }
        Error::Corrupt { .. } => Some("keep the file; restore the profile from a backup"),
        Error::TooNew { .. } => Some("install a newer carry"),
        Error::KeyStore { .. } => {
            Some("the key file beside the vault is unreadable; restore it from a backup")
        }
        _ => None,
    }
}

/// Print `e` to stderr and return its exit code. A reason may quote a server or a
/// file, so it is made safe for the terminal first.
pub fn report(e: &Error) -> ExitCode {
    crate::note!("error: {e}");
    if let Some(r) = remedy(e) {
        crate::note!("hint: {r}");
    }
    ExitCode::from(code(e))
}
