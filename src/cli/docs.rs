//! `completions` and `manpage`: generated from the clap definitions, so they never drift.

use super::Cli;
use clap::{Args, CommandFactory};

/// `bistro completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub(super) fn completions(args: &CompletionsArgs) -> anyhow::Result<i32> {
    clap_complete::generate(
        args.shell,
        &mut Cli::command(),
        "bistro",
        &mut std::io::stdout(),
    );
    Ok(0)
}

pub(super) fn manpage() -> anyhow::Result<i32> {
    clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
    Ok(0)
}
