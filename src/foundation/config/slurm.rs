//! Slurm options (`bistro_settings.slurm` and a job's `slurm` object): what a task
//! submitted to a Slurm cluster asks of it. The settings hold the defaults, the
//! queue cap and the run directory; a job's object overrides the defaults key by key.
//! Every key is declared in [`OPTION_KEYS`] / [`SETTINGS_KEYS`], so they are easy to list.

use super::ErrorRecord;
use crate::foundation::sanitize::lenient;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::PathBuf;

/// The keys of a `slurm` options object (job-level, and the defaults in the settings).
pub const OPTION_KEYS: &[&str] = &[
    "partition",
    "account",
    "qos",
    "time_limit",
    "cpus_per_task",
    "memory",
    "gres",
    "constraint",
    "extra_args",
];

/// The keys only `bistro_settings.slurm` has, besides [`OPTION_KEYS`].
pub const SETTINGS_KEYS: &[&str] = &["max_queued", "max_array_size", "run_dir"];

/// What one task asks of Slurm: `sbatch` options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmOptions {
    /// `--partition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// `--account`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// `--qos`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<String>,
    /// `--time` (Slurm's time format, e.g. `30`, `1:00:00`, `2-00:00:00`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit: Option<String>,
    /// `--cpus-per-task`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_per_task: Option<u32>,
    /// `--mem` (e.g. `500M`, `4G`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// `--gres` (e.g. `gpu:1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gres: Option<String>,
    /// `--constraint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
    /// More `sbatch` arguments, passed as they are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<String>,
    /// `--nodelist`: not a config key, but the job's `host_placement` (or the node's
    /// ancestor at `level_for_host_placement`) for one task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodelist: Option<String>,
}

/// `bistro_settings.slurm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmSettings {
    /// The options every job starts from.
    pub defaults: SlurmOptions,
    /// At most this many of bistro's tasks wait in Slurm's queue (PENDING) at once;
    /// no more are submitted until some start.
    pub max_queued: usize,
    /// The largest array bistro submits (the cluster's `MaxArraySize` minus one is the
    /// largest index Slurm accepts).
    pub max_array_size: usize,
    /// An absolute directory on a file system compute nodes share, where each run's
    /// batch script, status file, output and exit code go (None: the run's directory
    /// in the state dir, which must then be shared).
    pub run_dir: Option<PathBuf>,
}

impl Default for SlurmSettings {
    fn default() -> Self {
        Self {
            defaults: SlurmOptions::default(),
            max_queued: 1000,
            max_array_size: 1000,
            run_dir: None,
        }
    }
}

/// Parses `bistro_settings.slurm`; problems go to `rec` under each key.
pub fn parse_slurm_settings(v: &Value, rec: &mut ErrorRecord) -> SlurmSettings {
    let mut out = SlurmSettings::default();
    let Some(obj) = v.as_object() else {
        rec.set_error(v, "must be an object of sbatch options");
        return out;
    };
    out.defaults = parse_options(obj, &SlurmOptions::default(), SETTINGS_KEYS, rec);
    for (key, field) in [
        ("max_queued", &mut out.max_queued),
        ("max_array_size", &mut out.max_array_size),
    ] {
        if let Some(x) = obj.get(key) {
            match lenient::as_i64(x).filter(|n| *n >= 1) {
                Some(n) => *field = usize::try_from(n).unwrap_or(usize::MAX),
                None => rec.nested_error(key, x, "must be a positive integer"),
            }
        }
    }
    if let Some(x) = obj.get("run_dir") {
        match x.as_str().map(PathBuf::from) {
            Some(dir) if dir.is_absolute() => out.run_dir = Some(dir),
            _ => rec.nested_error(
                "run_dir",
                x,
                "must be an absolute path (a directory compute nodes share)",
            ),
        }
    }
    out
}

/// Parses a job's `slurm` object over the settings' defaults.
pub fn parse_job_slurm(v: &Value, base: &SlurmOptions, rec: &mut ErrorRecord) -> SlurmOptions {
    match v.as_object() {
        Some(obj) => parse_options(obj, base, &[], rec),
        None => {
            rec.set_error(v, "must be an object of sbatch options");
            base.clone()
        }
    }
}

/// Parses the option keys of `obj` over `base`; a key neither in [`OPTION_KEYS`] nor
/// in `also` is an error naming it.
fn parse_options(
    obj: &Map<String, Value>,
    base: &SlurmOptions,
    also: &[&str],
    rec: &mut ErrorRecord,
) -> SlurmOptions {
    let mut out = base.clone();
    for (key, x) in obj {
        let text = || -> Option<String> {
            match x {
                Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        };
        let slot = match key.as_str() {
            "partition" => &mut out.partition,
            "account" => &mut out.account,
            "qos" => &mut out.qos,
            "time_limit" => &mut out.time_limit,
            "memory" => &mut out.memory,
            "gres" => &mut out.gres,
            "constraint" => &mut out.constraint,
            "cpus_per_task" => {
                match lenient::as_i64(x).and_then(|n| u32::try_from(n).ok().filter(|n| *n >= 1)) {
                    Some(n) => out.cpus_per_task = Some(n),
                    None => rec.nested_error(key, x, "must be a positive integer"),
                }
                continue;
            }
            "extra_args" => {
                match x.as_array() {
                    Some(items) if items.iter().all(Value::is_string) => {
                        out.extra_args = items
                            .iter()
                            .filter_map(|i| i.as_str().map(str::to_string))
                            .collect();
                    }
                    _ => rec.nested_error(key, x, "must be an array of strings (sbatch arguments)"),
                }
                continue;
            }
            other if also.contains(&other) => continue,
            _ => {
                rec.nested_error(
                    key,
                    x,
                    format!("unknown Slurm option (known: {})", OPTION_KEYS.join(", ")),
                );
                continue;
            }
        };
        match text() {
            Some(s) => *slot = Some(s),
            None => rec.nested_error(key, x, "must be a non-empty string"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn job_options_override_the_defaults_key_by_key() {
        let mut rec = ErrorRecord::default();
        let settings = parse_slurm_settings(
            &json!({"partition": "batch", "memory": "1G", "max_queued": 50, "extra_args": ["--nice=5"]}),
            &mut rec,
        );
        let job = parse_job_slurm(
            &json!({"memory": "4G", "cpus_per_task": 2}),
            &settings.defaults,
            &mut rec,
        );
        assert!(rec.is_empty());
        assert_eq!(settings.max_queued, 50);
        assert_eq!(job.partition.as_deref(), Some("batch"));
        assert_eq!(job.memory.as_deref(), Some("4G"));
        assert_eq!(job.cpus_per_task, Some(2));
        assert_eq!(job.extra_args, ["--nice=5"]);
    }

    #[test]
    fn bad_values_and_unknown_keys_are_named() {
        let mut rec = ErrorRecord::default();
        parse_job_slurm(
            &json!({"partiton": "x", "cpus_per_task": 0, "time_limit": ""}),
            &SlurmOptions::default(),
            &mut rec,
        );
        let keys: Vec<String> = rec.flatten().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["partiton", "cpus_per_task", "time_limit"]);
        let mut rec = ErrorRecord::default();
        parse_slurm_settings(&json!({"max_queued": 0, "run_dir": "relative"}), &mut rec);
        let keys: Vec<String> = rec.flatten().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["max_queued", "run_dir"]);
    }
}
