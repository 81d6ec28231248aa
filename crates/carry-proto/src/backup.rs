//! The backup host's headers and JSON bodies, under `/backup/v1` (`docs/formats.md`,
//! "Recovery code and backups"). The blobs themselves travel as octets.

use serde::{Deserialize, Deserializer, Serialize};

/// The header that carries the fetch secret on a fetch (base64url of 32 bytes).
/// Header names are written in lower case, as HTTP/2 sends them; HTTP/1.1 compares
/// them regardless of case.
pub const FETCH_HEADER: &str = "x-carry-fetch";
/// The header that carries the fetch secret's SHA-256 on an upload (base64url).
pub const FETCH_HASH_HEADER: &str = "x-carry-fetch-hash";
/// The header that names an incremental's base: on an upload, the version it builds
/// on; on a fetch, the version the one served builds on (decimal).
pub const BASE_HEADER: &str = "x-carry-base";
/// The header that names the version a fetch returns (decimal).
pub const VERSION_HEADER: &str = "x-carry-version";

/// How often the endpoint served a locator's latest version to the right fetch
/// secret, which every restore from the recovery code does once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restores {
    /// Restores since the locator was made.
    pub count: u64,
    /// When the last one was served, in seconds since the epoch (`null`: none yet).
    #[serde(default)]
    pub last_at: Option<i64>,
}

/// The 201 to `PUT /backup/v1/blobs/{locator}`: the version stored. The core reads
/// only `version` and `restores`, which endpoints from before restores were counted
/// leave out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// The version it builds on (`null` for a full backup).
    #[serde(default)]
    pub base: Option<i64>,
    /// Its size in bytes.
    #[serde(default)]
    pub bytes: u64,
    /// How often the backup was restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restores: Option<Restores>,
    /// Its number, from 1 per locator.
    pub version: i64,
}

/// One version of a [`Versions`] list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionEntry {
    /// The version it builds on (`null` for a full backup).
    pub base: Option<i64>,
    /// Its size in bytes.
    pub bytes: u64,
    /// When it was stored, in seconds since the epoch.
    pub created_at: i64,
    /// Its number.
    pub version: i64,
}

/// `GET /backup/v1/blobs/{locator}/versions` (the owner): the versions kept, newest
/// first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    /// The versions.
    pub versions: Vec<VersionEntry>,
}

/// A refusal's body at the backup host: `{"error"}`, and on a 409 what the client
/// needs: `latest` (`null` when the locator has no version yet) when the upload's
/// base is not the latest version, or `full_required: true` when the chain since the
/// latest full holds all the incrementals it may.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// What went wrong, for a person to read.
    pub error: String,
    /// The chain is full: upload a full backup.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub full_required: bool,
    /// The base is stale: the latest version (`Some(None)`: the locator has none).
    /// `None` when the key is absent.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub latest: Option<Option<i64>>,
}

impl Refusal {
    /// `{"error"}`.
    pub fn plain(error: String) -> Self {
        Refusal {
            error,
            full_required: false,
            latest: None,
        }
    }

    /// The 409 to an incremental whose base is not `latest`.
    pub fn stale(error: String, latest: Option<i64>) -> Self {
        Refusal {
            latest: Some(latest),
            ..Refusal::plain(error)
        }
    }

    /// The 409 to an incremental on a chain that is full.
    pub fn full_required(error: String) -> Self {
        Refusal {
            full_required: true,
            ..Refusal::plain(error)
        }
    }
}

/// A key that is present, even as `null`: `Some` of its value (absent keys are
/// `None` by `#[serde(default)]`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::pins;

    #[test]
    fn an_upload_answer_is_as_the_protocol_writes_it() {
        pins(
            &Stored {
                base: None,
                bytes: 1024,
                restores: Some(Restores {
                    count: 0,
                    last_at: None,
                }),
                version: 1,
            },
            json!({
                "base": null, "bytes": 1024,
                "restores": { "count": 0, "last_at": null }, "version": 1,
            }),
        );
        pins(
            &Stored {
                base: Some(1),
                bytes: 10,
                restores: Some(Restores {
                    count: 2,
                    last_at: Some(1_700_000_000),
                }),
                version: 2,
            },
            json!({
                "base": 1, "bytes": 10,
                "restores": { "count": 2, "last_at": 1_700_000_000 }, "version": 2,
            }),
        );
    }

    #[test]
    fn an_upload_answer_of_an_older_endpoint_is_read() {
        let s: Stored = serde_json::from_value(json!({ "version": 3 })).unwrap();
        assert_eq!((s.version, s.restores, s.base), (3, None, None));
        let s: Stored =
            serde_json::from_value(json!({ "version": 3, "bytes": 5, "base": 2 })).unwrap();
        assert_eq!((s.version, s.restores, s.base), (3, None, Some(2)));
        let r: Restores = serde_json::from_value(json!({ "count": 1 })).unwrap();
        assert_eq!(r.last_at, None);
    }

    #[test]
    fn the_versions_list_is_as_the_protocol_writes_it() {
        pins(
            &Versions {
                versions: vec![
                    VersionEntry {
                        base: Some(1),
                        bytes: 10,
                        created_at: 20,
                        version: 2,
                    },
                    VersionEntry {
                        base: None,
                        bytes: 100,
                        created_at: 10,
                        version: 1,
                    },
                ],
            },
            json!({ "versions": [
                { "base": 1, "bytes": 10, "created_at": 20, "version": 2 },
                { "base": null, "bytes": 100, "created_at": 10, "version": 1 },
            ] }),
        );
    }

    #[test]
    fn refusals_say_what_the_client_needs() {
        pins(&Refusal::plain("no".into()), json!({ "error": "no" }));
        pins(
            &Refusal::stale("stale".into(), Some(3)),
            json!({ "error": "stale", "latest": 3 }),
        );
        pins(
            &Refusal::stale("stale".into(), None),
            json!({ "error": "stale", "latest": null }),
        );
        pins(
            &Refusal::full_required("full".into()),
            json!({ "error": "full", "full_required": true }),
        );
    }
}
