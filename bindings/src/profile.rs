//! The `Profile` object apps hold. Every call that touches the vault runs on a
//! blocking thread; every future is safe to drop at any await point (a cancelled
//! coroutine or Task): an interrupted import keeps none of its file.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use carry_core as cc;

use crate::callbacks::{Events, KeyStore, KeyStoreAdapter, ProgressRelay};
use crate::error::{CarryError, Result};
use crate::types::{
    ExportScope, ImportReport, ProfileInfo, Reading, RecordStats, ResourceDetail, TimelineItem,
    TimelinePage, TimelineQuery,
};

/// Run `f` on tokio's blocking pool and map its error.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> cc::Result<T> + Send + 'static,
) -> Result<T> {
    Ok(tokio::task::spawn_blocking(f).await??)
}

/// Sets a flag when dropped unless disarmed: the import's cancel signal when the
/// caller's future is dropped mid-await.
pub(crate) struct CancelOnDrop(pub Arc<AtomicBool>, pub bool);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.1 {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// A person's health record, encrypted on this device.
///
/// Create one with `Profile.create` or open one with `Profile.open`. Calls may run
/// from several coroutines or Tasks at once: reads run side by side, writes queue.
/// `close()` (Kotlin) or dropping the last reference (Swift) frees it; using a
/// closed object raises an error rather than crashing.
#[derive(uniffi::Object)]
pub struct Profile {
    pub(crate) core: Arc<cc::Profile>,
    pub(crate) events: Option<Arc<dyn Events>>,
}

impl Profile {
    pub(crate) fn wrap(core: cc::Profile, events: Option<Arc<dyn Events>>) -> Arc<Self> {
        Arc::new(Profile {
            core: Arc::new(core),
            events,
        })
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Profile {
    /// Create a profile named `name` in `folder` (created if missing), with its key
    /// wrapped by `key_store`. Fails with `Conflict` if the folder holds one already.
    #[uniffi::constructor]
    pub async fn create(
        folder: String,
        name: String,
        key_store: Arc<dyn KeyStore>,
        events: Option<Arc<dyn Events>>,
    ) -> Result<Arc<Profile>> {
        let core = blocking(move || {
            cc::Profile::create(&PathBuf::from(folder), &name, &KeyStoreAdapter(key_store))
        })
        .await?;
        Ok(Profile::wrap(core, events))
    }

    /// Open the profile in `folder`. `WrongKey` if the key store's key is not this
    /// vault's (nothing is changed); `Storage` if the vault is damaged (it is left
    /// in place).
    #[uniffi::constructor]
    pub async fn open(
        folder: String,
        key_store: Arc<dyn KeyStore>,
        events: Option<Arc<dyn Events>>,
    ) -> Result<Arc<Profile>> {
        let core = blocking(move || {
            cc::Profile::open(&PathBuf::from(folder), &KeyStoreAdapter(key_store))
        })
        .await?;
        Ok(Profile::wrap(core, events))
    }

    /// Close the vault and wipe its key from memory. Later calls fail with `Locked`
    /// until `unlock`. Calls already running finish first.
    pub fn lock(&self) {
        self.core.lock();
    }

    /// Close the vault's files but keep the key, so the app can be suspended without
    /// holding file locks (iOS: call it when entering the background). The next call
    /// reopens them, or call `resume` first.
    pub fn pause(&self) {
        self.core.pause();
    }

    /// Reopen the vault's files after `pause`.
    pub async fn resume(&self) -> Result<()> {
        let core = self.core.clone();
        blocking(move || core.resume()).await
    }

    /// Unlock a locked profile with its key store.
    pub async fn unlock(&self, key_store: Arc<dyn KeyStore>) -> Result<()> {
        let core = self.core.clone();
        blocking(move || core.unlock(&KeyStoreAdapter(key_store))).await
    }

    /// Whether the profile is locked.
    pub fn is_locked(&self) -> bool {
        self.core.is_locked()
    }

    /// The profile's name, creation time and schema version.
    pub async fn info(&self) -> Result<ProfileInfo> {
        let core = self.core.clone();
        Ok(blocking(move || core.info()).await?.into())
    }

    /// Import a FHIR R4 file (a resource, a Bundle of any type, or NDJSON). Progress
    /// goes to `Events.onImportProgress`. If the call is cancelled, none of the file
    /// is kept. A file that cannot be read at all comes back with one `file`
    /// rejection and nothing stored.
    pub async fn import_file(&self, path: String) -> Result<ImportReport> {
        let core = self.core.clone();
        let cancel = Arc::new(AtomicBool::new(false));
        let mut guard = CancelOnDrop(cancel.clone(), true);
        let relay = ProgressRelay::start(self.events.clone(), |e, p| e.on_import_progress(p));
        let sender = relay.sender();
        let result = blocking(move || {
            let progress = move |p: cc::ImportProgress| {
                if let Some(s) = &sender {
                    let _ = s.send(p.into());
                }
            };
            let options = cc::ImportOptions {
                progress: Some(&progress),
                cancel: Some(&cancel),
            };
            core.import_file(&PathBuf::from(path), options)
        })
        .await;
        guard.1 = false;
        relay.finish();
        Ok(result?.into())
    }

    /// A page of the timeline, newest first.
    pub async fn timeline(&self, query: TimelineQuery) -> Result<TimelinePage> {
        let core = self.core.clone();
        Ok(blocking(move || core.timeline(&query.into())).await?.into())
    }

    /// Appointments still to come, soonest first (at most 500); cancelled, missed
    /// and mistaken ones left out.
    pub async fn appointments(&self) -> Result<Vec<TimelineItem>> {
        let core = self.core.clone();
        let items = blocking(move || core.appointments()).await?;
        Ok(items.into_iter().map(Into::into).collect())
    }

    /// Full-text search over display lines and codes: the best matches (at most
    /// `limit`), newest first.
    pub async fn search(&self, text: String, limit: Option<u32>) -> Result<Vec<TimelineItem>> {
        let core = self.core.clone();
        let items = blocking(move || core.search(&text, limit)).await?;
        Ok(items.into_iter().map(Into::into).collect())
    }

    /// One item in full, with the FHIR JSON exactly as received.
    pub async fn show(&self, id: i64) -> Result<ResourceDetail> {
        let core = self.core.clone();
        Ok(blocking(move || core.show(id)).await?.into())
    }

    /// Counts over the record.
    pub async fn stats(&self) -> Result<RecordStats> {
        let core = self.core.clone();
        Ok(blocking(move || core.stats()).await?.into())
    }

    /// Record a reading the person took, with an optional note (at most 1,000
    /// characters), taken at `taken_at` (Unix seconds; null: now) for one noted down
    /// earlier. `InvalidInput` for an implausible value, or a time in the future.
    #[uniffi::method(default(taken_at = None))]
    pub async fn add_reading(
        &self,
        reading: Reading,
        note: Option<String>,
        taken_at: Option<i64>,
    ) -> Result<TimelineItem> {
        let core = self.core.clone();
        let reading: cc::Reading = reading.into();
        Ok(
            blocking(move || core.add_reading_at(&reading, note.as_deref(), taken_at))
                .await?
                .into(),
        )
    }

    /// Delete the person's reading `id`. One that reached a provider is taken back
    /// there (marked entered-in-error) at the next `sync`, once; copies providers
    /// sent back go too, and grantees' copies at the next `exchange`. Returns how many
    /// providers it is to be taken back from. `InvalidInput` for anything but a
    /// reading entered here; `NotFound` for an unknown id.
    pub async fn delete_reading(&self, id: i64) -> Result<u64> {
        let core = self.core.clone();
        blocking(move || core.delete_reading(id)).await
    }

    /// Correct the person's reading `id` with `reading` (taken at `taken_at`; null:
    /// the time of the one it replaces): the old one is deleted as by
    /// `delete_reading`, the new one recorded and sent on, in one step.
    #[uniffi::method(default(taken_at = None))]
    pub async fn amend_reading(
        &self,
        id: i64,
        reading: Reading,
        note: Option<String>,
        taken_at: Option<i64>,
    ) -> Result<TimelineItem> {
        let core = self.core.clone();
        let reading: cc::Reading = reading.into();
        Ok(
            blocking(move || core.amend_reading(id, &reading, note.as_deref(), taken_at))
                .await?
                .into(),
        )
    }

    /// Write the scoped record to the file at `path` as one FHIR collection Bundle
    /// (plaintext: the app decides where it goes). The file appears only when
    /// complete. Returns the resource count.
    pub async fn export_to_file(&self, scope: ExportScope, path: String) -> Result<u64> {
        let core = self.core.clone();
        blocking(move || core.export_to_file(&scope.into(), &PathBuf::from(path))).await
    }
}

/// Parse a reading as a person types it: `weight` `72.5kg`, `bp` `120/80`, `pulse`
/// `64`, `glucose` `5.6mmol/L`, `mood` `3`.
#[uniffi::export]
pub fn parse_reading(kind: String, value: String) -> Result<Reading> {
    Ok(cc::Reading::parse(&kind, &value)?.into())
}

impl From<std::io::Error> for CarryError {
    fn from(e: std::io::Error) -> Self {
        cc::Error::from(e).into()
    }
}
