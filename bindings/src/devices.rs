//! Moving the profile to a new phone, and keeping it on a second device, as apps call
//! it. The old phone starts a [`MoveOut`] with `Profile.start_move_out` and shows its
//! pairing code as a QR; the new phone scans it with [`start_move_in`] and shows six
//! digits; the person types those digits into the old phone (`MoveOut.send`), and
//! only then does the profile travel, end-to-end encrypted through the endpoint's
//! relay. The new phone restores it with `MoveIn.finish` (same identity, people,
//! grants and audit log); the old phone may then wipe its copy (`MoveOut.wipe`).
//!
//! Adding a second device (a tablet) pairs the same way, with
//! `Profile.start_add_device` on the device that holds the profile and
//! [`start_join`] on the new one; both keep the profile, and the relay exchange
//! (`Profile.exchange`) keeps them in step. `Profile.devices`, `remove_device` and
//! `set_primary_device` manage the list.
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

/// The old phone's side of moving this profile to a new phone (made by
/// `Profile.start_move_out`), or of adding another device to it (made by
/// `Profile.start_add_device`).
///
/// Show `code` (or `qr`) for the new phone to scan, call `wait_for_new_device`, then
/// ask the person to type the six digits the new phone shows and pass them to
/// `send`. This phone never shows the digits itself: typing what the other screen
/// shows is what proves the right phone scanned the code. After a successful `send`,
/// `wipe` deletes this phone's copy (after a move only: adding a device keeps the
/// profile on both). Nothing of the profile leaves before `send` accepts the digits.
/// The move keeps the profile open until it is freed itself.
#[derive(uniffi::Object)]
pub struct MoveOut {
    inner: Mutex<cd::MoveOut>,
    code: String,
    qr: QrCode,
    profile: Arc<cc::Profile>,
    sent: AtomicBool,
    /// Made by `start_add_device`: not a move, so never wiped.
    adding: bool,
}

impl MoveOut {
    pub(crate) fn wrap(
        out: cd::MoveOut,
        profile: Arc<cc::Profile>,
        adding: bool,
    ) -> Result<Arc<MoveOut>> {
        let qr = out.qr()?.into();
        Ok(Arc::new(MoveOut {
            code: out.code().to_string(),
            qr,
            inner: Mutex::new(out),
            profile,
            sent: AtomicBool::new(false),
            adding,
        }))
    }
}

/// One of the person's devices holding this profile.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Device {
    /// Its id (the short handle of its key), to name it in `remove_device` and
    /// `set_primary_device`.
    pub id: String,
    /// The name the person gave it (`start_add_device`, `start_join`).
    pub name: String,
    /// Whether it is the device asking.
    pub this_device: bool,
    /// Whether it is the primary: the one device that talks to other people's
    /// devices (carers, invites); the others send it their changes.
    pub primary: bool,
    /// When it joined (Unix seconds).
    pub added_at: i64,
    /// When it was removed (Unix seconds), if it was; a removed device gets nothing
    /// more and what it sends is refused.
    pub removed_at: Option<i64>,
}

impl From<cd::Device> for Device {
    fn from(d: cd::Device) -> Self {
        Device {
            id: d.id,
            name: d.name,
            this_device: d.this_device,
            primary: d.primary,
            added_at: d.added_at,
            removed_at: d.removed_at,
        }
    }
}

/// What one exchange did between the person's own devices (part of
/// `ExchangeReport`). All zero while the profile is on one device only.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DevicesReport {
    /// Batches of changes taken from the other devices.
    pub batches_in: u64,
    /// Changes in them.
    pub changes_in: u64,
    /// Batches sent to the other devices.
    pub batches_out: u64,
    /// Batches refused (from a removed or unknown device, replayed, or damaged).
    pub refused: u64,
    /// Devices (by name) whose relay mailbox was full: their batches wait, in order,
    /// for a later exchange.
    pub full: Vec<String>,
}

impl From<cd::DevicesReport> for DevicesReport {
    fn from(r: cd::DevicesReport) -> Self {
        DevicesReport {
            batches_in: r.batches_in,
            changes_in: r.changes_in,
            batches_out: r.batches_out,
            refused: r.refused,
            full: r.full,
        }
    }
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
        MoveOut::wrap(out, self.core.clone(), false)
    }

    /// Start adding another device (a tablet, a second phone) to this profile
    /// through the profile's endpoint: a pairing code to show, as for a move, for
    /// the other device to take up with `start_join`. Then `wait_for_new_device` and
    /// `send` the digits it shows, as for a move; both devices keep the profile and
    /// `exchange` keeps them in step. `my_name` names this device in the list if it
    /// is the profile's first (it is then the primary). There is no `wipe` after
    /// this. `InvalidInput` if no endpoint is set; `Network` if it cannot be reached.
    pub async fn start_add_device(&self, my_name: String) -> Result<Arc<MoveOut>> {
        let url = self.endpoint_url().await?;
        let out = cd::MoveOut::add_device(&url, &my_name).await?;
        MoveOut::wrap(out, self.core.clone(), true)
    }

    /// The person's devices holding this profile, removed ones included (oldest
    /// first). Empty while the profile is on this device only.
    pub async fn devices(&self) -> Result<Vec<Device>> {
        let core = self.core.clone();
        let list = blocking(move || cd::list(&core)).await?;
        Ok(list.into_iter().map(Into::into).collect())
    }

    /// Remove device `id` from the profile: nothing more is sent to it or taken from
    /// it (the others hear of it at their next `exchange`), and the profile's keys
    /// and recovery code are replaced, so what it still holds no longer acts as the
    /// person: the people the profile knows get the new keys, and the old ones stop
    /// signing in at the endpoint after this device's next `exchange` (it becomes the
    /// primary). Returns the new recovery code: ask the person to write it down (the
    /// old one opens no later backup). What the removed device already holds stays on
    /// it. `InvalidInput` for this device itself (remove it from another one, or wipe
    /// it); `NotFound` for an unknown id; `Revoked` if already removed.
    pub async fn remove_device(&self, id: String) -> Result<String> {
        let core = self.core.clone();
        let code = blocking(move || cd::remove(&core, &id)).await?;
        Ok(code.to_string())
    }

    /// Make device `id` the primary, the one that talks to other people's devices,
    /// from its next `exchange`. `NotFound` for an unknown id; `Revoked` for a
    /// removed device.
    pub async fn set_primary_device(&self, id: String) -> Result<()> {
        let core = self.core.clone();
        blocking(move || cd::set_primary(&core, &id)).await
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl MoveOut {
    /// The pairing code (`carry:pair:…`) for the new phone (or device) to scan or
    /// paste. It holds the endpoint and this pairing's public keys, no health data.
    pub fn code(&self) -> String {
        self.code.clone()
    }

    /// The pairing code as a QR code, to draw as for share links.
    pub fn qr(&self) -> QrCode {
        self.qr.clone()
    }

    /// Wait up to `wait_seconds` for the new phone (or device) to take up the code.
    /// When this returns, it shows six digits: ask the person to type them here
    /// (this phone does not show them). `Expired` if no device answered in time.
    pub async fn wait_for_new_device(&self, wait_seconds: u32) -> Result<()> {
        let mut out = self.inner.lock().await;
        out.wait_for_new_device(seconds(wait_seconds)).await?;
        Ok(())
    }

    /// Check `typed_digits` (what the person typed from the new phone's screen, with
    /// or without the space) and, if they match, send the whole profile sealed to
    /// that phone and wait up to `wait_seconds` for it to say the profile opened.
    /// Different digits are `Denied`: nothing is sent and the new phone is told to
    /// stop, so start again with a new `start_move_out` (or `start_add_device`).
    /// `InvalidInput` if no new phone has answered yet (call `wait_for_new_device`
    /// first). When adding a device, this device lists the new one among the
    /// profile's devices before sending.
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
    /// if the profile has not reached a new phone through this move, or if this
    /// `MoveOut` added a device (`start_add_device`): that is not a move, and both
    /// devices keep the profile.
    pub async fn wipe(&self) -> Result<()> {
        if self.adding {
            return Err(CarryError::InvalidInput {
                reason: "this added a device rather than moving the profile: both devices keep it, and nothing was wiped".into(),
            });
        }
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

/// The new phone's side of a move (made by `start_move_in`), or a new device's side
/// of joining the profile (made by `start_join`).
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

/// Take up the pairing `code` an existing device of the person shows after
/// `Profile.start_add_device`, naming this device `name` (1 to 60 characters) in the
/// profile's device list. Show `MoveIn.digits` next, then `finish` as for a move:
/// this device then holds the profile too, and `exchange` keeps them in step.
/// `InvalidInput` for a bad name, or a code that is not a Carry pairing code for
/// adding a device (a move's code goes to `start_move_in`); `Network` if the
/// endpoint cannot be reached.
#[uniffi::export(async_runtime = "tokio")]
pub async fn start_join(code: String, name: String) -> Result<Arc<MoveIn>> {
    let incoming = cd::MoveIn::join(&code, &name).await?;
    Ok(Arc::new(MoveIn {
        digits: incoming.digits(),
        inner: Mutex::new(Some(incoming)),
    }))
}

#[uniffi::export(async_runtime = "tokio")]
impl MoveIn {
    /// The six digits to show, written `123 456`, for the person to type into the
    /// old phone (or the device that added this one).
    pub fn digits(&self) -> String {
        self.digits.clone()
    }

    /// Wait up to `wait_seconds` for the profile and restore it into the empty
    /// `folder`, wrapping its vault key with `key_store`; the old phone is told it
    /// arrived. It has the same identity, people, grants and audit log; provider
    /// sign-ins never travel, so each provider needs a fresh sign-in. When joining
    /// (`start_join`), this device is listed among the profile's devices, not as the
    /// primary. `events` is as for `Profile.open`. `Denied` if the old phone stopped the move (the digits
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
