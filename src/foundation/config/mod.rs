//! The scheduler's configuration: one JSON file with `bistro_settings` and
//! `bistro_job->NAME` entries (bistro-scheduling §1).
//!
//! Parsing is two-step: `serde_json` gives a `Value` (with line and column on syntax
//! errors), then [`settings`] and [`job`] build validated types, collecting every
//! problem. A bad settings block rejects the whole file; a bad job is kept, carries its
//! `errors` record and never runs.

mod errors;
pub mod filters;
pub mod job;
pub mod known_keys;
mod loader;
pub mod node_shape;
pub mod process;
pub mod resource_settings;
pub mod settings;
pub mod slurm;

pub use errors::{flatten_json, ErrorRecord};
pub use filters::JobFilter;
pub use job::Job;
pub use loader::{ConfigLoadError, FileConfigLoader, LoadedConfig};
pub use node_shape::{
    no_prefs_check, Levels, NodeOrder, NodeSourceSpec, PrefsCheck, PrefsError, INSTANCE_LEVEL,
    WORKER_LEVEL,
};
pub use process::{KillMethod, KillRequest, TaskSubprocess};
pub use resource_settings::{LevelResource, ResourceDefs};
pub use settings::{PolicyName, Settings};
pub use slurm::{SlurmOptions, SlurmSettings};

use serde_json::Value;
use std::fmt;

/// The prefix that marks a job entry in the config file.
pub const JOB_PREFIX: &str = "bistro_job->";

/// A validated configuration: settings and jobs (sorted by name).
#[derive(Debug, Clone)]
pub struct Config {
    /// `bistro_settings`.
    pub settings: Settings,
    /// Every `bistro_job->NAME` entry, valid or not, sorted by name.
    pub jobs: Vec<Job>,
    /// Keys of the file that nothing reads, each with the closest known key
    /// ([`known_keys`]): for `bistro check` to warn of.
    pub unknown_keys: Vec<String>,
}

impl Config {
    /// Parses a config file's text without checking node source prefs: for tests and
    /// benchmarks; what loads a user's config passes `nodes::check_prefs` to
    /// [`Config::parse_with`].
    pub fn parse_unchecked(text: &str) -> Result<Config, ConfigError> {
        Self::parse_with(text, no_prefs_check)
    }

    /// Parses a config file's text, checking node source prefs with `check`.
    pub fn parse_with(text: &str, check: PrefsCheck) -> Result<Config, ConfigError> {
        let value: Value = serde_json::from_str(text).map_err(|e| ConfigError::Json {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        Self::from_value_with(&value, check)
    }

    /// Builds a config from parsed JSON without checking node source prefs: for tests
    /// and benchmarks, like [`Config::parse_unchecked`].
    pub fn from_value_unchecked(value: &Value) -> Result<Config, ConfigError> {
        Self::from_value_with(value, no_prefs_check)
    }

    /// Builds a config from parsed JSON, checking node source prefs with `check`.
    pub fn from_value_with(value: &Value, check: PrefsCheck) -> Result<Config, ConfigError> {
        let obj = value.as_object().ok_or(ConfigError::NotAnObject)?;
        let settings_value = obj
            .get("bistro_settings")
            .filter(|v| v.is_object())
            .ok_or(ConfigError::MissingSettings)?;
        let settings =
            Settings::parse_with(settings_value, check).map_err(ConfigError::Settings)?;
        let mut jobs: Vec<Job> = obj
            .iter()
            .filter_map(|(key, v)| Some((key.strip_prefix(JOB_PREFIX)?, v)))
            .filter(|(_, v)| v.is_object())
            .map(|(name, v)| Job::parse(name, v, &settings))
            .collect();
        jobs.sort_by(|a, b| a.name.cmp(&b.name));
        job::check_dependencies(&mut jobs, &settings.levels);
        Ok(Config {
            settings,
            jobs,
            unknown_keys: known_keys::unknown_key_warnings(value),
        })
    }

    /// A job's index in `jobs`, by name.
    pub fn job_index(&self, name: &str) -> Option<usize> {
        self.jobs
            .binary_search_by(|j| j.name.as_str().cmp(name))
            .ok()
    }

    /// A job by name.
    pub fn job(&self, name: &str) -> Option<&Job> {
        self.jobs
            .binary_search_by(|j| j.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.jobs[i])
    }

    /// One `(where, message)` per problem in the jobs, for `check` and `status`.
    pub fn job_problems(&self) -> Vec<(String, String)> {
        self.jobs
            .iter()
            .flat_map(|job| {
                job.problems().into_iter().map(|(key, message)| {
                    let at = if key.is_empty() {
                        format!("{JOB_PREFIX}{}", job.name)
                    } else {
                        format!("{JOB_PREFIX}{}: {key}", job.name)
                    };
                    (at, message)
                })
            })
            .collect()
    }
}

/// Why a config file could not be used.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigError {
    /// Not valid JSON (strict: no comments, no trailing commas).
    Json {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// serde_json's description.
        message: String,
    },
    /// The top level is not a JSON object.
    NotAnObject,
    /// `bistro_settings` is missing or not an object.
    MissingSettings,
    /// `bistro_settings` has problems; the whole config is rejected.
    Settings(Box<ErrorRecord>),
}

impl ConfigError {
    /// One `(where, message)` per problem.
    pub fn problems(&self) -> Vec<(String, String)> {
        match self {
            ConfigError::Settings(record) => record
                .flatten()
                .into_iter()
                .map(|(key, msg)| {
                    (
                        if key.is_empty() {
                            "bistro_settings".into()
                        } else {
                            format!("bistro_settings.{key}")
                        },
                        msg,
                    )
                })
                .collect(),
            other => vec![(String::new(), other.to_string())],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Json {
                line,
                column,
                message,
            } => {
                write!(f, "{line}:{column}: invalid JSON: {message}")
            }
            ConfigError::NotAnObject => write!(f, "the config must be a JSON object"),
            ConfigError::MissingSettings => {
                write!(f, "Missing bistro_settings property (it must be an object)")
            }
            ConfigError::Settings(_) => {
                let problems: Vec<String> = self
                    .problems()
                    .into_iter()
                    .map(|(key, msg)| format!("{key}: {msg}"))
                    .collect();
                write!(f, "invalid bistro_settings: {}", problems.join("; "))
            }
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Every key the config's objects know, so arbitrary values land on them.
    const KEYS: &[&str] = &[
        "bistro_settings",
        "bistro_job->j",
        "enabled",
        "working_wait",
        "idle_wait",
        "scheduler",
        "backoff",
        "nodes",
        "levels",
        "node_sources",
        "source",
        "prefs",
        "level_for_tasks",
        "resources",
        "instance",
        "limit",
        "default",
        "weight",
        "worker_resources_override",
        "physical_resources",
        "kill_orphan_tasks_after_sec",
        "task_subprocess",
        "kill_subprocess",
        "owner",
        "priority",
        "config",
        "filters",
        "depends_on",
        "command",
        "whitelist",
        "whitelist_regex",
        "blacklist",
        "host_placement",
        "level_for_host_placement",
    ];

    proptest! {
        #![proptest_config(crate::foundation::fuzz::config(256))]

        #[test]
        fn arbitrary_text_never_panics_the_config_parser(text in ".{0,400}") {
            let _ = Config::parse_unchecked(&text);
        }

        #[test]
        fn fuzz_any_json_config_is_accepted_or_reported_with_where(
            settings in crate::foundation::fuzz::json(KEYS),
            job in crate::foundation::fuzz::json(KEYS),
        ) {
            let v = serde_json::json!({
                "bistro_settings": settings,
                "bistro_job->j": job,
                "bistro_job->ok": {"owner": "me"},
            });
            let _ = known_keys::unknown_key_warnings(&v);
            match Config::from_value_unchecked(&v) {
                Ok(c) => {
                    let ok = c.job("ok").expect("a valid job is kept");
                    prop_assert!(ok.errors.is_none() || c.settings.resources.names.is_empty());
                    for r in c.settings.resources.by_level.iter().flatten() {
                        prop_assert!(r.limit >= 0 && r.weight >= 0);
                    }
                    prop_assert!(c.settings.resources.defaults.iter().all(|d| *d >= 0));
                    for j in &c.jobs {
                        prop_assert!(j.errors.is_some() || j.resources.iter().all(|a| *a >= 0));
                    }
                }
                Err(e) => prop_assert!(!e.problems().is_empty() || matches!(e, ConfigError::MissingSettings)),
            }
        }

        #[test]
        fn arbitrary_settings_values_are_accepted_or_reported(
            key in prop::sample::select(vec!["enabled", "working_wait", "scheduler", "backoff", "nodes", "level_for_tasks",
                                             "resources", "kill_orphan_tasks_after_sec", "task_subprocess", "kill_subprocess"]),
            value in prop_oneof![Just(serde_json::json!(null)), any::<bool>().prop_map(serde_json::Value::from),
                                 any::<i64>().prop_map(serde_json::Value::from), ".{0,10}".prop_map(serde_json::Value::from),
                                 Just(serde_json::json!([])), Just(serde_json::json!({}))],
        ) {
            let mut v = serde_json::json!({"bistro_settings": {"nodes": {"levels": ["a"]}, "resources": {}},
                                           "bistro_job->j": {"owner": "o"}});
            v["bistro_settings"][key] = value;
            match Config::from_value_unchecked(&v) {
                Ok(c) => prop_assert_eq!(c.jobs.len(), 1),
                Err(e) => prop_assert!(!e.problems().is_empty()),
            }
        }
    }
}
