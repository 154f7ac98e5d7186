//! The HTTP server: binding (loopback only unless allowed), the request checks every
//! route shares (Host allowlist, route and method, body size), and the serve loop.
//!
//! tiny_http reads each connection's request head on its own thread, so idle or slow
//! clients never occupy the fixed pool of [`WORKERS`] that computes answers. What a
//! worker could still block on is the client's socket, and tiny_http does not expose
//! it for a read or write timeout, so a worker never touches it: a body larger than
//! tiny_http's own 1 KiB pre-read is read by a helper thread the worker waits for at
//! most [`BODY_DEADLINE`] (the client then gets 408), and every response is written
//! by a helper thread. A slow client costs a parked thread, as its idle connection
//! already does in tiny_http, never a worker.

use super::auth::{ensure_token, Token};
use super::snapshot::{Snapshot, SnapshotError};
use super::{envelope, metrics, page};
use crate::report::{self, ReportError, ReportFilter};
use crate::state::{StateDir, StateError};
use crate::tick::LastTick;
use serde_json::{json, Value};
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;
use tiny_http::{Header, Request, Response};

/// Where `serve-http` listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:6790";

/// The largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Threads that compute answers.
const WORKERS: usize = 4;

/// How long a worker waits for a request body.
const BODY_DEADLINE: Duration = Duration::from_secs(10);

/// How often workers look at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// How the server listens and what it serves.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// `IP:PORT` or `localhost:PORT`; port 0 picks a free port.
    pub listen: String,
    /// Listen on a non-loopback address too.
    pub allow_remote: bool,
    /// The config file (default: the one the scheduler last used).
    pub config: Option<PathBuf>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_string(),
            allow_remote: false,
            config: None,
        }
    }
}

/// Why the server cannot start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The listen address does not parse.
    #[error("cannot listen on {0:?}: expected IP:PORT (e.g. 127.0.0.1:6790, [::1]:6790) or localhost:PORT")]
    BadAddress(String),
    /// A non-loopback address without `allow_remote`.
    #[error("refusing to listen on {0}: it is not a loopback address, so other machines could reach the API; pass --allow-remote to do it anyway")]
    NotLoopback(SocketAddr),
    /// The port is taken or not ours to use.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The state directory has no state yet.
    #[error("no state in {0}: run `bistro init` (or a tick) first")]
    NoState(PathBuf),
    /// The token file could not be created or read.
    #[error(transparent)]
    Token(#[from] StateError),
    /// The listening socket failed; the server cannot accept connections any more.
    #[error("the listening socket on {addr} failed: {source}")]
    Accept {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A bound server over one state directory.
pub struct HttpServer {
    server: tiny_http::Server,
    state: StateDir,
    config: Option<PathBuf>,
    local_addr: SocketAddr,
    hosts: Vec<String>,
    token: Token,
}

/// Parses a listen address: a socket address, or `localhost:PORT`.
pub fn parse_listen(text: &str) -> Result<SocketAddr, HttpError> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.strip_prefix("localhost:")
        .and_then(|port| port.parse::<u16>().ok())
        .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
        .ok_or_else(|| HttpError::BadAddress(text.to_string()))
}

impl HttpServer {
    /// Binds the listening socket and makes sure the token file exists. Refuses a
    /// non-loopback address unless `allow_remote`, and a state dir without state.
    pub fn bind(state: &StateDir, opts: &HttpOptions) -> Result<Self, HttpError> {
        let addr = parse_listen(&opts.listen)?;
        if !addr.ip().is_loopback() && !opts.allow_remote {
            return Err(HttpError::NotLoopback(addr));
        }
        if !state.statuses_db().exists() {
            return Err(HttpError::NoState(state.root().to_path_buf()));
        }
        let token = ensure_token(state)?;
        let listener =
            TcpListener::bind(addr).map_err(|source| HttpError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| HttpError::Bind { addr, source })?;
        let server =
            tiny_http::Server::from_listener(listener, None).map_err(|e| HttpError::Bind {
                addr,
                source: std::io::Error::other(e.to_string()),
            })?;
        let port = local_addr.port();
        let hosts = vec![
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
            local_addr.to_string(),
            opts.listen.to_ascii_lowercase(),
        ];
        Ok(Self {
            server,
            state: state.clone(),
            config: opts.config.clone(),
            local_addr,
            hosts,
            token,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves requests on a fixed pool of threads until `stop` is true (checked every
    /// 100 ms), or until the listening socket fails.
    pub fn serve(&self, stop: &AtomicBool) -> Result<(), HttpError> {
        let failure = std::sync::Mutex::new(None);
        let failed = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for _ in 0..WORKERS {
                scope.spawn(|| {
                    while !stop.load(Ordering::SeqCst) && !failed.load(Ordering::SeqCst) {
                        match self.server.recv_timeout(POLL) {
                            Ok(Some(request)) => self.handle(request),
                            Ok(None) => {}
                            Err(source) => {
                                *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(source);
                                failed.store(true, Ordering::SeqCst);
                            }
                        }
                    }
                });
            }
        });
        match failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(source) => Err(HttpError::Accept {
                addr: self.local_addr,
                source,
            }),
            None => Ok(()),
        }
    }

    fn handle(&self, request: Request) {
        let head = Head::of(&request);
        if !self.host_allowed(head.host.as_deref()) {
            let host = head.host.as_deref().unwrap_or("(none)");
            return send(
                request,
                Reply::error(
                    403,
                    &format!(
                        "Host {host:?} is not one of this server's names ({}); requests through other names are refused to prevent DNS rebinding",
                        self.hosts[..4].join(", ")
                    ),
                ),
            );
        }
        let route = match route(&head.method, &head.path) {
            Ok(route) => route,
            Err(reply) => return send(request, reply),
        };
        let reply = match route {
            Route::Page => Reply::html(page::HTML),
            Route::Status => self.status(&head.query),
            Route::Metrics => self.metrics(),
            Route::Envelope => {
                let Some((request, body)) = read_body(request) else {
                    return;
                };
                return send(request, self.envelope(&body, head.authorization.as_deref()));
            }
        };
        send(request, reply)
    }

    fn host_allowed(&self, host: Option<&str>) -> bool {
        host.is_some_and(|h| {
            let h = h.trim().to_ascii_lowercase();
            self.hosts.contains(&h)
        })
    }

    fn envelope(&self, body: &[u8], authorization: Option<&str>) -> Reply {
        let queries = match envelope::parse(body) {
            Ok(q) => q,
            Err(message) => return Reply::json(400, &Value::String(message)),
        };
        let snap = match Snapshot::load(&self.state, self.config.as_deref()) {
            Ok(snap) => snap,
            Err(e) => return Reply::json(snapshot_status(&e), &Value::String(e.to_string())),
        };
        let auth = self.token.check(authorization);
        Reply::json(200, &envelope::answer(queries, &snap, auth))
    }

    fn status(&self, query: &str) -> Reply {
        let tasks = query
            .split('&')
            .any(|kv| kv == "tasks=1" || kv == "tasks=true");
        let filter = ReportFilter {
            tasks,
            ..Default::default()
        };
        match report::from_state(&self.state, self.config.as_deref(), &filter) {
            Ok(loaded) => Reply::json(
                200,
                &serde_json::to_value(&loaded.report).expect("serializes"),
            ),
            Err(e @ (ReportError::NoState(_) | ReportError::NoConfig(_))) => {
                Reply::error(503, &e.to_string())
            }
            Err(e) => Reply::error(500, &e.to_string()),
        }
    }

    fn metrics(&self) -> Reply {
        let snap = match Snapshot::load(&self.state, self.config.as_deref()) {
            Ok(snap) => snap,
            Err(e) => return Reply::error(snapshot_status(&e), &e.to_string()),
        };
        let text = (|| -> Result<String, String> {
            let nodes = snap.nodes()?;
            let (rows, running) = snap.statuses()?;
            let report = report::build(
                &report::ReportInput {
                    config: &snap.config,
                    nodes,
                    rows,
                    running,
                    config_error: snap.config_error.as_ref().map(ToString::to_string),
                    now: snap.now,
                },
                &ReportFilter::default(),
            );
            let last_tick = LastTick::load(&snap.store).map_err(|e| e.to_string())?;
            Ok(metrics::render(&metrics::MetricsInput {
                report: &report,
                last_tick: last_tick.as_ref(),
                config_errors: snap.config_error.as_ref().map_or(0, |e| e.problems().len()),
                job_errors: snap.config.job_problems().len(),
            }))
        })();
        match text {
            Ok(text) => Reply {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: text.into_bytes(),
                allow: None,
            },
            Err(e) => Reply::error(500, &e),
        }
    }
}

/// 503 while there is nothing to serve yet, 500 for real failures.
fn snapshot_status(e: &SnapshotError) -> u16 {
    match e {
        SnapshotError::NoState(_) | SnapshotError::NoConfig { .. } => 503,
        SnapshotError::Store(_) => 500,
    }
}

/// What the checks need from a request.
struct Head {
    method: String,
    path: String,
    query: String,
    host: Option<String>,
    authorization: Option<String>,
}

impl Head {
    fn of(request: &Request) -> Self {
        let header = |name: &'static str| {
            request
                .headers()
                .iter()
                .find(|h| h.field.equiv(name))
                .map(|h| h.value.as_str().to_string())
        };
        let (path, query) = request.url().split_once('?').unwrap_or((request.url(), ""));
        Self {
            method: request.method().as_str().to_string(),
            path: path.to_string(),
            query: query.to_string(),
            host: header("Host"),
            authorization: header("Authorization"),
        }
    }
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /`.
    Page,
    /// `POST /` or `POST /api`.
    Envelope,
    /// `GET /api/status`.
    Status,
    /// `GET /metrics`.
    Metrics,
}

/// Routes a request: 404 for an unknown path, 405 (with `Allow`) for a wrong method.
fn route(method: &str, path: &str) -> Result<Route, Reply> {
    let allowed: &[(&str, Route)] = match path {
        "/" => &[("GET", Route::Page), ("POST", Route::Envelope)],
        "/api" => &[("POST", Route::Envelope)],
        "/api/status" => &[("GET", Route::Status)],
        "/metrics" => &[("GET", Route::Metrics)],
        _ => {
            return Err(Reply::error(
                404,
                &format!("no route {path}; use GET / (status page), POST / (the API), GET /api/status or GET /metrics"),
            ))
        }
    };
    match allowed.iter().find(|(m, _)| *m == method) {
        Some((_, route)) => Ok(*route),
        None => {
            let methods: Vec<&str> = allowed.iter().map(|(m, _)| *m).collect();
            let mut reply = Reply::error(
                405,
                &format!(
                    "{method} is not allowed on {path}; use {}",
                    methods.join(" or ")
                ),
            );
            reply.allow = Some(methods.join(", "));
            Err(reply)
        }
    }
}

/// Reads the body, at most [`MAX_BODY_BYTES`], within [`BODY_DEADLINE`]. On failure
/// the request has been answered (413, 400 or 408) and None is returned.
fn read_body(mut request: Request) -> Option<(Request, Vec<u8>)> {
    if request.body_length().is_some_and(|n| n > MAX_BODY_BYTES) {
        send(request, too_large());
        return None;
    }
    // tiny_http reads a body of up to 1 KiB with the head, unless the client waits
    // for `100 Continue`.
    let buffered = request.body_length().is_some_and(|n| n <= 1024)
        && !request.headers().iter().any(|h| h.field.equiv("Expect"));
    let (tx, rx) = mpsc::channel();
    let reader = move || {
        let mut body = Vec::new();
        let read = request
            .as_reader()
            .take(MAX_BODY_BYTES as u64 + 1)
            .read_to_end(&mut body);
        let outcome = match read {
            Ok(_) if body.len() > MAX_BODY_BYTES => Err(too_large()),
            Ok(_) => Ok(body),
            Err(e) => Err(Reply::error(
                400,
                &format!("cannot read the request body: {e}"),
            )),
        };
        match outcome {
            Ok(body) => {
                if let Err(mpsc::SendError((request, _))) = tx.send((request, body)) {
                    send(
                        request,
                        Reply::error(408, "the request body took too long to arrive"),
                    );
                }
            }
            Err(reply) => send(request, reply),
        }
    };
    if buffered {
        reader();
    } else {
        std::thread::spawn(reader);
    }
    rx.recv_timeout(BODY_DEADLINE).ok()
}

fn too_large() -> Reply {
    Reply::error(
        413,
        &format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
    )
}

/// A response before it is sent.
#[derive(Debug)]
pub struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    allow: Option<String>,
}

impl Reply {
    fn json(status: u16, value: &Value) -> Self {
        Self {
            status,
            content_type: "application/json; charset=utf-8",
            body: serde_json::to_vec(value).expect("serializes"),
            allow: None,
        }
    }

    /// A refusal: `{"error": message}`.
    fn error(status: u16, message: &str) -> Self {
        Self::json(status, &json!({ "error": message }))
    }

    fn html(text: &str) -> Self {
        Self {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: text.as_bytes().to_vec(),
            allow: None,
        }
    }
}

/// Writes the reply on a helper thread, so a client that does not read cannot hold
/// the worker. No CORS header is ever sent: browsers keep other origins out.
fn send(request: Request, reply: Reply) {
    let mut headers = vec![
        ("Content-Type", reply.content_type.to_string()),
        ("Cache-Control", "no-store".to_string()),
        ("X-Content-Type-Options", "nosniff".to_string()),
        ("Referrer-Policy", "no-referrer".to_string()),
    ];
    if reply.content_type.starts_with("text/html") {
        headers.push(("Content-Security-Policy", page::CSP.to_string()));
    }
    if let Some(allow) = reply.allow {
        headers.push(("Allow", allow));
    }
    let mut response = Response::from_data(reply.body).with_status_code(reply.status);
    for (name, value) in headers {
        response.add_header(
            Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("valid header"),
        );
    }
    std::thread::spawn(move || {
        let _ = request.respond(response);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_answer_404_for_unknown_paths_and_405_for_wrong_methods() {
        assert_eq!(route("GET", "/").unwrap(), Route::Page);
        assert_eq!(route("POST", "/").unwrap(), Route::Envelope);
        assert_eq!(route("POST", "/api").unwrap(), Route::Envelope);
        assert_eq!(route("GET", "/api/status").unwrap(), Route::Status);
        assert_eq!(route("GET", "/metrics").unwrap(), Route::Metrics);
        assert_eq!(route("GET", "/nope").unwrap_err().status, 404);
        let wrong = route("DELETE", "/api").unwrap_err();
        assert_eq!(wrong.status, 405);
        assert_eq!(wrong.allow.as_deref(), Some("POST"));
        assert_eq!(route("POST", "/metrics").unwrap_err().status, 405);
    }

    #[test]
    fn listen_addresses_parse_and_remote_ones_are_refused_by_default() {
        assert_eq!(
            parse_listen("localhost:7").unwrap(),
            "127.0.0.1:7".parse().unwrap()
        );
        assert!(parse_listen("[::1]:0").unwrap().ip().is_loopback());
        assert!(matches!(
            parse_listen("nope"),
            Err(HttpError::BadAddress(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let opts = HttpOptions {
            listen: "0.0.0.0:0".into(),
            ..Default::default()
        };
        assert!(matches!(
            HttpServer::bind(&state, &opts),
            Err(HttpError::NotLoopback(_))
        ));
    }
}
