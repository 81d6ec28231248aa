//! Pieces the benchmark harnesses share.
#![allow(dead_code)]

use std::time::Duration;

use carry_core::{KeyStore, VaultKey};

/// A key store that keeps the vault key as plain bytes, so that unlocking measures the
/// vault alone and not PBKDF2. Benchmark use only.
pub struct RawKeyStore;

impl KeyStore for RawKeyStore {
    fn wrap(&self, key: &VaultKey) -> carry_core::Result<Vec<u8>> {
        Ok(key.as_bytes().to_vec())
    }

    fn unwrap(&self, wrapped: &[u8]) -> carry_core::Result<VaultKey> {
        VaultKey::from_bytes(wrapped)
    }
}

/// `text` with the last 12 hex digits of every UUID XOR-ed with `variant`.
pub fn rewrite_uuids(text: &str, variant: u64) -> String {
    let mut bytes = text.as_bytes().to_vec();
    let mut i = 0;
    while variant != 0 && i + 36 <= bytes.len() {
        let starts_word = i == 0 || !bytes[i - 1].is_ascii_hexdigit();
        if !(starts_word && is_uuid(&bytes[i..i + 36])) {
            i += 1;
            continue;
        }
        let tail = &mut bytes[i + 24..i + 36];
        let old = std::str::from_utf8(tail)
            .ok()
            .and_then(|s| u64::from_str_radix(s, 16).ok())
            .expect("is_uuid checked 12 hex digits");
        tail.copy_from_slice(format!("{:012x}", (old ^ variant) & 0xffff_ffff_ffff).as_bytes());
        i += 36;
    }
    String::from_utf8(bytes).expect("ASCII-only edits keep the text UTF-8")
}

/// Whether `b` (36 bytes) is shaped like `8-4-4-4-12` hex digits.
pub fn is_uuid(b: &[u8]) -> bool {
    b.iter().enumerate().all(|(j, c)| match j {
        8 | 13 | 18 | 23 => *c == b'-',
        _ => c.is_ascii_hexdigit(),
    })
}

/// The `p`-th quantile of `samples` (nearest rank).
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    let rank = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// The Synthea patient the sync, sharing and backup benchmarks copy.
pub const JENE: &str =
    "fixtures/fhir/synthea/sotf-Jene_Cummings_8a2bb726-2f79-4940-a134-a374eef39af7.json";
/// Her Patient id, kept the same in every copy.
pub const JENE_ID: &str = "b13bd1f1-78c4-4cbe-b611-3bedd3bb796b";

/// One collection Bundle holding `copies` copies of Jene's record, each with fresh
/// ids but all about the same Patient, written to `dir/record.json`.
pub fn copies_of_jene(
    shared: &std::path::Path,
    dir: &std::path::Path,
    copies: u64,
) -> std::path::PathBuf {
    let text = std::fs::read_to_string(shared.join(JENE)).expect("read the Synthea file");
    let v: serde_json::Value = serde_json::from_str(&text).expect("parse the Synthea file");
    let mut entries = Vec::new();
    for k in 0..copies {
        let copy = rewrite_uuids(&serde_json::to_string(&v["entry"]).expect("entries"), k)
            .replace(&rewrite_uuids(JENE_ID, k), JENE_ID);
        let arr: Vec<serde_json::Value> = serde_json::from_str(&copy).expect("copy");
        entries.extend(arr);
    }
    let bundle =
        serde_json::json!({"resourceType": "Bundle", "type": "collection", "entry": entries});
    let path = dir.join("record.json");
    std::fs::write(&path, bundle.to_string()).expect("write the Bundle");
    path
}

/// A reference endpoint started for a benchmark (the release build), stopped on drop.
pub struct Server {
    child: std::process::Child,
    /// Its base URL.
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start the release build of the endpoint on `db`, on a free loopback port.
pub fn serve(db: &str) -> Server {
    use std::io::{BufRead, BufReader};
    let bin =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/carry-endpoint");
    assert!(
        bin.exists(),
        "{} is missing: the make target builds it first",
        bin.display()
    );
    let mut child = std::process::Command::new(bin)
        .args(["serve", "--db", db, "--listen", "127.0.0.1:0"])
        .env("CARRY_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the endpoint");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the endpoint's first line");
    Server {
        child,
        url: line.trim().trim_start_matches("listening on ").to_string(),
    }
}
