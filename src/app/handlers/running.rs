//! `running_tasks` and the deprecated `job_node_runtime`: the tasks running now, with
//! when they started (runs whose result is written but not yet recorded are over) and,
//! beyond Bistro's answer, when a run with a `task_timeout_sec` times out.

use super::{strings, wanted, HandlerError, Params};
use crate::app::snapshot::Snapshot;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub(super) fn running_tasks(params: &Params, snap: &Snapshot) -> Result<Value, HandlerError> {
    by_job_and_node(params, snap, |task| {
        let mut out =
            json!({"start_time": task.invocation.start_time, "worker_shard": task.worker_shard});
        // On Slurm: the job id and state the scheduler last saw (no Slurm command
        // runs on the server's threads); its timeout counts from when the job
        // began, which only the scheduler's checks see, so no deadline is shown.
        let dir = snap.state.invocation_dir(task.invocation);
        match crate::execution::runner::slurm::SubmitRecord::read(&dir) {
            Some(record) => out["slurm"] = json!(record.describe()),
            None => {
                if let Some(at) = task.timeout_at() {
                    out["timeout_at"] = json!(at);
                }
            }
        }
        out
    })
}

pub(super) fn job_node_runtime(params: &Params, snap: &Snapshot) -> Result<Value, HandlerError> {
    by_job_and_node(params, snap, |task| {
        json!(snap.now - task.invocation.start_time)
    })
}

/// `{job: {node: f(task)}}` over the running tasks of the `jobs` filter.
fn by_job_and_node(
    params: &Params,
    snap: &Snapshot,
    f: impl Fn(&crate::model::task::RunningTask) -> Value,
) -> Result<Value, HandlerError> {
    let filter = strings(params, "jobs")?;
    let (_, running) = snap.statuses()?;
    let mut out: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for task in running.iter().filter(|t| wanted(&filter, &t.job)) {
        out.entry(task.job.as_str())
            .or_default()
            .insert(task.node.clone(), f(task));
    }
    Ok(json!(out))
}
