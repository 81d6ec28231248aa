//! `carry-endpoint`: the reference trust endpoint. It serves several tenants' FHIR R4
//! sandboxes (each a provider with its own base, e.g. `/gp/fhir`) over embedded SQLite
//! or PostgreSQL, and seeds them from FHIR Bundles; a share relay (`/relay/v1`) that
//! passes encrypted envelopes between people's mailboxes; a SMART Health Links host
//! (`/shl`) with its web viewer (`/view`); and encrypted backups (`/backup/v1`). The
//! routes live in the library (`lib.rs`); this is the command line around them.

#![forbid(unsafe_code)]
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

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use carry_endpoint::{Options, Storage};
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
        options: Box<Options>,
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

async fn serve(
    db: String,
    listen: SocketAddr,
    public_url: Option<String>,
    options: Box<Options>,
) -> Result<(), String> {
    let storage = Storage::open(&db)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let public_base = public_url.unwrap_or_else(|| format!("http://{addr}"));
    let router = carry_endpoint::router(&storage, &public_base, &options)?;
    println!("listening on http://{addr}");
    tracing::info!(%addr, "listening");
    // The peer's address reaches the rate limit, which knows callers without a token
    // by it; connections get the header and idle timeouts of `options`.
    carry_endpoint::serve(listener, router, &options, shutdown_signal())
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
            options,
        } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| rt.block_on(serve(db, listen, public_url, options))),
        Command::Delete {
            db,
            tenant,
            resource,
        } => Storage::open(&db)
            .and_then(|s| s.delete(&tenant, &resource))
            .map(|()| {
                println!("deleted {resource} from {tenant}");
            }),
        Command::Seed {
            db,
            tenants,
            from,
            split_by_encounter,
        } => Storage::open(&db)
            .and_then(|s| s.seed(&tenants, &from, split_by_encounter))
            .map(|done| {
                for t in &done {
                    println!("{t}");
                }
            }),
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
