//! Bistro's scheduler unit tests (bistro-scheduling §8), ported to the pure pass.

use super::*;
use crate::foundation::config::Config;
use crate::foundation::status::{bits, BackoffDuration, TaskStatus};
use crate::model::nodes::fetch_nodes;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

const HOSTS: &str = r#"{"host1": ["db11", "db12"], "host2": ["db21", "db22"]}"#;

fn config(policy: &str, jobs: Value) -> Config {
    let mut v = json!({
        "bistro_settings": {
            "enabled": true,
            "scheduler": policy,
            "nodes": {"levels": ["host", "db"], "node_order": "original",
                      "node_sources": [{"source": "manual", "prefs": serde_json::from_str::<Value>(HOSTS).unwrap()}]},
            "resources": {
                "host": {"host_concurrency": {"limit": 2, "default": 1}},
                "db": {"db_concurrency": {"limit": 1, "default": 1}}
            }
        }
    });
    for (name, job) in jobs.as_object().unwrap() {
        v[format!("bistro_job->{name}")] = job.clone();
    }
    Config::from_value_unchecked(&v).unwrap()
}

struct Fixture {
    config: Config,
    nodes: Nodes,
    statuses: Statuses,
    running: Vec<RunningTask>,
}

impl Fixture {
    fn new(config: Config) -> Self {
        let nodes = fetch_nodes(&config.settings, "inst").unwrap();
        Self {
            config,
            nodes,
            statuses: Statuses::default(),
            running: Vec::new(),
        }
    }

    fn plan_seeded(&self, seed: u64, explain: bool) -> Plan {
        let input = PassInput {
            config: &self.config,
            nodes: &self.nodes,
            statuses: &self.statuses,
            running: &self.running,
            now: 1000,
        };
        plan(&input, &mut StdRng::seed_from_u64(seed), explain)
    }

    fn started(&self, plan: &Plan) -> Vec<(String, String)> {
        plan.starts
            .iter()
            .map(|s| {
                (
                    self.config.jobs[s.job].name.clone(),
                    self.nodes.list[s.node].name.clone(),
                )
            })
            .collect()
    }

    fn run(&mut self, job: &str, node: &str) {
        let charges = vec![NodeCharge {
            level: "db".into(),
            node: node.into(),
            amounts: vec![("db_concurrency".into(), 1)],
        }];
        self.running.push(RunningTask {
            job: job.into(),
            node: node.into(),
            invocation: crate::model::task::InvocationId {
                start_time: 1,
                rand: 1,
            },
            charges,
            next_backoff: BackoffDuration::default(),
            attempts: 1,
            worker_shard: "local".into(),
            timeout_sec: None,
        });
    }
}

fn two_jobs(policy: &str, with_job3: bool) -> Fixture {
    let mut jobs =
        json!({"job1": {"owner": "o", "priority": 10}, "job2": {"owner": "o", "priority": 1}});
    if with_job3 {
        jobs["job3"] =
            json!({"owner": "o", "priority": 100, "filters": {"db": {"whitelist": ["db12"]}}});
    }
    Fixture::new(config(policy, jobs))
}

#[test]
fn roundrobin_alternates_jobs_one_task_per_round() {
    let fx = two_jobs("roundrobin", false);
    for seed in 0..10 {
        let started = fx.started(&fx.plan_seeded(seed, false));
        let nodes: Vec<&str> = started.iter().map(|s| s.1.as_str()).collect();
        assert_eq!(nodes, vec!["db22", "db21", "db12", "db11"]);
        assert_ne!(started[0].0, started[1].0);
        assert_eq!(started[0].0, started[2].0);
        assert_eq!(started[1].0, started[3].0);
    }
}

#[test]
fn ranked_priority_starts_the_highest_job_first_and_exhausts_it() {
    let fx = two_jobs("ranked_priority", true);
    for seed in 0..10 {
        let started = fx.started(&fx.plan_seeded(seed, false));
        let expect: Vec<(String, String)> = [
            ("job3", "db12"),
            ("job1", "db22"),
            ("job1", "db21"),
            ("job1", "db11"),
        ]
        .iter()
        .map(|(j, n)| (j.to_string(), n.to_string()))
        .collect();
        assert_eq!(started, expect);
    }
}

#[test]
fn long_tail_starts_the_job_with_fewest_candidates_first() {
    let fx = two_jobs("long_tail", true);
    let started = fx.started(&fx.plan_seeded(3, false));
    assert_eq!(started[0], ("job3".to_string(), "db12".to_string()));
    let rest: Vec<&str> = started[1..].iter().map(|s| s.1.as_str()).collect();
    assert_eq!(rest, vec!["db22", "db21", "db11"]);
    assert!(started[1..].iter().all(|s| s.0 == started[1].0));
}

#[test]
fn randomized_priority_favours_jobs_by_weight() {
    let fx = two_jobs("randomized_priority", false);
    let mut job1 = 0;
    let mut job2 = 0;
    for seed in 0..100 {
        for (job, _) in fx.started(&fx.plan_seeded(seed, false)) {
            if job == "job1" {
                job1 += 1;
            } else {
                job2 += 1;
            }
        }
    }
    assert_eq!(job1 + job2, 400);
    assert!((320..=400).contains(&job1), "job1 got {job1}");
    assert!(job2 > 0);
}

#[test]
fn host_limits_hold_and_running_tasks_hold_their_slots() {
    let mut fx = two_jobs("roundrobin", false);
    fx.run("job1", "db11");
    fx.running[0].charges.push(NodeCharge {
        level: "host".into(),
        node: "host1".into(),
        amounts: vec![("host_concurrency".into(), 1)],
    });
    let plan = fx.plan_seeded(1, true);
    let started = fx.started(&plan);
    let on_host1 = started.iter().filter(|s| s.1.starts_with("db1")).count();
    assert_eq!(on_host1, 1, "{started:?}");
    assert_eq!(started.len(), 3);
    let resource_waits: Vec<&Waiting> = plan
        .waiting
        .iter()
        .filter(|w| w.reason.code() == "resources")
        .collect();
    assert!(!resource_waits.is_empty());
    let WaitReason::Resource { holders, .. } = &resource_waits[0].reason else {
        unreachable!()
    };
    assert!(holders.total > 0 && !holders.named.is_empty());
}

#[test]
fn replicas_share_one_resource_block_and_never_start_twice() {
    let v = json!({
        "bistro_settings": {
            "enabled": true,
            "nodes": {"levels": ["host", "db"], "node_order": "original",
                      "node_sources": [{"source": "manual", "prefs": {"host1": ["db"], "host2": ["db"]}}]},
            "resources": {"db": {"db_concurrency": {"limit": 1, "default": 1}}}
        },
        "bistro_job->job": {"owner": "o"},
        "bistro_job->free": {"owner": "o", "resources": {"db_concurrency": 0}}
    });
    let fx = Fixture::new(Config::from_value_unchecked(&v).unwrap());
    let started = fx.started(&fx.plan_seeded(0, false));
    assert_eq!(started.iter().filter(|s| s.0 == "job").count(), 1);
    assert_eq!(started.iter().filter(|s| s.0 == "free").count(), 1);
}

#[test]
fn orphans_are_tasks_of_gone_jobs_or_nodes() {
    let mut fx = Fixture::new(config(
        "roundrobin",
        json!({"job1": {"owner": "o"}, "off": {"owner": "o", "enabled": false}}),
    ));
    fx.run("job1", "db11");
    fx.run("gone_job", "db12");
    fx.run("job1", "gone_node");
    fx.run("off", "db21");
    let plan = fx.plan_seeded(0, false);
    assert_eq!(plan.orphans, vec![1, 2, 3]);
}

#[test]
fn dependencies_wait_for_done_on_the_same_node() {
    let mut fx = Fixture::new(config(
        "ranked_priority",
        json!({"job1": {"owner": "o", "priority": 10, "depends_on": ["job2"]}, "job2": {"owner": "o", "priority": 1}}),
    ));
    let started = fx.started(&fx.plan_seeded(0, false));
    assert!(started.iter().all(|s| s.0 == "job2"), "{started:?}");
    fx.statuses
        .insert("job2", "db11", TaskStatus::new(bits::DONE, 1), 1);
    fx.run("job2", "db12");
    let started = fx.started(&fx.plan_seeded(0, false));
    assert!(started.contains(&("job1".into(), "db11".into())));
    assert!(!started.iter().any(|s| s.0 == "job1" && s.1 != "db11"));
}

#[test]
fn a_dependency_on_a_missing_job_runs_nothing() {
    let fx = Fixture::new(config(
        "roundrobin",
        json!({"job1": {"owner": "o", "depends_on": ["job2"]}}),
    ));
    let plan = fx.plan_seeded(0, true);
    assert!(plan.starts.is_empty());
    assert!(plan
        .waiting
        .iter()
        .all(|w| w.reason == WaitReason::JobInvalid));
}

#[test]
fn run_only_after_all_nodes_waits_for_the_whole_job() {
    let mut fx = Fixture::new(config(
        "roundrobin",
        json!({"first": {"owner": "o"}, "after": {"owner": "o", "run_only_after_all_nodes_are_done_for": ["first"],
               "resources": {"db_concurrency": 0, "host_concurrency": 0}}}),
    ));
    for db in ["db11", "db12", "db21"] {
        fx.statuses
            .insert("first", db, TaskStatus::new(bits::DONE, 1), 1);
    }
    assert!(!fx
        .started(&fx.plan_seeded(0, false))
        .iter()
        .any(|s| s.0 == "after"));
    fx.statuses
        .insert("first", "db22", TaskStatus::new(bits::DONE, 1), 1);
    assert_eq!(fx.started(&fx.plan_seeded(0, false)).len(), 4);
}

#[test]
fn statuses_done_failed_and_backoff_are_not_candidates() {
    let mut fx = Fixture::new(config("roundrobin", json!({"job1": {"owner": "o"}})));
    fx.statuses
        .insert("job1", "db11", TaskStatus::new(bits::DONE, 1), 1);
    fx.statuses
        .insert("job1", "db12", TaskStatus::new(bits::FAILED, 1), 1);
    fx.statuses.insert(
        "job1",
        "db21",
        TaskStatus {
            bits: bits::ERROR | bits::USES_BACKOFF,
            data: None,
            time: 990,
            backoff: 15,
        },
        1,
    );
    let plan = fx.plan_seeded(0, true);
    assert_eq!(
        fx.started(&plan),
        vec![("job1".to_string(), "db22".to_string())]
    );
    let reasons: Vec<&str> = plan.waiting.iter().map(|w| w.reason.code()).collect();
    assert_eq!(reasons, vec!["failed", "backoff"]);
}

#[test]
fn disabled_nodes_and_filters_exclude_tasks() {
    let v = json!({
        "bistro_settings": {
            "enabled": true,
            "nodes": {"levels": ["host", "db"], "node_sources": [{"source": "manual", "prefs": {
                "host1": {"children": ["db11"], "disabled": true}, "host2": ["db21", "db22"]}}]},
            "resources": {}
        },
        "bistro_job->j": {"owner": "o", "filters": {"db": {"blacklist": ["db22"]}}}
    });
    let fx = Fixture::new(Config::from_value_unchecked(&v).unwrap());
    let plan = fx.plan_seeded(0, true);
    assert_eq!(
        fx.started(&plan),
        vec![("j".to_string(), "db21".to_string())]
    );
    let mut reasons: Vec<String> = plan
        .waiting
        .iter()
        .map(|w| w.reason.describe(&fx.config, &fx.nodes, 0))
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        vec![
            "node host1 is disabled",
            "the job's db filter (blacklist) excludes node db22"
        ]
    );
}

#[test]
fn instance_level_tasks_run_on_the_instance_node() {
    let v = json!({
        "bistro_settings": {"enabled": true, "nodes": {"levels": [], "node_sources": [{"source": "empty"}]}, "resources": {}},
        "bistro_job->j": {"owner": "o"}
    });
    let fx = Fixture::new(Config::from_value_unchecked(&v).unwrap());
    assert_eq!(
        fx.started(&fx.plan_seeded(0, false)),
        vec![("j".to_string(), "inst".to_string())]
    );
}

/// A charge as (level, node, [(resource, amount)]).
type Charge<'a> = (&'a str, &'a str, &'a [(&'a str, i64)]);

/// A running task holding explicit charges.
fn running_with(job: &str, node: &str, charges: &[Charge]) -> RunningTask {
    RunningTask {
        job: job.into(),
        node: node.into(),
        invocation: crate::model::task::InvocationId {
            start_time: 1,
            rand: 1,
        },
        charges: charges
            .iter()
            .map(|(level, node, amounts)| NodeCharge {
                level: level.to_string(),
                node: node.to_string(),
                amounts: amounts.iter().map(|(r, a)| (r.to_string(), *a)).collect(),
            })
            .collect(),
        next_backoff: BackoffDuration::default(),
        attempts: 1,
        worker_shard: "local".into(),
        timeout_sec: None,
    }
}

/// Bistro's test_scheduler InvokePolicyAndCheckOrphans. Bistro inspects the policy's
/// input (free blocks host1=7, host2=4; db blocks (2,5), (1,3), (1,2), (2,5), (0,2));
/// our pass is pure, so we assert what those blocks let start and what they stop.
#[test]
fn running_tasks_hold_their_slots_and_tasks_of_gone_jobs_nodes_and_disabled_ones_are_orphans() {
    let v = json!({
        "bistro_settings": {
            "enabled": true,
            "nodes": {"levels": ["host", "db"], "node_order": "lexicographic",
                      "node_sources": [{"source": "manual", "prefs": {
                          "host1": ["host1.db2", "host1.db1"],
                          "host2": ["host2.db2", "host2.db1", "host2.db_disabled"],
                          "host2.db_disabled": {"disabled": true}}}]},
            "resources": {
                "host": {"host_concurrency": {"limit": 10, "default": 3}},
                "db": {"db_concurrency": {"limit": 2, "default": 1},
                       "chicken": {"limit": 5, "default": 3}}
            }
        },
        "bistro_job->job": {"owner": "o", "resources": {"db_concurrency": 2}},
        "bistro_job->job_disabled": {"owner": "o", "enabled": false, "resources": {"chicken": 2}}
    });
    let mut fx = Fixture::new(Config::from_value_unchecked(&v).unwrap());
    let (host, db_conc, chicken) = ("host_concurrency", "db_concurrency", "chicken");
    fx.running = vec![
        running_with(
            "unknown_job",
            "host2.db1",
            &[
                ("host", "host2", &[(host, 3)]),
                ("db", "host2.db1", &[(db_conc, 1), (chicken, 3)]),
            ],
        ),
        running_with(
            "job",
            "bad_node",
            &[("db", "bad_node", &[(db_conc, 2), (chicken, 3)])],
        ),
        running_with(
            "job_disabled",
            "host1.db2",
            &[
                ("host", "host1", &[(host, 3)]),
                ("db", "host1.db2", &[(db_conc, 1), (chicken, 2)]),
            ],
        ),
        running_with(
            "job",
            "host2.db_disabled",
            &[
                ("host", "host2", &[(host, 3)]),
                ("db", "host2.db_disabled", &[(db_conc, 2), (chicken, 3)]),
            ],
        ),
    ];
    let plan = fx.plan_seeded(0, true);
    assert_eq!(plan.orphans, vec![0, 1, 2, 3]);
    // Candidates are tried last (lexicographically) first; db_concurrency 2 fits only
    // where no running task holds a db slot.
    assert_eq!(
        fx.started(&plan),
        vec![
            ("job".to_string(), "host2.db2".to_string()),
            ("job".to_string(), "host1.db1".to_string())
        ]
    );
    let mut short: Vec<(String, i64, i64, i64)> = plan
        .waiting
        .iter()
        .filter(|w| fx.config.jobs[w.job].name == "job")
        .map(|w| match &w.reason {
            WaitReason::Resource {
                node,
                resource,
                need,
                used,
                limit,
                ..
            } => {
                assert_eq!(fx.config.settings.resources.names[*resource], db_conc);
                (fx.nodes.list[*node].name.clone(), *need, *used, *limit)
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    short.sort();
    assert_eq!(
        short,
        vec![
            ("host1.db2".to_string(), 2, 1, 2),
            ("host2.db1".to_string(), 2, 1, 2)
        ]
    );
}

/// Bistro's test_job HandleShouldRunOn: a filter on an ancestor's level avoids the
/// ancestor's descendants too.
#[test]
fn a_filter_on_an_ancestor_level_avoids_its_descendants() {
    let fx = Fixture::new(config(
        "roundrobin",
        json!({"j": {"owner": "o", "filters": {"host": {"whitelist": ["host2"]}}}}),
    ));
    let mut started: Vec<String> = fx
        .started(&fx.plan_seeded(0, false))
        .into_iter()
        .map(|s| s.1)
        .collect();
    started.sort();
    assert_eq!(started, vec!["db21", "db22"]);
}

/// Bistro's test_level_for_tasks CanSelectLevel.
#[test]
fn level_for_tasks_selects_the_level_whose_nodes_become_tasks() {
    let with = |level_for_tasks: Option<&str>| {
        let mut v = json!({
            "bistro_settings": {"enabled": true,
                "nodes": {"levels": ["l1"], "node_sources": [{"source": "manual", "prefs": {"a_node": []}}]},
                "resources": {}},
            "bistro_job->j": {"owner": "o"}
        });
        if let Some(level) = level_for_tasks {
            v["bistro_settings"]["level_for_tasks"] = json!(level);
        }
        let fx = Fixture::new(Config::from_value_unchecked(&v).unwrap());
        fx.started(&fx.plan_seeded(0, false))
    };
    assert_eq!(with(None), vec![("j".to_string(), "a_node".to_string())]);
    assert_eq!(
        with(Some("instance")),
        vec![("j".to_string(), "inst".to_string())]
    );
}

#[test]
fn randomized_priority_survives_huge_zero_and_negative_priorities() {
    let fx = Fixture::new(config(
        "randomized_priority",
        json!({"big1": {"owner": "o", "priority": 1e308}, "big2": {"owner": "o", "priority": 1e308},
               "zero": {"owner": "o", "priority": 0}, "negative": {"owner": "o", "priority": -5}}),
    ));
    assert!(
        fx.config.jobs.iter().all(Job::can_run),
        "any finite priority is valid"
    );
    for seed in 0..20 {
        let started = fx.started(&fx.plan_seeded(seed, false));
        assert_eq!(started.len(), 4, "the db limit of 1 allows one task per db");
        assert!(
            started.iter().all(|(job, _)| job.starts_with("big")),
            "jobs with priority <= 0 go last: {started:?}"
        );
    }
    let only_zero = Fixture::new(config(
        "randomized_priority",
        json!({"zero": {"owner": "o", "priority": 0}, "negative": {"owner": "o", "priority": -1}}),
    ));
    assert_eq!(
        only_zero.started(&only_zero.plan_seeded(3, false)).len(),
        4,
        "with no positive priority left, jobs are drawn uniformly"
    );
}

#[test]
fn all_nodes_gates_count_filtered_nodes_as_done_but_not_disabled_ones() {
    let hosts =
        json!({"host1": {"children": ["db11"], "disabled": true}, "host2": ["db21", "db22"]});
    let mut v = json!({"bistro_settings": {"enabled": true,
        "nodes": {"levels": ["host", "db"], "node_sources": [{"source": "manual", "prefs": hosts}]},
        "resources": {}},
        "bistro_job->first": {"owner": "o", "filters": {"db": {"blacklist": ["db22"]}}},
        "bistro_job->after": {"owner": "o", "level_for_tasks": "host",
                              "run_only_after_all_nodes_are_done_for": ["first"]}});
    let mut fx = Fixture::new(Config::from_value_unchecked(&v).unwrap());
    fx.statuses
        .insert("first", "db21", TaskStatus::new(bits::DONE, 1), 1);
    let plan = fx.plan_seeded(0, true);
    assert!(
        !fx.started(&plan).iter().any(|s| s.0 == "after"),
        "db11 is only disabled: it may come back and must run first"
    );
    fx.statuses
        .insert("first", "db11", TaskStatus::new(bits::DONE, 1), 1);
    let started = fx.started(&fx.plan_seeded(0, false));
    assert_eq!(
        started,
        [("after".to_string(), "host2".to_string())],
        "db22 is filtered out (never runs), so first is done everywhere it can run"
    );
    v["bistro_job->first"]["filters"] = json!({});
    let fx = Fixture::new(Config::from_value_unchecked(&v).unwrap());
    assert!(fx
        .started(&fx.plan_seeded(0, false))
        .iter()
        .all(|s| s.0 == "first"));
}
