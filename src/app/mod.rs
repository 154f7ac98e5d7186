//! The REST API over a state directory (bistro-runtime §4), the status page and
//! Prometheus metrics, served by `bistro serve-http` (and `bistro daemon --http`)
//! over the [`crate::execution::http`] transport.
//!
//! Routes (`routes.rs`, wired in `server.rs`):
//!
//! | route | does |
//! |---|---|
//! | `POST /`, `POST /api` | Bistro's envelope of named sub-queries (`envelope.rs`) |
//! | `GET /` | the self-refreshing status page (`page.rs`) |
//! | `GET /api/status[?tasks=1]` | the `bistro status --json` document (`api_status.rs`) |
//! | `GET /metrics` | Prometheus text exposition (`metrics.rs`) |
//! | `POST /rpc/NAME` | remote workers' calls, on a daemon with remote workers ([`crate::execution::http::rpc`]) |
//!
//! Everything is read from the state directory's files and SQLite databases (WAL, safe
//! beside a running tick); the state lock is never taken. Security (engineering guide
//! B.1 §7): loopback by default, a `Host` allowlist against DNS rebinding, a bearer
//! token for the handlers that change state, a 1 MiB body cap, limits on the queries
//! of an envelope and the size of their answers (`envelope.rs`), and no CORS: a
//! request from another origin's page is refused.
//!
//! For the daemon, the whole API is:
//!
//! ```no_run
//! use bistro::app::{HttpOptions, HttpServer};
//! use std::sync::atomic::AtomicBool;
//! # fn main() -> Result<(), bistro::execution::http::HttpError> {
//! let state = bistro::storage::state::StateDir::new("bistro-state");
//! // Fails fast: a bad address, a port taken, a state dir without state.
//! let server = HttpServer::bind(&state, &HttpOptions::default())?;
//! let _bound = server.local_addr(); // the port actually bound, with port 0
//! let stop = AtomicBool::new(false);
//! server.serve(&stop); // blocks; returns within 100 ms once `stop` is true
//! # Ok(()) }
//! ```

mod api_status;
mod envelope;
mod handlers;
mod metrics;
mod page;
mod routes;
mod server;
mod snapshot;

pub use server::{HttpOptions, HttpServer};
