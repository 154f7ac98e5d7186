//! A small blocking HTTP/1.1 client for the scheduler <-> worker calls: one JSON
//! `POST` per connection, with a connect timeout and a deadline for the whole
//! exchange, so a frozen peer costs a bounded wait.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The largest answer accepted (task logs are paged well below it).
const MAX_ANSWER_BYTES: u64 = 64 << 20;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The peer could not be reached or the exchange broke off (the call may or may
    /// not have been carried out).
    #[error("calling {addr}{path}: {message}")]
    Transport {
        /// `host:port`.
        addr: String,
        /// The path called.
        path: String,
        /// What happened.
        message: String,
    },
    /// The peer answered with a refusal: the call was not carried out.
    #[error("{addr}{path} refused the call ({status}): {message}")]
    Refused {
        /// `host:port`.
        addr: String,
        /// The path called.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The peer's `error` message.
        message: String,
    },
}

/// Posts `body` as JSON to `http://addr/path` with `Authorization: authorization`
/// and returns the JSON answer of a 200. Everything must happen within `timeout`.
pub fn post_json(
    addr: &str,
    path: &str,
    authorization: &str,
    body: &Value,
    timeout: Duration,
) -> Result<Value, ClientError> {
    let fail = |message: String| ClientError::Transport {
        addr: addr.to_string(),
        path: path.to_string(),
        message,
    };
    let deadline = Instant::now() + timeout;
    let target = addr
        .to_socket_addrs()
        .map_err(|e| fail(format!("resolving: {e}")))?
        .next()
        .ok_or_else(|| fail("the name resolves to no address".into()))?;
    let mut stream =
        TcpStream::connect_timeout(&target, timeout).map_err(|e| fail(e.to_string()))?;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    stream
        .set_write_timeout(Some(left()))
        .map_err(|e| fail(e.to_string()))?;
    let body = serde_json::to_vec(body).expect("JSON values serialize");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {authorization}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(&body))
        .map_err(|e| fail(format!("sending: {e}")))?;
    let mut answer = Vec::new();
    loop {
        stream
            .set_read_timeout(Some(left()))
            .map_err(|e| fail(e.to_string()))?;
        let mut chunk = [0u8; 16 * 1024];
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(fail(format!("reading the answer: {e}"))),
        }
        if Instant::now() >= deadline {
            return Err(fail(format!("no complete answer within {timeout:?}")));
        }
        if answer.len() as u64 > MAX_ANSWER_BYTES {
            return Err(fail("the answer is too large".into()));
        }
    }
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| fail("the answer has no complete head".into()))?;
    let head = String::from_utf8_lossy(&answer[..split]);
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| fail(format!("not an HTTP answer: {:?}", head.lines().next())))?;
    let value: Value = serde_json::from_slice(&answer[split + 4..])
        .map_err(|e| fail(format!("the answer ({status}) is not JSON: {e}")))?;
    if status == 200 {
        return Ok(value);
    }
    Err(ClientError::Refused {
        addr: addr.to_string(),
        path: path.to_string(),
        status,
        message: value
            .get("error")
            .and_then(Value::as_str)
            .map_or_else(|| value.to_string(), str::to_string),
    })
}
