//! SMART Health Links ([`links`]), a feature of Carry's core in a crate of its own: it
//! stands on the profile, vault, network and base layers and on no other feature, and
//! the compiler holds it to that. `carry-core` re-exports it as `links`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

// The layers below, under the names the core uses.
use carry_base::{error, keys, qr, record, text, time};
use carry_net as net;
use carry_profile::{prefs, profile};
#[cfg(test)]
use carry_vault::import;
use carry_vault::{audit, contacts, readings, scope, vault};

pub mod links;
