//! `bistro kill` and `bistro forgive`: control a scheduler as the HTTP handlers
//! `kill_task` and `forgive_jobs` do.

use super::{Cli, CliError};
use crate::foundation::config::Config;
use crate::foundation::sanitize::for_terminal;
use crate::storage::state::StateDir;
use crate::storage::store::StatusStore;
use crate::usecases::context;
use crate::usecases::control;
use clap::Args;
use std::io::Write;

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

/// The config in force, as the scheduler reads it (`--config` overrides).
fn config(state: &StateDir, cli: &Cli) -> Result<Config, CliError> {
    let store = StatusStore::open(&state.existing_statuses_db()?)?;
    Ok(context::usable_config(
        state,
        &store,
        cli.config.as_deref(),
    )??)
}

pub(super) fn kill(state: &StateDir, cli: &Cli, args: &KillArgs) -> Result<i32, CliError> {
    control::kill(state, &config(state, cli)?, &args.job, &args.node)?;
    writeln!(
        std::io::stdout(),
        "signaled {}/{}: its status is recorded when it ends",
        for_terminal(&args.job),
        for_terminal(&args.node)
    )?;
    Ok(super::ExitCode::Success as i32)
}

pub(super) fn forgive(state: &StateDir, cli: &Cli, args: &ForgiveArgs) -> Result<i32, CliError> {
    let changed = control::forgive(
        state,
        &config(state, cli)?,
        std::slice::from_ref(&args.job),
        &args.nodes,
    )?;
    writeln!(
        std::io::stdout(),
        "forgave {changed} task{} of {}",
        if changed == 1 { "" } else { "s" },
        for_terminal(&args.job)
    )?;
    Ok(super::ExitCode::Success as i32)
}
