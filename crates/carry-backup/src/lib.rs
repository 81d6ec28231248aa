//! Backups ([`backup`]), a feature of Carry's core in a crate of its own: it stands on
//! the profile, vault, network and base layers and on no other feature, and the
//! compiler holds it to that. `carry-core` re-exports it as `backup`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

// The layers below, under the names the core uses.
use carry_base::{error, keys, private_file, qr, record, time};
use carry_net as net;
use carry_profile::profile;
use carry_vault::{audit, vault};

pub mod backup;
