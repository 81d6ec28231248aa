//! Foreign traits the app implements, and their adapters to the core.
//!
//! They stay small and synchronous. The core never calls them while it holds a store
//! lock: key stores are called before the vault opens, and events are delivered from
//! a separate thread.

use std::sync::mpsc;
use std::sync::Arc;

use carry_core as cc;
use zeroize::Zeroize;

use crate::error::CarryError;
use crate::sync::SyncProgress;
use crate::types::ImportProgress;

/// Wraps and unwraps the vault key with the platform keystore (the iOS Keychain or
/// Secure Enclave, the Android Keystore).
///
/// `wrap` receives the 32-byte vault key and returns an opaque blob that Carry keeps
/// beside the vault; `unwrap` returns the 32 bytes from that blob. Throw `WrongKey`
/// when the blob cannot be opened (another device, a reset keystore), and `Locked`
/// when the keystore needs the device unlocked first (the call then fails with
/// `Locked`, and nothing changes); anything else thrown is reported as `Internal`.
/// Do not keep or log the key.
#[uniffi::export(with_foreign)]
pub trait KeyStore: Send + Sync {
    /// Wrap the 32-byte vault key.
    fn wrap(&self, key: Vec<u8>) -> Result<Vec<u8>, CarryError>;
    /// Recover the 32-byte vault key from what `wrap` returned.
    fn unwrap(&self, wrapped: Vec<u8>) -> Result<Vec<u8>, CarryError>;
}

/// Signs the app's NHS login client assertions with the client's private key, which
/// the app keeps (the Android Keystore, the iOS Keychain or Secure Enclave, or a
/// server of its own): Carry never holds it. Return the RSASSA-PKCS1-v1_5 SHA-512
/// signature (JWS `RS512`) of `message`, the only algorithm NHS login accepts for
/// `private_key_jwt`. Throw `Locked` if the key needs the device unlocked first.
#[uniffi::export(with_foreign)]
pub trait ClientSigner: Send + Sync {
    /// The RS512 signature of `message`.
    fn sign_rs512(&self, message: Vec<u8>) -> Result<Vec<u8>, CarryError>;
}

/// The app's client signer, seen by the core.
pub(crate) struct ClientSignerAdapter(pub Arc<dyn ClientSigner>);

impl cc::sync::nhs_login::ClientSigner for ClientSignerAdapter {
    fn sign_rs512(&self, message: &[u8]) -> cc::Result<Vec<u8>> {
        self.0.sign_rs512(message.to_vec()).map_err(to_core)
    }
}

/// Set the signer for NHS login client `client_id`'s assertions, once, at start-up
/// (as the logger is set). Signing in and refreshing through NHS login fail with
/// `Auth` until it is set.
#[uniffi::export]
pub fn set_client_signer(client_id: String, signer: Arc<dyn ClientSigner>) {
    cc::sync::nhs_login::set_client_signer(&client_id, Arc::new(ClientSignerAdapter(signer)));
}

/// Callbacks for long-running work and changes an app shows. Called on a Rust
/// thread, never on the caller's, and never while the vault is locked; post to the
/// UI thread yourself.
#[uniffi::export(with_foreign)]
pub trait Events: Send + Sync {
    /// Progress of an import, every few hundred resources and once at the end.
    fn on_import_progress(&self, progress: ImportProgress);
    /// Progress of a sync: each state a source enters, and each page fetched.
    fn on_sync_progress(&self, progress: SyncProgress);
    /// Someone gained access to this profile's record: `person` (their short id) and
    /// `name` now hold the grant `grant_id`. Called once per new grant, from `grant`
    /// or an `exchange`, after the change is stored; not for a change to a grant the
    /// person already held. Tell the person.
    fn on_new_access(&self, person: String, name: String, grant_id: String);
    /// A backup is overdue (none yet, or the last is over a week old): a good moment
    /// to remind the person. Checked after each `sync`; `last_backup_at` is when the
    /// last one was made (Unix seconds), if ever.
    fn on_backup_overdue(&self, last_backup_at: Option<i64>);
}

/// The app's key store, seen by the core.
pub(crate) struct KeyStoreAdapter(pub Arc<dyn KeyStore>);

fn to_core(e: CarryError) -> cc::Error {
    match e {
        CarryError::WrongKey { .. } => cc::Error::WrongKey,
        CarryError::Locked { .. } => cc::Error::Locked,
        other => cc::Error::KeyStore {
            reason: other.to_string(),
        },
    }
}

impl cc::KeyStore for KeyStoreAdapter {
    fn wrap(&self, key: &cc::VaultKey) -> cc::Result<Vec<u8>> {
        self.0.wrap(key.as_bytes().to_vec()).map_err(to_core)
    }

    fn unwrap(&self, wrapped: &[u8]) -> cc::Result<cc::VaultKey> {
        let mut bytes = self.0.unwrap(wrapped.to_vec()).map_err(to_core)?;
        let key = cc::VaultKey::from_bytes(&bytes);
        bytes.zeroize();
        key
    }
}

/// Delivers progress to the app's [`Events`] from a thread of its own, so the app is
/// never called while the core holds the writer lock.
pub(crate) struct ProgressRelay<T: Send + 'static> {
    sender: Option<mpsc::Sender<T>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<T: Send + 'static> ProgressRelay<T> {
    /// Start relaying to `events` (if any) with `deliver`.
    pub fn start(events: Option<Arc<dyn Events>>, deliver: fn(&dyn Events, T)) -> Self {
        let Some(events) = events else {
            return ProgressRelay {
                sender: None,
                thread: None,
            };
        };
        let (sender, receiver) = mpsc::channel::<T>();
        let thread = std::thread::Builder::new()
            .name("carry-events".into())
            .spawn(move || {
                for p in receiver {
                    deliver(events.as_ref(), p);
                }
            })
            .ok();
        ProgressRelay {
            sender: Some(sender),
            thread,
        }
    }

    /// A sender for the work's progress closure, if the app listens.
    pub fn sender(&self) -> Option<mpsc::Sender<T>> {
        self.sender.clone()
    }

    /// Deliver what is queued, then stop.
    pub fn finish(mut self) {
        self.sender.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
