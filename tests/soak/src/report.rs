//! The soak's verdict and its Markdown report.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::stats::{percentile, rss_flat, Route};

/// How many missing envelope ids the report lists.
const LIST_MISSING: usize = 20;
/// How many of the endpoint's log lines the report quotes.
const LOG_LINES: usize = 10;

/// One memory sample: seconds into the load, and the endpoint's VmRSS in KiB.
pub type Sample = (f64, u64);

/// Everything the report says.
#[derive(Debug, Default)]
pub struct Summary {
    /// The endpoint binary.
    pub endpoint: String,
    /// Planned load, in seconds.
    pub seconds: u64,
    /// The load as it ran, in seconds.
    pub load_s: f64,
    /// The drain, in seconds.
    pub drain_s: f64,
    /// The target total rate, requests a second.
    pub rate: f64,
    /// The endpoint's `--rate-limit`.
    pub rate_limit: u32,
    /// How the rate was shared out, as lines.
    pub plan: Vec<String>,
    /// The FHIR walk: Observations and pages per walk.
    pub walk: (usize, usize),
    /// Per route.
    pub routes: BTreeMap<&'static str, Route>,
    /// Errors on every route.
    pub errors: u64,
    /// The first error messages.
    pub first_errors: Vec<String>,
    /// Envelopes stored.
    pub delivered: usize,
    /// Envelopes received (distinct ids).
    pub received: usize,
    /// Delivered ids never received, sorted.
    pub missing: Vec<i64>,
    /// Received ids that no sender recorded (a delivery whose answer was lost).
    pub unrecorded: usize,
    /// Envelopes received more than once.
    pub duplicates: u64,
    /// The noisy client's route (left out of the paced total).
    pub noisy_route: &'static str,
    /// The noisy client's 429s.
    pub deliberate_429: u64,
    /// Its bursts.
    pub noisy_bursts: u64,
    /// The endpoint's memory every 5 s, and once more at the end.
    pub rss: Vec<Sample>,
    /// Seconds into the load of the warm-up sample.
    pub warm_at_s: f64,
    /// The allowed growth from the warm-up sample to the end, in MiB.
    pub rss_limit_mib: u64,
    /// How the endpoint ended, if it did before we stopped it.
    pub endpoint_exit: Option<String>,
    /// Lines in the endpoint's log (warn and above).
    pub log: Vec<String>,
    /// Problems of the run itself (a thread that panicked).
    pub run_problems: Vec<String>,
}

/// KiB as MiB.
fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl Summary {
    /// The warm-up sample: the first at or after `warm_at_s`, else the last load sample.
    pub fn rss_warm(&self) -> Option<Sample> {
        let load = &self.rss[..self.rss.len().saturating_sub(1)];
        load.iter()
            .find(|(t, _)| *t >= self.warm_at_s)
            .or(load.last())
            .or(self.rss.first())
            .copied()
    }

    /// The last sample (after the drain).
    pub fn rss_end(&self) -> Option<Sample> {
        self.rss.last().copied()
    }

    /// The largest sample, in KiB.
    pub fn rss_max(&self) -> Option<u64> {
        self.rss.iter().map(|(_, k)| *k).max()
    }

    /// Why the soak failed; empty when it passed.
    pub fn failures(&self) -> Vec<String> {
        let mut why = Vec::new();
        if self.errors > 0 {
            why.push(format!("{} errors", self.errors));
        }
        if !self.missing.is_empty() {
            why.push(format!("{} envelopes lost", self.missing.len()));
        }
        if self.unrecorded > 0 {
            why.push(format!(
                "{} envelopes received that no sender recorded",
                self.unrecorded
            ));
        }
        if self.noisy_bursts > 0 && self.deliberate_429 == 0 {
            why.push("the noisy client never got a 429: the rate limit did not hold".into());
        }
        match (self.rss_warm(), self.rss_end()) {
            (Some((_, warm)), Some((_, end))) => {
                if !rss_flat(warm, end, self.rss_limit_mib * 1024) {
                    why.push(format!(
                        "RSS grew by {:.1} MiB, more than {} MiB",
                        mib(end.saturating_sub(warm)),
                        self.rss_limit_mib
                    ));
                }
            }
            _ => why.push("the endpoint's memory was not measured".into()),
        }
        if let Some(exit) = &self.endpoint_exit {
            why.push(format!("the endpoint exited during the run: {exit}"));
        }
        why.extend(self.run_problems.iter().cloned());
        why
    }

    /// Whether the soak passed.
    pub fn passed(&self) -> bool {
        self.failures().is_empty()
    }
}

/// Microseconds as milliseconds.
fn ms(us: Option<u32>) -> String {
    us.map_or_else(|| "–".into(), |us| format!("{:.2}", f64::from(us) / 1000.0))
}

/// The report as Markdown.
pub fn markdown(s: &Summary) -> String {
    let mut o = String::new();
    let failures = s.failures();
    let verdict = if failures.is_empty() {
        "**PASS**".to_string()
    } else {
        format!("**FAIL**: {}", failures.join("; "))
    };
    let _ = writeln!(o, "# Endpoint soak\n");
    let _ = writeln!(o, "Result: {verdict}\n");
    let _ = writeln!(
        o,
        "- endpoint: `{}` on loopback, SQLite, `--rate-limit {}` (per client, a second)",
        s.endpoint, s.rate_limit
    );
    let _ = writeln!(
        o,
        "- load: {:.1} s of {} s planned at a target of {:.0} requests/s, then a drain of {:.1} s",
        s.load_s, s.seconds, s.rate, s.drain_s
    );
    for line in &s.plan {
        let _ = writeln!(o, "- {line}");
    }
    let _ = writeln!(
        o,
        "- FHIR search: {} Observations in {} pages a walk",
        s.walk.0, s.walk.1
    );

    let _ = writeln!(o, "\n## Routes\n");
    let _ = writeln!(
        o,
        "| route | requests | errors | p50 ms | p99 ms | requests/s |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|");
    let per_s = |n: u64| n as f64 / s.load_s.max(0.001);
    let (mut all, mut all_errors, mut all_lat) = (0u64, 0u64, Vec::new());
    let (mut paced, mut paced_errors, mut paced_lat) = (0u64, 0u64, Vec::new());
    for (name, r) in &s.routes {
        let mut lat = r.latencies_us.clone();
        lat.sort_unstable();
        let _ = writeln!(
            o,
            "| {name} | {} | {} | {} | {} | {:.1} |",
            r.requests,
            r.errors,
            ms(percentile(&lat, 50.0)),
            ms(percentile(&lat, 99.0)),
            per_s(r.requests)
        );
        if *name != s.noisy_route {
            paced += r.requests;
            paced_errors += r.errors;
            paced_lat.extend(lat.iter().copied());
        }
        all += r.requests;
        all_errors += r.errors;
        all_lat.extend(lat);
    }
    paced_lat.sort_unstable();
    all_lat.sort_unstable();
    let _ = writeln!(
        o,
        "| **all paced** | {paced} | {paced_errors} | {} | {} | {:.1} |",
        ms(percentile(&paced_lat, 50.0)),
        ms(percentile(&paced_lat, 99.0)),
        per_s(paced)
    );
    let _ = writeln!(
        o,
        "| **all** | {all} | {all_errors} | {} | {} | {:.1} |",
        ms(percentile(&all_lat, 50.0)),
        ms(percentile(&all_lat, 99.0)),
        per_s(all)
    );
    let _ = writeln!(
        o,
        "\nRequests/s are over the load's {:.1} s (receivers also run in the drain). The noisy \
         client's requests include its deliberate 429s, which are not errors.",
        s.load_s
    );

    let _ = writeln!(o, "\n## Envelopes\n");
    let _ = writeln!(
        o,
        "- delivered {}, received {}, missing {}, duplicates received {}, received without a \
         delivery record {}",
        s.delivered,
        s.received,
        s.missing.len(),
        s.duplicates,
        s.unrecorded
    );
    if !s.missing.is_empty() {
        let shown: Vec<String> = s
            .missing
            .iter()
            .take(LIST_MISSING)
            .map(i64::to_string)
            .collect();
        let more = s.missing.len().saturating_sub(LIST_MISSING);
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        let _ = writeln!(o, "- missing ids: {}{tail}", shown.join(", "));
    }

    let _ = writeln!(o, "\n## Rate limit\n");
    let _ = writeln!(
        o,
        "- deliberate 429s: {} (the noisy client, its own session, {} burst(s))",
        s.deliberate_429, s.noisy_bursts
    );

    let _ = writeln!(o, "\n## Memory (the endpoint's VmRSS)\n");
    match (s.rss_warm(), s.rss_end(), s.rss_max()) {
        (Some((wt, warm)), Some((et, end)), Some(max)) => {
            let growth = end as f64 - warm as f64;
            let _ = writeln!(
                o,
                "- after warm-up ({wt:.0} s): {:.1} MiB; at the end ({et:.0} s): {:.1} MiB; max: {:.1} MiB",
                mib(warm),
                mib(end),
                mib(max)
            );
            let _ = writeln!(
                o,
                "- growth: {:+.1} MiB; threshold: {} MiB ({})",
                growth / 1024.0,
                s.rss_limit_mib,
                if rss_flat(warm, end, s.rss_limit_mib * 1024) {
                    "flat"
                } else {
                    "grew too much"
                }
            );
        }
        _ => {
            let _ = writeln!(o, "- not measured");
        }
    }
    let series: Vec<String> = s
        .rss
        .iter()
        .map(|(t, k)| format!("{t:.0}s {:.1}", mib(*k)))
        .collect();
    let _ = writeln!(o, "- series (MiB): {}", series.join(", "));

    let _ = writeln!(o, "\n## Errors\n");
    if s.first_errors.is_empty() {
        let _ = writeln!(o, "None.");
    } else {
        let _ = writeln!(o, "The first {}:\n", s.first_errors.len());
        for e in &s.first_errors {
            let _ = writeln!(o, "- {}", e.replace('\n', " "));
        }
    }

    let _ = writeln!(o, "\n## Endpoint log (warn and above)\n");
    if s.log.is_empty() {
        let _ = writeln!(o, "Empty.");
    } else {
        let _ = writeln!(
            o,
            "{} lines; the first {}:\n\n```",
            s.log.len(),
            s.log.len().min(LOG_LINES)
        );
        for line in s.log.iter().take(LOG_LINES) {
            let _ = writeln!(o, "{line}");
        }
        let _ = writeln!(o, "```");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passing() -> Summary {
        Summary {
            rss: vec![
                (5.0, 50_000),
                (60.0, 60_000),
                (120.0, 61_000),
                (121.0, 62_000),
            ],
            warm_at_s: 60.0,
            rss_limit_mib: 32,
            noisy_bursts: 2,
            deliberate_429: 10,
            load_s: 120.0,
            ..Summary::default()
        }
    }

    #[test]
    fn a_clean_run_passes() {
        let s = passing();
        assert_eq!(s.rss_warm(), Some((60.0, 60_000)));
        assert_eq!(s.rss_end(), Some((121.0, 62_000)));
        assert_eq!(s.rss_max(), Some(62_000));
        assert!(s.passed(), "{:?}", s.failures());
        assert!(markdown(&s).contains("**PASS**"));
    }

    #[test]
    fn errors_losses_growth_and_a_silent_limit_fail() {
        let mut s = passing();
        s.errors = 1;
        assert!(!s.passed());
        let mut s = passing();
        s.missing = vec![4, 9];
        assert!(markdown(&s).contains("missing ids: 4, 9"));
        assert!(!s.passed());
        let mut s = passing();
        s.rss.push((122.0, 60_000 + 32 * 1024 + 1));
        assert!(!s.passed());
        let mut s = passing();
        s.deliberate_429 = 0;
        assert!(!s.passed());
        let mut s = passing();
        s.rss.clear();
        assert!(!s.passed());
    }

    #[test]
    fn a_short_run_takes_its_last_load_sample_as_the_warm_one() {
        let mut s = passing();
        s.rss = vec![(5.0, 50_000), (10.0, 51_000), (12.0, 52_000)];
        assert_eq!(s.rss_warm(), Some((10.0, 51_000)));
    }
}
