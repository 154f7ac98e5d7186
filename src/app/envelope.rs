//! Bistro's request envelope (bistro-runtime §4.2): a JSON object of named sub-queries,
//! `{"a": {"handler": "jobs", ...params}, "b": ...}`, each answered independently as
//! `{"data": ...}` or `{"error": "..."}`. A top-level `prefs` is ignored. A body that
//! is not a JSON object, or that holds more than [`MAX_QUERIES`] sub-queries, is
//! refused as a whole, with the message as a JSON string.
//!
//! Both limits keep a small request from costing a large answer: a 75 KB body of
//! `task_logs` sub-queries once made a 374 MB response. Once the answers reach
//! [`MAX_RESPONSE_BYTES`], the remaining sub-queries are not run and answer an error;
//! likewise once the request has computed for [`MAX_ANSWER_TIME`], so a request of
//! costly regex filters holds its lane for a bounded time.
//!
//! The answer is streamed ([`write_answers`]): each sub-query's answer is written
//! as it is made, and `task_logs` pages line by line as SQLite reads them (a page
//! that would pass either budget ends early, its `next_line_id` continuing there), so
//! a client that does not read pins only the transport's small buffers.

use super::handlers::{self, Params};
use super::snapshot::{Site, Snapshot};
use crate::execution::http::{ensure_token, AuthError, Reply};
use serde_json::{json, Value};
use std::io::Write;
use std::time::{Duration, Instant};

/// The most sub-queries one request may hold.
pub const MAX_QUERIES: usize = 64;

/// The size of the answers after which the remaining sub-queries are not run.
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// How long one request may compute (reading logs, matching regex filters) before
/// its remaining sub-queries are not run and its log page ends.
pub const MAX_ANSWER_TIME: Duration = Duration::from_secs(5);

/// What one request's answers may spend.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The size of the answers after which the remaining sub-queries are not run.
    pub max_bytes: usize,
    /// When the remaining sub-queries are not run.
    pub deadline: Instant,
}

impl Limits {
    /// The limits of a request that starts now.
    pub fn from_now() -> Self {
        Self {
            max_bytes: MAX_RESPONSE_BYTES,
            deadline: Instant::now() + MAX_ANSWER_TIME,
        }
    }
}

/// Why a request body is refused as a whole (400, with the message as a JSON string).
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// The body is not JSON.
    #[error("the request body is not valid JSON: {0}; send an object like {{\"a\": {{\"handler\": \"jobs\"}}}}")]
    NotJson(serde_json::Error),
    /// The body is JSON, but not an object.
    #[error("the request body must be a JSON object of named queries like {{\"a\": {{\"handler\": \"jobs\"}}}}, got {0}")]
    NotAnObject(&'static str),
    /// More than [`MAX_QUERIES`] sub-queries.
    #[error("the request holds {0} queries; at most {MAX_QUERIES} are answered per request, send the rest in other requests")]
    TooManyQueries(usize),
}

/// Why one sub-query is malformed (its own `error`; the others are still answered).
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// `handler` is not a string.
    #[error("handler must be a string, got {0}")]
    HandlerNotAString(Value),
    /// No `handler`.
    #[error("missing \"handler\"")]
    MissingHandler,
    /// The sub-query is not an object.
    #[error("a query must be an object with a \"handler\", got {0}")]
    NotAnObject(&'static str),
}

/// One sub-query: its key, and its handler and parameters, or why it is malformed.
#[derive(Debug, PartialEq)]
pub struct SubQuery {
    /// The key the answer goes under.
    pub key: String,
    /// The handler name and the other fields, or the sub-query's own error.
    pub call: Result<(String, Params), QueryError>,
}

/// Answers `POST /` and `POST /api`: the request's sub-queries against one snapshot;
/// `authorization` is the request's header, checked against the token file (read per
/// request, so replacing the file rotates the token without a restart).
pub fn reply(site: &Site, body: &[u8], authorization: Option<&str>) -> Reply {
    let queries = match parse(body) {
        Ok(q) => q,
        Err(e) => return Reply::json(400, &Value::String(e.to_string())),
    };
    let snap = match site.snapshot() {
        Ok(snap) => snap,
        Err(e) => return Reply::json(e.status(), &Value::String(e.to_string())),
    };
    let auth = match authorization {
        None => Err(AuthError::Missing),
        Some(header) => match ensure_token(&site.state) {
            Ok(token) => token.check(Some(header)),
            Err(e) => return Reply::json(500, &Value::String(e.to_string())),
        },
    };
    let limits = Limits::from_now();
    Reply::json_stream(Box::new(move |out| {
        write_answers(queries, &snap, auth, limits, out)
    }))
}

/// Parses a request body into sub-queries; the error is the whole response's message.
pub fn parse(body: &[u8]) -> Result<Vec<SubQuery>, EnvelopeError> {
    let value: Value = serde_json::from_slice(body).map_err(EnvelopeError::NotJson)?;
    let Value::Object(queries) = value else {
        return Err(EnvelopeError::NotAnObject(kind(&value)));
    };
    let count = queries.keys().filter(|key| *key != "prefs").count();
    if count > MAX_QUERIES {
        return Err(EnvelopeError::TooManyQueries(count));
    }
    Ok(queries
        .into_iter()
        .filter(|(key, _)| key != "prefs")
        .map(|(key, query)| {
            let call = match query {
                Value::Object(mut params) => match params.remove("handler") {
                    Some(Value::String(name)) => Ok((name, params)),
                    Some(other) => Err(QueryError::HandlerNotAString(other)),
                    None => Err(QueryError::MissingHandler),
                },
                other => Err(QueryError::NotAnObject(kind(&other))),
            };
            SubQuery { key, call }
        })
        .collect())
}

/// Writes the answer of every sub-query against one snapshot, in order, as one JSON
/// object. Once the answers would exceed `limits.max_bytes` (their size is measured
/// before each built answer is written; a streamed log page stops short of it), or
/// once `limits.deadline` has passed, that answer and every later sub-query, which is
/// then not run, get an error instead.
pub fn write_answers(
    queries: Vec<SubQuery>,
    snap: &Snapshot,
    auth: Result<(), AuthError>,
    limits: Limits,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let max_bytes = limits.max_bytes;
    let too_large = json!({ "error": format!(
        "response too large: answering this query would take the response past {max_bytes} bytes; send it in another request"
    ) });
    let too_long = json!({ "error": format!(
        "out of time: this request computed for {MAX_ANSWER_TIME:?} before this query; send it in another request"
    ) });
    let mut out = Counted { out, bytes: 0 };
    let mut exhausted = None;
    out.write_all(b"{")?;
    for (i, SubQuery { key, call }) in queries.into_iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut out, &key)?;
        out.write_all(b":")?;
        if exhausted.is_none() && Instant::now() >= limits.deadline {
            exhausted = Some(&too_long);
        }
        if exhausted.is_none() && out.bytes > max_bytes {
            exhausted = Some(&too_large);
        }
        if let Some(error) = exhausted {
            serde_json::to_writer(&mut out, error)?;
            continue;
        }
        let answer = match call {
            Ok((name, params)) => {
                let budget = handlers::PageBudget {
                    bytes: max_bytes.saturating_sub(out.bytes),
                    deadline: limits.deadline,
                };
                if let Some(streamed) = handlers::stream(&name, &params, snap, budget, &mut out) {
                    streamed?;
                    continue;
                }
                match handlers::run(&name, &params, snap, auth) {
                    Ok(data) => json!({ "data": data }),
                    Err(e) => json!({ "error": e.to_string() }),
                }
            }
            Err(e) => json!({ "error": e.to_string() }),
        };
        if out.bytes + json_size(&answer) > max_bytes {
            exhausted = Some(&too_large);
            serde_json::to_writer(&mut out, &too_large)?;
        } else {
            serde_json::to_writer(&mut out, &answer)?;
        }
    }
    out.write_all(b"}")
}

/// A writer that counts the bytes written through it.
struct Counted<'a> {
    out: &'a mut dyn Write,
    bytes: usize,
}

impl Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.bytes += n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// The length of a value's JSON text, counted without building it.
fn json_size(value: &(impl serde::Serialize + ?Sized)) -> usize {
    /// A writer that only counts bytes.
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).expect("a JSON value serializes");
    count.0
}

/// A JSON value's kind, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_queries_are_parsed_independently_and_prefs_is_ignored() {
        let queries = parse(
            br#"{"prefs": {"x": 1}, "a": {"handler": "jobs", "jobs": ["j"]},
                 "b": {"handler": 3}, "c": [], "d": {}}"#,
        )
        .unwrap();
        let keys: Vec<&str> = queries.iter().map(|q| q.key.as_str()).collect();
        assert_eq!(keys, vec!["a", "b", "c", "d"]);
        let (name, params) = queries[0].call.as_ref().unwrap();
        assert_eq!(name, "jobs");
        assert_eq!(params["jobs"], json!(["j"]));
        assert!(!params.contains_key("handler"));
        assert_eq!(
            queries[1].call.as_ref().unwrap_err().to_string(),
            "handler must be a string, got 3"
        );
        assert!(queries[2]
            .call
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("an array"));
        assert_eq!(
            queries[3].call.as_ref().unwrap_err().to_string(),
            "missing \"handler\""
        );
    }

    #[test]
    fn more_than_max_queries_are_refused_whole() {
        let body = |n: usize| {
            let mut queries: serde_json::Map<String, Value> = (0..n)
                .map(|i| (format!("q{i}"), json!({"handler": "jobs"})))
                .collect();
            queries.insert("prefs".into(), json!({}));
            serde_json::to_vec(&queries).unwrap()
        };
        assert_eq!(parse(&body(MAX_QUERIES)).unwrap().len(), MAX_QUERIES);
        let refused = parse(&body(MAX_QUERIES + 1)).unwrap_err().to_string();
        assert!(
            refused.contains("65 queries") && refused.contains("at most 64"),
            "{refused}"
        );
    }

    #[test]
    fn answers_past_the_size_limit_become_errors() {
        let dir = tempfile::tempdir().unwrap();
        let state = crate::storage::state::StateDir::new(dir.path());
        state.create().unwrap();
        crate::storage::store::StatusStore::open(&state.statuses_db()).unwrap();
        std::fs::write(
            state.default_config(),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/examples/configs/simple.json"
            )),
        )
        .unwrap();
        let snap = Snapshot::load(&state, Some(&state.default_config())).unwrap();
        let body = br#"{"a": {"handler": "jobs"}, "b": {"handler": "jobs"},
                        "c": {"handler": "jobs"}, "d": {"handler": "refresh_time"}}"#;
        let answer = |max_bytes| {
            let mut out = Vec::new();
            let limits = Limits {
                max_bytes,
                ..Limits::from_now()
            };
            write_answers(parse(body).unwrap(), &snap, Ok(()), limits, &mut out).unwrap();
            serde_json::from_slice::<Value>(&out).unwrap()
        };
        let unlimited = answer(MAX_RESPONSE_BYTES);
        let one = json_size("a") + json_size(&unlimited["a"]);
        let limited = answer(one * 5 / 2);
        assert_eq!(limited["a"], unlimited["a"]);
        assert_eq!(limited["b"], unlimited["b"]);
        for key in ["c", "d"] {
            let error = limited[key]["error"].as_str().unwrap();
            assert!(error.starts_with("response too large"), "{key}: {error}");
        }
    }

    /// The handlers' names and their parameters' keys.
    const KEYS: &[&str] = &[
        "handler",
        "prefs",
        "jobs",
        "nodes",
        "job_id",
        "node_id",
        "job",
        "node_ids",
        "logtype",
        "sort",
        "time",
        "line_id",
        "limit",
        "regex_filter",
        "status_filter",
        "task_logs",
        "running_tasks",
        "histogram",
        "refresh_time",
        "errors",
        "delete_job",
        "save_job",
        "forgive_jobs",
        "kill_task",
        "sorted_node_names",
        "num_samples",
    ];

    proptest::proptest! {
        #![proptest_config(crate::foundation::fuzz::config(64))]

        #[test]
        fn fuzz_any_body_is_parsed_or_refused_whole(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            if let Ok(queries) = parse(&bytes) {
                proptest::prop_assert!(queries.len() <= MAX_QUERIES);
            }
        }

        #[test]
        fn fuzz_any_handler_call_is_answered_under_its_key(
            calls in proptest::collection::vec(
                (proptest::sample::select(KEYS), crate::foundation::fuzz::json(KEYS)),
                1..4,
            ),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let state = crate::storage::state::StateDir::new(dir.path());
            state.create().unwrap();
            crate::storage::store::StatusStore::open(&state.statuses_db()).unwrap();
            std::fs::write(
                state.default_config(),
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/configs/simple.json")),
            )
            .unwrap();
            let snap = Snapshot::load(&state, Some(&state.default_config())).unwrap();
            let mut body = serde_json::Map::new();
            for (i, (handler, params)) in calls.iter().enumerate() {
                let mut query = match params {
                    Value::Object(p) => p.clone(),
                    other => serde_json::Map::from_iter([("value".to_string(), other.clone())]),
                };
                query.insert("handler".into(), Value::from(*handler));
                body.insert(format!("q{i}"), Value::Object(query));
            }
            let body = serde_json::to_vec(&Value::Object(body)).unwrap();
            // Read-only: a mutating handler is refused for want of a token.
            let mut out = Vec::new();
            write_answers(parse(&body).unwrap(), &snap, Err(AuthError::Missing), Limits::from_now(), &mut out).unwrap();
            let answers: Value = serde_json::from_slice(&out).unwrap();
            for i in 0..calls.len() {
                proptest::prop_assert!(answers.get(format!("q{i}")).is_some(), "{answers}");
            }
        }
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused_whole() {
        assert!(parse(b"{nope")
            .unwrap_err()
            .to_string()
            .contains("not valid JSON"));
        assert!(parse(b"[1]")
            .unwrap_err()
            .to_string()
            .contains("got an array"));
        assert!(parse(b"")
            .unwrap_err()
            .to_string()
            .contains("not valid JSON"));
        assert_eq!(parse(b"{}").unwrap(), Vec::new());
    }
}
