//! Bistro's HTTP handlers (bistro-runtime §4.3), one file per handler or small group.
//! Each takes the sub-query's parameters and the request's [`Snapshot`] and returns
//! the `data` JSON or a [`HandlerError`], whose message is the sub-query's `error`;
//! parameter errors name the parameter.

mod control;
mod edit;
mod errors;
mod histogram;
mod jobs;
mod nodes;
mod running;
mod task_logs;

use super::snapshot::{NodesUnavailable, Snapshot, StatusesUnavailable};
use crate::execution::http::AuthError;
use crate::storage::store::StoreError;
use crate::usecases::control::ControlError;
use edit::EditError;
use serde_json::{Map, Value};
use task_logs::LogsError;
pub use task_logs::PageBudget;

/// A sub-query's parameters (everything but `handler`).
pub type Params = Map<String, Value>;

/// A parameter that is missing or of the wrong type.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    /// An item of a list of strings is not a string.
    #[error("{key} must be an array of strings; {item} is not a string")]
    NotAStringInArray {
        /// The parameter.
        key: String,
        /// The item.
        item: Value,
    },
    /// Not a list of strings.
    #[error("{key} must be an array of strings, got {got}")]
    NotAnArray {
        /// The parameter.
        key: String,
        /// What was sent.
        got: Value,
    },
    /// Not a string.
    #[error("{key} must be a string, got {got}")]
    NotAString {
        /// The parameter.
        key: String,
        /// What was sent.
        got: Value,
    },
    /// A required string is missing.
    #[error("missing parameter {key} (a string)")]
    MissingString {
        /// The parameter.
        key: String,
    },
    /// Not an integer.
    #[error("{key} must be an integer, got {got}")]
    NotAnInteger {
        /// The parameter.
        key: String,
        /// What was sent.
        got: Value,
    },
    /// Not a JSON object.
    #[error("{key} must be a JSON object, got {got}")]
    NotAnObject {
        /// The parameter.
        key: String,
        /// What was sent.
        got: Value,
    },
    /// A required JSON object is missing.
    #[error("missing parameter {key} (a JSON object)")]
    MissingObject {
        /// The parameter.
        key: String,
    },
    /// A string that must not be empty is.
    #[error("{key} must not be empty")]
    Empty {
        /// The parameter.
        key: String,
    },
}

/// Why a sub-query has no answer; its message is the sub-query's `error`.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// A handler that changes state, without the right token.
    #[error("{name}: {source}")]
    Unauthorized {
        /// The handler.
        name: String,
        /// What was wrong with the token.
        source: AuthError,
    },
    /// No handler has the name.
    #[error("Unknown handler: {0}")]
    UnknownHandler(String),
    /// A parameter is missing or of the wrong type.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// A `nodes` query asks for a field nodes do not have.
    #[error("Unknown field name: {0}")]
    UnknownField(String),
    /// A negative `num_samples`.
    #[error("num_samples must not be negative, got {0}")]
    NegativeSamples(i64),
    /// `forgive_jobs` without jobs.
    #[error("jobs must name at least one job to forgive")]
    NothingToForgive,
    /// A bad `task_logs` query.
    #[error(transparent)]
    Logs(#[from] LogsError),
    /// The nodes cannot be read.
    #[error(transparent)]
    Nodes(#[from] NodesUnavailable),
    /// The statuses cannot be read.
    #[error(transparent)]
    Statuses(#[from] StatusesUnavailable),
    /// A database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The remote workers' logs cannot be read.
    #[error("{0}")]
    WorkerLogs(String),
    /// Killing or forgiving failed.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// A config edit was refused or failed.
    #[error(transparent)]
    Edit(#[from] EditError),
}

/// Writes the `{"data": ...}` or `{"error": ...}` of a sub-query whose answer is
/// streamed rather than built: `task_logs` over the local log store (a scheduler
/// with remote workers merges their pages with its own, built by [`run`]). None
/// when `name`'s answer is built by [`run`].
pub fn stream(
    name: &str,
    params: &Params,
    snap: &Snapshot,
    budget: PageBudget,
    out: &mut dyn std::io::Write,
) -> Option<std::io::Result<()>> {
    (name == "task_logs" && snap.hub.is_none())
        .then(|| task_logs::stream(params, snap, budget, out))
}

/// The handlers that change state and so need the bearer token.
pub const MUTATING: [&str; 4] = ["kill_task", "forgive_jobs", "save_job", "delete_job"];

/// Runs handler `name`; `auth` says whether the request carried the right token.
pub fn run(
    name: &str,
    params: &Params,
    snap: &Snapshot,
    auth: Result<(), AuthError>,
) -> Result<Value, HandlerError> {
    if MUTATING.contains(&name) {
        auth.map_err(|source| HandlerError::Unauthorized {
            name: name.to_string(),
            source,
        })?;
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
        other => Err(HandlerError::UnknownHandler(other.to_string())),
    }
}

/// An optional list of strings (`null` or missing: empty).
pub(crate) fn strings(params: &Params, key: &str) -> Result<Vec<String>, ParamError> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ParamError::NotAStringInArray {
                        key: key.to_string(),
                        item: v.clone(),
                    })
            })
            .collect(),
        Some(other) => Err(ParamError::NotAnArray {
            key: key.to_string(),
            got: other.clone(),
        }),
    }
}

/// An optional string.
pub(crate) fn string<'a>(params: &'a Params, key: &str) -> Result<Option<&'a str>, ParamError> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ParamError::NotAString {
            key: key.to_string(),
            got: other.clone(),
        }),
    }
}

/// A required string.
pub(crate) fn required_string<'a>(params: &'a Params, key: &str) -> Result<&'a str, ParamError> {
    string(params, key)?.ok_or_else(|| ParamError::MissingString {
        key: key.to_string(),
    })
}

/// An optional integer.
pub(crate) fn integer(params: &Params, key: &str) -> Result<Option<i64>, ParamError> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| ParamError::NotAnInteger {
                key: key.to_string(),
                got: v.clone(),
            }),
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
            strings(&p, "jobs").unwrap_err().to_string(),
            "jobs must be an array of strings, got \"a\""
        );
        assert!(strings(&p, "nodes")
            .unwrap_err()
            .to_string()
            .contains("1 is not a string"));
        assert_eq!(strings(&p, "missing").unwrap(), Vec::<String>::new());
        assert_eq!(
            integer(&p, "n").unwrap_err().to_string(),
            "n must be an integer, got \"x\""
        );
        assert_eq!(
            string(&p, "s").unwrap_err().to_string(),
            "s must be a string, got 3"
        );
        assert!(required_string(&p, "job_id")
            .unwrap_err()
            .to_string()
            .contains("job_id"));
    }
}
