//! Cryptographic constructions beyond the vault's own: HPKE (RFC 9180) for sealing
//! envelopes to a person. Built on ring (HMAC-SHA256, AES-256-GCM,
//! ChaCha20-Poly1305) and x25519-dalek, and checked against the published vectors.

pub mod hpke;
pub mod identity;
