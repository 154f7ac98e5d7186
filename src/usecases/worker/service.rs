//! The calls a worker answers (bistro-runtime §5.5 - §5.10, worker side). Each checks
//! that it is meant for this worker instance (and, mostly, from its current
//! scheduler), so a stale caller is refused instead of being trusted.

use super::{tasks, Outgoing, Shared, TaskEntry};
use crate::execution::http::rpc::{RpcRefusal, RpcService};
use crate::execution::remote::health::{HealthTimeouts, WorkerState};
use crate::execution::remote::protocol::{
    calls, KillTaskRequest, NotifyRequest, RunTaskRequest, RunningTasksRequest,
    RunningTasksResponse, SuicideRequest, TaskLogsRequest, TaskLogsResponse, HEALTHCHECK_JOB,
    NEW_WORKER_NODE,
};
use crate::execution::remote::InstanceId;
use crate::foundation::status::{bits, TaskStatus};
use crate::storage::store::{LogKind, LogStore, PageQuery};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

/// The worker's calls, answered once the worker is set up.
pub(super) struct Service(pub(super) Arc<OnceLock<Arc<Shared>>>);

fn parse<T: DeserializeOwned>(body: Value) -> Result<T, RpcRefusal> {
    serde_json::from_value(body).map_err(|e| RpcRefusal::new(400, format!("malformed call: {e}")))
}

fn refuse(message: impl Into<String>) -> RpcRefusal {
    RpcRefusal::new(409, message)
}

impl RpcService for Service {
    fn call(&self, name: &str, body: Value) -> Result<Value, RpcRefusal> {
        let shared = self
            .0
            .get()
            .ok_or_else(|| RpcRefusal::new(503, "the worker is starting"))?;
        match name {
            calls::RUN_TASK => run_task(shared, parse(body)?),
            calls::RUNNING_TASKS => running_tasks(shared, &parse(body)?),
            calls::NOTIFY_IF_TASKS_NOT_RUNNING => notify_if_not_running(shared, parse(body)?),
            calls::REQUEST_SUICIDE => request_suicide(shared, parse(body)?),
            calls::KILL_TASK => kill_task(shared, parse(body)?),
            calls::TASK_LOGS => task_logs(shared, parse(body)?),
            _ => Err(RpcRefusal::new(
                404,
                format!("a worker has no call {name:?}"),
            )),
        }
    }
}

fn not_dying(shared: &Shared) -> Result<(), RpcRefusal> {
    if shared.dying.load(Ordering::SeqCst) {
        return Err(refuse(format!(
            "worker {} is committing suicide",
            shared.info.shard
        )));
    }
    Ok(())
}

fn check_worker(shared: &Shared, worker: InstanceId) -> Result<(), RpcRefusal> {
    if worker != shared.info.id {
        return Err(refuse(format!(
            "this is worker instance {}, not {worker}",
            shared.info.id
        )));
    }
    Ok(())
}

fn check_scheduler(shared: &Shared, scheduler: InstanceId) -> Result<(), RpcRefusal> {
    let mine = shared.core().scheduler_id;
    if mine != Some(scheduler) {
        return Err(refuse(format!(
            "this worker reports to scheduler instance {}, not {scheduler}",
            mine.map_or_else(|| "(none yet)".to_string(), |id| id.to_string())
        )));
    }
    Ok(())
}

fn run_task(shared: &Shared, request: RunTaskRequest) -> Result<Value, RpcRefusal> {
    not_dying(shared)?;
    let task = &request.task;
    let healthcheck = task.job == HEALTHCHECK_JOB;
    check_worker(shared, request.worker_id)?;
    // A scheduler that has just met this worker may healthcheck it before the
    // worker has its answer.
    if !(healthcheck && task.node == NEW_WORKER_NODE) {
        check_scheduler(shared, request.scheduler_id)?;
    }
    let mut core = shared.core();
    if core.suicide.is_some() {
        return Err(refuse(format!(
            "worker {} is committing suicide",
            shared.info.shard
        )));
    }
    if !healthcheck {
        // Judged now, not at the last health sweep: a worker resumed after a freeze
        // must not take a request that waited in its socket meanwhile.
        let timeouts =
            HealthTimeouts::for_worker(shared.info.heartbeat_period_sec, core.timeouts.as_ref());
        let now = core
            .health
            .compute_state(crate::foundation::time::now(), &timeouts, false)
            .state;
        if core.health.state != WorkerState::Healthy || now != WorkerState::Healthy {
            return Err(refuse("Unhealthy, not running task"));
        }
        if request.notify_seq < core.notify_seq {
            return Err(refuse(format!(
                "the task was sent before notify sequence {}: it may already have been reported as not running",
                core.notify_seq
            )));
        }
    }
    let key = (task.job.clone(), task.node.clone());
    if core.tasks.contains_key(&key) {
        return Err(refuse(if healthcheck {
            "Another healtcheck is already running.".to_string()
        } else {
            format!("{}/{} is already running here", task.job, task.node)
        }));
    }
    tasks::launch(shared, &request).map_err(|e| refuse(e.to_string()))?;
    core.tasks.insert(
        key,
        TaskEntry {
            task: task.clone(),
            healthcheck: healthcheck.then_some(task.invocation.start_time),
            suicide_kill_wait_ms: request.suicide_kill_wait_ms,
            launched: false,
            finished: false,
        },
    );
    drop(core);
    shared
        .commands
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send(tasks::Command::Start(Box::new(request)))
        .map_err(|_| refuse("the worker is stopping"))?;
    Ok(json!({}))
}

fn running_tasks(shared: &Shared, request: &RunningTasksRequest) -> Result<Value, RpcRefusal> {
    not_dying(shared)?;
    check_worker(shared, request.worker_id)?;
    check_scheduler(shared, request.scheduler_id)?;
    let tasks = shared
        .core()
        .tasks
        .values()
        .filter(|e| e.healthcheck.is_none())
        .map(|e| e.task.clone())
        .collect();
    Ok(serde_json::to_value(RunningTasksResponse { tasks }).expect("serializes"))
}

fn notify_if_not_running(shared: &Shared, request: NotifyRequest) -> Result<Value, RpcRefusal> {
    check_worker(shared, request.worker_id)?;
    check_scheduler(shared, request.scheduler_id)?;
    let mut core = shared.core();
    if request.notify_seq <= core.notify_seq {
        return Err(refuse(format!(
            "notify sequence {} is not after {}",
            request.notify_seq, core.notify_seq
        )));
    }
    core.notify_seq = request.notify_seq;
    for task in request.tasks {
        if core
            .tasks
            .contains_key(&(task.job.clone(), task.node.clone()))
        {
            continue;
        }
        let mut status = TaskStatus::with_exception(
            bits::ERROR | bits::OVERWRITEABLE,
            "was not running",
            crate::foundation::time::now(),
        );
        status.backoff = 0;
        core.outbox.push_back(Outgoing {
            task,
            status,
            exit: "was not running".into(),
            killed: false,
        });
    }
    Ok(json!({}))
}

fn request_suicide(shared: &Shared, request: SuicideRequest) -> Result<Value, RpcRefusal> {
    not_dying(shared)?;
    check_worker(shared, request.worker_id)?;
    check_scheduler(shared, request.scheduler_id)?;
    shared.die(format!("the scheduler asked: {}", request.reason));
    Ok(json!({}))
}

fn kill_task(shared: &Shared, request: KillTaskRequest) -> Result<Value, RpcRefusal> {
    not_dying(shared)?;
    check_worker(shared, request.worker_id)?;
    check_scheduler(shared, request.scheduler_id)?;
    let task = &request.task;
    let running = shared
        .core()
        .tasks
        .get(&(task.job.clone(), task.node.clone()))
        .is_some_and(|e| e.task.invocation == task.invocation && !e.finished);
    if !running {
        return Err(refuse(format!(
            "{}/{} (run {}) is not running here",
            task.job, task.node, task.invocation
        )));
    }
    let dir = shared.state.invocation_dir(task.invocation);
    let signalled = crate::execution::runner::request_kill(&dir, &request.request)
        .map_err(|e| refuse(e.to_string()))?;
    Ok(json!({ "signalled": signalled }))
}

fn task_logs(shared: &Shared, request: TaskLogsRequest) -> Result<Value, RpcRefusal> {
    let kind = LogKind::parse(&request.kind)
        .ok_or_else(|| RpcRefusal::new(400, format!("Unknown table for logs: {}", request.kind)))?;
    let path = shared.state.logs_db();
    if !path.exists() {
        return Ok(
            serde_json::to_value(TaskLogsResponse { lines: Vec::new() }).expect("serializes")
        );
    }
    let store = LogStore::open(&path).map_err(|e| RpcRefusal::new(500, e.to_string()))?;
    let rows = store
        .page(&PageQuery {
            kind,
            jobs: request.jobs,
            nodes: request.nodes,
            from: request.from,
            ascending: request.ascending,
            limit: request.limit,
        })
        .map_err(|e| RpcRefusal::new(500, e.to_string()))?;
    let lines = rows
        .into_iter()
        .map(|r| (r.job, r.node, r.id, r.line))
        .collect();
    Ok(serde_json::to_value(TaskLogsResponse { lines }).expect("serializes"))
}
