//! The relay's JSON bodies, under `/relay/v1` (`docs/formats.md`, "Relay protocol").
//! Keys, challenges, signatures and envelope bodies travel as base64url without
//! padding; the types hold that text as it is on the wire.
//!
//! The endpoint parses each request type and writes each answer type; the core and
//! the soak tool do the opposite. An answer's fields the core did not need from older
//! endpoints are `#[serde(default)]`, so it reads their answers as before.

use serde::{Deserialize, Serialize};

/// Every refusal's body (`{"error"}`), at the relay and at the share-link and backup
/// hosts alike; the backup host's 409s add a field (see
/// [`crate::backup::Refusal`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for a person to read.
    pub error: String,
}

/// `POST /relay/v1/challenge`: ask for a sign-in challenge for a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeRequest {
    /// The Ed25519 public key signing in.
    pub key: String,
}

/// The answer to a [`ChallengeRequest`]: a single-use challenge to sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeAnswer {
    /// The challenge (32 random bytes).
    pub challenge: String,
    /// How long it is valid, in seconds (clients need not read it).
    #[serde(default)]
    pub expires_in: i64,
}

/// `POST /relay/v1/session`: trade a signed challenge for a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRequest {
    /// The challenge, as it was given.
    pub challenge: String,
    /// The Ed25519 public key signing in.
    pub key: String,
    /// The key's signature over [`super::auth_message`].
    pub signature: String,
}

/// The answer to a [`SessionRequest`]: a bearer token for the other routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionAnswer {
    /// How long the session is valid, in seconds (clients need not read it).
    #[serde(default)]
    pub expires_in: i64,
    /// The key's mailbox id, as the relay computed it ([`super::mailbox_id`]).
    pub mailbox: String,
    /// The session's bearer token.
    pub token: String,
}

/// The 403 to a challenge or session for a retired key: who replaced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredAnswer {
    /// What went wrong (clients need not read it).
    #[serde(default)]
    pub error: String,
    /// The mailbox id of the key that replaced it.
    pub successor: String,
}

/// `PUT /relay/v1/directory`: publish the caller's encryption key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishRequest {
    /// The session key's signature over [`super::binding_message`] of `enc`.
    pub binding: String,
    /// The X25519 public key envelopes are sealed to.
    pub enc: String,
}

/// `GET /relay/v1/directory/{mailbox}`: a mailbox's published keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryAnswer {
    /// The binding signature, as published.
    pub binding: String,
    /// The X25519 public key.
    pub enc: String,
    /// The mailbox id.
    pub mailbox: String,
    /// The Ed25519 public key that owns the mailbox.
    pub sign: String,
}

/// `POST /relay/v1/mailboxes/{mailbox}`: leave an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverRequest {
    /// The sealed envelope.
    pub body: String,
    /// The sender's tag (1 to 64 of `A-Z a-z 0-9 _ -`).
    pub tag: String,
}

/// The 201 to a [`DeliverRequest`]: the envelope's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverAnswer {
    /// The envelope's id in the recipient's mailbox.
    pub id: i64,
}

/// One envelope of a [`MailboxPage`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The sealed envelope.
    pub body: String,
    /// Its id: increasing in the order envelopes were posted to the mailbox.
    pub id: i64,
    /// The mailbox of the key that posted it, as the relay saw it signed in (absent
    /// from relays that do not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// The sender's tag.
    pub tag: String,
}

/// `GET /relay/v1/mailbox?after=N&limit=M`: a page of the caller's envelopes, oldest
/// first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxPage {
    /// The envelopes, in id order.
    pub envelopes: Vec<Envelope>,
    /// Whether more follow the last one.
    pub more: bool,
}

/// `POST /relay/v1/mailbox/ack`: delete envelopes from the caller's own mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckRequest {
    /// The envelopes' ids (at most 1,000).
    pub ids: Vec<i64>,
}

/// The answer to an ack, and to `DELETE /relay/v1/tags/{tag}`: how many envelopes
/// went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedAnswer {
    /// Envelopes deleted.
    pub deleted: u64,
}

/// `POST /relay/v1/retire`: replace the signed-in key with its successor, for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetireRequest {
    /// The session key's signature over [`super::retire_message`].
    pub signature: String,
    /// The successor's Ed25519 public key.
    pub successor: String,
}

/// The answer to a [`RetireRequest`] that stands (the first, or a retry of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetireAnswer {
    /// Always `true`.
    pub retired: bool,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::pins;

    #[test]
    fn sign_in_bodies_are_as_the_protocol_writes_them() {
        pins(&ChallengeRequest { key: "K".into() }, json!({ "key": "K" }));
        pins(
            &ChallengeAnswer {
                challenge: "C".into(),
                expires_in: 120,
            },
            json!({ "challenge": "C", "expires_in": 120 }),
        );
        pins(
            &SessionRequest {
                challenge: "C".into(),
                key: "K".into(),
                signature: "S".into(),
            },
            json!({ "challenge": "C", "key": "K", "signature": "S" }),
        );
        pins(
            &SessionAnswer {
                expires_in: 3600,
                mailbox: "M".into(),
                token: "T".into(),
            },
            json!({ "expires_in": 3600, "mailbox": "M", "token": "T" }),
        );
        pins(
            &RetiredAnswer {
                error: "replaced".into(),
                successor: "M2".into(),
            },
            json!({ "error": "replaced", "successor": "M2" }),
        );
        pins(&ErrorBody { error: "no".into() }, json!({ "error": "no" }));
    }

    #[test]
    fn clients_read_what_they_need_of_sign_in_answers() {
        let c: ChallengeAnswer = serde_json::from_value(json!({ "challenge": "C" })).unwrap();
        assert_eq!(c.challenge, "C");
        let s: SessionAnswer =
            serde_json::from_value(json!({ "mailbox": "M", "token": "T" })).unwrap();
        assert_eq!((s.mailbox.as_str(), s.token.as_str()), ("M", "T"));
        let r: RetiredAnswer = serde_json::from_value(json!({ "successor": "M2" })).unwrap();
        assert_eq!(r.successor, "M2");
        // What the endpoint requires stays required.
        assert!(serde_json::from_value::<SessionRequest>(json!({ "key": "K" })).is_err());
        assert!(serde_json::from_value::<ChallengeRequest>(json!({})).is_err());
    }

    #[test]
    fn directory_and_retirement_bodies_are_as_the_protocol_writes_them() {
        pins(
            &PublishRequest {
                binding: "B".into(),
                enc: "E".into(),
            },
            json!({ "binding": "B", "enc": "E" }),
        );
        pins(
            &DirectoryAnswer {
                binding: "B".into(),
                enc: "E".into(),
                mailbox: "M".into(),
                sign: "S".into(),
            },
            json!({ "binding": "B", "enc": "E", "mailbox": "M", "sign": "S" }),
        );
        pins(
            &RetireRequest {
                signature: "S".into(),
                successor: "K2".into(),
            },
            json!({ "signature": "S", "successor": "K2" }),
        );
        pins(&RetireAnswer { retired: true }, json!({ "retired": true }));
    }

    #[test]
    fn mailbox_bodies_are_as_the_protocol_writes_them() {
        pins(
            &DeliverRequest {
                body: "AAEC".into(),
                tag: "share-1".into(),
            },
            json!({ "body": "AAEC", "tag": "share-1" }),
        );
        pins(&DeliverAnswer { id: 7 }, json!({ "id": 7 }));
        pins(&AckRequest { ids: vec![1, 2] }, json!({ "ids": [1, 2] }));
        pins(&DeletedAnswer { deleted: 2 }, json!({ "deleted": 2 }));
        pins(
            &MailboxPage {
                envelopes: vec![Envelope {
                    body: "AAEC".into(),
                    id: 7,
                    sender: Some("M".into()),
                    tag: "share-1".into(),
                }],
                more: true,
            },
            json!({
                "envelopes": [{ "body": "AAEC", "id": 7, "sender": "M", "tag": "share-1" }],
                "more": true,
            }),
        );
    }

    #[test]
    fn envelopes_from_relays_that_do_not_name_the_sender_are_read() {
        pins(
            &MailboxPage {
                envelopes: vec![Envelope {
                    body: "AAEC".into(),
                    id: 7,
                    sender: None,
                    tag: "t".into(),
                }],
                more: false,
            },
            json!({ "envelopes": [{ "body": "AAEC", "id": 7, "tag": "t" }], "more": false }),
        );
    }
}
