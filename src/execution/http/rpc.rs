//! Calls between a scheduler and its remote workers: `POST /rpc/NAME` with a JSON
//! body and the shared secret as a bearer token, answered with JSON (200) or
//! `{"error": ...}` (a refusal: the call was not carried out).
//!
//! A scheduler serves them beside its REST API (the app routes `/rpc/NAME` to an
//! [`RpcEndpoint`]); a worker serves only them ([`RpcServer`]).

use super::auth::{read_secret, AuthError};
use super::error::HttpError;
use super::lanes::Lane;
use super::reply::Reply;
use super::request::Request;
use super::server::{parse_listen, Bound, Deadlines, Handler, HEAD_TIMEOUT, REQUEST_TIMEOUT};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// A refusal: the HTTP status and what the caller should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcRefusal {
    /// 400 for a malformed call, 404 for an unknown one, 409 when the caller's view
    /// is out of date (wrong ids, a worker that must die), 503 to retry later.
    pub status: u16,
    /// Why.
    pub message: String,
}

impl RpcRefusal {
    /// A refusal with `status`.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

/// What answers the calls.
pub trait RpcService: Send + Sync {
    /// Answers call `name` with its JSON `body`.
    fn call(&self, name: &str, body: Value) -> Result<Value, RpcRefusal>;
}

/// A service and the file holding the secret its callers must present.
#[derive(Clone)]
pub struct RpcEndpoint {
    /// Answers the calls.
    pub service: Arc<dyn RpcService>,
    /// The shared secret, read at each call (so it can be rotated).
    pub secret: PathBuf,
}

impl std::fmt::Debug for RpcEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcEndpoint")
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

impl RpcEndpoint {
    /// Checks the method and the secret, parses the body, and calls the service.
    pub fn answer(&self, name: &str, request: &Request) -> Reply {
        if request.method != "POST" {
            return Reply::error(405, "worker calls are POST /rpc/NAME with a JSON body");
        }
        let token = match read_secret(&self.secret) {
            Ok(token) => token,
            Err(e) => return Reply::error(500, &e.to_string()),
        };
        if let Err(e) = token.check(request.header("authorization")) {
            let why = match e {
                AuthError::Missing => "no `Authorization: Bearer SECRET` header was sent",
                AuthError::Wrong => "the secret sent is wrong",
            };
            return Reply::error(
                401,
                &format!(
                    "worker calls need the scheduler's worker secret ({}): {why}",
                    self.secret.display()
                ),
            );
        }
        let body: Value = match serde_json::from_slice(&request.body) {
            Ok(v) => v,
            Err(e) => return Reply::error(400, &format!("the body is not JSON: {e}")),
        };
        match self.service.call(name, body) {
            Ok(answer) => Reply::json(200, &answer),
            Err(refusal) => Reply::json(refusal.status, &json!({"error": refusal.message})),
        }
    }
}

/// A server that answers only worker calls (a remote worker's).
pub struct RpcServer {
    bound: Bound,
    endpoint: RpcEndpoint,
}

impl RpcServer {
    /// Binds `listen` (`IP:PORT`, port 0 for any free port).
    pub fn bind(listen: &str, endpoint: RpcEndpoint) -> Result<Self, HttpError> {
        Ok(Self {
            bound: Bound::bind(parse_listen(listen)?)?,
            endpoint,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.bound.local_addr()
    }

    /// Serves until `stop`.
    pub fn serve(&self, stop: &AtomicBool) {
        let deadlines = Deadlines {
            head: HEAD_TIMEOUT,
            request: REQUEST_TIMEOUT,
        };
        let handler = Arc::new(OnlyRpc(self.endpoint.clone()));
        self.bound.serve(deadlines, stop, handler);
    }
}

/// A worker's handler: every request is a worker call.
struct OnlyRpc(RpcEndpoint);

impl Handler for OnlyRpc {
    fn lane(&self, _method: &str, _path: &str, _query: &str) -> Lane {
        Lane::Rpc
    }

    fn answer(&self, request: &Request) -> Reply {
        match request.path.strip_prefix("/rpc/") {
            Some(name) => self.0.answer(name, request),
            None => Reply::error(404, "a worker answers only POST /rpc/NAME"),
        }
    }
}
