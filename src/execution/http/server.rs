//! The HTTP server, transport only: binding (loopback only unless allowed), the
//! connection threads and their limits, and the serve loop. What requests mean is
//! the caller's: it hands [`Server::serve`] a [`Handler`].
//!
//! One thread accepts; each connection gets a short-lived thread that reads one
//! request under deadlines and size limits ([`wire`]) and writes the answer, so idle
//! and slow clients only ever hold their own thread (at most [`MAX_CONNECTIONS`] of
//! them, each for at most [`HEAD_TIMEOUT`] to send its head, [`REQUEST_TIMEOUT`] to
//! send the whole request, and as long again to read the answer). Answers are
//! computed by a fixed pool of [`WORKERS`] that never touch a socket.

use super::error::HttpError;
use super::guard::HostGuard;
use super::reply::{send, Reply};
use super::wire::{self, Deadlined, ReadError};
use serde_json::Value;
use std::io::{BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
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

/// What answers a server's requests; it never touches the socket.
pub type Handler<'a> = dyn Fn(&wire::Request) -> Reply + Sync + 'a;

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

/// Binds a non-blocking listener on `addr`; returns it with the address actually
/// bound (useful with port 0).
pub(super) fn bind_listener(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), HttpError> {
    let listener = TcpListener::bind(addr).map_err(|source| HttpError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .and_then(|a| listener.set_nonblocking(true).map(|()| a))
        .map_err(|source| HttpError::Bind { addr, source })?;
    Ok((listener, local_addr))
}

/// A bound server, with the names it may be reached by.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    guard: HostGuard,
    deadlines: Deadlines,
}

impl Server {
    /// Binds the listening socket, after [`ListenOptions::check`].
    pub fn bind(opts: &ListenOptions) -> Result<Self, HttpError> {
        let (listener, local_addr) = bind_listener(opts.check()?)?;
        Ok(Self {
            listener,
            local_addr,
            guard: HostGuard::new(&opts.listen, local_addr, &opts.allow_hosts)?,
            deadlines: Deadlines {
                head: opts.head_timeout,
                request: opts.request_timeout,
            },
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The `Host` and `Origin` checks for this server's names.
    pub fn guard(&self) -> &HostGuard {
        &self.guard
    }

    /// Serves until `stop` is true (checked every 100 ms), answering each request
    /// with `handler`. Accept errors (such as running out of file descriptors) are
    /// logged and retried, so the server keeps serving once they pass.
    pub fn serve(&self, stop: &AtomicBool, handler: &Handler) {
        serve_with(&self.listener, self.deadlines, stop, handler);
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
    handler: &Handler,
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
                    tracing::warn!("accepting a connection on {local}: {e}");
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
fn work(queue: &Mutex<mpsc::Receiver<Job>>, stop: &AtomicBool, handler: &Handler) {
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

    /// Runs `test` against a server with `opts` on a free loopback port, whose
    /// handler is never reached by these tests' requests.
    fn serving(opts: ListenOptions, test: impl FnOnce(SocketAddr)) {
        let opts = ListenOptions {
            listen: "127.0.0.1:0".into(),
            ..opts
        };
        let server = Server::bind(&opts).unwrap();
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let _stop = StopOnDrop(&stop);
            scope.spawn(|| server.serve(&stop, &|_| Reply::error(500, "unexpected request")));
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
        let opts = ListenOptions {
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
}
