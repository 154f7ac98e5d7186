//! The scheduler's registry of remote workers (bistro-runtime §5.4 - §5.11): who is
//! associated with each shard, their health, replacements, lost workers, and the
//! startup initial wait. Pure: the time is a parameter and the calls it wants made
//! (suicide requests, healthchecks, running-task fetches) come back as [`Action`]s
//! for the caller to perform outside its lock.

use super::health::{HealthSettings, WorkerHealth, WorkerState};
use super::protocol::{
    HeartbeatRequest, HeartbeatResponse, UpdateStatusRequest, WorkerInfo, PROTOCOL_VERSION,
};
use super::worker_set::WorkerSetTracker;
use super::InstanceId;
use std::collections::{BTreeMap, HashSet};

/// How the scheduler judges and replaces workers.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolSettings {
    /// Timeouts of the health function and the initial wait.
    pub health: HealthSettings,
    /// Let a new instance replace a shard's NEW or UNHEALTHY worker at once.
    pub allow_bump_unhealthy_worker: bool,
}

/// One worker instance as the scheduler knows it.
#[derive(Debug, Clone)]
pub struct RemoteWorker {
    /// What it said about itself in its last heartbeat.
    pub info: WorkerInfo,
    /// Its health.
    pub health: WorkerHealth,
    /// The last notify sequence sent to it.
    pub notify_seq: u64,
    /// When its last healthcheck was sent (`i64::MIN`: never).
    pub last_healthcheck_sent: i64,
    /// Its running tasks are being fetched.
    pub fetching: bool,
    /// Why it may not become healthy yet, if worker-set consensus holds it back.
    pub consensus_block: Option<String>,
}

/// Why the pool refuses a worker's call: the text sent back to the worker, which
/// reads as the text itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

impl std::ops::Deref for Refusal {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

/// A call the pool wants made.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Ask the worker to kill its tasks and exit.
    Suicide {
        /// The worker.
        worker: WorkerInfo,
        /// Why.
        reason: String,
    },
    /// Healthcheck the worker.
    Healthcheck {
        /// The worker.
        worker: WorkerInfo,
        /// It is NEW (the check is sent before it knows this scheduler).
        new_worker: bool,
        /// Scheduler time the check is sent at (its invocation start time).
        sent_at: i64,
    },
    /// Fetch a NEW worker's running tasks.
    FetchRunning {
        /// The worker.
        worker: WorkerInfo,
    },
}

/// Every worker of one scheduler.
#[derive(Debug, Clone)]
pub struct WorkerPool {
    id: InstanceId,
    started: i64,
    settings: PoolSettings,
    workers: BTreeMap<String, RemoteWorker>,
    lost: HashSet<InstanceId>,
    sets: WorkerSetTracker,
    initial_wait: Option<String>,
}

impl WorkerPool {
    /// The pool of scheduler `id`, started at `now`, in its initial wait.
    pub fn new(id: InstanceId, now: i64, settings: PoolSettings) -> Self {
        let mut pool = Self {
            id,
            started: now,
            settings,
            workers: BTreeMap::new(),
            lost: HashSet::new(),
            sets: WorkerSetTracker::new(id),
            initial_wait: None,
        };
        pool.initial_wait = settings
            .health
            .initial_wait_message(now, now, false, false)
            .or_else(|| Some(String::new()));
        pool.update_initial_wait(now);
        pool
    }

    /// The scheduler instance.
    pub fn id(&self) -> InstanceId {
        self.id
    }

    /// The settings.
    pub fn settings(&self) -> &PoolSettings {
        &self.settings
    }

    /// Takes a heartbeat (§5.4): registers, replaces or refuses the worker, updates
    /// its health, queues the calls it is due as a sweep would (a NEW worker's
    /// running-task fetch and healthcheck, a healthcheck when one is due), and answers
    /// with its state. An `Err` is a refusal to send back.
    pub fn heartbeat(
        &mut self,
        request: &HeartbeatRequest,
        now: i64,
    ) -> (Result<HeartbeatResponse, Refusal>, Vec<Action>) {
        let mut actions = Vec::new();
        let worker = &request.worker;
        if worker.protocol_version != PROTOCOL_VERSION {
            return (
                Err(Refusal(format!(
                    "worker {} speaks protocol {}, this scheduler {PROTOCOL_VERSION}",
                    worker.shard, worker.protocol_version
                ))),
                actions,
            );
        }
        // A lost instance that is no longer its shard's record (the shard was taken
        // over) must never come back; one that still is hears MUST_DIE below.
        let replaced = self
            .workers
            .get(&worker.shard)
            .is_none_or(|w| w.info.id != worker.id);
        if self.lost.contains(&worker.id) && replaced {
            actions.push(Action::Suicide {
                worker: worker.clone(),
                reason: "Current worker was already lost".into(),
            });
            return (
                Err(Refusal(format!(
                    "worker instance {} of shard {} was lost: it must not associate again",
                    worker.id, worker.shard
                ))),
                actions,
            );
        }
        let shard = worker.shard.clone();
        if let Some(current) = self.workers.get(&shard) {
            if current.info.id != worker.id {
                if let Err(refusal) = self.maybe_replace(request, now, &mut actions) {
                    return (Err(refusal), actions);
                }
            }
        } else {
            self.add(request, now);
        }
        let record = self.workers.get_mut(&shard).expect("registered above");
        if record.health.state == WorkerState::MustDie {
            actions.push(Action::Suicide {
                worker: worker.clone(),
                reason: "Current worker was already lost".into(),
            });
        }
        record.info = worker.clone();
        record.health.record_heartbeat(now);
        // As Bistro: the consensus verdict is taken before the echo is recorded.
        let allowed = self.sets.may_become_healthy(&shard);
        self.sets
            .record_echo(&shard, worker.id, &request.worker_set_id);
        self.update_health_with(&shard, now, allowed, &mut actions);
        // As Bistro (§5.5): every heartbeat also runs the sweep's per-worker work, so
        // a new worker's running tasks are fetched at once.
        self.queue_checks(&shard, now, &mut actions);
        let state = self.workers[&shard].health.state;
        let response = HeartbeatResponse {
            id: self.id,
            timeouts: self.settings.health.scheduler_timeouts(),
            worker_state: state,
            protocol_version: PROTOCOL_VERSION,
            worker_set_id: self.sets.current(),
        };
        (Ok(response), actions)
    }

    /// A heartbeat from another instance on a known shard: replace the current one if
    /// it is lost (or bumping is allowed and it is not healthy, or the newcomer is a
    /// restart on the same machine and port); refuse the newcomer otherwise.
    fn maybe_replace(
        &mut self,
        request: &HeartbeatRequest,
        now: i64,
        actions: &mut Vec<Action>,
    ) -> Result<(), Refusal> {
        let worker = &request.worker;
        let shard = &worker.shard;
        let current = self.workers[shard].info.clone();
        if current.lock != worker.lock {
            // As Bistro: only compute the current worker's state here. Applying it
            // would, for a worker lost since the last sweep, add a second suicide
            // request ("just became lost") to the one below.
            let state = self.computed_state(shard, now);
            let reason = if state == WorkerState::MustDie {
                "Current lost worker was replaced"
            } else if self.settings.allow_bump_unhealthy_worker && state != WorkerState::Healthy {
                "Current unhealthy worker was replaced"
            } else {
                actions.push(Action::Suicide {
                    worker: worker.clone(),
                    reason: "The old worker is still okay".into(),
                });
                return Err(Refusal(format!(
                    "Worker shouldn't associate with this scheduler: shard {shard} already has a live worker at {}",
                    current.addr
                )));
            };
            actions.push(Action::Suicide {
                worker: current,
                reason: reason.into(),
            });
        } else if worker.id.start_time < current.id.start_time {
            return Err(Refusal(format!(
                "worker instance {} on shard {shard} is older than the current one {}",
                worker.id, current.id
            )));
        } else if worker.id.start_time == current.id.start_time {
            tracing::error!(
                "two instances of shard {shard} started in the same second on one machine and port ({} and {}); taking the newcomer",
                current.id,
                worker.id
            );
        }
        self.lose(shard);
        self.add(request, now);
        Ok(())
    }

    /// Registers a new instance as NEW.
    fn add(&mut self, request: &HeartbeatRequest, now: i64) {
        let worker = &request.worker;
        tracing::info!(
            "worker {} ({}) at {} is new",
            worker.shard,
            worker.id,
            worker.addr
        );
        self.sets
            .add_worker(&worker.shard, worker.id, request.worker_set_id);
        self.workers.insert(
            worker.shard.clone(),
            RemoteWorker {
                info: worker.clone(),
                health: WorkerHealth::new(now),
                notify_seq: 0,
                last_healthcheck_sent: i64::MIN,
                fetching: false,
                consensus_block: None,
            },
        );
    }

    /// Loses the shard's current instance: its tasks are lost from now on.
    fn lose(&mut self, shard: &str) {
        if let Some(w) = self.workers.get(shard) {
            self.lost.insert(w.info.id);
            self.sets.remove_worker(shard, w.info.id);
        }
    }

    /// What the health function says of the shard's current worker at `now`, without
    /// applying it.
    fn computed_state(&self, shard: &str, now: i64) -> WorkerState {
        let w = &self.workers[shard];
        let timeouts = self
            .settings
            .health
            .worker_timeouts(w.info.heartbeat_period_sec);
        w.health
            .compute_state(now, &timeouts, self.sets.may_become_healthy(shard))
            .state
    }

    /// Runs the health function on one worker; a worker just lost is told to die.
    fn update_health(&mut self, shard: &str, now: i64, actions: &mut Vec<Action>) {
        let allowed = self.sets.may_become_healthy(shard);
        self.update_health_with(shard, now, allowed, actions);
    }

    fn update_health_with(
        &mut self,
        shard: &str,
        now: i64,
        allowed: bool,
        actions: &mut Vec<Action>,
    ) {
        let block = self.sets.consensus_block(shard);
        let health = self.settings.health;
        let Some(w) = self.workers.get_mut(shard) else {
            return;
        };
        let timeouts = health.worker_timeouts(w.info.heartbeat_period_sec);
        let update = w.health.update(now, &timeouts, allowed);
        w.consensus_block = if update.blocked_by_consensus {
            block
        } else {
            None
        };
        if update.became_lost() {
            tracing::warn!("worker {} ({}) was lost", shard, w.info.id);
            actions.push(Action::Suicide {
                worker: w.info.clone(),
                reason: "Current worker just became lost".into(),
            });
            self.lose(shard);
        } else if update.became_unhealthy() {
            tracing::warn!("worker {shard} became unhealthy");
        } else if update.became_healthy() {
            tracing::info!("worker {shard} is healthy");
        }
    }

    /// The periodic sweep (§5.5): health updates, running-task fetches for NEW
    /// workers, healthchecks, and the initial wait.
    pub fn sweep(&mut self, now: i64) -> Vec<Action> {
        let mut actions = Vec::new();
        self.sets.sweep();
        let shards: Vec<String> = self.workers.keys().cloned().collect();
        for shard in &shards {
            self.update_health(shard, now, &mut actions);
            self.queue_checks(shard, now, &mut actions);
        }
        self.update_initial_wait(now);
        actions
    }

    /// The calls a live worker is due after its health update: while it is NEW, a
    /// fetch of its running tasks (unless one is in flight) with a new-worker
    /// healthcheck; otherwise a healthcheck once `healthcheck_period` has passed.
    fn queue_checks(&mut self, shard: &str, now: i64, actions: &mut Vec<Action>) {
        let period = self.settings.health.healthcheck_period();
        let Some(w) = self.workers.get_mut(shard) else {
            return;
        };
        let state = w.health.state;
        if state == WorkerState::MustDie {
            return;
        }
        let fetch = state == WorkerState::New && !w.fetching;
        if fetch {
            w.fetching = true;
            actions.push(Action::FetchRunning {
                worker: w.info.clone(),
            });
        }
        if fetch || now >= w.last_healthcheck_sent.saturating_add(period) {
            w.last_healthcheck_sent = now;
            actions.push(Action::Healthcheck {
                worker: w.info.clone(),
                new_worker: state == WorkerState::New,
                sent_at: now,
            });
        }
    }

    fn update_initial_wait(&mut self, now: i64) {
        if self.initial_wait.is_none() {
            return;
        }
        let any_new = self
            .workers
            .values()
            .any(|w| w.health.state == WorkerState::New);
        self.initial_wait = self.settings.health.initial_wait_message(
            now,
            self.started,
            self.sets.has_consensus(),
            any_new,
        );
        if self.initial_wait.is_none() {
            tracing::info!("initial wait for workers is over: tasks may start");
        }
    }

    /// While the scheduler waits for its workers after a start (no task may start),
    /// what it waits for.
    pub fn initial_wait(&self) -> Option<&str> {
        self.initial_wait.as_deref()
    }

    /// A NEW worker's running tasks were fetched: it becomes UNHEALTHY (the next sweep
    /// can make it healthy). False if the instance is no longer the shard's or no
    /// longer NEW.
    pub fn running_fetched(&mut self, worker: &WorkerInfo, now: i64) -> bool {
        match self.workers.get_mut(&worker.shard) {
            Some(w) if w.info.id == worker.id => {
                w.fetching = false;
                if w.health.state == WorkerState::New {
                    w.health.set_state(WorkerState::Unhealthy, now);
                    return true;
                }
                false
            }
            _ => false,
        }
    }

    /// Fetching a NEW worker's running tasks failed: the next sweep tries again.
    pub fn fetch_failed(&mut self, worker: &WorkerInfo) {
        if let Some(w) = self.workers.get_mut(&worker.shard) {
            if w.info.id == worker.id {
                w.fetching = false;
            }
        }
    }

    /// Checks a status report's sender (§5.8): this scheduler's, from the shard's
    /// current instance, which is not NEW. `Err` is the refusal (the worker retries).
    pub fn check_update(&self, request: &UpdateStatusRequest) -> Result<(), Refusal> {
        if request.scheduler_id != self.id {
            return Err(Refusal(format!(
                "this is scheduler instance {}, not {}",
                self.id, request.scheduler_id
            )));
        }
        let Some(w) = self.workers.get(&request.shard) else {
            return Err(Refusal(format!("unknown worker shard {}", request.shard)));
        };
        if w.info.id != request.worker_id {
            return Err(Refusal(format!(
                "shard {} is worker instance {}, not {}",
                request.shard, w.info.id, request.worker_id
            )));
        }
        if w.health.state == WorkerState::New {
            return Err(Refusal(format!(
                "worker {} is NEW: its running tasks are not known yet; retry",
                request.shard
            )));
        }
        Ok(())
    }

    /// Records a healthcheck that came back `done`.
    pub fn healthcheck_done(&mut self, shard: &str, worker: InstanceId, sent_at: i64) {
        if let Some(w) = self.workers.get_mut(shard) {
            if w.info.id == worker {
                w.health.record_good_healthcheck(sent_at);
            }
        }
    }

    /// Whether runs sent to `worker` may still be running there: it is a current,
    /// not lost instance. (A restarted scheduler does not know older instances; during
    /// its initial wait the caller must not conclude anything.)
    pub fn is_live(&self, worker: InstanceId) -> bool {
        !self.lost.contains(&worker)
            && self
                .workers
                .values()
                .any(|w| w.info.id == worker && w.health.state != WorkerState::MustDie)
    }

    /// The shard's current instance.
    pub fn worker(&self, shard: &str) -> Option<&RemoteWorker> {
        self.workers.get(shard)
    }

    /// Every known worker, by shard.
    pub fn workers(&self) -> impl Iterator<Item = &RemoteWorker> {
        self.workers.values()
    }

    /// The next notify sequence for a worker (§5.7): one more than the last.
    pub fn next_notify_seq(&mut self, shard: &str) -> Option<u64> {
        let w = self.workers.get_mut(shard)?;
        w.notify_seq += 1;
        Some(w.notify_seq)
    }
}

#[cfg(test)]
mod tests;
