//! The handle apps hold on a person's record, [`profile::Profile`] (create, open,
//! lock and unlock, import, the timeline, search and show, readings, contacts,
//! documents, export), and the person's settings ([`prefs`]), over the vault layer.
//!
//! `carry-core` re-exports both modules under the same names; being a crate of its
//! own, the compiler holds this layer below the features that use it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

// The layers below, under the names the core uses.
use carry_base::time;
pub use carry_base::{crypto, error, keys, private_file, qr, record, text};
pub use carry_vault::{
    audit, contacts, documents, export, import, mend, outbox, query, readings, scope, store, trend,
    vault,
};

pub mod prefs;
pub mod profile;
