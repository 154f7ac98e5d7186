//! The transport through a real socket: hyper's parsing and the limits and checks
//! added on top of it, with a handler that echoes what reached it.

use super::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

/// Answers 200 with the request's method, path and body; `/stream` streams
/// `STREAM_BYTES` of `x`.
struct Echo;

const STREAM_BYTES: usize = 1 << 20;

impl Handler for Echo {
    fn lane(&self, _method: &str, _path: &str, _query: &str) -> Lane {
        Lane::Quick
    }

    fn answer(&self, request: &Request) -> Reply {
        if request.path == "/stream" {
            return Reply::json_stream(Box::new(|out| out.write_all(&[b'x'; STREAM_BYTES])));
        }
        Reply::text(
            "text/plain",
            format!(
                "{} {} {}",
                request.method,
                request.path,
                String::from_utf8_lossy(&request.body)
            ),
        )
    }
}

/// Sets the stop flag when dropped, so a failing test still ends the server.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Runs `test` against a server with `opts` on a free loopback port.
fn serving(opts: ListenOptions, test: impl FnOnce(SocketAddr)) {
    let opts = ListenOptions {
        listen: "127.0.0.1:0".into(),
        ..opts
    };
    let server = Server::bind(&opts).unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let _stop = StopOnDrop(&stop);
        scope.spawn(|| server.serve(&stop, Arc::new(Echo)));
        test(server.local_addr());
    });
}

/// Sends `raw` and reads until the server closes: the status and the whole answer.
fn exchange(addr: SocketAddr, raw: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(raw);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[test]
fn requests_reach_the_handler_and_bad_ones_get_their_status() {
    serving(ListenOptions::default(), |addr| {
        let status = |raw: &[u8]| exchange(addr, raw).0;
        let (ok, text) = exchange(
            addr,
            b"POST /x?q=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody",
        );
        assert_eq!(ok, 200, "{text}");
        assert!(text.ends_with("POST /x body"), "{text}");
        assert!(text.contains("x-content-type-options: nosniff"), "{text}");
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000000\r\n\r\n"),
            413
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            411
        );
        assert_eq!(status(b"garbage\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nno colon\r\n\r\n"), 400);
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n"),
            400
        );
        assert_eq!(
            status(
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
            ),
            400
        );
        let mut long = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
        long.extend(vec![b'a'; MAX_HEAD_BYTES]);
        long.extend(b"\r\n\r\n");
        assert_eq!(status(&long), 431);
    });
}

#[test]
fn two_hosts_two_origins_and_a_signed_length_are_refused() {
    serving(ListenOptions::default(), |addr| {
        let (status, text) = exchange(
            addr,
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n",
        );
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("more than one host header"), "{text}");
        let (status, text) = exchange(
            addr,
            b"GET / HTTP/1.1\r\nHost: a\r\nOrigin: http://a\r\nOrigin: http://evil.example\r\n\r\n",
        );
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("origin"), "{text}");
        for length in ["+2", "-2", " 2x", "0x2"] {
            let raw = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {length}\r\n\r\nab");
            assert_eq!(exchange(addr, raw.as_bytes()).0, 400, "{length}");
        }
    });
}

#[test]
fn a_client_trickling_its_head_is_cut_off_at_the_deadline() {
    let opts = ListenOptions {
        head_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_millis(1500),
        ..Default::default()
    };
    serving(opts, |addr| {
        let mut client = TcpStream::connect(addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let start = Instant::now();
        client.write_all(b"GET / HTTP/1.1\r\nX-Slow: ").unwrap();
        let mut buf = [0; 64];
        let closed = loop {
            assert!(start.elapsed() < Duration::from_secs(10), "never cut off");
            match client.read(&mut buf) {
                Ok(0) => break start.elapsed(),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break start.elapsed(),
                Err(_) => {
                    if client.write_all(b"a").is_err() {
                        break start.elapsed();
                    }
                }
            }
        };
        assert!(
            closed >= Duration::from_millis(300) && closed < Duration::from_millis(1500),
            "the head's deadline: {closed:?}"
        );
        let mut client = TcpStream::connect(addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        client
            .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n{")
            .unwrap();
        let mut answer = String::new();
        let _ = client.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
    });
}

#[test]
fn a_streamed_answer_arrives_whole() {
    serving(ListenOptions::default(), |addr| {
        let (status, text) = exchange(addr, b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(status, 200);
        let body = text.split_once("\r\n\r\n").unwrap().1;
        let unchunked: usize = body.matches('x').count();
        assert_eq!(unchunked, STREAM_BYTES);
    });
}
