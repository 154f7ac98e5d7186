//! A straightforward scheduling pass, written from bistro-scheduling §4.2 with none
//! of [`plan`]'s shortcuts (compact tables, dense statuses, skipped candidates), and
//! a property test that both decide the same on random inputs: the same tasks start
//! in the same order, the same orphans, and the same reasons for every waiting task.

use super::*;
use crate::foundation::status::{bits, TaskStatus};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::Rng;
use rand::SeedableRng;
use serde_json::json;

/// The node a level's ledger keys a node by: the first of its name on its level.
fn replica_root(nodes: &Nodes, node: usize) -> usize {
    let n = &nodes.list[node];
    nodes.find(n.level, &n.name).expect("a node finds itself")
}

/// Why (job, node) is not a candidate, by name lookups.
fn reference_reason(input: &PassInput, job: &Job, node: usize) -> Option<WaitReason> {
    let config = input.config;
    let name = input.nodes.list[node].name.as_str();
    let running = input
        .running
        .iter()
        .any(|t| t.job == job.name && t.node == name);
    if running {
        return Some(WaitReason::Running);
    }
    if let Some(s) = input.statuses.get(&job.name, name) {
        if s.is_done() {
            return Some(WaitReason::Done);
        }
        if s.is_failed() {
            return Some(WaitReason::Failed);
        }
        if s.in_backoff(input.now) {
            return Some(WaitReason::Backoff {
                until: s.time + s.backoff,
            });
        }
    }
    if let Some(node) = disabled_on_path(input.nodes, node) {
        return Some(WaitReason::NodeDisabled { node });
    }
    if let Some((node, filter)) = filtered_on_path(job, input.nodes, node) {
        return Some(WaitReason::Filtered { node, filter });
    }
    for dep in &job.depends_on {
        if !input
            .statuses
            .get(dep, name)
            .is_some_and(TaskStatus::is_done)
        {
            return Some(WaitReason::DependsOn {
                job: config.job_index(dep).expect("a valid dependency"),
            });
        }
    }
    for dep in &job.run_only_after_all_nodes_are_done_for {
        let d = config.job_index(dep).expect("a valid dependency");
        let dep_job = &config.jobs[d];
        let done = input.nodes.at_level(dep_job.level_for_tasks).all(|n| {
            filtered_on_path(dep_job, input.nodes, n).is_some()
                || input
                    .statuses
                    .get(dep, &input.nodes.list[n].name)
                    .is_some_and(TaskStatus::is_done)
        });
        if !done {
            return Some(WaitReason::AllNodesOf { job: d });
        }
    }
    None
}

/// The pass of §4.2, spelled out: free slots per (level, first node of a name,
/// resource), nodes and jobs ordered with `rng` as [`plan`] orders them.
fn reference_plan(input: &PassInput, rng: &mut StdRng, explain: bool) -> Plan {
    let config = input.config;
    let settings = &config.settings;
    let defs = &settings.resources;
    let nodes = input.nodes;
    let levels = settings.levels.len();
    let mut groups: Vec<Vec<usize>> = (0..levels).map(|l| nodes.at_level(l).collect()).collect();
    for group in &mut groups {
        match settings.node_order {
            NodeOrder::Original => {}
            NodeOrder::Lexicographic => {
                group.sort_by(|&a, &b| nodes.list[a].name.cmp(&nodes.list[b].name))
            }
            NodeOrder::Random => group.shuffle(rng),
        }
    }
    let mut free: FxHashMap<(usize, usize), i64> = FxHashMap::default();
    let key = |node: usize, resource: usize| (replica_root(nodes, node), resource);
    for (i, n) in nodes.list.iter().enumerate() {
        for r in &defs.by_level[n.level] {
            free.insert(key(i, r.resource), r.limit);
        }
    }
    let mut plan = Plan::default();
    for (i, task) in input.running.iter().enumerate() {
        for charge in &task.charges {
            let Some(level) = settings.levels.id(&charge.level) else {
                continue;
            };
            let Some(node) = nodes.find(level, &charge.node) else {
                continue;
            };
            for (name, amount) in &charge.amounts {
                let defined = defs
                    .id(name)
                    .filter(|&id| defs.by_level[level].iter().any(|r| r.resource == id));
                if let Some(id) = defined {
                    *free.get_mut(&key(node, id)).expect("a block") -= amount;
                }
            }
        }
        let wanted = config.job(&task.job).is_some_and(Job::can_run)
            && nodes.list.iter().any(|n| n.enabled && n.name == task.node);
        if !wanted {
            plan.orphans.push(i);
        }
    }
    let mut job_order: Vec<usize> = (0..config.jobs.len()).collect();
    job_order.shuffle(rng);
    let mut candidates = Vec::new();
    for &j in &job_order {
        let job = &config.jobs[j];
        let group = &groups[job.level_for_tasks];
        if !job.can_run() {
            let reason = if job.errors.is_some() {
                WaitReason::JobInvalid
            } else {
                WaitReason::JobDisabled
            };
            for &n in group.iter().filter(|_| explain) {
                let name = &nodes.list[n].name;
                let settled = input
                    .running
                    .iter()
                    .any(|t| t.job == job.name && &t.node == name)
                    || input
                        .statuses
                        .get(&job.name, name)
                        .is_some_and(TaskStatus::is_done);
                if !settled {
                    plan.waiting.push(Waiting {
                        job: j,
                        node: n,
                        reason: reason.clone(),
                    });
                }
            }
            continue;
        }
        let mut listed = Vec::new();
        for (pos, &n) in group.iter().enumerate() {
            match reference_reason(input, job, n) {
                None => listed.push(pos as u32),
                Some(WaitReason::Running | WaitReason::Done) => {}
                Some(reason) if explain => plan.waiting.push(Waiting {
                    job: j,
                    node: n,
                    reason,
                }),
                Some(_) => {}
            }
        }
        candidates.push(JobCandidates {
            job: j,
            nodes: Candidates::listed(listed),
            priority: job.priority,
        });
    }
    let mut started: HashSet<(usize, usize)> = HashSet::new();
    let mut shortages = Vec::new();
    let mut try_start = |j: usize, pos: usize| -> TryStart {
        let job = &config.jobs[j];
        let n = groups[job.level_for_tasks][pos];
        let task = (j, replica_root(nodes, n));
        let shortage = nodes.upward(n).find_map(|u| {
            defs.by_level[nodes.list[u].level].iter().find_map(|r| {
                let free = free[&key(u, r.resource)];
                let need = job.resources[r.resource];
                (need > free).then_some(Shortage {
                    node: u,
                    resource: r.resource,
                    need,
                    free,
                    limit: r.limit,
                })
            })
        });
        if let Some(shortage) = shortage {
            if explain && !started.contains(&task) {
                shortages.push((j, n, shortage));
            }
            return TryStart::DidNotRun;
        }
        if !started.insert(task) {
            return TryStart::DidNotRun;
        }
        for u in nodes.upward(n) {
            for r in &defs.by_level[nodes.list[u].level] {
                *free.get_mut(&key(u, r.resource)).expect("a block") -= job.resources[r.resource];
            }
        }
        plan.starts.push(PlannedStart {
            job: j,
            node: n,
            charges: charges_for(config, nodes, job, n),
            worker: None,
        });
        TryStart::Started
    };
    policy(settings.scheduler).schedule(candidates, rng, &mut try_start);
    if explain {
        explain::add_shortages(&mut plan, input, shortages);
    }
    plan
}

/// A random problem: a config, a node tree with replicas and disabled nodes,
/// statuses and running tasks, all drawn from `seed`.
struct Problem {
    config: Config,
    nodes: Nodes,
    statuses: Statuses,
    running: Vec<RunningTask>,
}

const NOW: i64 = 1000;

impl Problem {
    fn new(seed: u64) -> Self {
        let mut r = StdRng::seed_from_u64(seed);
        let depth = r.gen_range(1..=3usize);
        let level_names: Vec<String> = (1..=depth).map(|l| format!("l{l}")).collect();
        let all_levels: Vec<String> = std::iter::once("instance".to_string())
            .chain(level_names.iter().cloned())
            .collect();
        // A few names per level, so that replicas (one name twice on a level) occur.
        let mut nodes = Nodes::with_instance("inst");
        let mut parents = vec![0];
        for level in 1..=depth {
            let mut next = Vec::new();
            for &p in &parents {
                for _ in 0..r.gen_range(0..=4) {
                    let name = format!("{}n{}", level_names[level - 1], r.gen_range(0..8));
                    // Now and then a node skips a level, right below the instance.
                    let parent = if level >= 2 && r.gen_bool(0.05) { 0 } else { p };
                    next.push(nodes.push(name, level, parent, r.gen_bool(0.9)));
                }
            }
            parents = next;
        }
        let mut resources = json!({});
        let mut resource_names = Vec::new();
        for level in &all_levels {
            for k in 0..r.gen_range(0..=2) {
                // Now and then a name on two levels: one resource, two limits.
                let name = if k == 0 && r.gen_bool(0.2) {
                    "shared".to_string()
                } else {
                    format!("{level}_r{k}")
                };
                resources[level][&name] =
                    json!({"limit": r.gen_range(0..=4), "default": r.gen_range(0..=2)});
                resource_names.push(name);
            }
        }
        let policies = [
            "roundrobin",
            "ranked_priority",
            "randomized_priority",
            "long_tail",
        ];
        let orders = ["random", "original", "lexicographic"];
        let mut v = json!({"bistro_settings": {
            "enabled": true,
            "scheduler": policies[r.gen_range(0..policies.len())],
            "nodes": {"levels": level_names, "node_order": orders[r.gen_range(0..orders.len())],
                      "node_sources": []},
            "resources": resources,
        }});
        let jobs = r.gen_range(1..=4);
        let job_names: Vec<String> = (0..jobs).map(|j| format!("job{j}")).collect();
        let mut job_levels = Vec::new();
        for name in &job_names {
            let level = r.gen_range(0..=depth);
            job_levels.push(level);
            let priority = [0.0, 1.0, 5.0, 10.0, -1.0][r.gen_range(0..5)];
            let mut job = json!({"owner": "o", "level_for_tasks": all_levels[level],
                                 "priority": priority});
            if r.gen_bool(0.1) {
                job["enabled"] = json!(false);
            }
            for res in &resource_names {
                if r.gen_bool(0.3) {
                    job["resources"][res] = json!(r.gen_range(0..=3));
                }
            }
            if r.gen_bool(0.2) {
                let level = r.gen_range(1..=depth);
                let kind = ["whitelist", "blacklist"][r.gen_range(0..2)];
                let names: Vec<String> = (0..3)
                    .map(|_| format!("l{level}n{}", r.gen_range(0..8)))
                    .collect();
                job["filters"][&all_levels[level]] = json!({kind: names});
            }
            v[format!("bistro_job->{name}")] = job;
        }
        for (j, name) in job_names.iter().enumerate() {
            let others: Vec<&String> = job_names
                .iter()
                .enumerate()
                .filter(|&(o, _)| o != j && job_levels[o] == job_levels[j])
                .map(|(_, n)| n)
                .collect();
            if !others.is_empty() && r.gen_bool(0.25) {
                let dep = others[r.gen_range(0..others.len())];
                let key = if r.gen_bool(0.7) {
                    "depends_on"
                } else {
                    "run_only_after_all_nodes_are_done_for"
                };
                v[format!("bistro_job->{name}")][key] = json!([dep]);
            }
        }
        let config = Config::from_value_unchecked(&v).expect("a valid config");
        let mut statuses = Statuses::default();
        let mut running = Vec::new();
        for _ in 0..r.gen_range(0..=nodes.list.len() * 2) {
            let job = &config.jobs[r.gen_range(0..config.jobs.len())];
            let node = r.gen_range(0..nodes.list.len());
            let name = nodes.list[node].name.clone();
            if r.gen_bool(0.1) {
                let charges = if r.gen_bool(0.8) {
                    charges_for(&config, &nodes, job, node)
                } else {
                    vec![NodeCharge {
                        level: "nowhere".into(),
                        node: name.clone(),
                        amounts: vec![("shared".into(), 1)],
                    }]
                };
                running.push(RunningTask {
                    job: job.name.clone(),
                    node: name,
                    invocation: crate::model::task::InvocationId {
                        start_time: 1,
                        rand: running.len() as u64,
                    },
                    charges,
                    next_backoff: crate::foundation::status::BackoffDuration::default(),
                    attempts: 1,
                    worker_shard: "local".into(),
                    timeout_sec: None,
                });
                continue;
            }
            let status = match r.gen_range(0..5) {
                0 | 1 => TaskStatus::new(bits::DONE, 1),
                2 => TaskStatus::new(bits::FAILED, 1),
                3 => TaskStatus {
                    bits: bits::ERROR | bits::USES_BACKOFF,
                    data: None,
                    time: NOW - r.gen_range(0..20),
                    backoff: 10,
                },
                _ => TaskStatus::new(bits::INCOMPLETE, 1),
            };
            let name = if r.gen_bool(0.05) {
                "gone".to_string()
            } else {
                name
            };
            statuses.insert(&job.name, &name, status, 1);
        }
        Self {
            config,
            nodes,
            statuses,
            running,
        }
    }

    fn input(&self) -> PassInput<'_> {
        PassInput {
            config: &self.config,
            nodes: &self.nodes,
            statuses: &self.statuses,
            running: &self.running,
            now: NOW,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_pass_decides_as_the_reference_pass(problem in any::<u64>(), seed in any::<u64>(), explain in any::<bool>()) {
        let problem = Problem::new(problem);
        let input = problem.input();
        let fast = plan(&input, &mut StdRng::seed_from_u64(seed), explain);
        let reference = reference_plan(&input, &mut StdRng::seed_from_u64(seed), explain);
        prop_assert_eq!(&fast.starts, &reference.starts);
        prop_assert_eq!(&fast.orphans, &reference.orphans);
        prop_assert_eq!(&fast.waiting, &reference.waiting);
    }
}

/// The generator makes problems where tasks start, wait on slots and are skipped.
#[test]
fn random_problems_cover_starts_and_waits() {
    let (mut starts, mut short, mut statuses) = (0, 0, 0);
    for seed in 0..200 {
        let problem = Problem::new(seed);
        let plan = plan(&problem.input(), &mut StdRng::seed_from_u64(seed), true);
        starts += plan.starts.len();
        for w in &plan.waiting {
            match w.reason {
                WaitReason::Resource { .. } => short += 1,
                WaitReason::Failed | WaitReason::Backoff { .. } => statuses += 1,
                _ => {}
            }
        }
    }
    assert!(
        starts > 100 && short > 100 && statuses > 20,
        "{starts} {short} {statuses}"
    );
}
