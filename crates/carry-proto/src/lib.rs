//! `carry-proto`: the parts of Carry's wire format that both sides must agree on, in
//! one place, so the core, the endpoint and the soak tool cannot drift apart.
//!
//! - [`relay`]: the relay's signing contexts (what each Ed25519 signature covers) and
//!   the mailbox id; the message builders there are the exact bytes signed and
//!   checked. Its JSON bodies (sign-in, the directory, envelopes, retirement, and the
//!   plain `{"error"}` body every host answers with) are in [`relay::messages`].
//! - [`links`]: the JSON bodies of the share-link host (SMART Health Links): the
//!   owner API and the public manifest.
//! - [`backup`]: the backup host's headers and JSON bodies.
//! - [`nhs`]: NHS England's identifiers (the NHS number and its check digit).
//!
//! The bodies are plain serde types. Their fields are declared in the order of their
//! JSON keys, sorted, so each serializes to the very bytes the `serde_json::json!`
//! maps it replaced wrote. Fields a client reads as optional (absent from older
//! endpoints) are `#[serde(default)]`; a key the endpoint leaves out when it has no
//! value is skipped when `None`, and one it writes as `null` is written as `null`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backup;
pub mod links;
pub mod nhs;
pub mod relay;

/// A check the tests of every module share: `value` serializes to exactly the JSON
/// text of `wire` (written with its keys sorted, as the endpoint's maps wrote them),
/// and `wire` parses back to `value`.
#[cfg(test)]
pub(crate) fn pins<T>(value: &T, wire: serde_json::Value)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    assert_eq!(
        serde_json::to_string(value).unwrap(),
        serde_json::to_string(&wire).unwrap(),
        "the JSON of {value:?}"
    );
    assert_eq!(&serde_json::from_value::<T>(wire).unwrap(), value);
}
