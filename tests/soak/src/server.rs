//! The endpoint as a child process: seeded, served on a free loopback port, its log in
//! a file, its memory read from `/proc`, and killed when the guard goes.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

/// The serving endpoint; killed (and waited for) on drop.
pub struct Server {
    /// The child process.
    child: Child,
    /// Its standard output, kept open so a late print cannot fail on a closed pipe.
    stdout: BufReader<ChildStdout>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Where its standard error goes.
    pub log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How the child ended, if it has.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("unknown ({e})")),
        }
    }

    /// The child's resident memory, in KiB.
    pub fn rss_kib(&self) -> Result<u64, String> {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        vm_rss_kib(&status).ok_or_else(|| format!("{path} has no VmRSS line"))
    }
}

/// The `VmRSS` of a `/proc/PID/status` text, in KiB.
pub fn vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line.split_whitespace().skip(1);
    let n = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => Some(n),
        Some(_) => None,
    }
}

/// Load `bundle` into `tenant` of the database `db` with `endpoint seed`.
pub fn seed(endpoint: &Path, db: &str, tenant: &str, bundle: &Path) -> Result<String, String> {
    let out = Command::new(endpoint)
        .args(["seed", "--db", db, "--tenant", tenant, "--from"])
        .arg(bundle)
        .env("CARRY_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", endpoint.display()))?;
    if !out.status.success() {
        return Err(format!(
            "seed failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Serve `db` on a free loopback port with `args` after `serve`, logging at `warn` to
/// `log`; returns once the endpoint says where it listens.
pub fn start(endpoint: &Path, db: &str, args: &[&str], log: &Path) -> Result<Server, String> {
    let err = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut child = Command::new(endpoint)
        .args(["serve", "--db", db, "--listen", "127.0.0.1:0"])
        .args(args)
        .env("CARRY_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", endpoint.display()))?;
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return Err("the endpoint's standard output is not a pipe".into());
    };
    let mut server = Server {
        child,
        stdout: BufReader::new(stdout),
        base: String::new(),
        log: log.to_path_buf(),
    };
    let mut line = String::new();
    let read = server.stdout.read_line(&mut line);
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .filter(|b| b.starts_with("http://127.0.0.1:"))
        .map(str::to_string);
    match (read, base) {
        (Ok(_), Some(base)) => {
            server.base = base;
            Ok(server)
        }
        (read, _) => {
            let log_text = std::fs::read_to_string(log).unwrap_or_default();
            Err(format!(
                "the endpoint did not say where it listens (first line {:?}, {read:?}); its log: {}",
                line.trim(),
                log_text.trim()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\tcarry-endpoint\nVmPeak:\t  99 kB\nVmRSS:\t   12345 kB\nThreads:\t4\n";
        assert_eq!(vm_rss_kib(status), Some(12345));
        assert_eq!(vm_rss_kib("Name:\tx\n"), None);
        assert_eq!(vm_rss_kib("VmRSS:\t12 MB\n"), None);
    }

    #[test]
    fn our_own_rss_can_be_read() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(vm_rss_kib(&status).unwrap() > 0);
    }
}
