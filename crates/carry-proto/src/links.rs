//! The share-link host's JSON bodies (SMART Health Links; `docs/formats.md`, "The
//! endpoint's share host"): the owner API under `/shl/v1/links`, signed in with a
//! relay session, and the public manifest at `/shl/m/{id}`. Refusals are
//! [`crate::relay::messages::ErrorBody`], or [`WrongPasscode`].

use serde::{Deserialize, Serialize};

/// `POST /shl/v1/links`: store an encrypted file behind a new link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRequest {
    /// When the link stops working, in seconds since the epoch (none: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// The JWE, in compact serialization.
    pub file: String,
    /// The link's flags: `""`, `L`, `P`, `LP`, `U` or `LU`.
    #[serde(default)]
    pub flags: String,
    /// The link works for one successful opening only.
    #[serde(default)]
    pub once: bool,
    /// The passcode of a `P` link (4 to 64 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passcode: Option<String>,
}

/// The 201 to a [`CreateRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateAnswer {
    /// The link's id (base64url of 32 bytes).
    pub id: String,
    /// Where its manifest is asked for.
    pub manifest_url: String,
}

/// One link of a [`LinkList`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkEntry {
    /// Openings logged so far.
    pub accesses: i64,
    /// When it was made, in seconds since the epoch.
    pub created_at: i64,
    /// When it stops working (`null`: never).
    pub expires_at: Option<i64>,
    /// Its flags.
    pub flags: String,
    /// Its id.
    pub id: String,
    /// Requests refused while it was in force.
    pub refused: i64,
    /// `active`, `revoked`, `expired`, `locked` or `used`.
    pub state: String,
}

/// `GET /shl/v1/links`: the caller's links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkList {
    /// The links.
    pub links: Vec<LinkEntry>,
}

/// `PUT /shl/v1/links/{id}/file`: replace a link's file (a long-lived link's record
/// changed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplaceFileRequest {
    /// The new JWE.
    pub file: String,
}

/// One logged access of an [`AccessPage`]: an opening (an endpoint from before
/// refusals were only counted may list those too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    /// When, in seconds since the epoch.
    pub at: i64,
    /// `ok`, `wrong-passcode`, `locked`, `expired`, `revoked` or `inactive`.
    pub outcome: String,
    /// Who the opener said they were (not authenticated: "claimed by").
    pub recipient: String,
    /// Its number in the link's log, from 1.
    pub seq: i64,
    /// `manifest`, `direct` or `file`.
    pub via: String,
}

/// `GET /shl/v1/links/{id}/accesses?after=N`: a page of a link's access log (at most
/// 1,000 accesses) and where the link stands. The core reads only `accesses`,
/// `refused`, `last_refused_at` and `state`; all but `accesses` may be absent from
/// older endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessPage {
    /// Accesses after `N`, in order.
    pub accesses: Vec<AccessEntry>,
    /// When the link stops working (`null`: never).
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// When the last refusal was (`null`: none).
    #[serde(default)]
    pub last_refused_at: Option<i64>,
    /// Requests refused while the link was in force (absent from endpoints that
    /// logged refusals row by row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<i64>,
    /// Wrong passcodes left before the link locks.
    #[serde(default)]
    pub remaining_attempts: i64,
    /// The link's state at the endpoint (see [`LinkEntry::state`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// `POST /shl/m/{id}`: the SHL manifest request, from anyone holding the link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRequest {
    /// The largest file the client takes embedded in the manifest; a larger one comes
    /// as a `location`.
    #[serde(
        default,
        rename = "embeddedLengthMax",
        skip_serializing_if = "Option::is_none"
    )]
    pub embedded_length_max: Option<u64>,
    /// The passcode, for a `P` link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passcode: Option<String>,
    /// Who is asking (required by the endpoint: 1 to 200 characters, one plain line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
}

/// One file of a [`Manifest`]: embedded, or at a location to fetch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// The file's content type (`application/fhir+json`).
    #[serde(
        default,
        rename = "contentType",
        skip_serializing_if = "Option::is_none"
    )]
    pub content_type: Option<String>,
    /// The JWE itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedded: Option<String>,
    /// Where to fetch the JWE (valid at most an hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// The answer to a [`ManifestRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The link's files.
    pub files: Vec<ManifestFile>,
}

/// The 401 to a [`ManifestRequest`] with a wrong or missing passcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrongPasscode {
    /// Wrong passcodes left before the link locks.
    #[serde(rename = "remainingAttempts")]
    pub remaining_attempts: i64,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::pins;

    #[test]
    fn owner_bodies_are_as_the_protocol_writes_them() {
        let mut create = CreateRequest {
            expires_at: Some(1_700_000_000),
            file: "J".into(),
            flags: "LP".into(),
            once: false,
            passcode: Some("1234".into()),
        };
        pins(
            &create,
            json!({
                "expires_at": 1_700_000_000, "file": "J", "flags": "LP", "once": false,
                "passcode": "1234",
            }),
        );
        create.passcode = None;
        create.flags = "L".into();
        pins(
            &create,
            json!({ "expires_at": 1_700_000_000, "file": "J", "flags": "L", "once": false }),
        );
        pins(
            &CreateAnswer {
                id: "I".into(),
                manifest_url: "https://h/shl/m/I".into(),
            },
            json!({ "id": "I", "manifest_url": "https://h/shl/m/I" }),
        );
        pins(
            &LinkList {
                links: vec![LinkEntry {
                    accesses: 2,
                    created_at: 10,
                    expires_at: None,
                    flags: "".into(),
                    id: "I".into(),
                    refused: 1,
                    state: "active".into(),
                }],
            },
            json!({ "links": [{
                "accesses": 2, "created_at": 10, "expires_at": null, "flags": "", "id": "I",
                "refused": 1, "state": "active",
            }] }),
        );
        pins(
            &ReplaceFileRequest { file: "J".into() },
            json!({ "file": "J" }),
        );
    }

    #[test]
    fn a_create_request_takes_the_defaults_the_endpoint_gives() {
        let c: CreateRequest = serde_json::from_value(json!({ "file": "J" })).unwrap();
        assert_eq!(
            c,
            CreateRequest {
                expires_at: None,
                file: "J".into(),
                flags: String::new(),
                once: false,
                passcode: None,
            }
        );
        assert!(serde_json::from_value::<CreateRequest>(json!({ "flags": "L" })).is_err());
    }

    #[test]
    fn the_access_log_is_as_the_protocol_writes_it() {
        pins(
            &AccessPage {
                accesses: vec![AccessEntry {
                    at: 20,
                    outcome: "ok".into(),
                    recipient: "Dr A".into(),
                    seq: 1,
                    via: "manifest".into(),
                }],
                expires_at: Some(30),
                last_refused_at: None,
                refused: Some(0),
                remaining_attempts: 5,
                state: Some("active".into()),
            },
            json!({
                "accesses": [{
                    "at": 20, "outcome": "ok", "recipient": "Dr A", "seq": 1, "via": "manifest",
                }],
                "expires_at": 30, "last_refused_at": null, "refused": 0,
                "remaining_attempts": 5, "state": "active",
            }),
        );
    }

    #[test]
    fn the_access_log_of_an_older_endpoint_is_read() {
        let page: AccessPage = serde_json::from_value(json!({ "accesses": [] })).unwrap();
        assert_eq!(
            page,
            AccessPage {
                accesses: Vec::new(),
                expires_at: None,
                last_refused_at: None,
                refused: None,
                remaining_attempts: 0,
                state: None,
            }
        );
    }

    #[test]
    fn manifest_bodies_are_as_the_protocol_writes_them() {
        pins(
            &ManifestRequest {
                embedded_length_max: Some(16),
                passcode: Some("1234".into()),
                recipient: Some("Dr A".into()),
            },
            json!({ "embeddedLengthMax": 16, "passcode": "1234", "recipient": "Dr A" }),
        );
        pins(
            &ManifestRequest {
                embedded_length_max: None,
                passcode: None,
                recipient: None,
            },
            json!({}),
        );
        pins(
            &Manifest {
                files: vec![ManifestFile {
                    content_type: Some("application/fhir+json".into()),
                    embedded: Some("J".into()),
                    location: None,
                }],
            },
            json!({ "files": [{ "contentType": "application/fhir+json", "embedded": "J" }] }),
        );
        pins(
            &Manifest {
                files: vec![ManifestFile {
                    content_type: Some("application/fhir+json".into()),
                    embedded: None,
                    location: Some("https://h/shl/f/T".into()),
                }],
            },
            json!({ "files": [{
                "contentType": "application/fhir+json", "location": "https://h/shl/f/T",
            }] }),
        );
        pins(
            &WrongPasscode {
                remaining_attempts: 4,
            },
            json!({ "remainingAttempts": 4 }),
        );
    }

    #[test]
    fn a_manifest_file_without_a_content_type_is_read() {
        let m: Manifest =
            serde_json::from_value(json!({ "files": [{ "location": "https://h/f" }] })).unwrap();
        assert_eq!(m.files[0].content_type, None);
        assert_eq!(m.files[0].location.as_deref(), Some("https://h/f"));
    }
}
