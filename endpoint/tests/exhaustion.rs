//! Resource exhaustion from outside: oversized bodies with made-up credentials, a
//! full in-flight body budget, half-sent heads and trickled bodies, and the modes of
//! the database files. Each spawns the real binary on loopback.
//!
//! `CARRY_ENDPOINT_BIN` runs another build of the endpoint instead (to measure an
//! older one: its figures are printed even when the test fails).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{raw, sign_in};
use serde_json::json;

/// The endpoint under test, spawned through `sh` with umask 022.
struct Endpoint {
    child: Child,
    base: String,
    log: std::path::PathBuf,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Endpoint {
    fn start(dir: &Path, extra: &[&str]) -> Self {
        let bin = std::env::var("CARRY_ENDPOINT_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_carry-endpoint").to_string());
        let db = format!("sqlite://{}", dir.join("endpoint.db").display());
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"umask 022; exec "$0" "$@""#)
            .arg(bin)
            .args(["serve", "--db", &db, "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("CARRY_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("server.log")).unwrap())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while out.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        let base = String::from_utf8(line)
            .unwrap()
            .trim()
            .strip_prefix("listening on ")
            .unwrap()
            .to_string();
        Endpoint {
            child,
            base,
            log: dir.join("server.log"),
        }
    }

    /// What the server logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    /// A line of `/proc/PID/status`, in kB.
    fn status_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

/// How a streamed request went.
#[derive(Debug)]
struct Outcome {
    status: Option<u16>,
    head: String,
    elapsed: Duration,
}

/// Send `head`, then up to `len` bytes of body in 64 KiB writes (chunked when `len` is
/// not declared in the head) from another thread, and read the answer's head; stop
/// writing as soon as it came. `sent` counts what was written.
fn stream(addr: &str, head: &str, len: u64, chunked: bool, sent: &AtomicU64) -> Outcome {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut w = s.try_clone().unwrap();
    let writer_stop = stop.clone();
    let chunk = vec![b'A'; 64 << 10];
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut left = len;
            while left > 0 && !writer_stop.load(Ordering::Relaxed) {
                let n = left.min(chunk.len() as u64) as usize;
                let ok = if chunked {
                    w.write_all(format!("{n:x}\r\n").as_bytes()).is_ok()
                        && w.write_all(&chunk[..n]).is_ok()
                        && w.write_all(b"\r\n").is_ok()
                } else {
                    w.write_all(&chunk[..n]).is_ok()
                };
                if !ok {
                    return;
                }
                sent.fetch_add(n as u64, Ordering::Relaxed);
                left -= n as u64;
            }
            if chunked && !writer_stop.load(Ordering::Relaxed) {
                let _ = w.write_all(b"0\r\n\r\n");
            }
        });
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let elapsed = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        let _ = s.shutdown(std::net::Shutdown::Both);
        let head = String::from_utf8_lossy(&got).to_string();
        let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok());
        Outcome {
            status,
            head,
            elapsed,
        }
    })
}

/// A request head: `method path`, `headers`, and a declared length or chunked.
fn head(method: &str, path: &str, headers: &[(&str, &str)], declared: Option<u64>) -> String {
    let mut h = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (n, v) in headers {
        h.push_str(&format!("{n}: {v}\r\n"));
    }
    match declared {
        Some(n) => h.push_str(&format!("Content-Length: {n}\r\n")),
        None => h.push_str("Transfer-Encoding: chunked\r\n"),
    }
    h.push_str("\r\n");
    h
}

const MB: u64 = 1_000_000;

#[test]
fn parallel_oversized_bodies_with_made_up_credentials_are_refused_at_once_and_take_no_memory() {
    let dir = tempfile::tempdir().unwrap();
    let server = Endpoint::start(dir.path(), &[]);
    let addr = server.addr();
    // Warm up: a sign-in and a small upload, so the baseline holds what a working
    // server holds.
    let t = sign_in(&server.base);
    let locator = "A".repeat(43);
    let up = raw(
        &server.base,
        "PUT",
        &format!("/backup/v1/blobs/{locator}"),
        &[
            ("authorization", &format!("Bearer {t}")),
            ("x-carry-fetch-hash", &locator),
        ],
        Some("application/octet-stream"),
        b"warm",
    );
    assert_eq!(up.status, 201, "{}", up.text);
    std::thread::sleep(Duration::from_millis(300));
    let baseline = server.status_kb("VmRSS:");

    let made_up = "Bearer made-up-session-token";
    let mailbox = "AAAAAAAAAAAAAAAAAAAAAA";
    let link = "B".repeat(43);
    let octets = [
        ("authorization", made_up),
        ("content-type", "application/octet-stream"),
        ("x-carry-fetch-hash", locator.as_str()),
    ];
    let json_auth = [
        ("authorization", made_up),
        ("content-type", "application/json"),
    ];
    let json = [("content-type", "application/json")];
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let backup = format!("/backup/v1/blobs/{locator}");
    let deliver = format!("/relay/v1/mailboxes/{mailbox}");
    let replace = format!("/shl/v1/links/{link}/file");
    // Eight of 200 MB to each of the backup, relay and share-link owner routes, half
    // with a declared length and half chunked; and eight to routes anyone may call.
    let mut cases: Vec<(String, String, bool)> = Vec::new();
    for i in 0..8u64 {
        let declared = (i % 2 == 0).then_some(200 * MB);
        let chunked = declared.is_none();
        cases.push((
            "backup".into(),
            head("PUT", &backup, &octets, declared),
            chunked,
        ));
        let (route, path) = if i < 4 {
            ("relay deliver", deliver.as_str())
        } else {
            ("relay directory", "/relay/v1/directory")
        };
        let method = if i < 4 { "POST" } else { "PUT" };
        cases.push((
            route.into(),
            head(method, path, &json_auth, declared),
            chunked,
        ));
        let (route, method, path) = if i < 4 {
            ("shl create", "POST", "/shl/v1/links")
        } else {
            ("shl replace", "PUT", replace.as_str())
        };
        cases.push((
            route.into(),
            head(method, path, &json_auth, declared),
            chunked,
        ));
        let (route, path, headers): (&str, &str, &[(&str, &str)]) = match i % 4 {
            0 => ("relay challenge", "/relay/v1/challenge", &json),
            1 => ("relay session", "/relay/v1/session", &json),
            2 => ("shl manifest", "/shl/m/BBBB", &json),
            _ => ("smart token", "/gp/auth/token", &form),
        };
        cases.push((route.into(), head("POST", path, headers, declared), chunked));
    }
    let sent = AtomicU64::new(0);
    let peak_seen = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let started = Instant::now();
    let outcomes: Vec<(String, Outcome)> = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                peak_seen.fetch_max(server.status_kb("VmRSS:"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let handles: Vec<_> = cases
            .iter()
            .map(|(route, h, chunked)| {
                let (addr, sent) = (&addr, &sent);
                scope.spawn(move || (route.clone(), stream(addr, h, 200 * MB, *chunked, sent)))
            })
            .collect();
        let out = handles.into_iter().map(|h| h.join().unwrap()).collect();
        done.store(true, Ordering::Relaxed);
        out
    });
    let total = started.elapsed();
    let hwm = server.status_kb("VmHWM:");
    let peak = peak_seen
        .load(Ordering::Relaxed)
        .max(server.status_kb("VmRSS:"));
    let sent_mb = sent.load(Ordering::Relaxed) as f64 / 1e6;
    eprintln!(
        "{} requests of 200 MB: baseline VmRSS {} MB, peak VmRSS {} MB, VmHWM {} MB; \
         {sent_mb:.1} MB of body written by the clients in {:.2} s",
        outcomes.len(),
        baseline / 1000,
        peak / 1000,
        hwm / 1000,
        total.as_secs_f64()
    );
    for (route, o) in &outcomes {
        assert!(
            matches!(o.status, Some(401 | 404 | 413)),
            "{route}: {:?} {}",
            o.status,
            o.head
        );
        assert!(o.elapsed < Duration::from_secs(5), "{route}: {o:?}");
    }
    assert!(
        peak < baseline + 100_000,
        "RSS went from {baseline} kB to {peak} kB"
    );
    // Far less than was offered (32 × 200 MB) crossed the wire.
    assert!(sent_mb < 1_000.0, "{sent_mb} MB sent");
    // The server still serves.
    assert_eq!(
        common::call(&server.base, "GET", "/healthz", None, None).status,
        200
    );
}

#[test]
fn a_body_past_the_in_flight_budget_gets_503_with_retry_after_until_room_is_free() {
    let dir = tempfile::tempdir().unwrap();
    let server = Endpoint::start(
        dir.path(),
        &[
            "--body-budget-bytes",
            "2500000",
            "--shl-max-file",
            "2000000",
        ],
    );
    let t = sign_in(&server.base);
    let bearer = format!("Bearer {t}");
    // A signed-in upload declares 2 MB and sends a little: its reservation holds.
    let mut slow = TcpStream::connect(server.addr()).unwrap();
    let h = head(
        "POST",
        "/shl/v1/links",
        &[
            ("authorization", &bearer),
            ("content-type", "application/json"),
        ],
        Some(2 * MB),
    );
    slow.write_all(h.as_bytes()).unwrap();
    slow.write_all(br#"{"file":""#).unwrap();
    let body = json!({ "file": "a.b.c.d.e", "flags": "L", "pad": "x".repeat(600_000) }).to_string();
    let post = || {
        raw(
            &server.base,
            "POST",
            "/shl/v1/links",
            &[("authorization", &bearer)],
            Some("application/json"),
            body.as_bytes(),
        )
    };
    // Another of 600 kB does not fit beside it. (Read while it is written: the
    // server answers before it reads the body.)
    let other = head(
        "POST",
        "/shl/v1/links",
        &[
            ("authorization", &bearer),
            ("content-type", "application/json"),
        ],
        Some(600_000),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let busy = loop {
        let o = stream(&server.addr(), &other, 600_000, false, &AtomicU64::new(0));
        if o.status == Some(503) || Instant::now() > deadline {
            break o;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(busy.status, Some(503), "{}\n{}", busy.head, server.log());
    let head_lower = busy.head.to_ascii_lowercase();
    assert!(
        head_lower.contains("\r\nretry-after: 1\r\n"),
        "{}",
        busy.head
    );
    // The slow client goes away: its reservation goes with it.
    drop(slow);
    let deadline = Instant::now() + Duration::from_secs(10);
    let made = loop {
        let r = post();
        if r.status != 503 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(made.status, 201, "{}", made.text);
}

/// Whether the server closes `s` within `within`, and how long it took.
fn closed_within(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(started.elapsed())
            }
            Err(_) => return None,
        }
    }
}

#[test]
fn half_sent_heads_and_silent_connections_are_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Endpoint::start(dir.path(), &["--header-timeout", "1"]);
    let mut half = TcpStream::connect(server.addr()).unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaa")
        .unwrap();
    let mut silent = TcpStream::connect(server.addr()).unwrap();
    let took = closed_within(&mut half, Duration::from_secs(10)).expect("closed");
    assert!(took < Duration::from_secs(4), "{took:?}");
    let took = closed_within(&mut silent, Duration::from_secs(10)).expect("closed");
    assert!(took < Duration::from_secs(4), "{took:?}");
    // Whole requests are still served.
    assert_eq!(
        common::call(&server.base, "GET", "/healthz", None, None).status,
        200
    );
}

#[test]
fn a_connection_where_nothing_moves_is_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Endpoint::start(
        dir.path(),
        &[
            "--header-timeout",
            "60",
            "--idle-timeout",
            "1",
            "--body-timeout",
            "60",
        ],
    );
    let t = sign_in(&server.base);
    // A body that stops: the idle timeout ends the connection.
    let mut s = TcpStream::connect(server.addr()).unwrap();
    let h = head(
        "PUT",
        "/relay/v1/directory",
        &[
            ("authorization", &format!("Bearer {t}")),
            ("content-type", "application/json"),
        ],
        Some(1000),
    );
    s.write_all(h.as_bytes()).unwrap();
    s.write_all(b"{").unwrap();
    let took = closed_within(&mut s, Duration::from_secs(10)).expect("closed");
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[test]
fn a_body_that_trickles_in_gets_408() {
    let dir = tempfile::tempdir().unwrap();
    let server = Endpoint::start(dir.path(), &["--body-timeout", "1"]);
    let t = sign_in(&server.base);
    let mut s = TcpStream::connect(server.addr()).unwrap();
    let h = head(
        "PUT",
        "/relay/v1/directory",
        &[
            ("authorization", &format!("Bearer {t}")),
            ("content-type", "application/json"),
        ],
        Some(1000),
    );
    s.write_all(h.as_bytes()).unwrap();
    let started = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    // One byte every 300 ms: moving, but far too slowly.
    while started.elapsed() < Duration::from_secs(10) && !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let _ = s.write_all(b" ");
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[cfg(unix)]
#[test]
fn the_database_files_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let server = Endpoint::start(dir.path(), &[]);
    // A write, so the WAL is in use.
    sign_in(&server.base);
    let mut seen = Vec::new();
    for name in ["endpoint.db", "endpoint.db-wal", "endpoint.db-shm"] {
        if let Ok(meta) = std::fs::metadata(dir.path().join(name)) {
            let mode = meta.permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name} is {mode:o}");
            seen.push(name);
        }
    }
    assert!(
        seen.contains(&"endpoint.db") && seen.contains(&"endpoint.db-wal"),
        "{seen:?}"
    );
}

#[test]
fn a_large_backup_streams_to_storage_and_back_within_a_small_budget() {
    let dir = tempfile::tempdir().unwrap();
    let server = Endpoint::start(
        dir.path(),
        &[
            "--body-budget-bytes",
            "2200000",
            "--shl-max-file",
            "1000000",
        ],
    );
    let t = sign_in(&server.base);
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let locator = b64.encode([9u8; 32]);
    let secret = b64.encode([7u8; 32]);
    let hash = b64.encode(ring::digest::digest(&ring::digest::SHA256, &[7u8; 32]));
    std::thread::sleep(Duration::from_millis(200));
    let before = server.status_kb("VmHWM:");
    // 60 MB, far past the budget: spooled and copied in pieces.
    let len = 60 * MB;
    let sent = AtomicU64::new(0);
    let h = head(
        "PUT",
        &format!("/backup/v1/blobs/{locator}"),
        &[
            ("authorization", &format!("Bearer {t}")),
            ("content-type", "application/octet-stream"),
            ("x-carry-fetch-hash", &hash),
        ],
        Some(len),
    );
    let o = stream(&server.addr(), &h, len, false, &sent);
    assert_eq!(o.status, Some(201), "{}", o.head);
    let after = server.status_kb("VmHWM:");
    eprintln!(
        "a 60 MB upload: VmHWM {} MB before, {} MB after",
        before / 1000,
        after / 1000
    );
    assert!(after < before + 40_000, "{before} kB, then {after} kB");
    // It comes back whole.
    let resp = common::agent()
        .get(format!("{}/backup/v1/blobs/{locator}", server.base))
        .header("x-carry-fetch", &secret)
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut body = Vec::new();
    resp.into_body()
        .into_with_config()
        .limit(100 * MB)
        .reader()
        .read_to_end(&mut body)
        .unwrap();
    assert_eq!(body.len() as u64, len);
    assert!(body.iter().all(|&b| b == b'A'));
    // The fetch streamed too.
    let fetched = server.status_kb("VmHWM:");
    eprintln!("and after fetching it: VmHWM {} MB", fetched / 1000);
    assert!(fetched < before + 40_000, "{before} kB, then {fetched} kB");
}
