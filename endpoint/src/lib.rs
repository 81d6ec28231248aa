//! The Carry trust endpoint as a library: the routes of every part (each tenant's FHIR
//! R4 sandbox over embedded SQLite or PostgreSQL, the SMART authorization server, the
//! share relay `/relay/v1`, SMART Health Links `/shl` with the web viewer `/view`,
//! encrypted backups `/backup/v1`, a mock NHS login issuer `/nhs-login`, and a mock
//! of GP Connect Access Record: Structured under `/{tenant}/gpconnect/fhir`), built
//! into one router. The `carry-endpoint` binary
//! serves it with [`serve`] (header and idle timeouts per connection); fuzz targets
//! and load tests call it in process. Request bodies are read only after a route's
//! checks, within its cap and a process-wide in-flight budget (`http/body.rs`).

#![forbid(unsafe_code)]

mod backup;
mod error;
mod fhir;
mod gp_connect;
mod http;
mod links;
pub mod nhs_login;
mod relay;
mod storage;
mod time;

pub use fhir::seed::TenantSeeded;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;

/// Every option of `serve` besides the storage and the address.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "endpoint_options")]
pub struct Options {
    #[command(flatten)]
    serve: ServeOptions,
    #[command(flatten)]
    relay: relay::Options,
    #[command(flatten)]
    shl: links::Options,
    #[command(flatten)]
    backup: backup::Options,
    #[command(flatten)]
    nhs_login: nhs_login::Options,
    #[command(flatten)]
    gp_connect: gp_connect::Options,
}

impl Options {
    /// The options `serve` runs with when none are given.
    pub fn defaults() -> Result<Self, String> {
        Self::from_args(&[])
    }

    /// The options from `serve`'s command-line flags, e.g. `["--auth", "none"]`.
    pub fn from_args(args: &[&str]) -> Result<Self, String> {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            options: Options,
        }
        Only::try_parse_from(std::iter::once("carry-endpoint").chain(args.iter().copied()))
            .map(|o| o.options)
            .map_err(|e| e.to_string())
    }
}

/// How the server authorizes, limits and misbehaves.
#[derive(Debug, Clone, clap::Args)]
struct ServeOptions {
    /// How FHIR requests are authorized: smart (SMART App Launch), none, or
    /// bearer:TOKEN (one static token).
    #[arg(long, default_value = "smart")]
    auth: String,
    /// How long an access token lives, in seconds.
    #[arg(long, default_value_t = 3600)]
    token_ttl: u32,
    /// Seconds after rotation in which a spent refresh token works exactly once more
    /// (a client retrying after a lost answer; the tokens its first use gave stop
    /// working). Any further use, or one after this window, is a replay and revokes
    /// the token family. 0: no retry.
    #[arg(long, default_value_t = 30)]
    refresh_reuse_grace: u32,
    /// A redirect URI SMART clients may be sent back to; repeat for several (giving
    /// any replaces the defaults). `loopback` stands for any http URI on 127.0.0.1 or
    /// [::1], any port (RFC 8252); a registered http://127.0.0.1 or http://[::1] URI
    /// matches on any port; a custom app scheme (e.g. health.carry.app:/callback)
    /// works only if registered; javascript:, data: and the like never.
    #[arg(long = "redirect-uri", value_name = "URI", default_values = crate::fhir::smart::DEFAULT_REDIRECT_URIS)]
    redirect_uris: Vec<String>,
    /// Offer only plain searches: no $everything and no _lastUpdated.
    #[arg(long)]
    plain_search: bool,
    /// Publish no CapabilityStatement (metadata answers 404), so clients must find out
    /// what the server offers by trying.
    #[arg(long)]
    no_metadata: bool,
    /// The largest page of a search or $everything, 1 to 500; a client asking for more
    /// (`_count`) gets pages this size and follows the next links, as with servers
    /// that cap their pages (HAPI's maximum page size, for one).
    #[arg(long, value_name = "RESOURCES", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(1..=crate::fhir::MAX_COUNT as u64))]
    max_count: u64,
    /// Requests per second per client on the FHIR APIs, the relay, the share-link
    /// and the backup routes; beyond it, 429 with Retry-After.
    #[arg(long)]
    rate_limit: Option<u32>,
    /// Behind a reverse proxy that sets `X-Forwarded-For`: rate-limit requests without
    /// a token by the last address in it (the one the proxy added) rather than by the
    /// proxy's own address. Only with a proxy that overwrites or appends to the header.
    #[arg(long)]
    trust_forwarded_for: bool,
    /// Inject a fault into every Nth FHIR request, as KIND/N with KIND one of 500,
    /// drop, truncate, delay, short (a search page without its next link and with a
    /// total that promises more). Repeat for several. For tests only.
    #[arg(long = "fault")]
    faults: Vec<String>,
    /// How long a delay fault waits, in milliseconds.
    #[arg(long, default_value_t = 1500)]
    fault_delay_ms: u64,
    /// The most bytes of request bodies all requests together may hold in memory at
    /// once. A body reserves its declared length (or room as it arrives) before it is
    /// read; one that does not fit gets 503 with Retry-After. Backup blobs go to a
    /// temporary file and reserve 512 KiB each.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20,
          value_parser = clap::value_parser!(u64).range(1..))]
    body_budget_bytes: u64,
    /// Seconds a client has to send a whole request head, from connecting or from the
    /// previous answer on a kept-alive connection; then the connection is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_timeout: u64,
    /// Seconds a connection may go without a byte moving either way before it is
    /// closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    idle_timeout: u64,
    /// Seconds a request body may take, plus one for every 64 KiB received; a slower
    /// body gets 408.
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    body_timeout: u64,
}

/// Log each request by its route pattern, never its path: paths carry ids.
async fn access_log(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().clone();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    tracing::info!(%method, route, status = resp.status().as_u16(), micros = started.elapsed().as_micros() as u64, "request");
    resp
}

fn valid_tenant(t: &str) -> bool {
    (1..=40).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Where the endpoint keeps everything: opened from `sqlite://PATH` or `postgres://…`.
#[derive(Clone)]
pub struct Storage(Arc<dyn crate::storage::Store>);

impl Storage {
    /// Open (and create or upgrade) the storage at `url`.
    pub fn open(url: &str) -> Result<Self, String> {
        crate::storage::open_url(url)
            .map(Self)
            .map_err(|e| e.to_string())
    }

    /// Load the FHIR Bundles at `from` (a file or a folder) into `tenants`, and return
    /// what each tenant took: the resources written, and those refused because they
    /// are in no patient's compartment and not of a shared type. With several tenants
    /// and `split_by_encounter`, each patient's encounters alternate between them.
    pub fn seed(
        &self,
        tenants: &[String],
        from: &Path,
        split_by_encounter: bool,
    ) -> Result<Vec<TenantSeeded>, String> {
        if let Some(bad) = tenants.iter().find(|t| !valid_tenant(t)) {
            return Err(format!("tenant '{bad}' must be 1-40 of a-z 0-9 -"));
        }
        crate::fhir::seed::seed(
            self.0.as_ref(),
            tenants,
            from,
            split_by_encounter,
            time::now_ms(),
        )
        .map(|done| done.per_tenant)
    }

    /// Remove one resource, given as `Type/id`, from a tenant.
    pub fn delete(&self, tenant: &str, resource: &str) -> Result<(), String> {
        let (rtype, id) = resource
            .split_once('/')
            .ok_or_else(|| format!("'{resource}' is not Type/id"))?;
        if self
            .0
            .delete(tenant, rtype, id)
            .map_err(|e| e.to_string())?
        {
            Ok(())
        } else {
            Err(format!("{tenant} holds no {rtype}/{id}"))
        }
    }
}

/// The whole endpoint as one router over `storage`. `public_base` is the URL clients
/// reach it at (used in links and SMART discovery), without a trailing slash.
pub fn router(storage: &Storage, public_base: &str, options: &Options) -> Result<Router, String> {
    let store = storage.0.clone();
    let public_base = public_base.trim_end_matches('/').to_string();
    let serve = &options.serve;
    let faults = serve
        .faults
        .iter()
        .map(|f| crate::http::limits::Fault::parse(f))
        .collect::<Result<Vec<_>, _>>()?;
    if !faults.is_empty() {
        tracing::warn!(
            count = faults.len(),
            "fault injection is on: for tests only"
        );
    }
    let origin = relay::origin_of(&public_base)?;
    let relay = Arc::new(relay::Relay::new(store.clone(), &options.relay, &origin));
    let shl = Arc::new(links::Shl::new(
        store.clone(),
        relay.clone(),
        public_base.clone(),
        &options.shl,
    ));
    let backup = Arc::new(backup::Backup::new(
        store.clone(),
        relay.clone(),
        &options.backup,
    ));
    let viewer = Arc::new(crate::links::viewer::Viewer::new(&public_base));
    let bodies = crate::http::body::BodyLimits {
        budget: crate::http::body::Budget::new(
            usize::try_from(serve.body_budget_bytes).unwrap_or(usize::MAX),
        ),
        timeout: Duration::from_secs(serve.body_timeout),
        spool_dir: options.backup.spool_dir.clone(),
    };
    let largest = [
        relay.body_limit(),
        shl.body_limit(),
        fhir::BODY_LIMIT,
        crate::fhir::smart::FORM_LIMIT,
        crate::http::body::SPOOL_WINDOW,
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    if let Some(dir) = bodies.spool_dir.as_deref().filter(|d| !d.is_dir()) {
        return Err(format!(
            "--backup-spool-dir {} is not a folder",
            dir.display()
        ));
    }
    if bodies.budget.limit() < largest {
        return Err(format!(
            "--body-budget-bytes ({}) must hold the largest request body read into memory \
             ({largest} bytes, from --shl-max-file, --relay-max-envelope or the 2 MiB of FHIR)",
            bodies.budget.limit()
        ));
    }
    let redirect_uris = crate::fhir::smart::RedirectUris::parse(&serve.redirect_uris)?;
    // The mock NHS login sends codes where SMART sign-in does: the --redirect-uri list.
    let nhs_redirects = redirect_uris.clone();
    let nhs_login = Arc::new(nhs_login::NhsLogin::new(
        &public_base,
        &options.nhs_login,
        Box::new(move |uri| nhs_redirects.allows(uri)),
    )?);
    let gp_connect = Arc::new(gp_connect::GpConnect::load(
        &options.gp_connect,
        nhs_login.clone(),
    )?);
    let app = Arc::new(fhir::App {
        store,
        public_base,
        auth: crate::fhir::access::AuthMode::parse(&serve.auth)?,
        token_ttl_ms: i64::from(serve.token_ttl.max(1)) * 1000,
        reuse_grace_ms: i64::from(serve.refresh_reuse_grace) * 1000,
        redirect_uris,
        plain: serve.plain_search,
        no_metadata: serve.no_metadata,
        max_count: usize::try_from(serve.max_count).unwrap_or(crate::fhir::MAX_COUNT),
    });
    let limits = Arc::new(crate::http::limits::Limits {
        rate: serve.rate_limit.map(crate::http::limits::RateLimit::new),
        trust_forwarded_for: serve.trust_forwarded_for,
        faults,
        delay: std::time::Duration::from_millis(serve.fault_delay_ms),
    });
    Ok(Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .merge(fhir::routes())
        .merge(crate::fhir::smart::routes())
        .merge(relay::routes(relay))
        .merge(links::routes(shl))
        .merge(backup::routes(backup))
        .merge(crate::links::viewer::routes(viewer))
        .merge(nhs_login::routes(nhs_login))
        .merge(gp_connect::routes(gp_connect))
        .layer(axum::Extension(bodies))
        .layer(middleware::from_fn_with_state(
            limits,
            crate::http::limits::layer,
        ))
        .layer(middleware::from_fn(access_log))
        .with_state(app))
}

/// Serve `router` on `listener` with the connection timeouts of `options` (see
/// `--header-timeout` and `--idle-timeout`) until `shutdown` resolves; then the
/// requests in flight finish and it returns. Handlers see the peer's address.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    options: &Options,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let limits = crate::http::server::ConnectionLimits {
        header: Duration::from_secs(options.serve.header_timeout),
        idle: Duration::from_secs(options.serve.idle_timeout),
    };
    crate::http::server::serve(listener, router, limits, shutdown).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_defaults_parse() {
        assert!(super::Options::defaults().is_ok());
        assert!(super::Options::from_args(&["--auth", "none"]).is_ok());
        assert!(super::Options::from_args(&["--no-such-flag"]).is_err());
    }

    #[test]
    fn a_budget_smaller_than_a_body_cap_is_refused() {
        let storage = super::Storage::open("sqlite://:memory:").unwrap();
        let small = super::Options::from_args(&["--body-budget-bytes", "1000000"]).unwrap();
        let e = super::router(&storage, "http://x.invalid", &small).unwrap_err();
        assert!(e.contains("--body-budget-bytes"), "{e}");
        let fits = super::Options::from_args(&[
            "--body-budget-bytes",
            "3000000",
            "--shl-max-file",
            "1000000",
        ])
        .unwrap();
        assert!(super::router(&storage, "http://x.invalid", &fits).is_ok());
        let nowhere =
            super::Options::from_args(&["--backup-spool-dir", "/no/such/folder"]).unwrap();
        let e = super::router(&storage, "http://x.invalid", &nowhere).unwrap_err();
        assert!(e.contains("--backup-spool-dir"), "{e}");
    }
}
