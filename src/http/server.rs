//! The HTTP server: binding (loopback only unless allowed), the checks every route
//! shares (Host allowlist, route and method, body size), and the serve loop.
//!
//! One thread accepts; each connection gets a short-lived thread that reads one
//! request under deadlines and size limits ([`wire`]) and writes the answer, so idle
//! and slow clients only ever hold their own thread (at most [`MAX_CONNECTIONS`] of
//! them, each for at most [`HEAD_TIMEOUT`] to send its head, [`REQUEST_TIMEOUT`] to
//! send the whole request, and as long again to read the answer). Answers are
//! computed by a fixed pool of [`WORKERS`] that never touch a socket.

use super::auth::{ensure_token, AuthError};
use super::rpc::RpcEndpoint;
use super::snapshot::{NodesUnavailable, Snapshot, SnapshotError};
use super::wire::{self, Deadlined, ReadError};
use super::{envelope, metrics, page};
use crate::report::{self, ReportFilter};
use crate::runner::remote::Hub;
use crate::state::{StateDir, StateError};
use crate::store::LastTick;
use serde_json::{json, Value};
use std::io::{BufReader, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Where `serve-http` listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:6790";

/// The largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Threads that compute answers.
const WORKERS: usize = 4;

/// Connections served at once; more are answered 503 at once.
pub const MAX_CONNECTIONS: usize = 256;

/// How long a client has to send the request line and headers (408 after).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client has to send the whole request (408 after), and to read the
/// answer (the connection is closed after).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the accept loop and the workers look at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// How the server listens and what it serves.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// `IP:PORT` or `localhost:PORT`; port 0 picks a free port.
    pub listen: String,
    /// Listen on a non-loopback address too.
    pub allow_remote: bool,
    /// More names clients may reach the server by (`Host` and `Origin`): `NAME` (with
    /// or without the listening port) or `NAME:PORT`.
    pub allow_hosts: Vec<String>,
    /// The config file (default: the one the scheduler last used).
    pub config: Option<PathBuf>,
    /// How long a client has to send the request head (default 10 s).
    pub head_timeout: Duration,
    /// How long a client has to send the whole request, and to read the answer
    /// (default 30 s).
    pub request_timeout: Duration,
    /// The scheduler's remote workers: the server takes their calls (`POST
    /// /rpc/NAME`) and serves their task logs with its own.
    pub hub: Option<Arc<Hub>>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_string(),
            allow_remote: false,
            allow_hosts: Vec::new(),
            config: None,
            head_timeout: HEAD_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            hub: None,
        }
    }
}

/// Why the server cannot start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The listen address does not parse.
    #[error("cannot listen on {0:?}: expected IP:PORT (e.g. 127.0.0.1:6790, [::1]:6790) or localhost:PORT")]
    BadAddress(String),
    /// An `allow_hosts` entry that is not `NAME` or `NAME:PORT`.
    #[error("--allow-host {0:?}: expected NAME or NAME:PORT (e.g. bistro.example.com, bistro.example.com:6790, [2001:db8::1]:6790)")]
    BadAllowedHost(String),
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
    #[error(transparent)]
    NoState(StateError),
    /// The token file could not be created or read.
    #[error(transparent)]
    Token(#[from] StateError),
}

/// A bound server over one state directory.
pub struct HttpServer {
    listener: TcpListener,
    state: StateDir,
    config: Option<PathBuf>,
    local_addr: SocketAddr,
    hosts: Vec<String>,
    head_timeout: Duration,
    request_timeout: Duration,
    rpc: Option<RpcEndpoint>,
    hub: Option<Arc<Hub>>,
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
        for name in &opts.allow_hosts {
            allowed_host(name, 0)?;
        }
        if !addr.ip().is_loopback() && !opts.allow_remote {
            return Err(HttpError::NotLoopback(addr));
        }
        state.existing_statuses_db().map_err(HttpError::NoState)?;
        ensure_token(state)?;
        let listener =
            TcpListener::bind(addr).map_err(|source| HttpError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .and_then(|a| listener.set_nonblocking(true).map(|()| a))
            .map_err(|source| HttpError::Bind { addr, source })?;
        let port = local_addr.port();
        let mut hosts = vec![
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
            local_addr.to_string(),
            opts.listen.to_ascii_lowercase(),
        ];
        for name in &opts.allow_hosts {
            hosts.extend(allowed_host(name, port)?);
        }
        let mut seen = std::collections::HashSet::new();
        hosts.retain(|h| seen.insert(h.clone()));
        Ok(Self {
            listener,
            state: state.clone(),
            config: opts.config.clone(),
            local_addr,
            hosts,
            head_timeout: opts.head_timeout,
            request_timeout: opts.request_timeout,
            rpc: opts.hub.as_ref().map(|hub| RpcEndpoint {
                service: Arc::clone(hub) as Arc<dyn super::rpc::RpcService>,
                secret: hub.secret_path().to_path_buf(),
            }),
            hub: opts.hub.clone(),
        })
    }

    fn deadlines(&self) -> Deadlines {
        Deadlines {
            head: self.head_timeout,
            request: self.request_timeout,
        }
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `stop` is true (checked every 100 ms). Accept errors (such as
    /// running out of file descriptors) are reported on stderr and retried, so the
    /// server keeps serving once they pass.
    pub fn serve(&self, stop: &AtomicBool) {
        serve_with(&self.listener, self.deadlines(), stop, &|r| self.handle(r));
    }

    /// Answers one request.
    fn handle(&self, request: &wire::Request) -> Reply {
        if let Some(name) = request.path.strip_prefix("/rpc/") {
            // Machine-to-machine calls: the shared secret is their protection (a
            // browser cannot send it cross-origin), not the names they are sent to.
            return match &self.rpc {
                Some(rpc) => rpc.answer(name, request),
                None => Reply::error(
                    404,
                    "this server takes no worker calls: remote workers talk to `bistro daemon` run without --worker-command",
                ),
            };
        }
        let host = request.header("host");
        if !self.host_allowed(host) {
            return Reply::error(
                403,
                &format!(
                    "Host {:?} is not one of this server's names ({}); requests through other names are refused to prevent DNS rebinding (--allow-host adds names)",
                    host.unwrap_or("(none)"),
                    self.hosts.join(", ")
                ),
            );
        }
        if let Some(origin) = request.header("origin") {
            if !self.origin_allowed(origin) {
                return Reply::error(
                    403,
                    &format!(
                        "Origin {origin:?} is not this server; requests from other sites' pages are refused (this server sends no CORS headers)"
                    ),
                );
            }
        }
        match route(&request.method, &request.path) {
            Err(reply) => reply,
            Ok(Route::Page) => Reply::html(page::HTML),
            Ok(Route::Status) => self.status(&request.query),
            Ok(Route::Metrics) => self.metrics(),
            Ok(Route::Envelope) => self.envelope(&request.body, request.header("authorization")),
        }
    }

    fn host_allowed(&self, host: Option<&str>) -> bool {
        host.is_some_and(|h| {
            let h = h.trim().to_ascii_lowercase();
            self.hosts.contains(&h)
        })
    }

    /// Whether a browser's `Origin` is one of this server's names: a page from another
    /// site may POST a text/plain body without a preflight, and its answer, though
    /// unreadable to the page, still costs the server the work.
    fn origin_allowed(&self, origin: &str) -> bool {
        origin_host(origin).is_some_and(|host| self.hosts.contains(&host))
    }

    fn envelope(&self, body: &[u8], authorization: Option<&str>) -> Reply {
        let queries = match envelope::parse(body) {
            Ok(q) => q,
            Err(message) => return Reply::json(400, &Value::String(message)),
        };
        let mut snap = match Snapshot::load(&self.state, self.config.as_deref()) {
            Ok(snap) => snap,
            Err(e) => return Reply::json(snapshot_status(&e), &Value::String(e.to_string())),
        };
        snap.hub = self.hub.clone();
        // Read per request, so replacing the file rotates the token without a restart.
        let auth = match authorization {
            None => Err(AuthError::Missing),
            Some(header) => match ensure_token(&self.state) {
                Ok(token) => token.check(Some(header)),
                Err(e) => return Reply::json(500, &Value::String(e.to_string())),
            },
        };
        Reply::json(
            200,
            &envelope::answer(queries, &snap, auth, envelope::MAX_RESPONSE_BYTES),
        )
    }

    fn status(&self, query: &str) -> Reply {
        let tasks = query
            .split('&')
            .any(|kv| kv == "tasks=1" || kv == "tasks=true");
        let filter = ReportFilter {
            tasks,
            ..Default::default()
        };
        match self.snapshot_report(&filter) {
            Ok((_, report)) => {
                Reply::json(200, &serde_json::to_value(&report).expect("serializes"))
            }
            Err(refusal) => refusal,
        }
    }

    fn metrics(&self) -> Reply {
        let (snap, report) = match self.snapshot_report(&ReportFilter::default()) {
            Ok(loaded) => loaded,
            Err(refusal) => return refusal,
        };
        match LastTick::load(&snap.store) {
            Ok(last_tick) => Reply {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: metrics::render(&metrics::MetricsInput {
                    report: &report,
                    last_tick: last_tick.as_ref(),
                    config_errors: snap.config_error.as_ref().map_or(0, |e| e.problems().len()),
                    job_errors: snap.config.job_problems().len(),
                })
                .into_bytes(),
                allow: None,
            },
            Err(e) => Reply::error(500, &e.to_string()),
        }
    }

    /// The `status --json` document as of now, from the stored nodes only, or the
    /// refusal to send instead: 503 while there is nothing to report yet (no state,
    /// no config, no nodes fetched for it), 500 for real failures.
    fn snapshot_report(
        &self,
        filter: &ReportFilter,
    ) -> Result<(Snapshot, report::StatusReport), Reply> {
        let snap = Snapshot::load(&self.state, self.config.as_deref())
            .map_err(|e| Reply::error(snapshot_status(&e), &e.to_string()))?;
        let nodes = match snap.nodes() {
            Ok(nodes) => nodes,
            Err(e @ NodesUnavailable::NotFetched(_)) => {
                return Err(Reply::error(503, &e.to_string()))
            }
            Err(e) => return Err(Reply::error(500, &e.to_string())),
        };
        let statuses = snap
            .store
            .snapshot()
            .map_err(|e| Reply::error(500, &e.to_string()))?;
        let mut report = report::read(
            &report::CountsInput {
                config: &snap.config,
                nodes,
                statuses: &statuses,
                state: &snap.state,
                config_error: snap.config_error.as_ref().map(ToString::to_string),
                now: snap.now,
            },
            filter,
        )
        .map_err(|e| Reply::error(500, &e.to_string()))?;
        drop(statuses);
        report.workers = report::workers(&self.state);
        Ok((snap, report))
    }
}

/// The `host[:port]` of an `Origin` header (`http://...` or `https://...`),
/// lower-cased, as a browser would send it in `Host` to that origin (a default port
/// is left out of both); None for `null` and anything else.
fn origin_host(origin: &str) -> Option<String> {
    let origin = origin.trim().to_ascii_lowercase();
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))?;
    (!rest.is_empty() && !rest.contains(['/', '?', '#', '@'])).then(|| rest.to_string())
}

/// The `Host` values an `--allow-host` entry allows: `NAME:PORT` as given, `NAME`
/// both alone (as sent to a proxy on a default port) and with the listening `port`.
fn allowed_host(entry: &str, port: u16) -> Result<Vec<String>, HttpError> {
    let bad = || HttpError::BadAllowedHost(entry.to_string());
    let entry = entry.trim().to_ascii_lowercase();
    let (name, given_port) = match entry.rfind(']') {
        Some(bracket) if entry.starts_with('[') => match &entry[bracket + 1..] {
            "" => (entry.as_str(), None),
            rest => (
                &entry[..=bracket],
                Some(rest.strip_prefix(':').ok_or_else(bad)?),
            ),
        },
        Some(_) => return Err(bad()),
        None => match entry.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (entry.as_str(), None),
        },
    };
    let name_ok = match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(ip6) => ip6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        }
    };
    if !name_ok {
        return Err(bad());
    }
    Ok(match given_port {
        Some(p) => {
            p.parse::<u16>().map_err(|_| bad())?;
            vec![format!("{name}:{p}")]
        }
        None => vec![name.to_string(), format!("{name}:{port}")],
    })
}

/// 503 while there is nothing to serve yet, 500 for real failures.
fn snapshot_status(e: &SnapshotError) -> u16 {
    match e {
        SnapshotError::NoState(_) | SnapshotError::NoConfig { .. } => 503,
        SnapshotError::Store(_) => 500,
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

/// A request and where its answer goes.
type Job = (wire::Request, mpsc::Sender<Reply>);

/// Accepts connections on `listener` until `stop`, answering each request with
/// `handler` on a fixed pool of [`WORKERS`].
pub(super) fn serve_with(
    listener: &TcpListener,
    deadlines: Deadlines,
    stop: &AtomicBool,
    handler: &(dyn Fn(&wire::Request) -> Reply + Sync),
) {
    let (jobs, queue) = mpsc::sync_channel::<Job>(MAX_CONNECTIONS);
    let queue = Mutex::new(queue);
    let open = Arc::new(AtomicUsize::new(0));
    let local = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| work(&queue, stop, handler));
        }
        while !stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => accept(stream, &jobs, &open, deadlines),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => wait_for_client(listener),
                Err(e) => {
                    eprintln!("bistro: http: accepting a connection on {local}: {e}");
                    std::thread::sleep(POLL);
                }
            }
        }
    });
}

/// Blocks until a client connects or [`POLL`] passes.
fn wait_for_client(listener: &TcpListener) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    let _ = poll(&mut fds, PollTimeout::from(POLL.as_millis() as u16));
}

/// A worker: answers queued requests until `stop`.
fn work(
    queue: &Mutex<mpsc::Receiver<Job>>,
    stop: &AtomicBool,
    handler: &(dyn Fn(&wire::Request) -> Reply + Sync),
) {
    while !stop.load(Ordering::SeqCst) {
        let job = queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .recv_timeout(POLL);
        if let Ok((request, answer)) = job {
            let _ = answer.send(handler(&request));
        }
    }
}

/// Hands a new connection to its own thread, or answers 503 when too many are open.
fn accept(
    stream: TcpStream,
    jobs: &mpsc::SyncSender<Job>,
    open: &Arc<AtomicUsize>,
    deadlines: Deadlines,
) {
    if stream.set_nonblocking(false).is_err() {
        return;
    }
    if open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
        open.fetch_sub(1, Ordering::SeqCst);
        return send(
            Deadlined::new(stream, POLL),
            Reply::error(503, "too many connections; try again"),
        );
    }
    let (jobs, open) = (jobs.clone(), Arc::clone(open));
    std::thread::spawn(move || {
        connection(stream, &jobs, deadlines);
        open.fetch_sub(1, Ordering::SeqCst);
    });
}

/// How long a connection may take: to send its head, its whole request, and to read
/// the answer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadlines {
    pub(super) head: Duration,
    pub(super) request: Duration,
}

/// One connection: read the request (the head within `deadlines.head`, all of it
/// within `deadlines.request`, else 408), queue it for a worker, write the answer
/// (within `deadlines.request`).
fn connection(stream: TcpStream, jobs: &mpsc::SyncSender<Job>, deadlines: Deadlines) {
    let start = Instant::now();
    let Ok(writer) = stream.try_clone() else {
        return;
    };
    let mut interim = Deadlined::new(writer, deadlines.request);
    let mut reader = BufReader::new(Deadlined::new(stream, deadlines.head));
    let read = wire::read_head(&mut reader).and_then(|mut request| {
        reader.get_mut().deadline = start + deadlines.request;
        wire::read_body(&mut reader, &mut interim, &mut request, MAX_BODY_BYTES).map(|()| request)
    });
    let reply = match read {
        Ok(request) => {
            let (answer, reply) = mpsc::channel();
            if jobs.send((request, answer)).is_err() {
                return;
            }
            match reply.recv() {
                Ok(reply) => reply,
                Err(_) => return,
            }
        }
        Err(e @ ReadError::Malformed(_)) => Reply::json(400, &Value::String(e.to_string())),
        Err(e) => match e.status() {
            Some(status) => Reply::error(status, &e.to_string()),
            None => return,
        },
    };
    let refused_early = matches!(reply.status, 408 | 411 | 413);
    interim.deadline = Instant::now() + deadlines.request;
    send(interim, reply);
    if refused_early {
        // Read (and drop) what the client is still sending, for a bounded time and
        // amount, so closing the socket does not reset the connection (which throws
        // away the answer in the client's buffer) before the client has read it.
        reader.get_mut().deadline = Instant::now() + DRAIN_TIME;
        let _ = std::io::copy(&mut reader.take(DRAIN_BYTES), &mut std::io::sink());
    }
}

/// After refusing a request early, how long and how much of its body is read and
/// dropped before the connection closes.
const DRAIN_TIME: Duration = Duration::from_secs(1);
const DRAIN_BYTES: u64 = 16 << 20;

/// A response before it is sent.
#[derive(Debug)]
pub struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    allow: Option<String>,
}

impl Reply {
    pub(super) fn json(status: u16, value: &Value) -> Self {
        Self {
            status,
            content_type: "application/json; charset=utf-8",
            body: serde_json::to_vec(value).expect("serializes"),
            allow: None,
        }
    }

    /// A refusal: `{"error": message}`.
    pub(super) fn error(status: u16, message: &str) -> Self {
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

/// Writes the reply (within the stream's deadline) and closes the connection. No CORS
/// header is ever sent: browsers keep other origins out.
fn send(mut stream: Deadlined, reply: Reply) {
    let mut headers = vec![
        ("Content-Type", reply.content_type),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
    ];
    if reply.content_type.starts_with("text/html") {
        headers.push(("Content-Security-Policy", page::CSP));
    }
    if let Some(allow) = &reply.allow {
        headers.push(("Allow", allow));
    }
    let _ = wire::write_response(&mut stream, reply.status, &headers, &reply.body);
    let _ = stream.get_ref().shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Sets the stop flag when dropped, so a failing test still ends the server.
    struct StopOnDrop<'a>(&'a AtomicBool);

    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// Runs `test` against a server with `opts` on a free loopback port, over a fresh
    /// state dir.
    fn serving(opts: HttpOptions, test: impl FnOnce(SocketAddr)) {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        state.create().unwrap();
        crate::store::StatusStore::open(&state.statuses_db()).unwrap();
        let opts = HttpOptions {
            listen: "127.0.0.1:0".into(),
            ..opts
        };
        let server = HttpServer::bind(&state, &opts).unwrap();
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let _stop = StopOnDrop(&stop);
            scope.spawn(|| server.serve(&stop));
            test(server.local_addr());
        });
    }

    /// Sends `head`, then one byte of `trickle` every 20 ms (each well within any
    /// per-read timeout) until the server answers and closes; returns the answer and
    /// how long it took. Gives up after 10 s.
    fn trickle(addr: SocketAddr, head: &[u8], trickle: u8) -> (String, Duration) {
        let mut client = TcpStream::connect(addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let start = Instant::now();
        client.write_all(head).unwrap();
        let mut answer = Vec::new();
        let mut buf = [0; 1024];
        while start.elapsed() < Duration::from_secs(10) {
            match client.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                // A read with a timeout is not restarted after a signal (other tests
                // in this process deliver some): EINTR is just another pause.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    let _ = client.write_all(&[trickle]);
                }
                Err(e) => {
                    answer.extend_from_slice(format!("<client read failed: {e}>").as_bytes());
                    break;
                }
            }
        }
        (
            String::from_utf8_lossy(&answer).into_owned(),
            start.elapsed(),
        )
    }

    #[test]
    fn a_client_trickling_its_request_is_cut_off_at_the_deadline() {
        let opts = HttpOptions {
            head_timeout: Duration::from_millis(300),
            request_timeout: Duration::from_millis(3000),
            ..Default::default()
        };
        serving(opts, |addr| {
            let (answer, took) = trickle(addr, b"GET / HTTP/1.1\r\nX-Slow: ", b'a');
            assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
            assert!(answer.contains("took too long"), "{answer:?}");
            // Only the head's deadline can end it before the whole request's.
            assert!(
                took >= Duration::from_millis(300) && took < Duration::from_millis(3000),
                "the head's deadline: {took:?}"
            );
            let head = format!("POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 100000\r\n\r\n");
            let (answer, took) = trickle(addr, head.as_bytes(), b' ');
            assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
            assert!(
                took >= Duration::from_millis(3000),
                "the whole request's deadline, not an earlier one: {took:?}"
            );
        });
    }

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
    fn origins_become_host_values() {
        assert_eq!(
            origin_host("http://127.0.0.1:6790").as_deref(),
            Some("127.0.0.1:6790")
        );
        assert_eq!(
            origin_host("HTTP://LocalHost").as_deref(),
            Some("localhost")
        );
        assert_eq!(
            origin_host("https://evil.example").as_deref(),
            Some("evil.example")
        );
        assert_eq!(origin_host("http://[::1]:7").as_deref(), Some("[::1]:7"));
        for refused in [
            "null",
            "",
            "file://",
            "http://a/b",
            "http://u@a:1",
            "ftp://a:1",
        ] {
            assert_eq!(origin_host(refused), None, "{refused}");
        }
    }

    #[test]
    fn allowed_hosts_add_a_name_with_and_without_the_port() {
        let allowed = |entry: &str| allowed_host(entry, 6790).map_err(|e| e.to_string());
        assert_eq!(
            allowed("Bistro.Example").unwrap(),
            vec!["bistro.example", "bistro.example:6790"]
        );
        assert_eq!(allowed("b.example:443").unwrap(), vec!["b.example:443"]);
        assert_eq!(allowed("[2001:db8::1]:7").unwrap(), vec!["[2001:db8::1]:7"]);
        assert_eq!(
            allowed("[2001:db8::1]").unwrap(),
            vec!["[2001:db8::1]", "[2001:db8::1]:6790"]
        );
        for bad in [
            "",
            "a:b",
            "a:99999",
            "2001:db8::1",
            "a/b",
            "a b",
            "[::1]x",
            "x]",
            "[",
            "[x]",
        ] {
            let error = allowed(bad).unwrap_err();
            assert!(error.contains("NAME:PORT"), "{bad}: {error}");
        }
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
