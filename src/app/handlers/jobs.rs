//! `jobs`: each job as Bistro exports it (bistro-runtime §4.3): the effective values
//! of the keys every job has, plus the optional keys when they are set. Filters are
//! echoed from the config file, since they are kept compiled.

use super::{strings, wanted, HandlerError, Params};
use crate::app::snapshot::Snapshot;
use crate::foundation::config::{Config, Job, JOB_PREFIX};
use serde_json::{json, Map, Value};

pub(super) fn jobs(params: &Params, snap: &Snapshot) -> Result<Value, HandlerError> {
    let filter = strings(params, "jobs")?;
    let out: Map<String, Value> = snap
        .config
        .jobs
        .iter()
        .filter(|job| wanted(&filter, &job.name))
        .map(|job| {
            let raw = snap.raw.get(format!("{JOB_PREFIX}{}", job.name));
            (job.name.clone(), export(&snap.config, job, raw))
        })
        .collect();
    Ok(Value::Object(out))
}

/// One job's JSON; `raw` is its entry in the config file.
fn export(config: &Config, job: &Job, raw: Option<&Value>) -> Value {
    let levels = &config.settings.levels;
    let defs = &config.settings.resources;
    let mut out = Map::new();
    out.insert("enabled".into(), json!(job.enabled));
    out.insert("owner".into(), json!(job.owner));
    out.insert(
        "level_for_tasks".into(),
        json!(levels.name(job.level_for_tasks)),
    );
    out.insert("priority".into(), json!(job.priority));
    out.insert("config".into(), job.config.clone());
    out.insert("backoff".into(), job.backoff.to_json());
    out.insert(
        "kill_orphan_tasks_after_sec".into(),
        job.kill_orphan_tasks_after_ms
            .map_or(json!(false), |ms| json!(ms as f64 / 1000.0)),
    );
    out.insert(
        "task_subprocess".into(),
        serde_json::to_value(&job.task_subprocess).expect("serializes"),
    );
    out.insert(
        "kill_subprocess".into(),
        serde_json::to_value(job.kill_subprocess).expect("serializes"),
    );
    if !defs.names.is_empty() {
        let resources: Map<String, Value> = defs
            .names
            .iter()
            .zip(&job.resources)
            .map(|(name, amount)| (name.clone(), json!(amount)))
            .collect();
        out.insert("resources".into(), Value::Object(resources));
    }
    if let Some(filters) = raw.and_then(|r| r.get("filters")) {
        out.insert("filters".into(), filters.clone());
    }
    if let Some(level) = job.level_for_host_placement {
        out.insert("level_for_host_placement".into(), json!(levels.name(level)));
    }
    if !job.host_placement.is_empty() {
        out.insert("host_placement".into(), json!(job.host_placement));
    }
    if !job.depends_on.is_empty() {
        out.insert("depends_on".into(), json!(job.depends_on));
    }
    if !job.run_only_after_all_nodes_are_done_for.is_empty() {
        out.insert(
            "run_only_after_all_nodes_are_done_for".into(),
            json!(job.run_only_after_all_nodes_are_done_for),
        );
    }
    for (key, value, unset) in [
        ("create_time", job.create_time, 0),
        ("modify_time", job.modify_time, 0),
        ("version_id", job.version_id, -1),
    ] {
        if value != unset {
            out.insert(key.into(), json!(value));
        }
    }
    if !job.command.is_empty() {
        out.insert("command".into(), json!(job.command));
    }
    if let Some(errors) = &job.errors {
        out.insert("errors".into(), errors.clone());
    }
    Value::Object(out)
}
