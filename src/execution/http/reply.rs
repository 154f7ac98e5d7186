//! A response before it is sent, and sending it: the security headers every answer
//! carries, then the connection is closed. No CORS header is ever sent: browsers keep
//! other origins out.

use super::wire::{self, Deadlined};
use serde_json::{json, Value};
use std::net::Shutdown;

/// A response before it is sent.
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
    /// The `Allow` header of a 405: the methods the path takes.
    pub allow: Option<String>,
    /// The `Content-Security-Policy` of an HTML page.
    pub csp: Option<&'static str>,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, value: &Value) -> Self {
        Self {
            status,
            content_type: "application/json; charset=utf-8",
            body: serde_json::to_vec(value).expect("serializes"),
            allow: None,
            csp: None,
        }
    }

    /// A refusal: `{"error": message}`.
    pub fn error(status: u16, message: &str) -> Self {
        Self::json(status, &json!({ "error": message }))
    }

    /// A 200 HTML page, sent with its Content-Security-Policy.
    pub fn html(text: &str, csp: &'static str) -> Self {
        Self {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: text.as_bytes().to_vec(),
            allow: None,
            csp: Some(csp),
        }
    }

    /// A 200 answer of `content_type`.
    pub fn text(content_type: &'static str, body: String) -> Self {
        Self {
            status: 200,
            content_type,
            body: body.into_bytes(),
            allow: None,
            csp: None,
        }
    }
}

/// Writes the reply (within the stream's deadline) and closes the connection.
pub(super) fn send(mut stream: Deadlined, reply: Reply) {
    let mut headers = vec![
        ("Content-Type", reply.content_type),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
    ];
    if let Some(csp) = reply.csp {
        headers.push(("Content-Security-Policy", csp));
    }
    if let Some(allow) = &reply.allow {
        headers.push(("Allow", allow));
    }
    let _ = wire::write_response(&mut stream, reply.status, &headers, &reply.body);
    let _ = stream.get_ref().shutdown(Shutdown::Write);
}
