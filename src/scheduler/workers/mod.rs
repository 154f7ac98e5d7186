//! Remote workers as one scheduling pass sees them (bistro-scheduling §3.3,
//! bistro-runtime §5.13): each worker's free `worker`-level resources, host placement,
//! worker-level filters, and the `roundrobin` and `busiest` selectors. Pure, like the
//! rest of the pass.

use crate::foundation::config::{Config, Job};
use crate::model::nodes::Nodes;
use crate::model::resources::NodeCharge;
use crate::model::task::RunningTask;
use std::collections::HashMap;

/// A worker that may take tasks in this pass.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerSlot {
    /// Its shard id (the name of its `worker`-level node).
    pub shard: String,
    /// Its machine's host name.
    pub hostname: String,
    /// Only healthy workers get tasks.
    pub healthy: bool,
    /// Free amounts of each `worker`-level resource, in the level's order.
    pub free: Vec<i64>,
}

/// Where the selector put a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On this worker (index into [`WorkerSlots::workers`]); its resources are taken.
    Worker(usize),
    /// Nowhere now; other tasks may still fit.
    DidNotRun,
    /// No worker can take anything: the pass ends.
    DoNotRunMore,
}

/// How a worker is chosen (`remote_worker_selector`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector {
    /// The next fitting worker after the last one chosen.
    RoundRobin,
    /// The fitting worker left with the least weighted free resources.
    Busiest,
}

/// The workers of one pass, with what they have free.
#[derive(Debug, Clone, Default)]
pub struct WorkerSlots {
    /// The workers, in a stable order (by shard).
    pub workers: Vec<WorkerSlot>,
    /// Round-robin cursors by host pool (`""` for all workers); kept across passes by
    /// the runner.
    pub cursors: HashMap<String, usize>,
    /// Nothing more starts in this pass (set by [`Placement::DoNotRunMore`], or from
    /// the start while a restarted scheduler waits for its workers).
    pub halted: bool,
}

/// One worker as the runner knows it.
#[derive(Debug, Clone)]
pub struct KnownWorker {
    /// Shard id.
    pub shard: String,
    /// Host name.
    pub hostname: String,
    /// The port it listens on (for `worker_resources_override` keys `host:port`).
    pub port: u16,
    /// Whether it is HEALTHY.
    pub healthy: bool,
}

impl WorkerSlots {
    /// The workers' free resources: the `worker`-level limits, then
    /// `worker_resources_override` by `host:port`, else `host`, else shard, minus what
    /// running tasks hold on each.
    pub fn new(config: &Config, known: &[KnownWorker], running: &[RunningTask]) -> Self {
        let settings = &config.settings;
        let defs = &settings.resources;
        let level = &defs.by_level[settings.levels.worker()];
        let worker_level = settings.levels.name(settings.levels.worker());
        let mut workers: Vec<WorkerSlot> = known
            .iter()
            .map(|w| {
                let overrides = [
                    format!("{}:{}", w.hostname, w.port),
                    w.hostname.clone(),
                    w.shard.clone(),
                ]
                .into_iter()
                .find_map(|key| settings.worker_resources_override.get(&key));
                let free = level
                    .iter()
                    .map(|r| {
                        overrides
                            .and_then(|o| o.get(&defs.names[r.resource]))
                            .copied()
                            .unwrap_or(r.limit)
                    })
                    .collect();
                WorkerSlot {
                    shard: w.shard.clone(),
                    hostname: w.hostname.clone(),
                    healthy: w.healthy,
                    free,
                }
            })
            .collect();
        workers.sort_by(|a, b| a.shard.cmp(&b.shard));
        let at: HashMap<&str, usize> = workers
            .iter()
            .enumerate()
            .map(|(i, w)| (w.shard.as_str(), i))
            .collect();
        let mut held = vec![vec![0i64; level.len()]; workers.len()];
        for charge in running.iter().flat_map(|t| &t.charges) {
            let Some(&w) = (charge.level == worker_level)
                .then(|| at.get(charge.node.as_str()))
                .flatten()
            else {
                continue;
            };
            for (name, amount) in &charge.amounts {
                if let Some(pos) = level.iter().position(|r| defs.names[r.resource] == *name) {
                    held[w][pos] += amount;
                }
            }
        }
        for (worker, held) in workers.iter_mut().zip(held) {
            for (free, held) in worker.free.iter_mut().zip(held) {
                *free -= held;
            }
        }
        Self {
            workers,
            cursors: HashMap::new(),
            halted: false,
        }
    }

    /// Chooses a worker for `job` on `node`, taking its resources there.
    pub fn place(&mut self, config: &Config, job: &Job, nodes: &Nodes, node: usize) -> Placement {
        if self.halted {
            return Placement::DidNotRun;
        }
        let settings = &config.settings;
        let defs = &settings.resources;
        let level = &defs.by_level[settings.levels.worker()];
        let need: Vec<i64> = level.iter().map(|r| job.resources[r.resource]).collect();
        let host = placement_host(job, nodes, node);
        let filter = job.filters.get(&settings.levels.worker());
        let pool: Vec<usize> = (0..self.workers.len())
            .filter(|&w| host.is_none_or(|h| self.workers[w].hostname == h))
            .collect();
        let fits = |w: &WorkerSlot| {
            w.healthy
                && filter.is_none_or(|f| f.host_rejection(&job.name, &w.hostname).is_none())
                && w.free.iter().zip(&need).all(|(free, need)| free >= need)
        };
        if !pool.iter().any(|&w| self.workers[w].healthy) {
            self.halted = true;
            return Placement::DoNotRunMore;
        }
        let chosen = match selector(&settings.remote_worker_selector) {
            Selector::RoundRobin => {
                let cursor = self
                    .cursors
                    .entry(host.unwrap_or("").to_string())
                    .or_insert(0);
                let n = pool.len();
                let found = (0..n)
                    .map(|k| pool[(*cursor + k) % n])
                    .find(|&w| fits(&self.workers[w]));
                if let Some(w) = found {
                    let pos = pool.iter().position(|&p| p == w).expect("in the pool");
                    *cursor = (pos + 1) % n;
                }
                found
            }
            Selector::Busiest => pool
                .iter()
                .copied()
                .filter(|&w| fits(&self.workers[w]))
                .min_by_key(|&w| {
                    self.workers[w]
                        .free
                        .iter()
                        .zip(&need)
                        .zip(level)
                        .map(|((free, need), r)| (free - need).saturating_mul(r.weight))
                        .fold(0i64, i64::saturating_add)
                }),
        };
        match chosen {
            Some(w) => {
                for (free, need) in self.workers[w].free.iter_mut().zip(&need) {
                    *free -= need;
                }
                Placement::Worker(w)
            }
            None => Placement::DidNotRun,
        }
    }

    /// What a task of `job` holds on worker `w` (recorded with its other charges).
    pub fn charge(&self, config: &Config, job: &Job, w: usize) -> NodeCharge {
        let settings = &config.settings;
        let defs = &settings.resources;
        NodeCharge {
            level: settings.levels.name(settings.levels.worker()).to_string(),
            node: self.workers[w].shard.clone(),
            amounts: defs.by_level[settings.levels.worker()]
                .iter()
                .map(|r| (defs.names[r.resource].clone(), job.resources[r.resource]))
                .collect(),
        }
    }
}

/// The selector a `remote_worker_selector` value names (validated with the config).
fn selector(name: &str) -> Selector {
    match name {
        "busiest" => Selector::Busiest,
        _ => Selector::RoundRobin,
    }
}

/// The host a task must run on: the job's `host_placement`, else the name of the
/// node's ancestor-or-self at `level_for_host_placement`, else anywhere.
pub fn placement_host<'a>(job: &'a Job, nodes: &'a Nodes, node: usize) -> Option<&'a str> {
    if !job.host_placement.is_empty() {
        return Some(&job.host_placement);
    }
    let level = job.level_for_host_placement?;
    nodes
        .upward(node)
        .find(|&i| nodes.list[i].level == level)
        .map(|i| nodes.list[i].name.as_str())
}

#[cfg(test)]
mod tests;
