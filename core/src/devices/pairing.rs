//! Pairing two devices over the relay, for moving a profile to a new phone.
//!
//! The device that holds the profile makes a key pair for this pairing alone and
//! shows a pairing code (as a QR): the endpoint and its public keys. The new device
//! scans it, makes its own pair, and sends its keys in a sealed `hello`. Both screens
//! then show a six-digit short authentication string computed from both devices'
//! keys; the person types the new device's number into the old one, so a relay that
//! swapped the new device's keys is caught before anything is sent. Messages are
//! sealed with HPKE in auth mode (RFC 9180), so each side also knows who sealed what
//! it opens.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::identity::{Identity, PublicIdentity, PublicKeys};
use crate::error::{EnvelopeProblem, Error, Result};
use crate::net::http::Http;
use crate::net::relay::Relay;

/// How a pairing code starts.
pub const CODE_PREFIX: &str = "carry:pair:";
const MAGIC: &[u8; 3] = b"CP1";
const INFO: &[u8] = b"carry-pair-v1";
const SAS_CONTEXT: &[u8] = b"carry-pair-sas-v1";
/// The relay tag every pairing message is posted under.
const TAG: &str = "pair";
/// How often a waiting side looks at its mailbox.
const POLL: Duration = Duration::from_millis(500);

/// What a pairing is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The profile moves to a new phone; the old one offers to wipe itself.
    Move,
    /// Another device joins the profile; both keep it, in step.
    AddDevice,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Move => "move",
            Purpose::AddDevice => "device",
        }
    }
}

/// A device joining the profile: its own keys for the channel between devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DeviceCard {
    /// Its id (the handle of its signing key).
    pub id: String,
    /// The name the person gave it.
    pub name: String,
    pub keys: PublicKeys,
    /// The binding signature over its X25519 key, base64url.
    pub binding: String,
}

/// What the pairing code holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Offer {
    v: u32,
    /// `move` or `device`.
    purpose: String,
    endpoint: String,
    keys: PublicKeys,
    /// The binding signature over the X25519 key, base64url.
    binding: String,
}

/// A pairing message's plaintext.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(crate) enum Message {
    /// The new device's keys for the pairing, and when it joins, its device keys.
    Hello {
        keys: PublicKeys,
        binding: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<DeviceCard>,
    },
    /// Where the profile waits, sealed for the new device: a one-time code that finds
    /// and opens it at the endpoint.
    Transfer { code: String },
    /// The profile arrived and opened.
    Done,
    /// The person stopped the move on the old device.
    Cancel,
}

/// One device's side of a pairing: a key pair made for it alone, signed in.
pub(crate) struct Side {
    pub me: Identity,
    pub relay: Relay,
    after: i64,
}

impl Side {
    /// A fresh key pair, signed in at `endpoint`'s relay.
    pub async fn new(endpoint: &str) -> Result<Side> {
        let me = Identity::generate()?;
        let relay = Relay::connect(Http::new(None, None)?, endpoint, &me).await?;
        Ok(Side {
            me,
            relay,
            after: 0,
        })
    }

    /// Seal `msg` to `to` and post it to its mailbox.
    pub async fn send(&self, to: &PublicIdentity, msg: &Message) -> Result<()> {
        let plain = Zeroizing::new(serde_json::to_vec(msg)?);
        let body = super::seal::seal(MAGIC, INFO, &self.me, to, &plain)?;
        self.relay.post(&to.mailbox(), TAG, &body).await?;
        Ok(())
    }

    /// Wait until `deadline` for the first message that opens, from `from` when
    /// given (else from anyone; the caller checks who by the keys inside). Anything
    /// else in the mailbox is dropped.
    pub async fn receive(
        &mut self,
        from: Option<&PublicIdentity>,
        deadline: Instant,
    ) -> Result<([u8; 32], Message)> {
        loop {
            let (envelopes, _) = self.relay.fetch(self.after, 50).await?;
            let mut found = None;
            let mut seen = Vec::new();
            for e in envelopes {
                self.after = self.after.max(e.id);
                seen.push(e.id);
                if found.is_some() {
                    continue;
                }
                match B64
                    .decode(e.body.as_bytes())
                    .map_err(|_| Error::Envelope {
                        problem: EnvelopeProblem::Malformed,
                    })
                    .and_then(|b| self.open(&b))
                {
                    Ok((sender, msg)) if from.is_none_or(|f| f.enc == sender) => {
                        found = Some((sender, msg));
                    }
                    Ok(_) => tracing::debug!("a pairing message from another sender; dropped"),
                    Err(e) => tracing::debug!(error = %e, "a pairing message refused"),
                }
            }
            if !seen.is_empty() {
                self.relay.ack(&seen).await?;
            }
            if let Some(f) = found {
                return Ok(f);
            }
            if Instant::now() >= deadline {
                return Err(Error::Expired {
                    what: "the pairing: the other device did not answer in time".into(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn open(&self, body: &[u8]) -> Result<([u8; 32], Message)> {
        let (sender, plain) = super::seal::open(MAGIC, INFO, &self.me, body)?;
        let msg = serde_json::from_slice(&plain).map_err(|_| Error::Envelope {
            problem: EnvelopeProblem::Malformed,
        })?;
        Ok((sender, msg))
    }

    /// This side's keys and binding, for a code or a hello.
    pub fn keys(&self) -> (PublicKeys, String) {
        (self.me.public().to_keys(), B64.encode(self.me.binding()))
    }
}

/// Check a key binding and give the identity it belongs to.
pub(crate) fn peer(keys: &PublicKeys, binding: &str) -> Result<PublicIdentity> {
    let id = PublicIdentity::from_keys(keys)?;
    let b = B64
        .decode(binding.as_bytes())
        .map_err(|_| Error::invalid("the pairing keys' binding is not base64url"))?;
    id.verify_binding(&b)?;
    Ok(id)
}

/// The pairing code for `side` at `endpoint`.
pub(crate) fn code(side: &Side, endpoint: &str, purpose: Purpose) -> Result<String> {
    let (keys, binding) = side.keys();
    let offer = Offer {
        v: 1,
        purpose: purpose.as_str().into(),
        endpoint: endpoint.to_string(),
        keys,
        binding,
    };
    let json = serde_json::to_vec(&offer)?;
    Ok(format!("{CODE_PREFIX}{}", B64.encode(json)))
}

/// Read a pairing code: the endpoint, the old device's checked keys, and what the
/// pairing is for.
pub(crate) fn parse_code(code: &str) -> Result<(String, PublicIdentity, Purpose)> {
    let bad = || Error::invalid("that is not a Carry pairing code (it starts carry:pair:)");
    let body = code.trim().strip_prefix(CODE_PREFIX).ok_or_else(bad)?;
    let json = B64.decode(body.as_bytes()).map_err(|_| bad())?;
    let offer: Offer = serde_json::from_slice(&json).map_err(|_| bad())?;
    let purpose = match (offer.v, offer.purpose.as_str()) {
        (1, "move") => Purpose::Move,
        (1, "device") => Purpose::AddDevice,
        _ => {
            return Err(Error::invalid(
                "this pairing code is from a newer version of Carry; update the app",
            ))
        }
    };
    crate::net::relay::base_of(&offer.endpoint)?;
    Ok((offer.endpoint, peer(&offer.keys, &offer.binding)?, purpose))
}

/// The six digits both screens show, from the old device's keys `a` and the new
/// device's `b`, written `123 456`.
pub fn short_authentication_string(a: &PublicIdentity, b: &PublicIdentity) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(SAS_CONTEXT);
    for k in [&a.sign[..], &a.enc[..], &b.sign[..], &b.enc[..]] {
        ctx.update(k);
    }
    let d = ctx.finish();
    let mut n = [0u8; 8];
    n.copy_from_slice(&d.as_ref()[..8]);
    let v = u64::from_be_bytes(n) % 1_000_000;
    format!("{:03} {:03}", v / 1000, v % 1000)
}

/// Whether what the person typed is the string shown (spaces and dashes ignored),
/// compared in constant time.
pub fn same_sas(shown: &str, typed: &str) -> bool {
    let digits = |s: &str| -> String { s.chars().filter(char::is_ascii_digit).collect() };
    let (a, b) = (digits(shown), digits(typed));
    let extra = typed
        .chars()
        .any(|c| !(c.is_ascii_digit() || c.is_whitespace() || c == '-'));
    crate::keys::same_secret(a.as_bytes(), b.as_bytes()) && !extra
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_compute_the_same_string_and_any_other_key_changes_it() {
        let a = Identity::generate().unwrap().public();
        let b = Identity::generate().unwrap().public();
        let m = Identity::generate().unwrap().public();
        let s = short_authentication_string(&a, &b);
        assert_eq!(s.len(), 7);
        assert_eq!(s, short_authentication_string(&a, &b));
        assert_ne!(s, short_authentication_string(&a, &m));
        assert_ne!(s, short_authentication_string(&b, &a));
        assert!(same_sas(&s, &s.replace(' ', "")));
        assert!(same_sas(&s, &s.replace(' ', "-")));
        assert!(!same_sas(&s, "000 00"));
        assert!(!same_sas(&s, &format!("{s}x")));
    }

    #[test]
    fn codes_round_trip_and_bad_ones_are_refused() {
        let me = Identity::generate().unwrap();
        let offer = Offer {
            v: 1,
            purpose: "move".into(),
            endpoint: "https://carry.example".into(),
            keys: me.public().to_keys(),
            binding: B64.encode(me.binding()),
        };
        let code = format!(
            "{CODE_PREFIX}{}",
            B64.encode(serde_json::to_vec(&offer).unwrap())
        );
        let (ep, who, purpose) = parse_code(&code).unwrap();
        assert_eq!(
            (ep.as_str(), purpose),
            ("https://carry.example", Purpose::Move)
        );
        assert_eq!(who, me.public());
        let other = Identity::generate().unwrap();
        let forged = Offer {
            binding: B64.encode(other.binding()),
            ..offer.clone()
        };
        let forged = format!(
            "{CODE_PREFIX}{}",
            B64.encode(serde_json::to_vec(&forged).unwrap())
        );
        for bad in ["carry:invite:abc", "carry:pair:!!", "", forged.as_str()] {
            assert!(parse_code(bad).is_err(), "{bad}");
        }
        let plain_http = Offer {
            endpoint: "http://carry.example".into(),
            ..offer
        };
        let c = format!(
            "{CODE_PREFIX}{}",
            B64.encode(serde_json::to_vec(&plain_http).unwrap())
        );
        assert!(parse_code(&c).is_err());
    }
}
