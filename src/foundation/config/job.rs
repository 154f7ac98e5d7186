//! `bistro_job->NAME` entries (bistro-scheduling §1.4). Parsing never fails the config:
//! each bad field keeps its inherited value and is recorded in the job's `errors`, and a
//! job with errors never runs.

use super::filters::FilterError;
use super::process::{
    parse_kill_orphans, parse_kill_subprocess, parse_task_subprocess, parse_task_timeout,
};
use super::slurm::{parse_job_slurm, SlurmOptions};
use super::{ErrorRecord, JobFilter, KillRequest, Levels, Settings, TaskSubprocess};
use crate::foundation::sanitize::{lenient, MAX_FILE_NAME_BYTES};
use crate::foundation::status::BackoffSettings;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};

/// The most a job's `config` may take as JSON: the task gets it inside one argument
/// (with its other fields), and Linux limits one argument to 128 KiB
/// (`MAX_ARG_STRLEN`); the rest is room for the node, status and resources.
pub const MAX_TASK_CONFIG_BYTES: usize = 96 << 10;

/// The length of `value` written as compact JSON.
fn json_len(value: &Value) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |v| v.len())
}

/// A job as configured.
#[derive(Debug, Clone)]
pub struct Job {
    /// The name after `bistro_job->`.
    pub name: String,
    /// Who is responsible (required).
    pub owner: String,
    /// Disabled jobs get no new tasks.
    pub enabled: bool,
    /// The level whose nodes become this job's tasks.
    pub level_for_tasks: usize,
    /// Weight for the priority policies.
    pub priority: f64,
    /// Slots needed of each resource (indexed like `ResourceDefs::names`).
    pub resources: Vec<i64>,
    /// Opaque config passed to tasks.
    pub config: Value,
    /// Filters by level index.
    pub filters: BTreeMap<usize, JobFilter>,
    /// Jobs that must be `done` on the same node name first.
    pub depends_on: Vec<String>,
    /// Jobs that must be `done` on every one of their nodes first.
    pub run_only_after_all_nodes_are_done_for: Vec<String>,
    /// Backoff after failures.
    pub backoff: BackoffSettings,
    /// Restrict remote placement to the ancestor at this level.
    pub level_for_host_placement: Option<usize>,
    /// Restrict remote placement to this host.
    pub host_placement: String,
    /// Kill orphaned tasks after this many ms (None: never). Parsed; orphan killing
    /// is not implemented yet.
    pub kill_orphan_tasks_after_ms: Option<i64>,
    /// Task process options.
    pub task_subprocess: TaskSubprocess,
    /// Kill sequence.
    pub kill_subprocess: KillRequest,
    /// The effective task timeout in seconds: the job's `task_timeout_sec`, else the
    /// settings' (None: no limit). A task still running this long after it started is
    /// killed with `kill_subprocess` and recorded as `error_backoff` "timed out after
    /// N s". Every runner honours it; a batch runner passes it as its time limit.
    pub task_timeout_sec: Option<u64>,
    /// Command to run instead of `--worker-command`.
    pub command: Vec<String>,
    /// sbatch options for `--runner slurm` (`slurm` over `bistro_settings.slurm`).
    pub slurm: SlurmOptions,
    /// Informational timestamps and compare-and-swap version.
    pub create_time: i64,
    /// See `create_time`.
    pub modify_time: i64,
    /// See `create_time`.
    pub version_id: i64,
    /// Bistro's error record (JSON) when the job has problems.
    pub errors: Option<Value>,
}

impl Job {
    /// Enabled and valid.
    pub fn can_run(&self) -> bool {
        self.enabled && self.errors.is_none()
    }

    /// One `(key, message)` per problem, the key inside the job entry (empty for the
    /// job as a whole); empty for a valid job.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut flat = Vec::new();
        if let Some(errors) = &self.errors {
            super::flatten_json(errors, "", &mut flat);
        }
        flat
    }

    /// The problems as `key: message` lines (just `message` for the job as a whole).
    pub fn problem_lines(&self) -> Vec<String> {
        self.problems()
            .into_iter()
            .map(|(key, message)| {
                if key.is_empty() {
                    message
                } else {
                    format!("{key}: {message}")
                }
            })
            .collect()
    }

    /// Parses one job entry over the settings' defaults. A job whose name cannot be a
    /// directory, or whose `config` cannot fit in a task's argument, is kept with an
    /// error and never runs.
    pub fn parse(name: &str, v: &Value, settings: &Settings) -> Job {
        let mut rec = ErrorRecord::default();
        let levels = &settings.levels;
        let defs = &settings.resources;
        let get = |key: &str| v.get(key);
        let owner = match get("owner") {
            None => {
                rec.missing_key(v, "owner");
                String::new()
            }
            Some(x) => lenient::as_string(x).unwrap_or_else(|| {
                rec.nested_error("owner", x, "must be a string");
                String::new()
            }),
        };
        let enabled = get("enabled").is_none_or(|x| {
            lenient::as_bool(x).unwrap_or_else(|| {
                rec.nested_error("enabled", x, "must be a boolean");
                true
            })
        });
        let level_named = |key: &str, rec: &mut ErrorRecord| -> Option<Option<usize>> {
            let x = get(key)?;
            Some(x.as_str().and_then(|s| levels.id(s)).or_else(|| {
                rec.nested_error(key, x, "Unknown identifier: no such level");
                None
            }))
        };
        let level_for_tasks = level_named("level_for_tasks", &mut rec)
            .flatten()
            .unwrap_or(settings.level_for_tasks);
        let priority = get("priority").map_or(1.0, |x| {
            lenient::as_f64(x)
                .filter(|p| p.is_finite())
                .unwrap_or_else(|| {
                    rec.nested_error("priority", x, "must be a number");
                    1.0
                })
        });
        let mut resources = defs.defaults.clone();
        if let Some(x) = get("resources") {
            match x.as_object() {
                None => rec.nested_error("resources", x, "must be an object of {RESOURCE: amount}"),
                Some(obj) => {
                    for (res, amount) in obj {
                        match (defs.id(res), lenient::as_i64(amount)) {
                            (None, _) => rec.nested("resources").nested_error(
                                res.as_str(),
                                amount,
                                "Unknown identifier: no such resource",
                            ),
                            (Some(_), None) => rec.nested("resources").nested_error(
                                res.as_str(),
                                amount,
                                "must be an integer",
                            ),
                            (Some(_), Some(a)) if a < 0 => rec.nested("resources").nested_error(
                                res.as_str(),
                                amount,
                                "must not be negative",
                            ),
                            (Some(id), Some(a)) => resources[id] = a,
                        }
                    }
                }
            }
        }
        let escaped = crate::foundation::sanitize::escape_component(name).len();
        if escaped > MAX_FILE_NAME_BYTES {
            rec.nested_error(
                "name",
                &Value::from(format!("{escaped} bytes")),
                format!("the job's working directory would be named {escaped} bytes long (once escaped); a file system holds at most {MAX_FILE_NAME_BYTES}: shorten the name"),
            );
        }
        let config = match get("config") {
            None => Value::Object(Map::new()),
            Some(x @ Value::Object(_)) if json_len(x) > MAX_TASK_CONFIG_BYTES => {
                rec.nested_error(
                    "config",
                    &Value::from(format!("{} bytes", json_len(x))),
                    format!("is too large for a task's command line (at most {} KiB as JSON, which Linux allows one argument): keep large data in a file and put its path in the config", MAX_TASK_CONFIG_BYTES >> 10),
                );
                Value::Object(Map::new())
            }
            Some(x @ Value::Object(_)) => x.clone(),
            Some(x) => {
                rec.nested_error("config", x, "must be an object");
                Value::Object(Map::new())
            }
        };
        let mut filters = BTreeMap::new();
        if let Some(x) = get("filters") {
            match x.as_object() {
                None => rec.nested_error("filters", x, "must be an object of {LEVEL: filter}"),
                Some(obj) => {
                    for (level_name, spec) in obj {
                        let Some(level) = levels.id(level_name) else {
                            rec.nested("filters").nested_error(
                                level_name.as_str(),
                                spec,
                                "Unknown identifier: no such level",
                            );
                            continue;
                        };
                        match JobFilter::parse(spec) {
                            Ok(f) if f.is_empty() => {}
                            Ok(f) => {
                                filters.insert(level, f);
                            }
                            Err(FilterError(key, problem)) => {
                                let msg = problem.to_string();
                                let at = rec.nested("filters").nested(level_name.as_str());
                                if key.is_empty() {
                                    at.set_error(spec, msg);
                                } else {
                                    at.nested_error(key.as_str(), &spec[key.as_str()], msg);
                                }
                            }
                        }
                    }
                }
            }
        }
        let job_list = |key: &str, rec: &mut ErrorRecord| -> Vec<String> {
            match get(key) {
                None => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| {
                        lenient::as_string(item).or_else(|| {
                            rec.nested(key)
                                .nested_error(i.to_string(), item, "must be a job name");
                            None
                        })
                    })
                    .collect(),
                Some(x) => {
                    rec.nested_error(key, x, "must be an array of job names");
                    Vec::new()
                }
            }
        };
        let depends_on = job_list("depends_on", &mut rec);
        let run_only_after_all_nodes_are_done_for =
            job_list("run_only_after_all_nodes_are_done_for", &mut rec);
        let backoff = get("backoff").map_or_else(
            || settings.backoff.clone(),
            |x| {
                BackoffSettings::parse(x).unwrap_or_else(|e| {
                    rec.nested_error("backoff", x, e.to_string());
                    settings.backoff.clone()
                })
            },
        );
        let level_for_host_placement = level_named("level_for_host_placement", &mut rec).flatten();
        let host_placement = get("host_placement").map_or_else(String::new, |x| {
            lenient::as_string(x).unwrap_or_else(|| {
                rec.nested_error("host_placement", x, "must be a string");
                String::new()
            })
        });
        let kill_orphan_tasks_after_ms =
            get("kill_orphan_tasks_after_sec").map_or(settings.kill_orphan_tasks_after_ms, |x| {
                parse_kill_orphans(x).unwrap_or_else(|e| {
                    rec.nested_error("kill_orphan_tasks_after_sec", x, e.to_string());
                    settings.kill_orphan_tasks_after_ms
                })
            });
        let task_subprocess = get("task_subprocess").map_or_else(
            || settings.task_subprocess.clone(),
            |x| parse_task_subprocess(x, &settings.task_subprocess, rec.nested("task_subprocess")),
        );
        let kill_subprocess = get("kill_subprocess").map_or(settings.kill_subprocess, |x| {
            parse_kill_subprocess(x, &settings.kill_subprocess, rec.nested("kill_subprocess"))
        });
        let task_timeout_sec = get("task_timeout_sec").map_or(settings.task_timeout_sec, |x| {
            parse_task_timeout(x).unwrap_or_else(|e| {
                rec.nested_error("task_timeout_sec", x, e.to_string());
                settings.task_timeout_sec
            })
        });
        let slurm = get("slurm").map_or_else(
            || settings.slurm.defaults.clone(),
            |x| parse_job_slurm(x, &settings.slurm.defaults, rec.nested("slurm")),
        );
        let command = match get("command") {
            None => Vec::new(),
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
            Some(x) => {
                rec.nested_error("command", x, "must be an array of strings");
                Vec::new()
            }
        };
        let mut int = |key: &str, default: i64| {
            get(key).map_or(default, |x| {
                lenient::as_i64(x).unwrap_or_else(|| {
                    rec.nested_error(key, x, "must be an integer");
                    default
                })
            })
        };
        let create_time = int("create_time", 0);
        let modify_time = int("modify_time", 0);
        let version_id = int("version_id", -1);
        let errors = match (get("errors"), rec.is_empty()) {
            (None, true) => None,
            (None, false) => Some(rec.to_json()),
            (Some(old), true) => (!old.as_object().is_some_and(Map::is_empty)).then(|| old.clone()),
            (Some(old), false) => {
                rec.nested_error("errors", old, "Pre-existing errors");
                Some(rec.to_json())
            }
        };
        Job {
            name: name.to_string(),
            owner,
            enabled,
            level_for_tasks,
            priority,
            resources,
            config,
            filters,
            depends_on,
            run_only_after_all_nodes_are_done_for,
            backoff,
            level_for_host_placement,
            host_placement,
            kill_orphan_tasks_after_ms,
            task_subprocess,
            kill_subprocess,
            task_timeout_sec,
            command,
            slurm,
            create_time,
            modify_time,
            version_id,
            errors,
        }
    }

    /// Adds a problem found after parsing, at `path` in the job's error record,
    /// keeping every problem already recorded there.
    fn add_error(&mut self, path: &[String], value: &Value, message: &str) {
        let mut errors = match self.errors.take() {
            None => Value::Object(Map::new()),
            Some(record @ Value::Object(_)) => record,
            Some(other) => {
                serde_json::json!({"nested": {"errors": {"value": other, "error": "Pre-existing errors"}}})
            }
        };
        let mut at = &mut errors;
        for key in path {
            let nested = at
                .as_object_mut()
                .expect("error records are objects")
                .entry("nested")
                .or_insert_with(|| Value::Object(Map::new()));
            at = nested
                .as_object_mut()
                .expect("nested is an object")
                .entry(key.as_str())
                .or_insert_with(|| Value::Object(Map::new()));
        }
        let leaf = at.as_object_mut().expect("error records are objects");
        leaf.insert("value".into(), value.clone());
        let combined = match leaf.get("error").and_then(Value::as_str) {
            Some(before) => format!("{before}; {message}"),
            None => message.to_string(),
        };
        leaf.insert("error".into(), Value::from(combined));
        self.errors = Some(errors);
    }
}

/// Marks jobs whose `depends_on` or `run_only_after_all_nodes_are_done_for` name a
/// missing job, themselves, or a cycle: they become invalid instead of never running
/// silently (Bistro reports nothing and may even crash).
pub fn check_dependencies(jobs: &mut [Job], levels: &Levels) {
    let index: HashMap<String, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.name.clone(), i))
        .collect();
    let mut problems: Vec<(usize, Vec<String>, Value, String)> = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        for (key, list) in [
            ("depends_on", &job.depends_on),
            (
                "run_only_after_all_nodes_are_done_for",
                &job.run_only_after_all_nodes_are_done_for,
            ),
        ] {
            for (n, dep) in list.iter().enumerate() {
                let at = vec![key.to_string(), n.to_string()];
                if dep == &job.name {
                    problems.push((
                        i,
                        at,
                        Value::from(dep.as_str()),
                        format!("job {dep:?} cannot depend on itself"),
                    ));
                } else if !index.contains_key(dep) {
                    problems.push((
                        i,
                        at,
                        Value::from(dep.as_str()),
                        format!("no job named {dep:?} in the config"),
                    ));
                } else if key == "depends_on"
                    && jobs[index[dep]].level_for_tasks != job.level_for_tasks
                {
                    // depends_on waits for the dependency's task on the same node.
                    problems.push((
                        i,
                        at,
                        Value::from(dep.as_str()),
                        format!(
                            "job {dep:?} runs on level {}, not on {}: it has no task on this job's nodes, so this job would never run (run_only_after_all_nodes_are_done_for waits for a whole job on any level)",
                            levels.name(jobs[index[dep]].level_for_tasks),
                            levels.name(job.level_for_tasks)
                        ),
                    ));
                }
            }
        }
    }
    // Cycles through depends_on (self-loops are reported above).
    let mut state = vec![0u8; jobs.len()];
    fn visit(
        i: usize,
        jobs: &[Job],
        index: &HashMap<String, usize>,
        state: &mut [u8],
        stack: &mut Vec<usize>,
        cyclic: &mut Vec<usize>,
    ) {
        state[i] = 1;
        stack.push(i);
        for dep in jobs[i]
            .depends_on
            .iter()
            .chain(&jobs[i].run_only_after_all_nodes_are_done_for)
        {
            let Some(&d) = index.get(dep) else { continue };
            if d == i {
                continue;
            }
            if state[d] == 1 {
                let from = stack.iter().position(|&s| s == d).unwrap_or(0);
                cyclic.extend_from_slice(&stack[from..]);
            } else if state[d] == 0 {
                visit(d, jobs, index, state, stack, cyclic);
            }
        }
        stack.pop();
        state[i] = 2;
    }
    let mut cyclic = Vec::new();
    for i in 0..jobs.len() {
        if state[i] == 0 {
            visit(i, jobs, &index, &mut state, &mut Vec::new(), &mut cyclic);
        }
    }
    cyclic.sort_unstable();
    cyclic.dedup();
    let in_cycle: Vec<&str> = cyclic.iter().map(|&i| jobs[i].name.as_str()).collect();
    // Each edge into the cycle is named by its own key and index.
    for &i in &cyclic {
        let job = &jobs[i];
        for (key, list) in [
            ("depends_on", &job.depends_on),
            (
                "run_only_after_all_nodes_are_done_for",
                &job.run_only_after_all_nodes_are_done_for,
            ),
        ] {
            for (n, dep) in list.iter().enumerate() {
                if dep != &job.name && in_cycle.contains(&dep.as_str()) {
                    problems.push((
                        i,
                        vec![key.to_string(), n.to_string()],
                        Value::from(dep.as_str()),
                        format!("dependency cycle between jobs {}", in_cycle.join(", ")),
                    ));
                }
            }
        }
    }
    for (i, path, value, message) in problems {
        jobs[i].add_error(&path, &value, &message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> Settings {
        Settings::parse(&json!({
            "nodes": {"levels": ["host", "db"]},
            "resources": {"host": {"host_concurrency": {"default": 1, "limit": 2}}},
            "backoff": [1, 2, "fail"]
        }))
        .unwrap()
    }

    #[test]
    fn a_full_job_inherits_and_overrides() {
        let s = settings();
        let j = Job::parse(
            "j",
            &json!({"owner": "me", "enabled": "false", "priority": 0.5, "resources": {"host_concurrency": 2},
                    "config": {"k": 1}, "filters": {"db": {"whitelist_regex": "db1"}}, "command": ["sh", "-c"],
                    "kill_orphan_tasks_after_sec": 0.37, "level_for_tasks": "host"}),
            &s,
        );
        assert_eq!(j.errors, None);
        assert!(!j.can_run());
        assert_eq!(j.resources, vec![2]);
        assert_eq!(j.priority, 0.5);
        assert_eq!(j.kill_orphan_tasks_after_ms, Some(370));
        assert_eq!(s.levels.name(j.level_for_tasks), "host");
        assert_eq!(j.backoff, s.backoff);
        assert!(j.filters.contains_key(&s.levels.id("db").unwrap()));
    }

    #[test]
    fn the_task_timeout_is_the_jobs_else_the_settings_and_zero_lifts_it() {
        let mut v = json!({"nodes": {"levels": ["host"]}, "resources": {}});
        assert_eq!(Settings::parse(&v).unwrap().task_timeout_sec, None);
        v["task_timeout_sec"] = json!(600);
        let s = Settings::parse(&v).unwrap();
        assert_eq!(s.task_timeout_sec, Some(600));
        let timeout = |job: Value| Job::parse("j", &job, &s).task_timeout_sec;
        assert_eq!(timeout(json!({"owner": "o"})), Some(600));
        assert_eq!(
            timeout(json!({"owner": "o", "task_timeout_sec": "30"})),
            Some(30)
        );
        assert_eq!(timeout(json!({"owner": "o", "task_timeout_sec": 0})), None);
        assert_eq!(
            timeout(json!({"owner": "o", "task_timeout_sec": null})),
            None
        );
        let bad = Job::parse("j", &json!({"owner": "o", "task_timeout_sec": -5}), &s);
        assert_eq!(
            bad.problem_lines(),
            vec![
                "task_timeout_sec: must be a whole number of seconds (0 or null for no timeout) (value: -5)"
            ]
        );
        v["task_timeout_sec"] = json!(1.5);
        let errors = Settings::parse(&v).unwrap_err().flatten();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].0, "task_timeout_sec");
    }

    #[test]
    fn errors_are_recorded_in_bistro_shape_and_keep_valid_parts() {
        let s = settings();
        let j = Job::parse(
            "j",
            &json!({"depends_on": ["a", "b", []], "version_id": "x", "priority": 3}),
            &s,
        );
        let errors = j.errors.clone().unwrap();
        assert_eq!(
            errors["key_errors"]["owner"],
            "Couldn't find key owner in dynamic object"
        );
        assert!(errors["nested"]["depends_on"]["nested"]["2"]["error"].is_string());
        assert!(errors["nested"]["version_id"]["error"].is_string());
        assert_eq!(j.depends_on, vec!["a", "b"]);
        assert_eq!(j.priority, 3.0);
        assert!(!j.can_run());
    }

    #[test]
    fn pre_existing_errors_keep_the_job_invalid_until_removed() {
        let s = settings();
        let old = json!({"error": "x"});
        assert_eq!(
            Job::parse("j", &json!({"owner": "o", "errors": old}), &s).errors,
            Some(old.clone())
        );
        assert_eq!(
            Job::parse("j", &json!({"owner": "o", "errors": {}}), &s).errors,
            None
        );
        let nested = Job::parse("j", &json!({"errors": old}), &s).errors.unwrap();
        assert_eq!(nested["nested"]["errors"]["error"], "Pre-existing errors");
    }

    #[test]
    fn unknown_levels_and_resources_are_job_errors() {
        let s = settings();
        let j = Job::parse(
            "j",
            &json!({"owner": "o", "filters": {"invalid_level": {}}}),
            &s,
        );
        assert!(j.errors.unwrap()["nested"]["filters"]["nested"]["invalid_level"].is_object());
        let j = Job::parse("j", &json!({"owner": "o", "resources": {"nope": 1}}), &s);
        assert!(j.errors.is_some());
        let j = Job::parse(
            "j",
            &json!({"owner": "o", "level_for_host_placement": "nope"}),
            &s,
        );
        assert!(j.errors.is_some());
    }

    /// Bistro's test_job HandleAll: what a job inherits from the settings and what it
    /// overrides.
    #[test]
    fn a_job_inherits_process_kill_and_orphan_settings_and_overrides_them_field_by_field() {
        let settings_with = |extra: Value| {
            let mut v = json!({"nodes": {"levels": ["level1", "level2"]}, "resources": {}});
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            Settings::parse(&v).unwrap()
        };
        let s = settings_with(json!({}));
        let j = Job::parse("j", &json!({"owner": "o"}), &s);
        assert_eq!(j.kill_orphan_tasks_after_ms, None);
        assert!(j.command.is_empty());
        assert_eq!(s.levels.name(j.level_for_tasks), "level2");
        let never = settings_with(json!({"kill_orphan_tasks_after_sec": false}));
        let j = Job::parse("j", &json!({"owner": "o"}), &never);
        assert_eq!(j.kill_orphan_tasks_after_ms, None);
        let at_once = settings_with(json!({"kill_orphan_tasks_after_sec": true}));
        let j = Job::parse("j", &json!({"owner": "o"}), &at_once);
        assert_eq!(j.kill_orphan_tasks_after_ms, Some(0));

        let s = settings_with(json!({
            "task_subprocess": {"poll_ms": 111, "cgroups": {"subsystems": ["cpu"], "slice": "s"}},
            "kill_subprocess": {"method": "term", "kill_wait_ms": 987},
            "level_for_tasks": "level1",
        }));
        let j = Job::parse("j", &json!({"owner": "o"}), &s);
        assert_eq!(j.task_subprocess, s.task_subprocess);
        assert_eq!(j.kill_subprocess, s.kill_subprocess);
        assert_eq!(s.levels.name(j.level_for_tasks), "level1");
        let j = Job::parse(
            "j",
            &json!({"owner": "o",
                    "task_subprocess": {"max_log_lines_per_poll_interval": 5,
                                        "cgroups": {"subsystems": ["memory"]}},
                    "kill_subprocess": {"method": "kill"},
                    "command": ["/bin/sh", "-c", "x"],
                    "level_for_tasks": "instance",
                    "depends_on": ["job1", "job2"],
                    "version_id": 7}),
            &s,
        );
        assert_eq!(j.errors, None);
        assert_eq!(j.task_subprocess.poll_ms, 111, "inherited");
        assert_eq!(j.task_subprocess.max_log_lines_per_poll_interval, 5);
        assert_eq!(
            j.task_subprocess.cgroups,
            json!({"root": "", "slice": "s", "subsystems": ["memory"], "kill_without_freezer": false}),
            "the job's subsystems replace the settings' list"
        );
        assert_eq!(
            j.kill_subprocess,
            KillRequest {
                method: super::super::KillMethod::Kill,
                kill_wait_ms: 987
            }
        );
        assert_eq!(j.command, vec!["/bin/sh", "-c", "x"]);
        assert_eq!(s.levels.name(j.level_for_tasks), "instance");
        assert_eq!(j.depends_on, vec!["job1", "job2"]);
        assert_eq!(j.version_id, 7);

        let bad = Job::parse("j", &json!({"owner": "o", "level_for_tasks": "nope"}), &s);
        assert!(bad.errors.unwrap()["nested"]["level_for_tasks"].is_object());
    }

    #[test]
    fn host_placement_keys_are_valid_alone_or_together_and_unknown_levels_are_errors() {
        let s = settings();
        for job in [
            json!({"owner": "o", "level_for_host_placement": "host"}),
            json!({"owner": "o", "host_placement": "host2"}),
            json!({"owner": "o", "level_for_host_placement": "host", "host_placement": "host2"}),
        ] {
            let j = Job::parse("j", &job, &s);
            assert_eq!(j.errors, None, "{job}");
        }
        let j = Job::parse(
            "j",
            &json!({"owner": "o", "level_for_host_placement": "nope"}),
            &s,
        );
        let error = &j.errors.unwrap()["nested"]["level_for_host_placement"];
        assert!(
            error["error"]
                .as_str()
                .unwrap()
                .contains("Unknown identifier"),
            "{error}"
        );
    }

    #[test]
    fn every_dependency_problem_is_kept_even_over_odd_pre_existing_errors() {
        let s = settings();
        let mut jobs = vec![
            Job::parse("a", &json!({"owner": "o", "depends_on": ["m1", "m2"]}), &s),
            Job::parse(
                "b",
                &json!({"owner": "o", "depends_on": ["m3"], "errors": "oops"}),
                &s,
            ),
        ];
        check_dependencies(&mut jobs, &settings().levels);
        let a = jobs[0].errors.clone().unwrap();
        assert!(a["nested"]["depends_on"]["nested"]["0"]["error"]
            .as_str()
            .unwrap()
            .contains("m1"));
        assert!(a["nested"]["depends_on"]["nested"]["1"]["error"]
            .as_str()
            .unwrap()
            .contains("m2"));
        let b = jobs[1].errors.clone().unwrap();
        assert_eq!(b["nested"]["errors"]["value"], "oops");
        assert!(b["nested"]["depends_on"]["nested"]["0"]["error"]
            .as_str()
            .unwrap()
            .contains("m3"));
    }

    #[test]
    fn missing_self_and_cyclic_dependencies_invalidate_jobs() {
        let s = settings();
        let mut jobs = vec![
            Job::parse("a", &json!({"owner": "o", "depends_on": ["b"]}), &s),
            Job::parse("b", &json!({"owner": "o", "depends_on": ["a"]}), &s),
            Job::parse("c", &json!({"owner": "o", "depends_on": ["zzz"]}), &s),
            Job::parse("d", &json!({"owner": "o", "depends_on": ["d"]}), &s),
            Job::parse("e", &json!({"owner": "o", "depends_on": ["c"]}), &s),
        ];
        check_dependencies(&mut jobs, &settings().levels);
        let invalid: Vec<&str> = jobs
            .iter()
            .filter(|j| j.errors.is_some())
            .map(|j| j.name.as_str())
            .collect();
        assert_eq!(invalid, vec!["a", "b", "c", "d"]);
    }

    #[test]
    fn depends_on_a_job_of_another_level_is_a_job_error_but_an_all_nodes_gate_is_not() {
        let s = settings();
        let mut jobs = vec![
            Job::parse(
                "hosts",
                &json!({"owner": "o", "level_for_tasks": "host"}),
                &s,
            ),
            Job::parse(
                "per_db",
                &json!({"owner": "o", "depends_on": ["hosts"]}),
                &s,
            ),
            Job::parse(
                "after_hosts",
                &json!({"owner": "o", "run_only_after_all_nodes_are_done_for": ["hosts"]}),
                &s,
            ),
        ];
        check_dependencies(&mut jobs, &s.levels);
        let errors = serde_json::to_string(&jobs[1].errors).unwrap();
        assert!(errors.contains("runs on level host, not on db"), "{errors}");
        assert!(jobs[0].errors.is_none() && jobs[2].errors.is_none());
    }

    #[test]
    fn a_cycle_is_reported_at_the_key_of_each_edge_that_closes_it() {
        let s = settings();
        let mut jobs = vec![
            Job::parse("cyc1", &json!({"owner": "o", "depends_on": ["cyc2"]}), &s),
            Job::parse(
                "cyc2",
                &json!({"owner": "o", "depends_on": [],
                        "run_only_after_all_nodes_are_done_for": ["cyc1"]}),
                &s,
            ),
        ];
        check_dependencies(&mut jobs, &settings().levels);
        let errors = |j: &Job| serde_json::to_string(&j.errors).unwrap();
        assert!(
            errors(&jobs[0]).contains("\"depends_on\"") && errors(&jobs[0]).contains("cycle"),
            "{}",
            errors(&jobs[0])
        );
        let second = errors(&jobs[1]);
        assert!(
            second.contains("run_only_after_all_nodes_are_done_for")
                && second.contains("cyc1")
                && second.contains("cycle"),
            "{second}"
        );
    }
}
