//! [`RemoteRunner`]: the [`TaskRunner`] of a scheduler whose tasks run on remote
//! workers. The scheduling pass places each task on a worker ([`WorkerSlots`]); the
//! runner records where it went, sends it, and learns its end from the worker's
//! report (kept by the [`Hub`]) or from the worker's loss.

use super::hub::{read_remote, Hub, LateStatus, RemoteRun};
use crate::execution::http::client::ClientError;
use crate::execution::remote::protocol::{calls, KillTaskRequest, RunTaskRequest, TaskRef};
use crate::execution::runner::{Launch, Outcome, PreparedTask, RunnerError, TaskRunner};
use crate::foundation::config::{Config, KillRequest};
use crate::foundation::status::{bits, TaskStatus, SAVED_BACKOFF_KEY};
use crate::model::task::RunningTask;
use crate::scheduler::workers::{KnownWorker, WorkerSlots};
use crate::storage::state::run_dir;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// The key in a `worker lost` status's data naming the run it stands in for: only
/// that run's late report may replace it.
pub const LOST_INVOCATION_KEY: &str = "lost_invocation";

/// Runs tasks on the workers of a [`Hub`].
pub struct RemoteRunner {
    hub: Arc<Hub>,
    /// Round-robin positions, kept from pass to pass.
    cursors: HashMap<String, usize>,
    /// Runs prepared and not started yet.
    pending: HashMap<crate::model::task::InvocationId, (RemoteRun, RunTaskRequest)>,
}

impl RemoteRunner {
    /// A runner over `hub`.
    pub fn new(hub: Arc<Hub>) -> Self {
        Self {
            hub,
            cursors: HashMap::new(),
            pending: HashMap::new(),
        }
    }

    /// The status of a run whose worker was lost (§5.9): an error that backs off at
    /// least long enough for the worker to have killed it (the safety margin, the
    /// kill wait and a second), keeping the job's own backoff step to resume from.
    fn worker_lost(&self, run: &RemoteRun) -> TaskStatus {
        let health = &self.hub.settings.pool.health;
        let mut data = Map::new();
        data.insert("worker_shard".into(), Value::from(run.shard.clone()));
        data.insert(
            "exception".into(),
            Value::from("Remote worker lost (crashed? network down?)"),
        );
        data.insert(SAVED_BACKOFF_KEY.into(), Value::from(0));
        data.insert(
            LOST_INVOCATION_KEY.into(),
            Value::from(run.task.invocation.to_string()),
        );
        TaskStatus {
            bits: bits::ERROR | bits::USES_BACKOFF | bits::OVERWRITEABLE | bits::HAS_SAVED_BACKOFF,
            data: Some(data),
            time: crate::foundation::time::now(),
            backoff: health.worker_suicide_backoff_safety_margin()
                + health.worker_suicide_task_kill_wait_ms() / 1000
                + 1,
        }
    }
}

fn err(task: &TaskRef, message: impl Into<String>) -> RunnerError {
    RunnerError {
        job: task.job.clone(),
        node: task.node.clone(),
        message: message.into(),
    }
}

impl TaskRunner for RemoteRunner {
    fn prepare(&mut self, launch: Launch) -> Result<PreparedTask, RunnerError> {
        let task = TaskRef {
            job: launch.job.clone(),
            node: launch.node.clone(),
            invocation: launch.invocation,
        };
        let shard = launch
            .worker
            .clone()
            .ok_or_else(|| err(&task, "no worker was chosen for the task"))?;
        let (worker, scheduler, seq) = {
            let inner = self.hub.lock();
            let w = inner
                .pool
                .worker(&shard)
                .ok_or_else(|| err(&task, format!("worker {shard} is gone")))?;
            (w.info.clone(), inner.pool.id(), w.notify_seq)
        };
        let run = RemoteRun {
            task: task.clone(),
            shard,
            worker: worker.id,
            addr: worker.addr.clone(),
            here: true,
        };
        let dir = self.hub.state.invocation_dir(launch.invocation);
        let write = |name: &str, bytes: Vec<u8>| {
            crate::storage::state::write_replace(&dir.join(name), &bytes)
                .map_err(|e| err(&task, e.to_string()))
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| err(&task, format!("creating {}: {e}", dir.display())))?;
        write(
            run_dir::LAUNCH,
            serde_json::to_vec(&launch).expect("serializes"),
        )?;
        write(
            run_dir::REMOTE,
            serde_json::to_vec(&run).expect("serializes"),
        )?;
        // argv is [COMMAND...] NODE STATUS_FILE JSON: the worker supplies its own
        // status file (and its --worker-command when the job has no command).
        let words = launch.argv.len();
        let request = RunTaskRequest {
            task,
            command: launch.argv[..words.saturating_sub(3)].to_vec(),
            arg: launch.argv.last().cloned().unwrap_or_default(),
            scheduler_id: scheduler,
            worker_id: worker.id,
            notify_seq: seq,
            task_subprocess: launch.task_subprocess.clone(),
            kill_subprocess: launch.kill_subprocess,
            task_timeout_sec: launch.task_timeout_sec,
            suicide_kill_wait_ms: self
                .hub
                .settings
                .pool
                .health
                .worker_suicide_task_kill_wait_ms(),
        };
        self.hub.lock().runs.insert(launch.invocation, run.clone());
        self.pending.insert(launch.invocation, (run, request));
        Ok(PreparedTask { launch, lock: None })
    }

    fn start(&mut self, prepared: PreparedTask) -> Result<(), RunnerError> {
        let (run, request) = self
            .pending
            .remove(&prepared.launch.invocation)
            .ok_or_else(|| RunnerError {
                job: prepared.launch.job.clone(),
                node: prepared.launch.node.clone(),
                message: "the task was not prepared".into(),
            })?;
        match self.hub.call_worker(&run.addr, calls::RUN_TASK, &request) {
            Ok(_) => Ok(()),
            // Refused: certainly not started, so it may run again at once.
            Err(ClientError::Refused { message, .. }) => Err(err(
                &run.task,
                format!("worker {} refused it: {message}", run.shard),
            )),
            // Lost in transit: it may be running; ask the worker later.
            Err(e @ ClientError::Transport { .. }) => {
                tracing::warn!(
                    "unsure whether {}/{} started: {e}",
                    run.task.job,
                    run.task.node
                );
                self.hub.add_unsure(run);
                Ok(())
            }
        }
    }

    fn check(&mut self, task: &RunningTask) -> Outcome {
        let dir = self.hub.state.invocation_dir(task.invocation);
        let mut inner = self.hub.lock();
        if let Some(result) = crate::execution::runner::read_result(&dir) {
            return Outcome::Finished(result);
        }
        let run = inner
            .runs
            .get(&task.invocation)
            .cloned()
            .or_else(|| read_remote(&dir));
        let Some(run) = run else {
            // Not a remote run: a local run left by an earlier `tick` or local daemon.
            drop(inner);
            return crate::execution::runner::local_outcome(&dir, task);
        };
        inner
            .runs
            .entry(task.invocation)
            .or_insert_with(|| run.clone());
        if inner.pool.initial_wait().is_some() {
            return Outcome::Running;
        }
        if !inner.pool.is_live(run.worker) {
            // From now on a report for this run is late (it replaces the stand-in).
            if let Err(e) = std::fs::write(dir.join(run_dir::LOST), b"") {
                tracing::warn!("marking {} lost: {e}", dir.display());
            }
            drop(inner);
            let status = self.worker_lost(&run);
            return Outcome::Lost(status, format!("worker {} was lost", run.shard));
        }
        let unknown_to_worker = !run.here
            && inner
                .fetched
                .get(&run.worker)
                .is_some_and(|set| !set.contains(&task.invocation));
        if unknown_to_worker {
            return Outcome::NeverStarted(format!(
                "worker {} does not know this run (its start never arrived)",
                run.shard
            ));
        }
        Outcome::Running
    }

    fn cleanup(&mut self, task: &RunningTask) {
        let _inner = self.hub.lock();
        let _ = std::fs::remove_dir_all(self.hub.state.invocation_dir(task.invocation));
        drop(_inner);
        self.hub.forget(task.invocation);
    }

    fn kill(&mut self, task: &RunningTask, request: &KillRequest) -> Result<bool, RunnerError> {
        let dir = self.hub.state.invocation_dir(task.invocation);
        let (run, scheduler) = {
            let inner = self.hub.lock();
            let run = inner
                .runs
                .get(&task.invocation)
                .cloned()
                .or_else(|| read_remote(&dir));
            (run, inner.pool.id())
        };
        let Some(run) = run else {
            return crate::execution::runner::request_kill(&dir, request).map_err(|e| {
                RunnerError {
                    job: task.job.clone(),
                    node: task.node.clone(),
                    message: e.to_string(),
                }
            });
        };
        let call = KillTaskRequest {
            task: run.task.clone(),
            scheduler_id: scheduler,
            worker_id: run.worker,
            request: *request,
        };
        match self.hub.call_worker(&run.addr, calls::KILL_TASK, &call) {
            Ok(answer) => Ok(answer
                .get("signalled")
                .and_then(Value::as_bool)
                .unwrap_or(true)),
            Err(ClientError::Refused { message, .. }) if message.contains("is not running") => {
                Ok(false)
            }
            Err(e) => Err(err(&run.task, e.to_string())),
        }
    }

    /// Delivers kill requests left by `bistro kill` or the `kill_task` handler
    /// (`kill.json` in a remote run's directory) to the runs' workers.
    fn tidy_up(&mut self) {
        let runs: Vec<RemoteRun> = self.hub.lock().runs.values().cloned().collect();
        for run in runs {
            let dir = self.hub.state.invocation_dir(run.task.invocation);
            // Delivered requests are renamed, so a later one (a new kill.json) is
            // delivered too.
            let Some(request) = std::fs::read(dir.join(run_dir::KILL_REQUEST))
                .ok()
                .and_then(|b| serde_json::from_slice::<KillRequest>(&b).ok())
            else {
                continue;
            };
            let task = RunningTask {
                job: run.task.job.clone(),
                node: run.task.node.clone(),
                invocation: run.task.invocation,
                charges: Vec::new(),
                next_backoff: Default::default(),
                attempts: 0,
                worker_shard: run.shard.clone(),
                timeout_sec: None,
            };
            match self.kill(&task, &request) {
                Ok(_) => {
                    let _ = std::fs::rename(
                        dir.join(run_dir::KILL_REQUEST),
                        dir.join(run_dir::KILL_SENT),
                    );
                }
                Err(e) => tracing::warn!("delivering a kill request: {e}"),
            }
        }
    }

    fn placement(&mut self) -> Option<&mut dyn super::WorkerPlacement> {
        Some(self)
    }
}

impl super::WorkerPlacement for RemoteRunner {
    fn workers(&mut self, config: &Config, running: &[RunningTask]) -> WorkerSlots {
        let inner = self.hub.lock();
        let known: Vec<KnownWorker> = inner
            .pool
            .workers()
            .filter(|w| w.health.state != crate::execution::remote::health::WorkerState::MustDie)
            .map(|w| KnownWorker {
                shard: w.info.shard.clone(),
                hostname: w.info.hostname.clone(),
                port: w.info.lock.port,
                healthy: w.health.state == crate::execution::remote::health::WorkerState::Healthy,
            })
            .collect();
        let mut slots = WorkerSlots::new(config, &known, running);
        slots.cursors = std::mem::take(&mut self.cursors);
        slots.halted = inner.pool.initial_wait().is_some();
        slots
    }

    fn placed(&mut self, slots: WorkerSlots) {
        self.cursors = slots.cursors;
    }

    fn late_statuses(&mut self) -> Vec<LateStatus> {
        self.hub.late()
    }

    fn late_recorded(&mut self, late: &[LateStatus]) {
        self.hub.late_recorded(late);
    }

    fn notes(&self) -> Vec<String> {
        self.hub
            .lock()
            .pool
            .initial_wait()
            .map(|m| format!("RemoteWorkerRunner initial wait: {m}"))
            .into_iter()
            .collect()
    }
}
