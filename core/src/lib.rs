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
pub use carry_base::{crypto, error, keys, private_file, qr, record, text};
use carry_base::{files, time};

pub mod audit;
pub mod backup;
pub mod contacts;
pub mod devices;
pub mod documents;
pub mod exchange;
pub mod export;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod import;
pub mod links;
pub(crate) mod mend;
pub mod net;
pub(crate) mod outbox;
pub mod prefs;
pub mod profile;
pub mod query;
pub mod readings;
pub mod restore;
pub mod scope;
pub mod share;
pub mod stop_sharing;
pub mod store;
pub mod sync;
#[cfg(test)]
mod test_support;
pub mod trend;
pub mod vault;

pub use error::{Error, Result};
pub use export::ExportScope;
pub use import::{FileFormat, FileReport, ImportOptions, ImportProgress, Rejection};
pub use keys::{KeyStore, PassphraseKeyStore, VaultKey};
pub use prefs::{EmergencyCardContents, OptOut, Preferences, PrefsChange};
pub use profile::{Profile, ProfileInfo};
pub use query::{Detail, Item, Page, Reference, Stats, TimelineQuery};
pub use readings::{GlucoseUnit, Reading, TemperatureUnit, WeightUnit};
pub use record::{Category, Code, EnteredBy, Label};
