//! Worker resources, placement and selectors (bistro-scheduling §3.3,
//! bistro-runtime §5.13), and [`plan_on`](crate::scheduler::plan_on) end to end.

use super::*;
use crate::foundation::status::BackoffDuration;
use crate::model::nodes::fetch_nodes;
use crate::model::task::InvocationId;
use crate::scheduler::{plan_on, PassInput, Plan, Statuses};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

const HOSTS: &str = r#"{"host1": ["db11", "db12"], "host2": ["db21", "db22"]}"#;

/// Levels instance, host, db, worker; `db_concurrency` 1 per db node; worker-level
/// resources and other settings from `settings`; jobs by name.
fn config(settings: Value, jobs: Value) -> Config {
    let mut s = json!({
        "enabled": true,
        "scheduler": "ranked_priority",
        "nodes": {"levels": ["host", "db"], "node_order": "original",
                  "node_sources": [{"source": "manual",
                                    "prefs": serde_json::from_str::<Value>(HOSTS).unwrap()}]},
        "resources": {
            "db": {"db_concurrency": {"limit": 1, "default": 1}},
            "worker": {"slots": {"limit": 2, "default": 1, "weight": 1}}
        }
    });
    for (k, v) in settings.as_object().unwrap() {
        s[k] = v.clone();
    }
    let mut v = json!({ "bistro_settings": s });
    for (name, job) in jobs.as_object().unwrap() {
        v[format!("bistro_job->{name}")] = job.clone();
    }
    let config = Config::from_value_unchecked(&v).unwrap();
    for job in &config.jobs {
        assert!(job.errors.is_none(), "{}: {:?}", job.name, job.errors);
    }
    config
}

fn known(shard: &str, hostname: &str, port: u16, healthy: bool) -> KnownWorker {
    KnownWorker {
        shard: shard.into(),
        hostname: hostname.into(),
        port,
        healthy,
    }
}

fn nodes(config: &Config) -> Nodes {
    fetch_nodes(&config.settings, "inst").unwrap()
}

fn node(nodes: &Nodes, name: &str) -> usize {
    nodes.list.iter().position(|n| n.name == name).unwrap()
}

fn job<'a>(config: &'a Config, name: &str) -> &'a Job {
    config.job(name).unwrap()
}

fn frees(slots: &WorkerSlots) -> Vec<(&str, Vec<i64>)> {
    slots
        .workers
        .iter()
        .map(|w| (w.shard.as_str(), w.free.clone()))
        .collect()
}

fn shard_of(slots: &WorkerSlots, p: Placement) -> &str {
    match p {
        Placement::Worker(w) => &slots.workers[w].shard,
        other => panic!("not placed: {other:?}"),
    }
}

fn running_on(job: &str, node: &str, charges: Vec<NodeCharge>) -> RunningTask {
    RunningTask {
        job: job.into(),
        node: node.into(),
        invocation: InvocationId {
            start_time: 1,
            rand: 1,
        },
        charges,
        next_backoff: BackoffDuration::default(),
        attempts: 1,
        worker_shard: "s1".into(),
        timeout_sec: None,
    }
}

fn charge(level: &str, node: &str, amounts: &[(&str, i64)]) -> NodeCharge {
    NodeCharge {
        level: level.into(),
        node: node.into(),
        amounts: amounts.iter().map(|(n, a)| (n.to_string(), *a)).collect(),
    }
}

#[test]
fn worker_resources_take_the_first_override_of_host_port_host_then_shard() {
    let c = config(
        json!({
            "resources": {"worker": {"slots": {"limit": 2, "default": 1},
                                     "mem": {"limit": 10, "default": 0}}},
            "worker_resources_override": {
                "h1:1": {"slots": 5},
                "h1": {"slots": 6, "mem": 3},
                "s3": {"slots": 7},
                "s5": {"slots": 8}
            }
        }),
        json!({}),
    );
    let slots = WorkerSlots::new(
        &c,
        &[
            known("s5", "h1", 3, true),
            known("s4", "h4", 1, true),
            known("s3", "h3", 1, true),
            known("s2", "h1", 2, true),
            known("s1", "h1", 1, true),
        ],
        &[],
    );
    assert_eq!(
        frees(&slots),
        vec![
            // host:port; resources it does not name keep the level's limit
            ("s1", vec![5, 10]),
            // host
            ("s2", vec![6, 3]),
            // shard
            ("s3", vec![7, 10]),
            // no override
            ("s4", vec![2, 10]),
            // the host's override wins over the shard's
            ("s5", vec![6, 3]),
        ]
    );
    assert!(!slots.halted);
}

#[test]
fn running_tasks_worker_level_charges_are_subtracted_from_their_worker() {
    let c = config(
        json!({
            "resources": {"db": {"db_concurrency": {"limit": 1, "default": 1}},
                          "worker": {"slots": {"limit": 4, "default": 1},
                                     "mem": {"limit": 10, "default": 0}}}
        }),
        json!({}),
    );
    let running = vec![
        running_on(
            "j",
            "db11",
            vec![
                charge("db", "db11", &[("db_concurrency", 1)]),
                charge("worker", "s1", &[("slots", 1), ("mem", 4)]),
            ],
        ),
        running_on("j", "db12", vec![charge("worker", "s1", &[("slots", 2)])]),
        // Another level's node that happens to share the shard's name.
        running_on(
            "j",
            "db21",
            vec![charge("db", "s2", &[("db_concurrency", 1)])],
        ),
        // A worker the pass does not know.
        running_on("j", "db22", vec![charge("worker", "s9", &[("slots", 1)])]),
    ];
    let slots = WorkerSlots::new(
        &c,
        &[known("s1", "h1", 1, true), known("s2", "h2", 1, true)],
        &running,
    );
    assert_eq!(frees(&slots), vec![("s1", vec![1, 6]), ("s2", vec![4, 10])]);
}

#[test]
fn roundrobin_moves_its_cursor_and_skips_unhealthy_workers() {
    let c = config(json!({}), json!({"j": {"owner": "o"}}));
    let n = nodes(&c);
    let db11 = node(&n, "db11");
    let mut slots = WorkerSlots::new(
        &c,
        &[
            known("s1", "h1", 1, true),
            known("s2", "h2", 1, false),
            known("s3", "h3", 1, true),
        ],
        &[],
    );
    let j = job(&c, "j");
    let mut placed = Vec::new();
    for _ in 0..4 {
        let p = slots.place(&c, j, &n, db11);
        placed.push(shard_of(&slots, p).to_string());
    }
    assert_eq!(placed, vec!["s1", "s3", "s1", "s3"]);
    assert_eq!(
        frees(&slots),
        vec![("s1", vec![0]), ("s2", vec![2]), ("s3", vec![0])]
    );
    // Healthy workers exist but none fits: other tasks may still run.
    assert_eq!(slots.place(&c, j, &n, db11), Placement::DidNotRun);
    assert!(!slots.halted);
}

#[test]
fn roundrobin_cursor_starts_after_the_last_worker_chosen() {
    let c = config(json!({}), json!({"j": {"owner": "o"}}));
    let n = nodes(&c);
    let db11 = node(&n, "db11");
    let mut slots = WorkerSlots::new(
        &c,
        &[
            known("s1", "h1", 1, true),
            known("s2", "h2", 1, true),
            known("s3", "h3", 1, true),
        ],
        &[],
    );
    slots.cursors.insert(String::new(), 1);
    let j = job(&c, "j");
    let p = slots.place(&c, j, &n, db11);
    assert_eq!(shard_of(&slots, p), "s2");
    assert_eq!(slots.cursors[""], 2);
    let p = slots.place(&c, j, &n, db11);
    assert_eq!(shard_of(&slots, p), "s3");
    assert_eq!(slots.cursors[""], 0);
}

#[test]
fn no_healthy_worker_stops_the_pass() {
    let c = config(json!({}), json!({"j": {"owner": "o"}}));
    let n = nodes(&c);
    let db11 = node(&n, "db11");
    let j = job(&c, "j");

    let mut none = WorkerSlots::new(&c, &[], &[]);
    assert_eq!(none.place(&c, j, &n, db11), Placement::DoNotRunMore);
    assert!(none.halted);

    for selector in ["roundrobin", "busiest"] {
        let c = config(
            json!({"remote_worker_selector": selector}),
            json!({"j": {"owner": "o"}}),
        );
        let mut sick = WorkerSlots::new(
            &c,
            &[known("s1", "h1", 1, false), known("s2", "h2", 1, false)],
            &[],
        );
        assert_eq!(
            sick.place(&c, j, &n, db11),
            Placement::DoNotRunMore,
            "{selector}"
        );
        assert!(sick.halted);
        // Once halted, nothing is placed, even on a worker that became healthy.
        sick.workers[0].healthy = true;
        assert_eq!(sick.place(&c, j, &n, db11), Placement::DidNotRun);
        assert_eq!(sick.workers[0].free, vec![2]);
    }
}

#[test]
fn host_placement_restricts_to_that_hosts_workers() {
    let c = config(
        json!({}),
        json!({
            "on_h2": {"owner": "o", "host_placement": "h2"},
            "on_h9": {"owner": "o", "host_placement": "h9"}
        }),
    );
    let n = nodes(&c);
    let db11 = node(&n, "db11");
    let mut slots = WorkerSlots::new(
        &c,
        &[
            known("s1", "h1", 1, true),
            known("s2", "h2", 1, true),
            known("s3", "h2", 2, true),
        ],
        &[],
    );
    let on_h2 = job(&c, "on_h2");
    let mut placed = Vec::new();
    for _ in 0..4 {
        let p = slots.place(&c, on_h2, &n, db11);
        placed.push(shard_of(&slots, p).to_string());
    }
    assert_eq!(placed, vec!["s2", "s3", "s2", "s3"]);
    assert!(slots.cursors.contains_key("h2"), "one cursor per host pool");
    assert_eq!(slots.place(&c, on_h2, &n, db11), Placement::DidNotRun);
    assert_eq!(slots.workers[0].free, vec![2], "h1's worker is untouched");

    // A host without workers stops the whole pass.
    assert_eq!(
        slots.place(&c, job(&c, "on_h9"), &n, db11),
        Placement::DoNotRunMore
    );
    assert!(slots.halted);
}

#[test]
fn level_for_host_placement_uses_the_nodes_ancestor_and_host_placement_wins() {
    let c = config(
        json!({}),
        json!({
            "by_level": {"owner": "o", "level_for_host_placement": "host"},
            "both": {"owner": "o", "level_for_host_placement": "host",
                     "host_placement": "host1"}
        }),
    );
    let n = nodes(&c);
    let mut slots = WorkerSlots::new(
        &c,
        &[known("s1", "host1", 1, true), known("s2", "host2", 1, true)],
        &[],
    );
    let by_level = job(&c, "by_level");
    for _ in 0..2 {
        let p = slots.place(&c, by_level, &n, node(&n, "db21"));
        assert_eq!(shard_of(&slots, p), "s2");
    }
    let p = slots.place(&c, by_level, &n, node(&n, "db12"));
    assert_eq!(shard_of(&slots, p), "s1");
    let p = slots.place(&c, job(&c, "both"), &n, node(&n, "db22"));
    assert_eq!(shard_of(&slots, p), "s1");
}

#[test]
fn worker_level_filters_apply_to_host_names_but_not_tag_whitelist() {
    let c = config(
        json!({}),
        json!({
            "only_h2": {"owner": "o", "filters": {"worker": {"whitelist": ["h2"]}}},
            "not_h2": {"owner": "o", "filters": {"worker": {"blacklist_regex": "^h2$"}}},
            "tagged": {"owner": "o", "filters": {"worker": {"tag_whitelist": ["x"]}}},
            "by_shard": {"owner": "o", "filters": {"worker": {"whitelist": ["s1", "s2"]}}}
        }),
    );
    let n = nodes(&c);
    let db11 = node(&n, "db11");
    let workers = [known("s1", "h1", 1, true), known("s2", "h2", 1, true)];
    let mut slots = WorkerSlots::new(&c, &workers, &[]);
    for _ in 0..2 {
        let p = slots.place(&c, job(&c, "only_h2"), &n, db11);
        assert_eq!(shard_of(&slots, p), "s2");
    }
    assert_eq!(
        slots.place(&c, job(&c, "only_h2"), &n, db11),
        Placement::DidNotRun
    );
    let mut slots = WorkerSlots::new(&c, &workers, &[]);
    for _ in 0..2 {
        let p = slots.place(&c, job(&c, "not_h2"), &n, db11);
        assert_eq!(shard_of(&slots, p), "s1");
    }
    let mut slots = WorkerSlots::new(&c, &workers, &[]);
    let p = slots.place(&c, job(&c, "tagged"), &n, db11);
    assert_eq!(shard_of(&slots, p), "s1", "workers have no tags to filter");
    // Filters see host names, not shard ids.
    assert_eq!(
        slots.place(&c, job(&c, "by_shard"), &n, db11),
        Placement::DidNotRun
    );
}

#[test]
fn busiest_picks_the_fitting_worker_left_with_least_weighted_free_resources() {
    let c = config(
        json!({
            "remote_worker_selector": "busiest",
            "resources": {"worker": {"slots": {"limit": 4, "default": 1, "weight": 2},
                                     "mem": {"limit": 10, "default": 1, "weight": 1}}},
            "worker_resources_override": {
                "s2": {"slots": 2},
                "s3": {"slots": 1, "mem": 3},
                "s4": {"slots": 3, "mem": 2}
            }
        }),
        json!({"j": {"owner": "o"}, "only_h1": {"owner": "o", "filters": {"worker": {"whitelist": ["h1"]}}}}),
    );
    let n = nodes(&c);
    let db11 = node(&n, "db11");
    let mut slots = WorkerSlots::new(
        &c,
        &[
            known("s1", "h1", 1, true),
            known("s2", "h2", 1, true),
            known("s3", "h3", 1, false),
            known("s4", "h4", 1, true),
        ],
        &[],
    );
    let j = job(&c, "j");
    // Left over after the task, (slots - 1) * 2 + (mem - 1) * 1: s1 15, s2 11, s3 2
    // (unhealthy), s4 5.
    let p = slots.place(&c, j, &n, db11);
    assert_eq!(shard_of(&slots, p), "s4");
    // s4 then leaves 2.
    let p = slots.place(&c, j, &n, db11);
    assert_eq!(shard_of(&slots, p), "s4");
    // s4 has no mem left; s2 (11) beats s1 (15).
    let p = slots.place(&c, j, &n, db11);
    assert_eq!(shard_of(&slots, p), "s2");
    // s2 now leaves 8 and s1 15.
    let p = slots.place(&c, j, &n, db11);
    assert_eq!(shard_of(&slots, p), "s2");
    let p = slots.place(&c, j, &n, db11);
    assert_eq!(shard_of(&slots, p), "s1");
    assert_eq!(
        frees(&slots),
        vec![
            ("s1", vec![3, 9]),
            ("s2", vec![0, 8]),
            ("s3", vec![1, 3]),
            ("s4", vec![1, 0])
        ]
    );
    // Filters are applied.
    let p = slots.place(&c, job(&c, "only_h1"), &n, db11);
    assert_eq!(shard_of(&slots, p), "s1");
    // Healthy workers, none fits: other tasks may still run.
    let mut full = slots.clone();
    full.workers[0].free = vec![0, 0];
    assert_eq!(full.place(&c, j, &n, db11), Placement::DidNotRun);
    assert!(!full.halted);
}

#[test]
fn busiest_breaks_ties_by_shard_order() {
    let c = config(
        json!({"remote_worker_selector": "busiest"}),
        json!({"j": {"owner": "o"}}),
    );
    let n = nodes(&c);
    let db11 = node(&n, "db11");
    let mut slots = WorkerSlots::new(
        &c,
        &[known("s2", "h2", 1, true), known("s1", "h1", 1, true)],
        &[],
    );
    let p = slots.place(&c, job(&c, "j"), &n, db11);
    assert_eq!(shard_of(&slots, p), "s1");
}

#[test]
fn worker_charge_names_the_shard_and_the_jobs_worker_resources() {
    let c = config(
        json!({}),
        json!({"j": {"owner": "o", "resources": {"slots": 2}}}),
    );
    let slots = WorkerSlots::new(
        &c,
        &[known("s1", "h1", 1, true), known("s2", "h2", 1, true)],
        &[],
    );
    assert_eq!(
        slots.charge(&c, job(&c, "j"), 1),
        charge("worker", "s2", &[("slots", 2)])
    );
}

struct Pass {
    config: Config,
    nodes: Nodes,
    statuses: Statuses,
}

impl Pass {
    fn new(settings: Value, jobs: Value) -> Self {
        let config = config(settings, jobs);
        let nodes = nodes(&config);
        Self {
            config,
            nodes,
            statuses: Statuses::default(),
        }
    }

    fn plan(&self, running: &[RunningTask], slots: &mut WorkerSlots) -> Plan {
        let input = PassInput {
            config: &self.config,
            nodes: &self.nodes,
            statuses: &self.statuses,
            running,
            now: 1000,
        };
        plan_on(&input, &mut StdRng::seed_from_u64(1), false, Some(slots))
    }

    /// (job, node, worker shard) of each start.
    fn started<'a>(
        &'a self,
        plan: &Plan,
        slots: &'a WorkerSlots,
    ) -> Vec<(&'a str, &'a str, &'a str)> {
        plan.starts
            .iter()
            .map(|s| {
                (
                    self.config.jobs[s.job].name.as_str(),
                    self.nodes.list[s.node].name.as_str(),
                    slots.workers[s.worker.expect("placed on a worker")]
                        .shard
                        .as_str(),
                )
            })
            .collect()
    }
}

#[test]
fn plan_on_spreads_tasks_over_workers_within_their_limits() {
    let pass = Pass::new(
        json!({"resources": {"db": {"db_concurrency": {"limit": 1, "default": 1}},
                             "worker": {"slots": {"limit": 1, "default": 1}}}}),
        json!({"j": {"owner": "o"}}),
    );
    let mut slots = WorkerSlots::new(
        &pass.config,
        &[known("s1", "h1", 1, true), known("s2", "h2", 1, true)],
        &[],
    );
    let plan = pass.plan(&[], &mut slots);
    let started = pass.started(&plan, &slots);
    assert_eq!(started.len(), 2, "{started:?}");
    let mut shards: Vec<&str> = started.iter().map(|s| s.2).collect();
    shards.sort();
    assert_eq!(shards, vec!["s1", "s2"]);
    for s in &plan.starts {
        let shard = &slots.workers[s.worker.unwrap()].shard;
        let node = &pass.nodes.list[s.node].name;
        assert_eq!(
            s.charges,
            vec![
                charge("db", node, &[("db_concurrency", 1)]),
                charge("worker", shard, &[("slots", 1)]),
            ]
        );
    }
    assert_eq!(frees(&slots), vec![("s1", vec![0]), ("s2", vec![0])]);

    // Next pass, with those running: every worker is full.
    let running: Vec<RunningTask> = plan
        .starts
        .iter()
        .map(|s| running_on("j", &pass.nodes.list[s.node].name, s.charges.clone()))
        .collect();
    let mut slots = WorkerSlots::new(
        &pass.config,
        &[known("s1", "h1", 1, true), known("s2", "h2", 1, true)],
        &running,
    );
    assert!(pass.plan(&running, &mut slots).starts.is_empty());
}

#[test]
fn plan_on_task_without_a_worker_leaves_its_node_slots_to_other_tasks() {
    let pass = Pass::new(
        json!({}),
        json!({
            "big": {"owner": "o", "priority": 10, "resources": {"slots": 2},
                    "filters": {"db": {"whitelist": ["db11"]}}},
            "small": {"owner": "o", "priority": 1,
                      "filters": {"db": {"whitelist": ["db11"]}}}
        }),
    );
    let mut slots = WorkerSlots::new(
        &pass.config,
        &[known("s1", "h1", 1, true)],
        &[running_on(
            "x",
            "db22",
            vec![charge("worker", "s1", &[("slots", 1)])],
        )],
    );
    // `big` is tried first (ranked priority) and fits db11, but no worker has 2
    // slots; db11's single slot goes to `small`.
    let plan = pass.plan(&[], &mut slots);
    assert_eq!(pass.started(&plan, &slots), vec![("small", "db11", "s1")]);
}

#[test]
fn plan_on_with_halted_slots_starts_nothing() {
    let pass = Pass::new(json!({}), json!({"j": {"owner": "o"}}));
    let workers = [known("s1", "h1", 1, true), known("s2", "h2", 1, true)];
    let mut slots = WorkerSlots::new(&pass.config, &workers, &[]);
    slots.halted = true;
    assert!(pass.plan(&[], &mut slots).starts.is_empty());
    assert_eq!(frees(&slots), vec![("s1", vec![2]), ("s2", vec![2])]);

    // Without a healthy worker the first placement halts the pass.
    let sick = [known("s1", "h1", 1, false)];
    let mut slots = WorkerSlots::new(&pass.config, &sick, &[]);
    assert!(pass.plan(&[], &mut slots).starts.is_empty());
    assert!(slots.halted);

    // Healthy workers: the same pass starts tasks.
    let mut slots = WorkerSlots::new(&pass.config, &workers, &[]);
    assert_eq!(pass.plan(&[], &mut slots).starts.len(), 4);
}
