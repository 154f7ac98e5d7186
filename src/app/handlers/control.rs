//! `kill_task` and `forgive_jobs`: the same library calls as `bistro kill` and
//! `bistro forgive` ([`crate::usecases::control`]).

use super::{required_string, strings, HandlerError, Params};
use crate::app::snapshot::Snapshot;
use serde_json::{json, Value};

pub(super) fn kill_task(params: &Params, snap: &Snapshot) -> Result<Value, HandlerError> {
    let job = required_string(params, "job_id")?;
    let node = required_string(params, "node_id")?;
    crate::usecases::control::kill(&snap.state, &snap.config, job, node)?;
    Ok(json!("signaled"))
}

pub(super) fn forgive_jobs(params: &Params, snap: &Snapshot) -> Result<Value, HandlerError> {
    let jobs = strings(params, "jobs")?;
    if jobs.is_empty() {
        return Err(HandlerError::NothingToForgive);
    }
    crate::usecases::control::forgive(&snap.state, &snap.config, &jobs, &[])?;
    Ok(json!("forgiven"))
}
