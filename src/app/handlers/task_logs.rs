//! `task_logs` (bistro-runtime §3 and §4.4): one page of one log, newest or oldest
//! first, from a time or a line id; pass `next_line_id` back as `line_id` with the same
//! sort for the next page, until it is `"-1"`.
//!
//! Unlike Bistro, whose regex filter runs after the page limit and so may end the
//! paging early (§8.8), whether more lines exist is decided before filtering: a page
//! may hold fewer matching lines, but paging always reaches every line.
//!
//! Over the local log store a page is streamed ([`write_page`]): each line is written
//! as SQLite reads it, and the page also ends early, with `next_line_id` continuing
//! there, once its lines reach the request's byte budget or its time budget passes.
//! A `regex_filter` compiles within [`REGEX_SIZE_LIMIT`], so no regex can cost more
//! than a bounded amount per line.

use super::{integer, strings, HandlerError, ParamError, Params};
use crate::app::snapshot::Snapshot;
use crate::storage::store::{LogKind, LogRow, LogStore, PageQuery, StoreError};
use regex::{Regex, RegexBuilder};
use serde_json::{json, Value};
use std::io::Write;
use std::time::Instant;

/// Lines per page, as Bistro's local scheduler.
pub const PAGE_SIZE: usize = 1000;

/// The most memory a compiled `regex_filter` may take (the regex crate's
/// `size_limit`; its lazy DFA's cache gets as much), so matching a line costs a
/// bounded amount of work.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Why a `task_logs` query is refused, in Bistro's words where it has them.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    /// `columns` was sent.
    #[error("Custom columns are currently not supported.")]
    CustomColumns,
    /// No `log_type`.
    #[error("missing parameter log_type (stdout, stderr or statuses)")]
    MissingLogType,
    /// A `log_type` that names no log.
    #[error("Unknown table for logs: {0}")]
    UnknownLogType(String),
    /// A `sort` string other than `asc` or `desc`.
    #[error("Unknown sort order: {0}")]
    UnknownSort(String),
    /// A `sort` that is not a string.
    #[error("sort must be \"asc\" or \"desc\", got {0}")]
    SortNotAString(Value),
    /// A `line_id` string that is not an int64.
    #[error("line_id must be an int64 written as a string, got {0:?}")]
    LineIdNotAnInteger(String),
    /// A `line_id` that is not a string.
    #[error("line_id must be an int64 written as a string (JSON numbers lose precision), got {0}")]
    LineIdNotAString(Value),
    /// Both `time` and `line_id`.
    #[error("Cannot specify both time and line_id")]
    TimeAndLineId,
    /// A `regex_filter` that compiles to more than [`REGEX_SIZE_LIMIT`].
    #[error("regex_filter {regex:?} compiles to more than {REGEX_SIZE_LIMIT} bytes; use a simpler regex (fewer or shorter repetitions, or (?-u) for ASCII-only classes like \\w)")]
    RegexTooBig {
        /// The regex sent.
        regex: String,
    },
    /// A `regex_filter` that does not compile.
    #[error("regex_filter {regex:?} is not a valid regex: {source}")]
    BadRegex {
        /// The regex sent.
        regex: String,
        /// Why it does not compile.
        source: regex::Error,
    },
    /// Another parameter is missing or of the wrong type.
    #[error(transparent)]
    Param(#[from] ParamError),
}

/// A parsed `task_logs` query.
#[derive(Debug)]
pub struct LogsRequest {
    /// The page to read (its `limit` is set by the caller).
    pub query: PageQuery,
    /// Lines that must match somewhere (None: all).
    pub regex: Option<Regex>,
}

/// Parses the parameters of §4.4.
pub fn parse(params: &Params) -> Result<LogsRequest, LogsError> {
    if params.contains_key("columns") {
        return Err(LogsError::CustomColumns);
    }
    let kind = match params.get("log_type") {
        None | Some(Value::Null) => return Err(LogsError::MissingLogType),
        Some(Value::String(s)) => {
            LogKind::parse(s).ok_or_else(|| LogsError::UnknownLogType(s.clone()))?
        }
        Some(other) => {
            return Err(ParamError::NotAString {
                key: "log_type".into(),
                got: other.clone(),
            }
            .into())
        }
    };
    let ascending = match params.get("sort") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("asc") => true,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("desc") => false,
        Some(Value::String(s)) => return Err(LogsError::UnknownSort(s.clone())),
        Some(other) => return Err(LogsError::SortNotAString(other.clone())),
    };
    let time = integer(params, "time")?;
    let line_id = match params.get("line_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            s.trim()
                .parse::<i64>()
                .map_err(|_| LogsError::LineIdNotAnInteger(s.clone()))?,
        ),
        Some(other) => return Err(LogsError::LineIdNotAString(other.clone())),
    };
    let from = match (time, line_id) {
        (Some(_), Some(_)) => return Err(LogsError::TimeAndLineId),
        (Some(t), None) if ascending => Some(t << 32),
        (Some(t), None) => Some((t << 32) | 0xffff_ffff),
        (None, Some(-1)) | (None, None) => None,
        (None, Some(id)) => Some(id),
    };
    let regex = match params.get("regex_filter") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(compile(s)?),
        Some(other) => {
            return Err(ParamError::NotAString {
                key: "regex_filter".into(),
                got: other.clone(),
            }
            .into())
        }
    };
    Ok(LogsRequest {
        query: PageQuery {
            kind,
            jobs: strings(params, "jobs")?,
            nodes: strings(params, "nodes")?,
            from,
            ascending,
            limit: PAGE_SIZE,
        },
        regex,
    })
}

/// Compiles a `regex_filter` within [`REGEX_SIZE_LIMIT`].
fn compile(regex: &str) -> Result<Regex, LogsError> {
    RegexBuilder::new(regex)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|source| match source {
            regex::Error::CompiledTooBig(_) => LogsError::RegexTooBig {
                regex: regex.to_string(),
            },
            source => LogsError::BadRegex {
                regex: regex.to_string(),
                source,
            },
        })
}

/// What a streamed page may still spend: bytes of lines, and time.
#[derive(Debug, Clone, Copy)]
pub struct PageBudget {
    /// The most bytes of lines to write.
    pub bytes: usize,
    /// When the page must end.
    pub deadline: Instant,
}

/// Writes one page as [`page`] reads it, `{"lines": [...], "next_line_id": "<id or
/// -1>"}`, each line as SQLite reads it; the page ends early (its `next_line_id`
/// continuing at the first line not written) once the next line would take it past
/// `budget.bytes` or `budget.deadline` has passed.
pub fn write_page(
    store: &LogStore,
    request: &LogsRequest,
    budget: PageBudget,
    out: &mut dyn Write,
) -> Result<(), PageError> {
    let limit = request.query.limit;
    let (mut read, mut written, mut next) = (0, 0, -1);
    let mut failed = None;
    out.write_all(br#"{"lines":["#)?;
    store.page_each(
        &PageQuery {
            limit: limit + 1,
            ..request.query.clone()
        },
        |row| {
            if read == limit || Instant::now() >= budget.deadline {
                next = row.id;
                return false;
            }
            read += 1;
            if !passes(request, &row.line) {
                return true;
            }
            let item = json!([row.job, row.node, row.time(), row.line, row.id.to_string()]);
            let text = serde_json::to_vec(&item).expect("a JSON value serializes");
            if written + text.len() + 1 > budget.bytes {
                next = row.id;
                return false;
            }
            let comma: &[u8] = if written == 0 { b"" } else { b"," };
            match out.write_all(comma).and_then(|()| out.write_all(&text)) {
                Ok(()) => {
                    written += text.len() + 1;
                    true
                }
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        },
    )?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    write!(out, r#"],"next_line_id":"{next}"}}"#)?;
    Ok(())
}

/// Why a streamed page stopped.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// The log store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The client went away or stopped reading.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads one page: `{"next_line_id": "<id or -1>", "lines": [[job, node, time, line, "<id>"]]}`.
pub fn page(store: &LogStore, request: &LogsRequest) -> Result<Value, StoreError> {
    let limit = request.query.limit;
    let mut rows = store.page(&PageQuery {
        limit: limit + 1,
        ..request.query.clone()
    })?;
    let next = if rows.len() > limit {
        rows.pop().map_or(-1, |r| r.id)
    } else {
        -1
    };
    Ok(lines_json(&rows, request, next))
}

/// Whether a stored line passes the request's `regex_filter`. Lines are returned
/// exactly as stored (with their newline, as Bistro returns them); the regex sees a
/// line without its newline, so `$` still ends it as in Perl-style engines.
fn passes(request: &LogsRequest, line: &str) -> bool {
    request
        .regex
        .as_ref()
        .is_none_or(|re| re.is_match(line.strip_suffix('\n').unwrap_or(line)))
}

/// `{"next_line_id", "lines"}` for rows of a page, with the regex applied.
fn lines_json(rows: &[LogRow], request: &LogsRequest, next: i64) -> Value {
    let lines: Vec<Value> = rows
        .iter()
        .filter(|r| passes(request, &r.line))
        .map(|r| json!([r.job, r.node, r.time(), r.line, r.id.to_string()]))
        .collect();
    json!({"next_line_id": next.to_string(), "lines": lines})
}

pub(super) fn task_logs(params: &Params, snap: &Snapshot) -> Result<Value, HandlerError> {
    let request = parse(params)?;
    let path = snap.state.logs_db();
    let local = if path.exists() {
        Some(LogStore::open(&path)?)
    } else {
        None
    };
    match &snap.hub {
        // Tasks that ran on workers logged there: one page over every log.
        Some(hub) => {
            let mut rows = match &local {
                Some(store) => store.page(&PageQuery {
                    limit: request.query.limit + 1,
                    ..request.query.clone()
                })?,
                None => Vec::new(),
            };
            rows.extend(
                hub.worker_logs(&request.query, request.query.limit + 1)
                    .map_err(|e| HandlerError::WorkerLogs(e.to_string()))?,
            );
            Ok(page_of(rows, &request))
        }
        None => match &local {
            Some(store) => Ok(page(store, &request)?),
            None => Ok(json!({"next_line_id": "-1", "lines": []})),
        },
    }
}

/// Writes `{"data": PAGE}` ([`write_page`]) or `{"error": ...}` for a sub-query over
/// the local log store. A store failing mid-page cuts the answer off.
pub(super) fn stream(
    params: &Params,
    snap: &Snapshot,
    budget: PageBudget,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let refuse = |out: &mut dyn Write, e: HandlerError| {
        serde_json::to_writer(out, &json!({ "error": e.to_string() })).map_err(Into::into)
    };
    let request = match parse(params) {
        Ok(request) => request,
        Err(e) => return refuse(out, e.into()),
    };
    let path = snap.state.logs_db();
    if !path.exists() {
        return out.write_all(br#"{"data":{"lines":[],"next_line_id":"-1"}}"#);
    }
    let store = match LogStore::open(&path) {
        Ok(store) => store,
        Err(e) => return refuse(out, e.into()),
    };
    out.write_all(br#"{"data":"#)?;
    match write_page(&store, &request, budget, out) {
        Ok(()) => out.write_all(b"}"),
        Err(PageError::Io(e)) => Err(e),
        Err(PageError::Store(e)) => Err(std::io::Error::other(e)),
    }
}

/// One page from rows gathered from several logs: sorted in the page's order, the
/// first `limit` kept, and the next one's id to continue from.
fn page_of(mut rows: Vec<LogRow>, request: &LogsRequest) -> Value {
    rows.sort_by_key(|r| r.id);
    if !request.query.ascending {
        rows.reverse();
    }
    let limit = request.query.limit;
    let next = rows.get(limit).map_or(-1, |r| r.id);
    rows.truncate(limit);
    lines_json(&rows, request, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::store::LogLine;

    fn params(v: Value) -> Params {
        v.as_object().unwrap().clone()
    }

    fn error(v: Value) -> String {
        parse(&params(v)).unwrap_err().to_string()
    }

    #[test]
    fn parameters_are_checked_with_bistro_messages() {
        assert_eq!(
            error(json!({"log_type": "stdout", "columns": []})),
            "Custom columns are currently not supported."
        );
        assert_eq!(
            error(json!({"log_type": "nope"})),
            "Unknown table for logs: nope"
        );
        assert_eq!(
            error(json!({"log_type": "stdout", "sort": "up"})),
            "Unknown sort order: up"
        );
        assert_eq!(
            error(json!({"log_type": "stdout", "time": 1, "line_id": "5"})),
            "Cannot specify both time and line_id"
        );
        assert!(error(json!({"log_type": "stdout", "line_id": 5})).contains("string"));
        assert!(error(json!({"log_type": "stdout", "time": "x"})).contains("time must be"));
        assert!(error(json!({"log_type": "stdout", "regex_filter": "("})).contains("regex"));
        assert!(error(json!({})).contains("log_type"));
    }

    #[test]
    fn a_regex_that_compiles_too_big_is_refused_quickly() {
        let start = Instant::now();
        let refused = error(json!({"log_type": "stdout", "regex_filter": "\\W{100}\\w{100}"}));
        assert!(refused.contains("compiles to more than"), "{refused}");
        assert!(
            start.elapsed() < std::time::Duration::from_secs(1),
            "refused within the size limit's work, not after compiling it all: {:?}",
            start.elapsed()
        );
        assert!(parse(&params(
            json!({"log_type": "stdout", "regex_filter": "(?-u)\\w{100}\\d{100}"})
        ))
        .is_ok());
    }

    #[test]
    fn a_streamed_page_past_its_budget_ends_early_and_paging_continues() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(&dir.path().join("l.sql3")).unwrap();
        let lines: Vec<LogLine> = (0..10)
            .map(|i| LogLine {
                kind: LogKind::Stdout,
                job: "j".into(),
                node: "n".into(),
                time: 100,
                line: format!("line {i}"),
            })
            .collect();
        store.append(&lines).unwrap();
        let streamed = |line_id: Option<String>, budget: PageBudget| {
            let mut query = json!({"log_type": "stdout", "sort": "asc"});
            if let Some(id) = line_id {
                query["line_id"] = json!(id);
            }
            let request = parse(&params(query)).unwrap();
            let mut out = Vec::new();
            write_page(&store, &request, budget, &mut out).unwrap();
            let page: Value = serde_json::from_slice(&out).unwrap();
            let lines: Vec<String> = page["lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l[3].as_str().unwrap().to_string())
                .collect();
            (lines, page["next_line_id"].as_str().unwrap().to_string())
        };
        let later = Instant::now() + std::time::Duration::from_secs(60);
        let whole = streamed(
            None,
            PageBudget {
                bytes: usize::MAX,
                deadline: later,
            },
        );
        assert_eq!(whole.0.len(), 10);
        assert_eq!(whole.1, "-1");
        let one_line = serde_json::to_vec(&json!(["j", "n", 100, "line 0", "x"]))
            .unwrap()
            .len();
        let mut seen = Vec::new();
        let mut next = None;
        loop {
            let (lines, id) = streamed(
                next,
                PageBudget {
                    bytes: one_line * 7 / 2,
                    deadline: later,
                },
            );
            assert!(!lines.is_empty() && lines.len() <= 3, "{lines:?}");
            seen.extend(lines);
            if id == "-1" {
                break;
            }
            next = Some(id);
        }
        assert_eq!(seen, whole.0, "paging by bytes reaches every line once");
        let (lines, id) = streamed(
            None,
            PageBudget {
                bytes: usize::MAX,
                deadline: Instant::now(),
            },
        );
        assert!(lines.is_empty());
        assert_ne!(
            id, "-1",
            "out of time: the next page starts at the first line"
        );
    }

    #[test]
    fn time_and_line_id_set_an_inclusive_start() {
        let q = |v: Value| parse(&params(v)).unwrap().query;
        let asc = q(json!({"log_type": "stderr", "sort": "ASC", "time": 5}));
        assert!(asc.ascending);
        assert_eq!(asc.from, Some(5 << 32));
        let desc = q(json!({"log_type": "stderr", "time": 5}));
        assert!(!desc.ascending, "desc is the default");
        assert_eq!(desc.from, Some((5 << 32) | 0xffff_ffff));
        assert_eq!(q(json!({"log_type": "stdout", "line_id": "-1"})).from, None);
        assert_eq!(
            q(json!({"log_type": "stdout", "line_id": "42"})).from,
            Some(42)
        );
        assert_eq!(q(json!({"log_type": "statuses"})).kind, LogKind::Statuses);
    }

    #[test]
    fn paging_reaches_every_line_even_with_a_regex() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(&dir.path().join("l.sql3")).unwrap();
        let lines: Vec<LogLine> = (0..5)
            .map(|i| LogLine {
                kind: LogKind::Stdout,
                job: "j".into(),
                node: "n".into(),
                time: 100,
                line: format!("{} {i}", if i % 2 == 0 { "even" } else { "odd" }),
            })
            .collect();
        store.append(&lines).unwrap();
        for (sort, expected) in [("asc", [0, 2, 4]), ("desc", [4, 2, 0])] {
            let mut request = parse(&params(
                json!({"log_type": "stdout", "sort": sort, "regex_filter": "^even"}),
            ))
            .unwrap();
            request.query.limit = 2;
            let mut seen = Vec::new();
            loop {
                let page = page(&store, &request).unwrap();
                for line in page["lines"].as_array().unwrap() {
                    assert_eq!(line[2], 100);
                    seen.push(line[3].as_str().unwrap().to_string());
                }
                let next = page["next_line_id"].as_str().unwrap().to_string();
                if next == "-1" {
                    break;
                }
                request = parse(&params(
                    json!({"log_type": "stdout", "sort": sort, "regex_filter": "^even", "line_id": next}),
                ))
                .unwrap();
                request.query.limit = 2;
            }
            let want: Vec<String> = expected.iter().map(|i| format!("even {i}")).collect();
            assert_eq!(seen, want, "sort {sort}");
        }
    }
}
