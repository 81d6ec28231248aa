//! Carry's core: a person-held health record, encrypted on the device.
//!
//! A [`Profile`] holds one person's record in a SQLCipher vault whose key is wrapped
//! by a [`KeyStore`]. FHIR R4 resources are imported losslessly from files
//! ([`Profile::import_file`]), indexed by category, date, codes and sensitivity, and
//! read back through the timeline, search, show, stats and export.
//!
//! This crate knows nothing of UniFFI, Swift or Kotlin; `carry-ffi` wraps it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

// The bottom layer is the carry-base crate, re-exported under the same names.
use carry_base::time;
pub use carry_base::{crypto, error, keys, private_file, qr, record, text};
// The vault and the record in it are the carry-vault crate, re-exported the same way.
pub use carry_vault::{
    audit, contacts, documents, export, import, query, readings, scope, store, trend, vault,
};
// The network plumbing is the carry-net crate.
pub use carry_net as net;
// The handle apps hold and the person's settings are the carry-profile crate.
pub use carry_profile::{prefs, profile};
// The features, each a crate of its own.
pub use carry_backup::backup;
pub use carry_links::links;
pub use carry_share::share;
pub use carry_sync::sync;

pub mod devices;
pub mod exchange;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod restore;
pub mod stop_sharing;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

pub use error::{Error, Result};
pub use export::ExportScope;
pub use import::{FileFormat, FileReport, ImportOptions, ImportProgress, Rejection};
pub use keys::{KeyStore, PassphraseKeyStore, VaultKey};
pub use prefs::{EmergencyCardContents, OptOut, Preferences, PrefsChange};
pub use profile::{Profile, ProfileInfo};
pub use query::{Detail, Item, Page, Reference, Stats, TimelineQuery};
pub use readings::{GlucoseUnit, Reading, TemperatureUnit, WeightUnit};
pub use record::{Category, Code, EnteredBy, Label};
