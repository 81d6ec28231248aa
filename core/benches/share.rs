//! The sharing benchmark: deliver a 2,000-resource scoped snapshot from a patient to a
//! carer through the reference endpoint's relay (SQLite, loopback), end to end: the
//! patient's device scopes, seals and posts it; the carer's device fetches, opens,
//! verifies and stores it as a separate profile. Each run is a fresh grant to a fresh
//! carer. Run with `make bench-share`, which builds the endpoint first. Prints a table
//! and writes it to `target/bench-share.md`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use carry_core::net::CallOptions;
use carry_core::share::{self, NewGrant, Role, Scope};
use carry_core::{Category, ImportOptions, Profile};
use common::{copies_of_jene, ms, percentile, serve, RawKeyStore};

/// Resources in the scoped snapshot.
const SNAPSHOT: usize = 2_000;
const RUNS: usize = 5;
const LINK_RUNS: usize = 10;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn profile(dir: &Path, name: &str) -> Arc<Profile> {
    Arc::new(Profile::create(dir, name, &RawKeyStore).expect("profile"))
}

fn main() {
    let shared = std::env::var_os("SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared"));
    let work = tempfile::tempdir().expect("work dir");
    let server = serve(&format!("sqlite://{}", work.path().join("ep.db").display()));
    let url = server.url.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let opts = CallOptions::default();
    let exchange = |p: &Arc<Profile>| {
        rt.block_on(carry_core::exchange::exchange(p.clone(), &url, &opts))
            .expect("exchange")
    };

    let patient = profile(&work.path().join("patient"), "Jene Cummings");
    patient
        .import_file(
            &copies_of_jene(&shared, work.path(), 4),
            ImportOptions::default(),
        )
        .expect("import");
    share::set_endpoint(&patient, &url).expect("endpoint");

    let mut seal = Vec::new();
    let mut receive = Vec::new();
    let mut total = Vec::new();
    let mut envelopes = 0;
    for run in 0..RUNS {
        // A fresh carer who takes up a fresh invite.
        let carer = profile(&work.path().join(format!("carer{run}")), "Sam");
        exchange(&patient);
        let code = share::invite(&patient, &url).expect("invite").code;
        let person = share::accept(&carer, &code, true).expect("accept");
        exchange(&carer);
        exchange(&patient);
        let who = share::people(&patient)
            .expect("people")
            .into_iter()
            .find(|p| p.fingerprint == person.fingerprint)
            .expect("the carer")
            .person;
        // Everything not sensitive, trimmed to exactly SNAPSHOT items.
        let mut scope = Scope {
            categories: Category::ALL.to_vec(),
            ..Scope::default()
        };
        let grant = |scope: &Scope| {
            share::grant(
                &patient,
                &NewGrant {
                    person: who.clone(),
                    role: Role::Viewer,
                    scope: scope.clone(),
                    purpose: String::new(),
                    basis: None,
                    duration_s: None,
                    unverified: true,
                },
            )
            .expect("grant")
        };
        // Setup: find what the whole scope covers, and hide the rest beyond SNAPSHOT.
        grant(&scope);
        let all = share::view_as(&patient, &who).expect("view as");
        assert!(all.len() >= SNAPSHOT, "{} items in scope", all.len());
        scope.hidden = all[SNAPSHOT..].iter().map(|i| i.id).collect();
        // Timed: the grant as delivered, sealed and posted, then received.
        let t0 = Instant::now();
        let g = grant(&scope);
        let sent = exchange(&patient);
        let t1 = Instant::now();
        let got = exchange(&carer);
        let t2 = Instant::now();
        assert_eq!(got.grants_received, vec![g.grant.clone()]);
        let received =
            share::open_received(&carer, &share::people(&carer).expect("people")[0].person)
                .expect("received");
        assert_eq!(
            received.stats().expect("stats").resources as usize,
            SNAPSHOT
        );
        envelopes = sent.posted;
        seal.push(t1 - t0);
        receive.push(t2 - t1);
        total.push(t2 - t0);
        share::revoke(&patient, &g.grant).expect("revoke");
        exchange(&patient);
        exchange(&carer);
    }
    let mut rows = [
        (
            format!("patient: scope, seal and post {SNAPSHOT} resources ({envelopes} envelopes)"),
            seal,
        ),
        (
            format!("carer: fetch, open, verify and store {SNAPSHOT} resources"),
            receive,
        ),
        ("end to end".to_string(), total),
    ];
    let mut out = format!(
        "Sharing benchmark: a {SNAPSHOT}-resource scoped snapshot through the relay \
         (SQLite, loopback), {RUNS} runs, each a fresh grant to a fresh carer.\n\n\
         | step | median | fastest |\n|---|---|---|\n"
    );
    for (name, samples) in rows.iter_mut() {
        let med = percentile(samples, 0.5);
        let min = percentile(samples, 0.0);
        out.push_str(&format!("| {name} | {} | {} |\n", ms(med), ms(min)));
    }
    // Share links: the whole record (all but restricted, about 2,350 resources of
    // which 2,000-odd fit a summary section) as an IPS, encrypted and uploaded.
    let mut link_times = Vec::new();
    let mut qr_version = 0;
    let mut link_len = 0;
    let mut in_summary = 0;
    for _ in 0..LINK_RUNS {
        let t = Instant::now();
        let made = rt
            .block_on(carry_core::links::create(
                patient.clone(),
                &url,
                &carry_core::links::NewShare {
                    preset: carry_core::links::Preset::AllButRestricted,
                    passcode: Some("4711".into()),
                    ..Default::default()
                },
                &opts,
            ))
            .expect("share link");
        link_times.push(t.elapsed());
        qr_version = made.qr.version;
        link_len = made.info.link.len();
        in_summary = made.info.resources;
    }
    let records = patient.stats().expect("stats").resources;
    out.push_str(&format!(
        "\nShare link for a {records}-resource record ({in_summary} in the summary), end to \
         end against the local endpoint, {LINK_RUNS} runs:\n\n"
    ));
    out.push_str("| figure | result |\n|---|---|\n");
    out.push_str(&format!(
        "| link creation, median | {} |\n",
        ms(percentile(&mut link_times, 0.5))
    ));
    out.push_str(&format!(
        "| link creation, fastest | {} |\n",
        ms(percentile(&mut link_times, 0.0))
    ));
    out.push_str(&format!(
        "| QR version (level M, {link_len}-character link, host `{}`) | {qr_version} |\n",
        url.trim_start_matches("http://")
    ));
    print!("{out}");
    let _ = std::fs::write(root().join("target/bench-share.md"), &out);
}
