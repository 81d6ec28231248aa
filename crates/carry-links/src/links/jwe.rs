//! JWE compact serialisation (RFC 7516) as SMART Health Links use it: `alg: dir`,
//! `enc: A256GCM`, optionally `zip: DEF` (raw DEFLATE, RFC 1951), under a 32-byte key.
//!
//! Encryption writes the header `{"alg":"dir","enc":"A256GCM","cty":…,"zip":"DEF"}`
//! and a fresh random 96-bit IV every time. Decryption is lenient about header fields
//! it does not need (`kid`, a missing `cty`) and strict about everything
//! cryptographic: the algorithm, the encryption, the key length, the IV and tag
//! lengths, an empty encrypted key, and the authentication tag.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The most plaintext a decompressed file may grow to (a zip bomb guard).
pub const INFLATED_MAX: usize = 64 * 1024 * 1024;

fn bad(why: &str) -> Error {
    Error::invalid(format!("not a valid SMART Health Link file: {why}"))
}

/// Encrypt `plaintext` under `key` (32 bytes) with `cty` as the content type,
/// compressing it first with raw DEFLATE.
pub fn encrypt(key: &[u8; 32], cty: &str, plaintext: &[u8]) -> Result<String> {
    let header = serde_json::json!({"alg": "dir", "enc": "A256GCM", "cty": cty, "zip": "DEF"});
    let protected = B64.encode(header.to_string());
    let mut iv = [0u8; 12];
    crate::keys::fill_random(&mut iv)?;
    let mut buf = miniz_oxide::deflate::compress_to_vec(plaintext, 6);
    let sealing = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key).map_err(|_| Error::internal("AES key length"))?,
    );
    let tag = sealing
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(iv),
            Aad::from(protected.as_bytes()),
            &mut buf,
        )
        .map_err(|_| Error::internal("AES-GCM seal failed"))?;
    Ok(format!(
        "{protected}..{}.{}.{}",
        B64.encode(iv),
        B64.encode(&buf),
        B64.encode(tag.as_ref())
    ))
}

/// What a decrypted file held.
#[derive(Debug)]
pub struct Decrypted {
    /// The content type the header named, if it did.
    pub cty: Option<String>,
    /// The plaintext (decompressed when the header said `zip: DEF`).
    pub plaintext: Zeroizing<Vec<u8>>,
}

/// Decrypt a compact JWE under `key`.
pub fn decrypt(key: &[u8], jwe: &str) -> Result<Decrypted> {
    let parts: Vec<&str> = jwe.trim().split('.').collect();
    let [protected, encrypted_key, iv, ciphertext, tag] = parts.as_slice() else {
        return Err(bad("a compact JWE has five parts"));
    };
    let header: Value = B64
        .decode(protected)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or_else(|| bad("the header is not base64url JSON"))?;
    if header["alg"] != "dir" {
        return Err(bad("alg must be dir"));
    }
    if header["enc"] != "A256GCM" {
        return Err(bad("enc must be A256GCM"));
    }
    if !encrypted_key.is_empty() {
        return Err(bad("with alg dir the encrypted key is empty"));
    }
    let zip = match header.get("zip") {
        None => false,
        Some(v) if v == "DEF" => true,
        Some(_) => return Err(bad("zip must be DEF when present")),
    };
    if key.len() != 32 {
        return Err(bad("the key is not 32 bytes"));
    }
    let iv: [u8; 12] = B64
        .decode(iv)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| bad("the IV is not 96 bits"))?;
    let tag = B64
        .decode(tag)
        .map_err(|_| bad("the tag is not base64url"))?;
    if tag.len() != 16 {
        return Err(bad("the tag is not 128 bits"));
    }
    let mut buf = Zeroizing::new(
        B64.decode(ciphertext)
            .map_err(|_| bad("the ciphertext is not base64url"))?,
    );
    buf.extend_from_slice(&tag);
    let opening = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key).map_err(|_| Error::internal("AES key length"))?,
    );
    let plain = opening
        .open_in_place(
            Nonce::assume_unique_for_key(iv),
            Aad::from(protected.as_bytes()),
            &mut buf,
        )
        .map_err(|_| Error::Denied {
            reason: "the file does not decrypt with the link's key (wrong key, or changed)".into(),
        })?;
    let plaintext = if zip {
        Zeroizing::new(
            miniz_oxide::inflate::decompress_to_vec_with_limit(plain, INFLATED_MAX)
                .map_err(|_| bad("the compressed content does not inflate (or is too large)"))?,
        )
    } else {
        Zeroizing::new(plain.to_vec())
    };
    Ok(Decrypted {
        cty: header["cty"].as_str().map(str::to_string),
        plaintext,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(p: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/shl")
            .join(p)
    }

    #[test]
    fn round_trip_with_a_fresh_iv_each_time() {
        let key = [7u8; 32];
        let a = encrypt(
            &key,
            "application/fhir+json",
            b"{\"resourceType\":\"Bundle\"}",
        )
        .unwrap();
        let b = encrypt(
            &key,
            "application/fhir+json",
            b"{\"resourceType\":\"Bundle\"}",
        )
        .unwrap();
        assert_ne!(a.split('.').nth(2), b.split('.').nth(2));
        let d = decrypt(&key, &a).unwrap();
        assert_eq!(&*d.plaintext, b"{\"resourceType\":\"Bundle\"}");
        assert_eq!(d.cty.as_deref(), Some("application/fhir+json"));
        let header: Value =
            serde_json::from_slice(&B64.decode(a.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header["zip"], "DEF");
        // Any change to any part is refused.
        for part in 0..5 {
            let mut parts: Vec<String> = a.split('.').map(str::to_string).collect();
            if parts[part].is_empty() {
                parts[part] = "AA".into();
            } else {
                let mut raw = B64.decode(&parts[part]).unwrap();
                raw[0] ^= 1;
                parts[part] = B64.encode(raw);
            }
            assert!(decrypt(&key, &parts.join(".")).is_err(), "part {part}");
        }
        assert!(matches!(decrypt(&[8u8; 32], &a), Err(Error::Denied { .. })));
        assert!(decrypt(&key[..16], &a).is_err());
    }

    #[test]
    fn the_published_vectors_decrypt() {
        let details: Value =
            serde_json::from_str(&std::fs::read_to_string(shared("ips-shl-details.json")).unwrap())
                .unwrap();
        let key = B64
            .decode(details["shlinkJsonPayload"]["key"].as_str().unwrap())
            .unwrap();
        let jwe = std::fs::read_to_string(shared("ips-file.jwe.txt")).unwrap();
        let d = decrypt(&key, &jwe).unwrap();
        let got: Value = serde_json::from_slice(&d.plaintext).unwrap();
        let want: Value = serde_json::from_str(
            &std::fs::read_to_string(shared("ips-file-plaintext.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(got, want);

        let spec: Value = serde_json::from_str(
            &std::fs::read_to_string(shared("spec-shl-example-vector.json")).unwrap(),
        )
        .unwrap();
        let key = B64
            .decode(spec["fileEncryptionKey"].as_str().unwrap())
            .unwrap();
        let d = decrypt(&key, spec["fileEncryptedJwe"].as_str().unwrap()).unwrap();
        let card = std::fs::read(shared("shc-example-00-e-file.smart-health-card")).unwrap();
        assert_eq!(&*d.plaintext, card.as_slice());
        assert_eq!(d.cty.as_deref(), Some("application/smart-health-card"));
    }

    #[test]
    fn algorithms_other_than_dir_and_a256gcm_are_refused() {
        let key = [1u8; 32];
        let good = encrypt(&key, "x", b"hi").unwrap();
        let rest: Vec<&str> = good.split('.').skip(1).collect();
        for header in [
            r#"{"alg":"A256KW","enc":"A256GCM"}"#,
            r#"{"alg":"dir","enc":"A128GCM"}"#,
            r#"{"alg":"none","enc":"A256GCM"}"#,
            r#"{"alg":"dir","enc":"A256GCM","zip":"GZ"}"#,
        ] {
            let jwe = format!("{}.{}", B64.encode(header), rest.join("."));
            assert!(decrypt(&key, &jwe).is_err(), "{header}");
        }
        assert!(decrypt(&key, "a.b.c").is_err());
    }
}
