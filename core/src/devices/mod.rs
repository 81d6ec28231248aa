//! The person's devices: moving the profile to a new phone, and keeping it on more
//! than one device (a phone and a tablet) in step.
//!
//! Both start with a pairing ([`pairing`]): the device that holds the profile shows a
//! code, the other scans it, and the person types the six digits the new device shows
//! into the old one. A move ([`MoveOut`], [`MoveIn`]) then sends the whole profile
//! and offers to wipe the old phone ([`wipe`]). Adding a device
//! ([`MoveOut::add_device`], [`MoveIn::join`]) sends it too, but both devices keep it:
//! they share the profile's identity, and each change made on one (readings, people,
//! grants, revocations, the audit log) reaches the others as sealed batches through
//! the relay ([`exchange`]); concurrent changes merge by the rules in [`ops`]. One
//! device, the *primary*, talks to other people's devices; the others send it their
//! changes. A removed device ([`remove`]) gets nothing more.

mod moving;
pub mod ops;
pub mod pairing;
mod registry;
pub(crate) mod rotation;
pub(crate) mod seal;
mod transport;

pub use crate::share::DevicesReport;
pub use moving::{wipe, MoveIn, MoveOut, DEFAULT_WAIT};
pub(crate) use registry::{is_primary, store_self};
pub use registry::{list, remove, set_primary, Device};
pub use transport::exchange;
pub(crate) use transport::{connect, pass};

#[cfg(test)]
mod tests;
