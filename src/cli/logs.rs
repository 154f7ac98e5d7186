//! `bistro logs`: task output and lifecycle events, filtered, followed, or as JSON Lines.

use crate::sanitize::for_terminal;
use crate::state::StateDir;
use crate::store::{LogKind, LogQuery, LogRow, LogStore};
use crate::time::rfc3339;
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
        writeln!(
            out,
            "{} {}/{} {}: {}",
            rfc3339(row.time()),
            for_terminal(&row.job),
            for_terminal(&row.node),
            row.kind.table(),
            for_terminal(&row.line)
        )
    }
}

pub(super) fn run(state: &StateDir, args: &LogsArgs) -> anyhow::Result<i32> {
    let db = state.logs_db();
    if !db.exists() {
        super::warn(&format!(
            "no task logs in {}: run `bistro init` (or a tick) first",
            state.root().display()
        ));
        return Ok(super::ExitCode::Usage as i32);
    }
    let store = LogStore::open(&db)?;
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
