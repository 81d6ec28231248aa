//! The backup file: a versioned header, then the content in AES-256-GCM chunks, so a
//! large record streams in both directions.
//!
//! ```text
//! "CARRYBK1" ‖ header length (u32 BE) ‖ header (JSON)
//! then chunks: length (u32 BE) ‖ AES-256-GCM ciphertext with tag
//! ```
//!
//! The header (see `schemas/backup-header.schema.json`) names the format and version,
//! the backup's id, kind and sequence, and carries the backup key wrapped under the
//! key derived from the recovery code. Each chunk is sealed under a file key derived
//! from the backup key and the backup's id; its nonce is a random 7-byte prefix from
//! the header, a 4-byte counter and a last-chunk flag (the STREAM construction), and
//! its additional data is the whole header. So chunks cannot be reordered, dropped,
//! truncated at the end, or moved to another backup, and the header cannot change.

use std::io::{Read, Write};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::hkdf;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"CARRYBK1";
/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
const HEADER_MAX: u32 = 64 * 1024;

/// The backup key wrapped under the recovery code's key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Wrapped {
    /// The 12-byte nonce, base64url.
    pub nonce: String,
    /// AES-256-GCM of the 32-byte backup key, with its tag, base64url.
    pub ct: String,
}

/// The header of a backup file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Always `carry-backup`.
    pub format: String,
    /// The format version, 1.
    pub version: u32,
    /// This backup's id (random, base64url).
    pub id: String,
    /// `full`, or `incremental` on top of `base`.
    pub kind: String,
    /// The backup this one builds on (for an incremental one): the one before it in
    /// its chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Counts up from 1 within a chain of a full backup and its increments.
    pub seq: u32,
    /// When it was made (Unix seconds).
    pub created_at: i64,
    /// The vault schema version of the content.
    pub schema: i64,
    /// The backup key, wrapped under the key the recovery code derives.
    pub wrapped_key: Wrapped,
    /// The chunk nonces' random prefix (7 bytes), base64url.
    pub nonce_prefix: String,
}

const WRAP_AAD: &[u8] = b"carry-backup-key-v1";

/// Wrap the backup key under `kek`.
pub fn wrap(kek: &[u8; 32], backup_key: &[u8; 32]) -> Result<Wrapped> {
    let (nonce, ct) = crate::keys::seal(kek, WRAP_AAD, backup_key)?;
    Ok(Wrapped {
        nonce: B64.encode(nonce),
        ct: B64.encode(ct),
    })
}

/// Unwrap the backup key. A wrong recovery code gives [`Error::WrongRecoveryCode`].
pub fn unwrap(kek: &[u8; 32], w: &Wrapped) -> Result<Zeroizing<[u8; 32]>> {
    let nonce = B64.decode(&w.nonce).map_err(|_| Error::WrongRecoveryCode)?;
    let ct = B64.decode(&w.ct).map_err(|_| Error::WrongRecoveryCode)?;
    let plain =
        crate::keys::open(kek, WRAP_AAD, &nonce, ct).map_err(|_| Error::WrongRecoveryCode)?;
    let arr: [u8; 32] = plain
        .as_slice()
        .try_into()
        .map_err(|_| Error::WrongRecoveryCode)?;
    Ok(Zeroizing::new(arr))
}

fn file_key(backup_key: &[u8; 32], id: &str) -> Result<LessSafeKey> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"carry-backup-file-v1").extract(backup_key);
    let info = [id.as_bytes()];
    let okm = prk
        .expand(&info, &AES_256_GCM)
        .map_err(|_| Error::internal("HKDF expand"))?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

fn nonce(prefix: &[u8; 7], counter: u32, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[..7].copy_from_slice(prefix);
    n[7..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

fn io(e: std::io::Error) -> Error {
    Error::Storage {
        reason: format!("backup file: {e}"),
    }
}

fn corrupt() -> Error {
    Error::invalid("the backup is damaged or not complete (a chunk does not open)")
}

/// Writes a backup: the header, then the content in sealed chunks.
pub struct Writer<W: Write> {
    out: W,
    key: LessSafeKey,
    prefix: [u8; 7],
    aad: Vec<u8>,
    counter: u32,
    buf: Zeroizing<Vec<u8>>,
    /// Bytes written so far.
    written: u64,
}

impl<W: Write> Writer<W> {
    /// Start a backup with `header` (whose `nonce_prefix` this fills) under `backup_key`.
    pub fn new(mut out: W, mut header: Header, backup_key: &[u8; 32]) -> Result<Self> {
        let mut prefix = [0u8; 7];
        crate::keys::fill_random(&mut prefix)?;
        header.nonce_prefix = B64.encode(prefix);
        let aad = serde_json::to_vec(&header)?;
        out.write_all(MAGIC).map_err(io)?;
        out.write_all(&(aad.len() as u32).to_be_bytes())
            .map_err(io)?;
        out.write_all(&aad).map_err(io)?;
        Ok(Writer {
            out,
            key: file_key(backup_key, &header.id)?,
            prefix,
            written: (MAGIC.len() + 4 + aad.len()) as u64,
            aad,
            counter: 0,
            buf: Zeroizing::new(Vec::with_capacity(CHUNK + 16)),
        })
    }

    fn seal(&mut self, last: bool) -> Result<()> {
        let n = nonce(&self.prefix, self.counter, last);
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| Error::invalid("the backup is too large"))?;
        self.key
            .seal_in_place_append_tag(n, Aad::from(&self.aad), &mut *self.buf)
            .map_err(|_| Error::internal("AES-GCM seal"))?;
        self.out
            .write_all(&(self.buf.len() as u32).to_be_bytes())
            .map_err(io)?;
        self.out.write_all(&self.buf).map_err(io)?;
        self.written += 4 + self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Add content.
    pub fn write(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let room = CHUNK - self.buf.len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == CHUNK {
                self.seal(false)?;
            }
        }
        Ok(())
    }

    /// Seal the last chunk and return the output, with the bytes written in all.
    pub fn finish(mut self) -> Result<(W, u64)> {
        self.seal(true)?;
        self.out.flush().map_err(io)?;
        Ok((self.out, self.written))
    }
}

/// Read a backup's header without opening anything.
pub fn read_header<R: Read>(input: &mut R) -> Result<(Header, Vec<u8>)> {
    let mut magic = [0u8; 8];
    input
        .read_exact(&mut magic)
        .map_err(|_| Error::invalid("not a Carry backup"))?;
    if &magic != MAGIC {
        return Err(Error::invalid(
            "not a Carry backup (or from a newer version)",
        ));
    }
    let mut len = [0u8; 4];
    input.read_exact(&mut len).map_err(|_| corrupt())?;
    let len = u32::from_be_bytes(len);
    if len > HEADER_MAX {
        return Err(corrupt());
    }
    let mut raw = vec![0u8; len as usize];
    input.read_exact(&mut raw).map_err(|_| corrupt())?;
    let header: Header = serde_json::from_slice(&raw).map_err(|_| corrupt())?;
    if header.format != "carry-backup" || header.version != 1 {
        return Err(Error::invalid(
            "a backup format this build does not know; update the app",
        ));
    }
    Ok((header, raw))
}

/// Reads a backup's content chunk by chunk, checking each.
pub struct Reader<R: Read> {
    input: R,
    key: LessSafeKey,
    prefix: [u8; 7],
    aad: Vec<u8>,
    counter: u32,
    done: bool,
}

impl<R: Read> Reader<R> {
    /// Continue reading after [`read_header`] with the unwrapped backup key.
    pub fn new(
        input: R,
        header: &Header,
        raw_header: Vec<u8>,
        backup_key: &[u8; 32],
    ) -> Result<Self> {
        let prefix: [u8; 7] = B64
            .decode(&header.nonce_prefix)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or_else(corrupt)?;
        Ok(Reader {
            input,
            key: file_key(backup_key, &header.id)?,
            prefix,
            aad: raw_header,
            counter: 0,
            done: false,
        })
    }

    /// The next chunk of content, or `None` after the last one.
    pub fn next_chunk(&mut self) -> Result<Option<Zeroizing<Vec<u8>>>> {
        if self.done {
            return Ok(None);
        }
        let mut len = [0u8; 4];
        self.input.read_exact(&mut len).map_err(|_| corrupt())?;
        let len = u32::from_be_bytes(len) as usize;
        if !(16..=CHUNK + 16).contains(&len) {
            return Err(corrupt());
        }
        let mut buf = Zeroizing::new(vec![0u8; len]);
        self.input.read_exact(&mut buf).map_err(|_| corrupt())?;
        // Try as a middle chunk, then as the last.
        for last in [false, true] {
            let mut attempt = buf.clone();
            if let Ok(plain) = self.key.open_in_place(
                nonce(&self.prefix, self.counter, last),
                Aad::from(&self.aad),
                &mut attempt,
            ) {
                let plain = Zeroizing::new(plain.to_vec());
                self.counter += 1;
                if last {
                    self.done = true;
                    let mut extra = [0u8; 1];
                    if self.input.read(&mut extra).map_err(io)? != 0 {
                        return Err(corrupt());
                    }
                }
                return Ok(Some(plain));
            }
        }
        Err(corrupt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            format: "carry-backup".into(),
            version: 1,
            id: "b1".into(),
            kind: "full".into(),
            base: None,
            seq: 1,
            created_at: 0,
            schema: 4,
            wrapped_key: wrap(&[1u8; 32], &[2u8; 32]).unwrap(),
            nonce_prefix: String::new(),
        }
    }

    fn read_all(bytes: &[u8], key: &[u8; 32]) -> Result<Vec<u8>> {
        let mut input = bytes;
        let (h, raw) = read_header(&mut input)?;
        let mut r = Reader::new(input, &h, raw, key)?;
        let mut out = Vec::new();
        while let Some(c) = r.next_chunk()? {
            out.extend_from_slice(&c);
        }
        Ok(out)
    }

    #[test]
    fn streams_round_trip_and_every_damage_is_refused() {
        let key = [2u8; 32];
        let data: Vec<u8> = (0..(CHUNK * 2 + 1000)).map(|i| (i % 251) as u8).collect();
        let mut w = Writer::new(Vec::new(), header(), &key).unwrap();
        w.write(&data[..5000]).unwrap();
        w.write(&data[5000..]).unwrap();
        let (bytes, n) = w.finish().unwrap();
        assert_eq!(n, bytes.len() as u64);
        assert_eq!(read_all(&bytes, &key).unwrap(), data);
        // A wrong key, a flipped byte anywhere, a truncation, an extra byte.
        assert!(read_all(&bytes, &[3u8; 32]).is_err());
        for i in [0, 9, 20, bytes.len() / 2, bytes.len() - 1] {
            let mut t = bytes.clone();
            t[i] ^= 1;
            assert!(read_all(&t, &key).is_err(), "byte {i}");
        }
        assert!(read_all(&bytes[..bytes.len() - 100], &key).is_err());
        // Cut exactly at a chunk boundary: the last-chunk flag is missing.
        let first_chunk_end = {
            let hl = u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
            12 + hl + 4 + CHUNK + 16
        };
        assert!(read_all(&bytes[..first_chunk_end], &key).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(read_all(&longer, &key).is_err());
        // An empty backup still has its one (empty) last chunk.
        let empty = Writer::new(Vec::new(), header(), &key)
            .unwrap()
            .finish()
            .unwrap()
            .0;
        assert!(read_all(&empty, &key).unwrap().is_empty());
    }

    #[test]
    fn the_key_wrap_refuses_a_wrong_code() {
        let w = wrap(&[1u8; 32], &[9u8; 32]).unwrap();
        assert_eq!(*unwrap(&[1u8; 32], &w).unwrap(), [9u8; 32]);
        assert!(matches!(
            unwrap(&[4u8; 32], &w),
            Err(Error::WrongRecoveryCode)
        ));
    }
}
