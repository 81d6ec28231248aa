//! A profile's identity: an Ed25519 key pair (ring) that signs grant documents and
//! relay logins, and an X25519 key pair (x25519-dalek) that envelopes are sealed to.
//!
//! People compare a *safety number* to be sure they hold each other's real keys: 30
//! digits in six groups, computed from both identities in a fixed order, so both
//! screens show the same number. It is slow to compute on purpose (1,024 rounds of
//! SHA-256 per side), which makes it costly to grind a look-alike key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use ring::digest::{digest, Context, SHA256};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::hpke;
use crate::error::{Error, Result};

/// Length of an Ed25519 public key and of an X25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

const SAFETY_CONTEXT: &[u8] = b"carry-safety-number-v1";
/// What a key change signs, before the new signing and encryption keys.
const ROTATION_CONTEXT: &[u8] = b"carry-keys-replaced-v1\n";
const SAFETY_ROUNDS: usize = 1024;

/// Someone's public keys: what an invite carries and the key directory serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicIdentity {
    /// The Ed25519 signing key.
    pub sign: [u8; PUBLIC_KEY_LEN],
    /// The X25519 key envelopes are sealed to.
    pub enc: [u8; PUBLIC_KEY_LEN],
}

/// The same keys as base64url text, for JSON documents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeys {
    /// The Ed25519 signing key, base64url.
    pub sign: String,
    /// The X25519 key, base64url.
    pub enc: String,
}

impl PublicIdentity {
    /// The relay mailbox id of this identity: base64url of the first 16 bytes of
    /// SHA-256("carry-mailbox-v1" ‖ signing key). Opaque; it names nobody.
    pub fn mailbox(&self) -> String {
        mailbox_id(&self.sign)
    }

    /// The short id commands use for a person: hex of 5 bytes of SHA-256(signing key).
    pub fn handle(&self) -> String {
        hex::encode(&digest(&SHA256, &self.sign).as_ref()[..5])
    }

    /// As base64url text.
    pub fn to_keys(&self) -> PublicKeys {
        PublicKeys {
            sign: B64.encode(self.sign),
            enc: B64.encode(self.enc),
        }
    }

    /// From base64url text. Malformed keys are [`Error::InvalidInput`].
    pub fn from_keys(keys: &PublicKeys) -> Result<Self> {
        Ok(PublicIdentity {
            sign: key32(&keys.sign, "signing key")?,
            enc: key32(&keys.enc, "encryption key")?,
        })
    }

    /// Check `signature` by this identity over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<()> {
        UnparsedPublicKey::new(&ED25519, &self.sign)
            .verify(message, signature)
            .map_err(|_| Error::Denied {
                reason: "the signature does not match the signer's key".into(),
            })
    }

    /// Check the binding signature that ties the X25519 key to the signing key.
    pub fn verify_binding(&self, binding: &[u8]) -> Result<()> {
        self.verify(&binding_message(&self.enc), binding)
    }

    /// Check that `signature` is this identity's word that `successor` replaces it
    /// (see [`Identity::vouch_for`]).
    pub fn verify_successor(&self, successor: &PublicIdentity, signature: &[u8]) -> Result<()> {
        self.verify(&rotation_message(successor), signature)
    }

    /// The safety number of this identity and `other`: 30 digits in six groups of
    /// five. It is the same whichever side computes it.
    pub fn safety_number(&self, other: &PublicIdentity) -> String {
        let (a, b) = if self.sign <= other.sign {
            (self, other)
        } else {
            (other, self)
        };
        let mut digits = stretch(a);
        digits.extend(stretch(b));
        digits
            .chunks(15)
            .map(|c| c.join(" "))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// This identity's own fingerprint: 30 digits in six groups, for showing one's
    /// own keys (in `carry id`).
    pub fn fingerprint(&self) -> String {
        stretch(self)
            .into_iter()
            .chain(stretch_half(self, 1))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Three groups of five digits from an identity, after `SAFETY_ROUNDS` of SHA-256.
fn stretch(id: &PublicIdentity) -> Vec<String> {
    stretch_half(id, 0)
}

fn stretch_half(id: &PublicIdentity, salt: u8) -> Vec<String> {
    let mut h = {
        let mut c = Context::new(&SHA256);
        c.update(SAFETY_CONTEXT);
        c.update(&[salt]);
        c.update(&id.sign);
        c.update(&id.enc);
        c.finish()
    };
    for _ in 0..SAFETY_ROUNDS {
        let mut c = Context::new(&SHA256);
        c.update(h.as_ref());
        c.update(&id.sign);
        h = c.finish();
    }
    h.as_ref()
        .chunks(5)
        .take(3)
        .map(|c| {
            let n = c.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            format!("{:05}", n % 100_000)
        })
        .collect()
}

/// The relay mailbox id of an Ed25519 public key (see [`PublicIdentity::mailbox`]).
pub fn mailbox_id(sign_key: &[u8]) -> String {
    carry_proto::relay::mailbox_id(sign_key)
}

fn rotation_message(successor: &PublicIdentity) -> Vec<u8> {
    [ROTATION_CONTEXT, &successor.sign[..], &successor.enc[..]].concat()
}

fn binding_message(enc: &[u8]) -> Vec<u8> {
    carry_proto::relay::binding_message(enc)
}

/// 32 bytes from base64url text.
pub fn key32(text: &str, what: &str) -> Result<[u8; PUBLIC_KEY_LEN]> {
    B64.decode(text)
        .ok()
        .and_then(|b| <[u8; PUBLIC_KEY_LEN]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| Error::invalid(format!("the {what} is not 32 bytes of base64url")))
}

/// A profile's own key pairs. The secrets are wiped when dropped and never printed.
pub struct Identity {
    sign: Ed25519KeyPair,
    sign_pkcs8: Zeroizing<Vec<u8>>,
    enc: hpke::PrivateKey,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Identity(…)")
    }
}

impl Identity {
    /// Fresh key pairs from the system's CSPRNG.
    pub fn generate() -> Result<Self> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| Error::internal("Ed25519 key generation failed"))?;
        Self::from_parts(pkcs8.as_ref(), hpke::PrivateKey::generate()?.as_bytes())
    }

    /// From the stored PKCS#8 signing key and the X25519 secret.
    pub fn from_parts(sign_pkcs8: &[u8], enc_secret: &[u8]) -> Result<Self> {
        let sign = Ed25519KeyPair::from_pkcs8(sign_pkcs8)
            .map_err(|_| Error::internal("the stored signing key is damaged"))?;
        Ok(Identity {
            sign,
            sign_pkcs8: Zeroizing::new(sign_pkcs8.to_vec()),
            enc: hpke::PrivateKey::from_bytes(enc_secret)?,
        })
    }

    /// The stored form of the signing key (PKCS#8).
    pub fn sign_pkcs8(&self) -> &[u8] {
        &self.sign_pkcs8
    }

    /// The X25519 secret key.
    pub fn enc_secret(&self) -> &hpke::PrivateKey {
        &self.enc
    }

    /// The public half.
    pub fn public(&self) -> PublicIdentity {
        let mut sign = [0u8; PUBLIC_KEY_LEN];
        sign.copy_from_slice(self.sign.public_key().as_ref());
        PublicIdentity {
            sign,
            enc: self.enc.public_key().0,
        }
    }

    /// Sign `message` with the Ed25519 key.
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        let mut out = [0u8; SIGNATURE_LEN];
        out.copy_from_slice(self.sign.sign(message).as_ref());
        out
    }

    /// The signature that ties this identity's X25519 key to its signing key.
    pub fn binding(&self) -> [u8; SIGNATURE_LEN] {
        self.sign(&binding_message(&self.public().enc))
    }

    /// This identity's signature that `successor` replaces it: how the people it
    /// knows learn its new keys when a device is removed.
    pub fn vouch_for(&self, successor: &PublicIdentity) -> [u8; SIGNATURE_LEN] {
        self.sign(&rotation_message(successor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safety_number_is_symmetric_and_distinct() {
        let a = Identity::generate().unwrap().public();
        let b = Identity::generate().unwrap().public();
        let c = Identity::generate().unwrap().public();
        let ab = a.safety_number(&b);
        assert_eq!(ab, b.safety_number(&a));
        assert_ne!(ab, a.safety_number(&c));
        assert_eq!(ab.split(' ').count(), 6);
        assert!(ab.split(' ').all(|g| g.len() == 5));
        assert_eq!(a.fingerprint().split(' ').count(), 6);
    }

    #[test]
    fn a_successor_is_vouched_for_by_the_old_key_only() {
        let (old, new, other) = (
            Identity::generate().unwrap(),
            Identity::generate().unwrap(),
            Identity::generate().unwrap(),
        );
        let sig = old.vouch_for(&new.public());
        old.public().verify_successor(&new.public(), &sig).unwrap();
        assert!(other
            .public()
            .verify_successor(&new.public(), &sig)
            .is_err());
        assert!(old
            .public()
            .verify_successor(&other.public(), &sig)
            .is_err());
        // Not interchangeable with any other signature the key makes.
        assert!(old.public().verify_binding(&sig).is_err());
        let swapped = PublicIdentity {
            sign: new.public().sign,
            enc: other.public().enc,
        };
        assert!(old.public().verify_successor(&swapped, &sig).is_err());
    }

    #[test]
    fn binding_and_signatures_verify_and_fail_when_changed() {
        let id = Identity::generate().unwrap();
        let p = id.public();
        p.verify_binding(&id.binding()).unwrap();
        let mut other = p;
        other.enc[0] ^= 1;
        assert!(other.verify_binding(&id.binding()).is_err());
        let sig = id.sign(b"hello");
        p.verify(b"hello", &sig).unwrap();
        assert!(p.verify(b"hellO", &sig).is_err());
        let back = Identity::from_parts(id.sign_pkcs8(), id.enc_secret().as_bytes()).unwrap();
        assert_eq!(back.public(), p);
        assert_eq!(PublicIdentity::from_keys(&p.to_keys()).unwrap(), p);
        assert_eq!(p.mailbox().len(), 22);
        assert_eq!(p.handle().len(), 10);
    }
}
