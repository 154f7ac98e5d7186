//! `completions` and `manpage`: generated from the clap definitions, so they never drift.
//! `scripts/update-docs.sh` writes them into `completions/` and `man/`.

use super::{Cli, CliError};
use clap::{Args, CommandFactory};

/// `bistro completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `bistro manpage`.
#[derive(Debug, Args)]
pub struct ManpageArgs {
    /// A subcommand's page (e.g. `tick`) instead of the main one.
    pub subcommand: Option<String>,
}

pub(super) fn completions(args: &CompletionsArgs) -> Result<i32, CliError> {
    clap_complete::generate(
        args.shell,
        &mut Cli::command(),
        "bistro",
        &mut std::io::stdout(),
    );
    Ok(0)
}

pub(super) fn manpage(args: &ManpageArgs) -> Result<i32, CliError> {
    let mut cmd = Cli::command();
    // Built, so subcommands carry the global options (--state-dir, --config, --color).
    cmd.build();
    let page = match &args.subcommand {
        None => cmd,
        Some(name) => {
            let sub = cmd
                .find_subcommand(name)
                .filter(|s| !s.is_hide_set())
                .ok_or_else(|| {
                    CliError::usage(anyhow::anyhow!(
                        "no subcommand {name:?}; see `bistro --help`"
                    ))
                })?;
            // The page is bistro-tick(1), as git-commit(1); its synopsis says `bistro tick`.
            let usage = format!("bistro {}", sub.get_name());
            sub.clone()
                .name(format!("bistro-{}", sub.get_name()))
                .bin_name(usage)
        }
    };
    clap_mangen::Man::new(page).render(&mut std::io::stdout())?;
    Ok(0)
}
