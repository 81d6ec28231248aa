//! The backends every service's store trait is implemented on: embedded SQLite (the
//! default) and PostgreSQL, each split by service (`fhir.rs`, `relay.rs`, `links.rs`,
//! `backup.rs`) with its schema as numbered migrations (`schema.rs`, after
//! [`migrations`]); and the conformance suite both must pass.

#[cfg(test)]
mod conformance;
pub(crate) mod migrations;
pub(crate) mod postgres;
pub(crate) mod sqlite;
