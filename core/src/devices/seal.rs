//! Sealing between devices: `MAGIC` ‖ the sender's X25519 key ‖ HPKE (RFC 9180, auth
//! mode, DHKEM X25519, HKDF-SHA256, AES-256-GCM) of the plaintext, with associated
//! data `MAGIC` ‖ sender key ‖ the recipient's mailbox. So the recipient knows which
//! key sealed it, and a message cannot be moved to another mailbox.

use zeroize::Zeroizing;

use crate::crypto::hpke::{self, Aead, PublicKey, SenderOptions};
use crate::crypto::identity::{Identity, PublicIdentity};
use crate::error::{EnvelopeProblem, Error, Result};

fn aad(magic: &[u8], sender_enc: &[u8], mailbox: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(magic.len() + sender_enc.len() + mailbox.len());
    a.extend_from_slice(magic);
    a.extend_from_slice(sender_enc);
    a.extend_from_slice(mailbox.as_bytes());
    a
}

/// Seal `plain` from `me` to `to`, for `to`'s mailbox.
pub(crate) fn seal(
    magic: &[u8],
    info: &[u8],
    me: &Identity,
    to: &PublicIdentity,
    plain: &[u8],
) -> Result<Vec<u8>> {
    let from = me.public().enc;
    let sealed = hpke::seal(
        Aead::Aes256Gcm,
        &PublicKey(to.enc),
        info,
        &aad(magic, &from, &to.mailbox()),
        plain,
        SenderOptions {
            sender: Some(me.enc_secret()),
            psk: None,
        },
    )?;
    let mut body = Vec::with_capacity(magic.len() + from.len() + sealed.len());
    body.extend_from_slice(magic);
    body.extend_from_slice(&from);
    body.extend(sealed);
    Ok(body)
}

/// Open what was sealed to `me` at its mailbox: the sender's X25519 key and the
/// plaintext. Anything else is a typed envelope error.
pub(crate) fn open(
    magic: &[u8],
    info: &[u8],
    me: &Identity,
    body: &[u8],
) -> Result<([u8; 32], Zeroizing<Vec<u8>>)> {
    if body.len() < magic.len() + 32 || &body[..magic.len()] != magic {
        return Err(Error::Envelope {
            problem: EnvelopeProblem::Malformed,
        });
    }
    let mut sender = [0u8; 32];
    sender.copy_from_slice(&body[magic.len()..magic.len() + 32]);
    let plain = hpke::open(
        Aead::Aes256Gcm,
        me.enc_secret(),
        info,
        &aad(magic, &sender, &me.public().mailbox()),
        &body[magic.len() + 32..],
        Some(&PublicKey(sender)),
        None,
    )
    .map_err(|_| Error::Envelope {
        problem: EnvelopeProblem::Tampered,
    })?;
    Ok((sender, plain))
}
