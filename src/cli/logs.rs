//! `bistro logs`: task output and lifecycle events, filtered, followed, or as JSON Lines.

use super::CliError;
use crate::foundation::sanitize::for_terminal;
use crate::foundation::time::rfc3339;
use crate::storage::state::StateDir;
use crate::storage::store::{LogKind, LogQuery, LogRow, LogStore};
use clap::Args;
use std::io::Write;
use std::time::Duration;

/// `bistro logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Only this job (repeatable).
    #[arg(long = "job", value_name = "JOB")]
    jobs: Vec<String>,
    /// Only this node (repeatable).
    #[arg(long = "node", value_name = "NODE")]
    nodes: Vec<String>,
    /// Only this stream (repeatable): stdout, stderr or statuses (lifecycle events).
    #[arg(long = "stream", value_name = "STREAM", value_parser = ["stdout", "stderr", "statuses"])]
    streams: Vec<String>,
    /// Keep printing new lines as they arrive (Ctrl-C to stop).
    #[arg(long, short)]
    follow: bool,
    /// Print JSON Lines: {id, time, time_rfc3339, job, node, stream, line}.
    #[arg(long)]
    json: bool,
    /// Only the last N lines.
    #[arg(long, short = 'n', value_name = "N")]
    limit: Option<usize>,
}

fn print(out: &mut impl Write, row: &LogRow, json: bool) -> std::io::Result<()> {
    if json {
        let v = serde_json::json!({
            "id": row.id, "time": row.time(), "time_rfc3339": rfc3339(row.time()),
            "job": row.job, "node": row.node, "stream": row.kind.table(), "line": row.line,
        });
        writeln!(out, "{v}")
    } else {
        // One line each, as before lines kept their newline; `--json` has the bytes.
        let line = match row.kind {
            LogKind::Statuses => describe_event(&row.line),
            _ => row.line.strip_suffix('\n').unwrap_or(&row.line).to_string(),
        };
        writeln!(
            out,
            "{} {}/{} {}: {}",
            rfc3339(row.time()),
            for_terminal(&row.job),
            for_terminal(&row.node),
            row.kind.table(),
            for_terminal(&line)
        )
    }
}

/// A lifecycle event for humans: its name and what matters about it, without the
/// invocation ids (`--json` keeps the whole event).
fn describe_event(line: &str) -> String {
    let Ok(serde_json::Value::Object(mut event)) = serde_json::from_str(line) else {
        return line.to_string();
    };
    let name = event
        .remove("event")
        .and_then(|e| e.as_str().map(str::to_string))
        .unwrap_or_default();
    for noise in ["invocation_start_time", "invocation_rand", "worker_host"] {
        event.remove(noise);
    }
    let detail = match (
        name.as_str(),
        event.get("command"),
        event.get("message"),
        event.get("status"),
    ) {
        ("running", Some(serde_json::Value::Array(argv)), _, _) => argv
            .iter()
            .map(|a| shell_quote(a.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(" "),
        ("got_status", _, _, Some(status)) => {
            match event.get("raw_status").and_then(|r| r.as_str()) {
                Some(raw) => format!("{raw} ({status})"),
                None => status.to_string(),
            }
        }
        (_, _, Some(serde_json::Value::String(message)), _) => message.clone(),
        _ if event.is_empty() => String::new(),
        _ => serde_json::Value::Object(event).to_string(),
    };
    if detail.is_empty() {
        name
    } else {
        format!("{name}: {detail}")
    }
}

/// Quotes an argument the way a shell would need it (Bistro's log escaping).
fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

pub(super) fn run(state: &StateDir, args: &LogsArgs) -> Result<i32, CliError> {
    let db = state.existing_logs_db()?;
    let store = LogStore::open_for_reading(&db)?;
    let mut query = LogQuery {
        kinds: args
            .streams
            .iter()
            .filter_map(|s| LogKind::parse(s))
            .collect(),
        jobs: args.jobs.clone(),
        nodes: args.nodes.clone(),
        after_id: None,
        limit: args.limit,
        newest: args.limit.is_some(),
    };
    let mut out = std::io::stdout().lock();
    loop {
        let rows = store.query(&query)?;
        for row in &rows {
            print(&mut out, row, args.json)?;
        }
        out.flush()?;
        if !args.follow {
            if rows.is_empty() && !(args.jobs.is_empty() && args.nodes.is_empty()) {
                super::warn("no log lines match those --job/--node filters");
            }
            return Ok(0);
        }
        if let Some(last) = rows.last() {
            query.after_id = Some(last.id);
        } else if query.after_id.is_none() {
            query.after_id = Some(-1);
        }
        query.limit = None;
        query.newest = false;
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_as_a_name_and_what_matters() {
        let running = r#"{"event":"running","invocation_start_time":1,"invocation_rand":2,"worker_host":"h","command":["/t.sh","n1","it's"]}"#;
        assert_eq!(describe_event(running), "running: /t.sh n1 'it'\\''s'");
        let exited =
            r#"{"event":"process_exited","invocation_rand":2,"message":"killed by signal 9"}"#;
        assert_eq!(describe_event(exited), "process_exited: killed by signal 9");
        let got = r#"{"event":"got_status","status":{"result_bits":4},"raw_status":"done"}"#;
        assert_eq!(
            describe_event(got),
            r#"got_status: done ({"result_bits":4})"#
        );
        assert_eq!(
            describe_event(r#"{"event":"task_pipes_closed","worker_host":"h"}"#),
            "task_pipes_closed"
        );
        assert_eq!(describe_event("not json"), "not json");
    }
}
