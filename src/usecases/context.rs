//! What every command reads from a state directory: the config in force (the current
//! file, or the last good one when the file is broken), the instance node name and the
//! nodes. `tick` remembers the config path, the last good config text and its flags in
//! the status database, so `status`, `logs` and cron lines need not repeat them.

use crate::foundation::config::{Config, ConfigLoadError, FileConfigLoader};
use crate::foundation::error::{ErrorKind, HasKind};
use crate::model::nodes::{check_prefs, fetch_nodes, NodeError, Nodes};
use crate::storage::state::StateDir;
use crate::storage::store::{StatusStore, StoreError};
use std::path::{Path, PathBuf};

/// `meta` keys.
pub mod keys {
    /// Absolute path of the config file last used.
    pub const CONFIG_PATH: &str = "config_path";
    /// Text of the last config that parsed.
    pub const LAST_GOOD_CONFIG: &str = "last_good_config";
    /// `--instance-node-name` last used.
    pub const INSTANCE_NODE_NAME: &str = "instance_node_name";
    /// `--worker-command` last used.
    pub const WORKER_COMMAND: &str = "worker_command";
    /// `--runner` last used (`local`, `remote` or `slurm`).
    pub const RUNNER: &str = "runner";
    /// The node list of the last refresh.
    pub const NODES: &str = "nodes";
    /// When task logs were last pruned.
    pub const LAST_LOG_PRUNE: &str = "last_log_prune";
    /// When each orphan (by invocation id) is to be killed.
    pub const ORPHAN_KILL_AT: &str = "orphan_kill_at";
}

/// The config a command acts on.
#[derive(Debug, Clone)]
pub struct ConfigInForce {
    /// The file it comes from.
    pub path: PathBuf,
    /// The config in force: the file's, or the last good one if the file is broken.
    pub config: Option<Config>,
    /// The text of the file, when it parsed.
    pub text: Option<String>,
    /// Why the file itself could not be used.
    pub error: Option<ConfigLoadError>,
}

/// The config file to read: `--config`, else the one `tick` last used, else
/// `STATE/config.json`.
pub fn config_path(
    state: &StateDir,
    store: Option<&StatusStore>,
    explicit: Option<&Path>,
) -> Result<PathBuf, StoreError> {
    if let Some(p) = explicit {
        return Ok(std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()));
    }
    if let Some(remembered) = store
        .map(|s| s.meta(keys::CONFIG_PATH))
        .transpose()?
        .flatten()
    {
        return Ok(PathBuf::from(remembered));
    }
    Ok(state.default_config())
}

/// Loads the config at `path`, falling back to the last good one.
pub fn load_config(
    store: Option<&StatusStore>,
    path: PathBuf,
) -> Result<ConfigInForce, StoreError> {
    match FileConfigLoader::new(&path).load(check_prefs) {
        Ok(loaded) => Ok(ConfigInForce {
            path,
            config: Some(loaded.config),
            text: Some(loaded.text),
            error: None,
        }),
        Err(error) => {
            let last_good = store
                .map(|s| s.meta(keys::LAST_GOOD_CONFIG))
                .transpose()?
                .flatten();
            let config = last_good.and_then(|t| Config::parse_with(&t, check_prefs).ok());
            Ok(ConfigInForce {
                path,
                config,
                text: None,
                error: Some(error),
            })
        }
    }
}

/// Neither the config file nor a last good copy of it can be used.
#[derive(Debug, thiserror::Error)]
#[error("no usable config at {}: {message}; fix it (`bistro check` lists every problem), pass --config FILE, or run `bistro init`", path.display())]
pub struct NoUsableConfig {
    /// The config file.
    pub path: PathBuf,
    /// Why it cannot be used.
    pub message: String,
}

impl HasKind for NoUsableConfig {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Usage
    }
}

/// The config in force for a command: the file ([`config_path`]), or its last good
/// copy when the file is broken.
pub fn usable_config(
    state: &StateDir,
    store: &StatusStore,
    explicit: Option<&Path>,
) -> Result<Result<Config, NoUsableConfig>, StoreError> {
    let path = config_path(state, Some(store), explicit)?;
    let loaded = load_config(Some(store), path.clone())?;
    Ok(loaded.config.ok_or_else(|| NoUsableConfig {
        path,
        message: loaded
            .error
            .map_or_else(|| "unreadable".to_string(), |e| e.to_string()),
    }))
}

/// The command-line choices that select what a run uses; unset ones fall back to
/// what the state dir remembers.
#[derive(Debug, Clone, Default)]
pub struct RunFlags {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--worker-command`.
    pub worker_command: Option<String>,
    /// `--instance-node-name`.
    pub instance_node_name: Option<String>,
    /// `--runner`, remembered for later ticks.
    pub runner: Option<String>,
}

/// Everything a run resolves from its flags and the state dir.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The config in force.
    pub config: ConfigInForce,
    /// The instance node's name.
    pub instance: String,
    /// The default task command.
    pub worker_command: Option<String>,
}

/// Resolves the config, instance name and worker command of a run.
pub fn resolve(
    state: &StateDir,
    store: &StatusStore,
    flags: &RunFlags,
) -> Result<Resolved, StoreError> {
    let path = config_path(state, Some(store), flags.config.as_deref())?;
    Ok(Resolved {
        config: load_config(Some(store), path)?,
        instance: instance_name(Some(store), flags.instance_node_name.as_deref())?,
        worker_command: remembered(
            Some(store),
            keys::WORKER_COMMAND,
            flags.worker_command.as_deref(),
        )?,
    })
}

/// A remembered value, unless given explicitly.
pub fn remembered(
    store: Option<&StatusStore>,
    key: &str,
    explicit: Option<&str>,
) -> Result<Option<String>, StoreError> {
    match explicit {
        Some(v) => Ok(Some(v.to_string())),
        None => Ok(store.map(|s| s.meta(key)).transpose()?.flatten()),
    }
}

/// The instance node's name: given, remembered, or the host name.
pub fn instance_name(
    store: Option<&StatusStore>,
    explicit: Option<&str>,
) -> Result<String, StoreError> {
    Ok(remembered(store, keys::INSTANCE_NODE_NAME, explicit)?
        .unwrap_or_else(crate::execution::supervisor::process::hostname))
}

/// The nodes of the last fetch as a real tick stored them (meta `nodes`).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct NodesSnapshot {
    /// The nodes.
    pub nodes: Nodes,
    /// What they were fetched from: instance name, levels and node sources.
    #[serde(default)]
    pub key: String,
    /// When they were fetched, epoch seconds.
    #[serde(default)]
    pub fetched_at: i64,
}

/// What a nodes snapshot is fetched from: the instance name, the levels and the node
/// sources. A stored snapshot with another key is not the nodes of this config.
pub fn nodes_key(config: &Config, instance: &str) -> String {
    let settings = &config.settings;
    let levels: Vec<&str> = (0..settings.levels.len())
        .map(|i| settings.levels.name(i))
        .collect();
    let sources: Vec<serde_json::Value> = settings
        .node_sources
        .iter()
        .map(|s| serde_json::json!({"source": s.source, "prefs": s.prefs}))
        .collect();
    serde_json::json!({"instance": instance, "levels": levels, "sources": sources}).to_string()
}

/// No stored nodes snapshot was fetched for the config in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the scheduler has not fetched nodes for this config yet (the HTTP server never runs node sources itself): they are served once a tick, or the daemon's next iteration, has fetched them")]
pub struct NodesNotFetched;

/// The nodes a real tick stored, if they were fetched for `config` and `instance`
/// (see [`nodes_key`]). Never runs a node source, so it is safe on threads that must
/// not spawn processes (the HTTP server's) and for requests that must not trigger
/// scripts.
pub fn stored_nodes(
    store: &StatusStore,
    config: &Config,
    instance: &str,
) -> Result<Result<Nodes, NodesNotFetched>, StoreError> {
    let key = nodes_key(config, instance);
    Ok(stored_snapshot(store)?
        .filter(|snapshot| snapshot.key == key)
        .map(|snapshot| snapshot.nodes)
        .ok_or(NodesNotFetched))
}

/// The stored nodes snapshot, whatever config it was fetched for.
pub fn stored_snapshot(store: &StatusStore) -> Result<Option<NodesSnapshot>, StoreError> {
    Ok(store
        .meta(keys::NODES)?
        .and_then(|text| serde_json::from_str(&text).ok()))
}

/// The nodes a real tick stored for `config`, else freshly fetched ones (for the
/// CLI; the HTTP server uses [`stored_nodes`]).
pub fn nodes_for_report(
    store: Option<&StatusStore>,
    config: &Config,
    instance: &str,
) -> Result<Result<Nodes, NodeError>, StoreError> {
    if let Some(store) = store {
        if let Ok(nodes) = stored_nodes(store, config, instance)? {
            return Ok(Ok(nodes));
        }
    }
    Ok(fetch_nodes(&config.settings, instance))
}

/// Describes how a config's text changed: settings, and jobs added, modified or removed
/// (compared as JSON values, so formatting alone is no change).
pub fn config_changes(old: Option<&str>, new: &str) -> Vec<String> {
    let parse = |t: &str| {
        serde_json::from_str::<serde_json::Value>(t)
            .ok()
            .and_then(|v| v.as_object().cloned())
    };
    let (Some(new), Some(old)) = (parse(new), old.and_then(parse)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if old.get("bistro_settings") != new.get("bistro_settings") {
        out.push("bistro_settings changed".to_string());
    }
    let jobs = |m: &serde_json::Map<String, serde_json::Value>| -> std::collections::BTreeMap<String, serde_json::Value> {
        m.iter().filter_map(|(k, v)| Some((k.strip_prefix(crate::foundation::config::JOB_PREFIX)?.to_string(), v.clone()))).collect()
    };
    let (old_jobs, new_jobs) = (jobs(&old), jobs(&new));
    for (name, job) in &new_jobs {
        match old_jobs.get(name) {
            None => out.push(format!("added job {name}")),
            Some(before) if before != job => out.push(format!("modified job {name}")),
            Some(_) => {}
        }
    }
    out.extend(
        old_jobs
            .keys()
            .filter(|n| !new_jobs.contains_key(*n))
            .map(|n| format!("removed job {n}")),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_changes_name_jobs_and_ignore_formatting() {
        let old = r#"{"bistro_settings": {"a": 1}, "bistro_job->x": {"owner": "o"}, "bistro_job->gone": {}}"#;
        let new = r#"{"bistro_settings": {"a": 1},
                      "bistro_job->x": {"owner": "o2"}, "bistro_job->new": {}}"#;
        assert_eq!(
            config_changes(Some(old), new),
            vec!["added job new", "modified job x", "removed job gone"]
        );
        assert!(config_changes(Some(old), &old.replace(' ', "")).is_empty());
        assert!(config_changes(None, new).is_empty());
    }
}
