//! Grants and carers ([`share`]), a feature of Carry's core in a crate of its own: it
//! stands on the profile, vault, network and base layers and on no other feature, and
//! the compiler holds it to that. `carry-core` re-exports it as `share`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

// The layers below, under the names the core uses.
use carry_base::{crypto, error, keys, record, text, time};
use carry_net as net;
use carry_profile::{prefs, profile};
use carry_vault::import;
use carry_vault::{audit, export, outbox, query, readings, scope, store, vault};

pub mod share;
