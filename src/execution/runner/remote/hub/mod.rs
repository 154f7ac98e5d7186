//! What a scheduler in remote mode shares between its scheduling loop, its HTTP
//! threads (workers' heartbeats and status reports) and its sweep thread: the
//! [`WorkerPool`] and the runs sent to workers.
//!
//! A run sent to a worker has an invocation directory like a local one, holding
//! `remote.json` (where it went). A status reported for it is written there as
//! `result.json` before the worker is told it arrived, so a status is never lost:
//! the next iteration records it exactly as a local supervisor's. A report for a run
//! that is no longer running (its worker was lost meanwhile) goes to `STATE/late/`,
//! where the next iteration lets it replace the stand-in `worker lost` status.

use crate::execution::http::client::{post_json, ClientError};
use crate::execution::http::rpc::{RpcRefusal, RpcService};
use crate::execution::remote::pool::{Action, PoolSettings, WorkerPool};
use crate::execution::remote::protocol::{
    calls, HeartbeatRequest, RunTaskRequest, RunningTasksRequest, RunningTasksResponse,
    SuicideRequest, TaskRef, UpdateStatusRequest, WorkerInfo, HEALTHCHECK_JOB, NEW_WORKER_NODE,
};
use crate::execution::remote::InstanceId;
use crate::execution::supervisor::TaskResult;
use crate::foundation::status::bits;
use crate::model::task::InvocationId;
use crate::storage::state::{run_dir, StateDir};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The most an "unsure if running" poll is put off: 256 times the first delay.
const MAX_UNSURE_DOUBLINGS: u32 = 8;

/// Why the workers' task logs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WorkerLogsError {
    /// A worker could not be asked.
    #[error("reading the task logs of worker {shard}: {source}")]
    Call {
        /// The worker's shard.
        shard: String,
        /// What the call met.
        source: ClientError,
    },
    /// A worker's answer is not a page of logs.
    #[error("worker {shard} answered task logs badly: {source}")]
    Answer {
        /// The worker's shard.
        shard: String,
        /// Why it does not parse.
        source: serde_json::Error,
    },
}

/// A run sent to a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteRun {
    /// The run.
    pub task: TaskRef,
    /// The worker's shard.
    pub shard: String,
    /// The worker instance it was sent to.
    pub worker: InstanceId,
    /// Where that worker listens.
    pub addr: String,
    /// Sent by this scheduler process (not found on disk after a restart).
    #[serde(skip)]
    pub here: bool,
}

/// A status reported for a run that had already ended here (its worker was lost).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LateStatus {
    /// The run.
    pub task: TaskRef,
    /// What the worker reported.
    pub status: crate::foundation::status::TaskStatus,
    /// Where it is kept until it is recorded.
    #[serde(skip)]
    pub path: PathBuf,
}

/// How the scheduler talks to its workers.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// Worker health and replacement.
    pub pool: PoolSettings,
    /// How long one call to a worker may take.
    pub call_timeout: Duration,
    /// Seconds before the first "unsure if running" poll.
    pub unsure_if_running_check_initial_period: i64,
}

/// Runs whose start call failed in transit: the worker may or may not have them.
#[derive(Debug, Default)]
struct Unsure {
    runs: BTreeMap<InvocationId, RemoteRun>,
    next_poll: i64,
    doublings: u32,
}

pub(super) struct Inner {
    pub(super) pool: WorkerPool,
    pub(super) runs: HashMap<InvocationId, RemoteRun>,
    /// The runs each worker instance reported when it was NEW.
    pub(super) fetched: HashMap<InstanceId, HashSet<InvocationId>>,
    unsure: Unsure,
}

/// The shared remote-mode state of one scheduler process.
pub struct Hub {
    pub(super) state: StateDir,
    secret: PathBuf,
    pub(super) settings: HubSettings,
    inner: Mutex<Inner>,
    /// Calls a heartbeat asked for, made by the sweep thread so that the heartbeat's
    /// answer never waits for a call to a worker.
    queued: Mutex<Vec<Action>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("state", &self.state.root())
            .field("scheduler", &self.lock().pool.id())
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub for a scheduler starting now over `state`; workers present the secret in
    /// `STATE/worker.token` (created on first need).
    pub fn new(
        state: &StateDir,
        settings: HubSettings,
    ) -> Result<Self, crate::storage::state::StateError> {
        let secret = crate::execution::http::worker_token_path(state);
        crate::execution::http::ensure_secret(&secret)?;
        let now = crate::foundation::time::now();
        Ok(Self {
            state: state.clone(),
            secret,
            inner: Mutex::new(Inner {
                pool: WorkerPool::new(InstanceId::new(), now, settings.pool),
                runs: HashMap::new(),
                fetched: HashMap::new(),
                unsure: Unsure::default(),
            }),
            settings,
            queued: Mutex::new(Vec::new()),
        })
    }

    /// The file workers must be given (`bistro worker --token-file`).
    pub fn secret_path(&self) -> &std::path::Path {
        &self.secret
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Calls a worker.
    pub(super) fn call_worker(
        &self,
        addr: &str,
        name: &str,
        body: &impl Serialize,
    ) -> Result<Value, ClientError> {
        let token = crate::execution::http::read_secret(&self.secret).map_err(|e| {
            ClientError::Transport {
                addr: addr.to_string(),
                path: format!("/rpc/{name}"),
                message: e.to_string(),
            }
        })?;
        post_json(
            addr,
            &format!("/rpc/{name}"),
            &token.bearer(),
            &serde_json::to_value(body).expect("protocol messages serialize"),
            self.settings.call_timeout,
        )
    }

    /// Sweeps every `worker_check_interval` until `stop` (the scheduler's worker
    /// thread).
    pub fn run_sweeps(&self, stop: &AtomicBool) {
        let period =
            Duration::from_secs(self.settings.pool.health.worker_check_interval().max(1) as u64);
        while !stop.load(Ordering::SeqCst) {
            self.sweep();
            let text = serde_json::to_string(&self.workers_json()).expect("serializes");
            if let Err(e) =
                crate::storage::state::write_replace(&self.state.workers_file(), text.as_bytes())
            {
                tracing::warn!("recording the workers for `bistro status`: {e}");
            }
            let until = std::time::Instant::now() + period;
            while !stop.load(Ordering::SeqCst) && std::time::Instant::now() < until {
                self.perform_queued();
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// One sweep: the pool's health updates and the calls they ask for, then the
    /// "unsure if running" poll when it is due.
    pub fn sweep(&self) {
        let now = crate::foundation::time::now();
        let actions = self.lock().pool.sweep(now);
        self.perform(actions);
        self.poll_unsure(now);
    }

    /// Makes the calls heartbeats asked for since the last time.
    fn perform_queued(&self) {
        let queued = std::mem::take(&mut *self.queued.lock().unwrap_or_else(|p| p.into_inner()));
        self.perform(queued);
    }

    fn perform(&self, actions: Vec<Action>) {
        let scheduler = self.lock().pool.id();
        for action in actions {
            match action {
                Action::Suicide { worker, reason } => {
                    let request = SuicideRequest {
                        scheduler_id: scheduler,
                        worker_id: worker.id,
                        reason,
                    };
                    // A worker that dies answers nothing: errors are only logged.
                    if let Err(e) = self.call_worker(&worker.addr, calls::REQUEST_SUICIDE, &request)
                    {
                        tracing::info!("asking worker {} to die: {e}", worker.shard);
                    }
                }
                Action::Healthcheck {
                    worker,
                    new_worker,
                    sent_at,
                } => self.healthcheck(scheduler, &worker, new_worker, sent_at),
                Action::FetchRunning { worker } => self.fetch_running(&worker),
            }
        }
    }

    fn healthcheck(
        &self,
        scheduler: InstanceId,
        worker: &WorkerInfo,
        new_worker: bool,
        sent_at: i64,
    ) {
        let request = RunTaskRequest {
            task: TaskRef {
                job: HEALTHCHECK_JOB.into(),
                node: if new_worker {
                    NEW_WORKER_NODE.into()
                } else {
                    String::new()
                },
                invocation: InvocationId {
                    start_time: sent_at,
                    rand: 0,
                },
            },
            command: vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo done > \"$2\"".into(),
                HEALTHCHECK_JOB.into(),
            ],
            arg: String::new(),
            scheduler_id: scheduler,
            worker_id: worker.id,
            notify_seq: 0,
            task_subprocess: Default::default(),
            kill_subprocess: Default::default(),
            task_timeout_sec: None,
            suicide_kill_wait_ms: self.settings.pool.health.worker_suicide_task_kill_wait_ms(),
        };
        if let Err(e) = self.call_worker(&worker.addr, calls::RUN_TASK, &request) {
            tracing::info!("healthcheck of worker {}: {e}", worker.shard);
        }
    }

    /// Asks a NEW worker what it runs; once it answers, it may leave NEW.
    fn fetch_running(&self, worker: &WorkerInfo) {
        let request = RunningTasksRequest {
            worker_id: worker.id,
            scheduler_id: self.lock().pool.id(),
        };
        let answer = self
            .call_worker(&worker.addr, calls::RUNNING_TASKS, &request)
            .map_err(|e| e.to_string())
            .and_then(|v| {
                serde_json::from_value::<RunningTasksResponse>(v).map_err(|e| e.to_string())
            });
        let mut inner = self.lock();
        match answer {
            Ok(answer) => {
                if inner
                    .pool
                    .running_fetched(worker, crate::foundation::time::now())
                {
                    let set: HashSet<InvocationId> =
                        answer.tasks.iter().map(|t| t.invocation).collect();
                    tracing::info!(
                        "worker {} runs {} task(s) it was given before",
                        worker.shard,
                        set.len()
                    );
                    inner.fetched.insert(worker.id, set);
                }
            }
            Err(e) => {
                tracing::info!("fetching the running tasks of worker {}: {e}", worker.shard);
                inner.pool.fetch_failed(worker);
            }
        }
    }

    /// A start call that failed in transit: poll the worker about the run later.
    pub(super) fn add_unsure(&self, run: RemoteRun) {
        let mut inner = self.lock();
        let unsure = &mut inner.unsure;
        if unsure.runs.is_empty() {
            unsure.doublings = 0;
            unsure.next_poll = crate::foundation::time::now()
                + self.settings.unsure_if_running_check_initial_period.max(1);
        }
        unsure.runs.insert(run.task.invocation, run);
    }

    pub(super) fn forget(&self, invocation: InvocationId) {
        let mut inner = self.lock();
        inner.runs.remove(&invocation);
        inner.unsure.runs.remove(&invocation);
    }

    /// Asks each worker with unsure runs to report those it does not run; on success
    /// they count as running (a report, if any, is on its way).
    fn poll_unsure(&self, now: i64) {
        let (scheduler, batches) = {
            let mut inner = self.lock();
            if inner.unsure.runs.is_empty() || now < inner.unsure.next_poll {
                return;
            }
            inner.unsure.doublings = (inner.unsure.doublings + 1).min(MAX_UNSURE_DOUBLINGS);
            let delay = self.settings.unsure_if_running_check_initial_period.max(1)
                << inner.unsure.doublings;
            inner.unsure.next_poll = now + delay;
            let mut batches: BTreeMap<String, Vec<RemoteRun>> = BTreeMap::new();
            for run in inner.unsure.runs.values() {
                batches
                    .entry(run.shard.clone())
                    .or_default()
                    .push(run.clone());
            }
            let mut out = Vec::new();
            for (shard, runs) in batches {
                let Some(seq) = inner.pool.next_notify_seq(&shard) else {
                    continue;
                };
                let Some(w) = inner.pool.worker(&shard) else {
                    continue;
                };
                out.push((w.info.clone(), seq, runs));
            }
            (inner.pool.id(), out)
        };
        for (worker, seq, runs) in batches {
            let request = crate::execution::remote::protocol::NotifyRequest {
                tasks: runs
                    .iter()
                    .filter(|r| r.worker == worker.id)
                    .map(|r| r.task.clone())
                    .collect(),
                scheduler_id: scheduler,
                worker_id: worker.id,
                notify_seq: seq,
            };
            match self.call_worker(&worker.addr, calls::NOTIFY_IF_TASKS_NOT_RUNNING, &request) {
                Ok(_) => {
                    let mut inner = self.lock();
                    for run in &runs {
                        inner.unsure.runs.remove(&run.task.invocation);
                    }
                }
                Err(e) => tracing::info!("asking worker {} about unsure runs: {e}", worker.shard),
            }
        }
    }

    /// A heartbeat: the pool's answer; the calls it asks for are queued.
    fn heartbeat(&self, request: HeartbeatRequest) -> Result<Value, RpcRefusal> {
        let (answer, actions) = self
            .lock()
            .pool
            .heartbeat(&request, crate::foundation::time::now());
        self.queued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(actions);
        answer
            .map(|r| serde_json::to_value(r).expect("serializes"))
            .map_err(|refusal| RpcRefusal::new(409, refusal.0))
    }

    /// A status report (§5.8): checked, then kept durably before it is acknowledged.
    fn update_status(&self, request: UpdateStatusRequest) -> Result<Value, RpcRefusal> {
        if request.status.has(bits::RUNNING) {
            return Ok(json!({}));
        }
        let mut inner = self.lock();
        inner
            .pool
            .check_update(&request)
            .map_err(|refusal| RpcRefusal::new(409, refusal.0))?;
        let task = &request.task;
        if task.job == HEALTHCHECK_JOB {
            if request.status.is_done() {
                inner.pool.healthcheck_done(
                    &request.shard,
                    request.worker_id,
                    task.invocation.start_time,
                );
            } else {
                tracing::error!(
                    "healthcheck of worker {} failed: {}",
                    request.shard,
                    request.exit
                );
            }
            return Ok(json!({}));
        }
        let mut status = request.status.clone();
        status.time = crate::foundation::time::now();
        let dir = self.state.invocation_dir(task.invocation);
        let ours = read_remote(&dir)
            .is_some_and(|run| run.task == *task && run.worker == request.worker_id)
            && !dir.join(run_dir::LOST).exists();
        let stored = if ours {
            inner.unsure.runs.remove(&task.invocation);
            if crate::execution::supervisor::run_files::read_result(&dir).is_some() {
                return Ok(json!({}));
            }
            let result = TaskResult {
                status,
                exit: request.exit.clone(),
                killed: request.killed,
                stop_signal: None,
                end_time: crate::foundation::time::now(),
            };
            // On disk before the worker is told: it forgets the run once told.
            crate::storage::state::write_atomic(
                &dir.join(run_dir::RESULT),
                serde_json::to_string(&result)
                    .expect("serializes")
                    .as_bytes(),
            )
        } else if status.has(bits::OVERWRITEABLE) {
            return Ok(json!({}));
        } else {
            let late = LateStatus {
                task: task.clone(),
                status,
                path: PathBuf::new(),
            };
            let dir = self.state.late_dir();
            std::fs::create_dir_all(&dir)
                .map_err(|e| crate::storage::state::io_err("creating", &dir)(e))
                .and_then(|()| {
                    crate::storage::state::write_atomic(
                        &dir.join(format!("{}.json", task.invocation)),
                        serde_json::to_string(&late).expect("serializes").as_bytes(),
                    )
                })
        };
        stored.map_err(|e| RpcRefusal::new(503, format!("cannot keep the status yet: {e}")))?;
        Ok(json!({}))
    }

    /// The late statuses waiting in `STATE/late/` (removed by [`late_recorded`] once
    /// the iteration has committed them).
    ///
    /// [`late_recorded`]: Self::late_recorded
    pub(super) fn late(&self) -> Vec<LateStatus> {
        let _inner = self.lock();
        let dir = self.state.late_dir();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<LateStatus>(&b).ok())
            {
                Some(late) => out.push(LateStatus { path, ..late }),
                None => {
                    tracing::error!("dropping an unreadable late status {}", path.display());
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        out
    }

    /// Forgets late statuses the iteration has committed (or decided to drop).
    pub(super) fn late_recorded(&self, late: &[LateStatus]) {
        for l in late {
            let _ = std::fs::remove_file(&l.path);
        }
    }

    /// One page of every live worker's log as `query` asks, at most `limit` lines
    /// from each (the caller merges them with its own). A worker that cannot answer
    /// fails the whole page, so a page never silently misses lines.
    pub fn worker_logs(
        &self,
        query: &crate::storage::store::PageQuery,
        limit: usize,
    ) -> Result<Vec<crate::storage::store::LogRow>, WorkerLogsError> {
        let workers: Vec<WorkerInfo> = self
            .lock()
            .pool
            .workers()
            .filter(|w| w.health.state != crate::execution::remote::health::WorkerState::MustDie)
            .map(|w| w.info.clone())
            .collect();
        let request = crate::execution::remote::protocol::TaskLogsRequest {
            kind: query.kind.table().to_string(),
            jobs: query.jobs.clone(),
            nodes: query.nodes.clone(),
            from: query.from,
            ascending: query.ascending,
            limit,
        };
        let mut rows = Vec::new();
        for worker in workers {
            let answer = self
                .call_worker(&worker.addr, calls::TASK_LOGS, &request)
                .map_err(|source| WorkerLogsError::Call {
                    shard: worker.shard.clone(),
                    source,
                })?;
            let answer: crate::execution::remote::protocol::TaskLogsResponse =
                serde_json::from_value(answer).map_err(|source| WorkerLogsError::Answer {
                    shard: worker.shard.clone(),
                    source,
                })?;
            rows.extend(answer.lines.into_iter().map(|(job, node, id, line)| {
                crate::storage::store::LogRow {
                    kind: query.kind,
                    job,
                    node,
                    id,
                    line,
                }
            }));
        }
        Ok(rows)
    }

    /// The workers for `status`, the status page and the API.
    pub fn workers_json(&self) -> Value {
        let inner = self.lock();
        let workers: Vec<Value> = inner
            .pool
            .workers()
            .map(|w| {
                json!({
                    "shard": w.info.shard,
                    "instance": w.info.id.to_string(),
                    "hostname": w.info.hostname,
                    "addr": w.info.addr,
                    "state": w.health.state,
                    "last_heartbeat": (w.health.last_heartbeat != i64::MIN).then_some(w.health.last_heartbeat),
                    "last_good_healthcheck": (w.health.last_good_healthcheck != i64::MIN).then_some(w.health.last_good_healthcheck),
                    "consensus_block": w.consensus_block,
                })
            })
            .collect();
        json!({
            "scheduler": inner.pool.id().to_string(),
            "initial_wait": inner.pool.initial_wait(),
            "workers": workers,
        })
    }
}

/// Reads where a run went, if it was sent to a worker.
pub(super) fn read_remote(dir: &std::path::Path) -> Option<RemoteRun> {
    let bytes = std::fs::read(dir.join(run_dir::REMOTE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

impl RpcService for Hub {
    fn call(&self, name: &str, body: Value) -> Result<Value, RpcRefusal> {
        let parse = |e: serde_json::Error| RpcRefusal::new(400, format!("malformed call: {e}"));
        match name {
            calls::HEARTBEAT => self.heartbeat(serde_json::from_value(body).map_err(parse)?),
            calls::UPDATE_STATUS => {
                self.update_status(serde_json::from_value(body).map_err(parse)?)
            }
            _ => Err(RpcRefusal::new(
                404,
                format!("a scheduler has no call {name:?}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests;
