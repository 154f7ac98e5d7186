//! `bistro check`: every problem in the config, with the job or key at fault.

use super::{Cli, CliError};
use crate::foundation::sanitize::for_terminal;
use crate::model::nodes::fetch_nodes;
use crate::storage::state::{StateDir, StateError};
use crate::storage::store::StatusStore;
use crate::usecases::context;
use clap::Args;
use std::io::Write;

/// `bistro check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Also run the node sources (scripts included) to check them.
    #[arg(long)]
    nodes: bool,
    /// Print {"ok", "config", "problems": [{"where", "message"}], "warnings": [...]}.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(state: &StateDir, cli: &Cli, args: &CheckArgs) -> Result<i32, CliError> {
    let store = match state.existing_statuses_db() {
        Ok(db) => Some(StatusStore::open_for_reading(&db)?),
        Err(StateError::NoState(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let path = context::config_path(state, store.as_ref(), cli.config.as_deref())?;
    let loaded = context::load_config(None, path.clone())?;
    let mut problems: Vec<(String, String)> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    if let Some(e) = &loaded.error {
        problems.extend(e.problems());
    }
    if let Some(config) = &loaded.config {
        problems.extend(
            config
                .job_problems()
                .into_iter()
                .map(|(at, m)| (format!("{}: {at}", path.display()), m)),
        );
        if !config.settings.enabled {
            warnings.push(
                "bistro_settings.enabled is not true: the scheduler will start no task".into(),
            );
        }
        if config.jobs.is_empty() {
            warnings.push("the config defines no job (keys look like \"bistro_job->NAME\")".into());
        }
        warnings.extend(config.unknown_keys.iter().cloned());
        warnings.extend(ignored_settings(config));
        if args.nodes {
            let instance = context::instance_name(store.as_ref(), None)?;
            if let Err(e) = fetch_nodes(&config.settings, &instance) {
                problems.push((path.display().to_string(), e.to_string()));
            }
        }
    }
    if args.json {
        let v = serde_json::json!({
            "ok": problems.is_empty(),
            "config": path.display().to_string(),
            "problems": problems.iter().map(|(at, m)| serde_json::json!({"where": at, "message": m})).collect::<Vec<_>>(),
            "warnings": warnings,
        });
        writeln!(std::io::stdout().lock(), "{v}")?;
    } else {
        let mut out = std::io::stdout().lock();
        for (at, message) in &problems {
            writeln!(out, "{}: {}", for_terminal(at), for_terminal(message))?;
        }
        for w in &warnings {
            super::warn(&format!("warning: {w}"));
        }
        if problems.is_empty() {
            note!("bistro: {} is valid", path.display());
        }
    }
    Ok(if problems.is_empty() {
        0
    } else {
        super::ExitCode::Usage as i32
    })
}

/// Settings that are valid but that this bistro does not enforce, so a user migrating
/// from Bistro is not misled into relying on them.
fn ignored_settings(config: &crate::foundation::config::Config) -> Vec<String> {
    let mut out = Vec::new();
    let subprocesses = std::iter::once((
        "bistro_settings".to_string(),
        &config.settings.task_subprocess,
    ))
    .chain(
        config
            .jobs
            .iter()
            .filter(|j| j.task_subprocess.cgroups != config.settings.task_subprocess.cgroups)
            .map(|j| (format!("bistro_job->{}", j.name), &j.task_subprocess)),
    );
    for (owner, sub) in subprocesses {
        let subsystems = sub.cgroups["subsystems"]
            .as_array()
            .is_some_and(|s| !s.is_empty());
        if subsystems {
            out.push(format!(
                "{owner}: task_subprocess.cgroups is accepted but not enforced (no cgroup limits are applied)"
            ));
        }
    }
    out
}
