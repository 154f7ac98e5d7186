//! `bistro kill` and `bistro forgive`: control a scheduler as the HTTP handlers
//! `kill_task` and `forgive_jobs` do.

use crate::control;
use crate::sanitize::for_terminal;
use crate::state::StateDir;
use clap::Args;

/// `bistro kill JOB NODE`.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// The job of the running task.
    job: String,
    /// The node of the running task.
    node: String,
}

/// `bistro forgive JOB [NODE]...`.
#[derive(Debug, Args)]
pub struct ForgiveArgs {
    /// The job whose failed and backed-off tasks may run again.
    job: String,
    /// Only these nodes [default: every node of the job].
    nodes: Vec<String>,
}

pub(super) fn kill(state: &StateDir, args: &KillArgs) -> anyhow::Result<i32> {
    control::kill(state, &args.job, &args.node)?;
    println!(
        "signaled {}/{}: its status is recorded when it ends",
        for_terminal(&args.job),
        for_terminal(&args.node)
    );
    Ok(super::ExitCode::Success as i32)
}

pub(super) fn forgive(state: &StateDir, args: &ForgiveArgs) -> anyhow::Result<i32> {
    let changed = control::forgive(state, std::slice::from_ref(&args.job), &args.nodes)?;
    println!(
        "forgave {changed} task{} of {}",
        if changed == 1 { "" } else { "s" },
        for_terminal(&args.job)
    );
    Ok(super::ExitCode::Success as i32)
}
