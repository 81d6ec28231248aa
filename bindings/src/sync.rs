//! Providers and sync, as apps call them: add a provider, sign in with SMART (the app
//! opens the browser; the core does the rest), sync, and see the outbox.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use carry_core as cc;
use carry_core::sync as cs;
use zeroize::Zeroizing;

use crate::callbacks::ProgressRelay;
use crate::error::Result;
use crate::profile::{blocking, CancelOnDrop, Profile};

/// What kind of provider a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ProviderKind {
    /// A general practice.
    Gp,
    /// A hospital.
    Hospital,
    /// A social-care provider.
    SocialCare,
    /// Anything else.
    Other,
}

crate::types::mirror_enum!(
    ProviderKind,
    cs::ProviderKind,
    [Gp, Hospital, SocialCare, Other]
);

/// Where a source's sync is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SyncState {
    /// Reading the server's capabilities.
    Discover,
    /// Getting a usable token; if a sync stops here, sign in again.
    Authorize,
    /// Fetching resources.
    Pull,
    /// Sending the person's readings.
    Push,
    /// Up to date.
    Idle,
    /// Ran through, but the provider's answers were found wanting: a search delivered
    /// less than it promised, or it sent another patient's resources (never stored).
    /// `last_error` and the report's `partial` say why; the next sync tries again.
    Partial,
    /// The server refused or broke; see `last_error`.
    Error,
    /// The server could not be reached.
    Offline,
}

crate::types::mirror_enum!(
    SyncState,
    cs::SyncState,
    [Discover, Authorize, Pull, Push, Idle, Partial, Error, Offline]
);

/// How a source signs in.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum SourceAuth {
    /// SMART App Launch (standalone patient, public client, PKCE S256).
    Smart {
        /// The client id registered with the provider (default `carry`).
        client_id: Option<String>,
        /// The scopes to ask for (default: read the record, create Observations,
        /// offline access).
        scope: Option<String>,
    },
    /// NHS login (England): OpenID Connect with PKCE, a nonce and a P9 identity;
    /// the client authenticates with `private_key_jwt`, signed by the app's
    /// `ClientSigner` (`set_client_signer`). The NHS number becomes the source's
    /// patient id.
    NhsLogin {
        /// The client id NHS login registered for the app.
        client_id: String,
        /// The issuer (its discovery document is under it).
        issuer: String,
        /// The scopes (default `openid profile`).
        scope: Option<String>,
    },
    /// A static bearer token. Kept only in the vault.
    Bearer {
        /// The token.
        token: String,
    },
    /// No sign-in (open test servers).
    None,
}

/// How a provider's record is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SourceApi {
    /// FHIR R4 searches.
    Fhir,
    /// GP Connect Access Record: Structured (England): the whole GP record in one
    /// answer, FHIR STU3, converted to R4 with the original kept. Needs
    /// `SourceAuth.NhsLogin`; read-only.
    GpConnect,
}

crate::types::mirror_enum!(SourceApi, cs::Api, [Fhir, GpConnect]);

/// A provider to add.
#[derive(Debug, Clone, uniffi::Record)]
pub struct NewSource {
    /// A short name, unique in the profile: letters, digits, `-` or `_`.
    pub name: String,
    /// What kind of provider it is.
    pub kind: ProviderKind,
    /// The FHIR R4 base URL (`https://`; `http://` only on loopback).
    pub base_url: String,
    /// How to sign in.
    pub auth: SourceAuth,
    /// The Patient id at this provider; needed without SMART.
    #[uniffi(default = None)]
    pub patient_id: Option<String>,
    /// Whether the person's readings are sent here (default: only to a GP read by
    /// FHIR R4).
    #[uniffi(default = None)]
    pub push: Option<bool>,
    /// How the record is read (null: FHIR R4). For GP Connect, `base_url` is the GP
    /// Connect FHIR base.
    #[uniffi(default = None)]
    pub api: Option<SourceApi>,
}

/// A provider as the app lists it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SourceInfo {
    /// Its name.
    pub name: String,
    /// What kind of provider it is.
    pub kind: ProviderKind,
    /// The FHIR base URL.
    pub base_url: String,
    /// `smart`, `nhs-login`, `bearer` or `none`.
    pub auth: String,
    /// How the record is read.
    pub api: SourceApi,
    /// Whether readings are sent here.
    pub push: bool,
    /// Whether it holds usable credentials.
    pub signed_in: bool,
    /// The Patient id at this provider, once known.
    pub patient_id: Option<String>,
    /// Where its sync is.
    pub state: SyncState,
    /// Why the last sync stopped, if it failed. Never content or tokens.
    pub last_error: Option<String>,
    /// When it last synced completely (Unix seconds).
    pub last_synced_at: Option<i64>,
}

impl From<cs::SourceInfo> for SourceInfo {
    fn from(s: cs::SourceInfo) -> Self {
        SourceInfo {
            name: s.name,
            kind: s.kind.into(),
            base_url: s.base_url,
            auth: s.auth,
            api: s.api.into(),
            push: s.push,
            signed_in: s.signed_in,
            patient_id: s.patient_id,
            state: s.state.into(),
            last_error: s.last_error,
            last_synced_at: s.last_synced_at,
        }
    }
}

/// Progress of a sync, for a progress line.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncProgress {
    /// The source.
    pub source: String,
    /// The state it entered.
    pub state: SyncState,
    /// Resources received so far.
    pub fetched: u64,
    /// Readings sent so far.
    pub pushed: u64,
    /// HTTP requests so far.
    pub requests: u64,
}

/// What one source's sync did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    /// The source.
    pub source: String,
    /// Where it ended: `Idle` when complete, `Partial` when the provider's answers
    /// were found wanting (see `partial`).
    pub state: SyncState,
    /// Resources received.
    pub fetched: u64,
    /// Of those, new or changed.
    pub changed: u64,
    /// Resources the provider no longer holds, now marked (and kept).
    pub gone: u64,
    /// Resources the provider sent that belong to another patient: never stored.
    /// Show the person that the provider's answers were wrong.
    pub refused: u64,
    /// Readings sent.
    pub pushed: u64,
    /// HTTP requests made.
    pub requests: u64,
    /// Whether pull and push both finished with nothing found wanting.
    pub complete: bool,
    /// Why the run is partial (state `Partial`), in words the app can show. Never
    /// content.
    pub partial: Option<String>,
    /// Why it stopped, if it failed.
    pub error: Option<String>,
}

impl From<cs::SyncReport> for SyncReport {
    fn from(r: cs::SyncReport) -> Self {
        SyncReport {
            source: r.source,
            state: r.state.into(),
            fetched: r.fetched,
            changed: r.changed,
            gone: r.gone,
            refused: r.refused,
            pushed: r.pushed,
            requests: r.requests,
            complete: r.complete,
            partial: r.partial,
            error: r.error,
        }
    }
}

/// A reading on its way to a provider.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct OutboxEntry {
    /// The reading's item id.
    pub item_id: i64,
    /// The provider it goes to.
    pub source: String,
    /// `pending` (goes at the next sync), `held` (kept back until released),
    /// `dropped` (never goes), `withheld` (the push rules keep it back: a sensitive
    /// reading, or a kind not sent there), `sent` or `stuck`.
    pub state: String,
    /// Failed tries so far.
    pub attempts: i64,
    /// Why the last try failed.
    pub last_error: Option<String>,
    /// The reading's display line.
    pub display: String,
    /// When it was sent (Unix seconds).
    pub sent_at: Option<i64>,
    /// Whether this corrects a reading the person deleted or amended after it was
    /// sent (the provider's copy is marked entered-in-error); `item_id` is then 0.
    pub correction: bool,
}

impl From<cs::OutboxEntry> for OutboxEntry {
    fn from(e: cs::OutboxEntry) -> Self {
        OutboxEntry {
            item_id: e.item_id,
            source: e.source,
            state: e.state,
            attempts: e.attempts,
            last_error: e.last_error,
            display: e.display,
            sent_at: e.sent_at,
            correction: e.correction,
        }
    }
}

fn to_core(s: NewSource) -> cc::Result<cs::NewSource> {
    let auth = match s.auth {
        SourceAuth::Smart { client_id, scope } => cs::AuthKind::Smart {
            client_id: client_id.unwrap_or_else(|| cs::DEFAULT_CLIENT_ID.into()),
            scope: scope.unwrap_or_else(|| cs::DEFAULT_SCOPE.into()),
        },
        SourceAuth::NhsLogin {
            client_id,
            issuer,
            scope,
        } => cs::AuthKind::NhsLogin {
            client_id,
            issuer,
            scope: scope.unwrap_or_else(|| cs::nhs_login::DEFAULT_SCOPE.into()),
        },
        SourceAuth::Bearer { token } => cs::AuthKind::Bearer {
            token: Zeroizing::new(token),
        },
        SourceAuth::None => cs::AuthKind::None,
    };
    Ok(cs::NewSource {
        name: s.name,
        kind: s.kind.into(),
        base_url: s.base_url,
        auth,
        patient_id: s.patient_id,
        push: s.push,
        api: s.api.map_or(cs::Api::Fhir, Into::into),
    })
}

#[uniffi::export(async_runtime = "tokio")]
impl Profile {
    /// Add a provider. `Conflict` if the name is taken; `InvalidInput` for a bad URL
    /// or name.
    pub async fn add_source(&self, source: NewSource) -> Result<SourceInfo> {
        let core = self.core.clone();
        Ok(blocking(move || cs::add_source(&core, &to_core(source)?))
            .await?
            .into())
    }

    /// Point a provider at a new FHIR base URL (it moved). What was synced from it
    /// stays, known by type and id, so nothing is held twice. `NotFound` for an
    /// unknown name; `InvalidInput` for a bad URL.
    pub async fn set_source_url(&self, name: String, base_url: String) -> Result<SourceInfo> {
        let core = self.core.clone();
        Ok(
            blocking(move || cs::set_source_url(&core, &name, &base_url))
                .await?
                .into(),
        )
    }

    /// Every provider, by name, with where its sync stands.
    pub async fn sources(&self) -> Result<Vec<SourceInfo>> {
        let core = self.core.clone();
        let all = blocking(move || cs::list_sources(&core)).await?;
        Ok(all.into_iter().map(Into::into).collect())
    }

    /// Start signing in to a SMART provider: open the returned URL in the browser
    /// (ASWebAuthenticationSession, Custom Tabs). When the browser is sent to
    /// `redirect_uri`, pass that whole URL to `complete_sign_in`.
    pub async fn begin_sign_in(&self, name: String, redirect_uri: String) -> Result<String> {
        let start = cs::begin_login(&self.core, &name, &redirect_uri).await?;
        Ok(start.authorize_url)
    }

    /// Finish signing in with the URL the browser was redirected to. `Auth` if the
    /// provider refused or the state does not match.
    pub async fn complete_sign_in(
        &self,
        name: String,
        redirected_to: String,
    ) -> Result<SourceInfo> {
        Ok(cs::complete_login(&self.core, &name, &redirected_to)
            .await?
            .into())
    }

    /// Sync one provider, or all (`name` null). Stops after `budget_seconds` if given;
    /// what was fetched is kept and the next sync resumes. Progress goes to
    /// `Events.on_sync_progress`. Safe to cancel at any point.
    pub async fn sync(
        &self,
        name: Option<String>,
        budget_seconds: Option<u32>,
        full: bool,
    ) -> Result<Vec<SyncReport>> {
        let cancel = Arc::new(AtomicBool::new(false));
        let mut guard = CancelOnDrop(cancel.clone(), true);
        let relay: ProgressRelay<SyncProgress> =
            ProgressRelay::start(self.events.clone(), |e, p| e.on_sync_progress(p));
        let sender = relay.sender();
        let progress: Option<cs::ProgressFn> = sender.map(|s| {
            let s = std::sync::Mutex::new(s);
            Arc::new(move |p: &cs::SyncProgress| {
                let out = SyncProgress {
                    source: p.source.clone(),
                    state: p.state.into(),
                    fetched: p.fetched,
                    pushed: p.pushed,
                    requests: p.requests,
                };
                if let Ok(s) = s.lock() {
                    let _ = s.send(out);
                }
            }) as cs::ProgressFn
        });
        let options = cs::SyncOptions {
            call: carry_core::net::CallOptions {
                budget: budget_seconds.map(|s| Duration::from_secs(u64::from(s.max(1)))),
                cancel: Some(cancel),
            },
            progress,
            full,
            deletions: false,
        };
        let reports = cs::sync(&self.core, name.as_deref(), &options).await;
        guard.1 = false;
        drop(options);
        relay.finish();
        let reports = reports?;
        // Remind the app when a backup is overdue: after the core call, off the
        // caller's thread, never while the vault is held.
        if let Some(events) = self.events.clone() {
            let core = self.core.clone();
            let told = tokio::task::spawn_blocking(move || {
                if let Ok(s) = carry_core::backup::status(&core) {
                    if s.overdue {
                        events.on_backup_overdue(s.last_backup_at);
                    }
                }
            })
            .await;
            if told.is_err() {
                tracing::warn!("an Events.on_backup_overdue callback failed");
            }
        }
        Ok(reports.into_iter().map(Into::into).collect())
    }

    /// The person's readings on their way to providers, newest first, then those
    /// the push rules keep back (`withheld`).
    pub async fn outbox(&self) -> Result<Vec<OutboxEntry>> {
        let core = self.core.clone();
        let all = blocking(move || cs::outbox(&core)).await?;
        Ok(all.into_iter().map(Into::into).collect())
    }

    /// Hold, release or drop the reading `item_id` on its way to `source` (null: to
    /// every provider) before it leaves. Returns the queue entries changed.
    /// `NotFound` if it is not on its way there; `Conflict` if it was sent, dropped,
    /// or (for a release) not held.
    pub async fn hold_reading(
        &self,
        item_id: i64,
        source: Option<String>,
        action: HoldAction,
    ) -> Result<u64> {
        let core = self.core.clone();
        blocking(move || cs::hold_reading(&core, item_id, source.as_deref(), action.into())).await
    }

    /// Whether readings of `kind` (weight, bp, pulse, glucose, mood, or `sensitive`
    /// for anything labelled) go to `source` (null: every provider): `allow` true or
    /// false sets the rule, null removes it. Without a rule a reading goes unless it
    /// is labelled sensitive (a mood-diary entry is).
    pub async fn set_push_rule(
        &self,
        source: Option<String>,
        kind: String,
        allow: Option<bool>,
    ) -> Result<()> {
        let core = self.core.clone();
        blocking(move || cs::set_push_rule(&core, source.as_deref(), &kind, allow)).await
    }

    /// The push rules the person set.
    pub async fn push_rules(&self) -> Result<Vec<PushRule>> {
        let core = self.core.clone();
        let all = blocking(move || cs::push_rules(&core)).await?;
        Ok(all.into_iter().map(Into::into).collect())
    }
}

/// What to do with a reading on its way to providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum HoldAction {
    /// Keep it back until released.
    Hold,
    /// Let a held reading go at the next sync.
    Release,
    /// Never send it (it stays in the record).
    Drop,
}

impl From<HoldAction> for cs::Hold {
    fn from(a: HoldAction) -> Self {
        match a {
            HoldAction::Hold => cs::Hold::Hold,
            HoldAction::Release => cs::Hold::Release,
            HoldAction::Drop => cs::Hold::Drop,
        }
    }
}

/// One push rule.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PushRule {
    /// The provider it applies to; null: every provider.
    pub source: Option<String>,
    /// The reading kind, or `sensitive`.
    pub kind: String,
    /// Whether such readings go.
    pub allow: bool,
}

impl From<cs::PushRule> for PushRule {
    fn from(r: cs::PushRule) -> Self {
        PushRule {
            source: r.source,
            kind: r.kind,
            allow: r.allow,
        }
    }
}

/// Sandbox only: complete the reference endpoint's consent step as `patient_id`
/// without a browser, and return the URL the browser would have been sent to (pass it
/// to `complete_sign_in`). Real providers show their own sign-in page.
#[uniffi::export(async_runtime = "tokio")]
pub async fn sandbox_consent(authorize_url: String, patient_id: String) -> Result<String> {
    Ok(cs::sandbox_consent(&authorize_url, &patient_id).await?)
}

/// Mock NHS login only (the reference endpoint's): sign in as the person with NHS
/// number `nhs_number`, whose identity was proved to `proofing` (`P0`, `P5`, `P9`;
/// null: P9), without a browser, and return the URL the browser would have been sent
/// to (pass it to `complete_sign_in`).
#[uniffi::export(async_runtime = "tokio")]
pub async fn sandbox_nhs_login(
    authorize_url: String,
    nhs_number: String,
    proofing: Option<String>,
) -> Result<String> {
    let mut params = vec![("sandbox_user", nhs_number.as_str())];
    if let Some(level) = &proofing {
        params.push(("sandbox_proofing", level.as_str()));
    }
    Ok(cs::sandbox_sign_in(&authorize_url, &params).await?)
}
