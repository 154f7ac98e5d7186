//! `kill_task` and `forgive_jobs`: the same library calls as `bistro kill` and
//! `bistro forgive` ([`crate::control`]).

use super::{required_string, strings, Params};
use crate::app::snapshot::Snapshot;
use serde_json::{json, Value};

pub(super) fn kill_task(params: &Params, snap: &Snapshot) -> Result<Value, String> {
    let job = required_string(params, "job_id")?;
    let node = required_string(params, "node_id")?;
    crate::control::kill(&snap.state, &snap.config, job, node).map_err(|e| e.to_string())?;
    Ok(json!("signaled"))
}

pub(super) fn forgive_jobs(params: &Params, snap: &Snapshot) -> Result<Value, String> {
    let jobs = strings(params, "jobs")?;
    if jobs.is_empty() {
        return Err("jobs must name at least one job to forgive".into());
    }
    crate::control::forgive(&snap.state, &snap.config, &jobs, &[]).map_err(|e| e.to_string())?;
    Ok(json!("forgiven"))
}
