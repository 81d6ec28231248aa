//! The vault key, the [`KeyStore`] trait that wraps it, and the passphrase key store
//! the CLI uses.
//!
//! The vault key is 32 random bytes. It never touches disk in the clear: a key store
//! wraps it (the platform keystore in an app, a passphrase-derived key in the CLI)
//! and the core keeps only the wrapped form, in the key file beside the vault.

use std::fmt;
use std::num::NonZeroU32;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Error, Result};

/// Length of a vault key in bytes (256 bits).
pub const KEY_LEN: usize = 32;

/// A 256-bit vault key. It is wiped from memory when dropped and never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct VaultKey([u8; KEY_LEN]);

impl VaultKey {
    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; KEY_LEN];
        fill_random(&mut bytes)?;
        Ok(VaultKey(bytes))
    }

    /// A key from exactly 32 bytes, as a key store returns it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let arr: [u8; KEY_LEN] = bytes.try_into().map_err(|_| Error::KeyStore {
            reason: format!("a vault key is {KEY_LEN} bytes, got {}", bytes.len()),
        })?;
        Ok(VaultKey(arr))
    }

    /// The raw key bytes, for a key store to wrap.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The SQLCipher raw-key literal `x'…'`, wiped when dropped.
    pub fn sqlcipher_literal(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(3 + 2 * KEY_LEN));
        s.push_str("x'");
        s.push_str(&hex::encode(self.0));
        s.push('\'');
        s
    }
}

impl fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VaultKey(redacted)")
    }
}

/// Wraps and unwraps the vault key. Apps implement it over the iOS Keychain or the
/// Android Keystore; the CLI uses [`PassphraseKeyStore`].
///
/// The wrapped bytes are opaque to the core, which stores them in the key file beside
/// the vault. `unwrap` must fail with [`Error::WrongKey`] when the wrapped bytes do not
/// open (a wrong passphrase, a key from another device).
pub trait KeyStore: Send + Sync {
    /// Wrap `key` for storage.
    fn wrap(&self, key: &VaultKey) -> Result<Vec<u8>>;
    /// Recover the key from what [`KeyStore::wrap`] returned.
    fn unwrap(&self, wrapped: &[u8]) -> Result<VaultKey>;
}

/// PBKDF2-HMAC-SHA256 iterations for a newly wrapped key (OWASP 2023 guidance).
pub const PBKDF2_ITERATIONS: u32 = 600_000;
/// Key files asking for more rounds than this are refused, so a planted file cannot
/// stall the app.
const PBKDF2_MAX_ITERATIONS: u32 = 10_000_000;
const SALT_LEN: usize = 16;
const WRAP_AAD: &[u8] = b"carry/vault-key/passphrase/v1";
const WRAP_FORMAT: &str = "carry-passphrase-wrap";

/// The passphrase key store: the vault key is sealed with AES-256-GCM under a key
/// derived from the passphrase with PBKDF2-HMAC-SHA256 and a random salt.
pub struct PassphraseKeyStore {
    passphrase: Zeroizing<String>,
}

impl PassphraseKeyStore {
    /// A key store for `passphrase`. An empty passphrase is refused.
    pub fn new(passphrase: impl Into<String>) -> Result<Self> {
        let passphrase = Zeroizing::new(passphrase.into());
        if passphrase.is_empty() {
            return Err(Error::invalid("the passphrase is empty"));
        }
        Ok(PassphraseKeyStore { passphrase })
    }

    fn derive(&self, salt: &[u8], iterations: NonZeroU32) -> Zeroizing<[u8; KEY_LEN]> {
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            salt,
            self.passphrase.as_bytes(),
            out.as_mut(),
        );
        out
    }
}

/// The JSON the passphrase key store writes (inside the core's key file).
#[derive(Serialize, Deserialize)]
struct PassphraseWrap {
    format: String,
    kdf: String,
    iterations: u32,
    salt: String,
    nonce: String,
    ciphertext: String,
}

impl KeyStore for PassphraseKeyStore {
    fn wrap(&self, key: &VaultKey) -> Result<Vec<u8>> {
        let mut salt = [0u8; SALT_LEN];
        fill_random(&mut salt)?;
        let iterations = NonZeroU32::new(PBKDF2_ITERATIONS)
            .ok_or_else(|| Error::internal("zero PBKDF2 iterations"))?;
        let kek = self.derive(&salt, iterations);
        let (nonce, ciphertext) = seal(kek.as_ref(), WRAP_AAD, key.as_bytes())?;
        let doc = PassphraseWrap {
            format: WRAP_FORMAT.into(),
            kdf: "PBKDF2-HMAC-SHA256".into(),
            iterations: PBKDF2_ITERATIONS,
            salt: B64.encode(salt),
            nonce: B64.encode(nonce),
            ciphertext: B64.encode(ciphertext),
        };
        serde_json::to_vec(&doc).map_err(|e| Error::internal(e.to_string()))
    }

    fn unwrap(&self, wrapped: &[u8]) -> Result<VaultKey> {
        let bad = |why: &str| Error::KeyStore {
            reason: format!("the key file is not a passphrase-wrapped key ({why})"),
        };
        let doc: PassphraseWrap = serde_json::from_slice(wrapped).map_err(|_| bad("not JSON"))?;
        if doc.format != WRAP_FORMAT || doc.kdf != "PBKDF2-HMAC-SHA256" {
            return Err(bad("unknown format"));
        }
        if !(PBKDF2_ITERATIONS..=PBKDF2_MAX_ITERATIONS).contains(&doc.iterations) {
            return Err(bad("iteration count out of range"));
        }
        let iterations = NonZeroU32::new(doc.iterations).ok_or_else(|| bad("zero iterations"))?;
        let salt = B64.decode(&doc.salt).map_err(|_| bad("salt"))?;
        let nonce = B64.decode(&doc.nonce).map_err(|_| bad("nonce"))?;
        let ciphertext = B64.decode(&doc.ciphertext).map_err(|_| bad("ciphertext"))?;
        let kek = self.derive(&salt, iterations);
        let plain = open(kek.as_ref(), WRAP_AAD, &nonce, ciphertext)?;
        VaultKey::from_bytes(&plain)
    }
}

/// Fill `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) -> Result<()> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| Error::internal("the system random number generator failed"))
}

/// Whether two secrets are equal, in time that depends only on their lengths.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// AES-256-GCM seal with a fresh random nonce. Returns (nonce, ciphertext‖tag).
pub fn seal(key: &[u8], aad: &[u8], plain: &[u8]) -> Result<([u8; 12], Vec<u8>)> {
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key).map_err(|_| Error::internal("AES key length"))?,
    );
    let mut nonce = [0u8; aead::NONCE_LEN];
    fill_random(&mut nonce)?;
    let mut buf = plain.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut buf,
    )
    .map_err(|_| Error::internal("AES-GCM seal failed"))?;
    Ok((nonce, buf))
}

/// AES-256-GCM open. A wrong key or any tampering gives [`Error::WrongKey`].
pub fn open(
    key: &[u8],
    aad: &[u8],
    nonce: &[u8],
    ciphertext: Vec<u8>,
) -> Result<Zeroizing<Vec<u8>>> {
    // The buffer ends up holding the plaintext, so it is wiped however this returns.
    let mut buf = Zeroizing::new(ciphertext);
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key).map_err(|_| Error::internal("AES key length"))?,
    );
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::WrongKey)?;
    let plain = key
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| Error::WrongKey)?
        .to_vec();
    Ok(Zeroizing::new(plain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passphrase_round_trip_and_wrong_passphrase() {
        let key = VaultKey::generate().unwrap();
        let store = PassphraseKeyStore::new("correct horse").unwrap();
        let wrapped = store.wrap(&key).unwrap();
        assert_eq!(store.unwrap(&wrapped).unwrap().as_bytes(), key.as_bytes());
        let other = PassphraseKeyStore::new("wrong horse").unwrap();
        assert!(matches!(other.unwrap(&wrapped), Err(Error::WrongKey)));
    }

    #[test]
    fn wrap_is_salted_and_records_iterations() {
        let key = VaultKey::generate().unwrap();
        let store = PassphraseKeyStore::new("pw").unwrap();
        let a: serde_json::Value = serde_json::from_slice(&store.wrap(&key).unwrap()).unwrap();
        let b: serde_json::Value = serde_json::from_slice(&store.wrap(&key).unwrap()).unwrap();
        assert_ne!(a["salt"], b["salt"]);
        assert_eq!(a["iterations"], PBKDF2_ITERATIONS);
    }

    #[test]
    fn tampered_or_downgraded_wrap_is_refused() {
        let key = VaultKey::generate().unwrap();
        let store = PassphraseKeyStore::new("pw").unwrap();
        let mut doc: serde_json::Value =
            serde_json::from_slice(&store.wrap(&key).unwrap()).unwrap();
        let mut ct = B64.decode(doc["ciphertext"].as_str().unwrap()).unwrap();
        ct[0] ^= 1;
        doc["ciphertext"] = B64.encode(ct).into();
        let tampered = serde_json::to_vec(&doc).unwrap();
        assert!(matches!(store.unwrap(&tampered), Err(Error::WrongKey)));
        doc["iterations"] = 1000.into();
        let weak = serde_json::to_vec(&doc).unwrap();
        assert!(matches!(store.unwrap(&weak), Err(Error::KeyStore { .. })));
        assert!(matches!(
            store.unwrap(b"garbage"),
            Err(Error::KeyStore { .. })
        ));
    }

    #[test]
    fn key_debug_is_redacted_and_empty_passphrase_refused() {
        let key = VaultKey::generate().unwrap();
        assert_eq!(format!("{key:?}"), "VaultKey(redacted)");
        assert!(PassphraseKeyStore::new("").is_err());
    }
}
