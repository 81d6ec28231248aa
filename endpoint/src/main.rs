//! `carry-endpoint`: the reference trust endpoint. Today it serves several tenants'
//! FHIR R4 sandboxes (each a provider with its own base, e.g. `/gp/fhir`) over
//! embedded SQLite, and seeds them from FHIR Bundles; a share relay (`/relay/v1`) that
//! passes encrypted envelopes between people's mailboxes; and a SMART Health Links host
//! (`/shl`) with its web viewer (`/view`); and encrypted backups (`/backup/v1`).

#![forbid(unsafe_code)]
// No panics on paths inputs can reach: tests may unwrap.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::todo,
        clippy::unimplemented
    )
)]

mod access;
mod backup;
mod backup_store;
#[cfg(test)]
mod conformance;
mod fhir;
mod limits;
mod postgres;
mod relay;
mod relay_store;
mod seed;
mod shl;
mod shl_store;
mod smart;
mod sqlite;
mod store;
mod time;
mod viewer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use clap::{Parser, Subcommand};

/// The Carry trust endpoint.
#[derive(Parser)]
#[command(name = "carry-endpoint", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every tenant's FHIR API, the share relay, share links with their viewer,
    /// and encrypted backups.
    Serve {
        /// Storage: sqlite://PATH or postgres://….
        #[arg(long, default_value = "sqlite://carry-endpoint.db")]
        db: String,
        /// Address to listen on (port 0 picks a free one; the address is printed).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// The base URL clients reach this server at, for links (default: http://LISTEN).
        #[arg(long)]
        public_url: Option<String>,
        #[command(flatten)]
        options: ServeOptions,
        #[command(flatten)]
        relay: relay::Options,
        #[command(flatten)]
        shl: shl::Options,
        #[command(flatten)]
        backup: backup::Options,
    },
    /// Remove one resource from a tenant (to test how clients notice deletions).
    Delete {
        /// Storage: sqlite://PATH or postgres://….
        #[arg(long)]
        db: String,
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The resource, as Type/id.
        resource: String,
    },
    /// Load FHIR Bundles into one or more tenants.
    Seed {
        /// Storage: sqlite://PATH or postgres://….
        #[arg(long)]
        db: String,
        /// A tenant to load into; repeat for several.
        #[arg(long = "tenant", required = true)]
        tenants: Vec<String>,
        /// A Bundle file, or a folder of them.
        #[arg(long)]
        from: PathBuf,
        /// With several tenants: alternate each patient's encounters between them;
        /// the Patient and what belongs to no encounter go to every tenant.
        #[arg(long)]
        split_by_encounter: bool,
    },
}

/// How the server authorizes, limits and misbehaves.
#[derive(clap::Args)]
struct ServeOptions {
    /// How FHIR requests are authorized: smart (SMART App Launch), none, or
    /// bearer:TOKEN (one static token).
    #[arg(long, default_value = "smart")]
    auth: String,
    /// How long an access token lives, in seconds.
    #[arg(long, default_value_t = 3600)]
    token_ttl: u32,
    /// Seconds after rotation in which a spent refresh token still works once more
    /// (a client retrying after a lost answer); after that a replay revokes the family.
    #[arg(long, default_value_t = 30)]
    refresh_reuse_grace: u32,
    /// Offer only plain searches: no $everything and no _lastUpdated.
    #[arg(long)]
    plain_search: bool,
    /// Publish no CapabilityStatement (metadata answers 404), so clients must find out
    /// what the server offers by trying.
    #[arg(long)]
    no_metadata: bool,
    /// Requests per second per client on the FHIR APIs, the relay, the share-link
    /// and the backup routes; beyond it, 429 with Retry-After.
    #[arg(long)]
    rate_limit: Option<u32>,
    /// Inject a fault into every Nth FHIR request, as KIND/N with KIND one of 500,
    /// drop, truncate, delay. Repeat for several. For tests only.
    #[arg(long = "fault")]
    faults: Vec<String>,
    /// How long a delay fault waits, in milliseconds.
    #[arg(long, default_value_t = 1500)]
    fault_delay_ms: u64,
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

async fn serve(
    db: String,
    listen: SocketAddr,
    public_url: Option<String>,
    options: ServeOptions,
    relay_options: relay::Options,
    shl_options: shl::Options,
    backup_options: backup::Options,
) -> Result<(), String> {
    let store = store::open_url(&db).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let public_base = public_url
        .unwrap_or_else(|| format!("http://{addr}"))
        .trim_end_matches('/')
        .to_string();
    let faults = options
        .faults
        .iter()
        .map(|f| limits::Fault::parse(f))
        .collect::<Result<Vec<_>, _>>()?;
    if !faults.is_empty() {
        tracing::warn!(
            count = faults.len(),
            "fault injection is on: for tests only"
        );
    }
    let relay = Arc::new(relay::Relay::new(store.clone(), &relay_options));
    let shl = Arc::new(shl::Shl::new(
        store.clone(),
        relay.clone(),
        public_base.clone(),
        &shl_options,
    ));
    let backup = Arc::new(backup::Backup::new(
        store.clone(),
        relay.clone(),
        &backup_options,
    ));
    let viewer = Arc::new(viewer::Viewer::new(&public_base));
    let app = Arc::new(fhir::App {
        store,
        public_base,
        auth: access::AuthMode::parse(&options.auth)?,
        token_ttl_ms: i64::from(options.token_ttl.max(1)) * 1000,
        reuse_grace_ms: i64::from(options.refresh_reuse_grace) * 1000,
        plain: options.plain_search,
        no_metadata: options.no_metadata,
        limits: limits::Limits {
            rate: options.rate_limit.map(limits::RateLimit::new),
            faults,
            delay: std::time::Duration::from_millis(options.fault_delay_ms),
        },
    });
    let router = Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .merge(fhir::routes())
        .merge(smart::routes())
        .merge(relay::routes(relay))
        .merge(shl::routes(shl))
        .merge(backup::routes(backup))
        .merge(viewer::routes(viewer))
        .layer(middleware::from_fn_with_state(app.clone(), limits::layer))
        .layer(middleware::from_fn(access_log))
        .with_state(app);
    println!("listening on http://{addr}");
    tracing::info!(%addr, "listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

/// Ctrl-C or SIGTERM: finish the requests in flight, then stop.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}

fn delete(db: &str, tenant: &str, resource: &str) -> Result<(), String> {
    let (rtype, id) = resource
        .split_once('/')
        .ok_or_else(|| format!("'{resource}' is not Type/id"))?;
    let store = store::open_url(db).map_err(|e| e.to_string())?;
    if store.delete(tenant, rtype, id).map_err(|e| e.to_string())? {
        println!("deleted {rtype}/{id} from {tenant}");
        Ok(())
    } else {
        Err(format!("{tenant} holds no {rtype}/{id}"))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CARRY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let result = match cli.command {
        Command::Serve {
            db,
            listen,
            public_url,
            options,
            relay,
            shl,
            backup,
        } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| rt.block_on(serve(db, listen, public_url, options, relay, shl, backup))),
        Command::Delete {
            db,
            tenant,
            resource,
        } => delete(&db, &tenant, &resource),
        Command::Seed {
            db,
            tenants,
            from,
            split_by_encounter,
        } => {
            if let Some(bad) = tenants.iter().find(|t| !valid_tenant(t)) {
                Err(format!("tenant '{bad}' must be 1-40 of a-z 0-9 -"))
            } else {
                store::open_url(&db)
                    .map_err(|e| e.to_string())
                    .and_then(|store| {
                        let done = seed::seed(
                            store.as_ref(),
                            &tenants,
                            &from,
                            split_by_encounter,
                            time::now_ms(),
                        )?;
                        for (t, n) in &done.per_tenant {
                            println!("{t}: {n} resources");
                        }
                        Ok(())
                    })
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }
}
