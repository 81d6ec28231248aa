//! Moving the profile to a new phone, as apps call it. The old phone starts a
//! [`MoveOut`] with `Profile.start_move_out` and shows its pairing code as a QR; the
//! new phone scans it with [`start_move_in`] and shows six digits; the person types
//! those digits into the old phone (`MoveOut.send`), and only then does the profile
//! travel, end-to-end encrypted through the endpoint's relay. The new phone restores
//! it with `MoveIn.finish` (same identity, people, grants and audit log); the old
//! phone may then wipe its copy (`MoveOut.wipe`).
//!
//! Thin on purpose: each call forwards to `carry_core::devices`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use carry_core as cc;
use carry_core::devices as cd;
use tokio::sync::Mutex;

use crate::callbacks::{Events, KeyStore, KeyStoreAdapter};
use crate::error::{CarryError, Result};
use crate::links::QrCode;
use crate::profile::{blocking, Profile};

/// A wait given in seconds, as the core takes it.
fn seconds(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

/// The old phone's side of moving this profile to a new phone. Made by
/// `Profile.start_move_out`.
///
/// Show `code` (or `qr`) for the new phone to scan, call `wait_for_new_device`, then
/// ask the person to type the six digits the new phone shows and pass them to
/// `send`. This phone never shows the digits itself: typing what the other screen
/// shows is what proves the right phone scanned the code. After a successful `send`,
/// `wipe` deletes this phone's copy. Nothing of the profile leaves before `send`
/// accepts the digits. The move keeps the profile open until it is freed itself.
#[derive(uniffi::Object)]
pub struct MoveOut {
    inner: Mutex<cd::MoveOut>,
    code: String,
    qr: QrCode,
    profile: Arc<cc::Profile>,
    sent: AtomicBool,
}

#[uniffi::export(async_runtime = "tokio")]
impl Profile {
    /// Start moving this profile to a new phone through the profile's endpoint: a
    /// pairing code to show, as text and as a QR code. Nothing of the profile leaves
    /// until `MoveOut.send` accepts the digits typed from the new phone.
    /// `InvalidInput` if no endpoint is set; `Network` if it cannot be reached.
    pub async fn start_move_out(&self) -> Result<Arc<MoveOut>> {
        let url = self.endpoint_url().await?;
        let out = cd::MoveOut::start(&url).await?;
        let qr = out.qr()?.into();
        Ok(Arc::new(MoveOut {
            code: out.code().to_string(),
            qr,
            inner: Mutex::new(out),
            profile: self.core.clone(),
            sent: AtomicBool::new(false),
        }))
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl MoveOut {
    /// The pairing code (`carry:pair:…`) for the new phone to scan or paste. It holds
    /// the endpoint and this move's public keys, no health data.
    pub fn code(&self) -> String {
        self.code.clone()
    }

    /// The pairing code as a QR code, to draw as for share links.
    pub fn qr(&self) -> QrCode {
        self.qr.clone()
    }

    /// Wait up to `wait_seconds` for the new phone to take up the code. When this
    /// returns, the new phone shows six digits: ask the person to type them here
    /// (this phone does not show them). `Expired` if no phone answered in time.
    pub async fn wait_for_new_device(&self, wait_seconds: u32) -> Result<()> {
        let mut out = self.inner.lock().await;
        out.wait_for_new_device(seconds(wait_seconds)).await?;
        Ok(())
    }

    /// Check `typed_digits` (what the person typed from the new phone's screen, with
    /// or without the space) and, if they match, send the whole profile sealed to
    /// that phone and wait up to `wait_seconds` for it to say the profile opened.
    /// Different digits are `Denied`: nothing is sent and the new phone is told to
    /// stop, so start again with a new `start_move_out`. `InvalidInput` if no new
    /// phone has answered yet (call `wait_for_new_device` first).
    pub async fn send(&self, typed_digits: String, wait_seconds: u32) -> Result<()> {
        let mut out = self.inner.lock().await;
        out.send(self.profile.clone(), &typed_digits, seconds(wait_seconds))
            .await?;
        self.sent.store(true, Ordering::Release);
        Ok(())
    }

    /// After a successful `send`: lock the profile and delete this phone's copy (the
    /// vault, its key file and every shared record kept beside it). The `Profile`
    /// object is unusable afterwards; close it. `InvalidInput` (and nothing deleted)
    /// if the profile has not reached a new phone through this move.
    pub async fn wipe(&self) -> Result<()> {
        if !self.sent.load(Ordering::Acquire) {
            return Err(CarryError::InvalidInput {
                reason: "the profile has not reached a new phone yet; nothing was wiped".into(),
            });
        }
        self.profile.lock();
        let dir = self.profile.vault().dir().to_path_buf();
        blocking(move || cd::wipe(&dir)).await
    }
}

/// The new phone's side of a move. Made by `start_move_in`.
///
/// Show `digits` for the person to type into the old phone, then call `finish` to
/// receive the profile. `finish` can be called once.
#[derive(uniffi::Object)]
pub struct MoveIn {
    inner: Mutex<Option<cd::MoveIn>>,
    digits: String,
}

/// Take up the pairing `code` the old phone shows (scanned from its QR code or
/// pasted): greets the old phone through the relay. Show `MoveIn.digits` next.
/// `InvalidInput` for a code that is not a Carry pairing code; `Network` if the
/// endpoint cannot be reached.
#[uniffi::export(async_runtime = "tokio")]
pub async fn start_move_in(code: String) -> Result<Arc<MoveIn>> {
    let incoming = cd::MoveIn::start(&code).await?;
    Ok(Arc::new(MoveIn {
        digits: incoming.digits(),
        inner: Mutex::new(Some(incoming)),
    }))
}

#[uniffi::export(async_runtime = "tokio")]
impl MoveIn {
    /// The six digits to show, written `123 456`, for the person to type into the
    /// old phone.
    pub fn digits(&self) -> String {
        self.digits.clone()
    }

    /// Wait up to `wait_seconds` for the profile and restore it into the empty
    /// `folder`, wrapping its vault key with `key_store`; the old phone is told it
    /// arrived. It has the same identity, people, grants and audit log; provider
    /// sign-ins never travel, so each provider needs a fresh sign-in. `events` is
    /// as for `Profile.open`. `Denied` if the old phone stopped the move (the digits
    /// typed there did not match); `Expired` if nothing came in time;
    /// `InvalidInput` if `finish` was already called on this move.
    #[uniffi::method(default(events = None))]
    pub async fn finish(
        &self,
        folder: String,
        key_store: Arc<dyn KeyStore>,
        wait_seconds: u32,
        events: Option<Arc<dyn Events>>,
    ) -> Result<Arc<Profile>> {
        let incoming = self
            .inner
            .lock()
            .await
            .take()
            .ok_or_else(|| CarryError::InvalidInput {
                reason: "this move was already finished or failed; start again".into(),
            })?;
        let store: Arc<dyn cc::KeyStore> = Arc::new(KeyStoreAdapter(key_store));
        let core = incoming
            .finish(&PathBuf::from(folder), store, seconds(wait_seconds))
            .await?;
        Ok(Profile::wrap(core, events))
    }
}
