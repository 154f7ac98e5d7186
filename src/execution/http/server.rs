//! The HTTP server, transport only: binding (loopback only unless allowed), hyper's
//! HTTP/1.1 connections on a small tokio runtime of their own, the limits on what a
//! client may send, and the lanes that answers are computed in. What requests mean is
//! the caller's: it hands [`Server::serve`] a [`Handler`].
//!
//! Idle and slow connections cost no thread: each is a task of the runtime, which
//! hyper ends when the head has not arrived within [`HEAD_TIMEOUT`]; the body must
//! arrive within [`REQUEST_TIMEOUT`], and the whole exchange is cut off after the
//! head's deadline and twice the request's (the request, then the answer). Answers
//! are computed on blocking threads, each request in the [`Lane`] its handler puts it
//! in: worker calls, quick reads and envelope queries each have their own permits,
//! so a flood of one kind never waits behind, nor takes the capacity of, another.

use super::error::HttpError;
use super::guard::HostGuard;
use super::lanes::{Lane, Lanes};
use super::reply::{Body, Reply};
use super::request::Request;
use super::stream;
use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, HOST, ORIGIN, TRANSFER_ENCODING};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

/// Where `serve-http` listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:6790";

/// The largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The largest request line plus headers accepted (431 beyond).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Connections open at once; more are closed at once. Each costs a task and its
/// buffers, not a thread; the server raises its open-file limit to hold them.
pub const MAX_CONNECTIONS: usize = 8192;

/// How long a client has to send the request line and headers (the connection is
/// closed after).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client has to send the whole request (408 after), and to read the
/// answer (the connection is closed after).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the accept loop looks at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// Threads that drive the connections (answers are computed on blocking threads).
const IO_THREADS: usize = 2;

/// What answers a server's requests; it never touches the socket.
pub trait Handler: Send + Sync + 'static {
    /// The lane a request is answered in, from its method, path and query, before
    /// its body is read.
    fn lane(&self, method: &str, path: &str, query: &str) -> Lane;

    /// Answers a request, on a blocking thread holding a permit of its lane.
    fn answer(&self, request: &Request) -> Reply;
}

/// Where and how a server listens.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// `IP:PORT` or `localhost:PORT`; port 0 picks a free port.
    pub listen: String,
    /// Listen on a non-loopback address too.
    pub allow_remote: bool,
    /// More names clients may reach the server by (`Host` and `Origin`): `NAME` (with
    /// or without the listening port) or `NAME:PORT`.
    pub allow_hosts: Vec<String>,
    /// How long a client has to send the request head.
    pub head_timeout: Duration,
    /// How long a client has to send the whole request, and to read the answer.
    pub request_timeout: Duration,
}

impl Default for ListenOptions {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_string(),
            allow_remote: false,
            allow_hosts: Vec::new(),
            head_timeout: HEAD_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
        }
    }
}

impl ListenOptions {
    /// Checks the options without binding anything: the address parses, every
    /// allowed host is `NAME` or `NAME:PORT`, and a non-loopback address is allowed.
    pub fn check(&self) -> Result<SocketAddr, HttpError> {
        let addr = parse_listen(&self.listen)?;
        HostGuard::check_entries(&self.allow_hosts)?;
        if !addr.ip().is_loopback() && !self.allow_remote {
            return Err(HttpError::NotLoopback(addr));
        }
        Ok(addr)
    }
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

/// A bound listening socket and the runtime that will serve it.
pub(super) struct Bound {
    listener: std::net::TcpListener,
    local_addr: SocketAddr,
    /// Taken by the one call to [`Bound::serve`].
    runtime: Mutex<Option<Runtime>>,
}

impl Bound {
    /// Binds a non-blocking listener on `addr` and builds the runtime that serves it.
    pub(super) fn bind(addr: SocketAddr) -> Result<Self, HttpError> {
        raise_open_files_limit();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(IO_THREADS)
            .max_blocking_threads(Lanes::THREADS)
            .thread_name("bistro-http")
            .enable_all()
            .build()
            .map_err(HttpError::Runtime)?;
        let listener = {
            let _in_runtime = runtime.enter();
            listen(addr).map_err(|source| HttpError::Bind { addr, source })?
        };
        let local_addr = listener
            .local_addr()
            .map_err(|source| HttpError::Bind { addr, source })?;
        Ok(Self {
            listener,
            local_addr,
            runtime: Mutex::new(Some(runtime)),
        })
    }

    /// The address actually bound.
    pub(super) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `stop` is true (checked every 100 ms), answering each request
    /// with `handler`. Accept errors (such as running out of file descriptors) are
    /// logged and retried, so the server keeps serving once they pass. A server
    /// serves once: a second call returns at once.
    pub(super) fn serve(&self, deadlines: Deadlines, stop: &AtomicBool, handler: Arc<dyn Handler>) {
        let Some(runtime) = self
            .runtime
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        let shared = Arc::new(Shared {
            handler,
            lanes: Lanes::default(),
            deadlines,
        });
        runtime.block_on(accept_loop(&self.listener, self.local_addr, shared, stop));
        runtime.shutdown_timeout(POLL);
    }
}

/// Connections the kernel queues for the accept loop: thousands of clients
/// reconnecting at once (slow ones cut at their deadline) must not overflow it, or
/// every connection, a status probe's too, waits a second for its SYN to be resent.
const BACKLOG: u32 = 4096;

/// A non-blocking listening socket on `addr` with a [`BACKLOG`] of connections
/// (`SO_REUSEADDR`, as the standard library sets it). Called inside the runtime.
fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)?.into_std()
}

/// Raises this process's soft limit on open files to its hard limit, so the
/// server can hold [`MAX_CONNECTIONS`] (a common default soft limit is 1024).
fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::debug!("raising the open-files limit from {soft} to {hard}: {e}");
            }
        }
    }
}

/// How long a connection may take: to send its head, its whole request, and to read
/// the answer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadlines {
    pub(super) head: Duration,
    pub(super) request: Duration,
}

/// What every connection of a server shares.
struct Shared {
    handler: Arc<dyn Handler>,
    lanes: Lanes,
    deadlines: Deadlines,
}

/// Accepts connections until `stop`, each served by a task of its own.
async fn accept_loop(
    listener: &std::net::TcpListener,
    local: SocketAddr,
    shared: Arc<Shared>,
    stop: &AtomicBool,
) {
    let listener = match listener
        .try_clone()
        .and_then(tokio::net::TcpListener::from_std)
    {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!("serving {local}: {e}");
            return;
        }
    };
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut poll = tokio::time::interval(POLL);
    while !stop.load(Ordering::SeqCst) {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match Arc::clone(&open).try_acquire_owned() {
                    Ok(permit) => {
                        let shared = Arc::clone(&shared);
                        tokio::spawn(async move {
                            connection(stream, &shared).await;
                            drop(permit);
                        });
                    }
                    Err(_) => tracing::warn!(
                        "{local}: {MAX_CONNECTIONS} connections are open; closed the one from {peer}"
                    ),
                },
                Err(e) => {
                    tracing::warn!("accepting a connection on {local}: {e}");
                    tokio::time::sleep(POLL).await;
                }
            },
            _ = poll.tick() => {}
        }
    }
}

/// The body of an answer: whole, or streamed from its producer.
type AnswerBody = Either<Full<Bytes>, stream::ChannelBody>;

/// One connection: one request (keep-alive is off, as the API always had it), under
/// the head's deadline (hyper's), the body's and the whole exchange's.
async fn connection(stream: tokio::net::TcpStream, shared: &Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let deadlines = shared.deadlines;
    let service_shared = Arc::clone(shared);
    let service = hyper::service::service_fn(move |request| {
        let shared = Arc::clone(&service_shared);
        async move { Ok::<_, Infallible>(exchange(request, &shared).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(deadlines.head)
        .max_header_size(MAX_HEAD_BYTES)
        .max_buf_size(stream::BUFFER_BYTES)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    let whole = deadlines.head + deadlines.request * 2;
    if let Ok(Err(e)) = tokio::time::timeout(whole, conn).await {
        tracing::debug!("connection: {e}");
    }
}

/// Reads a request, answers it in its lane, and turns the reply into a response.
async fn exchange(
    request: hyper::Request<Incoming>,
    shared: &Shared,
) -> hyper::Response<AnswerBody> {
    let (parts, body) = request.into_parts();
    let declared = match check_head(&parts.headers) {
        Ok(declared) => declared,
        Err(refusal) => return response(refusal, None),
    };
    let lane = shared.handler.lane(
        parts.method.as_str(),
        parts.uri.path(),
        parts.uri.query().unwrap_or(""),
    );
    let Some(body_permit) = shared.lanes.reserve_body(lane, declared).await else {
        return response(busy(lane), None);
    };
    let body = match tokio::time::timeout(
        shared.deadlines.request,
        Limited::new(body, MAX_BODY_BYTES).collect(),
    )
    .await
    {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return response(too_large(), None)
        }
        Ok(Err(e)) => return response(Reply::error(400, &format!("reading the body: {e}")), None),
        Err(_) => {
            return response(
                Reply::error(408, "the request took too long to arrive"),
                None,
            )
        }
    };
    let request = Request {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts.headers,
        body,
    };
    let Some(permit) = shared.lanes.enter(lane).await else {
        return response(busy(lane), None);
    };
    let handler = Arc::clone(&shared.handler);
    let answered = tokio::task::spawn_blocking(move || (handler.answer(&request), permit)).await;
    drop(body_permit);
    match answered {
        Ok((reply, permit)) => response(reply, Some((permit, shared.deadlines.request))),
        Err(e) => response(
            Reply::error(500, &format!("answering the request failed: {e}")),
            None,
        ),
    }
}

/// The refusal of a request whose lane stayed full for its whole wait.
fn busy(lane: Lane) -> Reply {
    Reply::error(
        503,
        &format!("too many {lane} requests are being answered; try again"),
    )
}

/// Refuses what hyper lets through but the API does not take: two `Host` or two
/// `Origin` headers (a guard could check one and a proxy use the other; 400), a
/// chunked body (411), a declared body over [`MAX_BODY_BYTES`] (413, before it is
/// read). hyper itself refuses a `Content-Length` that is not digits only. Returns
/// the body's declared length.
fn check_head(headers: &hyper::HeaderMap) -> Result<usize, Reply> {
    for name in [HOST, ORIGIN] {
        if headers.get_all(&name).iter().count() > 1 {
            return Err(Reply::error(
                400,
                &format!("the request has more than one {name} header; send exactly one"),
            ));
        }
    }
    if headers.contains_key(TRANSFER_ENCODING) {
        return Err(Reply::error(
            411,
            "send the body with a Content-Length header (chunked bodies are not accepted)",
        ));
    }
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared.unwrap_or(0) {
        n if n > MAX_BODY_BYTES as u64 => Err(too_large()),
        n => Ok(n as usize),
    }
}

fn too_large() -> Reply {
    Reply::error(
        413,
        &format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
    )
}

/// The response for `reply`; a streamed body is produced on a blocking thread that
/// keeps the lane's `permit`, each chunk taken by the client within `wait`.
fn response(
    reply: Reply,
    permit: Option<(tokio::sync::OwnedSemaphorePermit, Duration)>,
) -> hyper::Response<AnswerBody> {
    let mut builder = hyper::Response::builder().status(reply.status);
    for (name, value) in reply.headers() {
        if let Ok(value) = HeaderValue::from_str(value) {
            builder = builder.header(name, value);
        }
    }
    let body = match reply.body {
        Body::Full(bytes) => Either::Left(Full::new(Bytes::from(bytes))),
        Body::Stream(producer) => {
            let (permit, wait) = match permit {
                Some((permit, wait)) => (Some(permit), wait),
                None => (None, REQUEST_TIMEOUT),
            };
            Either::Right(stream::spawn(producer, permit, wait))
        }
    };
    builder
        .body(body)
        .unwrap_or_else(|_| hyper::Response::new(Either::Left(Full::new(Bytes::new()))))
}

/// A server's bound socket, its names and deadlines.
pub struct Server {
    bound: Bound,
    guard: HostGuard,
    deadlines: Deadlines,
}

impl Server {
    /// Binds the listening socket, after [`ListenOptions::check`].
    pub fn bind(opts: &ListenOptions) -> Result<Self, HttpError> {
        let bound = Bound::bind(opts.check()?)?;
        Ok(Self {
            guard: HostGuard::new(&opts.listen, bound.local_addr(), &opts.allow_hosts)?,
            bound,
            deadlines: Deadlines {
                head: opts.head_timeout,
                request: opts.request_timeout,
            },
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.bound.local_addr()
    }

    /// The `Host` and `Origin` checks for this server's names.
    pub fn guard(&self) -> &HostGuard {
        &self.guard
    }

    /// Serves until `stop` is true (checked every 100 ms), answering each request
    /// with `handler`. Accept errors (such as running out of file descriptors) are
    /// logged and retried, so the server keeps serving once they pass.
    pub fn serve(&self, stop: &AtomicBool, handler: Arc<dyn Handler>) {
        self.bound.serve(self.deadlines, stop, handler);
    }
}

#[cfg(test)]
mod tests;
