//! HTTP transport on hyper: a server's listener, connections, limits and lanes
//! (`server.rs`, `lanes.rs`), streamed answers (`stream.rs`), a request and a reply as
//! the handlers see them (`request.rs`, `reply.rs`), the checks on the names a
//! browser reaches it by (`guard.rs`), the shared secrets and bearer tokens
//! (`auth.rs`), the blocking client on ureq (`client.rs`), and the plumbing of the
//! scheduler <-> worker calls, `POST /rpc/NAME` (`rpc.rs`). No HTTP is parsed or
//! framed here: hyper does it on the server, ureq on the client.
//!
//! What the requests mean is not decided here: a server answers each with the
//! [`Handler`] it is given. Bistro's REST API, status page and metrics are
//! [`crate::app`]'s.
//!
//! Security (engineering guide B.1 §7): loopback by default, a `Host` allowlist
//! against DNS rebinding and no CORS ([`HostGuard`]; a request with two `Host` or two
//! `Origin` headers is refused), bearer tokens compared in constant time ([`Token`]),
//! a 1 MiB body cap, deadlines on every connection, a cap on how many are open at
//! once, lanes so no kind of request takes another's capacity, and streamed large
//! answers so a client that does not read pins only a small buffer.

mod auth;
pub mod client;
mod error;
mod guard;
mod lanes;
mod reply;
mod request;
pub mod rpc;
mod server;
mod stream;

pub use auth::{ensure_secret, ensure_token, read_secret, worker_token_path, AuthError, Token};
pub use error::HttpError;
pub use guard::HostGuard;
pub use lanes::Lane;
pub use reply::{Body, Producer, Reply};
pub use request::Request;
pub use server::{
    parse_listen, Handler, ListenOptions, Server, DEFAULT_LISTEN, HEAD_TIMEOUT, MAX_BODY_BYTES,
    MAX_CONNECTIONS, REQUEST_TIMEOUT,
};
