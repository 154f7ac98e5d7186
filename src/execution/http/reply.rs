//! A response before it is sent: its status, type and body (whole, or written by a
//! producer that streams it), and the security headers every answer carries. No CORS
//! header is ever sent: browsers keep other origins out.

use serde_json::{json, Value};
use std::io::Write;

/// Writes a streamed answer into the sink it is given, on a blocking thread; the
/// sink blocks while the client has not taken what came before.
pub type Producer = Box<dyn FnOnce(&mut dyn Write) -> std::io::Result<()> + Send>;

/// The body of a reply.
pub enum Body {
    /// The whole body, already built (small answers).
    Full(Vec<u8>),
    /// A body written as it is read from the store, so a client that does not read
    /// pins only a small buffer, not the answer.
    Stream(Producer),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Full(bytes) => write!(f, "Full({} bytes)", bytes.len()),
            Body::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// A response before it is sent.
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Body,
    /// The `Allow` header of a 405: the methods the path takes.
    pub allow: Option<String>,
    /// The `Content-Security-Policy` of an HTML page.
    pub csp: Option<&'static str>,
}

/// The `Content-Type` of JSON answers.
pub const JSON: &str = "application/json; charset=utf-8";

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, value: &Value) -> Self {
        Self::bytes(status, JSON, serde_json::to_vec(value).expect("serializes"))
    }

    /// A refusal: `{"error": message}`.
    pub fn error(status: u16, message: &str) -> Self {
        Self::json(status, &json!({ "error": message }))
    }

    /// A 200 HTML page, sent with its Content-Security-Policy.
    pub fn html(text: &str, csp: &'static str) -> Self {
        Self {
            csp: Some(csp),
            ..Self::bytes(200, "text/html; charset=utf-8", text.as_bytes().to_vec())
        }
    }

    /// A 200 answer of `content_type`.
    pub fn text(content_type: &'static str, body: String) -> Self {
        Self::bytes(200, content_type, body.into_bytes())
    }

    /// A 200 JSON answer that `producer` writes while the client reads it.
    pub fn json_stream(producer: Producer) -> Self {
        Self {
            status: 200,
            content_type: JSON,
            body: Body::Stream(producer),
            allow: None,
            csp: None,
        }
    }

    fn bytes(status: u16, content_type: &'static str, body: Vec<u8>) -> Self {
        Self {
            status,
            content_type,
            body: Body::Full(body),
            allow: None,
            csp: None,
        }
    }

    /// The headers sent with this reply, beside its length or framing.
    pub(super) fn headers(&self) -> Vec<(&'static str, &str)> {
        let mut headers = vec![
            ("content-type", self.content_type),
            ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
        ];
        if let Some(csp) = self.csp {
            headers.push(("content-security-policy", csp));
        }
        if let Some(allow) = &self.allow {
            headers.push(("allow", allow));
        }
        headers
    }
}
