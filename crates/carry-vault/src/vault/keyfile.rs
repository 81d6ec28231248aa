//! The key file beside the vault: the key store's wrapped key, plus a key check value
//! (an HMAC of a fixed label under the vault key). The check tells a wrong key, which
//! is the person's mistake, from a damaged vault, which is not.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys::VaultKey;

const FORMAT: &str = "carry-key-file";
const CHECK_LABEL: &[u8] = b"carry/vault-key-check/v1";

fn check_key(key: &VaultKey) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes())
}

/// What the key file holds.
#[derive(Serialize, Deserialize)]
pub struct KeyFile {
    format: String,
    version: u32,
    /// Hex of HMAC-SHA256(vault key, CHECK_LABEL).
    key_check: String,
    /// Base64url of the key store's wrapped key.
    wrapped: String,
}

impl KeyFile {
    pub fn new(key: &VaultKey, wrapped: &[u8]) -> Self {
        let tag = hmac::sign(&check_key(key), CHECK_LABEL);
        KeyFile {
            format: FORMAT.into(),
            version: 1,
            key_check: hex::encode(tag.as_ref()),
            wrapped: B64.encode(wrapped),
        }
    }

    /// Whether `key` is the key this file was written for, compared in constant time.
    pub fn matches(&self, key: &VaultKey) -> bool {
        match hex::decode(&self.key_check) {
            Ok(tag) => hmac::verify(&check_key(key), CHECK_LABEL, &tag).is_ok(),
            Err(_) => false,
        }
    }

    pub fn wrapped(&self) -> Result<Vec<u8>> {
        B64.decode(&self.wrapped).map_err(|_| Error::KeyStore {
            reason: "the key file's wrapped key is not base64url".into(),
        })
    }

    pub fn read(path: &Path) -> Result<Self> {
        let bytes = fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::not_found(
                "no profile here: the key file is missing (create a profile first)",
            ),
            _ => Error::from(e),
        })?;
        let doc: KeyFile = serde_json::from_slice(&bytes).map_err(|_| Error::KeyStore {
            reason: format!("{} is not a Carry key file", path.display()),
        })?;
        if doc.format != FORMAT || doc.version != 1 {
            return Err(Error::KeyStore {
                reason: format!("{} has an unknown key file format", path.display()),
            });
        }
        Ok(doc)
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self)?;
        write_atomic(path, &bytes)
    }
}

/// Write `bytes` to `path` atomically: a private temporary file, fsync, rename, and
/// fsync of the folder. A crash leaves either the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("carry-tmp");
    {
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        // Persist the rename itself. Not every platform can open a folder; that is fine.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
