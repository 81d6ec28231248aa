//! `carry-proto`: the parts of Carry's wire format that both sides must agree on, in
//! one place, so the core, the endpoint and the soak tool cannot drift apart.
//!
//! Today: the relay's signing contexts (what each Ed25519 signature covers) and the
//! mailbox id. The message builders here are the exact bytes signed and checked.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod relay;
