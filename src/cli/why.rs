//! `bistro why JOB NODE`: why a task is or is not running.

use super::{Cli, CliError};
use crate::execution::runner::LocalRunner;
use crate::foundation::sanitize::for_terminal;
use crate::storage::state::StateDir;
use crate::usecases::context::RunFlags;
use anyhow::Context;
use clap::Args;
use std::io::Write;

/// `bistro why`.
#[derive(Debug, Args)]
pub struct WhyArgs {
    /// The job.
    job: String,
    /// The node.
    node: String,
    /// Print one JSON object: job, node, state, reason, message, the reason's details
    /// (resource, used, limit, holders, backoff_until, ...) and the stored status.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(state: &StateDir, cli: &Cli, args: &WhyArgs) -> Result<i32, CliError> {
    let flags = RunFlags {
        config: cli.config.clone(),
        ..Default::default()
    };
    let exe = std::env::current_exe().context("finding the bistro binary")?;
    let mut runner = LocalRunner::new(state.clone(), exe);
    let why = crate::usecases::why::why(state, &flags, &mut runner, &args.job, &args.node)?;
    if args.json {
        writeln!(std::io::stdout(), "{}", why.json)?;
    } else {
        writeln!(
            std::io::stdout(),
            "{}/{}: {}: {}",
            for_terminal(&args.job),
            for_terminal(&args.node),
            why.state,
            for_terminal(&why.message)
        )?;
        if let Some(status) = why.json["status"].as_object() {
            let message = status["data"]["exception"]
                .as_str()
                .map(|m| format!(", \"{}\"", for_terminal(m)))
                .unwrap_or_default();
            writeln!(
                std::io::stdout(),
                "  last status: {} at {}, {} attempt(s){message}",
                status["status"].as_str().unwrap_or("?"),
                crate::foundation::time::rfc3339(status["time"].as_i64().unwrap_or(0)),
                status["attempts"]
            )?;
        }
    }
    Ok(super::ExitCode::Success as i32)
}
