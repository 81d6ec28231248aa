//! The bottom layer of Carry's core: what every other layer uses and which uses
//! nothing above it. Errors ([`error`]), vault keys and key stores ([`keys`]), the
//! cryptography of people and devices ([`crypto`]: HPKE, identities), the FHIR record
//! model ([`record`]: analysis, categories, sensitivity labels, display lines), QR
//! codes ([`qr`]), text made safe for terminals ([`text`]), times ([`time`]) and
//! owner-only files ([`private_file`], [`files`]).
//!
//! `carry-core` re-exports every module here under the same name, so apps and the
//! bindings see one API; being a crate of its own, the compiler holds this layer to
//! referring to nothing above it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod crypto;
pub mod error;
pub mod files;
pub mod keys;
pub mod private_file;
pub mod qr;
pub mod record;
pub mod text;
pub mod time;

pub use error::{Error, Result};
