//! `bistro worker`: a remote worker (bistro-runtime §1.2, §5). It registers with its
//! scheduler by heartbeats, runs the tasks it is given under the same detached
//! supervisors as local tasks (in its own state dir: task-log DB and `jobs/`),
//! reports each status until the scheduler acknowledges it, and kills its tasks and
//! exits when told to die, when a signal asks it to stop, or when it has lost its
//! scheduler for longer than the scheduler's own timeouts allow.
//!
//! Threads: the main one sends heartbeats; one serves the scheduler's calls
//! (`service.rs`); one starts and watches tasks (`tasks.rs`; it lives as long as the
//! worker, since supervisors die with the thread that spawned them); one reports
//! statuses; one judges the worker's own health every second.

mod service;
mod tasks;

use crate::execution::http::client::{post_json, ClientError};
use crate::execution::http::rpc::{RpcEndpoint, RpcServer};
use crate::execution::remote::health::{
    HealthTimeouts, SchedulerTimeouts, WorkerHealth, WorkerState,
};
use crate::execution::remote::protocol::{
    calls, HeartbeatRequest, HeartbeatResponse, MachineLock, TaskRef, UpdateStatusRequest,
    WorkerInfo, PROTOCOL_VERSION,
};
use crate::execution::remote::worker_set::WorkerSetId;
use crate::execution::remote::InstanceId;
use crate::foundation::status::TaskStatus;
use crate::storage::state::StateDir;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The scheduler's `host:port` (its `daemon --http` address).
    pub scheduler: String,
    /// Run when the scheduler sends a task of a job without `command`.
    pub worker_command: Option<String>,
    /// The worker's shard id (default: the host name).
    pub shard_id: Option<String>,
    /// Where to listen for the scheduler's calls (`IP:PORT`, port 0: any).
    pub listen: String,
    /// The `host:port` the scheduler should call (default: the bound address).
    pub advertise: Option<String>,
    /// The scheduler's worker secret.
    pub token_file: PathBuf,
    /// Seconds between heartbeats.
    pub heartbeat_period_sec: i64,
    /// How long one call to the scheduler may take.
    pub call_timeout: Duration,
}

/// Why a worker stopped. Any end of a worker is exit code 1 for Bistro, except a
/// signal, which is how an operator stops it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerEnd {
    /// A signal asked it to stop; its tasks were killed.
    Stopped,
    /// It killed its tasks and itself: why.
    Suicide(String),
}

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The state dir failed.
    #[error(transparent)]
    State(#[from] crate::storage::state::StateError),
    /// The listening socket failed.
    #[error(transparent)]
    Http(#[from] crate::execution::http::HttpError),
    /// Anything else, said in words.
    #[error("{0}")]
    Other(String),
}

/// A task the worker runs or has not had acknowledged.
#[derive(Debug, Clone)]
struct TaskEntry {
    task: TaskRef,
    /// For a healthcheck: its start time on the scheduler's clock.
    healthcheck: Option<i64>,
    /// Its kill wait when the worker dies.
    suicide_kill_wait_ms: i64,
    /// Its supervisor has been started (its directory exists): only then can it be
    /// checked or killed.
    launched: bool,
    /// Its status is in the outbox.
    finished: bool,
}

/// A status on its way to the scheduler.
#[derive(Debug, Clone)]
struct Outgoing {
    task: TaskRef,
    status: TaskStatus,
    exit: String,
    killed: bool,
}

/// What the threads share, behind one lock.
struct Core {
    scheduler_id: Option<InstanceId>,
    timeouts: Option<SchedulerTimeouts>,
    health: WorkerHealth,
    worker_set_id: WorkerSetId,
    notify_seq: u64,
    tasks: HashMap<(String, String), TaskEntry>,
    outbox: VecDeque<Outgoing>,
    suicide: Option<String>,
}

/// The worker as its threads see it.
struct Shared {
    state: StateDir,
    opts: WorkerOptions,
    info: WorkerInfo,
    core: Mutex<Core>,
    /// Set once the worker is dying: calls are refused, tasks are being killed.
    dying: AtomicBool,
    /// Set when every thread should end.
    finished: AtomicBool,
    commands: Mutex<std::sync::mpsc::Sender<tasks::Command>>,
}

impl Shared {
    fn core(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts dying (once): calls are refused from now on.
    fn die(&self, reason: String) {
        let mut core = self.core();
        if core.suicide.is_none() {
            tracing::warn!("worker {} must die: {reason}", self.info.shard);
            core.suicide = Some(reason);
        }
        self.dying.store(true, Ordering::SeqCst);
    }

    /// Calls the scheduler.
    fn call(&self, name: &str, body: &serde_json::Value) -> Result<serde_json::Value, ClientError> {
        let token = crate::execution::http::read_secret(&self.opts.token_file).map_err(|e| {
            ClientError::Transport {
                addr: self.opts.scheduler.clone(),
                path: format!("/rpc/{name}"),
                message: e.to_string(),
            }
        })?;
        post_json(
            &self.opts.scheduler,
            &format!("/rpc/{name}"),
            &token.bearer(),
            body,
            self.opts.call_timeout,
        )
    }
}

/// Runs a worker until it stops or dies. The caller holds the state dir's lock.
/// `listening` gets the line that says where the worker listens, once it does (the
/// command prints it).
pub fn run(
    state: &StateDir,
    opts: &WorkerOptions,
    stop: &'static AtomicBool,
    listening: impl FnOnce(&str),
) -> Result<WorkerEnd, WorkerError> {
    crate::execution::http::read_secret(&opts.token_file).map_err(|e| {
        WorkerError::Other(format!(
            "{e}: give the worker the scheduler's STATE/worker.token with --token-file FILE"
        ))
    })?;
    tasks::clear_leftovers(state);
    let server_stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let hostname = crate::execution::supervisor::process::hostname();
    // The endpoint needs the shared state, which needs the bound address: bind first
    // with a service that forwards to the state once it exists.
    let slot: Arc<std::sync::OnceLock<Arc<Shared>>> = Arc::new(std::sync::OnceLock::new());
    let server = RpcServer::bind(
        &opts.listen,
        RpcEndpoint {
            service: Arc::new(service::Service(Arc::clone(&slot))),
            secret: opts.token_file.clone(),
        },
    )?;
    let bound = server.local_addr();
    let addr = opts.advertise.clone().unwrap_or_else(|| bound.to_string());
    let info = WorkerInfo {
        shard: opts.shard_id.clone().unwrap_or_else(|| hostname.clone()),
        id: InstanceId::new(),
        hostname: hostname.clone(),
        addr,
        lock: MachineLock {
            hostname,
            port: bound.port(),
        },
        heartbeat_period_sec: opts.heartbeat_period_sec.max(1),
        protocol_version: PROTOCOL_VERSION,
    };
    let shared = Arc::new(Shared {
        state: state.clone(),
        opts: opts.clone(),
        info,
        core: Mutex::new(Core {
            scheduler_id: None,
            timeouts: None,
            health: WorkerHealth::new(crate::foundation::time::now()),
            worker_set_id: WorkerSetId::empty(),
            notify_seq: 0,
            tasks: HashMap::new(),
            outbox: VecDeque::new(),
            suicide: None,
        }),
        dying: AtomicBool::new(false),
        finished: AtomicBool::new(false),
        commands: Mutex::new(tx),
    });
    let _ = slot.set(Arc::clone(&shared));
    let scheduler_is_remote = std::net::ToSocketAddrs::to_socket_addrs(opts.scheduler.as_str())
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| !a.ip().is_loopback());
    if opts.advertise.is_none() && bound.ip().is_loopback() && scheduler_is_remote {
        tracing::warn!(
            "this worker listens on {bound}, which the scheduler at {} cannot reach: pass --listen 0.0.0.0:PORT --advertise HOST:PORT",
            opts.scheduler
        );
    }
    listening(&format!(
        "worker {} ({}) listening on http://{}, reporting to {}",
        shared.info.shard, shared.info.id, shared.info.addr, opts.scheduler
    ));
    let threads = vec![
        {
            let stop = Arc::clone(&server_stop);
            std::thread::spawn(move || server.serve(&stop))
        },
        {
            let s = Arc::clone(&shared);
            std::thread::spawn(move || tasks::run(&s, rx))
        },
        {
            let s = Arc::clone(&shared);
            std::thread::spawn(move || report_statuses(&s))
        },
        {
            let s = Arc::clone(&shared);
            std::thread::spawn(move || judge_health(&s))
        },
    ];
    heartbeats(&shared, stop);
    let end = if stop.load(Ordering::SeqCst) && shared.core().suicide.is_none() {
        shared.die("asked to stop by a signal".into());
        WorkerEnd::Stopped
    } else {
        WorkerEnd::Suicide(shared.core().suicide.clone().unwrap_or_default())
    };
    tasks::kill_all(&shared);
    shared.finished.store(true, Ordering::SeqCst);
    server_stop.store(true, Ordering::SeqCst);
    for thread in threads {
        let _ = thread.join();
    }
    Ok(end)
}

/// Calls this worker's own `task_logs` through its advertised address, as Bistro's
/// worker does before its first heartbeat: a worker the scheduler could not call
/// back must not register.
fn reachable(shared: &Shared) -> Result<(), ClientError> {
    let token = crate::execution::http::read_secret(&shared.opts.token_file).map_err(|e| {
        ClientError::Transport {
            addr: shared.info.addr.clone(),
            path: "/rpc/task_logs".into(),
            message: e.to_string(),
        }
    })?;
    let probe = crate::execution::remote::protocol::TaskLogsRequest {
        kind: "statuses".into(),
        jobs: Vec::new(),
        nodes: Vec::new(),
        from: None,
        ascending: false,
        limit: 1,
    };
    post_json(
        &shared.info.addr,
        &format!("/rpc/{}", calls::TASK_LOGS),
        &token.bearer(),
        &serde_json::to_value(probe).expect("serializes"),
        shared.opts.call_timeout,
    )
    .map(drop)
}

/// Sends heartbeats until the worker is dying or `stop` is set: every heartbeat
/// period while healthy, every second otherwise.
fn heartbeats(shared: &Shared, stop: &AtomicBool) {
    let mut complained = false;
    let mut reached = false;
    while !stop.load(Ordering::SeqCst) && !shared.dying.load(Ordering::SeqCst) {
        if !reached {
            match reachable(shared) {
                Ok(()) => reached = true,
                Err(e) => {
                    if !complained {
                        tracing::warn!("this worker cannot call itself at its advertised address (retrying): {e}");
                    }
                    complained = true;
                    wait(Duration::from_secs(1), &[stop, &shared.dying]);
                    continue;
                }
            }
        }
        let request = HeartbeatRequest {
            worker: shared.info.clone(),
            worker_set_id: shared.core().worker_set_id,
        };
        let body = serde_json::to_value(&request).expect("serializes");
        match shared.call(calls::HEARTBEAT, &body) {
            Ok(answer) => match serde_json::from_value::<HeartbeatResponse>(answer) {
                Ok(response) => {
                    complained = false;
                    adopt(shared, response);
                }
                Err(e) => tracing::error!("the scheduler's heartbeat answer is malformed: {e}"),
            },
            Err(e) => {
                if !complained {
                    tracing::warn!("heartbeat failed (retrying): {e}");
                }
                complained = true;
            }
        }
        // Every second until healthy, as Bistro's worker does, so it learns soon that
        // it may take tasks.
        let healthy = shared.core().health.state == WorkerState::Healthy;
        let period = if healthy {
            Duration::from_secs(shared.info.heartbeat_period_sec as u64)
        } else {
            Duration::from_secs(1)
        };
        wait(period, &[stop, &shared.dying]);
    }
}

/// Takes a heartbeat answer in (bistro-runtime §5.4, worker side).
fn adopt(shared: &Shared, response: HeartbeatResponse) {
    if response.protocol_version != PROTOCOL_VERSION {
        tracing::error!(
            "the scheduler speaks protocol {}, this worker {PROTOCOL_VERSION}: not associating",
            response.protocol_version
        );
        return;
    }
    if response.worker_set_id.scheduler != response.id {
        shared.die("the scheduler sent a worker set of another scheduler".into());
        return;
    }
    let now = crate::foundation::time::now();
    let mut core = shared.core();
    if core.scheduler_id != Some(response.id) {
        if core.scheduler_id.is_some() {
            tracing::warn!(
                "a new scheduler instance {}: starting over as NEW",
                response.id
            );
        }
        core.scheduler_id = Some(response.id);
        core.health = WorkerHealth::new(now);
        core.worker_set_id = WorkerSetId::empty();
        core.notify_seq = 0;
    }
    core.health.record_heartbeat(now);
    core.health.set_state(response.worker_state, now);
    core.timeouts = Some(response.timeouts);
    let mine = core.worker_set_id;
    let older = mine.scheduler == response.worker_set_id.scheduler
        && crate::execution::remote::worker_set::earlier_than(
            response.worker_set_id.version,
            mine.version,
        );
    if older {
        tracing::warn!("the scheduler sent an older WorkerSetID; keeping the newer one");
    } else {
        core.worker_set_id = response.worker_set_id;
    }
    if response.worker_state == WorkerState::MustDie {
        drop(core);
        shared.die("the scheduler says this worker was lost".into());
    }
}

/// Every second, judges the worker's own health with the scheduler's timeouts, a
/// little stricter than the scheduler (it dies a sweep before it would be lost), and
/// dies once it would be lost (bistro-runtime §5.3).
fn judge_health(shared: &Shared) {
    while !shared.finished.load(Ordering::SeqCst) {
        let verdict = {
            let mut core = shared.core();
            let timeouts = HealthTimeouts::for_worker(
                shared.info.heartbeat_period_sec,
                core.timeouts.as_ref(),
            );
            core.health
                .update(crate::foundation::time::now(), &timeouts, false)
        };
        if verdict.state == WorkerState::MustDie && !shared.dying.load(Ordering::SeqCst) {
            shared.die(
                "lost contact with the scheduler for longer than it waits for a worker".into(),
            );
        }
        wait(Duration::from_secs(1), &[&shared.finished]);
    }
}

/// Sends finished tasks' statuses one by one until the scheduler acknowledges each;
/// a failed call puts the status back at the end of the queue and waits a second.
fn report_statuses(shared: &Shared) {
    while !shared.finished.load(Ordering::SeqCst) {
        let next = shared.core().outbox.pop_front();
        let Some(out) = next else {
            wait(Duration::from_millis(50), &[&shared.finished]);
            continue;
        };
        let Some(scheduler_id) = shared.core().scheduler_id else {
            shared.core().outbox.push_back(out);
            wait(Duration::from_secs(1), &[&shared.finished]);
            continue;
        };
        let request = UpdateStatusRequest {
            task: out.task.clone(),
            status: out.status.clone(),
            exit: out.exit.clone(),
            killed: out.killed,
            scheduler_id,
            worker_id: shared.info.id,
            shard: shared.info.shard.clone(),
        };
        match shared.call(
            calls::UPDATE_STATUS,
            &serde_json::to_value(&request).expect("serializes"),
        ) {
            Ok(_) => acknowledged(shared, &out),
            Err(e) => {
                tracing::info!(
                    "status of {}/{} not delivered yet: {e}",
                    out.task.job,
                    out.task.node
                );
                shared.core().outbox.push_back(out);
                wait(Duration::from_secs(1), &[&shared.finished]);
            }
        }
    }
}

/// The scheduler has recorded `out`: forget the run (and count a good healthcheck).
fn acknowledged(shared: &Shared, out: &Outgoing) {
    let mut core = shared.core();
    let key = (out.task.job.clone(), out.task.node.clone());
    let ours = core
        .tasks
        .get(&key)
        .is_some_and(|e| e.task.invocation == out.task.invocation && e.finished);
    if !ours {
        return;
    }
    let entry = core.tasks.remove(&key).expect("just found");
    if let (Some(started), true) = (entry.healthcheck, out.status.is_done()) {
        core.health.record_good_healthcheck(started);
    }
    drop(core);
    let _ = std::fs::remove_dir_all(shared.state.invocation_dir(out.task.invocation));
}

/// Sleeps up to `period`, waking early when any flag is set.
fn wait(period: Duration, flags: &[&AtomicBool]) {
    let until = Instant::now() + period;
    while !flags.iter().any(|f| f.load(Ordering::SeqCst)) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
}
