//! `bistro plan`: what applying the config file would do, before a scheduler picks it
//! up; exit 0 no change, 1 changes, 2 problems (for a pre-commit hook or the CI of a
//! config repository).

use super::{Cli, CliError, ExitCode};
use crate::execution::runner::LocalRunner;
use crate::foundation::sanitize::for_terminal;
use crate::foundation::time::rfc3339;
use crate::storage::state::StateDir;
use crate::usecases::plan::{KeyChange, PlanReport};
use anyhow::Context;
use clap::Args;
use std::io::Write;

/// `bistro plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Print one JSON object: schema_version (1), config, in_force, unusable, problems [{where, message}],
    /// settings [{key, before, after}], jobs {added, removed, changed [{job, keys}]},
    /// nodes {compared, added, removed, error}, pass, would_start [{job, node}],
    /// orphans [{job, node, reason, kill_at}].
    #[arg(long)]
    json: bool,
}

/// The exit code of a plan: 2 problems, 1 changes, 0 neither.
fn exit_code(report: &PlanReport) -> i32 {
    if !report.problems.is_empty() {
        ExitCode::Usage as i32
    } else if report.changes() {
        ExitCode::Failure as i32
    } else {
        ExitCode::Success as i32
    }
}

pub(super) fn run(state: &StateDir, cli: &Cli, args: &PlanArgs) -> Result<i32, CliError> {
    let exe = std::env::current_exe().context("finding the bistro binary")?;
    let mut runner = LocalRunner::new(state.clone(), exe);
    let report = crate::usecases::plan::plan(state, cli.config.as_deref(), &mut runner)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string(&report).expect("plans serialize")
        )?;
    } else {
        for line in lines(&report) {
            writeln!(out, "{}", for_terminal(&line))?;
        }
    }
    Ok(exit_code(&report))
}

/// `key: BEFORE -> AFTER` (absent values say so).
fn key_line(change: &KeyChange) -> String {
    let show = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "(absent)".to_string(),
        v => v.to_string(),
    };
    format!(
        "{}: {} -> {}",
        change.key,
        show(&change.before),
        show(&change.after)
    )
}

/// The plan in words, one line each.
fn lines(report: &PlanReport) -> Vec<String> {
    let mut out = Vec::new();
    let against = if report.in_force {
        "the config in force"
    } else {
        "no config in force (no scheduler has loaded one in this state dir)"
    };
    out.push(format!("plan: {} against {against}", report.config));
    for p in &report.problems {
        out.push(format!("problem: {}: {}", p.at, p.message));
    }
    if report.unusable {
        out.push(
            "the file is unusable: the config in force would stay in force until it is fixed"
                .into(),
        );
    }
    out.extend(
        report
            .settings
            .iter()
            .map(|c| format!("settings changed: {}", key_line(c))),
    );
    out.extend(report.jobs.added.iter().map(|j| format!("job added: {j}")));
    out.extend(
        report
            .jobs
            .removed
            .iter()
            .map(|j| format!("job removed: {j}")),
    );
    for job in &report.jobs.changed {
        out.extend(
            job.keys
                .iter()
                .map(|c| format!("job changed: {}: {}", job.job, key_line(c))),
        );
    }
    let nodes = &report.nodes;
    if let Some(e) = &nodes.error {
        out.push(format!("nodes: cannot be fetched: {e}"));
    }
    if !nodes.added.is_empty() {
        out.push(format!("nodes added: {}", nodes.added.join(", ")));
    }
    if !nodes.removed.is_empty() {
        out.push(format!("nodes removed: {}", nodes.removed.join(", ")));
    }
    if report.pass {
        let starts: Vec<String> = report
            .would_start
            .iter()
            .map(|t| format!("{}/{}", t.job, t.node))
            .collect();
        out.push(format!(
            "would start at once: {} task(s){}{}",
            starts.len(),
            if starts.is_empty() { "" } else { ": " },
            starts.join(", ")
        ));
        for o in &report.orphans {
            let when = o.kill_at.map_or_else(
                || "never killed (no kill_orphan_tasks_after_sec)".to_string(),
                |t| format!("killed at {} (kill_orphan_tasks_after_sec)", rfc3339(t)),
            );
            out.push(format!(
                "orphan: {}/{} ({}): {when}",
                o.job, o.node, o.reason
            ));
        }
    } else if !report.unusable {
        out.push("tasks: not planned (no statuses in this state dir yet, or the file's scheduler is disabled or has no nodes)".into());
    }
    if report.problems.is_empty() && !report.changes() {
        out.push("no change".into());
    }
    out
}
