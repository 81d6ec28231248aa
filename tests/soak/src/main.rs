//! `carry-soak`: a bounded load and soak of `carry-endpoint` over loopback (`make soak`;
//! not in CI). It seeds and serves the endpoint as a child process, signs in relay
//! identities and creates share links, then for `--seconds` sends paced share-link
//! manifests, mailbox traffic and FHIR search pages, plus one noisy client that runs
//! into the rate limit on purpose, while it samples the endpoint's memory. It drains
//! the mailboxes, reports per route, and passes only with no errors, no lost
//! envelopes and flat memory. Exit 0: pass; 1: fail; 2: it could not set up.

#![forbid(unsafe_code)]

mod envelope;
mod http;
mod load;
mod report;
mod server;
mod stats;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::thread::sleep;
use std::time::{Duration, Instant};

use clap::Parser;
use ring::rand::SystemRandom;

use crate::http::Http;
use crate::load::Shared;
use crate::report::Summary;

/// The seeded record: a Synthea patient under `FIXTURES/fhir/synthea`.
const FIXTURE: &str = "sotf-Clemente_Kreiger_1484a42d-0eaf-4654-9cbf-6b050a5cd73b.json";
/// The Patient in it.
const PATIENT: &str = "d78af07c-9cb9-4f31-9b11-c45a28f2eec8";
/// The tenant it is seeded into.
const TENANT: &str = "gp";
/// Relay identities that receive (the first four also send).
const IDENTITIES: usize = 8;
/// How often the endpoint's memory is read.
const RSS_EVERY: Duration = Duration::from_secs(5);
/// Ciphertext bytes of the small share-link files (embedded in manifests).
const SMALL_FILE: usize = 1_500;
/// Ciphertext bytes of the large ones (about 200 KB of JWE text; given by location).
const LARGE_FILE: usize = 150_000;

/// A bounded loopback load and soak of the endpoint.
#[derive(Parser, Debug)]
#[command(name = "carry-soak", version, about)]
struct Cli {
    /// The carry-endpoint binary.
    #[arg(long)]
    endpoint: PathBuf,
    /// The shared fixtures folder (with fhir/synthea inside).
    #[arg(long)]
    fixtures: PathBuf,
    /// How long the load runs, in seconds (a drain of up to --drain-seconds follows).
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    seconds: u64,
    /// The target total request rate, per second (paced; the noisy client comes on top).
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// The endpoint's --rate-limit, per client and second.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    rate_limit: u32,
    /// Where to write the Markdown report too (it always goes to standard output).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The most the endpoint's RSS may grow from 60 s in to the end, in MiB.
    #[arg(long, default_value_t = 32)]
    rss_growth_mib: u64,
    /// `_count` of a FHIR search page (the patient has 48 Observations).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=500))]
    fhir_count: u64,
    /// How long each of the noisy client's bursts lasts, in seconds (one a minute).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=40))]
    noisy_seconds: u64,
    /// The longest drain after the load, in seconds.
    #[arg(long, default_value_t = 30)]
    drain_seconds: u64,
}

/// Why the soak could not run to a verdict (exit 2).
#[derive(Debug, thiserror::Error)]
enum SoakError {
    /// Something before the load failed.
    #[error("setup failed: {0}")]
    Setup(String),
    /// The report could not be written.
    #[error("cannot write the report to {0}: {1}")]
    Report(String, std::io::Error),
}

impl From<String> for SoakError {
    fn from(message: String) -> Self {
        SoakError::Setup(message)
    }
}

impl From<&str> for SoakError {
    fn from(message: &str) -> Self {
        SoakError::Setup(message.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli).and_then(|summary| publish(&cli, &summary).map(|()| summary)) {
        Ok(summary) if summary.passed() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("carry-soak: {e}");
            ExitCode::from(2)
        }
    }
}

/// Print the report and write it to `--out`.
fn publish(cli: &Cli, summary: &Summary) -> Result<(), SoakError> {
    let md = report::markdown(summary);
    print!("{md}");
    if let Some(out) = &cli.out {
        std::fs::write(out, &md).map_err(|e| SoakError::Report(out.display().to_string(), e))?;
        eprintln!("carry-soak: report written to {}", out.display());
    }
    Ok(())
}

/// The ids of the Observations in a Bundle file, sorted.
fn observations_in(bundle: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", bundle.display()))?;
    let mut ids: Vec<String> = json["entry"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter(|e| e["resource"]["resourceType"] == "Observation")
        .filter_map(|e| e["resource"]["id"].as_str().map(str::to_string))
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Set up, run the load, drain, and sum up.
fn run(cli: &Cli) -> Result<Summary, SoakError> {
    if !(cli.rate.is_finite() && cli.rate > 0.0) {
        return Err("--rate must be above 0".into());
    }
    let plan = load::Plan::new(cli.rate);
    plan.check(cli.rate_limit)?;
    let fixture = cli.fixtures.join("fhir/synthea").join(FIXTURE);
    let observations = observations_in(&fixture)?;
    if observations.is_empty() {
        return Err(format!("{} has no Observations", fixture.display()).into());
    }

    let tmp = tempfile::Builder::new()
        .prefix("carry-soak-")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary folder: {e}"))?;
    let db = format!("sqlite://{}", tmp.path().join("soak.db").display());
    let seeded = server::seed(&cli.endpoint, &db, TENANT, &fixture)?;
    eprintln!("carry-soak: seeded {seeded}");
    let limit = cli.rate_limit.to_string();
    let auth = format!("bearer:{}", load::FHIR_TOKEN);
    // Callers are told apart by the X-Forwarded-For each client sends (see http.rs).
    // A few identities carry all the mailbox traffic here, far past what one person's
    // key may post (`--relay-sender-rate`, tested in endpoint/tests/relay.rs), so that
    // cap is lifted: the soak measures the endpoint under load, not that cap.
    let args = [
        "--auth",
        &auth,
        "--rate-limit",
        &limit,
        "--trust-forwarded-for",
        "--relay-sender-rate",
        "1000000",
    ];
    let log = tmp.path().join("endpoint.log");
    let mut server = server::start(&cli.endpoint, &db, &args, &log)?;
    let base = server.base.clone();
    eprintln!(
        "carry-soak: endpoint pid {} at {base}; setting up",
        server.pid()
    );

    let (http, rng) = (Http::new(), SystemRandom::new());
    let mut identities = Vec::new();
    for _ in 0..IDENTITIES {
        identities.push(http::sign_in(&http, &base, &rng)?);
    }
    let noisy = http::sign_in(&http, &base, &rng)?;
    let owner = &identities[0].token;
    let mut links = Vec::new();
    for (size, flags) in [
        (SMALL_FILE, "L"),
        (LARGE_FILE, "L"),
        (SMALL_FILE, ""),
        (LARGE_FILE, ""),
    ] {
        let file = http::fake_jwe(&rng, size)?;
        let embedded = file.len() <= load::EMBED_MAX;
        links.push(http::create_link(
            &http, &base, owner, file, flags, embedded,
        )?);
    }
    let fhir_count = usize::try_from(cli.fhir_count).unwrap_or(10);
    let first = format!("{base}/gp/fhir/Observation?patient={PATIENT}&_count={fhir_count}");
    let (walked, pages) = load::walk_once(&http, &base, &first)?;
    load::check_walk(walked, &observations, pages)
        .map_err(|e| format!("the seeded patient's search: {e}"))?;

    let sh = Shared::new(
        base,
        identities,
        noisy,
        links,
        PATIENT.to_string(),
        fhir_count,
        observations,
        Duration::from_secs(cli.noisy_seconds),
        plan.clone(),
        cli.seconds,
    );
    eprintln!(
        "carry-soak: load for {} s at about {:.0} requests/s",
        cli.seconds,
        plan.total()
    );

    let mut rss: Vec<report::Sample> = Vec::new();
    let mut endpoint_exit = None;
    let (mut load_s, mut drain_s) = (0.0, 0.0);
    let drain_max = Duration::from_secs(cli.drain_seconds);
    let run_problems = load::run(
        &sh,
        || watch(&sh, &mut server, &mut rss, &mut endpoint_exit),
        || {
            let t = Instant::now();
            load_s = t.duration_since(sh.start).as_secs_f64();
            while t.elapsed() < drain_max
                && !sh.abort.load(Ordering::Relaxed)
                && !sh.missing().is_empty()
            {
                sleep(Duration::from_millis(100));
            }
            drain_s = t.elapsed().as_secs_f64();
        },
    );
    if endpoint_exit.is_none() {
        endpoint_exit = server.exited();
    }
    if endpoint_exit.is_none() {
        match server.rss_kib() {
            Ok(k) => rss.push((sh.start.elapsed().as_secs_f64(), k)),
            Err(e) => sh.stats.failure("memory", &e),
        }
    }
    let log_text = std::fs::read_to_string(&server.log).unwrap_or_default();
    drop(server);

    Ok(summarise(
        cli,
        &sh,
        rss,
        endpoint_exit,
        (load_s, drain_s),
        (sh.observations.len(), pages),
        log_text,
        run_problems,
    ))
}

/// During the load, on the main thread: read the endpoint's memory every
/// [`RSS_EVERY`] and end the load early if the endpoint exits.
fn watch(
    sh: &Shared,
    server: &mut server::Server,
    rss: &mut Vec<report::Sample>,
    exit: &mut Option<String>,
) {
    let mut tick = sh.start + RSS_EVERY;
    while !sh.load_over() {
        sleep(Duration::from_millis(100));
        if let Some(status) = server.exited() {
            *exit = Some(status);
            sh.abort.store(true, Ordering::Relaxed);
            return;
        }
        if Instant::now() >= tick && tick <= sh.end {
            match server.rss_kib() {
                Ok(k) => rss.push((tick.duration_since(sh.start).as_secs_f64(), k)),
                Err(e) => sh.stats.failure("memory", &e),
            }
            tick += RSS_EVERY;
        }
    }
    // The sample due at the very end of the load.
    if tick <= sh.end + Duration::from_millis(1) {
        if let Ok(k) = server.rss_kib() {
            rss.push((tick.duration_since(sh.start).as_secs_f64(), k));
        }
    }
}

/// Cross-check the envelopes and gather the report's figures.
#[allow(clippy::too_many_arguments)]
fn summarise(
    cli: &Cli,
    sh: &Shared,
    rss: Vec<report::Sample>,
    endpoint_exit: Option<String>,
    (load_s, drain_s): (f64, f64),
    walk: (usize, usize),
    log_text: String,
    run_problems: Vec<String>,
) -> Summary {
    let missing = sh.missing();
    let (delivered_n, received_n, unrecorded) = {
        let delivered = sh.delivered.lock().unwrap_or_else(|p| p.into_inner());
        let received = sh.received.lock().unwrap_or_else(|p| p.into_inner());
        let mut unrecorded = 0;
        let mut ids: Vec<_> = received.iter().collect();
        ids.sort_unstable_by_key(|(id, _)| **id);
        for (id, got) in ids {
            match delivered.get(id) {
                None => unrecorded += 1,
                Some(sent) if sent != got => sh.stats.failure(
                    load::ENVELOPES,
                    &format!(
                        "envelope {id} was sent to mailbox {} as #{} but arrived at mailbox {} as #{}",
                        sent.mailbox, sent.seq, got.mailbox, got.seq
                    ),
                ),
                Some(_) => {}
            }
        }
        (delivered.len(), received.len(), unrecorded)
    };
    let plan = &sh.plan;
    let buckets: Vec<String> = plan
        .buckets()
        .iter()
        .map(|(b, r)| format!("{b} {r:.0}/s"))
        .collect();
    Summary {
        endpoint: cli.endpoint.display().to_string(),
        seconds: cli.seconds,
        load_s,
        drain_s,
        rate: cli.rate,
        rate_limit: cli.rate_limit,
        plan: vec![
            format!(
                "paced, per second: {:.0} FHIR search pages (2 threads), {:.0} manifests \
                 (2 threads; half are followed by a file fetch), {:.0} deliveries of 1–16 KB \
                 ({} senders), {:.1} mailbox polls by each of {IDENTITIES} receivers \
                 (a fetch, and an ack when something came)",
                plan.fhir,
                plan.manifests,
                plan.deliveries,
                load::SENDERS,
                plan.polls_each
            ),
            format!(
                "busiest rate-limit buckets of the paced clients: {} (each under half the limit)",
                buckets.join(", ")
            ),
            format!(
                "noisy client: GET /relay/v1/mailbox as fast as one thread can, with its own \
                 session, for {} s from 20 s into every minute",
                cli.noisy_seconds
            ),
        ],
        walk,
        routes: sh.stats.routes(),
        errors: sh.stats.errors(),
        first_errors: sh.stats.first_errors(),
        delivered: delivered_n,
        received: received_n,
        missing,
        unrecorded,
        duplicates: sh.duplicates.load(Ordering::Relaxed),
        noisy_route: load::NOISY,
        deliberate_429: sh.stats.deliberate_429(),
        noisy_bursts: sh.noisy_bursts.load(Ordering::Relaxed),
        rss,
        warm_at_s: 60.0,
        rss_limit_mib: cli.rss_growth_mib,
        endpoint_exit,
        log: log_text.lines().map(str::to_string).collect(),
        run_problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }

    #[test]
    fn observations_are_read_from_a_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.json");
        std::fs::write(
            &path,
            r#"{"resourceType":"Bundle","entry":[
                {"resource":{"resourceType":"Observation","id":"z"}},
                {"resource":{"resourceType":"Patient","id":"p"}},
                {"resource":{"resourceType":"Observation","id":"a"}}]}"#,
        )
        .unwrap();
        assert_eq!(observations_in(&path).unwrap(), ["a", "z"]);
    }
}
