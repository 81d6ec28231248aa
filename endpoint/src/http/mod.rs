//! What every service shares over HTTP: tokens (`tokens.rs`), the
//! rate limit and test faults (`limits.rs`), request bodies read within a cap and a
//! process-wide budget (`body.rs`), and the server with its per-connection timeouts
//! (`server.rs`).

pub(crate) mod answer;
pub(crate) mod body;
pub(crate) mod limits;
pub(crate) mod server;
pub(crate) mod tokens;
