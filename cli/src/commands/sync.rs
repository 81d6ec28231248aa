//! `carry source …`, `carry sync` and `carry outbox`: providers, syncing with them,
//! and the readings on their way to them.

use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use carry_core::net::CallOptions;
use carry_core::sync::{
    self, Api, AuthKind, NewSource, ProviderKind, SourceInfo, SyncOptions, SyncProgress,
    DEFAULT_CLIENT_ID, DEFAULT_SCOPE,
};
use carry_core::{Error, Result};
use serde_json::json;
use zeroize::Zeroizing;

use crate::context::{open, runtime};
use crate::exit;
use crate::output::{json_mode, Outcome, Said};
use crate::{note, said};

/// Where the CLI asks providers to send the browser back to. Nothing listens there:
/// the person copies the address the browser ends up at and pastes it back.
pub const CLI_REDIRECT: &str = "http://127.0.0.1:53682/callback";

/// `carry source` subcommands.
#[derive(clap::Subcommand)]
pub enum SourceAction {
    /// Add a provider's FHIR endpoint.
    Add {
        /// A short name for it, e.g. gp.
        name: String,
        /// Its FHIR R4 base URL.
        url: String,
        /// What kind of provider it is: gp, hospital, social-care or other.
        #[arg(long, default_value = "gp")]
        kind: String,
        /// How to sign in: smart, nhs-login (with --issuer; the client's key from
        /// CARRY_CLIENT_KEY), bearer (token from CARRY_SOURCE_TOKEN) or none.
        #[arg(long, default_value = "smart")]
        auth: String,
        /// For NHS login: the issuer (its discovery document is under it).
        #[arg(long)]
        issuer: Option<String>,
        /// How the record is read: fhir (R4 searches) or gp-connect (England's GP
        /// Connect structured record, with --auth nhs-login; URL is its FHIR base).
        #[arg(long, default_value = "fhir")]
        api: String,
        /// The Patient id at this provider (needed without SMART, which tells it).
        #[arg(long)]
        patient: Option<String>,
        /// The SMART client id.
        #[arg(long, default_value = DEFAULT_CLIENT_ID)]
        client_id: String,
        /// The scopes to ask for (SMART's by default; `openid profile` for NHS login).
        #[arg(long)]
        scope: Option<String>,
        /// Send your readings here (the default for a GP).
        #[arg(long, conflicts_with = "no_push")]
        push: bool,
        /// Do not send your readings here (the default for other kinds).
        #[arg(long)]
        no_push: bool,
    },
    /// List the providers and where each sync stands.
    List,
    /// Point a provider at a new FHIR base URL (it moved, or is reached by another
    /// name); what was synced from it stays, and nothing is held twice.
    SetUrl {
        /// The source's name.
        name: String,
        /// Its new FHIR R4 base URL.
        url: String,
    },
    /// Say whether readings of a kind go to a provider: KIND is weight, bp, pulse,
    /// glucose, mood, or sensitive (anything labelled; by default such readings never
    /// go). Without --source, for every provider.
    Push {
        /// The reading kind, or `sensitive`.
        kind: String,
        /// allow, deny, or clear (back to the default).
        rule: String,
        /// Only for this provider.
        #[arg(long)]
        source: Option<String>,
    },
    /// Sign in to a SMART provider: prints the address to open, then reads the address
    /// the browser was sent back to.
    Login {
        /// The source's name.
        name: String,
        /// Sandbox only: sign in as this patient without a browser.
        #[arg(long, value_name = "ID")]
        sandbox_patient: Option<String>,
        /// Mock NHS login only: sign in as the person with this NHS number without a
        /// browser.
        #[arg(long, value_name = "NHS_NUMBER", conflicts_with = "sandbox_patient")]
        sandbox_user: Option<String>,
        /// Mock NHS login only: the identity level that person proved (P0, P5, P9).
        #[arg(long, value_name = "LEVEL", requires = "sandbox_user")]
        sandbox_proofing: Option<String>,
        /// The redirect URI registered for this client.
        #[arg(long, default_value = CLI_REDIRECT)]
        redirect_uri: String,
    },
}

/// Parse `30s`, `2m`, `500ms` or a number of seconds.
pub fn parse_budget(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration like 30s or 2m"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        _ => return Err(format!("'{s}' is not a duration like 30s or 2m")),
    };
    if d.is_zero() {
        return Err("the budget must be more than zero".into());
    }
    Ok(d)
}

/// A source's line, then its last error on a line of its own.
fn source_lines(s: &SourceInfo) -> (String, Option<String>) {
    let signed = if s.signed_in { "" } else { "  (not signed in)" };
    let push = if s.push { "  sends readings" } else { "" };
    let api = if s.api == Api::GpConnect {
        "  (GP Connect)"
    } else {
        ""
    };
    let line = format!(
        "{:<12} {:<12} {:<9} {:<9} {}{api}{signed}{push}",
        s.name,
        s.kind.as_str(),
        s.auth,
        s.state.as_str(),
        s.base_url
    );
    let err = s
        .last_error
        .as_deref()
        .map(|e| format!("    last error: {e}"));
    (line, err)
}

/// `carry source …`.
pub fn source(home: &Path, action: SourceAction) -> Result<Outcome> {
    let profile = Arc::new(open(home)?);
    let said = match action {
        SourceAction::Add {
            name,
            url,
            kind,
            auth,
            issuer,
            api,
            patient,
            client_id,
            scope,
            push,
            no_push,
        } => {
            if issuer.is_some() && auth != "nhs-login" {
                return Err(Error::invalid("--issuer goes with --auth nhs-login"));
            }
            let auth = match auth.as_str() {
                "smart" => AuthKind::Smart {
                    client_id,
                    scope: scope.unwrap_or_else(|| DEFAULT_SCOPE.to_string()),
                },
                "nhs-login" => AuthKind::NhsLogin {
                    client_id,
                    issuer: issuer.ok_or_else(|| {
                        Error::invalid("NHS login needs its issuer: --issuer URL")
                    })?,
                    scope: scope.unwrap_or_else(|| sync::nhs_login::DEFAULT_SCOPE.to_string()),
                },
                "none" => AuthKind::None,
                "bearer" => {
                    let token = std::env::var("CARRY_SOURCE_TOKEN").map_err(|_| {
                        Error::invalid("set CARRY_SOURCE_TOKEN to the bearer token")
                    })?;
                    AuthKind::Bearer {
                        token: Zeroizing::new(token),
                    }
                }
                other => {
                    return Err(Error::invalid(format!(
                        "unknown auth '{other}': use smart, nhs-login, bearer or none"
                    )))
                }
            };
            let info = sync::add_source(
                &profile,
                &NewSource {
                    name,
                    kind: ProviderKind::parse(&kind)?,
                    base_url: url,
                    auth,
                    patient_id: patient,
                    push: (push || no_push).then_some(push),
                    api: Api::parse(&api)?,
                },
            )?;
            let mut said = Said::new(json!(info));
            said!(said, "Added {} ({}).", info.name, info.base_url);
            if !info.signed_in {
                said!(said, "Next: carry source login {}", info.name);
            }
            said
        }
        SourceAction::List => {
            let all = sync::list_sources(&profile)?;
            let mut said = Said::new(json!(all));
            if all.is_empty() {
                said!(said, "No providers yet: carry source add NAME URL");
            }
            for s in &all {
                let (line, err) = source_lines(s);
                said!(said, "{line}");
                if let Some(err) = err {
                    said!(said, "{err}");
                }
            }
            said
        }
        SourceAction::Push { kind, rule, source } => {
            let allow = match rule.as_str() {
                "allow" => Some(true),
                "deny" => Some(false),
                "clear" => None,
                other => {
                    return Err(Error::invalid(format!(
                        "'{other}' is not a rule: allow, deny or clear"
                    )))
                }
            };
            sync::set_push_rule(&profile, source.as_deref(), &kind, allow)?;
            let rules = sync::push_rules(&profile)?;
            let mut said = Said::new(json!(rules));
            let to = source.as_deref().unwrap_or("every provider");
            match allow {
                Some(true) => said!(said, "{kind} readings go to {to}."),
                Some(false) => said!(said, "{kind} readings do not go to {to}."),
                None => said!(said, "{kind} readings to {to} follow the default again."),
            }
            said
        }
        SourceAction::SetUrl { name, url } => {
            let info = sync::set_source_url(&profile, &name, &url)?;
            let mut said = Said::new(json!(info));
            said!(said, "{} now syncs from {}.", info.name, info.base_url);
            said
        }
        SourceAction::Login {
            name,
            sandbox_patient,
            sandbox_user,
            sandbox_proofing,
            redirect_uri,
        } => {
            crate::signer::from_env()?;
            let rt = runtime()?;
            let info = rt.block_on(async {
                let start = sync::begin_login(&profile, &name, &redirect_uri).await?;
                let redirected = match (&sandbox_patient, &sandbox_user) {
                    (Some(p), _) => sync::sandbox_consent(&start.authorize_url, p).await?,
                    (None, Some(u)) => {
                        let mut params = vec![("sandbox_user", u.as_str())];
                        if let Some(level) = &sandbox_proofing {
                            params.push(("sandbox_proofing", level.as_str()));
                        }
                        sync::sandbox_sign_in(&start.authorize_url, &params).await?
                    }
                    (None, None) => {
                        note!("Open this address, sign in and allow access:");
                        note!("{}", start.authorize_url);
                        note!("Then paste the address your browser was sent to:");
                        let mut line = String::new();
                        std::io::stdin().lock().read_line(&mut line)?;
                        line.trim().to_string()
                    }
                };
                sync::complete_login(&profile, &name, &redirected).await
            })?;
            let mut said = Said::new(json!(info));
            if info.auth == "nhs-login" {
                said!(
                    said,
                    "Signed in to {} with NHS login (P9), NHS number {}.",
                    info.name,
                    info.patient_id.as_deref().unwrap_or("?")
                );
            } else {
                said!(
                    said,
                    "Signed in to {} as Patient {}.",
                    info.name,
                    info.patient_id.as_deref().unwrap_or("?")
                );
            }
            said
        }
    };
    Ok(Outcome::ok(said))
}

/// `carry sync [NAME]`.
pub fn sync_now(
    home: &Path,
    name: Option<String>,
    budget: Option<Duration>,
    full: bool,
    deletions: bool,
) -> Result<Outcome> {
    crate::signer::from_env()?;
    let profile = Arc::new(open(home)?);
    use std::io::IsTerminal as _;
    let live = !json_mode() && std::io::stderr().is_terminal();
    let progress: Option<sync::ProgressFn> = if !live {
        None
    } else {
        Some(Arc::new(|p: &SyncProgress| {
            eprint!(
                "\r{}: {:<9} {} fetched, {} sent, {} requests   ",
                crate::output::clean(&p.source),
                p.state.as_str(),
                p.fetched,
                p.pushed,
                p.requests
            );
        }))
    };
    let options = SyncOptions {
        call: CallOptions {
            budget,
            cancel: None,
        },
        progress,
        full,
        deletions,
    };
    let rt = runtime()?;
    // The relay first (people's keys, grants, carers' entries, which then go on to
    // the providers), then the providers, then the relay again if the providers
    // changed the record, so the people it is shared with get the change now.
    let endpoint = match &name {
        None => crate::context::endpoint_of(&profile).ok(),
        Some(_) => None,
    };
    let exchange = |rt: &tokio::runtime::Runtime, url: &str| {
        rt.block_on(carry_core::exchange::exchange(
            profile.clone(),
            url,
            &options.call,
        ))
    };
    let mut relay = endpoint.as_deref().map(|url| exchange(&rt, url));
    let reports = rt.block_on(sync::sync(&profile, name.as_deref(), &options))?;
    if live {
        eprintln!();
    }
    let changed = reports.iter().any(|r| r.changed > 0 || r.pushed > 0);
    if let (Some(url), Some(Ok(first)), true) = (&endpoint, &relay, changed) {
        let first = first.clone();
        relay = Some(exchange(&rt, url).map(|second| merge(first, second)));
    }
    // Long-lived share links follow the record; accesses come into the audit log.
    if let (Some(url), Some(Ok(_))) = (&endpoint, &relay) {
        if let Err(e) = rt.block_on(carry_core::links::refresh(
            profile.clone(),
            url,
            &options.call,
        )) {
            tracing::warn!(error = %e, "share links were not refreshed");
        }
    }
    let relay_code = match &relay {
        Some(Err(e)) => exit::code(e),
        _ => exit::OK,
    };
    let relay_json = match &relay {
        None => serde_json::Value::Null,
        Some(Ok(r)) => json!(r),
        Some(Err(e)) => json!({ "error": e.to_string() }),
    };
    let out: Vec<_> = reports
        .iter()
        .map(|r| {
            json!({
                "source": r.source, "fetched": r.fetched, "pushed": r.pushed,
                "requests": r.requests, "changed": r.changed, "gone": r.gone,
                "refused": r.refused, "state": r.state, "complete": r.complete,
                "partial": r.partial, "error": r.error
            })
        })
        .collect();
    let mut said = Said::new(json!({ "sources": out, "relay": relay_json }));
    {
        if reports.is_empty() && relay.is_none() {
            said!(said, "No providers to sync: carry source add NAME URL");
        }
        match &relay {
            Some(Ok(r)) => said!(said, "{}", relay_line(r)),
            Some(Err(e)) => said!(said, "relay: stopped: {e}"),
            None => {}
        }
        for r in &reports {
            let gone = if r.gone > 0 {
                format!(", {} no longer held there", r.gone)
            } else {
                String::new()
            };
            said!(
                said,
                "{}: {} fetched ({} new or changed{gone}), {} readings sent, {} requests{}",
                r.source,
                r.fetched,
                r.changed,
                r.pushed,
                r.requests,
                r.error
                    .as_deref()
                    .map(|e| format!(" — stopped: {e}"))
                    .unwrap_or_default()
            );
            if let Some(why) = &r.partial {
                said!(said, "{}: partial, sync again later: {why}", r.source);
            }
        }
    }
    // The worst failure decides the exit code; a sync the budget cut short is not one.
    let worst = reports
        .iter()
        .filter(|r| !r.complete)
        .map(|r| match r.state {
            sync::SyncState::Authorize => exit::DENIED,
            sync::SyncState::Offline => exit::NETWORK,
            // Ran through, but the provider's answers were found wanting.
            sync::SyncState::Error | sync::SyncState::Partial => exit::OTHER,
            // Stopped by the budget: not a failure; the next sync resumes.
            _ => exit::OK,
        })
        .max()
        .unwrap_or(exit::OK);
    Ok(Outcome::with_code(said, worst.max(relay_code)))
}

/// Two exchanges of one sync, reported as one.
fn merge(
    mut a: carry_core::share::ExchangeReport,
    b: carry_core::share::ExchangeReport,
) -> carry_core::share::ExchangeReport {
    a.posted += b.posted;
    a.received += b.received;
    a.applied += b.applied;
    a.refused.extend(b.refused);
    a.people_added.extend(b.people_added);
    a.grants_received.extend(b.grants_received);
    a.records_removed.extend(b.records_removed);
    a.contributions += b.contributions;
    a.contributions_refused.extend(b.contributions_refused);
    a.contributions_waiting += b.contributions_waiting;
    a.expired.extend(b.expired);
    a.relay_deleted += b.relay_deleted;
    a.new_access.extend(b.new_access);
    a.keys_changed.extend(b.keys_changed);
    a.keys_retired |= b.keys_retired;
    for m in b.mailboxes_full {
        if !a.mailboxes_full.contains(&m) {
            a.mailboxes_full.push(m);
        }
    }
    // The second exchange finds what the first held back still queued.
    a.held_back = b.held_back;
    a
}

fn relay_line(r: &carry_core::share::ExchangeReport) -> String {
    let mut parts = vec![format!("{} envelopes in, {} out", r.received, r.posted)];
    if !r.people_added.is_empty() {
        parts.push(format!("{} people added", r.people_added.len()));
    }
    if !r.grants_received.is_empty() {
        parts.push(format!(
            "{} records shared with you",
            r.grants_received.len()
        ));
    }
    if r.contributions > 0 {
        parts.push(format!("{} entries from carers", r.contributions));
    }
    if r.contributions_waiting > 0 {
        parts.push(format!(
            "{} entries from carers wait for your approval (carry contributions)",
            r.contributions_waiting
        ));
    }
    for why in &r.contributions_refused {
        parts.push(format!(
            "your entry was refused: {}",
            carry_core::text::escaped(why, 300)
        ));
    }
    if !r.records_removed.is_empty() {
        parts.push(format!(
            "{} shared records removed",
            r.records_removed.len()
        ));
    }
    if !r.refused.is_empty() {
        parts.push(format!("{} refused", r.refused.len()));
    }
    if !r.expired.is_empty() {
        parts.push(format!("{} grants ended", r.expired.len()));
    }
    if !r.keys_changed.is_empty() {
        parts.push(format!(
            "new keys from {} (they removed a device; their previous keys vouched for them)",
            r.keys_changed.join(", ")
        ));
    }
    if r.keys_retired {
        parts.push("this profile's previous keys are retired at the endpoint".into());
    }
    let mut full = r.mailboxes_full.clone();
    full.extend(r.devices.full.iter().map(|d| format!("device {d}")));
    if !full.is_empty() {
        let waiting = if r.held_back > 0 {
            format!(" ({} envelopes)", r.held_back)
        } else {
            String::new()
        };
        parts.push(format!(
            "the relay mailbox of {} is full: what is queued for it waits for a later sync{waiting}",
            full.join(", ")
        ));
    }
    format!("relay: {}", parts.join(", "))
}

/// What `carry outbox` does to one reading.
#[derive(clap::Subcommand)]
pub enum OutboxAction {
    /// Keep a reading back from providers until you release it.
    Hold {
        /// The reading's item id (from carry outbox).
        id: i64,
        /// Only on its way to this provider.
        #[arg(long)]
        source: Option<String>,
    },
    /// Let a held reading go at the next sync.
    Release {
        /// The reading's item id.
        id: i64,
        /// Only on its way to this provider.
        #[arg(long)]
        source: Option<String>,
    },
    /// Never send a reading (it stays in your record).
    Drop {
        /// The reading's item id.
        id: i64,
        /// Only on its way to this provider.
        #[arg(long)]
        source: Option<String>,
    },
}

/// `carry outbox`.
pub fn outbox(home: &Path, action: Option<OutboxAction>) -> Result<Outcome> {
    let profile = open(home)?;
    if let Some(action) = action {
        let (id, source, what) = match action {
            OutboxAction::Hold { id, source } => (id, source, sync::Hold::Hold),
            OutboxAction::Release { id, source } => (id, source, sync::Hold::Release),
            OutboxAction::Drop { id, source } => (id, source, sync::Hold::Drop),
        };
        let n = sync::hold_reading(&profile, id, source.as_deref(), what)?;
        let mut said = Said::new(json!({ "item": id, "changed": n }));
        said!(
            said,
            "#{id}: {}",
            match what {
                sync::Hold::Hold => "held; it stays here until you release it",
                sync::Hold::Release => "released; it goes at the next sync",
                sync::Hold::Drop => "dropped; it will not be sent",
            }
        );
        return Ok(Outcome::ok(said));
    }
    let entries = sync::outbox(&profile)?;
    let mut said = Said::new(json!(entries));
    if entries.is_empty() {
        said!(
            said,
            "The outbox is empty: no readings are waiting to be sent."
        );
    }
    for e in &entries {
        let why = e
            .last_error
            .as_deref()
            .map(|r| format!(" — {r}"))
            .unwrap_or_default();
        said!(
            said,
            "#{:<6} to {:<10} {:<8} tries {}  {}{why}",
            e.item_id,
            e.source,
            e.state,
            e.attempts,
            e.display
        );
    }
    Ok(Outcome::ok(said))
}
