//! `bistro tick`: one scheduling iteration, for cron and scripts.

use super::{Cli, CliError, ExitCode, IterationFlags, RunFlags, RunnerKind, SimulationFlags};
use crate::foundation::sanitize::for_terminal;
use crate::scheduler::WaitReason;
use crate::storage::state::StateDir;
use crate::usecases::tick::{tick, Explained, TickOptions, TickReport};
use clap::Args;
use std::io::Write;

/// `bistro tick`.
#[derive(Debug, Args)]
pub struct TickArgs {
    #[command(flatten)]
    run: RunFlags,
    /// Start and write nothing; print what would start and why each other task waits.
    #[arg(long)]
    dry_run: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Print nothing on success.
    #[arg(long, short, conflicts_with = "verbose")]
    quiet: bool,
    /// Also print each task started.
    #[arg(long, short)]
    verbose: bool,
    #[command(flatten)]
    iteration: IterationFlags,
    #[command(flatten)]
    simulation: SimulationFlags,
}

/// `tick --runner remote`: remote workers talk to a scheduler that stays up.
#[derive(Debug, thiserror::Error)]
#[error("--runner remote needs a scheduler that stays up for its workers: run `bistro daemon --runner remote`, or tick with --runner local or slurm")]
struct RemoteNeedsDaemon;

impl crate::foundation::error::HasKind for RemoteNeedsDaemon {
    fn kind(&self) -> crate::foundation::error::ErrorKind {
        crate::foundation::error::ErrorKind::Usage
    }
}

pub(super) fn run(state: &StateDir, cli: &Cli, args: &TickArgs) -> Result<i32, CliError> {
    let mut opts = TickOptions {
        dry_run: args.dry_run,
        ..args.iteration.tick_options(cli, &args.run)
    };
    let kind = args.simulation.runner_kind(state)?;
    if kind == Some(RunnerKind::Remote) {
        return Err(RemoteNeedsDaemon.into());
    }
    opts.flags.runner = args.simulation.runner.map(|k| k.name().to_string());
    let mut runner = args.simulation.runner(state, kind)?;
    let report = if args.dry_run {
        state.existing_statuses_db()?;
        tick(state, &opts, runner.as_mut())?
    } else {
        state.create()?;
        let _lock = state.lock(args.run.wait_lock)?;
        tick(state, &opts, runner.as_mut())?
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    if args.json {
        write_json(&mut out, &report)?;
    } else {
        print_human(&mut out, &report, args.quiet, args.verbose)?;
    }
    out.flush()?;
    Ok(exit_code(&report))
}

fn json_report(report: &TickReport) -> serde_json::Value {
    let mut v = serde_json::to_value(report).expect("serializes");
    v["schema_version"] = 1.into();
    let pairs = |p: &[(String, String)]| -> serde_json::Value {
        p.iter()
            .map(|(at, message)| serde_json::json!({"where": at, "message": message}))
            .collect()
    };
    v["config_errors"] = pairs(&report.config_errors);
    v["job_errors"] = pairs(&report.job_errors);
    v
}

/// Writes the report as one JSON object, streaming the (possibly huge) `waiting` list.
fn write_json(out: &mut impl Write, report: &TickReport) -> anyhow::Result<()> {
    let head = serde_json::to_string(&json_report(report))?;
    let Some(explained) = &report.explained else {
        writeln!(out, "{head}")?;
        return Ok(());
    };
    out.write_all(&head.as_bytes()[..head.len() - 1])?;
    out.write_all(b",\"waiting\":[")?;
    for (i, w) in explained.waiting.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(
            &mut *out,
            &w.to_json(&explained.config, &explained.nodes, report.now),
        )?;
    }
    out.write_all(b"]}\n")?;
    Ok(())
}

fn exit_code(report: &TickReport) -> i32 {
    if !report.config_errors.is_empty() || !report.usage_errors.is_empty() {
        ExitCode::Usage as i32
    } else if report.nodes_error.is_some()
        || !report.start_errors.is_empty()
        || !report.kill_errors.is_empty()
    {
        ExitCode::Failure as i32
    } else {
        ExitCode::Success as i32
    }
}

/// Diagnostics to stderr; then one summary line, preceded by one line per task with
/// `verbose` or in a dry run (whose point is the details).
fn print_human(
    out: &mut impl Write,
    report: &TickReport,
    quiet: bool,
    verbose: bool,
) -> std::io::Result<()> {
    for d in report.diagnostics() {
        super::warn(&d.message);
    }
    if quiet {
        return Ok(());
    }
    let details = verbose || report.dry_run;
    for s in report.started.iter().filter(|_| details) {
        let verb = if report.dry_run {
            "would start"
        } else {
            "started"
        };
        writeln!(
            out,
            "{verb} {}/{}",
            for_terminal(&s.job),
            for_terminal(&s.node)
        )?;
    }
    if let Some(explained) = &report.explained {
        let Explained {
            config,
            nodes,
            waiting,
            ..
        } = explained;
        // Consecutive tasks often wait on the same slots: described once. Job names
        // are escaped once each; lines are written in pieces, with no formatting.
        let jobs: Vec<_> = config.jobs.iter().map(|j| for_terminal(&j.name)).collect();
        let mut last: Option<(&WaitReason, String)> = None;
        for w in waiting {
            let message = match &last {
                Some((reason, message)) if reason.same_message_as(&w.reason) => message,
                _ => {
                    let message = w.reason.describe(config, nodes, report.now);
                    let message = for_terminal(&message).into_owned();
                    &last.insert((&w.reason, message)).1
                }
            };
            for piece in [
                "waiting ",
                &jobs[w.job],
                "/",
                &for_terminal(&nodes.list[w.node].name),
                ": ",
                message,
                "\n",
            ] {
                out.write_all(piece.as_bytes())?;
            }
        }
    }
    let mut by_status = std::collections::BTreeMap::<&str, usize>::new();
    for f in &report.finished {
        *by_status.entry(f.status).or_default() += 1;
    }
    let finished: Vec<String> = by_status.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let finished = if finished.is_empty() {
        String::new()
    } else {
        format!(" ({})", finished.join(", "))
    };
    let scheduler = if !report.config_errors.is_empty() && !report.using_last_good {
        "; no usable config"
    } else if report.scheduler_enabled {
        ""
    } else {
        "; scheduler disabled (bistro_settings.enabled is not true)"
    };
    let changes = if report.config_changes.is_empty() {
        String::new()
    } else {
        format!(
            "; config: {}",
            for_terminal(&report.config_changes.join(", "))
        )
    };
    let what = if report.dry_run {
        "tick --dry-run"
    } else {
        "tick"
    };
    let started_word = if report.dry_run {
        "would start"
    } else {
        "started"
    };
    writeln!(
        out,
        "{what}: {} {started_word}, {} finished{finished}, {} running{scheduler}{changes}",
        report.started.len(),
        report.finished.len(),
        report.running
    )
}
