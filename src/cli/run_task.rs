//! `bistro run-task JOB NODE`: run one task now, in the foreground.

use super::{Cli, RunFlags};
use crate::run_task::{run_task, RunTaskOptions};
use crate::sanitize::for_terminal;
use crate::state::StateDir;
use crate::status::StatusName;
use anyhow::Context;
use clap::Args;
use std::time::Duration;

/// `bistro run-task`.
#[derive(Debug, Args)]
pub struct RunTaskArgs {
    /// The job.
    pub job: String,
    /// The node (at the job's level_for_tasks).
    pub node: String,
    #[command(flatten)]
    run: RunFlags,
    /// Do not copy the task's output to the terminal (it is still logged).
    #[arg(long, short)]
    quiet: bool,
}

pub(super) fn run(state: &StateDir, cli: &Cli, args: &RunTaskArgs) -> anyhow::Result<i32> {
    let opts = RunTaskOptions {
        config: cli.config.clone(),
        worker_command: args.run.worker_command.clone(),
        instance_node_name: args.run.instance_node_name.clone(),
        wait_lock: Duration::from_secs_f64(args.run.wait_lock.max(0.0)),
        echo: !args.quiet,
    };
    let exe = std::env::current_exe().context("finding the bistro binary")?;
    let result = run_task(state, exe, &args.job, &args.node, &opts)?;
    let name = result.status.name();
    let detail = result
        .status
        .exception()
        .map(|e| format!(": {e}"))
        .unwrap_or_default();
    eprintln!(
        "bistro: {}/{} {}: {}{}",
        for_terminal(&args.job),
        for_terminal(&args.node),
        for_terminal(&result.exit),
        name.as_str(),
        for_terminal(&detail)
    );
    Ok(match (result.stop_signal, name) {
        (Some(sig), _) => super::signal_exit(sig),
        (None, StatusName::Done) => 0,
        _ => 1,
    })
}
