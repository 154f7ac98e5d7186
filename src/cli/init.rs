//! `bistro init`: create the state directory and its config.

use super::{Cli, CliError};
use crate::storage::state::StateDir;
use crate::storage::store::{LogStore, StatusStore};
use clap::Args;

/// The getting-started demo config, verbatim (legacy `node_source` form).
pub const DEMO_CONFIG: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/configs/simple.json"
));

/// `bistro init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Overwrite an existing STATE/config.json.
    #[arg(long)]
    pub force: bool,
}

pub(super) fn run(state: &StateDir, cli: &Cli, args: &InitArgs) -> Result<i32, CliError> {
    let target = state.default_config();
    // Read first: an unreadable --config creates nothing.
    let source = match &cli.config {
        Some(source) => match std::fs::read_to_string(source) {
            Ok(text) => Some(text),
            Err(e) => {
                super::warn(&format!(
                    "cannot read the config {}: {e}; pass an existing file",
                    source.display()
                ));
                return Ok(super::ExitCode::Usage as i32);
            }
        },
        None => None,
    };
    state.create()?;
    let mut store = StatusStore::open(&state.statuses_db())?;
    LogStore::open(&state.logs_db())?;
    let text = match source {
        Some(text) => text,
        None if target.exists() => {
            note!(
                "bistro: state dir {} is ready; keeping its config.json",
                state.root().display()
            );
            return Ok(0);
        }
        None => DEMO_CONFIG.to_string(),
    };
    if target.exists()
        && !args.force
        && std::fs::read_to_string(&target).ok().as_deref() != Some(text.as_str())
    {
        super::warn(&format!(
            "{} already exists and differs; pass --force to overwrite it",
            target.display()
        ));
        return Ok(super::ExitCode::Usage as i32);
    }
    if let Err(e) =
        crate::foundation::config::Config::parse_with(&text, crate::model::nodes::check_prefs)
    {
        super::warn(&format!(
            "warning: {} is not a valid config yet: {e}",
            target.display()
        ));
    }
    crate::storage::state::write_atomic(&target, text.as_bytes())?;
    // Later ticks read the config just installed, not one a previous tick remembered.
    store.set_meta(&[(
        crate::usecases::context::keys::CONFIG_PATH,
        &target.display().to_string(),
    )])?;
    note!(
        "bistro: initialized {} with config {}",
        state.root().display(),
        target.display()
    );
    Ok(0)
}
