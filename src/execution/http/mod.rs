//! HTTP transport: the hand-written HTTP/1.1 wire format (`wire.rs`), a server's
//! listener, connection threads and limits (`server.rs`), the checks on the names a
//! browser reaches it by (`guard.rs`), the shared secrets and bearer tokens
//! (`auth.rs`), the blocking client (`client.rs`), and the plumbing of the
//! scheduler <-> worker calls, `POST /rpc/NAME` (`rpc.rs`).
//!
//! What the requests mean is not decided here: a server answers each with the
//! [`Handler`] it is given. Bistro's REST API, status page and metrics are
//! [`crate::app`]'s.
//!
//! Security (engineering guide B.1 §7): loopback by default, a `Host` allowlist
//! against DNS rebinding and no CORS ([`HostGuard`]), bearer tokens compared in
//! constant time ([`Token`]), a 1 MiB body cap, deadlines on every connection and a
//! cap on how many are open at once.

mod auth;
pub mod client;
mod error;
mod guard;
mod reply;
pub mod rpc;
mod server;
mod wire;

pub use auth::{ensure_secret, ensure_token, read_secret, worker_token_path, AuthError, Token};
pub use error::HttpError;
pub use guard::HostGuard;
pub use reply::Reply;
pub use server::{
    parse_listen, Handler, ListenOptions, Server, DEFAULT_LISTEN, HEAD_TIMEOUT, MAX_BODY_BYTES,
    MAX_CONNECTIONS, REQUEST_TIMEOUT,
};
pub use wire::Request;
