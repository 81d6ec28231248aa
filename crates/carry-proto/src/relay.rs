//! The share relay's wire format (`docs/formats.md`, "Relay protocol"): what each
//! signature covers and the mailbox id here, the JSON bodies in [`messages`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use ring::digest::{Context, SHA256};

pub mod messages;

/// What a sign-in signature covers, before the endpoint's origin, a newline and the
/// challenge.
pub const AUTH_CONTEXT: &[u8] = b"carry-relay-auth-v2\n";
/// What a binding signature covers, before the X25519 key it binds.
pub const KEYS_CONTEXT: &[u8] = b"carry-keys-v1\n";
/// What a mailbox id hashes, before the owner's Ed25519 key.
pub const MAILBOX_CONTEXT: &[u8] = b"carry-mailbox-v1";
/// What a key retirement signature covers, before the endpoint's origin, a newline
/// and the successor's Ed25519 key.
pub const RETIRE_CONTEXT: &[u8] = b"carry-relay-retire-v1\n";

/// The mailbox id of an Ed25519 public key: base64url (no padding) of the first 16
/// bytes of SHA-256(`carry-mailbox-v1` ‖ key), 22 characters. Opaque: it names nobody.
pub fn mailbox_id(key: &[u8]) -> String {
    let mut c = Context::new(&SHA256);
    c.update(MAILBOX_CONTEXT);
    c.update(key);
    B64.encode(&c.finish().as_ref()[..16])
}

/// What a sign-in signs, before the challenge: the context, the origin of the
/// endpoint as the client reaches it (`scheme://host[:port]`), and a newline. A
/// signature for one endpoint is no use at another.
pub fn auth_prefix(origin: &str) -> Vec<u8> {
    [AUTH_CONTEXT, origin.as_bytes(), b"\n"].concat()
}

/// The bytes a sign-in signs: [`auth_prefix`] and the challenge.
pub fn auth_message(origin: &str, challenge: &[u8]) -> Vec<u8> {
    [auth_prefix(origin).as_slice(), challenge].concat()
}

/// The bytes a binding signs: the context and the X25519 key.
pub fn binding_message(enc: &[u8]) -> Vec<u8> {
    [KEYS_CONTEXT, enc].concat()
}

/// The bytes a key retirement signs: the context, the endpoint's origin, a newline,
/// and the successor's Ed25519 key.
pub fn retire_message(origin: &str, successor: &[u8]) -> Vec<u8> {
    [RETIRE_CONTEXT, origin.as_bytes(), b"\n", successor].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_bytes_are_as_the_protocol_writes_them() {
        assert_eq!(
            auth_message("https://carry.example", b"CH"),
            b"carry-relay-auth-v2\nhttps://carry.example\nCH"
        );
        assert_eq!(binding_message(b"K"), b"carry-keys-v1\nK");
        assert_eq!(
            retire_message("http://127.0.0.1:8080", b"S"),
            b"carry-relay-retire-v1\nhttp://127.0.0.1:8080\nS"
        );
        let id = mailbox_id(&[7u8; 32]);
        assert_eq!(id.len(), 22);
        assert_ne!(id, mailbox_id(&[8u8; 32]));
    }
}
