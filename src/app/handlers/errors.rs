//! `errors` and `refresh_time`: what is wrong with the config, its jobs and its node
//! sources, and when the scheduler last looked (the last tick's time).
//!
//! Error keys name what is at fault, like Bistro's code locations do for it: the
//! config file (and the key inside it), `bistro_job->NAME`, or
//! `bistro_settings.nodes`. A key's messages are joined by ".\n".

use super::HandlerError;
use crate::app::snapshot::Snapshot;
use crate::storage::store::LastTick;
use serde_json::{json, Map, Value};

pub(super) fn errors(snap: &Snapshot) -> Result<Value, HandlerError> {
    let mut problems: Vec<(String, String)> = Vec::new();
    if let Some(e) = &snap.config_error {
        problems.extend(
            e.problems()
                .into_iter()
                .map(|(at, message)| (at, format!("{message} (the last good config is in force)"))),
        );
    }
    for job in &snap.config.jobs {
        let at = format!("{}{}", crate::foundation::config::JOB_PREFIX, job.name);
        problems.extend(job.problem_lines().into_iter().map(|m| (at.clone(), m)));
    }
    // The scheduler's own failure says more than "no nodes were fetched".
    let last = LastTick::load(&snap.store)?;
    if let Some(e) = last.and_then(|t| t.nodes_error) {
        problems.push(("bistro_settings.nodes".into(), e));
    } else if let Err(e) = snap.nodes() {
        problems.push(("bistro_settings.nodes".into(), e.to_string()));
    }
    // A restarted scheduler starts nothing until its remote workers are back.
    let workers = crate::usecases::report::workers(&snap.state);
    if let Some(wait) = workers.as_ref().and_then(|w| w["initial_wait"].as_str()) {
        problems.push(("RemoteWorkerRunner initial wait".into(), wait.to_string()));
    }
    let mut out: Map<String, Value> = Map::new();
    for (key, message) in problems {
        match out.get_mut(&key) {
            Some(Value::String(joined)) => {
                joined.push_str(".\n");
                joined.push_str(&message);
            }
            _ => {
                out.insert(key, Value::String(message));
            }
        }
    }
    Ok(Value::Object(out))
}

pub(super) fn refresh_time(snap: &Snapshot) -> Result<Value, HandlerError> {
    let last = LastTick::load(&snap.store)?;
    Ok(json!(last.map_or(0, |t| t.time)))
}
