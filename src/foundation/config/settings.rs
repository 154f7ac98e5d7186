//! `bistro_settings` (bistro-scheduling §1.3): every key with its default. One bad key
//! rejects the whole block.
//!
//! This module assembles the block; each concept is parsed where it is defined: the
//! node tree's shape in [`super::node_shape`], process options in [`super::process`],
//! resources in [`super::resource_settings`].

use super::node_shape::{no_prefs_check, parse_nodes, PrefsCheck};
use super::process::{
    parse_kill_orphans, parse_kill_subprocess, parse_task_subprocess, parse_task_timeout,
    seconds_to_ms,
};
use super::resource_settings::{check_physical_resources, parse_worker_overrides};
use super::slurm::{parse_slurm_settings, SlurmSettings};
use super::{
    ErrorRecord, KillRequest, Levels, NodeOrder, NodeSourceSpec, ResourceDefs, TaskSubprocess,
};
use crate::foundation::sanitize::lenient;
use crate::foundation::status::BackoffSettings;
use serde_json::Value;
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
    /// `task_timeout_sec`: the default time a task may run before it is killed and
    /// recorded as `error_backoff` "timed out after N s" (None: no limit).
    pub task_timeout_sec: Option<u64>,
    /// `physical_resources`, kept for the remote workers.
    pub physical_resources: Option<Value>,
    /// `CAUTION_exit_initial_wait_before_timestamp`.
    pub exit_initial_wait_before_timestamp: i64,
    /// `slurm`: sbatch defaults and limits for `--runner slurm`.
    pub slurm: SlurmSettings,
}

impl Settings {
    /// Parses `bistro_settings` without checking node source prefs; every problem is
    /// collected into the error record.
    pub fn parse(v: &Value) -> Result<Settings, Box<ErrorRecord>> {
        Self::parse_with(v, no_prefs_check)
    }

    /// Parses `bistro_settings`, checking each node source's prefs with `check`; every
    /// problem is collected into the error record.
    pub fn parse_with(v: &Value, check: PrefsCheck) -> Result<Settings, Box<ErrorRecord>> {
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
                rec.nested_error("backoff", x, e.to_string());
                BackoffSettings::default()
            }),
        };
        let (levels, node_order, node_sources) = match get("nodes") {
            Some(nodes @ Value::Object(_)) => parse_nodes(nodes, check, rec.nested("nodes")),
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
        let worker_resources_override = match get("worker_resources_override") {
            None => BTreeMap::new(),
            Some(x) => parse_worker_overrides(x, &resources, &levels, &mut rec),
        };
        let kill_orphan_tasks_after_ms = match get("kill_orphan_tasks_after_sec") {
            None => None,
            Some(x) => parse_kill_orphans(x).unwrap_or_else(|e| {
                rec.nested_error("kill_orphan_tasks_after_sec", x, e.to_string());
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
        let task_timeout_sec = get("task_timeout_sec").and_then(|x| {
            parse_task_timeout(x).unwrap_or_else(|e| {
                rec.nested_error("task_timeout_sec", x, e.to_string());
                None
            })
        });
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
        let slurm = match get("slurm") {
            None => SlurmSettings::default(),
            Some(x) => parse_slurm_settings(x, rec.nested("slurm")),
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
            task_timeout_sec,
            physical_resources,
            exit_initial_wait_before_timestamp,
            slurm,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundation::config::KillMethod;
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
            vec![crate::foundation::config::LevelResource {
                resource: concurrency,
                limit: 10,
                weight: 0
            }]
        );
        assert_eq!(
            s.resources.by_level[s.levels.worker()],
            vec![crate::foundation::config::LevelResource {
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
