//! `carry-ffi`: the UniFFI face of `carry-core` for Swift and Kotlin.
//!
//! This layer is thin on purpose: records and enums mirror the core's types, the
//! [`Profile`] object forwards to `carry_core::Profile` on blocking threads, and the
//! foreign traits ([`KeyStore`], [`Logger`], [`Events`]) adapt the app's
//! implementations. The Rust items here are not a public Rust API; the public API is
//! the generated Swift and Kotlin.

// UniFFI's scaffolding needs `unsafe` (`extern "C"` functions); this crate writes none.
#![deny(unsafe_op_in_unsafe_fn)]

mod backup;
mod callbacks;
mod contacts;
mod dependants;
mod devices;
mod documents;
mod error;
mod links;
mod logging;
mod prefs;
mod profile;
mod proxy;
mod share;
mod sync;
mod trend;
mod trust;
mod types;

pub use backup::*;
pub use callbacks::{set_client_signer, ClientSigner, Events, KeyStore};
pub use contacts::*;
pub use dependants::*;
pub use devices::*;
pub use documents::*;
pub use error::CarryError;
pub use links::*;
pub use logging::{set_logger, LogLevel, Logger};
pub use prefs::*;
pub use profile::Profile;
pub use proxy::*;
pub use share::*;
pub use sync::*;
pub use trend::*;
pub use trust::*;
pub use types::*;

uniffi::setup_scaffolding!("carry");
