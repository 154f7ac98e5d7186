//! One scheduling pass (bistro-scheduling §4.2): which tasks start now.
//!
//! [`plan`] is pure: config, nodes, statuses, running tasks and `now` in, tasks to start
//! (and, on request, why every other task waits) out. No I/O, so it is unit-tested and
//! can be benchmarked on millions of tasks. Policies ([`Policy`]) decide the order in which
//! candidates are tried; resources decide whether each fits.

mod explain;
mod long_tail;
mod randomized_priority;
mod ranked_priority;
mod roundrobin;
pub mod workers;

pub use explain::{Holders, WaitReason, Waiting, WaitingJson};

use crate::config::{Config, Job, NodeOrder, PolicyName};
use crate::nodes::Nodes;
use crate::resources::{NodeCharge, ResourceBlocks, Shortage};
use crate::status::TaskStatus;
use crate::task::RunningTask;
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::{HashMap, HashSet};

/// Stored statuses (and attempt counts) by job, then node name.
#[derive(Debug, Clone, Default)]
pub struct Statuses {
    by_job: HashMap<String, HashMap<String, (TaskStatus, i64)>>,
}

impl Statuses {
    /// Records a status and how many times the task was started.
    pub fn insert(&mut self, job: &str, node: &str, status: TaskStatus, attempts: i64) {
        self.by_job
            .entry(job.to_string())
            .or_default()
            .insert(node.to_string(), (status, attempts));
    }

    /// The status of (job, node), if any.
    pub fn get(&self, job: &str, node: &str) -> Option<&TaskStatus> {
        self.by_job.get(job)?.get(node).map(|(s, _)| s)
    }

    /// How many times (job, node) was started.
    pub fn attempts(&self, job: &str, node: &str) -> i64 {
        self.by_job
            .get(job)
            .and_then(|j| j.get(node))
            .map_or(0, |(_, a)| *a)
    }
}

/// Everything a pass decides from.
pub struct PassInput<'a> {
    /// The config in force.
    pub config: &'a Config,
    /// The current nodes.
    pub nodes: &'a Nodes,
    /// Stored statuses.
    pub statuses: &'a Statuses,
    /// Tasks running now (their resources are held).
    pub running: &'a [RunningTask],
    /// Epoch seconds.
    pub now: i64,
}

/// A task the pass decided to start.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedStart {
    /// Index into `config.jobs`.
    pub job: usize,
    /// Index into `nodes.list`.
    pub node: usize,
    /// The resources it takes, per node on its path (and on its worker).
    pub charges: Vec<NodeCharge>,
    /// With remote workers: the worker it goes to (index into the pass's
    /// [`WorkerSlots`](workers::WorkerSlots)).
    pub worker: Option<usize>,
}

/// The outcome of a pass.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Tasks to start, in the order the policy chose them.
    pub starts: Vec<PlannedStart>,
    /// Indices into `running` of tasks whose job or node no longer wants them.
    pub orphans: Vec<usize>,
    /// With `explain`: every task that neither runs nor starts, and why.
    pub waiting: Vec<Waiting>,
}

/// What the runner said about one task the policy wanted to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryStart {
    /// Started: its resources are taken.
    Started,
    /// Not started (e.g. it did not fit); try other tasks.
    DidNotRun,
}

/// A job's candidate nodes for this pass; policies pop them from the end.
#[derive(Debug, Clone)]
pub struct JobCandidates {
    /// Index into `config.jobs`.
    pub job: usize,
    /// Node indices, tried last first.
    pub nodes: Vec<usize>,
    /// The job's priority.
    pub priority: f64,
}

/// A scheduling policy: the order in which candidates are tried.
pub trait Policy {
    /// Tries candidates through `try_start` until the policy is done.
    fn schedule(
        &self,
        jobs: Vec<JobCandidates>,
        rng: &mut dyn rand::RngCore,
        try_start: &mut dyn FnMut(usize, usize) -> TryStart,
    );
}

/// The policy implementing a configured name.
pub fn policy(name: PolicyName) -> Box<dyn Policy> {
    match name {
        PolicyName::RoundRobin => Box::new(roundrobin::RoundRobin),
        PolicyName::RankedPriority => Box::new(ranked_priority::RankedPriority),
        PolicyName::RandomizedPriority => Box::new(randomized_priority::RandomizedPriority),
        PolicyName::LongTail => Box::new(long_tail::LongTail),
    }
}

/// Per-level node lists in the pass's order.
fn ordered_levels(
    nodes: &Nodes,
    levels: usize,
    order: NodeOrder,
    rng: &mut impl Rng,
) -> Vec<Vec<usize>> {
    let mut groups = vec![Vec::new(); levels];
    for (i, n) in nodes.list.iter().enumerate() {
        if n.level < levels {
            groups[n.level].push(i);
        }
    }
    for group in &mut groups {
        match order {
            NodeOrder::Original => {}
            NodeOrder::Lexicographic => group.sort_by(|&a, &b| {
                nodes.list[a]
                    .name
                    .as_bytes()
                    .cmp(nodes.list[b].name.as_bytes())
            }),
            NodeOrder::Random => group.shuffle(rng),
        }
    }
    groups
}

/// Is this node or an ancestor disabled? Returns the first disabled one.
pub fn disabled_on_path(nodes: &Nodes, node: usize) -> Option<usize> {
    nodes.upward(node).find(|&i| !nodes.list[i].enabled)
}

/// The first (level, node, filter part) on the path that the job's filters reject.
pub fn filtered_on_path(job: &Job, nodes: &Nodes, node: usize) -> Option<(usize, &'static str)> {
    if job.filters.is_empty() {
        return None;
    }
    nodes.upward(node).find_map(|i| {
        let n = &nodes.list[i];
        let filter = job.filters.get(&n.level)?;
        filter
            .rejection(&job.name, &n.name, &n.tags)
            .map(|part| (i, part))
    })
}

/// Is (job, node) kept from running by the nodes themselves: a disabled node or
/// ancestor, or the job's filters? (Reports count such unstarted tasks apart.)
pub fn excluded_by_nodes(job: &Job, nodes: &Nodes, node: usize) -> bool {
    disabled_on_path(nodes, node).is_some() || filtered_on_path(job, nodes, node).is_some()
}

/// Jobs whose every task is done (for `run_only_after_all_nodes_are_done_for`).
fn fully_done_jobs(input: &PassInput) -> HashSet<usize> {
    let wanted: HashSet<&str> = input
        .config
        .jobs
        .iter()
        .flat_map(|j| {
            j.run_only_after_all_nodes_are_done_for
                .iter()
                .map(String::as_str)
        })
        .collect();
    input
        .config
        .jobs
        .iter()
        .enumerate()
        .filter(|(_, j)| wanted.contains(j.name.as_str()))
        .filter(|(_, j)| {
            // Nodes the job's filters exclude can never run, so they count as done; a
            // disabled node may come back, so its task must really be done.
            input.nodes.at_level(j.level_for_tasks).all(|n| {
                filtered_on_path(j, input.nodes, n).is_some()
                    || input
                        .statuses
                        .get(&j.name, &input.nodes.list[n].name)
                        .is_some_and(TaskStatus::is_done)
            })
        })
        .map(|(i, _)| i)
        .collect()
}

/// Why a task of a runnable job is not a candidate, or None if it is one.
fn not_a_candidate(
    input: &PassInput,
    job: &Job,
    node: usize,
    running: &HashSet<(&str, &str)>,
    done_jobs: &HashSet<usize>,
) -> Option<WaitReason> {
    let name = input.nodes.list[node].name.as_str();
    if running.contains(&(job.name.as_str(), name)) {
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
    // Runnable jobs have only valid dependencies (config::job::check_dependencies).
    for dep in &job.depends_on {
        if !input
            .statuses
            .get(dep, name)
            .is_some_and(TaskStatus::is_done)
        {
            return input
                .config
                .job_index(dep)
                .map(|job| WaitReason::DependsOn { job });
        }
    }
    for dep in &job.run_only_after_all_nodes_are_done_for {
        let dep = input.config.job_index(dep)?;
        if !done_jobs.contains(&dep) {
            return Some(WaitReason::AllNodesOf { job: dep });
        }
    }
    None
}

/// What running `job` on `node` takes: the job's amount of every resource of every
/// level on the node's path.
pub fn charges_for(config: &Config, nodes: &Nodes, job: &Job, node: usize) -> Vec<NodeCharge> {
    let defs = &config.settings.resources;
    nodes
        .upward(node)
        .filter(|&i| !defs.by_level[nodes.list[i].level].is_empty())
        .map(|i| {
            let level = nodes.list[i].level;
            NodeCharge {
                level: config.settings.levels.name(level).to_string(),
                node: nodes.list[i].name.clone(),
                amounts: defs.by_level[level]
                    .iter()
                    .map(|r| (defs.names[r.resource].clone(), job.resources[r.resource]))
                    .collect(),
            }
        })
        .collect()
}

/// Does (job, node) fit beside the running tasks? The shortage, naming its holders,
/// otherwise. Used to start one task outside a pass (`run-task`).
pub fn check_fits(input: &PassInput, job: usize, node: usize) -> Result<(), WaitReason> {
    let defs = &input.config.settings.resources;
    let levels = &input.config.settings.levels;
    let nodes = input.nodes;
    let mut blocks = ResourceBlocks::new(
        defs,
        nodes
            .list
            .iter()
            .enumerate()
            .map(|(i, n)| (i, n.level, n.name.as_str())),
        nodes.list.len(),
    );
    for task in input.running {
        blocks.subtract(defs, levels, &task.charges);
    }
    let mut path = Vec::new();
    nodes.path_levels(node, &mut path);
    blocks
        .check(defs, &path, &input.config.jobs[job].resources)
        .map_err(|shortage| {
            let mut plan = Plan::default();
            explain::add_shortages(&mut plan, input, vec![(job, node, shortage)]);
            plan.waiting.remove(0).reason
        })
}

/// Runs one scheduling pass. With `explain`, also says why each other task waits.
pub fn plan(input: &PassInput, rng: &mut impl Rng, explain: bool) -> Plan {
    plan_on(input, rng, explain, None)
}

/// [`plan`] for tasks that run on remote workers: each task that fits its nodes also
/// needs a worker that `workers` places it on.
pub fn plan_on(
    input: &PassInput,
    rng: &mut impl Rng,
    explain: bool,
    mut workers: Option<&mut workers::WorkerSlots>,
) -> Plan {
    let config = input.config;
    let settings = &config.settings;
    let levels = &settings.levels;
    let defs = &settings.resources;
    let groups = ordered_levels(input.nodes, levels.len(), settings.node_order, rng);
    let mut blocks = ResourceBlocks::new(
        defs,
        groups.iter().flatten().map(|&i| {
            (
                i,
                input.nodes.list[i].level,
                input.nodes.list[i].name.as_str(),
            )
        }),
        input.nodes.list.len(),
    );
    let enabled_names: HashSet<&str> = input
        .nodes
        .list
        .iter()
        .filter(|n| n.enabled)
        .map(|n| n.name.as_str())
        .collect();
    let mut plan = Plan::default();
    let mut running: HashSet<(&str, &str)> = HashSet::with_capacity(input.running.len());
    for (i, task) in input.running.iter().enumerate() {
        blocks.subtract(defs, levels, &task.charges);
        running.insert((task.job.as_str(), task.node.as_str()));
        let wanted = config.job(&task.job).is_some_and(Job::can_run)
            && enabled_names.contains(task.node.as_str());
        if !wanted {
            plan.orphans.push(i);
        }
    }
    let done_jobs = fully_done_jobs(input);
    let mut job_order: Vec<usize> = (0..config.jobs.len()).collect();
    job_order.shuffle(rng);
    let mut candidates = Vec::new();
    for &j in &job_order {
        let job = &config.jobs[j];
        let nodes = &groups[job.level_for_tasks];
        if !job.can_run() {
            if explain {
                let reason = if job.errors.is_some() {
                    WaitReason::JobInvalid
                } else {
                    WaitReason::JobDisabled
                };
                for &n in nodes {
                    let name = input.nodes.list[n].name.as_str();
                    let settled = running.contains(&(job.name.as_str(), name))
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
            }
            continue;
        }
        let mut entry = JobCandidates {
            job: j,
            nodes: Vec::new(),
            priority: job.priority,
        };
        for &n in nodes {
            match not_a_candidate(input, job, n, &running, &done_jobs) {
                None => entry.nodes.push(n),
                Some(WaitReason::Running | WaitReason::Done) => {}
                Some(reason) if explain => plan.waiting.push(Waiting {
                    job: j,
                    node: n,
                    reason,
                }),
                Some(_) => {}
            }
        }
        candidates.push(entry);
    }
    let mut started_names: HashSet<(usize, &str)> = HashSet::new();
    let mut shortages: Vec<(usize, usize, Shortage)> = Vec::new();
    let mut path = Vec::new();
    let mut try_start = |j: usize, n: usize| -> TryStart {
        let job = &config.jobs[j];
        let name = input.nodes.list[n].name.as_str();
        if !started_names.insert((j, name)) {
            return TryStart::DidNotRun;
        }
        input.nodes.path_levels(n, &mut path);
        if let Err(shortage) = blocks.check(defs, &path, &job.resources) {
            started_names.remove(&(j, name));
            if explain {
                shortages.push((j, n, shortage));
            }
            return TryStart::DidNotRun;
        }
        let mut charges = charges_for(config, input.nodes, job, n);
        let mut worker = None;
        if let Some(slots) = workers.as_deref_mut() {
            match slots.place(config, job, input.nodes, n) {
                workers::Placement::Worker(w) => {
                    charges.push(slots.charge(config, job, w));
                    worker = Some(w);
                }
                workers::Placement::DidNotRun | workers::Placement::DoNotRunMore => {
                    started_names.remove(&(j, name));
                    return TryStart::DidNotRun;
                }
            }
        }
        blocks.take(defs, &path, &job.resources);
        plan.starts.push(PlannedStart {
            job: j,
            node: n,
            charges,
            worker,
        });
        TryStart::Started
    };
    policy(settings.scheduler).schedule(candidates, rng, &mut try_start);
    if explain {
        explain::add_shortages(&mut plan, input, shortages);
    }
    plan
}

#[cfg(test)]
mod tests;
