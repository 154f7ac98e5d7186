//! A request as the handlers see it: hyper has parsed and framed it; the body has been
//! read whole, within the body limit and the request's deadline.

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName};

/// A request whose body has been read.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string after `?` (may be empty).
    pub query: String,
    /// The headers, as hyper parsed them.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Request {
    /// The first value of a header, when it is text.
    pub fn header(&self, name: impl TryInto<HeaderName>) -> Option<&str> {
        let name = name.try_into().ok()?;
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
