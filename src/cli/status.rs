//! `bistro status`: per-job progress, as a table or as the stable JSON document.

use super::{Cli, CliError};
use crate::foundation::sanitize::for_terminal;
use crate::foundation::status::StatusName;
use crate::foundation::time::rfc3339;
use crate::storage::state::StateDir;
use crate::usecases::report::{self, Progress, ReportFilter, StateReport};
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use std::io::Write;

/// `bistro status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the JSON document (schema_version 1).
    #[arg(long)]
    json: bool,
    /// Add one row per task.
    #[arg(long)]
    tasks: bool,
    /// Only this job (repeatable).
    #[arg(long = "job", value_name = "JOB")]
    jobs: Vec<String>,
    /// Print nothing; exit 0 when every task of every runnable job is done (tasks that
    /// filters or disabled nodes exclude aside), 3 while work remains, 4 when only
    /// permanent failures remain (for scripts and CI).
    #[arg(long, conflicts_with_all = ["json", "tasks"])]
    check: bool,
    /// Only tasks with this status (repeatable): running, done, incomplete,
    /// error_backoff, failed, not_started.
    #[arg(long = "status", value_name = "STATUS", value_parser = parse_status_name)]
    statuses: Vec<StatusName>,
}

/// `--check`: 0 all done, 3 work remains, 4 only permanent failures remain.
fn check_code(progress: Progress) -> i32 {
    match progress {
        Progress::Done => 0,
        Progress::WorkRemains => 3,
        Progress::OnlyFailuresRemain => 4,
    }
}

/// A `--status` that names no status.
#[derive(Debug, thiserror::Error)]
#[error("unknown status {name:?}; use one of {}", StatusName::ALL.map(|n| n.as_str()).join(", "))]
struct UnknownStatus {
    /// The name given.
    name: String,
}

fn parse_status_name(s: &str) -> Result<StatusName, UnknownStatus> {
    StatusName::parse(s).ok_or_else(|| UnknownStatus {
        name: s.to_string(),
    })
}

pub(super) fn run(state: &StateDir, cli: &Cli, args: &StatusArgs) -> Result<i32, CliError> {
    let filter = ReportFilter {
        jobs: args.jobs.clone(),
        statuses: args.statuses.clone(),
        tasks: args.tasks || !args.statuses.is_empty(),
    };
    // A missing state or config is a usage error (2); an unreadable one a failure (1).
    let StateReport { report, config } = report::from_state(state, cli.config.as_deref(), &filter)?;
    let config = &config;
    let config_error = report.scheduler.config_error.clone();
    let unknown: Vec<&String> = args
        .jobs
        .iter()
        .filter(|j| config.job(j).is_none())
        .collect();
    if !unknown.is_empty() {
        for job in unknown {
            super::warn(&format!("no job named {job:?} in the config"));
        }
        return Ok(super::ExitCode::Usage as i32);
    }
    if !config.settings.enabled {
        super::warn("WARNING: the scheduler is disabled: bistro_settings.enabled is not true, so no task will start");
    }
    if let Some(e) = &config_error {
        super::warn(&format!(
            "config error (the last good config is shown): {e}"
        ));
    }
    if args.check {
        return Ok(check_code(report.progress(config)));
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        // Stdout is line-buffered: unbuffered, serde's many small writes would each
        // be searched for a newline (a quarter of `--tasks` over 1.5M tasks).
        let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
        out.flush()?;
        return Ok(0);
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "JOB",
        "OWNER",
        "DONE",
        "RUNNING",
        "INCOMPLETE",
        "BACKOFF",
        "FAILED",
        "NOT STARTED",
        "EXCLUDED",
        "TOTAL",
        "PROGRESS",
    ]);
    for job in &report.jobs {
        let c = |k: &str| job.counts.get(k).copied().unwrap_or(0);
        let total = c("total") - c("excluded");
        let progress = if total == 0 {
            "-".to_string()
        } else {
            format!("{:.0}%", 100.0 * c("done") as f64 / total as f64)
        };
        let mut name = for_terminal(&job.name).into_owned();
        if job.errors.is_some() {
            name.push_str(" (invalid)");
        } else if !job.enabled {
            name.push_str(" (disabled)");
        }
        let mut row = vec![Cell::new(name), Cell::new(for_terminal(&job.owner))];
        for k in [
            "done",
            "running",
            "incomplete",
            "error_backoff",
            "failed",
            "not_started",
            "excluded",
            "total",
        ] {
            row.push(Cell::new(c(k)).set_alignment(CellAlignment::Right));
        }
        row.push(Cell::new(progress).set_alignment(CellAlignment::Right));
        table.add_row(row);
    }
    writeln!(out, "{table}")?;
    for o in &report.orphans {
        writeln!(
            out,
            "still running, though {}: {}/{} (since {})",
            o.reason,
            for_terminal(&o.job),
            for_terminal(&o.node),
            crate::foundation::time::rfc3339(o.start_time)
        )?;
    }
    if let Some(workers) = report
        .workers
        .as_ref()
        .and_then(|w| w["workers"].as_array())
    {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED).set_header([
            "WORKER",
            "HOST",
            "ADDRESS",
            "STATE",
            "LAST HEARTBEAT",
        ]);
        for w in workers {
            let text = |k: &str| for_terminal(w[k].as_str().unwrap_or_default()).into_owned();
            t.add_row(vec![
                Cell::new(text("shard")),
                Cell::new(text("hostname")),
                Cell::new(text("addr")),
                Cell::new(text("state")),
                Cell::new(
                    w["last_heartbeat"]
                        .as_i64()
                        .map(rfc3339)
                        .unwrap_or_default(),
                ),
            ]);
        }
        writeln!(out, "{t}")?;
        if let Some(wait) = report
            .workers
            .as_ref()
            .and_then(|w| w["initial_wait"].as_str())
        {
            writeln!(
                out,
                "waiting for workers before starting tasks: {}",
                for_terminal(wait)
            )?;
        }
    }
    if let Some(tasks) = &report.tasks {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED).set_header([
            "JOB",
            "NODE",
            "STATUS",
            "ATTEMPTS",
            "SINCE",
            "BACKOFF UNTIL",
            "MESSAGE",
        ]);
        for task in tasks {
            let message = task.slurm.as_deref().unwrap_or_else(|| {
                task.data
                    .get("exception")
                    .and_then(|e| e.as_str())
                    .unwrap_or_default()
            });
            t.add_row(vec![
                Cell::new(for_terminal(&task.job)),
                Cell::new(for_terminal(&task.node)),
                Cell::new(task.status),
                Cell::new(task.attempts).set_alignment(CellAlignment::Right),
                Cell::new(task.time.map(rfc3339).unwrap_or_default()),
                Cell::new(task.backoff_until.map(rfc3339).unwrap_or_default()),
                Cell::new(for_terminal(message)),
            ]);
        }
        writeln!(out, "{t}")?;
    }
    Ok(0)
}
