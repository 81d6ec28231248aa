//! The network plumbing every feature shares: the HTTP client with its retries,
//! budget and cancellation (`http.rs`), and the client of the endpoint's relay, whose
//! signed-in session the share, link, backup and device features all use (`relay.rs`); and which TLS certificates an endpoint may present (`trust.rs`).

pub(crate) mod http;
pub(crate) mod relay;
pub mod trust;
