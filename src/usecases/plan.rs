//! `bistro plan`: what applying a config file would do, before a scheduler picks it
//! up. The file is compared with the config in force (the last one a scheduler
//! loaded): settings and jobs added, removed or changed key by key, and the problems
//! that would make a job or the whole file unusable. Over a state dir with statuses,
//! a dry-run pass with the file adds the node-set change (when the node sources can
//! be fetched), the tasks that would start at once, and the running tasks that would
//! become orphans, with when `kill_orphan_tasks_after_sec` would kill them.

use crate::execution::runner::TaskRunner;
use crate::foundation::config::JOB_PREFIX;
use crate::storage::state::StateDir;
use crate::storage::store::StatusStore;
use crate::usecases::context::{self, keys, RunFlags};
use crate::usecases::tick::{
    orphan_deadlines, orphan_kill_at, orphan_reason, tick, TickError, TickOptions,
};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::path::Path;

/// One key whose value changes (absent is `null`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyChange {
    /// The key inside `bistro_settings` or the job entry.
    pub key: String,
    /// Its value in the config in force.
    pub before: Value,
    /// Its value in the file.
    pub after: Value,
}

/// A job whose entry changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobChange {
    /// The job.
    pub job: String,
    /// Its keys that change.
    pub keys: Vec<KeyChange>,
}

/// How the job set changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct JobChanges {
    /// Jobs only in the file.
    pub added: Vec<String>,
    /// Jobs only in the config in force.
    pub removed: Vec<String>,
    /// Jobs in both whose entries differ.
    pub changed: Vec<JobChange>,
}

/// How the node set changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NodeChanges {
    /// Whether the nodes of both configs are known (the scheduler fetched nodes
    /// before, and the file's node sources could be fetched).
    pub compared: bool,
    /// Nodes only the file's sources give.
    pub added: Vec<String>,
    /// Nodes that the file's sources no longer give.
    pub removed: Vec<String>,
    /// Why the file's node sources could not be fetched.
    pub error: Option<String>,
}

/// A task of the dry-run pass.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedTask {
    /// Job name.
    pub job: String,
    /// Node name.
    pub node: String,
}

/// A running task that the file would make an orphan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedOrphan {
    /// Job name.
    pub job: String,
    /// Node name.
    pub node: String,
    /// Why it would be an orphan.
    pub reason: String,
    /// When `kill_orphan_tasks_after_sec` would kill it (epoch seconds); None: never.
    pub kill_at: Option<i64>,
}

/// A problem that makes a job, or the whole file, unusable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// The file, job or key at fault.
    #[serde(rename = "where")]
    pub at: String,
    /// What is wrong.
    pub message: String,
}

/// What applying the file would do (`bistro plan --json` prints it).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PlanReport {
    /// 1: the document is extended, never renamed.
    pub schema_version: u32,
    /// The file compared.
    pub config: String,
    /// Whether a scheduler has loaded a config in this state dir (else every job
    /// of the file is new).
    pub in_force: bool,
    /// The whole file is unusable (the config in force stays).
    pub unusable: bool,
    /// Problems of the file: settings problems make it unusable, job problems keep
    /// the job from running.
    pub problems: Vec<Problem>,
    /// `bistro_settings` keys that change.
    pub settings: Vec<KeyChange>,
    /// How the job set changes.
    pub jobs: JobChanges,
    /// How the node set changes.
    pub nodes: NodeChanges,
    /// Whether the dry-run pass ran (a state dir with statuses and a usable,
    /// enabled config); else `would_start` and `orphans` are not known.
    pub pass: bool,
    /// Tasks that would start at the next iteration.
    pub would_start: Vec<PlannedTask>,
    /// Running tasks that would be orphans.
    pub orphans: Vec<PlannedOrphan>,
}

impl PlanReport {
    /// The config or node set would change.
    pub fn changes(&self) -> bool {
        !(self.settings.is_empty()
            && self.jobs == JobChanges::default()
            && self.nodes.added.is_empty()
            && self.nodes.removed.is_empty())
    }
}

/// Compares the config file (`file`, else the one the scheduler uses) with the config
/// in force, and runs a dry-run pass with it over the state dir when there are
/// statuses to run it on. Writes nothing.
pub fn plan(
    state: &StateDir,
    file: Option<&Path>,
    runner: &mut dyn TaskRunner,
) -> Result<PlanReport, TickError> {
    let store = match state.statuses_db().exists() {
        true => Some(StatusStore::open(&state.statuses_db())?),
        false => None,
    };
    let path = context::config_path(state, store.as_ref(), file)?;
    let loaded = context::load_config(None, path.clone())?;
    let in_force_text = match &store {
        Some(store) => store.meta(keys::LAST_GOOD_CONFIG)?,
        None => None,
    };
    let mut report = PlanReport {
        schema_version: 1,
        config: path.display().to_string(),
        in_force: in_force_text.is_some(),
        unusable: loaded.error.is_some(),
        ..Default::default()
    };
    if let Some(e) = &loaded.error {
        report
            .problems
            .extend(e.problems().into_iter().map(|(at, message)| Problem {
                at: if at.is_empty() {
                    path.display().to_string()
                } else {
                    at
                },
                message,
            }));
    }
    let Some(config) = &loaded.config else {
        return Ok(report);
    };
    report.problems.extend(
        config
            .job_problems()
            .into_iter()
            .map(|(at, message)| Problem { at, message }),
    );
    let objects = |text: Option<&str>| {
        text.and_then(|t| serde_json::from_str::<Value>(t).ok())
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default()
    };
    let before = objects(in_force_text.as_deref());
    let after = objects(loaded.text.as_deref());
    report.settings = key_changes(before.get("bistro_settings"), after.get("bistro_settings"));
    report.jobs = job_changes(&before, &after);
    let Some(store) = store else {
        return Ok(report);
    };
    let opts = TickOptions {
        flags: RunFlags {
            config: Some(path),
            ..Default::default()
        },
        dry_run: true,
        // The scheduler's last fetch while the node sources are the same; new
        // sources are fetched.
        nodes_update_ms: i64::MAX,
        ..Default::default()
    };
    let pass = tick(state, &opts, runner)?;
    report.nodes.error = pass.nodes_error.clone();
    let Some(explained) = pass.explained else {
        return Ok(report);
    };
    report.pass = true;
    if let Some(snapshot) = context::stored_snapshot(&store)? {
        let old: BTreeSet<&str> = snapshot
            .nodes
            .list
            .iter()
            .map(|n| n.name.as_str())
            .collect();
        let new: BTreeSet<&str> = explained
            .nodes
            .list
            .iter()
            .map(|n| n.name.as_str())
            .collect();
        report.nodes.compared = true;
        report.nodes.added = new.difference(&old).map(|n| n.to_string()).collect();
        report.nodes.removed = old.difference(&new).map(|n| n.to_string()).collect();
    }
    report.would_start = pass
        .started
        .into_iter()
        .map(|s| PlannedTask {
            job: s.job,
            node: s.node,
        })
        .collect();
    let deadlines = orphan_deadlines(&store)?;
    report.orphans = explained
        .orphans
        .iter()
        .map(|&i| {
            let task = &explained.running[i];
            PlannedOrphan {
                job: task.job.clone(),
                node: task.node.clone(),
                reason: orphan_reason(&explained.config, &explained.nodes, task),
                kill_at: orphan_kill_at(&explained.config, task, &deadlines, pass.now),
            }
        })
        .collect();
    Ok(report)
}

/// The keys of two JSON objects whose values differ, in key order.
fn key_changes(before: Option<&Value>, after: Option<&Value>) -> Vec<KeyChange> {
    let empty = Map::new();
    let before = before.and_then(Value::as_object).unwrap_or(&empty);
    let after = after.and_then(Value::as_object).unwrap_or(&empty);
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let (b, a) = (before.get(key), after.get(key));
            (b != a).then(|| KeyChange {
                key: key.clone(),
                before: b.cloned().unwrap_or(Value::Null),
                after: a.cloned().unwrap_or(Value::Null),
            })
        })
        .collect()
}

/// Jobs added, removed and changed key by key between two config objects.
fn job_changes(before: &Map<String, Value>, after: &Map<String, Value>) -> JobChanges {
    let jobs = |m: &Map<String, Value>| -> BTreeSet<String> {
        m.keys()
            .filter_map(|k| k.strip_prefix(JOB_PREFIX).map(str::to_string))
            .collect()
    };
    let (old, new) = (jobs(before), jobs(after));
    let entry = |m: &Map<String, Value>, job: &str| m.get(&format!("{JOB_PREFIX}{job}")).cloned();
    JobChanges {
        added: new.difference(&old).cloned().collect(),
        removed: old.difference(&new).cloned().collect(),
        changed: old
            .intersection(&new)
            .filter_map(|job| {
                let keys = key_changes(entry(before, job).as_ref(), entry(after, job).as_ref());
                (!keys.is_empty()).then(|| JobChange {
                    job: job.clone(),
                    keys,
                })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jobs_are_compared_key_by_key_and_formatting_is_no_change() {
        let before = json!({"bistro_settings": {"enabled": true, "idle_wait": 1},
                            "bistro_job->kept": {"owner": "o", "priority": 1},
                            "bistro_job->same": {"owner": "o"},
                            "bistro_job->gone": {"owner": "o"}});
        let after = json!({"bistro_settings": {"enabled": true, "working_wait": 2},
                           "bistro_job->kept": {"owner": "o", "enabled": false},
                           "bistro_job->same": {"owner": "o"},
                           "bistro_job->new": {"owner": "o"}});
        let (before, after) = (before.as_object().unwrap(), after.as_object().unwrap());
        let settings = key_changes(before.get("bistro_settings"), after.get("bistro_settings"));
        assert_eq!(
            settings,
            vec![
                KeyChange {
                    key: "idle_wait".into(),
                    before: json!(1),
                    after: Value::Null
                },
                KeyChange {
                    key: "working_wait".into(),
                    before: Value::Null,
                    after: json!(2)
                },
            ]
        );
        let jobs = job_changes(before, after);
        assert_eq!(jobs.added, vec!["new"]);
        assert_eq!(jobs.removed, vec!["gone"]);
        assert_eq!(jobs.changed.len(), 1);
        assert_eq!(jobs.changed[0].job, "kept");
        let keys: Vec<&str> = jobs.changed[0]
            .keys
            .iter()
            .map(|k| k.key.as_str())
            .collect();
        assert_eq!(keys, vec!["enabled", "priority"]);
    }
}
