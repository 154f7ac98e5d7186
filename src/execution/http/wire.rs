//! The HTTP/1.1 wire format, as much as the API needs: one request per connection
//! (every response says `Connection: close`), bodies by `Content-Length` only, and
//! hard limits on everything a client controls: the head (16 KiB), the body
//! ([`MAX_BODY_BYTES`](super::MAX_BODY_BYTES), refused before it is read), and the
//! time it takes: the caller reads through a [`Deadlined`] socket, with one deadline
//! for the head ([`read_head`]) and a later one for the whole request
//! ([`read_body`]).
//!
//! We do not use tiny_http 0.12: refusing a request whose `Content-Length` is huge
//! makes it allocate that many bytes when the request is dropped, which aborts the
//! process (a one-request crash of the daemon), and it offers no socket timeouts and
//! no cap on header lines.

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The largest request line plus headers accepted.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// A request as read from the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string after `?` (may be empty).
    pub query: String,
    /// Header names (lower-cased) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of a header (`name` in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request could not be read; each maps to the status the client gets.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Not HTTP/1.x as we accept it (400).
    #[error("{0}")]
    Malformed(String),
    /// The request line and headers exceed [`MAX_HEAD_BYTES`] (431).
    #[error("the request line and headers are larger than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    /// The declared body exceeds the limit (413).
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    /// A body without `Content-Length` (411).
    #[error("send the body with a Content-Length header (chunked bodies are not accepted)")]
    LengthRequired,
    /// The client was too slow (408).
    #[error("the request took too long to arrive")]
    TimedOut,
    /// The connection closed or failed; nothing can be answered.
    #[error("connection closed: {0}")]
    Closed(std::io::Error),
}

impl ReadError {
    /// The status code to answer with, if the connection can still be answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ReadError::Malformed(_) => Some(400),
            ReadError::HeadTooLarge => Some(431),
            ReadError::BodyTooLarge(_) => Some(413),
            ReadError::LengthRequired => Some(411),
            ReadError::TimedOut => Some(408),
            ReadError::Closed(_) => None,
        }
    }
}

fn io_error(e: std::io::Error) -> ReadError {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => ReadError::TimedOut,
        _ => ReadError::Closed(e),
    }
}

/// A socket whose reads and writes must all be done by one instant: each call blocks
/// at most for the time left, and fails with `TimedOut` once it has passed. A timeout
/// per call alone would let a client that sends a byte just before each timeout hold
/// its connection for as long as it likes.
#[derive(Debug)]
pub struct Deadlined {
    stream: TcpStream,
    /// When the current phase (head, body, answer) must be over.
    pub deadline: Instant,
}

impl Deadlined {
    /// `stream`, which must be done within `budget` from now.
    pub fn new(stream: TcpStream, budget: Duration) -> Self {
        Self {
            stream,
            deadline: Instant::now() + budget,
        }
    }

    /// The socket.
    pub fn get_ref(&self) -> &TcpStream {
        &self.stream
    }

    /// The time left before the deadline, or `TimedOut` when none is.
    fn time_left(&self) -> std::io::Result<Duration> {
        self.deadline
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "the deadline has passed")
            })
    }
}

impl Read for Deadlined {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stream.set_read_timeout(Some(self.time_left()?))?;
        self.stream.read(buf)
    }
}

impl Write for Deadlined {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.set_write_timeout(Some(self.time_left()?))?;
        self.stream.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

/// Reads the request line and headers; the body is left for [`read_body`].
pub fn read_head(reader: &mut impl BufRead) -> Result<Request, ReadError> {
    let mut head = reader.take(MAX_HEAD_BYTES as u64);
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = head.read_until(b'\n', &mut line).map_err(io_error)?;
        if n == 0 || !line.ends_with(b"\n") {
            return Err(if head.limit() == 0 {
                ReadError::HeadTooLarge
            } else {
                ReadError::Closed(std::io::ErrorKind::UnexpectedEof.into())
            });
        }
        line.pop();
        if line.ends_with(b"\r") {
            line.pop();
        }
        if line.is_empty() {
            if lines.is_empty() {
                continue; // tolerate blank lines before the request line (RFC 9112 §2.2)
            }
            break;
        }
        let text = String::from_utf8(line)
            .map_err(|_| ReadError::Malformed("the request head is not UTF-8".into()))?;
        lines.push(text);
    }
    let request_line = &lines[0];
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Malformed(format!(
            "bad request line {request_line:?}"
        )));
    };
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        return Err(ReadError::Malformed(format!(
            "unsupported protocol {version:?}; use HTTP/1.1"
        )));
    }
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ReadError::Malformed(format!("bad method {method:?}")));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if !path.starts_with('/') {
        return Err(ReadError::Malformed(format!(
            "bad request target {target:?}"
        )));
    }
    let mut headers = Vec::new();
    for line in &lines[1..] {
        let (name, value) = line
            .split_once(':')
            .filter(|(name, _)| !name.is_empty() && !name.contains([' ', '\t']))
            .ok_or_else(|| ReadError::Malformed(format!("bad header line {line:?}")))?;
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body: Vec::new(),
    })
}

/// Reads the body of `request`, whose head [`read_head`] read. `interim` receives
/// `100 Continue` when the client asks for it and the body is acceptable.
pub fn read_body(
    reader: &mut impl BufRead,
    interim: &mut impl Write,
    request: &mut Request,
    max_body: usize,
) -> Result<(), ReadError> {
    if request.header("transfer-encoding").is_some() {
        return Err(ReadError::LengthRequired);
    }
    let lengths: Vec<&str> = request
        .headers
        .iter()
        .filter(|(n, _)| n == "content-length")
        .map(|(_, v)| v.as_str())
        .collect();
    let length = match lengths.as_slice() {
        [] => 0,
        [first, rest @ ..] if rest.iter().all(|v| v == first) => first
            .parse::<u64>()
            .map_err(|_| ReadError::Malformed(format!("bad Content-Length {first:?}")))?,
        _ => {
            return Err(ReadError::Malformed(
                "conflicting Content-Length headers".into(),
            ))
        }
    };
    if length > max_body as u64 {
        return Err(ReadError::BodyTooLarge(max_body));
    }
    if length > 0
        && request
            .header("expect")
            .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
    {
        interim
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .and_then(|()| interim.flush())
            .map_err(io_error)?;
    }
    let mut body = vec![0; length as usize];
    reader.read_exact(&mut body).map_err(io_error)?;
    request.body = body;
    Ok(())
}

/// The reason phrase of the statuses we send.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Writes a complete response and flushes it.
pub fn write_response(
    writer: &mut impl Write,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason(status),
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    writer.write_all(head.as_bytes())?;
    writer.write_all(body)?;
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(raw: &[u8]) -> (Result<Request, ReadError>, Vec<u8>) {
        let mut interim = Vec::new();
        let mut reader = std::io::Cursor::new(raw);
        let r = read_head(&mut reader).and_then(|mut request| {
            read_body(&mut reader, &mut interim, &mut request, 100).map(|()| request)
        });
        (r, interim)
    }

    #[test]
    fn a_request_is_parsed_with_its_query_headers_and_body() {
        let (r, interim) = read(
            b"POST /api?x=1 HTTP/1.1\r\nHost: a:1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\nbodyEXTRA",
        );
        let r = r.unwrap();
        assert_eq!(
            (r.method.as_str(), r.path.as_str(), r.query.as_str()),
            ("POST", "/api", "x=1")
        );
        assert_eq!(r.header("host"), Some("a:1"));
        assert_eq!(r.body, b"body");
        assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    }

    #[test]
    fn limits_and_malformed_heads_map_to_their_statuses() {
        let status = |raw: &[u8]| read(raw).0.unwrap_err().status();
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: 1000000000000\r\n\r\n"),
            Some(413)
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Some(411)
        );
        assert_eq!(status(b"GET / HTTP/2\r\n\r\n"), Some(400));
        assert_eq!(status(b"GET nothttp\r\n\r\n"), Some(400));
        assert_eq!(status(b"GET / HTTP/1.1\r\nno colon\r\n\r\n"), Some(400));
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
            Some(400)
        );
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.extend(vec![b'a'; MAX_HEAD_BYTES]);
        assert_eq!(status(&long), Some(431));
        assert_eq!(
            status(b"GET / HTTP/1.1\r\n"),
            None,
            "a closed connection gets no answer"
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"),
            None
        );
    }

    #[test]
    fn responses_close_the_connection_and_carry_their_length() {
        let mut out = Vec::new();
        write_response(
            &mut out,
            404,
            &[("Content-Type", "application/json")],
            b"{}",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nConnection: close\r\nContent-Type: application/json\r\n\r\n{}"
        );
    }
}
