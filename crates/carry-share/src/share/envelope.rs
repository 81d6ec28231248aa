//! Sealed envelopes: what one profile sends another through the relay.
//!
//! Wire form (bytes; base64url in the relay's JSON):
//! `"CE1"` ‖ sender's X25519 key (32) ‖ HPKE encapsulated key (32) ‖ ciphertext.
//!
//! Sealing is HPKE (RFC 9180) in auth mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! AES-256-GCM, with info `carry-envelope-v1`. The additional data binds the header,
//! the recipient's mailbox and the relay tag, so an envelope moved to another
//! mailbox or tag does not open. Auth mode proves the sender holds the private key
//! of the X25519 key in the header; who that key belongs to was settled when the two
//! people exchanged keys.
//!
//! The plaintext is a JSON [`Message`]: a kind, the grant it belongs to, a sequence
//! number per grant and direction (replays and gaps are detected), and the body.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::hpke::{self, Aead, PublicKey, SenderOptions};
use crate::crypto::identity::{Identity, PUBLIC_KEY_LEN};
use crate::error::{EnvelopeProblem, Error, Result};

const MAGIC: &[u8; 3] = b"CE1";
const INFO: &[u8] = b"carry-envelope-v1";
const HEADER_LEN: usize = MAGIC.len() + PUBLIC_KEY_LEN;
/// The most plaintext one envelope carries; larger deliveries are split.
pub const PLAINTEXT_MAX: usize = 600 * 1024;

/// One record item in a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shared {
    /// The sender's key for the item (stable while the grant lasts).
    pub k: String,
    /// The source's name (`gp`, `self`, a file name).
    pub src: String,
    /// The source's kind: `provider`, `file` or `self`.
    pub sk: String,
    /// Who entered it: `provider`, `self` or `carer`.
    pub by: String,
    /// The resource, exactly as held.
    pub json: String,
    /// Its `fullUrl` at the source, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The other sources that hold the same fact: one copy goes, and these are named
    /// with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
    /// Set when the item is larger than one envelope: `json` is then this part of the
    /// resource's text, and the item is applied once every part has arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<Part>,
}

/// Which part of an item split across envelopes a [`Shared`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// Its index, from 0.
    pub i: u32,
    /// How many parts the item has.
    pub n: u32,
}

/// The most parts one item may be split into: [`PART_MAX`] bytes each, so an item of
/// up to 40 MB of text (a 20 MB document, base64 inside its resource, with room).
pub const PARTS_MAX: u32 = 80;
/// The most bytes of resource text one part carries (as written in the message, with
/// its escapes), leaving room in the envelope for the rest of the message.
pub const PART_MAX: usize = PLAINTEXT_MAX - 16 * 1024;

/// What an envelope carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Body {
    /// An invite taken up: the invitee's keys, proved by the invite's secret.
    Accept {
        /// The invite's one-time secret, base64url.
        secret: String,
        /// The invitee's name.
        name: String,
        /// The invitee's keys.
        keys: crate::crypto::identity::PublicKeys,
        /// The invitee's binding signature over their X25519 key, base64url.
        binding: String,
    },
    /// A grant, new or changed: the signed document.
    Grant {
        /// The grant document, as signed.
        doc: String,
    },
    /// Record items: a full set when `reset`, else changes.
    Records {
        /// Replace everything held so far with what follows.
        reset: bool,
        /// Items added or changed.
        upserts: Vec<Shared>,
        /// Keys of items no longer in scope.
        removes: Vec<String>,
    },
    /// The grant was revoked: delete the copy.
    Revoke,
    /// A carer's entries for the person's record.
    Contribution {
        /// FHIR resources, as JSON text.
        resources: Vec<String>,
    },
    /// The grantee lost track (a gap): send the whole scoped record again.
    Resync,
    /// A carer's entries were refused: why, for the carer's app (`seq` 0, outside the
    /// grant's sequence).
    Refused {
        /// Why, in words: never the entries themselves.
        reason: String,
    },
    /// The sender's identity was replaced (they removed one of their devices): their
    /// new keys, vouched for by the old signing key the recipient knows them by. Sealed
    /// from the old keys.
    Keys {
        /// The new public keys.
        keys: crate::crypto::identity::PublicKeys,
        /// The old identity's signature over the new keys, base64url.
        vouch: String,
    },
}

impl Body {
    /// The kind, for logs and the audit.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Accept { .. } => "accept",
            Body::Grant { .. } => "grant",
            Body::Records { .. } => "records",
            Body::Revoke => "revoke",
            Body::Contribution { .. } => "contribution",
            Body::Resync => "resync",
            Body::Keys { .. } => "keys",
            Body::Refused { .. } => "refused",
        }
    }
}

/// The plaintext of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The format version, 1.
    pub v: u32,
    /// The grant it belongs to (empty for an invite acceptance).
    pub grant: String,
    /// Its sequence number on that grant, from the sender, counting from 1.
    pub seq: i64,
    /// When it was sealed (Unix seconds).
    pub at: i64,
    /// What it carries.
    #[serde(flatten)]
    pub body: Body,
}

/// `text` cut into consecutive pieces that each take at most `max` bytes once written
/// as a JSON string (quotes and backslashes take two, other control characters six),
/// cut only between characters.
pub fn split(text: &str, max: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut cost = 0;
    for (at, c) in text.char_indices() {
        let n = match c {
            '"' | '\\' | '\n' | '\r' | '\t' => 2,
            c if c.is_control() && (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        };
        if cost + n > max && at > start {
            parts.push(&text[start..at]);
            start = at;
            cost = 0;
        }
        cost += n;
    }
    if start < text.len() || parts.is_empty() {
        parts.push(&text[start..]);
    }
    parts
}

fn aad(sender_enc: &[u8], mailbox: &str, tag: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(HEADER_LEN + mailbox.len() + tag.len() + 2);
    a.extend_from_slice(MAGIC);
    a.extend_from_slice(sender_enc);
    a.extend_from_slice(mailbox.as_bytes());
    a.push(0);
    a.extend_from_slice(tag.as_bytes());
    a
}

/// Seal `message` from `sender` to the X25519 key `to`, for `mailbox` and `tag`.
pub fn seal(
    sender: &Identity,
    to: &[u8; PUBLIC_KEY_LEN],
    mailbox: &str,
    tag: &str,
    message: &Message,
) -> Result<Vec<u8>> {
    let plain = Zeroizing::new(serde_json::to_vec(message)?);
    let sender_enc = sender.public().enc;
    let sealed = hpke::seal(
        Aead::Aes256Gcm,
        &PublicKey(*to),
        INFO,
        &aad(&sender_enc, mailbox, tag),
        &plain,
        SenderOptions {
            sender: Some(sender.enc_secret()),
            psk: None,
        },
    )?;
    let mut out = Vec::with_capacity(HEADER_LEN + sealed.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&sender_enc);
    out.extend(sealed);
    Ok(out)
}

/// The sender's X25519 key named in an envelope's header, before opening it.
pub fn sender_of(envelope: &[u8]) -> Result<[u8; PUBLIC_KEY_LEN]> {
    if envelope.len() < HEADER_LEN + PUBLIC_KEY_LEN || &envelope[..MAGIC.len()] != MAGIC {
        return Err(Error::Envelope {
            problem: EnvelopeProblem::Malformed,
        });
    }
    let mut k = [0u8; PUBLIC_KEY_LEN];
    k.copy_from_slice(&envelope[MAGIC.len()..HEADER_LEN]);
    Ok(k)
}

/// Open an envelope addressed to `me` at `mailbox` under `tag`. It must have been
/// sealed by the holder of the header's X25519 key, which is returned with the
/// message.
pub fn open(
    me: &Identity,
    mailbox: &str,
    tag: &str,
    envelope: &[u8],
) -> Result<([u8; PUBLIC_KEY_LEN], Message)> {
    let sender = sender_of(envelope)?;
    let plain = hpke::open(
        Aead::Aes256Gcm,
        me.enc_secret(),
        INFO,
        &aad(&sender, mailbox, tag),
        &envelope[HEADER_LEN..],
        Some(&PublicKey(sender)),
        None,
    )
    .map_err(|_| Error::Envelope {
        problem: EnvelopeProblem::Tampered,
    })?;
    let message: Message = serde_json::from_slice(&plain).map_err(|_| Error::Envelope {
        problem: EnvelopeProblem::Malformed,
    })?;
    if message.v != 1 || message.seq < 0 {
        return Err(Error::Envelope {
            problem: EnvelopeProblem::Malformed,
        });
    }
    Ok((sender, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> Message {
        Message {
            v: 1,
            grant: "g-AAAAAAAAAAAAAAAAAAAAAA".into(),
            seq: 3,
            at: 1,
            body: Body::Records {
                reset: false,
                upserts: vec![],
                removes: vec!["r1".into()],
            },
        }
    }

    #[test]
    fn seal_open_and_every_tamper_is_refused() {
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap();
        let sealed = seal(&a, &b.public().enc, "mbox", "tag", &msg()).unwrap();
        let (from, m) = open(&b, "mbox", "tag", &sealed).unwrap();
        assert_eq!(from, a.public().enc);
        assert_eq!(m, msg());
        let tampered = |e: Result<([u8; 32], Message)>| {
            matches!(
                e,
                Err(Error::Envelope {
                    problem: EnvelopeProblem::Tampered | EnvelopeProblem::Malformed
                })
            )
        };
        for i in [0, 5, 40, 70, sealed.len() - 1] {
            let mut t = sealed.clone();
            t[i] ^= 1;
            assert!(tampered(open(&b, "mbox", "tag", &t)), "byte {i}");
        }
        assert!(tampered(open(&b, "other", "tag", &sealed)));
        assert!(tampered(open(&b, "mbox", "tag2", &sealed)));
        assert!(tampered(open(&a, "mbox", "tag", &sealed)));
        assert!(tampered(open(&b, "mbox", "tag", &sealed[..20])));
        // A third party cannot pass off an envelope as from `a`: swapping the header
        // key for a's while sealing with c's key does not open.
        let c = Identity::generate().unwrap();
        let mut forged = seal(&c, &b.public().enc, "mbox", "tag", &msg()).unwrap();
        forged[3..35].copy_from_slice(&a.public().enc);
        assert!(tampered(open(&b, "mbox", "tag", &forged)));
    }

    #[test]
    fn split_pieces_fit_as_written_and_join_back() {
        let text = format!("{}\"é\n{}", "a".repeat(25), "€".repeat(20));
        for max in [1, 2, 3, 7, 10, 64, 1000] {
            let parts = split(&text, max);
            assert_eq!(parts.concat(), text, "max {max}");
            for p in &parts {
                let written = serde_json::to_string(p).unwrap().len() - 2;
                assert!(written <= max.max(6), "{p:?} takes {written} > {max}");
            }
        }
        assert_eq!(split("", 10), [""]);
    }
}
