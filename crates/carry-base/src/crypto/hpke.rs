//! HPKE, RFC 9180, for one KEM and KDF: DHKEM(X25519, HKDF-SHA256) (`0x0020`) with
//! HKDF-SHA256 (`0x0001`), and either AES-256-GCM (`0x0002`) or ChaCha20-Poly1305
//! (`0x0003`). All four modes: base, psk, auth and auth_psk. Single-shot helpers and
//! sender/receiver contexts with the exporter.
//!
//! HKDF is written out over ring's HMAC-SHA256 because HPKE's labelled extract needs
//! the pseudorandom key itself, which ring's `hkdf` keeps opaque. Every secret is
//! zeroized when dropped.

use ring::aead::{self, LessSafeKey, Nonce, UnboundKey};
use ring::hmac;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};

const KEM_ID: u16 = 0x0020;
const KDF_ID: u16 = 0x0001;
/// Length of a key, a public key, an encapsulation and a shared secret.
pub const KEY_LEN: usize = 32;
const NH: usize = 32;
const NN: usize = 12;

/// The AEAD of a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aead {
    /// AES-256-GCM (`0x0002`).
    Aes256Gcm,
    /// ChaCha20-Poly1305 (`0x0003`).
    ChaCha20Poly1305,
}

impl Aead {
    fn id(self) -> u16 {
        match self {
            Aead::Aes256Gcm => 0x0002,
            Aead::ChaCha20Poly1305 => 0x0003,
        }
    }

    fn algorithm(self) -> &'static aead::Algorithm {
        match self {
            Aead::Aes256Gcm => &aead::AES_256_GCM,
            Aead::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
        }
    }

    /// Parse an RFC 9180 AEAD id.
    pub fn from_id(id: u16) -> Result<Self> {
        match id {
            0x0002 => Ok(Aead::Aes256Gcm),
            0x0003 => Ok(Aead::ChaCha20Poly1305),
            _ => Err(Error::invalid(format!(
                "unsupported HPKE AEAD id {id:#06x}"
            ))),
        }
    }
}

/// The HPKE mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No sender authentication.
    Base = 0,
    /// A pre-shared key.
    Psk = 1,
    /// The sender authenticated by its static key.
    Auth = 2,
    /// Both.
    AuthPsk = 3,
}

/// An X25519 private key. Zeroized on drop; never printed.
#[derive(Clone)]
pub struct PrivateKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(…)")
    }
}

/// An X25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub [u8; KEY_LEN]);

impl PrivateKey {
    /// From its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let arr: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| Error::invalid("an X25519 private key is 32 bytes"))?;
        Ok(PrivateKey(Zeroizing::new(arr)))
    }

    /// Its 32 bytes (handle with care).
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        let s = x25519_dalek::StaticSecret::from(*self.0);
        PublicKey(x25519_dalek::PublicKey::from(&s).to_bytes())
    }

    /// A fresh key from the system's CSPRNG.
    pub fn generate() -> Result<Self> {
        let mut b = Zeroizing::new([0u8; KEY_LEN]);
        crate::keys::fill_random(b.as_mut())?;
        Ok(PrivateKey(b))
    }

    fn dh(&self, pk: &PublicKey) -> Result<Zeroizing<[u8; KEY_LEN]>> {
        let s = x25519_dalek::StaticSecret::from(*self.0);
        let shared = s.diffie_hellman(&x25519_dalek::PublicKey::from(pk.0));
        if !shared.was_contributory() {
            return Err(Error::invalid("the public key is not a valid X25519 key"));
        }
        Ok(Zeroizing::new(*shared.as_bytes()))
    }
}

impl PublicKey {
    /// From its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Ok(PublicKey(bytes.try_into().map_err(|_| {
            Error::invalid("an X25519 public key is 32 bytes")
        })?))
    }
}

// ---------------------------------------------------------------------------------
// HKDF-SHA256 and HPKE's labelled forms.

fn hmac(key: &[u8], parts: &[&[u8]]) -> Zeroizing<[u8; NH]> {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&k);
    for p in parts {
        ctx.update(p);
    }
    let mut out = Zeroizing::new([0u8; NH]);
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

fn extract(salt: &[u8], ikm: &[&[u8]]) -> Zeroizing<[u8; NH]> {
    let zeros = [0u8; NH];
    hmac(if salt.is_empty() { &zeros } else { salt }, ikm)
}

fn expand(prk: &[u8], info: &[&[u8]], len: usize) -> Result<Zeroizing<Vec<u8>>> {
    if len > 255 * NH {
        return Err(Error::invalid("HKDF output too long"));
    }
    let mut out = Zeroizing::new(Vec::with_capacity(len));
    let mut t: Zeroizing<[u8; NH]> = Zeroizing::new([0u8; NH]);
    let mut have_t = false;
    let mut counter = 1u8;
    while out.len() < len {
        let mut parts: Vec<&[u8]> = Vec::with_capacity(info.len() + 2);
        if have_t {
            parts.push(t.as_ref());
        }
        parts.extend_from_slice(info);
        let c = [counter];
        parts.push(&c);
        t = hmac(prk, &parts);
        have_t = true;
        let take = (len - out.len()).min(NH);
        out.extend_from_slice(&t[..take]);
        counter = counter.wrapping_add(1);
    }
    Ok(out)
}

fn labeled_extract(suite: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> Zeroizing<[u8; NH]> {
    extract(salt, &[b"HPKE-v1", suite, label, ikm])
}

fn labeled_expand(
    suite: &[u8],
    prk: &[u8],
    label: &[u8],
    info: &[u8],
    len: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    let l = u16::try_from(len)
        .map_err(|_| Error::invalid("HKDF output too long"))?
        .to_be_bytes();
    expand(prk, &[&l, b"HPKE-v1", suite, label, info], len)
}

fn kem_suite() -> [u8; 5] {
    let id = KEM_ID.to_be_bytes();
    [b'K', b'E', b'M', id[0], id[1]]
}

fn hpke_suite(aead: Aead) -> [u8; 10] {
    let (k, f, a) = (
        KEM_ID.to_be_bytes(),
        KDF_ID.to_be_bytes(),
        aead.id().to_be_bytes(),
    );
    [b'H', b'P', b'K', b'E', k[0], k[1], f[0], f[1], a[0], a[1]]
}

// ---------------------------------------------------------------------------------
// DHKEM(X25519, HKDF-SHA256).

/// DeriveKeyPair (RFC 9180 §7.1.3): a key pair from input keying material.
pub fn derive_key_pair(ikm: &[u8]) -> Result<(PrivateKey, PublicKey)> {
    let suite = kem_suite();
    let prk = labeled_extract(&suite, b"", b"dkp_prk", ikm);
    let sk = labeled_expand(&suite, prk.as_ref(), b"sk", b"", KEY_LEN)?;
    let sk = PrivateKey::from_bytes(&sk)?;
    let pk = sk.public_key();
    Ok((sk, pk))
}

fn extract_and_expand(dh: &[u8], kem_context: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let suite = kem_suite();
    let prk = labeled_extract(&suite, b"", b"eae_prk", dh);
    labeled_expand(&suite, prk.as_ref(), b"shared_secret", kem_context, NH)
}

/// Encap / AuthEncap with the ephemeral key `eph`.
fn encap(
    pk_r: &PublicKey,
    eph: &PrivateKey,
    sender: Option<&PrivateKey>,
) -> Result<(Zeroizing<Vec<u8>>, [u8; KEY_LEN])> {
    let enc = eph.public_key().0;
    let mut dh = Zeroizing::new(Vec::with_capacity(2 * KEY_LEN));
    dh.extend_from_slice(eph.dh(pk_r)?.as_ref());
    let mut ctx = Vec::with_capacity(3 * KEY_LEN);
    ctx.extend_from_slice(&enc);
    ctx.extend_from_slice(&pk_r.0);
    if let Some(s) = sender {
        dh.extend_from_slice(s.dh(pk_r)?.as_ref());
        ctx.extend_from_slice(&s.public_key().0);
    }
    Ok((extract_and_expand(&dh, &ctx)?, enc))
}

/// Decap / AuthDecap.
fn decap(enc: &[u8], sk_r: &PrivateKey, sender: Option<&PublicKey>) -> Result<Zeroizing<Vec<u8>>> {
    let pk_e = PublicKey::from_bytes(enc)?;
    let mut dh = Zeroizing::new(Vec::with_capacity(2 * KEY_LEN));
    dh.extend_from_slice(sk_r.dh(&pk_e)?.as_ref());
    let mut ctx = Vec::with_capacity(3 * KEY_LEN);
    ctx.extend_from_slice(enc);
    ctx.extend_from_slice(&sk_r.public_key().0);
    if let Some(s) = sender {
        dh.extend_from_slice(sk_r.dh(s)?.as_ref());
        ctx.extend_from_slice(&s.0);
    }
    extract_and_expand(&dh, &ctx)
}

// ---------------------------------------------------------------------------------
// The key schedule and contexts.

/// A pre-shared key and its id (psk and auth_psk modes).
#[derive(Clone, Copy)]
pub struct Psk<'a> {
    /// The key: at least 32 bytes of entropy.
    pub psk: &'a [u8],
    /// Its id.
    pub id: &'a [u8],
}

/// What both sides derive: the AEAD key, the base nonce and the exporter secret.
struct Schedule {
    aead: Aead,
    key: Zeroizing<Vec<u8>>,
    base_nonce: [u8; NN],
    exporter_secret: Zeroizing<Vec<u8>>,
}

fn key_schedule(
    mode: Mode,
    aead: Aead,
    shared_secret: &[u8],
    info: &[u8],
    psk: Option<Psk<'_>>,
) -> Result<Schedule> {
    let (psk_bytes, psk_id): (&[u8], &[u8]) = match psk {
        Some(p) => (p.psk, p.id),
        None => (b"", b""),
    };
    let uses_psk = matches!(mode, Mode::Psk | Mode::AuthPsk);
    if uses_psk != (!psk_bytes.is_empty() && !psk_id.is_empty()) {
        return Err(Error::invalid(
            "a psk and its id are required in psk modes, and only there",
        ));
    }
    let suite = hpke_suite(aead);
    let psk_id_hash = labeled_extract(&suite, b"", b"psk_id_hash", psk_id);
    let info_hash = labeled_extract(&suite, b"", b"info_hash", info);
    let mut context = Vec::with_capacity(1 + 2 * NH);
    context.push(mode as u8);
    context.extend_from_slice(psk_id_hash.as_ref());
    context.extend_from_slice(info_hash.as_ref());
    let secret = labeled_extract(&suite, shared_secret, b"secret", psk_bytes);
    let nk = aead.algorithm().key_len();
    let key = labeled_expand(&suite, secret.as_ref(), b"key", &context, nk)?;
    let nonce = labeled_expand(&suite, secret.as_ref(), b"base_nonce", &context, NN)?;
    let exporter_secret = labeled_expand(&suite, secret.as_ref(), b"exp", &context, NH)?;
    let mut base_nonce = [0u8; NN];
    base_nonce.copy_from_slice(&nonce);
    Ok(Schedule {
        aead,
        key,
        base_nonce,
        exporter_secret,
    })
}

/// State shared by both ends of an HPKE context.
struct Context {
    schedule: Schedule,
    key: LessSafeKey,
    seq: u64,
}

impl Drop for Context {
    fn drop(&mut self) {
        self.schedule.base_nonce.zeroize();
    }
}

impl Context {
    fn new(schedule: Schedule) -> Result<Self> {
        let unbound = UnboundKey::new(schedule.aead.algorithm(), &schedule.key)
            .map_err(|_| Error::internal("HPKE: bad AEAD key length"))?;
        Ok(Context {
            schedule,
            key: LessSafeKey::new(unbound),
            seq: 0,
        })
    }

    fn nonce(&self) -> Result<Nonce> {
        if self.seq == u64::MAX {
            return Err(Error::invalid(
                "HPKE: the message limit of this context is reached",
            ));
        }
        let mut n = self.schedule.base_nonce;
        for (i, b) in self.seq.to_be_bytes().iter().enumerate() {
            n[NN - 8 + i] ^= b;
        }
        Ok(Nonce::assume_unique_for_key(n))
    }

    fn export(&self, exporter_context: &[u8], len: usize) -> Result<Zeroizing<Vec<u8>>> {
        let suite = hpke_suite(self.schedule.aead);
        labeled_expand(
            &suite,
            &self.schedule.exporter_secret,
            b"sec",
            exporter_context,
            len,
        )
    }
}

/// The sender's side of an HPKE context.
pub struct SenderContext(Context);

/// The receiver's side of an HPKE context.
pub struct ReceiverContext(Context);

impl SenderContext {
    /// Encrypt the next message.
    pub fn seal(&mut self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let nonce = self.0.nonce()?;
        let mut buf = plaintext.to_vec();
        self.0
            .key
            .seal_in_place_append_tag(nonce, aead::Aad::from(aad), &mut buf)
            .map_err(|_| Error::internal("HPKE: seal failed"))?;
        self.0.seq += 1;
        Ok(buf)
    }

    /// A secret derived from the context (the exporter).
    pub fn export(&self, exporter_context: &[u8], len: usize) -> Result<Zeroizing<Vec<u8>>> {
        self.0.export(exporter_context, len)
    }
}

impl ReceiverContext {
    /// Decrypt the next message. `InvalidInput` when it was tampered with, sealed to
    /// someone else, or is out of order; the context is then unchanged.
    pub fn open(&mut self, aad: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let nonce = self.0.nonce()?;
        let mut buf = ciphertext.to_vec();
        let len = self
            .0
            .key
            .open_in_place(nonce, aead::Aad::from(aad), &mut buf)
            .map_err(|_| {
                Error::invalid("the sealed message does not open: tampered with, out of order, or not for this key")
            })?
            .len();
        buf.truncate(len);
        self.0.seq += 1;
        Ok(Zeroizing::new(buf))
    }

    /// A secret derived from the context (the exporter).
    pub fn export(&self, exporter_context: &[u8], len: usize) -> Result<Zeroizing<Vec<u8>>> {
        self.0.export(exporter_context, len)
    }
}

/// Who is sealing, and how.
#[derive(Clone, Copy, Default)]
pub struct SenderOptions<'a> {
    /// Authenticate as this static key (auth modes).
    pub sender: Option<&'a PrivateKey>,
    /// A pre-shared key (psk modes).
    pub psk: Option<Psk<'a>>,
}

fn mode_of(auth: bool, psk: bool) -> Mode {
    match (auth, psk) {
        (false, false) => Mode::Base,
        (false, true) => Mode::Psk,
        (true, false) => Mode::Auth,
        (true, true) => Mode::AuthPsk,
    }
}

/// Set up a sender context to `pk_r` with the ephemeral key `eph` (tests pass a
/// derived one; [`setup_sender`] makes a fresh one).
fn setup_sender_with(
    aead: Aead,
    pk_r: &PublicKey,
    info: &[u8],
    options: SenderOptions<'_>,
    eph: &PrivateKey,
) -> Result<([u8; KEY_LEN], SenderContext)> {
    let mode = mode_of(options.sender.is_some(), options.psk.is_some());
    let (shared, enc) = encap(pk_r, eph, options.sender)?;
    let schedule = key_schedule(mode, aead, &shared, info, options.psk)?;
    Ok((enc, SenderContext(Context::new(schedule)?)))
}

/// Set up a sender context to `pk_r`: returns the encapsulated key to send along.
pub fn setup_sender(
    aead: Aead,
    pk_r: &PublicKey,
    info: &[u8],
    options: SenderOptions<'_>,
) -> Result<([u8; KEY_LEN], SenderContext)> {
    setup_sender_with(aead, pk_r, info, options, &PrivateKey::generate()?)
}

/// Set up a receiver context from `enc`. In auth modes, `sender` is the public key
/// the message must come from.
pub fn setup_receiver(
    aead: Aead,
    enc: &[u8],
    sk_r: &PrivateKey,
    info: &[u8],
    sender: Option<&PublicKey>,
    psk: Option<Psk<'_>>,
) -> Result<ReceiverContext> {
    let mode = mode_of(sender.is_some(), psk.is_some());
    let shared = decap(enc, sk_r, sender)?;
    let schedule = key_schedule(mode, aead, &shared, info, psk)?;
    Ok(ReceiverContext(Context::new(schedule)?))
}

/// Seal one message to `pk_r`: `enc ‖ ciphertext`.
pub fn seal(
    aead: Aead,
    pk_r: &PublicKey,
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    options: SenderOptions<'_>,
) -> Result<Vec<u8>> {
    let (enc, mut ctx) = setup_sender(aead, pk_r, info, options)?;
    let mut out = enc.to_vec();
    out.extend(ctx.seal(aad, plaintext)?);
    Ok(out)
}

/// Open one message made by [`seal`].
pub fn open(
    aead: Aead,
    sk_r: &PrivateKey,
    info: &[u8],
    aad: &[u8],
    sealed: &[u8],
    sender: Option<&PublicKey>,
    psk: Option<Psk<'_>>,
) -> Result<Zeroizing<Vec<u8>>> {
    if sealed.len() < KEY_LEN {
        return Err(Error::invalid("the sealed message is too short"));
    }
    let (enc, ct) = sealed.split_at(KEY_LEN);
    setup_receiver(aead, enc, sk_r, info, sender, psk)?.open(aad, ct)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn hex(v: &Value) -> Vec<u8> {
        ::hex::decode(v.as_str().unwrap()).unwrap()
    }

    fn vectors() -> Vec<Value> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("../../shared/vectors/hpke-rfc9180-x25519-sha256.json");
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
    }

    #[test]
    fn every_rfc9180_vector_passes() {
        let all = vectors();
        assert_eq!(all.len(), 8);
        for v in &all {
            let aead = Aead::from_id(v["aead_id"].as_u64().unwrap() as u16).unwrap();
            let mode = v["mode"].as_u64().unwrap();
            let what = format!("mode {mode}, aead {aead:?}");
            let (sk_e, pk_e) = derive_key_pair(&hex(&v["ikmE"])).unwrap();
            let (sk_r, pk_r) = derive_key_pair(&hex(&v["ikmR"])).unwrap();
            assert_eq!(sk_e.as_bytes().to_vec(), hex(&v["skEm"]), "{what}: skEm");
            assert_eq!(pk_e.0.to_vec(), hex(&v["pkEm"]), "{what}: pkEm");
            assert_eq!(sk_r.as_bytes().to_vec(), hex(&v["skRm"]), "{what}: skRm");
            assert_eq!(pk_r.0.to_vec(), hex(&v["pkRm"]), "{what}: pkRm");
            let sender = v.get("ikmS").map(|ikm| derive_key_pair(&hex(ikm)).unwrap());
            if let Some((sk_s, pk_s)) = &sender {
                assert_eq!(sk_s.as_bytes().to_vec(), hex(&v["skSm"]), "{what}: skSm");
                assert_eq!(pk_s.0.to_vec(), hex(&v["pkSm"]), "{what}: pkSm");
            }
            let (psk, psk_id) = (v.get("psk").map(hex), v.get("psk_id").map(hex));
            let psk = psk
                .as_deref()
                .zip(psk_id.as_deref())
                .map(|(p, i)| Psk { psk: p, id: i });
            let info = hex(&v["info"]);

            // The KEM and the key schedule, step by step.
            let (shared, enc) = encap(&pk_r, &sk_e, sender.as_ref().map(|s| &s.0)).unwrap();
            assert_eq!(enc.to_vec(), hex(&v["enc"]), "{what}: enc");
            assert_eq!(
                shared.to_vec(),
                hex(&v["shared_secret"]),
                "{what}: shared_secret"
            );
            let decapped = decap(&enc, &sk_r, sender.as_ref().map(|s| &s.1)).unwrap();
            assert_eq!(decapped.to_vec(), hex(&v["shared_secret"]), "{what}: decap");
            let m = mode_of(sender.is_some(), psk.is_some());
            assert_eq!(m as u64, mode, "{what}: mode");
            let s = key_schedule(m, aead, &shared, &info, psk).unwrap();
            assert_eq!(s.key.to_vec(), hex(&v["key"]), "{what}: key");
            assert_eq!(
                s.base_nonce.to_vec(),
                hex(&v["base_nonce"]),
                "{what}: base_nonce"
            );
            assert_eq!(
                s.exporter_secret.to_vec(),
                hex(&v["exporter_secret"]),
                "{what}: exporter_secret"
            );

            // Every encryption, in sequence, both ways.
            let options = SenderOptions {
                sender: sender.as_ref().map(|s| &s.0),
                psk,
            };
            let (enc2, mut tx) = setup_sender_with(aead, &pk_r, &info, options, &sk_e).unwrap();
            assert_eq!(enc2, enc);
            let mut rx =
                setup_receiver(aead, &enc, &sk_r, &info, sender.as_ref().map(|s| &s.1), psk)
                    .unwrap();
            let encryptions = v["encryptions"].as_array().unwrap();
            assert!(encryptions.len() > 200);
            for (i, e) in encryptions.iter().enumerate() {
                let ct = tx.seal(&hex(&e["aad"]), &hex(&e["pt"])).unwrap();
                assert_eq!(ct, hex(&e["ct"]), "{what}: encryption {i}");
                let pt = rx.open(&hex(&e["aad"]), &ct).unwrap();
                assert_eq!(pt.to_vec(), hex(&e["pt"]), "{what}: decryption {i}");
            }
            // And every export.
            for x in v["exports"].as_array().unwrap() {
                let len = x["L"].as_u64().unwrap() as usize;
                let got = tx.export(&hex(&x["exporter_context"]), len).unwrap();
                assert_eq!(got.to_vec(), hex(&x["exported_value"]), "{what}: export");
                let got = rx.export(&hex(&x["exporter_context"]), len).unwrap();
                assert_eq!(
                    got.to_vec(),
                    hex(&x["exported_value"]),
                    "{what}: export (receiver)"
                );
            }
        }
    }

    #[test]
    fn tampering_the_wrong_key_and_the_wrong_sender_are_refused() {
        let (sk_r, pk_r) = derive_key_pair(b"recipient key material, 32 bytes!").unwrap();
        let (sk_s, pk_s) = derive_key_pair(b"sender key material, 32 bytes!!!").unwrap();
        let (_, pk_other) = derive_key_pair(b"someone else's key material 32b!").unwrap();
        for aead in [Aead::Aes256Gcm, Aead::ChaCha20Poly1305] {
            let auth = SenderOptions {
                sender: Some(&sk_s),
                psk: None,
            };
            let sealed = seal(aead, &pk_r, b"info", b"aad", b"a blood pressure", auth).unwrap();
            let ok = open(aead, &sk_r, b"info", b"aad", &sealed, Some(&pk_s), None).unwrap();
            assert_eq!(ok.as_slice(), b"a blood pressure");
            let mut bad = sealed.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(matches!(
                open(aead, &sk_r, b"info", b"aad", &bad, Some(&pk_s), None),
                Err(Error::InvalidInput { .. })
            ));
            assert!(open(
                aead,
                &sk_r,
                b"info",
                b"other aad",
                &sealed,
                Some(&pk_s),
                None
            )
            .is_err());
            assert!(open(
                aead,
                &sk_r,
                b"other info",
                b"aad",
                &sealed,
                Some(&pk_s),
                None
            )
            .is_err());
            assert!(open(aead, &sk_r, b"info", b"aad", &sealed, Some(&pk_other), None).is_err());
            assert!(open(aead, &sk_r, b"info", b"aad", &sealed, None, None).is_err());
            assert!(open(aead, &sk_r, b"info", b"aad", &sealed[..10], None, None).is_err());
        }
        // An all-zero public key (a low-order point) is refused, not used.
        assert!(seal(
            Aead::Aes256Gcm,
            &PublicKey([0; 32]),
            b"",
            b"",
            b"x",
            SenderOptions::default()
        )
        .is_err());
        // Out of order: the second message does not open first.
        let (enc, mut tx) =
            setup_sender(Aead::Aes256Gcm, &pk_r, b"", SenderOptions::default()).unwrap();
        let first = tx.seal(b"", b"one").unwrap();
        let second = tx.seal(b"", b"two").unwrap();
        let mut rx = setup_receiver(Aead::Aes256Gcm, &enc, &sk_r, b"", None, None).unwrap();
        assert!(rx.open(b"", &second).is_err());
        assert_eq!(rx.open(b"", &first).unwrap().as_slice(), b"one");
        assert_eq!(rx.open(b"", &second).unwrap().as_slice(), b"two");
    }
}
