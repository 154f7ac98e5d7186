//! Process options of `bistro_settings` and of jobs: how long the scheduler waits
//! between iterations, and how task processes are run, supervised, timed out and killed
//! (`task_subprocess`, `kill_subprocess`, `kill_orphan_tasks_after_sec`,
//! `task_timeout_sec`).

use super::ErrorRecord;
use crate::foundation::sanitize::lenient;
use serde_json::Value;

/// How a kill is delivered (`kill_subprocess.method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KillMethod {
    /// SIGTERM, then SIGKILL after `kill_wait_ms`.
    TermWaitKill,
    /// SIGTERM only.
    Term,
    /// SIGKILL at once.
    Kill,
}

/// `kill_subprocess`: how tasks are killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KillRequest {
    /// The signal sequence.
    pub method: KillMethod,
    /// Grace period between SIGTERM and SIGKILL.
    pub kill_wait_ms: i64,
}

impl Default for KillRequest {
    /// Our default differs from Bistro's single SIGTERM: TERM, 5 s, then KILL.
    fn default() -> Self {
        Self {
            method: KillMethod::TermWaitKill,
            kill_wait_ms: 5000,
        }
    }
}

/// `task_subprocess`: how a task process is run and supervised.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskSubprocess {
    /// Supervisor poll period.
    pub poll_ms: i64,
    /// Bistro's log rate limit; accepted, not applied (a bounded buffer slows
    /// floods instead).
    pub max_log_lines_per_poll_interval: i64,
    /// Signal the task gets when its supervisor dies (0: none).
    pub parent_death_signal: i32,
    /// Run the task as the leader of its own process group (our default: true).
    pub process_group_leader: bool,
    /// Accepted for compatibility; we always wait for the task's pipes.
    pub use_canary_pipe: bool,
    /// Accepted for compatibility (cgroups v1 are not supported).
    pub cgroups: Value,
}

impl Default for TaskSubprocess {
    fn default() -> Self {
        Self {
            poll_ms: 10,
            max_log_lines_per_poll_interval: 50,
            parent_death_signal: 9,
            process_group_leader: true,
            use_canary_pipe: true,
            cgroups: serde_json::json!({"root": "", "slice": "", "subsystems": [], "kill_without_freezer": false}),
        }
    }
}

/// Parses seconds (fractions allowed) into ms.
pub(super) fn seconds_to_ms(v: &Value) -> Option<i64> {
    lenient::as_f64(v)
        .filter(|s| *s >= 0.0)
        .map(|s| (s * 1000.0) as i64)
}

/// A `kill_orphan_tasks_after_sec` value that is neither a boolean nor a number.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("must be true, false or a number of seconds, got {0}")]
pub struct KillOrphansError(pub Value);

/// Parses `kill_orphan_tasks_after_sec`: `true` = 0, `false` or negative = never.
pub fn parse_kill_orphans(v: &Value) -> Result<Option<i64>, KillOrphansError> {
    match v {
        Value::Bool(true) => Ok(Some(0)),
        Value::Bool(false) => Ok(None),
        Value::Number(n) => {
            let s = n.as_f64().unwrap_or(-1.0);
            Ok((s >= 0.0).then_some((s * 1000.0) as i64))
        }
        other => Err(KillOrphansError(other.clone())),
    }
}

/// A `task_timeout_sec` value that is not a whole, non-negative number of seconds.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("must be a whole number of seconds (0 or null for no timeout)")]
pub struct TaskTimeoutError(pub Value);

/// Parses `task_timeout_sec`: how long a task may run before its supervisor kills it
/// with the job's `kill_subprocess` and records `error_backoff` "timed out after N s".
/// `null` or 0 means no timeout (so a job can lift the settings' one).
pub fn parse_task_timeout(v: &Value) -> Result<Option<u64>, TaskTimeoutError> {
    if v.is_null() {
        return Ok(None);
    }
    match lenient::as_i64(v).and_then(|s| u64::try_from(s).ok()) {
        Some(0) => Ok(None),
        Some(s) => Ok(Some(s)),
        None => Err(TaskTimeoutError(v.clone())),
    }
}

/// Parses `task_subprocess` over `base`.
pub fn parse_task_subprocess(
    v: &Value,
    base: &TaskSubprocess,
    rec: &mut ErrorRecord,
) -> TaskSubprocess {
    let mut out = base.clone();
    let Some(obj) = v.as_object() else {
        rec.set_error(v, "must be an object");
        return out;
    };
    let int = |key: &str, rec: &mut ErrorRecord| -> Option<i64> {
        let value = obj.get(key)?;
        lenient::as_i64(value).or_else(|| {
            rec.nested_error(key, value, "must be an integer");
            None
        })
    };
    let boolean = |key: &str, rec: &mut ErrorRecord| -> Option<bool> {
        let value = obj.get(key)?;
        lenient::as_bool(value).or_else(|| {
            rec.nested_error(key, value, "must be a boolean");
            None
        })
    };
    if let Some(v) = int("poll_ms", rec) {
        out.poll_ms = v.max(1);
    }
    if let Some(v) = int("max_log_lines_per_poll_interval", rec) {
        out.max_log_lines_per_poll_interval = v;
    }
    if let Some(v) = int("parent_death_signal", rec) {
        match i32::try_from(v) {
            Ok(sig) if (0..=64).contains(&sig) => out.parent_death_signal = sig,
            _ => rec.nested_error(
                "parent_death_signal",
                &obj["parent_death_signal"],
                "must be a signal number (0 for none)",
            ),
        }
    }
    if let Some(v) = boolean("process_group_leader", rec) {
        out.process_group_leader = v;
    }
    if let Some(v) = boolean("use_canary_pipe", rec) {
        out.use_canary_pipe = v;
    }
    if let Some(cgroups) = obj.get("cgroups") {
        match (cgroups.as_object(), out.cgroups.as_object_mut()) {
            (Some(given), Some(current)) => {
                for (k, v) in given {
                    let ok = match k.as_str() {
                        "root" | "slice" => v.is_string(),
                        "subsystems" => {
                            v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
                        }
                        "kill_without_freezer" => lenient::as_bool(v).is_some(),
                        _ => true,
                    };
                    if ok {
                        current.insert(k.clone(), v.clone());
                    } else {
                        let want = match k.as_str() {
                            "subsystems" => "must be an array of subsystem names",
                            "kill_without_freezer" => "must be a boolean",
                            _ => "must be a string",
                        };
                        rec.nested("cgroups").nested_error(k.as_str(), v, want);
                    }
                }
            }
            _ => rec.nested_error("cgroups", cgroups, "must be an object"),
        }
    }
    out
}

/// Parses `kill_subprocess` over `base`.
pub fn parse_kill_subprocess(v: &Value, base: &KillRequest, rec: &mut ErrorRecord) -> KillRequest {
    let mut out = *base;
    let Some(obj) = v.as_object() else {
        rec.set_error(v, "must be an object");
        return out;
    };
    if let Some(method) = obj.get("method") {
        match method.as_str() {
            Some("term_wait_kill") => out.method = KillMethod::TermWaitKill,
            Some("term") => out.method = KillMethod::Term,
            Some("kill") => out.method = KillMethod::Kill,
            _ => rec.nested_error(
                "method",
                method,
                "must be \"term_wait_kill\", \"term\" or \"kill\"",
            ),
        }
    }
    if let Some(wait) = obj.get("kill_wait_ms") {
        match lenient::as_i64(wait) {
            Some(ms) => out.kill_wait_ms = ms,
            None => rec.nested_error("kill_wait_ms", wait, "must be an integer"),
        }
    }
    out
}
