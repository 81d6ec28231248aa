//! `carry-endpoint`: the reference trust endpoint. Today it serves several tenants'
//! FHIR R4 sandboxes (each a provider with its own base, e.g. `/gp/fhir`) over
//! embedded SQLite, and seeds them from FHIR Bundles.

#![forbid(unsafe_code)]

#[cfg(test)]
mod conformance;
mod fhir;
mod seed;
mod sqlite;
mod store;
mod time;

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
    /// Serve every tenant's FHIR API.
    Serve {
        /// Storage: sqlite://PATH.
        #[arg(long, default_value = "sqlite://carry-endpoint.db")]
        db: String,
        /// Address to listen on (port 0 picks a free one; the address is printed).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// The base URL clients reach this server at, for links (default: http://LISTEN).
        #[arg(long)]
        public_url: Option<String>,
    },
    /// Load FHIR Bundles into one or more tenants.
    Seed {
        /// Storage: sqlite://PATH.
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

async fn serve(db: String, listen: SocketAddr, public_url: Option<String>) -> Result<(), String> {
    let store = sqlite::open_url(&db).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let public_base = public_url
        .unwrap_or_else(|| format!("http://{addr}"))
        .trim_end_matches('/')
        .to_string();
    let app = Arc::new(fhir::App {
        store: Arc::new(store),
        public_base,
    });
    let router = Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .merge(fhir::routes())
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
        } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| rt.block_on(serve(db, listen, public_url))),
        Command::Seed {
            db,
            tenants,
            from,
            split_by_encounter,
        } => {
            if let Some(bad) = tenants.iter().find(|t| !valid_tenant(t)) {
                Err(format!("tenant '{bad}' must be 1-40 of a-z 0-9 -"))
            } else {
                sqlite::open_url(&db)
                    .map_err(|e| e.to_string())
                    .and_then(|store| {
                        let done = seed::seed(
                            &store,
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
