//! `bistro_settings` (bistro-scheduling §1.3): every key with its default. One bad key
//! rejects the whole block.

use super::{ErrorRecord, Levels, INSTANCE_LEVEL, WORKER_LEVEL};
use crate::resources::ResourceDefs;
use crate::sanitize::lenient;
use crate::status::BackoffSettings;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The scheduling policy (`bistro_settings.scheduler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyName {
    /// One task per job per round (default).
    RoundRobin,
    /// Highest priority job first, all its tasks.
    RankedPriority,
    /// Jobs picked at random, weighted by priority.
    RandomizedPriority,
    /// Jobs with the fewest eligible tasks first.
    LongTail,
}

impl PolicyName {
    /// Parses a policy name as Bistro spells it.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "roundrobin" => Self::RoundRobin,
            "ranked_priority" => Self::RankedPriority,
            "randomized_priority" => Self::RandomizedPriority,
            "long_tail" => Self::LongTail,
            _ => return None,
        })
    }
}

/// How nodes are ordered before each pass (`nodes.node_order`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeOrder {
    /// Reshuffled every pass (default).
    Random,
    /// As the node sources produced them.
    Original,
    /// Byte-wise by name.
    Lexicographic,
}

/// One `nodes.node_sources` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSourceSpec {
    /// The fetcher name: `manual`, `range_label`, `script`, `empty` or `add_time`.
    pub source: String,
    /// The fetcher's preferences.
    pub prefs: Map<String, Value>,
}

/// The node source names we know.
pub const NODE_SOURCES: [&str; 5] = ["manual", "range_label", "script", "empty", "add_time"];

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

/// Validated `bistro_settings`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Start new tasks at all (default false, as in Bistro).
    pub enabled: bool,
    /// Pause between iterations while tasks run, in ms.
    pub working_wait_ms: i64,
    /// Pause between idle iterations, in ms.
    pub idle_wait_ms: i64,
    /// The scheduling policy.
    pub scheduler: PolicyName,
    /// `roundrobin` or `busiest` (remote workers).
    pub remote_worker_selector: String,
    /// Default backoff for all jobs.
    pub backoff: BackoffSettings,
    /// `instance`, the configured levels, `worker`.
    pub levels: Levels,
    /// Node order within a level.
    pub node_order: NodeOrder,
    /// Node sources, in order (the legacy `node_source` first).
    pub node_sources: Vec<NodeSourceSpec>,
    /// Default level whose nodes become tasks.
    pub level_for_tasks: usize,
    /// Resource limits and defaults.
    pub resources: ResourceDefs,
    /// Per-worker overrides of worker-level limits.
    pub worker_resources_override: BTreeMap<String, BTreeMap<String, i64>>,
    /// Kill orphans after this many ms (None: never). Parsed; orphan killing is not
    /// implemented yet.
    pub kill_orphan_tasks_after_ms: Option<i64>,
    /// Default task process options.
    pub task_subprocess: TaskSubprocess,
    /// Default kill sequence.
    pub kill_subprocess: KillRequest,
    /// `physical_resources`, kept for the remote workers.
    pub physical_resources: Option<Value>,
    /// `CAUTION_exit_initial_wait_before_timestamp`.
    pub exit_initial_wait_before_timestamp: i64,
}

/// Parses seconds (fractions allowed) into ms.
fn seconds_to_ms(v: &Value) -> Option<i64> {
    lenient::as_f64(v)
        .filter(|s| *s >= 0.0)
        .map(|s| (s * 1000.0) as i64)
}

/// Parses `kill_orphan_tasks_after_sec`: `true` = 0, `false` or negative = never.
pub fn parse_kill_orphans(v: &Value) -> Result<Option<i64>, String> {
    match v {
        Value::Bool(true) => Ok(Some(0)),
        Value::Bool(false) => Ok(None),
        Value::Number(n) => {
            let s = n.as_f64().unwrap_or(-1.0);
            Ok((s >= 0.0).then_some((s * 1000.0) as i64))
        }
        other => Err(format!(
            "must be true, false or a number of seconds, got {other}"
        )),
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

/// Validates `physical_resources` (bistro-scheduling §3.5): which physical resource
/// feeds which worker-level logical resource, and how.
fn check_physical_resources(
    v: &Value,
    resources: &ResourceDefs,
    levels: &Levels,
    rec: &mut ErrorRecord,
) {
    let Some(obj) = v.as_object() else {
        rec.set_error(
            v,
            "must be an object of ram_mb, cpu_core and gpu_card entries",
        );
        return;
    };
    let mut logical_seen = Vec::new();
    for (kind, spec) in obj {
        let at = rec.nested(kind.as_str());
        let enforcements: &[&str] = match kind.as_str() {
            "ram_mb" => &["none", "hard"],
            "cpu_core" => &["none", "soft"],
            "gpu_card" => &["none"],
            _ => {
                at.set_error(
                    spec,
                    "unknown physical resource (known: ram_mb, cpu_core, gpu_card)",
                );
                continue;
            }
        };
        if !spec.is_object() {
            at.set_error(spec, "must be an object with logical_resource");
            continue;
        }
        match spec.get("logical_resource").and_then(Value::as_str) {
            None => at.missing_key(spec, "logical_resource"),
            Some(name) => {
                let on_worker = resources.id(name).is_some_and(|id| {
                    resources.by_level[levels.worker()]
                        .iter()
                        .any(|r| r.resource == id)
                });
                if !on_worker {
                    at.nested_error(
                        "logical_resource",
                        &spec["logical_resource"],
                        "must name a worker-level resource",
                    );
                } else if logical_seen.contains(&name) {
                    at.nested_error(
                        "logical_resource",
                        &spec["logical_resource"],
                        "each logical resource may be fed only once",
                    );
                }
                logical_seen.push(name);
            }
        }
        if let Some(m) = spec.get("multiply_logical_by") {
            if lenient::as_f64(m).is_none_or(|m| m.abs() < 1e-9) {
                at.nested_error("multiply_logical_by", m, "must be a non-zero number");
            }
        }
        if let Some(r) = spec.get("physical_reserve_amount") {
            if lenient::as_f64(r).is_none() {
                at.nested_error("physical_reserve_amount", r, "must be a number");
            }
        }
        if let Some(e) = spec.get("enforcement") {
            if !e.as_str().is_some_and(|e| enforcements.contains(&e)) {
                at.nested_error(
                    "enforcement",
                    e,
                    format!("must be one of: {}", enforcements.join(", ")),
                );
            }
        }
    }
}

fn parse_node_source(v: &Value, rec: &mut ErrorRecord) -> Option<NodeSourceSpec> {
    let Some(obj) = v.as_object() else {
        rec.set_error(
            v,
            "each node source must be an object with \"source\" and \"prefs\"",
        );
        return None;
    };
    let source = match obj.get("source") {
        None => {
            rec.missing_key(v, "source");
            return None;
        }
        Some(s) => match lenient::as_string(s) {
            Some(name) => name,
            None => {
                rec.nested_error("source", s, "must be a node source name");
                return None;
            }
        },
    };
    if !super::settings::NODE_SOURCES.contains(&source.as_str()) {
        rec.nested_error(
            "source",
            &obj["source"],
            format!(
                "Invalid node source: {source} (known: {})",
                NODE_SOURCES.join(", ")
            ),
        );
        return None;
    }
    let prefs = match obj.get("prefs") {
        None => Map::new(),
        Some(Value::Object(p)) => p.clone(),
        Some(other) => {
            rec.nested_error("prefs", other, "must be an object");
            return None;
        }
    };
    if source == "add_time" {
        if let Err(errors) = crate::nodes::add_time::validate_prefs(&prefs) {
            for e in errors {
                record_prefs_error(rec.nested("prefs"), &prefs, &e.path, e.message);
            }
            return None;
        }
    }
    Some(NodeSourceSpec { source, prefs })
}

/// Records `message` at `path` below a node source's prefs, with the value found there.
fn record_prefs_error(
    rec: &mut ErrorRecord,
    prefs: &Map<String, Value>,
    path: &[String],
    message: String,
) {
    let value = path.split_first().and_then(|(first, rest)| {
        rest.iter().try_fold(prefs.get(first)?, |v, key| match v {
            Value::Object(obj) => obj.get(key),
            Value::Array(items) => items.get(key.parse::<usize>().ok()?),
            _ => None,
        })
    });
    let at = path.iter().fold(rec, |at, key| at.nested(key.as_str()));
    match value {
        Some(value) => at.set_error(value, message),
        None => at.error = Some(message),
    }
}

fn parse_nodes(nodes: &Value, rec: &mut ErrorRecord) -> (Levels, NodeOrder, Vec<NodeSourceSpec>) {
    let mut levels = Vec::new();
    match nodes.get("levels") {
        None => rec.missing_key(nodes, "levels"),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(name) if name == INSTANCE_LEVEL || name == WORKER_LEVEL => {
                        rec.nested("levels").nested_error(
                            i.to_string(),
                            item,
                            format!("\"{name}\" is implicit and must not be listed"),
                        )
                    }
                    Some(name) => levels.push(name.to_string()),
                    None => rec.nested("levels").nested_error(
                        i.to_string(),
                        item,
                        "level names must be strings",
                    ),
                }
            }
        }
        Some(other) => rec.nested_error("levels", other, "must be an array of level names"),
    }
    let order = match nodes.get("node_order").map(|v| (v, v.as_str())) {
        None => NodeOrder::Random,
        Some((_, Some("random"))) => NodeOrder::Random,
        Some((_, Some("original"))) => NodeOrder::Original,
        Some((_, Some("lexicographic"))) => NodeOrder::Lexicographic,
        Some((v, _)) => {
            rec.nested_error(
                "node_order",
                v,
                "must be \"random\", \"original\" or \"lexicographic\"",
            );
            NodeOrder::Random
        }
    };
    let mut sources = Vec::new();
    if let Some(legacy) = nodes.get("node_source") {
        let entry = serde_json::json!({
            "source": legacy,
            "prefs": nodes.get("node_source_prefs").cloned().unwrap_or_else(|| serde_json::json!({})),
        });
        if let Some(spec) = parse_node_source(&entry, rec.nested("node_source")) {
            sources.push(spec);
        }
    }
    match nodes.get("node_sources") {
        None => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if let Some(spec) =
                    parse_node_source(item, rec.nested("node_sources").nested(i.to_string()))
                {
                    sources.push(spec);
                }
            }
        }
        Some(other) => {
            rec.nested_error("node_sources", other, "must be an array of {source, prefs}")
        }
    }
    (Levels::new(levels), order, sources)
}

impl Settings {
    /// Parses `bistro_settings`; every problem is collected into the error record.
    pub fn parse(v: &Value) -> Result<Settings, Box<ErrorRecord>> {
        let mut rec = ErrorRecord::default();
        let get = |key: &str| v.get(key);
        let enabled = match get("enabled") {
            None => false,
            Some(x) => lenient::as_bool(x).unwrap_or_else(|| {
                rec.nested_error("enabled", x, "must be a boolean");
                false
            }),
        };
        let mut wait = |key: &str, default_ms: i64| match get(key) {
            None => default_ms,
            Some(x) => seconds_to_ms(x).unwrap_or_else(|| {
                rec.nested_error(key, x, "must be a non-negative number of seconds");
                default_ms
            }),
        };
        let working_wait_ms = wait("working_wait", 500);
        let idle_wait_ms = wait("idle_wait", 5000);
        let scheduler = match get("scheduler") {
            None => PolicyName::RoundRobin,
            Some(x) => x.as_str().and_then(PolicyName::parse).unwrap_or_else(|| {
                rec.nested_error(
                    "scheduler",
                    x,
                    "unknown scheduling policy (known: roundrobin, ranked_priority, randomized_priority, long_tail)",
                );
                PolicyName::RoundRobin
            }),
        };
        let remote_worker_selector = match get("remote_worker_selector") {
            None => "roundrobin".to_string(),
            Some(x) => match x.as_str() {
                Some(s @ ("roundrobin" | "busiest")) => s.to_string(),
                _ => {
                    rec.nested_error(
                        "remote_worker_selector",
                        x,
                        "must be \"roundrobin\" or \"busiest\"",
                    );
                    "roundrobin".into()
                }
            },
        };
        let backoff = match get("backoff") {
            None => BackoffSettings::default(),
            Some(x) => BackoffSettings::parse(x).unwrap_or_else(|e| {
                rec.nested_error("backoff", x, e);
                BackoffSettings::default()
            }),
        };
        let (levels, node_order, node_sources) = match get("nodes") {
            Some(nodes @ Value::Object(_)) => parse_nodes(nodes, rec.nested("nodes")),
            Some(other) => {
                rec.nested_error("nodes", other, "must be an object with \"levels\"");
                (Levels::new([]), NodeOrder::Random, Vec::new())
            }
            None => {
                rec.missing_key(v, "nodes");
                (Levels::new([]), NodeOrder::Random, Vec::new())
            }
        };
        let level_for_tasks = match get("level_for_tasks") {
            None => levels.bottom(),
            Some(x) => x.as_str().and_then(|s| levels.id(s)).unwrap_or_else(|| {
                rec.nested_error("level_for_tasks", x, "Unknown identifier: no such level");
                levels.bottom()
            }),
        };
        let resources = match get("resources") {
            None => {
                rec.missing_key(v, "resources");
                ResourceDefs {
                    by_level: vec![Vec::new(); levels.len()],
                    ..Default::default()
                }
            }
            Some(x) => ResourceDefs::parse(x, &levels, rec.nested("resources")),
        };
        let mut worker_resources_override = BTreeMap::new();
        if let Some(x) = get("worker_resources_override") {
            match x.as_object() {
                None => rec.nested_error(
                    "worker_resources_override",
                    x,
                    "must be an object of workers",
                ),
                Some(workers) => {
                    for (worker, amounts) in workers {
                        if !amounts.is_object() {
                            rec.nested("worker_resources_override").nested_error(
                                worker.as_str(),
                                amounts,
                                "must be an object of {RESOURCE: amount}",
                            );
                            continue;
                        }
                        let mut parsed = BTreeMap::new();
                        for (name, amount) in amounts.as_object().into_iter().flatten() {
                            let at = rec
                                .nested("worker_resources_override")
                                .nested(worker.as_str());
                            match resources.id(name) {
                                None => at.nested_error(
                                    name.as_str(),
                                    amount,
                                    "Overriding unknown resource",
                                ),
                                Some(id)
                                    if !resources.by_level[levels.worker()]
                                        .iter()
                                        .any(|r| r.resource == id) =>
                                {
                                    at.nested_error(
                                        name.as_str(),
                                        amount,
                                        "Overriding resource for wrong level",
                                    )
                                }
                                Some(_) => match lenient::as_i64(amount) {
                                    Some(a) => {
                                        parsed.insert(name.clone(), a);
                                    }
                                    None => {
                                        at.nested_error(name.as_str(), amount, "must be an integer")
                                    }
                                },
                            }
                        }
                        worker_resources_override.insert(worker.clone(), parsed);
                    }
                }
            }
        }
        let kill_orphan_tasks_after_ms = match get("kill_orphan_tasks_after_sec") {
            None => None,
            Some(x) => parse_kill_orphans(x).unwrap_or_else(|e| {
                rec.nested_error("kill_orphan_tasks_after_sec", x, e);
                None
            }),
        };
        let task_subprocess = match get("task_subprocess") {
            None => TaskSubprocess::default(),
            Some(x) => {
                parse_task_subprocess(x, &TaskSubprocess::default(), rec.nested("task_subprocess"))
            }
        };
        let kill_subprocess = match get("kill_subprocess") {
            None => KillRequest::default(),
            Some(x) => {
                parse_kill_subprocess(x, &KillRequest::default(), rec.nested("kill_subprocess"))
            }
        };
        let physical_resources = get("physical_resources").cloned();
        if let Some(p) = &physical_resources {
            check_physical_resources(p, &resources, &levels, rec.nested("physical_resources"));
        }
        let exit_initial_wait_before_timestamp =
            match get("CAUTION_exit_initial_wait_before_timestamp") {
                None => 0,
                Some(x) => lenient::as_i64(x).unwrap_or_else(|| {
                    rec.nested_error(
                        "CAUTION_exit_initial_wait_before_timestamp",
                        x,
                        "must be an integer",
                    );
                    0
                }),
            };
        if !rec.is_empty() {
            return Err(Box::new(rec));
        }
        Ok(Settings {
            enabled,
            working_wait_ms,
            idle_wait_ms,
            scheduler,
            remote_worker_selector,
            backoff,
            levels,
            node_order,
            node_sources,
            level_for_tasks,
            resources,
            worker_resources_override,
            kill_orphan_tasks_after_ms,
            task_subprocess,
            kill_subprocess,
            physical_resources,
            exit_initial_wait_before_timestamp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({"nodes": {"levels": ["level1", "level2"]}, "resources": {}})
    }

    #[test]
    fn defaults_follow_bistro() {
        let s = Settings::parse(&minimal()).unwrap();
        assert!(!s.enabled);
        assert_eq!((s.working_wait_ms, s.idle_wait_ms), (500, 5000));
        assert_eq!(s.scheduler, PolicyName::RoundRobin);
        assert_eq!(s.node_order, NodeOrder::Random);
        assert_eq!(s.levels.name(s.level_for_tasks), "level2");
        assert_eq!(s.backoff, BackoffSettings::default());
        assert_eq!(s.kill_orphan_tasks_after_ms, None);
        assert_eq!(
            s.kill_subprocess,
            KillRequest {
                method: KillMethod::TermWaitKill,
                kill_wait_ms: 5000
            }
        );
    }

    #[test]
    fn missing_parts_and_unknown_names_are_errors() {
        assert!(Settings::parse(&json!({})).is_err());
        assert!(Settings::parse(&json!({"nodes": {}})).is_err());
        assert!(Settings::parse(&json!({"nodes": {"levels": ["a"]}})).is_err());
        let mut bad = minimal();
        bad["scheduler"] = json!("unittest");
        let err = Settings::parse(&bad).unwrap_err();
        assert_eq!(err.flatten()[0].0, "scheduler");
        let mut bad = minimal();
        bad["resources"] = json!({"nope": {"r": {"default": 1, "limit": 2}}});
        assert_eq!(
            Settings::parse(&bad).unwrap_err().flatten()[0].0,
            "resources.nope"
        );
        let mut bad = minimal();
        bad["nodes"]["node_sources"] = json!([{"source": "bogus"}]);
        assert_eq!(
            Settings::parse(&bad).unwrap_err().flatten()[0].0,
            "nodes.node_sources.0.source"
        );
    }

    #[test]
    fn legacy_node_source_comes_first() {
        let mut v = minimal();
        v["nodes"]["node_source"] = json!("manual");
        v["nodes"]["node_source_prefs"] = json!({"node1": ["node11"]});
        v["nodes"]["node_sources"] = json!([{"source": "empty"}]);
        let s = Settings::parse(&v).unwrap();
        assert_eq!(s.node_sources.len(), 2);
        assert_eq!(s.node_sources[0].source, "manual");
        assert_eq!(s.node_sources[0].prefs["node1"], json!(["node11"]));
    }

    #[test]
    fn waits_are_fractional_seconds_and_orphan_kills_parse() {
        let mut v = minimal();
        v["working_wait"] = json!(0.25);
        v["idle_wait"] = json!(5.5);
        v["kill_orphan_tasks_after_sec"] = json!(true);
        let s = Settings::parse(&v).unwrap();
        assert_eq!(
            (
                s.working_wait_ms,
                s.idle_wait_ms,
                s.kill_orphan_tasks_after_ms
            ),
            (250, 5500, Some(0))
        );
        assert_eq!(parse_kill_orphans(&json!(false)), Ok(None));
        assert_eq!(parse_kill_orphans(&json!(0.37)), Ok(Some(370)));
        assert_eq!(parse_kill_orphans(&json!(-1)), Ok(None));
        assert!(parse_kill_orphans(&json!("x")).is_err());
    }

    #[test]
    fn worker_overrides_must_name_worker_resources() {
        let mut v = minimal();
        v["resources"] = json!({"worker": {"slots": {"default": 1, "limit": 4, "weight": 3}}, "level1": {"c": {"default": 1, "limit": 2}}});
        v["worker_resources_override"] = json!({"w1:17": {"slots": 8}});
        let s = Settings::parse(&v).unwrap();
        assert_eq!(s.worker_resources_override["w1:17"]["slots"], 8);
        v["worker_resources_override"] = json!({"w1": {"c": 8}});
        assert!(Settings::parse(&v).is_err());
        v["worker_resources_override"] = json!({"w1": {"zzz": 8}});
        assert!(Settings::parse(&v).is_err());
    }

    #[test]
    fn physical_resources_cgroups_and_overrides_are_validated() {
        let mut v = minimal();
        v["resources"] = json!({"worker": {"ram": {"default": 1, "limit": 4}, "cpu": {"default": 1, "limit": 4}}});
        v["physical_resources"] = json!({
            "ram_mb": {"logical_resource": "ram", "multiply_logical_by": 1024, "enforcement": "hard", "physical_reserve_amount": 1536},
            "cpu_core": {"logical_resource": "cpu", "multiply_logical_by": 0.001, "enforcement": "soft"}
        });
        assert!(Settings::parse(&v).is_ok());
        for (bad, at) in [
            (json!({"bogus": {}}), "physical_resources.bogus"),
            (
                json!({"gpu_card": {"logical_resource": "ram", "enforcement": "hard"}}),
                "physical_resources.gpu_card.enforcement",
            ),
            (
                json!({"ram_mb": {"logical_resource": "nope"}}),
                "physical_resources.ram_mb.logical_resource",
            ),
            (
                json!({"ram_mb": {"logical_resource": "ram", "multiply_logical_by": 0}}),
                "physical_resources.ram_mb.multiply_logical_by",
            ),
            (
                json!({"ram_mb": {}}),
                "physical_resources.ram_mb.logical_resource",
            ),
        ] {
            let mut v = v.clone();
            v["physical_resources"] = bad;
            assert_eq!(Settings::parse(&v).unwrap_err().flatten()[0].0, at);
        }
        let mut c = minimal();
        c["task_subprocess"] = json!({"cgroups": {"subsystems": "cpu", "root": 7}});
        let keys: Vec<String> = Settings::parse(&c)
            .unwrap_err()
            .flatten()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            keys,
            vec![
                "task_subprocess.cgroups.subsystems",
                "task_subprocess.cgroups.root"
            ]
        );
        let mut w = v.clone();
        w["worker_resources_override"] = json!({"w1": 5});
        assert_eq!(
            Settings::parse(&w).unwrap_err().flatten()[0].0,
            "worker_resources_override.w1"
        );
    }

    #[test]
    fn a_bad_add_time_schedule_is_a_config_error_naming_the_key() {
        let config = |cron: Value| {
            json!({"bistro_settings": {
                "nodes": {"levels": ["time"], "node_sources": [{
                    "source": "add_time",
                    "prefs": {"parent_level": "instance", "schedule": [
                        {"lifetime": 60, "cron": {"epoch": {"period": 60}}},
                        {"lifetime": 60, "cron": cron},
                    ]},
                }]},
                "resources": {},
            }})
        };
        let problems = |cron: Value| {
            crate::config::Config::from_value(&config(cron))
                .unwrap_err()
                .problems()
        };
        let dst = json!(["skip", "repeat_use_both"]);
        let feb30 =
            problems(json!({"minute": 0, "day_of_month": 30, "month": "Feb", "dst_fixes": dst}));
        assert_eq!(feb30.len(), 1);
        assert_eq!(
            feb30[0].0,
            "bistro_settings.nodes.node_sources.0.prefs.schedule.1.cron"
        );
        assert!(feb30[0].1.contains("February 30"), "{}", feb30[0].1);
        let chicken = problems(json!({"minute": 0, "day_of_week": "Chicken", "dst_fixes": dst}));
        assert_eq!(
            chicken[0].0,
            "bistro_settings.nodes.node_sources.0.prefs.schedule.1.cron.day_of_week"
        );
        assert!(
            chicken[0].1.starts_with("unknown name \"Chicken\""),
            "{}",
            chicken[0].1
        );
        assert!(
            chicken[0].1.ends_with("(value: \"Chicken\")"),
            "{}",
            chicken[0].1
        );
        let good =
            crate::config::Config::from_value(&config(json!({"minute": 0, "dst_fixes": dst})));
        assert!(good.is_ok());
    }

    /// Bistro's test_config HandleConstruction, key by key.
    #[test]
    fn a_full_settings_block_keeps_every_value() {
        let v = json!({
            "enabled": true,
            "working_wait": 0.5,
            "idle_wait": 5.5,
            "scheduler": "ranked_priority",
            "remote_worker_selector": "busiest",
            "nodes": {
                "levels": ["level1", "level2"],
                "node_order": "original",
                "node_sources": [
                    {"source": "range_label", "prefs": {"key1": "val1"}},
                    {"source": "script", "prefs": {"key2": "val2"}},
                    {"source": "empty"},
                ],
            },
            "resources": {
                "level1": {"concurrency": {"default": 1, "limit": 10}},
                "worker": {"ram_gb": {"default": 2, "limit": 24, "weight": 3}},
            },
            "worker_resources_override": {"worker1:17": {"ram_gb": 17}, "worker2:19": {"ram_gb": 19}},
            "kill_subprocess": {"method": "kill", "kill_wait_ms": 987},
            "kill_orphan_tasks_after_sec": 0,
            "CAUTION_exit_initial_wait_before_timestamp": 123,
        });
        let s = Settings::parse(&v).unwrap();
        assert!(s.enabled);
        assert_eq!((s.working_wait_ms, s.idle_wait_ms), (500, 5500));
        assert_eq!(s.scheduler, PolicyName::RankedPriority);
        assert_eq!(s.remote_worker_selector, "busiest");
        assert_eq!(s.node_order, NodeOrder::Original);
        let sources: Vec<(&str, Value)> = s
            .node_sources
            .iter()
            .map(|n| (n.source.as_str(), Value::Object(n.prefs.clone())))
            .collect();
        assert_eq!(
            sources,
            vec![
                ("range_label", json!({"key1": "val1"})),
                ("script", json!({"key2": "val2"})),
                ("empty", json!({})),
            ]
        );
        let concurrency = s.resources.id("concurrency").unwrap();
        let ram = s.resources.id("ram_gb").unwrap();
        assert_eq!(
            (s.resources.defaults[concurrency], s.resources.defaults[ram]),
            (1, 2)
        );
        let level1 = s.levels.id("level1").unwrap();
        assert_eq!(
            s.resources.by_level[level1],
            vec![crate::resources::LevelResource {
                resource: concurrency,
                limit: 10,
                weight: 0
            }]
        );
        assert_eq!(
            s.resources.by_level[s.levels.worker()],
            vec![crate::resources::LevelResource {
                resource: ram,
                limit: 24,
                weight: 3
            }]
        );
        assert_eq!(s.worker_resources_override["worker1:17"]["ram_gb"], 17);
        assert_eq!(s.worker_resources_override["worker2:19"]["ram_gb"], 19);
        assert_eq!(
            s.kill_subprocess,
            KillRequest {
                method: KillMethod::Kill,
                kill_wait_ms: 987
            }
        );
        assert_eq!(s.kill_orphan_tasks_after_ms, Some(0));
        assert_eq!(s.exit_initial_wait_before_timestamp, 123);
        assert_eq!(s.levels.name(s.level_for_tasks), "level2");
    }

    #[test]
    fn an_unknown_remote_worker_selector_or_node_order_is_an_error() {
        let s = Settings::parse(&minimal()).unwrap();
        assert_eq!(s.remote_worker_selector, "roundrobin");
        let mut bad = minimal();
        bad["remote_worker_selector"] = json!("laziest");
        assert_eq!(
            Settings::parse(&bad).unwrap_err().flatten()[0].0,
            "remote_worker_selector"
        );
        let mut bad = minimal();
        bad["nodes"]["node_order"] = json!("alphabetical");
        assert_eq!(
            Settings::parse(&bad).unwrap_err().flatten()[0].0,
            "nodes.node_order"
        );
    }

    #[test]
    fn level_for_tasks_names_any_level_including_the_instance() {
        for name in ["level1", "level2", "instance"] {
            let mut v = minimal();
            v["level_for_tasks"] = json!(name);
            let s = Settings::parse(&v).unwrap();
            assert_eq!(s.levels.name(s.level_for_tasks), name);
        }
        let mut bad = minimal();
        bad["level_for_tasks"] = json!("nope");
        assert_eq!(
            Settings::parse(&bad).unwrap_err().flatten()[0].0,
            "level_for_tasks"
        );
    }

    #[test]
    fn task_subprocess_defaults_and_a_full_override_that_round_trips() {
        let s = Settings::parse(&minimal()).unwrap();
        // Bistro's default process_group_leader is false; ours is true so that a kill
        // reaches the whole task group (spec README, "default kill").
        assert_eq!(
            serde_json::to_value(&s.task_subprocess).unwrap(),
            json!({"poll_ms": 10, "max_log_lines_per_poll_interval": 50,
                   "parent_death_signal": 9, "process_group_leader": true,
                   "use_canary_pipe": true,
                   "cgroups": {"root": "", "slice": "", "subsystems": [],
                               "kill_without_freezer": false}})
        );
        let full = json!({"poll_ms": 111, "max_log_lines_per_poll_interval": 222,
                          "parent_death_signal": 15, "process_group_leader": false,
                          "use_canary_pipe": false,
                          "cgroups": {"root": "/sys/fs/cgroup", "slice": "bistro.slice",
                                      "subsystems": ["cpu", "memory"],
                                      "kill_without_freezer": true}});
        let mut v = minimal();
        v["task_subprocess"] = full.clone();
        let s = Settings::parse(&v).unwrap();
        assert_eq!(serde_json::to_value(&s.task_subprocess).unwrap(), full);
        let mut rec = ErrorRecord::default();
        let reparsed = parse_task_subprocess(&full, &TaskSubprocess::default(), &mut rec);
        assert!(rec.is_empty());
        assert_eq!(reparsed, s.task_subprocess);
    }

    #[test]
    fn physical_gpu_cards_map_to_a_worker_resource_without_enforcement() {
        let mut v = minimal();
        v["resources"] = json!({"worker": {"ram_gb": {"default": 1, "limit": 4},
                                            "cpu": {"default": 1, "limit": 4},
                                            "gpu": {"default": 0, "limit": 2}}});
        v["physical_resources"] = json!({
            "ram_mb": {"logical_resource": "ram_gb", "multiply_logical_by": 1024,
                       "enforcement": "hard", "physical_reserve_amount": 1536},
            "cpu_core": {"logical_resource": "cpu", "multiply_logical_by": 0.001,
                         "enforcement": "soft"},
            "gpu_card": {"logical_resource": "gpu", "enforcement": "none"},
        });
        let s = Settings::parse(&v).unwrap();
        assert_eq!(s.physical_resources, Some(v["physical_resources"].clone()));
    }

    #[test]
    fn instance_and_worker_cannot_be_listed_as_levels() {
        let v = json!({"nodes": {"levels": ["instance", "a"]}, "resources": {}});
        assert!(Settings::parse(&v).is_err());
    }
}
