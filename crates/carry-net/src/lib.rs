//! The network plumbing every feature of Carry's core shares (a crate of its own,
//! re-exported by `carry-core` as `net`): the options of one call (its time
//! budget and cancel flag, [`CallOptions`]), the HTTP client with its retries, budget
//! and cancellation (`http.rs`), the client of the endpoint's relay, whose signed-in
//! session the share, link, backup and device features all use (`relay.rs`), and which
//! TLS certificates an endpoint may present (`trust.rs`).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

// The base layer, under the names the core uses.
use carry_base::{crypto, error, keys};

pub mod http;
pub mod relay;
pub mod trust;

/// Options for one call that talks to the network: a sync, an exchange with the relay,
/// a share link's creation, a backup.
#[derive(Clone, Default)]
pub struct CallOptions {
    /// Stop after this long; what was done so far is kept, and the next call resumes
    /// from there.
    pub budget: Option<Duration>,
    /// Set to stop at the next safe point.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl CallOptions {
    /// The moment the budget runs out, counted from now.
    pub fn deadline(&self) -> Option<Instant> {
        self.budget.map(|b| Instant::now() + b)
    }

    /// An HTTP client that keeps to these options, from now.
    pub fn http(&self) -> crate::error::Result<http::Http> {
        http::Http::new(self.deadline(), self.cancel.clone())
    }
}

impl std::fmt::Debug for CallOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallOptions")
            .field("budget", &self.budget)
            .field("cancel", &self.cancel.is_some())
            .finish()
    }
}
