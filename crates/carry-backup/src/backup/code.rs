//! The recovery code: a 256-bit secret written as 14 groups of 4 characters of
//! Crockford base32, the last group a checksum, so a typo is caught before anything
//! is fetched.
//!
//! `7K3M-Q9TZ-…-X4WD`. Reading is forgiving the way Crockford's alphabet intends:
//! case does not matter, `I` and `L` read as `1`, `O` as `0`, and spaces and dashes
//! are ignored.
//!
//! From the secret, HKDF-SHA256 derives independent keys: one that wraps the backup
//! key, one that names the backup at the endpoint (the locator), and one that proves
//! the right to fetch it. Knowing the locator reveals nothing about the others.

use ring::digest::{digest, SHA256};
use ring::hkdf;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Groups in a code, the checksum included.
pub const GROUPS: usize = 14;
const GROUP_LEN: usize = 4;

/// A recovery secret. Wiped when dropped; never printed.
#[derive(Clone)]
pub struct RecoverySecret(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for RecoverySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoverySecret(redacted)")
    }
}

fn value(c: u8) -> Option<u8> {
    let c = c.to_ascii_uppercase();
    let c = match c {
        b'I' | b'L' => b'1',
        b'O' => b'0',
        c => c,
    };
    ALPHABET.iter().position(|a| *a == c).map(|p| p as u8)
}

/// Which key to derive from the recovery secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Wraps the backup key.
    Wrap,
    /// Names the backup at the endpoint.
    Locator,
    /// Proves the right to fetch it.
    Fetch,
}

impl RecoverySecret {
    /// A fresh secret from the system's CSPRNG.
    pub fn generate() -> Result<Self> {
        let mut s = Zeroizing::new([0u8; 32]);
        crate::keys::fill_random(s.as_mut())?;
        Ok(RecoverySecret(s))
    }

    /// From its 32 bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        let arr: [u8; 32] = b
            .try_into()
            .map_err(|_| Error::internal("a recovery secret is 32 bytes"))?;
        Ok(RecoverySecret(Zeroizing::new(arr)))
    }

    /// Its bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The code as people write it down.
    pub fn code(&self) -> Zeroizing<String> {
        let mut bits: u64 = 0;
        let mut nbits = 0;
        let mut chars = Vec::with_capacity(GROUPS * GROUP_LEN);
        // 256 bits, then 4 zero bits: 52 characters.
        for b in self.0.iter().copied().chain(std::iter::once(0u8)) {
            bits = (bits << 8) | u64::from(b);
            nbits += 8;
            while nbits >= 5 && chars.len() < 52 {
                nbits -= 5;
                chars.push(ALPHABET[((bits >> nbits) & 31) as usize]);
            }
        }
        chars.extend_from_slice(&checksum(&self.0));
        let mut out = Zeroizing::new(String::with_capacity(GROUPS * 5));
        for (i, g) in chars.chunks(GROUP_LEN).enumerate() {
            if i > 0 {
                out.push('-');
            }
            out.extend(g.iter().map(|c| *c as char));
        }
        out
    }

    /// Read a code back. A wrong length or a typo (the checksum does not match) is
    /// [`Error::InvalidInput`].
    pub fn parse(code: &str) -> Result<Self> {
        let vals: Vec<u8> = code
            .bytes()
            .filter(|c| !matches!(c, b'-' | b' ' | b'\t' | b'\n'))
            .map(|c| {
                value(c).ok_or_else(|| {
                    Error::invalid("the recovery code has a character that is not in it")
                })
            })
            .collect::<Result<_>>()?;
        if vals.len() != GROUPS * GROUP_LEN {
            return Err(Error::invalid(format!(
                "a recovery code is {GROUPS} groups of {GROUP_LEN} characters"
            )));
        }
        let mut bytes = Zeroizing::new(Vec::with_capacity(33));
        let (mut bits, mut nbits) = (0u64, 0);
        for v in &vals[..52] {
            bits = (bits << 5) | u64::from(*v);
            nbits += 5;
            if nbits >= 8 {
                nbits -= 8;
                bytes.push(((bits >> nbits) & 0xff) as u8);
            }
        }
        let secret = RecoverySecret::from_bytes(&bytes[..32])?;
        let want = checksum(&secret.0);
        let got: Vec<u8> = vals[52..].iter().map(|v| ALPHABET[*v as usize]).collect();
        if !crate::keys::same_secret(&want, &got) {
            return Err(Error::invalid(
                "the recovery code has a typo (its last group does not match); check each group",
            ));
        }
        Ok(secret)
    }

    /// One of the keys derived from the secret.
    pub fn derive(&self, purpose: Purpose) -> Zeroizing<[u8; 32]> {
        let info: &[u8] = match purpose {
            Purpose::Wrap => b"carry-backup-wrap-v1",
            Purpose::Locator => b"carry-backup-locator-v1",
            Purpose::Fetch => b"carry-backup-fetch-v1",
        };
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"carry-recovery").extract(self.0.as_ref());
        let mut out = Zeroizing::new([0u8; 32]);
        let infos = [info];
        // 32 bytes is always a valid HKDF-SHA256 output length.
        if let Ok(okm) = prk.expand(&infos, hkdf::HKDF_SHA256) {
            let _ = okm.fill(out.as_mut());
        }
        out
    }

    /// The groups at `positions` (1-based), for the "did you write it down?" check.
    pub fn groups(&self, positions: &[usize]) -> Vec<Zeroizing<String>> {
        let code = self.code();
        let all: Vec<&str> = code.split('-').collect();
        positions
            .iter()
            .filter_map(|p| {
                all.get(p.wrapping_sub(1))
                    .map(|g| Zeroizing::new(g.to_string()))
            })
            .collect()
    }
}

fn checksum(secret: &[u8; 32]) -> [u8; GROUP_LEN] {
    let d = digest(&SHA256, secret);
    let v = u32::from_be_bytes([d.as_ref()[0], d.as_ref()[1], d.as_ref()[2], d.as_ref()[3]]);
    let mut out = [0u8; GROUP_LEN];
    for (i, o) in out.iter_mut().enumerate() {
        *o = ALPHABET[((v >> (27 - 5 * i)) & 31) as usize];
    }
    out
}

/// Normalise one group as typed, for comparing with [`RecoverySecret::groups`].
pub fn normalise_group(g: &str) -> String {
    g.bytes()
        .filter_map(value)
        .map(|v| ALPHABET[v as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_typos_are_caught() {
        for _ in 0..50 {
            let s = RecoverySecret::generate().unwrap();
            let code = s.code();
            assert_eq!(code.split('-').count(), GROUPS);
            let back = RecoverySecret::parse(&code).unwrap();
            assert_eq!(back.as_bytes(), s.as_bytes());
            // Forgiving reading: lower case, O for 0, I/L for 1, spaces.
            let sloppy = code
                .to_lowercase()
                .replace('0', "o")
                .replace('1', "l")
                .replace('-', " ");
            assert_eq!(
                RecoverySecret::parse(&sloppy).unwrap().as_bytes(),
                s.as_bytes()
            );
            // Every single-character change is caught.
            let mut chars: Vec<char> = code.chars().collect();
            let i = 7;
            chars[i] = if chars[i] == 'X' { 'Y' } else { 'X' };
            let typo: String = chars.into_iter().collect();
            assert!(RecoverySecret::parse(&typo).is_err());
        }
        assert!(RecoverySecret::parse("ABCD-EFGH").is_err());
        assert!(
            RecoverySecret::parse(&"U".repeat(56)).is_err(),
            "U is not in the alphabet"
        );
    }

    #[test]
    fn derived_keys_differ_and_groups_are_the_code_s() {
        let s = RecoverySecret::generate().unwrap();
        let (a, b, c) = (
            s.derive(Purpose::Wrap),
            s.derive(Purpose::Locator),
            s.derive(Purpose::Fetch),
        );
        assert!(a != b && b != c && a != c);
        let code = s.code();
        let g = s.groups(&[1, 14]);
        assert_eq!(g[0].as_str(), &code[..4]);
        assert_eq!(g[1].as_str(), &code[code.len() - 4..]);
        assert_eq!(normalise_group(" ab-cd "), "ABCD");
        assert!(format!("{s:?}").contains("redacted"));
    }
}
