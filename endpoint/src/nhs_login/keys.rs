//! The issuer's signing key: an RSA 2048 key pair made at start-up with OpenSSL (the
//! one SQLCipher already links), held only in memory, used through `jsonwebtoken` (on
//! ring) to sign ID and access tokens with RS512, and published as a JWK Set. A
//! restart makes a new key, so tokens of an earlier run no longer verify.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// The size of the issuer's RSA key, in bits.
const RSA_BITS: u32 = 2048;

/// Why the issuer's key could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// OpenSSL could not make or export the key pair.
    #[error("cannot make the NHS login issuer's RSA key: {0}")]
    Generate(#[from] openssl::error::ErrorStack),
    /// The exported key was not one `jsonwebtoken` takes.
    #[error("the NHS login issuer's RSA key cannot be used for signing")]
    Unusable,
    /// A token could not be signed.
    #[error("cannot sign a token")]
    Sign,
}

/// The issuer's RSA key pair: the private half for signing, the public half as a JWK.
pub struct IssuerKey {
    encoding: EncodingKey,
    kid: String,
    jwk: Value,
}

impl std::fmt::Debug for IssuerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerKey").field("kid", &self.kid).finish()
    }
}

impl IssuerKey {
    /// A fresh key pair. Its key id is the RFC 7638 thumbprint of the public key.
    pub fn generate() -> Result<Self, KeyError> {
        let rsa = openssl::rsa::Rsa::generate(RSA_BITS)?;
        let n = B64.encode(rsa.n().to_vec());
        let e = B64.encode(rsa.e().to_vec());
        // PKCS#1 DER of the private key, handed straight to jsonwebtoken (ring).
        let der = rsa.private_key_to_der()?;
        let encoding = EncodingKey::from_rsa_der(&der);
        drop(der);
        // RFC 7638: SHA-256 over the required members, in lexicographic order, no spaces.
        let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        let kid = B64.encode(ring::digest::digest(
            &ring::digest::SHA256,
            canonical.as_bytes(),
        ));
        let jwk = json!({ "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS512", "n": n, "e": e });
        let key = IssuerKey { encoding, kid, jwk };
        // Sign once now, so a key ring cannot use fails the start, not a sign-in.
        key.sign(&json!({ "probe": true }))
            .map_err(|_| KeyError::Unusable)?;
        Ok(key)
    }

    /// The key id every token's header names.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWK Set the issuer publishes: this one public key.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }

    /// `claims` as a JWT signed with RS512, its header naming this key.
    pub fn sign<T: serde::Serialize>(&self, claims: &T) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::RS512);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|_| KeyError::Sign)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_against_the_published_key() {
        let key = IssuerKey::generate().unwrap();
        let jwks = key.jwks();
        let jwk = &jwks["keys"][0];
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["alg"], "RS512");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["kid"], key.kid());
        let token = key
            .sign(&json!({ "sub": "x", "exp": 4_000_000_000u64 }))
            .unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::RS512);
        assert_eq!(header.kid.as_deref(), Some(key.kid()));
        let decoding = jsonwebtoken::DecodingKey::from_rsa_components(
            jwk["n"].as_str().unwrap(),
            jwk["e"].as_str().unwrap(),
        )
        .unwrap();
        let mut v = jsonwebtoken::Validation::new(Algorithm::RS512);
        v.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Value>(&token, &decoding, &v).unwrap();
        assert_eq!(data.claims["sub"], "x");
    }
}
