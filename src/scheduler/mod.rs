//! One scheduling pass (bistro-scheduling §4.2): which tasks start now.
//!
//! [`plan`] is pure: config, nodes, statuses, running tasks and `now` in, tasks to start
//! (and, on request, why every other task waits) out. No I/O, so it is unit-tested and
//! can be benchmarked on millions of tasks. Policies ([`Policy`]) decide the order in which
//! candidates are tried; resources decide whether each fits.

mod candidates;
mod explain;
mod long_tail;
mod randomized_priority;
mod ranked_priority;
mod roundrobin;
mod statuses;
pub mod workers;

pub use candidates::Candidates;
pub use explain::{Holders, WaitReason, Waiting, WaitingJson};
pub use statuses::Statuses;

use crate::foundation::config::{Config, Job, NodeOrder, PolicyName};
use crate::model::nodes::{NodeTables, Nodes};
use crate::model::resources::{NodeCharge, ResourceBlocks, Shortage, NO_BLOCK};
use crate::model::task::RunningTask;
use rand::seq::SliceRandom;
use rand::Rng;
use rustc_hash::{FxHashMap, FxHashSet};
use statuses::{ByNode, NodeNames, Stored};
use std::collections::HashSet;

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
    /// Not started, and no other candidate of this job can start in this pass: every
    /// node of a level they all need is out of slots, and slots are only taken
    /// during a pass. Trying the job's other candidates would change nothing, so the
    /// policy drops them, as if each had been tried.
    JobIsFull,
}

/// A job's candidate nodes for this pass; policies pop them from the end.
#[derive(Debug, Clone)]
pub struct JobCandidates {
    /// Index into `config.jobs`.
    pub job: usize,
    /// The candidate nodes, tried last first, as the pass numbers them (positions in
    /// its order of the job's level, so trying them in turn reads memory in order);
    /// policies only pick among them and hand them back to `try_start`.
    pub nodes: Candidates,
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

/// Is this node or an ancestor disabled? Returns the first disabled one.
pub fn disabled_on_path(nodes: &Nodes, node: usize) -> Option<usize> {
    nodes.upward(node).find(|&i| !nodes.list[i].enabled)
}

/// The first (level, node, filter part) on the path that the job's filters reject.
#[inline]
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
fn fully_done_jobs(input: &PassInput, names: &mut NodeNames) -> HashSet<usize> {
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
            let statuses = names.job(&j.name, j.level_for_tasks);
            // Nodes the job's filters exclude can never run, so they count as done; a
            // disabled node may come back, so its task must really be done.
            input.nodes.at_level(j.level_for_tasks).all(|n| {
                filtered_on_path(j, input.nodes, n).is_some()
                    || statuses.as_ref().is_some_and(|s| s.is_done(n))
            })
        })
        .map(|(i, _)| i)
        .collect()
}

/// What a pass looks up per task of one job, found once per job: its statuses by
/// node, its running tasks, and the statuses by node of the jobs it depends on.
struct JobView<'a> {
    statuses: Option<ByNode<'a>>,
    /// The nodes of the job's level whose task runs, as a bit per node; empty when
    /// none runs. (Looking each node's name up in a set cost more than the rest of
    /// a pass over the nodes.)
    running: Vec<u64>,
    depends_on: Vec<(&'a str, Option<ByNode<'a>>)>,
}

impl<'a> JobView<'a> {
    fn new(
        job: &'a Job,
        names: &mut NodeNames<'a>,
        nodes: &Nodes,
        running: &FxHashMap<&str, FxHashSet<&str>>,
    ) -> Self {
        let level = job.level_for_tasks;
        let mut running_nodes = Vec::new();
        for name in running.get(job.name.as_str()).into_iter().flatten() {
            for node in nodes.named(level, name) {
                if running_nodes.is_empty() {
                    running_nodes = vec![0u64; nodes.list.len().div_ceil(64)];
                }
                running_nodes[node / 64] |= 1 << (node % 64);
            }
        }
        Self {
            statuses: names.job(&job.name, level),
            running: running_nodes,
            depends_on: job
                .depends_on
                .iter()
                .map(|dep| (dep.as_str(), names.job(dep, level)))
                .collect(),
        }
    }

    /// Is the task on `node` (of the job's level) running?
    fn is_running(&self, node: usize) -> bool {
        self.running
            .get(node / 64)
            .is_some_and(|bits| bits & (1 << (node % 64)) != 0)
    }

    /// The stored status of the task on `node`.
    fn status(&self, node: usize) -> Option<Stored<'a>> {
        self.statuses.as_ref().and_then(|s| s.get(node))
    }
}

/// For each node, the first disabled node on its path (itself first), or `NO_NODE`;
/// empty when every node is enabled. Found once per pass, in list order.
fn first_disabled_on_paths(nodes: &Nodes, tables: &NodeTables) -> Vec<u32> {
    if !tables.any_disabled {
        return Vec::new();
    }
    let mut first: Vec<u32> = Vec::with_capacity(nodes.list.len());
    for (i, n) in nodes.list.iter().enumerate() {
        let found = if !n.enabled {
            i as u32
        } else {
            match n.parent {
                // Parents come before their children.
                Some(p) if p < i => first[p],
                Some(_) => disabled_on_path(nodes, i).map_or(NO_NODE, |d| d as u32),
                None => NO_NODE,
            }
        };
        first.push(found);
    }
    first
}

/// A node of a level as a pass tries it: what that needs, gathered once per pass in the
/// pass's order, so trying candidates in turn reads this memory in order.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Index into the nodes.
    node: u32,
    /// Its resource block (see [`ResourceBlocks::block_of`]).
    block: u32,
    /// Its parent, or `NO_NODE`.
    parent: u32,
    /// The parent's level.
    parent_level: u32,
    /// The parent's resource block.
    parent_block: u32,
}

/// Per level, its nodes as slots in the pass's order. Slots are filled in list order,
/// where memory is read in order, and then ordered (a shuffle moves whole slots, so
/// the pass's order is the same as shuffling node indices with the same `rng`).
fn ordered_slots(
    nodes: &Nodes,
    tables: &NodeTables,
    levels: usize,
    order: NodeOrder,
    blocks: &ResourceBlocks,
    rng: &mut impl Rng,
) -> Vec<Vec<Slot>> {
    let list = &nodes.list;
    let mut groups: Vec<Vec<Slot>> = (0..levels)
        .map(|l| Vec::with_capacity(tables.level_sizes.get(l).copied().unwrap_or(0)))
        .collect();
    for (i, (&level, &parent)) in tables.levels.iter().zip(&tables.parents).enumerate() {
        let Some(group) = groups.get_mut(level as usize) else {
            continue;
        };
        let (parent_level, parent_block) = match parent {
            NO_NODE => (0, NO_BLOCK),
            p => (tables.levels[p as usize], blocks.block_of(p as usize)),
        };
        group.push(Slot {
            node: i as u32,
            block: blocks.block_of(i),
            parent,
            parent_level,
            parent_block,
        });
    }
    for group in &mut groups {
        match order {
            NodeOrder::Original => {}
            NodeOrder::Lexicographic => group.sort_by(|a, b| {
                list[a.node as usize]
                    .name
                    .as_bytes()
                    .cmp(list[b.node as usize].name.as_bytes())
            }),
            NodeOrder::Random => group.shuffle(rng),
        }
    }
    groups
}

/// No node.
const NO_NODE: u32 = u32::MAX;

/// Why a task of a runnable job is not a candidate, or None if it is one.
#[inline]
fn not_a_candidate(
    input: &PassInput,
    job: &Job,
    view: &JobView,
    node: usize,
    first_disabled: &[u32],
    done_jobs: &HashSet<usize>,
) -> Option<WaitReason> {
    if view.is_running(node) {
        return Some(WaitReason::Running);
    }
    match view.status(node) {
        None => {}
        Some(Stored::Done) => return Some(WaitReason::Done),
        Some(Stored::Other(s)) if s.is_failed() => return Some(WaitReason::Failed),
        Some(Stored::Other(s)) if s.in_backoff(input.now) => {
            return Some(WaitReason::Backoff {
                until: s.time + s.backoff,
            })
        }
        Some(Stored::Other(_)) => {}
    }
    if let Some(&disabled) = first_disabled.get(node).filter(|&&d| d != NO_NODE) {
        return Some(WaitReason::NodeDisabled {
            node: disabled as usize,
        });
    }
    if let Some((node, filter)) = filtered_on_path(job, input.nodes, node) {
        return Some(WaitReason::Filtered { node, filter });
    }
    // Runnable jobs have only valid dependencies (config::job::check_dependencies).
    for (dep, statuses) in &view.depends_on {
        if !statuses.as_ref().is_some_and(|s| s.is_done(node)) {
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
    let mut blocks = ResourceBlocks::new(defs, nodes, levels.len());
    for task in input.running {
        blocks.subtract(defs, levels, nodes, &task.charges);
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
    let list = &input.nodes.list;
    // Per-node work goes in list order, where memory is read in order; the pass's
    // order only picks from what it found.
    let mut blocks = ResourceBlocks::new(defs, input.nodes, levels.len());
    let tables = input.nodes.tables();
    let groups = ordered_slots(
        input.nodes,
        &tables,
        levels.len(),
        settings.node_order,
        &blocks,
        rng,
    );
    let replica_roots = &tables.replica_roots;
    let first_disabled = first_disabled_on_paths(input.nodes, &tables);
    let mut plan = Plan::default();
    // Running tasks by job, then node name; only a pass with running tasks needs the
    // names of the enabled nodes.
    let mut running: FxHashMap<&str, FxHashSet<&str>> = FxHashMap::default();
    if !input.running.is_empty() {
        let levels_in_list = tables.level_sizes.len();
        let enabled_name = |name: &str| {
            (0..levels_in_list).any(|level| input.nodes.named(level, name).any(|i| list[i].enabled))
        };
        for (i, task) in input.running.iter().enumerate() {
            blocks.subtract(defs, levels, input.nodes, &task.charges);
            running
                .entry(task.job.as_str())
                .or_default()
                .insert(task.node.as_str());
            let wanted =
                config.job(&task.job).is_some_and(Job::can_run) && enabled_name(&task.node);
            if !wanted {
                plan.orphans.push(i);
            }
        }
    }
    let mut names = NodeNames::new(input.statuses, input.nodes);
    let done_jobs = fully_done_jobs(input, &mut names);
    let mut job_order: Vec<usize> = (0..config.jobs.len()).collect();
    job_order.shuffle(rng);
    let mut candidates = Vec::new();
    for &j in &job_order {
        let job = &config.jobs[j];
        let slots = &groups[job.level_for_tasks];
        if !job.can_run() {
            if explain {
                let view = JobView::new(job, &mut names, input.nodes, &running);
                let reason = if job.errors.is_some() {
                    WaitReason::JobInvalid
                } else {
                    WaitReason::JobDisabled
                };
                for slot in slots {
                    let n = slot.node as usize;
                    let settled =
                        view.is_running(n) || matches!(view.status(n), Some(Stored::Done));
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
        let view = JobView::new(job, &mut names, input.nodes, &running);
        // Nothing stored, running, disabled or filtered, no dependency: every node is a
        // candidate, and none needs looking at.
        let all_candidates = view.statuses.is_none()
            && view.running.is_empty()
            && view.depends_on.is_empty()
            && job.filters.is_empty()
            && first_disabled.is_empty()
            && job.run_only_after_all_nodes_are_done_for.is_empty();
        let entry = |nodes| JobCandidates {
            job: j,
            nodes,
            priority: job.priority,
        };
        if all_candidates {
            candidates.push(entry(Candidates::every(slots.len() as u32)));
            continue;
        }
        let mut listed = Vec::with_capacity(slots.len());
        for (pos, &slot) in slots.iter().enumerate() {
            let n = slot.node as usize;
            match not_a_candidate(input, job, &view, n, &first_disabled, &done_jobs) {
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
        candidates.push(entry(Candidates::listed(listed)));
    }
    // (job, first replica) of the tasks started in this pass, so a replica (the same
    // name twice on a level) starts once; consulted only for tasks that fit.
    let mut started: FxHashSet<(usize, u32)> = FxHashSet::default();
    let mut shortages: Vec<(usize, usize, Shortage)> = Vec::new();
    let mut try_start = |j: usize, pos: usize| -> TryStart {
        let job = &config.jobs[j];
        let level = job.level_for_tasks;
        let slot = groups[level][pos];
        let n = slot.node as usize;
        if !explain {
            // Most tasks do not fit, and whether one does is the same in any order of
            // the checks: the ancestors' slots, shared and so in cache, go first,
            // straight from the compact tables. When a whole level is short, so are
            // the job's other candidates, which all have a node on it (their own
            // level, or one above when levels nest).
            let no_room = |short_level: usize, blocks: &ResourceBlocks| {
                let all_need_it = short_level == level || tables.levels_nest;
                if all_need_it && blocks.level_is_short(defs, short_level, &job.resources) {
                    TryStart::JobIsFull
                } else {
                    TryStart::DidNotRun
                }
            };
            let mut up = slot.parent;
            let (mut up_level, mut block) = (slot.parent_level, slot.parent_block);
            while up != NO_NODE {
                if !blocks.has_room(defs, up_level as usize, block, &job.resources) {
                    return no_room(up_level as usize, &blocks);
                }
                up = tables.parents[up as usize];
                if up != NO_NODE {
                    (up_level, block) = (tables.levels[up as usize], blocks.block_of(up as usize));
                }
            }
            if !blocks.has_room(defs, level, slot.block, &job.resources) {
                return no_room(level, &blocks);
            }
        }
        // The (node, level, block) triples of its path: the node, its parent, and the
        // ancestors above (few, and shared by every task).
        let node = (n, level, slot.block);
        let parent = (slot.parent != NO_NODE).then(|| {
            let p = slot.parent as usize;
            (p, slot.parent_level as usize, slot.parent_block)
        });
        let above = || {
            let first = parent
                .map(|(p, _, _)| tables.parents[p])
                .filter(|&g| g != NO_NODE);
            std::iter::successors(first, |&u| {
                Some(tables.parents[u as usize]).filter(|&p| p != NO_NODE)
            })
            .map(|u| {
                let u = u as usize;
                (u, tables.levels[u] as usize, blocks.block_of(u))
            })
        };
        // The shortage reported is the nearest one: the node's first.
        let path = std::iter::once(node).chain(parent).chain(above());
        let fits = blocks.check_blocks(defs, path, &job.resources);
        if let Err(shortage) = fits {
            // A replica of a task started in this pass is skipped, not short.
            if explain && !started.contains(&(j, replica_roots[n])) {
                shortages.push((j, n, shortage));
            }
            return TryStart::DidNotRun;
        }
        if !started.insert((j, replica_roots[n])) {
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
                    started.remove(&(j, replica_roots[n]));
                    return TryStart::DidNotRun;
                }
            }
        }
        let path: Vec<_> = std::iter::once(node).chain(parent).chain(above()).collect();
        blocks.take_blocks(defs, path, &job.resources);
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
mod reference;
#[cfg(test)]
mod tests;
