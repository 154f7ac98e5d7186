//! Bistro's HTTP handlers (bistro-runtime §4.3), one file per handler or small group.
//! Each takes the sub-query's parameters and the request's [`Snapshot`] and returns
//! the `data` JSON or an error message; parameter errors name the parameter.

mod control;
mod edit;
mod errors;
mod histogram;
mod jobs;
mod nodes;
mod running;
pub mod task_logs;

use super::snapshot::Snapshot;
use crate::http::AuthError;
use serde_json::{Map, Value};

/// A sub-query's parameters (everything but `handler`).
pub type Params = Map<String, Value>;

/// The handlers that change state and so need the bearer token.
pub const MUTATING: [&str; 4] = ["kill_task", "forgive_jobs", "save_job", "delete_job"];

/// Runs handler `name`; `auth` says whether the request carried the right token.
pub fn run(
    name: &str,
    params: &Params,
    snap: &Snapshot,
    auth: Result<(), AuthError>,
) -> Result<Value, String> {
    if MUTATING.contains(&name) {
        auth.map_err(|e| format!("{name}: {e}"))?;
    }
    match name {
        "jobs" => jobs::jobs(params, snap),
        "running_tasks" => running::running_tasks(params, snap),
        "job_node_runtime" => running::job_node_runtime(params, snap),
        "task_logs" => task_logs::task_logs(params, snap),
        "histogram" => histogram::histogram(params, snap),
        "nodes" => nodes::nodes(params, snap),
        "sorted_node_names" => nodes::sorted_node_names(snap),
        "errors" => errors::errors(snap),
        "refresh_time" => errors::refresh_time(snap),
        "kill_task" => control::kill_task(params, snap),
        "forgive_jobs" => control::forgive_jobs(params, snap),
        "save_job" => edit::save_job(params, snap),
        "delete_job" => edit::delete_job(params, snap),
        other => Err(format!("Unknown handler: {other}")),
    }
}

/// An optional list of strings (`null` or missing: empty).
pub(crate) fn strings(params: &Params, key: &str) -> Result<Vec<String>, String> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    format!("{key} must be an array of strings; {v} is not a string")
                })
            })
            .collect(),
        Some(other) => Err(format!("{key} must be an array of strings, got {other}")),
    }
}

/// An optional string.
pub(crate) fn string<'a>(params: &'a Params, key: &str) -> Result<Option<&'a str>, String> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!("{key} must be a string, got {other}")),
    }
}

/// A required string.
pub(crate) fn required_string<'a>(params: &'a Params, key: &str) -> Result<&'a str, String> {
    string(params, key)?.ok_or_else(|| format!("missing parameter {key} (a string)"))
}

/// An optional integer.
pub(crate) fn integer(params: &Params, key: &str) -> Result<Option<i64>, String> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{key} must be an integer, got {v}")),
    }
}

/// Keeps `name` when the filter is empty or names it.
pub(crate) fn wanted(filter: &[String], name: &str) -> bool {
    filter.is_empty() || filter.iter().any(|f| f == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: Value) -> Params {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn parameter_type_errors_name_the_parameter() {
        let p = params(json!({"jobs": "a", "nodes": [1], "n": "x", "s": 3}));
        assert_eq!(
            strings(&p, "jobs").unwrap_err(),
            "jobs must be an array of strings, got \"a\""
        );
        assert!(strings(&p, "nodes")
            .unwrap_err()
            .contains("1 is not a string"));
        assert_eq!(strings(&p, "missing").unwrap(), Vec::<String>::new());
        assert_eq!(
            integer(&p, "n").unwrap_err(),
            "n must be an integer, got \"x\""
        );
        assert_eq!(string(&p, "s").unwrap_err(), "s must be a string, got 3");
        assert!(required_string(&p, "job_id")
            .unwrap_err()
            .contains("job_id"));
    }
}
