//! The vault and the record in it, the layer of Carry's core above its base: the
//! SQLCipher vault and its migrations ([`vault`]), the one writer of resources
//! ([`store`]), import and export, the timeline, search and show ([`query`]), results
//! over time ([`trend`]), the person's readings, contacts and documents and their
//! mending, the audit log, the readings' outbox, and the scope that picks a grant's or
//! a share link's resources.
//!
//! `carry-core` re-exports every module here under the same name; being a crate of its
//! own, the compiler holds this layer to referring to nothing above it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

// The base layer, under the names the core uses.
pub use carry_base::{crypto, error, keys, private_file, qr, record, text};
use carry_base::{files, time};

pub mod audit;
pub mod contacts;
pub mod documents;
pub mod export;
pub mod import;
pub mod mend;
pub mod outbox;
pub mod query;
pub mod readings;
pub mod scope;
pub mod store;
pub mod trend;
pub mod vault;
