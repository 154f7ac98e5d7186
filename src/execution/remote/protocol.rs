//! The messages of the scheduler <-> worker protocol (bistro-runtime §5.2), carried as
//! JSON over `POST /rpc/NAME` ([`crate::execution::http::rpc`]) instead of Thrift.
//!
//! The scheduler answers [`calls::HEARTBEAT`] and [`calls::UPDATE_STATUS`]; a worker
//! answers the others. Every call names the caller's and the callee's instance ids, so
//! a message from an old process is refused instead of being trusted.

use super::health::{SchedulerTimeouts, WorkerState};
use super::worker_set::WorkerSetId;
use super::InstanceId;
use crate::foundation::config::{KillRequest, TaskSubprocess};
use crate::foundation::status::TaskStatus;
use crate::model::task::InvocationId;
use serde::{Deserialize, Serialize};

/// Both sides must speak exactly this version.
pub const PROTOCOL_VERSION: i32 = 2;

/// The job name of healthchecks.
pub const HEALTHCHECK_JOB: &str = "__BISTRO_HEALTH_CHECK__";

/// The node name of the healthcheck sent to a worker the scheduler has just met.
pub const NEW_WORKER_NODE: &str = "__NEW_WORKER__";

/// Call names (the `NAME` of `POST /rpc/NAME`).
pub mod calls {
    /// Worker -> scheduler: "I am alive", answered with the worker's state.
    pub const HEARTBEAT: &str = "heartbeat";
    /// Worker -> scheduler: a task's final status.
    pub const UPDATE_STATUS: &str = "update_status";
    /// Scheduler -> worker: start a task.
    pub const RUN_TASK: &str = "run_task";
    /// Scheduler -> worker: which tasks do you run?
    pub const RUNNING_TASKS: &str = "running_tasks";
    /// Scheduler -> worker: report "was not running" for those of these you do not run.
    pub const NOTIFY_IF_TASKS_NOT_RUNNING: &str = "notify_if_tasks_not_running";
    /// Scheduler -> worker: kill your tasks and exit.
    pub const REQUEST_SUICIDE: &str = "request_suicide";
    /// Scheduler -> worker: kill one task.
    pub const KILL_TASK: &str = "kill_task";
    /// Scheduler -> worker: one page of the worker's task logs.
    pub const TASK_LOGS: &str = "task_logs";
}

/// Where a worker's machine and port are: a second worker with the same lock is
/// certainly a restart of the first (the old one no longer holds the port).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MachineLock {
    /// The worker's host name.
    pub hostname: String,
    /// The port the worker listens on.
    pub port: u16,
}

/// A worker as it describes itself in each heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// The worker's logical slot: one worker per shard is associated.
    pub shard: String,
    /// This worker process.
    pub id: InstanceId,
    /// The machine's host name (for host placement and worker-level filters).
    pub hostname: String,
    /// `host:port` the scheduler calls the worker at.
    pub addr: String,
    /// Identifies the worker's machine and port.
    pub lock: MachineLock,
    /// Seconds between the worker's heartbeats.
    pub heartbeat_period_sec: i64,
    /// [`PROTOCOL_VERSION`] of the worker.
    pub protocol_version: i32,
}

/// The body of [`calls::HEARTBEAT`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    /// Who is calling.
    pub worker: WorkerInfo,
    /// The last worker-set id a scheduler sent ([`WorkerSetId::empty`] before any).
    #[serde(default)]
    pub worker_set_id: WorkerSetId,
}

/// The answer to [`calls::HEARTBEAT`]: the worker's state and the timeouts it must use
/// to judge its own health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// The scheduler process.
    pub id: InstanceId,
    /// The timeouts the worker judges its own health by.
    #[serde(flatten)]
    pub timeouts: SchedulerTimeouts,
    /// What the scheduler thinks of the worker.
    pub worker_state: WorkerState,
    /// [`PROTOCOL_VERSION`] of the scheduler.
    pub protocol_version: i32,
    /// The current set of workers, for the worker to echo.
    pub worker_set_id: WorkerSetId,
}

/// One run of a task.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskRef {
    /// Job name.
    pub job: String,
    /// Node name.
    pub node: String,
    /// The run.
    pub invocation: InvocationId,
}

/// The body of [`calls::RUN_TASK`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunTaskRequest {
    /// The run to start.
    pub task: TaskRef,
    /// The job's command; empty to use the worker's `--worker-command`.
    pub command: Vec<String>,
    /// The task's JSON argument (argv's last word).
    pub arg: String,
    /// Who sends it.
    pub scheduler_id: InstanceId,
    /// Whom it is for.
    pub worker_id: InstanceId,
    /// The scheduler's notify sequence for this worker when it sent the task: a
    /// worker that has seen a later poll refuses it (it may already have said "not
    /// running").
    pub notify_seq: u64,
    /// How to run the process.
    pub task_subprocess: TaskSubprocess,
    /// How to kill it.
    pub kill_subprocess: KillRequest,
    /// The job's `task_timeout_sec`: the worker's supervisor kills the task this long
    /// after it started it (absent from older schedulers: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_timeout_sec: Option<u64>,
    /// How long the task has between SIGTERM and SIGKILL when its worker dies
    /// (`CAUTION_worker_suicide_task_kill_wait_ms`, which the scheduler's safety
    /// backoff for lost workers counts on; the job's own kill wait is capped by it).
    pub suicide_kill_wait_ms: i64,
}

/// The body of [`calls::RUNNING_TASKS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningTasksRequest {
    /// Whom it is for.
    pub worker_id: InstanceId,
    /// Who asks: the worker answers only the scheduler it reports to, so a start
    /// still in flight from an older scheduler cannot slip in after the answer.
    pub scheduler_id: InstanceId,
}

/// The answer to [`calls::RUNNING_TASKS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningTasksResponse {
    /// Every task the worker runs or has not had acknowledged (healthchecks excepted).
    pub tasks: Vec<TaskRef>,
}

/// The body of [`calls::NOTIFY_IF_TASKS_NOT_RUNNING`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyRequest {
    /// Runs the scheduler is unsure about.
    pub tasks: Vec<TaskRef>,
    /// Who sends it.
    pub scheduler_id: InstanceId,
    /// Whom it is for.
    pub worker_id: InstanceId,
    /// Strictly greater than any sequence the worker has seen.
    pub notify_seq: u64,
}

/// The body of [`calls::REQUEST_SUICIDE`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuicideRequest {
    /// Who sends it.
    pub scheduler_id: InstanceId,
    /// Whom it is for.
    pub worker_id: InstanceId,
    /// Why, for the worker's log.
    pub reason: String,
}

/// The body of [`calls::KILL_TASK`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KillTaskRequest {
    /// The run to kill.
    pub task: TaskRef,
    /// Who sends it.
    pub scheduler_id: InstanceId,
    /// Whom it is for.
    pub worker_id: InstanceId,
    /// How.
    pub request: KillRequest,
}

/// The body of [`calls::UPDATE_STATUS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateStatusRequest {
    /// The run that ended.
    pub task: TaskRef,
    /// Its status as reported (backoff not applied).
    pub status: TaskStatus,
    /// How the process ended, e.g. `exited with status 0`.
    pub exit: String,
    /// Whether it was killed.
    pub killed: bool,
    /// The scheduler the worker reports to.
    pub scheduler_id: InstanceId,
    /// Who reports.
    pub worker_id: InstanceId,
    /// The reporting worker's shard.
    pub shard: String,
}

/// The body of [`calls::TASK_LOGS`]: one page of one log, as `task_logs` (§4.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskLogsRequest {
    /// `stdout`, `stderr` or `statuses`.
    pub kind: String,
    /// Only these jobs (empty: all).
    pub jobs: Vec<String>,
    /// Only these nodes (empty: all).
    pub nodes: Vec<String>,
    /// The first line id to include; None: from the end.
    pub from: Option<i64>,
    /// Oldest first.
    pub ascending: bool,
    /// At most this many lines.
    pub limit: usize,
}

/// The answer to [`calls::TASK_LOGS`]: `(job, node, line id, line)` in page order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskLogsResponse {
    /// The lines.
    pub lines: Vec<(String, String, i64, String)>,
}
