//! HPKE seal and open throughput on 1 MB payloads (DESIGN.md: above 1 GB/s), for both
//! AEADs, in auth mode as envelopes to people use it. Run with `make bench-hpke`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
use std::time::Instant;

use carry_core::crypto::hpke::{self, Aead, SenderOptions};

const MB: usize = 1 << 20;
const ROUNDS: usize = 200;

fn main() {
    let (sk_r, pk_r) = hpke::derive_key_pair(b"bench recipient key material 32b").expect("key");
    let (sk_s, pk_s) = hpke::derive_key_pair(b"bench sender key material, 32 b!").expect("key");
    let payload = vec![0x5a_u8; MB];
    println!("| figure | result |\n|---|---|");
    for aead in [Aead::Aes256Gcm, Aead::ChaCha20Poly1305] {
        let options = SenderOptions {
            sender: Some(&sk_s),
            psk: None,
        };
        let mut best_seal = f64::MAX;
        let mut best_open = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            let mut sealed = Vec::new();
            for _ in 0..ROUNDS {
                sealed = hpke::seal(aead, &pk_r, b"info", b"aad", &payload, options).expect("seal");
            }
            best_seal = best_seal.min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            for _ in 0..ROUNDS {
                let pt = hpke::open(aead, &sk_r, b"info", b"aad", &sealed, Some(&pk_s), None)
                    .expect("open");
                assert_eq!(pt.len(), MB);
            }
            best_open = best_open.min(t.elapsed().as_secs_f64());
        }
        let gbps = |secs: f64| (ROUNDS * MB) as f64 / secs / 1e9;
        println!(
            "| HPKE auth mode, {aead:?}, 1 MB messages (best of 3 × {ROUNDS}) | seal {:.2} GB/s, open {:.2} GB/s |",
            gbps(best_seal),
            gbps(best_open)
        );
    }
}
