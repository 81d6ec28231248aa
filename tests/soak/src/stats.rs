//! What the load records: per route, the requests, errors and latencies; the first
//! error messages; and the deliberate 429s of the noisy client. Plus the pure rules
//! the report applies (percentiles, the RSS-growth rule).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// How many error messages the report keeps.
pub const FIRST_ERRORS: usize = 5;

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The expected status and body.
    Ok,
    /// Anything else: a status, a transport error or a wrong body.
    Error(String),
    /// A 429 the noisy client asked for (not an error).
    Deliberate429,
}

/// One route's record.
#[derive(Debug, Default, Clone)]
pub struct Route {
    /// Requests sent.
    pub requests: u64,
    /// Requests that ended in an error.
    pub errors: u64,
    /// Deliberate 429s among the requests.
    pub deliberate_429: u64,
    /// Each request's latency, in microseconds.
    pub latencies_us: Vec<u32>,
}

/// Everything recorded, shared by the load's threads.
#[derive(Debug, Default)]
pub struct Stats {
    /// Per route, by name.
    routes: Mutex<BTreeMap<&'static str, Route>>,
    /// The first [`FIRST_ERRORS`] error messages, as `route: message`.
    first_errors: Mutex<Vec<String>>,
    /// Every error, on any route.
    errors: AtomicU64,
    /// Every deliberate 429.
    deliberate_429: AtomicU64,
}

impl Stats {
    /// Record one request on `route` that took `latency` and ended as `outcome`.
    pub fn record(&self, route: &'static str, latency: Duration, outcome: Outcome) {
        let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        {
            let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
            let r = routes.entry(route).or_default();
            r.requests += 1;
            r.latencies_us.push(us);
            match &outcome {
                Outcome::Ok => {}
                Outcome::Error(_) => r.errors += 1,
                Outcome::Deliberate429 => r.deliberate_429 += 1,
            }
        }
        match outcome {
            Outcome::Ok => {}
            Outcome::Error(message) => self.error(route, &message),
            Outcome::Deliberate429 => {
                self.deliberate_429.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Record an error that is not one request's (e.g. a lost envelope), on `route`.
    pub fn failure(&self, route: &'static str, message: &str) {
        {
            let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
            routes.entry(route).or_default().errors += 1;
        }
        self.error(route, message);
    }

    /// Count an error and keep its message if it is among the first.
    fn error(&self, route: &str, message: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_errors.lock().unwrap_or_else(|p| p.into_inner());
        if first.len() < FIRST_ERRORS {
            first.push(format!("{route}: {message}"));
        }
    }

    /// Every error so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Every deliberate 429 so far.
    pub fn deliberate_429(&self) -> u64 {
        self.deliberate_429.load(Ordering::Relaxed)
    }

    /// The first error messages.
    pub fn first_errors(&self) -> Vec<String> {
        self.first_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A copy of every route's record, by name.
    pub fn routes(&self) -> BTreeMap<&'static str, Route> {
        self.routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The `p`th percentile (0 < p ≤ 100) of `sorted` by the nearest-rank method: the
/// smallest value with at least p% of the values at or below it. `None` when empty.
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    // The rank is at least 1 and at most len, so the index is in range.
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// The RSS-growth rule: whether the endpoint's memory grew by at most `limit_kib`
/// from `warm_kib` (after warm-up) to `end_kib`. Shrinking always passes.
pub fn rss_flat(warm_kib: u64, end_kib: u64, limit_kib: u64) -> bool {
    end_kib.saturating_sub(warm_kib) <= limit_kib
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.5), Some(1));
        let few = [3, 8, 20];
        assert_eq!(percentile(&few, 50.0), Some(8));
        assert_eq!(percentile(&few, 99.0), Some(20));
        assert_eq!(percentile(&[7], 50.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&few, 0.0), None);
        assert_eq!(percentile(&few, 101.0), None);
    }

    #[test]
    fn rss_may_grow_up_to_the_limit_and_no_more() {
        let limit = 32 * 1024;
        assert!(rss_flat(100_000, 100_000, limit));
        assert!(rss_flat(100_000, 90_000, limit), "shrinking is fine");
        assert!(
            rss_flat(100_000, 100_000 + limit, limit),
            "exactly the limit"
        );
        assert!(!rss_flat(100_000, 100_001 + limit, limit));
    }

    #[test]
    fn errors_are_counted_by_route_and_the_first_few_kept() {
        let s = Stats::default();
        let ms = Duration::from_millis(1);
        s.record("a", ms, Outcome::Ok);
        s.record("a", ms, Outcome::Deliberate429);
        for i in 0..7 {
            s.record("b", ms, Outcome::Error(format!("e{i}")));
        }
        s.failure("c", "lost");
        let routes = s.routes();
        assert_eq!(routes["a"].requests, 2);
        assert_eq!(routes["a"].errors, 0);
        assert_eq!(routes["a"].deliberate_429, 1);
        assert_eq!(routes["b"].errors, 7);
        assert_eq!((routes["c"].requests, routes["c"].errors), (0, 1));
        assert_eq!((s.errors(), s.deliberate_429()), (8, 1));
        assert_eq!(s.first_errors().len(), FIRST_ERRORS);
        assert_eq!(s.first_errors()[0], "b: e0");
    }
}
