//! Helpers shared by the CLI's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub const PASS: &str = "a long test passphrase";

pub fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared")
        .join(rel)
}

pub fn carry(home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_carry"));
    c.arg("--home")
        .arg(home)
        .args(args)
        .env("CARRY_PASSPHRASE", PASS)
        .env_remove("CARRY_LOG");
    c
}

pub fn run(home: &Path, args: &[&str]) -> Output {
    carry(home, args)
        .stdin(Stdio::null())
        .output()
        .expect("run carry")
}

pub fn json(home: &Path, args: &[&str]) -> Value {
    let out = run(home, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

pub fn new_home() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("home");
    let out = run(&home, &["init", "--name", "Test Person"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (d, home)
}

pub fn resources(home: &Path) -> u64 {
    json(home, &["stats", "--json"])["resources"]
        .as_u64()
        .unwrap()
}

/// The reference endpoint's binary, built beside `carry` by `cargo test --workspace`.
pub fn endpoint_bin() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_carry")).with_file_name("carry-endpoint");
    assert!(
        p.exists(),
        "{} is missing: build it with cargo build -p carry-endpoint",
        p.display()
    );
    p
}

/// A running `carry-endpoint serve`, stopped on drop.
pub struct Endpoint {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `carry-endpoint` with `args` to completion; panics on failure.
pub fn endpoint(args: &[&str]) -> String {
    let out = Command::new(endpoint_bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "carry-endpoint {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Serve the database at `db` with extra `args` on a free port.
pub fn serve(db: &str, args: &[&str]) -> Endpoint {
    launch(db, args, "warn", Stdio::null())
}

/// Serve as [`serve`] does, with the debug log written to `log`, for tests that read
/// what the endpoint wrote.
pub fn serve_logging(db: &str, args: &[&str], log: &Path) -> Endpoint {
    let file = std::fs::File::create(log).unwrap();
    launch(db, args, "debug", Stdio::from(file))
}

fn launch(db: &str, args: &[&str], level: &str, stderr: Stdio) -> Endpoint {
    use std::io::BufRead;
    let mut child = Command::new(endpoint_bin())
        .args(["serve", "--db", db, "--listen", "127.0.0.1:0"])
        .args(args)
        .env("CARRY_LOG", level)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string();
    Endpoint { child, base }
}

/// Run `carry` with `args`, require success, and return its standard output.
pub fn ok(home: &Path, args: &[&str]) -> String {
    let out = run(home, args);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `carry` with `args`, run by `sh` under umask 022 (the usual default), so a file
/// written without an explicit mode would be readable by everyone.
pub fn carry_umask_022(home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("umask 022; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_carry"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env("CARRY_PASSPHRASE", PASS)
        .env_remove("CARRY_LOG")
        .stdin(Stdio::null());
    c
}

/// The permission bits of `path`.
#[cfg(unix)]
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Text that would drive a terminal: ESC, BEL, CR, LF, C1 controls, DEL and the bidi
/// overrides and isolates. None of it may reach the terminal as itself.
pub fn terminal_unsafe(text: &str) -> Option<char> {
    text.chars().find(|&c| {
        (c.is_control() && c != '\n')
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    })
}

/// The one line of `text` holding `needle`, after checking that nothing in `text`
/// can drive the terminal.
pub fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    assert_eq!(terminal_unsafe(text), None, "raw control text in: {text}");
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(needle)).collect();
    assert_eq!(lines.len(), 1, "one line holds {needle:?}: {text}");
    lines[0]
}
