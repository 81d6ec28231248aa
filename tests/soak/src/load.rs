//! The load: paced threads for share-link manifests, mailbox senders and receivers,
//! FHIR search walks, and one noisy client that runs into the rate limit on purpose.
//! Every thread is plain `std`, blocking, with its own connection.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use carry_proto::links::{Manifest, ManifestRequest};
use carry_proto::relay::messages::{
    AckRequest, DeletedAnswer, DeliverAnswer, DeliverRequest, Envelope, MailboxPage,
};
use ring::rand::SystemRandom;

use crate::envelope;
use crate::http::{json_text, random_below, random_bytes, Answer, Http, Identity, Link};
use crate::stats::{Outcome, Stats};

/// The FHIR API's one static bearer token (`--auth bearer:TOKEN`; the endpoint wants
/// at least 16 characters).
pub const FHIR_TOKEN: &str = "soak-token-loopback-only";
/// The tag on every envelope.
const TAG: &str = "soak";
/// Envelopes per fetched page.
const PAGE: usize = 50;
/// The smallest and largest envelope bodies, in bytes.
const BODY_MIN: u64 = 1 << 10;
const BODY_MAX: u64 = 16 << 10;
/// Files up to this length are embedded in manifests (`embeddedLengthMax`).
pub const EMBED_MAX: usize = 10_000;
/// Sender threads.
pub const SENDERS: usize = 4;
/// Threads for each of the manifest and FHIR loads.
const PAIR: usize = 2;
/// Most pages one FHIR walk may take before it counts as a loop.
const MAX_PAGES: usize = 1000;
/// The noisy client's bursts: this far into every minute of the load.
const NOISY_AT: Duration = Duration::from_secs(20);

/// Route names, as the report lists them.
pub const MANIFEST: &str = "POST /shl/m/{id}";
/// The file behind a manifest's location.
pub const FILE: &str = "GET /shl/f/{token}";
/// Envelope delivery.
pub const DELIVER: &str = "POST /relay/v1/mailboxes/{mailbox}";
/// Mailbox fetch by the paced receivers.
pub const FETCH: &str = "GET /relay/v1/mailbox";
/// Acknowledgement.
pub const ACK: &str = "POST /relay/v1/mailbox/ack";
/// A page of the FHIR search.
pub const SEARCH: &str = "GET /gp/fhir/Observation";
/// Mailbox fetch by the noisy client.
pub const NOISY: &str = "GET /relay/v1/mailbox (noisy)";
/// Envelopes checked at the end (not a request).
pub const ENVELOPES: &str = "envelopes";

/// How the total request rate is shared out, per second.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// FHIR search pages.
    pub fhir: f64,
    /// Manifest requests (half of them followed by a file fetch).
    pub manifests: f64,
    /// Envelope deliveries, over all senders.
    pub deliveries: f64,
    /// Mailbox polls by each receiver (a fetch, and an ack when it got something).
    pub polls_each: f64,
}

impl Plan {
    /// Roughly `rate` requests a second in all.
    pub fn new(rate: f64) -> Self {
        Plan {
            fhir: 0.15 * rate,
            manifests: 0.2 * rate,
            deliveries: 0.25 * rate,
            polls_each: 0.02 * rate,
        }
    }

    /// The most requests a second the plan sends, all routes together.
    pub fn total(&self) -> f64 {
        self.fhir + 1.5 * self.manifests + self.deliveries + 8.0 * 2.0 * self.polls_each
    }

    /// The busiest rate-limit buckets of the paced clients, in requests a second.
    pub fn buckets(&self) -> Vec<(&'static str, f64)> {
        vec![
            (
                "share-link opens without a token (both threads counted as one)",
                1.5 * self.manifests,
            ),
            ("the static FHIR bearer token (search)", self.fhir),
            (
                "one sender's session (deliveries, fetches, acks)",
                self.deliveries / SENDERS as f64 + 2.0 * self.polls_each,
            ),
        ]
    }

    /// Ok when every paced bucket stays under half of `limit` a second (its burst is
    /// `limit` too), so a 429 to a paced client is the endpoint's fault, not ours.
    pub fn check(&self, limit: u32) -> Result<(), String> {
        for (bucket, rate) in self.buckets() {
            if rate > f64::from(limit) / 2.0 {
                return Err(format!(
                    "the {bucket} bucket would get {rate:.0} requests/s, more than half of \
                     --rate-limit {limit}: lower --rate or raise --rate-limit"
                ));
            }
        }
        Ok(())
    }
}

/// A steady pace: one slot every `1/rate` seconds. A thread that falls behind skips
/// the slots it missed rather than catching up in a burst.
#[derive(Debug)]
pub struct Pacer {
    /// Time between slots.
    every: Duration,
    /// The next slot.
    next: Instant,
}

impl Pacer {
    /// `per_second` slots a second, the first `phase` (0 to 1) of a slot from now.
    pub fn new(per_second: f64, phase: f64) -> Self {
        let every = Duration::from_secs_f64(1.0 / per_second.max(0.01));
        Pacer {
            every,
            next: Instant::now() + every.mul_f64(phase.clamp(0.0, 1.0)),
        }
    }

    /// Wait for the next slot; false when `over` says to stop first.
    pub fn wait(&mut self, over: impl Fn() -> bool) -> bool {
        loop {
            if over() {
                return false;
            }
            let now = Instant::now();
            if now >= self.next {
                break;
            }
            sleep((self.next - now).min(Duration::from_millis(100)));
        }
        let now = Instant::now();
        if now.duration_since(self.next) > self.every {
            self.next = now;
        }
        self.next += self.every;
        true
    }
}

/// Where a delivered envelope went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// The receiving identity.
    pub mailbox: usize,
    /// The body's sequence number.
    pub seq: u64,
}

/// What the load's threads share.
pub struct Shared {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The relay identities: the first [`SENDERS`] also send.
    pub identities: Vec<Identity>,
    /// The noisy client's identity.
    pub noisy: Identity,
    /// The share links.
    pub links: Vec<Link>,
    /// The patient whose Observations are searched.
    pub patient: String,
    /// `_count` of a search page.
    pub fhir_count: usize,
    /// The Observation ids a walk must give, sorted.
    pub observations: Vec<String>,
    /// How long each noisy burst lasts.
    pub noisy_for: Duration,
    /// The rates.
    pub plan: Plan,
    /// What was recorded.
    pub stats: Stats,
    /// When the load began.
    pub start: Instant,
    /// When the load ends.
    pub end: Instant,
    /// Set to end the load early (the endpoint went away).
    pub abort: AtomicBool,
    /// Set to stop the receivers (after the drain).
    pub stop: AtomicBool,
    /// Every stored envelope by id.
    pub delivered: Mutex<HashMap<i64, Placed>>,
    /// Every received envelope by id.
    pub received: Mutex<HashMap<i64, Placed>>,
    /// Envelopes received more than once.
    pub duplicates: AtomicU64,
    /// The next envelope's sequence number.
    next_seq: AtomicU64,
    /// Noisy bursts begun.
    pub noisy_bursts: AtomicU64,
}

impl Shared {
    /// The shared state of a load over `base` lasting `seconds`, starting now.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        base: String,
        identities: Vec<Identity>,
        noisy: Identity,
        links: Vec<Link>,
        patient: String,
        fhir_count: usize,
        observations: Vec<String>,
        noisy_for: Duration,
        plan: Plan,
        seconds: u64,
    ) -> Self {
        let start = Instant::now();
        Shared {
            base,
            identities,
            noisy,
            links,
            patient,
            fhir_count,
            observations,
            noisy_for,
            plan,
            stats: Stats::default(),
            start,
            end: start + Duration::from_secs(seconds),
            abort: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            delivered: Mutex::new(HashMap::new()),
            received: Mutex::new(HashMap::new()),
            duplicates: AtomicU64::new(0),
            next_seq: AtomicU64::new(1),
            noisy_bursts: AtomicU64::new(0),
        }
    }

    /// Whether the load phase is over.
    pub fn load_over(&self) -> bool {
        self.abort.load(Ordering::Relaxed) || Instant::now() >= self.end
    }

    /// Whether the receivers should stop.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Delivered ids not (yet) received, sorted.
    pub fn missing(&self) -> Vec<i64> {
        let delivered = self.delivered.lock().unwrap_or_else(|p| p.into_inner());
        let received = self.received.lock().unwrap_or_else(|p| p.into_inner());
        let mut missing: Vec<i64> = delivered
            .keys()
            .filter(|id| !received.contains_key(id))
            .copied()
            .collect();
        missing.sort_unstable();
        missing
    }

    /// The first search page's URL.
    pub fn search_url(&self) -> String {
        format!(
            "{}/gp/fhir/Observation?patient={}&_count={}",
            self.base, self.patient, self.fhir_count
        )
    }
}

/// Time one request.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}

/// An outcome from a check's result.
fn outcome(r: Result<(), String>) -> Outcome {
    match r {
        Ok(()) => Outcome::Ok,
        Err(e) => Outcome::Error(e),
    }
}

/// The Observation ids of one search page and its `next` link, checked: a searchset
/// Bundle of Observations whose `next` stays on `base`.
pub fn read_page(answer: &Answer, base: &str) -> Result<(Vec<String>, Option<String>), String> {
    answer.expect(200)?;
    let bundle = answer.json()?;
    if bundle["resourceType"] != "Bundle" || bundle["type"] != "searchset" {
        return Err("the answer is not a searchset Bundle".into());
    }
    let mut ids = Vec::new();
    for entry in bundle["entry"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let r = &entry["resource"];
        match (r["resourceType"].as_str(), r["id"].as_str()) {
            (Some("Observation"), Some(id)) => ids.push(id.to_string()),
            _ => return Err(format!("an entry is not an Observation with an id: {r}")),
        }
    }
    let next = bundle["link"]
        .as_array()
        .and_then(|links| links.iter().find(|l| l["relation"] == "next"))
        .map(|l| l["url"].as_str().unwrap_or("").to_string());
    match next {
        Some(url) if !url.starts_with(&format!("{base}/gp/fhir/Observation?")) => {
            Err(format!("the next link leaves the search: {url}"))
        }
        next => Ok((ids, next)),
    }
}

/// Whether a finished walk gave exactly the expected Observations.
pub fn check_walk(mut got: Vec<String>, expected: &[String], pages: usize) -> Result<(), String> {
    got.sort_unstable();
    if got == expected {
        return Ok(());
    }
    let total = got.len();
    got.dedup();
    Err(format!(
        "a walk gave {total} Observations ({} distinct) in {pages} pages; {} were expected",
        got.len(),
        expected.len()
    ))
}

/// Walk the search once without pacing or recording (setup): the Observation ids and
/// the number of pages.
pub fn walk_once(http: &Http, sh_base: &str, first: &str) -> Result<(Vec<String>, usize), String> {
    let (mut url, mut ids, mut pages) = (first.to_string(), Vec::new(), 0);
    loop {
        let a = http.send("GET", &url, Some(FHIR_TOKEN), None)?;
        let (page, next) = read_page(&a, sh_base).map_err(|e| format!("GET {url}: {e}"))?;
        ids.extend(page);
        pages += 1;
        match next {
            Some(n) if pages < MAX_PAGES => url = n,
            Some(_) => return Err(format!("more than {MAX_PAGES} pages")),
            None => return Ok((ids, pages)),
        }
    }
}

/// A FHIR client: walks the patient's Observations page by page, one page a slot.
fn fhir(sh: &Shared, pacer: &mut Pacer) {
    let http = Http::new();
    let first = sh.search_url();
    'walks: loop {
        let (mut url, mut got, mut pages) = (first.clone(), Vec::new(), 0);
        loop {
            if !pacer.wait(|| sh.load_over()) {
                break 'walks;
            }
            let (r, took) = timed(|| http.send("GET", &url, Some(FHIR_TOKEN), None));
            match r.and_then(|a| read_page(&a, &sh.base)) {
                Err(e) => {
                    sh.stats.record(SEARCH, took, Outcome::Error(e));
                    continue 'walks;
                }
                Ok((ids, next)) => {
                    got.extend(ids);
                    pages += 1;
                    match next {
                        Some(n) if pages < MAX_PAGES => {
                            sh.stats.record(SEARCH, took, Outcome::Ok);
                            url = n;
                        }
                        Some(_) => {
                            let e = format!("a walk ran past {MAX_PAGES} pages");
                            sh.stats.record(SEARCH, took, Outcome::Error(e));
                            continue 'walks;
                        }
                        None => {
                            let check = check_walk(got, &sh.observations, pages);
                            sh.stats.record(SEARCH, took, outcome(check));
                            continue 'walks;
                        }
                    }
                }
            }
        }
    }
}

/// Check a manifest answer for `link`: the embedded file, or the location to fetch.
fn read_manifest(a: &Answer, link: &Link, base: &str) -> Result<Option<String>, String> {
    a.expect(200)?;
    let m: Manifest = a.parse()?;
    let [file] = m.files.as_slice() else {
        return Err(format!("the manifest lists {} files, not 1", m.files.len()));
    };
    match (
        link.embedded,
        file.embedded.as_deref(),
        file.location.as_deref(),
    ) {
        (true, Some(jwe), None) if jwe == link.file => Ok(None),
        (true, Some(_), None) => Err("the embedded file differs from the uploaded one".into()),
        (false, None, Some(loc)) if loc.starts_with(&format!("{base}/shl/f/")) => {
            Ok(Some(loc.to_string()))
        }
        (false, None, Some(loc)) => Err(format!("the location leaves the server: {loc}")),
        (embedded, _, _) => Err(format!(
            "expected {} for a {}-byte file: {file:?}",
            if embedded { "embedded" } else { "location" },
            link.file.len()
        )),
    }
}

/// A share-link viewer: asks for a manifest each slot and fetches the file behind a
/// location.
fn manifests(sh: &Shared, pacer: &mut Pacer, mut turn: usize) {
    let http = Http::new();
    let body = json_text(&ManifestRequest {
        embedded_length_max: u64::try_from(EMBED_MAX).ok(),
        passcode: None,
        recipient: Some("carry-soak".into()),
    });
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            sh.stats.failure(MANIFEST, &e);
            return;
        }
    };
    while pacer.wait(|| sh.load_over()) {
        let Some(link) = sh.links.get(turn % sh.links.len().max(1)) else {
            return;
        };
        turn += 1;
        let url = format!("{}/shl/m/{}", sh.base, link.id);
        let (r, took) = timed(|| http.send("POST", &url, None, Some(&body)));
        let location = match r.and_then(|a| read_manifest(&a, link, &sh.base)) {
            Ok(location) => {
                sh.stats.record(MANIFEST, took, Outcome::Ok);
                location
            }
            Err(e) => {
                sh.stats.record(MANIFEST, took, Outcome::Error(e));
                continue;
            }
        };
        if let Some(loc) = location {
            let (r, took) = timed(|| http.send("GET", &loc, None, None));
            let check = r.and_then(|a| {
                a.expect(200)?;
                if a.body == link.file.as_bytes() {
                    Ok(())
                } else {
                    Err(format!(
                        "the file has {} bytes, not the {} uploaded",
                        a.body.len(),
                        link.file.len()
                    ))
                }
            });
            sh.stats.record(FILE, took, outcome(check));
        }
    }
}

/// A sender: delivers one envelope a slot, to the mailboxes in turn from `index`.
fn sender(sh: &Shared, pacer: &mut Pacer, index: usize) {
    let (http, rng) = (Http::new(), SystemRandom::new());
    let Some(me) = sh.identities.get(index) else {
        return;
    };
    let mut turn = index;
    while pacer.wait(|| sh.load_over()) {
        let to = turn % sh.identities.len();
        turn += 1;
        let seq = sh.next_seq.fetch_add(1, Ordering::Relaxed);
        let body = random_below(&rng, BODY_MAX - BODY_MIN + 1)
            .and_then(|extra| {
                let len = usize::try_from(BODY_MIN + extra).unwrap_or(1024);
                random_bytes(&rng, len - envelope::HEADER)
            })
            .map(|payload| envelope::make(seq, &payload));
        let body = match body {
            Ok(b) => b,
            Err(e) => {
                sh.stats.failure(DELIVER, &e);
                continue;
            }
        };
        let url = format!(
            "{}/relay/v1/mailboxes/{}",
            sh.base, sh.identities[to].mailbox
        );
        let req = json_text(&DeliverRequest {
            body: B64.encode(&body),
            tag: TAG.into(),
        });
        let req = match req {
            Ok(r) => r,
            Err(e) => {
                sh.stats.failure(DELIVER, &e);
                continue;
            }
        };
        let (r, took) = timed(|| http.send("POST", &url, Some(&me.token), Some(&req)));
        let check = r.and_then(|a| {
            if a.status == 507 {
                return Err("507: the mailbox is full at this pace".into());
            }
            a.expect(201)?;
            let id = a.parse::<DeliverAnswer>()?.id;
            let placed = Placed { mailbox: to, seq };
            let mut delivered = sh.delivered.lock().unwrap_or_else(|p| p.into_inner());
            match delivered.insert(id, placed) {
                None => Ok(()),
                Some(_) => Err(format!("the relay gave id {id} to two envelopes")),
            }
        });
        sh.stats.record(DELIVER, took, outcome(check));
    }
}

/// Check one fetched envelope addressed to receiver `me`: its tag and body; records it
/// and returns its id.
fn take_envelope(
    sh: &Shared,
    me: usize,
    e: &Envelope,
    acked: &HashSet<i64>,
) -> Result<i64, String> {
    let id = e.id;
    if acked.contains(&id) {
        return Err(format!("envelope {id} was served again after its ack"));
    }
    if e.tag != TAG {
        return Err(format!("envelope {id} has the tag {:?}", e.tag));
    }
    let body = B64
        .decode(&e.body)
        .map_err(|_| format!("envelope {id}'s body is not base64url"))?;
    let seq = envelope::check(&body).map_err(|m| format!("envelope {id}: {m}"))?;
    let placed = Placed { mailbox: me, seq };
    let mut received = sh.received.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(before) = received.insert(id, placed) {
        sh.duplicates.fetch_add(1, Ordering::Relaxed);
        if before != placed {
            return Err(format!("envelope {id} came back different"));
        }
    }
    Ok(id)
}

/// A receiver: each slot, fetches its mailbox page by page and acks what it got,
/// until told to stop (after the drain).
fn receiver(sh: &Shared, pacer: &mut Pacer, me: usize) {
    let http = Http::new();
    let Some(identity) = sh.identities.get(me) else {
        return;
    };
    let token = Some(identity.token.as_str());
    let mut acked: HashSet<i64> = HashSet::new();
    while pacer.wait(|| sh.stopped()) {
        let mut after = 0;
        loop {
            let url = format!("{}/relay/v1/mailbox?after={after}&limit={PAGE}", sh.base);
            let (r, took) = timed(|| http.send("GET", &url, token, None));
            let page = r.and_then(|a| {
                a.expect(200)?;
                a.parse::<MailboxPage>()
            });
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    sh.stats.record(FETCH, took, Outcome::Error(e));
                    break;
                }
            };
            let (mut ids, mut first_error) = (Vec::new(), None);
            for e in &page.envelopes {
                match take_envelope(sh, me, e, &acked) {
                    Ok(id) => ids.push(id),
                    Err(m) => {
                        first_error.get_or_insert(m);
                    }
                }
            }
            let more = page.more;
            sh.stats
                .record(FETCH, took, first_error.map_or(Outcome::Ok, Outcome::Error));
            if ids.is_empty() {
                break;
            }
            let url = format!("{}/relay/v1/mailbox/ack", sh.base);
            let body = match json_text(&AckRequest { ids: ids.clone() }) {
                Ok(b) => b,
                Err(e) => {
                    sh.stats.failure(ACK, &e);
                    break;
                }
            };
            let (r, took) = timed(|| http.send("POST", &url, token, Some(&body)));
            let check = r.and_then(|a| {
                a.expect(200)?;
                match a.parse::<DeletedAnswer>()?.deleted {
                    n if n == ids.len() as u64 => Ok(()),
                    n => Err(format!("an ack of {} ids deleted {n}", ids.len())),
                }
            });
            let ok = check.is_ok();
            sh.stats.record(ACK, took, outcome(check));
            if !ok {
                break;
            }
            acked.extend(ids.iter().copied());
            if !more {
                break;
            }
            after = ids.iter().copied().max().unwrap_or(after);
        }
    }
}

/// The noisy client: for a few seconds every minute, fetches its mailbox as fast as
/// it can with its own session, and must run into the rate limit.
fn noisy(sh: &Shared) {
    let http = Http::new();
    let url = format!("{}/relay/v1/mailbox?limit=1", sh.base);
    let mut bursting = false;
    while !sh.load_over() {
        let into_minute = Duration::from_secs(sh.start.elapsed().as_secs() % 60);
        if into_minute < NOISY_AT || into_minute >= NOISY_AT + sh.noisy_for {
            bursting = false;
            sleep(Duration::from_millis(50));
            continue;
        }
        if !bursting {
            bursting = true;
            sh.noisy_bursts.fetch_add(1, Ordering::Relaxed);
        }
        let (r, took) = timed(|| http.send("GET", &url, Some(&sh.noisy.token), None));
        let result = match r {
            Ok(a) if a.status == 429 => Outcome::Deliberate429,
            Ok(a) => outcome(a.expect(200)),
            Err(e) => Outcome::Error(e),
        };
        sh.stats.record(NOISY, took, result);
    }
}

/// Run the load's threads: those that end with the load, then the receivers, which
/// run on until `drain` (called on this thread once the others are done) returns.
/// `watch` runs on this thread during the load (sampling memory, watching the child).
pub fn run(sh: &Shared, watch: impl FnOnce(), drain: impl FnOnce()) -> Vec<String> {
    let plan = &sh.plan;
    let mut panics = Vec::new();
    std::thread::scope(|s| {
        let mut loaders = Vec::new();
        for i in 0..PAIR {
            let phase = i as f64 / PAIR as f64;
            let mut p = Pacer::new(plan.fhir / PAIR as f64, phase);
            loaders.push(s.spawn(move || fhir(sh, &mut p)));
            let mut p = Pacer::new(plan.manifests / PAIR as f64, phase);
            loaders.push(s.spawn(move || manifests(sh, &mut p, i)));
        }
        for i in 0..SENDERS {
            let mut p = Pacer::new(plan.deliveries / SENDERS as f64, i as f64 / SENDERS as f64);
            loaders.push(s.spawn(move || sender(sh, &mut p, i)));
        }
        loaders.push(s.spawn(|| noisy(sh)));
        let receivers: Vec<_> = (0..sh.identities.len())
            .map(|i| {
                let phase = i as f64 / sh.identities.len() as f64;
                let mut p = Pacer::new(plan.polls_each, phase);
                s.spawn(move || receiver(sh, &mut p, i))
            })
            .collect();
        watch();
        for h in loaders {
            if h.join().is_err() {
                panics.push("a load thread panicked".to_string());
            }
        }
        drain();
        sh.stop.store(true, Ordering::Relaxed);
        for h in receivers {
            if h.join().is_err() {
                panics.push("a receiver thread panicked".to_string());
            }
        }
    });
    panics
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_default_plan_is_about_200_a_second_and_fits_the_limit() {
        let plan = Plan::new(200.0);
        assert!((180.0..=260.0).contains(&plan.total()), "{}", plan.total());
        assert!(plan.check(200).is_ok());
        assert!(Plan::new(1000.0).check(200).is_err());
    }

    #[test]
    fn a_pacer_that_falls_behind_does_not_burst() {
        let mut p = Pacer::new(100.0, 0.0);
        let before = Instant::now();
        p.next = before - Duration::from_secs(5);
        assert!(p.wait(|| false));
        // Caught up by skipping the 500 missed slots, not by owing them.
        assert!(p.next > before, "the missed slots are skipped");
        let slot = p.next;
        assert!(p.wait(|| false));
        assert!(Instant::now() >= slot, "the next slot is waited for");
        assert!(!p.wait(|| true));
    }

    #[test]
    fn walks_must_give_exactly_the_expected_observations() {
        let exp = vec!["a".to_string(), "b".to_string()];
        assert!(check_walk(vec!["b".into(), "a".into()], &exp, 1).is_ok());
        assert!(check_walk(vec!["a".into()], &exp, 1).is_err());
        assert!(check_walk(vec!["a".into(), "a".into(), "b".into()], &exp, 2).is_err());
    }

    #[test]
    fn search_pages_are_read_and_next_links_must_stay_home() {
        let page = |next: &str| Answer {
            status: 200,
            body: serde_json::to_vec(&json!({
                "resourceType": "Bundle", "type": "searchset",
                "link": [{"relation": "self", "url": "x"}, {"relation": "next", "url": next}],
                "entry": [{"resource": {"resourceType": "Observation", "id": "o1"}}],
            }))
            .unwrap(),
            retry_after: None,
        };
        let base = "http://127.0.0.1:9";
        let ok = page("http://127.0.0.1:9/gp/fhir/Observation?_page=x");
        let (ids, next) = read_page(&ok, base).unwrap();
        assert_eq!(ids, ["o1"]);
        assert!(next.is_some());
        assert!(read_page(&page("http://example.org/gp/fhir/Observation?x"), base).is_err());
    }
}
