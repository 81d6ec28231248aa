//! Helpers shared by the core's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use carry_core::{KeyStore, Profile, Result, VaultKey};
use tempfile::TempDir;

/// A key store that keeps the key as it is, so tests skip PBKDF2. Tests only.
pub struct PlainKeyStore;

impl KeyStore for PlainKeyStore {
    fn wrap(&self, key: &VaultKey) -> Result<Vec<u8>> {
        Ok(key.as_bytes().to_vec())
    }
    fn unwrap(&self, wrapped: &[u8]) -> Result<VaultKey> {
        VaultKey::from_bytes(wrapped)
    }
}

/// The shared fixtures folder beside the repository.
pub fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared")
        .join(rel)
}

/// A new profile in a temporary folder.
pub fn profile() -> (TempDir, Profile) {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = Profile::create(&dir.path().join("profile"), "Test Person", &PlainKeyStore)
        .expect("create profile");
    (dir, p)
}

/// Write `text` to a file named `name` in `dir`.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write test file");
    p
}

/// The largest Synthea patient.
pub fn synthea_large() -> PathBuf {
    let dir = shared("fixtures/fhir/synthea");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("synthea fixtures")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0));
    files.pop().expect("a synthea file")
}
