//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`). Each takes
//! arbitrary bytes, feeds them to one parser or opener that inputs from outside reach,
//! and must return (with an error or not) without panicking.

use std::cell::RefCell;
use std::sync::OnceLock;

use crate::crypto::identity::Identity;

/// One identity per process, for the targets that open sealed things.
fn me() -> &'static Identity {
    static ME: OnceLock<Identity> = OnceLock::new();
    ME.get_or_init(|| match Identity::generate() {
        Ok(id) => id,
        Err(_) => std::process::abort(),
    })
}

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// The FHIR importer: `data` as a file, imported into an in-memory vault (the same
/// vault across inputs, emptied every thousand).
pub fn import(data: &[u8]) {
    thread_local! {
        static STATE: RefCell<Option<(rusqlite::Connection, tempfile::TempDir, u32)>> =
            const { RefCell::new(None) };
    }
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        if s.as_ref().is_none_or(|(_, _, n)| *n >= 1000) {
            let Ok(mut conn) = rusqlite::Connection::open_in_memory() else {
                return;
            };
            if crate::vault::migrations::migrate(&mut conn).is_err() {
                return;
            }
            let Ok(dir) = tempfile::tempdir() else {
                return;
            };
            *s = Some((conn, dir, 0));
        }
        let Some((conn, dir, n)) = s.as_mut() else {
            return;
        };
        *n += 1;
        let path = dir.path().join("input.json");
        if std::fs::write(&path, data).is_ok() {
            let _ = crate::import::import_file(conn, &path, crate::ImportOptions::default());
        }
    });
}

/// The `shlink:/` parser.
pub fn shlink(data: &[u8]) {
    if let Some(t) = text(data) {
        let _ = crate::links::link::Payload::parse(t);
    }
}

/// JWE decryption: the first 32 bytes are the key, the rest the compact JWE.
pub fn jwe(data: &[u8]) {
    if data.len() < 32 {
        return;
    }
    if let Some(t) = text(&data[32..]) {
        let _ = crate::links::jwe::decrypt(&data[..32], t);
    }
}

/// Opening a share envelope addressed to a fixed identity.
pub fn envelope(data: &[u8]) {
    let _ = crate::share::envelope::open(me(), "mailbox", "tag", data);
}

/// Parsing and verifying a grant document.
pub fn grant(data: &[u8]) {
    if let Some(t) = text(data) {
        let _ = crate::share::document::GrantDoc::parse_and_verify(t);
    }
}

/// Invite, pairing and recovery codes.
pub fn codes(data: &[u8]) {
    if let Some(t) = text(data) {
        let _ = crate::share::people::decode_invite(t);
        let _ = crate::devices::pairing::parse_code(t);
        let _ = crate::backup::code::RecoverySecret::parse(t);
    }
}

/// Reading a backup: the header, then every chunk under a fixed key.
pub fn backup(data: &[u8]) {
    crate::backup::read_for_fuzzing(data);
}

/// The content of a backup (JSON lines), loaded into an in-memory vault: whole, or
/// as an increment when the first byte is odd.
pub fn backup_content(data: &[u8]) {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    crate::backup::load_for_fuzzing(first % 2 == 1, rest);
}

/// Opening a batch from another of the person's devices, sealed to a fixed key.
pub fn device_batch(data: &[u8]) {
    if let Ok((_, plain)) = crate::devices::seal::open(b"CD1", b"carry-device-v1", me(), data) {
        let _ = serde_json::from_slice::<crate::devices::ops::Batch>(&plain);
    }
}
