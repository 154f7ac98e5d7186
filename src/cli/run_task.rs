//! `bistro run-task JOB NODE`: run one task now, in the foreground.

use super::{Cli, CliError, RunFlags};
use crate::foundation::sanitize::for_terminal;
use crate::storage::state::StateDir;
use crate::usecases::run_task::{run_task, RunTaskOptions};
use anyhow::Context;
use clap::Args;

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
    /// Run even if the resources the task needs are taken by running tasks.
    #[arg(long)]
    ignore_resources: bool,
}

pub(super) fn run(state: &StateDir, cli: &Cli, args: &RunTaskArgs) -> Result<i32, CliError> {
    let opts = RunTaskOptions {
        flags: crate::usecases::context::RunFlags {
            config: cli.config.clone(),
            worker_command: args.run.worker_command.clone(),
            instance_node_name: args.run.instance_node_name.clone(),
            runner: None,
        },
        wait_lock: args.run.wait_lock,
        echo: !args.quiet,
        ignore_resources: args.ignore_resources,
    };
    let exe = std::env::current_exe().context("finding the bistro binary")?;
    let outcome = run_task(state, exe, &args.job, &args.node, &opts)?;
    if let Some(e) = &outcome.unrecorded {
        note!("bistro: {e}; the next tick will record the task's status");
    }
    let result = &outcome.result;
    // The recorded status (after backoff: an error may have become a permanent failure).
    let (name, message) = match &outcome.recorded {
        Some(f) => (f.status, f.message.clone()),
        None => (
            result.status.name().as_str(),
            result.status.exception().map(str::to_string),
        ),
    };
    let detail = message.map(|e| format!(": {e}")).unwrap_or_default();
    note!(
        "bistro: {}/{} {}: {name}{}",
        for_terminal(&args.job),
        for_terminal(&args.node),
        for_terminal(&result.exit),
        for_terminal(&detail)
    );
    Ok(match (result.stop_signal, name) {
        (Some(sig), _) => super::signal_exit(sig),
        (None, "done") => 0,
        _ => 1,
    })
}
