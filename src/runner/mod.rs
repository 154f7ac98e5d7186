//! Running tasks (bistro-runtime §2): what a task is given, how it is started, and how
//! its end is collected. [`TaskRunner`] is Bistro's plugin point; [`LocalRunner`] runs
//! tasks on this machine under detached supervisors; [`SimulatedRunner`] only pretends
//! to (`--benchmark-run`).

pub mod host;
mod local;
pub mod process;
pub mod remote;
pub mod run_dirs;
pub mod run_loop;
mod simulated;
pub mod spawn;
mod spawner;
pub mod supervisor;

pub use local::{
    is_supervised, local_outcome, read_result, request_kill, LocalRunner, LAUNCH_FILE, RESULT_FILE,
    SPAWNING, TASK_FILE,
};
pub use simulated::{SimulatedRunner, Simulation};

use crate::config::{Job, KillRequest, TaskSubprocess};
use crate::nodes::Nodes;
use crate::resources::NodeCharge;
use crate::scheduler::workers::{WorkerSlot, WorkerSlots};
use crate::state::StateDir;
use crate::status::TaskStatus;
use crate::task::{InvocationId, RunningTask};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::path::PathBuf;

/// Everything a supervisor needs to run one task, written to the invocation directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Launch {
    /// Job name.
    pub job: String,
    /// Node name.
    pub node: String,
    /// This run's id.
    pub invocation: InvocationId,
    /// `CMD [ARGS...] NODE STATUS_FILE JSON`.
    pub argv: Vec<String>,
    /// Working directory (`STATE/jobs/JOB`).
    pub cwd: PathBuf,
    /// The file the task writes its status line to.
    pub status_file: PathBuf,
    /// The task-log database.
    pub log_db: PathBuf,
    /// Host name reported in events and to the task.
    pub worker_host: String,
    /// Process options.
    pub task_subprocess: TaskSubprocess,
    /// How to kill it.
    pub kill_subprocess: KillRequest,
    /// On a remote worker: what the supervisor does when the worker dies, however it
    /// dies, so a task never outlives its worker by more than the kill wait that the
    /// scheduler's safety backoff counts on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_worker_death: Option<WorkerDeath>,
    /// On a scheduler with remote workers: the shard of the worker the task goes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
}

/// A run's worker, watched by its supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WorkerDeath {
    /// The worker's pid (the supervisor's parent).
    pub pid: i32,
    /// How the task is killed when the worker is gone (Bistro's suicide kill:
    /// TERM, then KILL after the suicide kill wait).
    pub kill: KillRequest,
}

/// How a run ended, as its supervisor recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    /// The status the task reported (before backoff is applied).
    pub status: TaskStatus,
    /// How the process ended, e.g. `exited with status 0`.
    pub exit: String,
    /// Bistro signalled the task.
    pub killed: bool,
    /// The signal that asked the supervisor to stop, if any.
    pub stop_signal: Option<i32>,
    /// Epoch seconds.
    pub end_time: i64,
}

/// How a recorded run stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Its supervisor is alive and has not finished.
    Running,
    /// Its supervisor recorded a result.
    Finished(TaskResult),
    /// Its supervisor is gone without a result: the status to record and why.
    Lost(TaskStatus, String),
    /// Its supervisor is gone and never started the task: release it, status untouched.
    NeverStarted(String),
}

/// Why a task could not be handed to its runner.
#[derive(Debug, thiserror::Error)]
#[error("{job}/{node}: {message}")]
pub struct RunnerError {
    /// Job name.
    pub job: String,
    /// Node name.
    pub node: String,
    /// What went wrong.
    pub message: String,
}

/// A task made ready to start: its durable setup is done, so it may be recorded as
/// running, and only then started.
pub struct PreparedTask {
    /// The launch spec.
    pub launch: Launch,
    /// The lock that marks the run as supervised (handed to the supervisor).
    pub lock: Option<std::fs::File>,
}

/// Starts tasks. Bistro's runners are local processes, remote workers, or no-ops.
pub trait TaskRunner {
    /// Durable setup before the task is recorded as running.
    fn prepare(&mut self, launch: Launch) -> Result<PreparedTask, RunnerError>;
    /// Starts a prepared task (it is already recorded as running).
    fn start(&mut self, task: PreparedTask) -> Result<(), RunnerError>;
    /// How a recorded run stands now.
    fn check(&mut self, task: &RunningTask) -> Outcome;
    /// Forgets a run whose status has been recorded.
    fn cleanup(&mut self, task: &RunningTask);
    /// Asks a running task to die as `request` says; its end is then reported as
    /// usual (a kill changes no status by itself). `Ok(false)` when there was nothing
    /// left to signal (the run is ending and the next check records it).
    fn kill(&mut self, task: &RunningTask, request: &KillRequest) -> Result<bool, RunnerError>;
    /// Called between a long-running scheduler's iterations to release what ended
    /// runs left behind (the local runner reaps its exited supervisors).
    fn tidy_up(&mut self) {}
    /// Waits up to `period`, returning early (true) when a run ended since the last
    /// call, for a runner that is told so (the local runner's supervisor host says
    /// so); others just sleep.
    fn wait_for_ends(&mut self, period: std::time::Duration) -> bool {
        std::thread::sleep(period);
        false
    }
    /// The runner's remote-worker capability, for a runner whose tasks go to remote
    /// workers (the scheduler then places each task on a worker). None: tasks run here.
    fn placement(&mut self) -> Option<&mut dyn remote::WorkerPlacement> {
        None
    }
}

/// A job with no `command` when no `--worker-command` was given: a usage error.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "job {job} has no \"command\" and no --worker-command was given: pass --worker-command CMD"
)]
pub struct NoCommand {
    /// The job.
    pub job: String,
}

/// What a task is run with, apart from its identity.
pub struct LaunchContext<'a> {
    /// The state directory.
    pub state: &'a StateDir,
    /// The current nodes.
    pub nodes: &'a Nodes,
    /// `--worker-command`, used when the job has no `command`.
    pub worker_command: Option<&'a str>,
    /// Host name for `worker_host`.
    pub worker_host: &'a str,
    /// With remote workers: the workers of this pass (they supply the command of a
    /// job without one).
    pub workers: Option<&'a WorkerSlots>,
}

/// Builds the launch spec of (job, node): argv with the task's JSON argument.
pub fn build_launch(
    ctx: &LaunchContext,
    job: &Job,
    node: usize,
    invocation: InvocationId,
    charges: &[NodeCharge],
    prev_status: Option<&TaskStatus>,
    worker: Option<&WorkerSlot>,
) -> Result<Launch, NoCommand> {
    let node_name = ctx.nodes.list[node].name.clone();
    let mut argv = if job.command.is_empty() && ctx.workers.is_some() {
        Vec::new()
    } else if job.command.is_empty() {
        vec![ctx
            .worker_command
            .ok_or_else(|| NoCommand {
                job: job.name.clone(),
            })?
            .to_string()]
    } else {
        job.command.clone()
    };
    let dir = ctx.state.invocation_dir(invocation);
    let status_file = dir.join("status");
    let resources_by_node: Map<String, Value> = charges
        .iter()
        .map(|c| {
            (
                c.node.clone(),
                Value::Object(
                    c.amounts
                        .iter()
                        .map(|(r, a)| (r.clone(), Value::from(*a)))
                        .collect(),
                ),
            )
        })
        .collect();
    let mut arg = json!({
        "id": job.name,
        "path_to_node": ctx.nodes.path_to_node(node),
        "config": job.config,
        "resources_by_node": resources_by_node,
        "worker_node": worker.map_or(ctx.nodes.list[0].name.as_str(), |w| w.shard.as_str()),
        "worker_host": worker.map_or(ctx.worker_host, |w| w.hostname.as_str()),
    });
    if let Some(prev) = prev_status {
        arg["prev_status"] = prev.to_json();
    }
    argv.extend([
        node_name.clone(),
        status_file.display().to_string(),
        arg.to_string(),
    ]);
    Ok(Launch {
        job: job.name.clone(),
        node: node_name,
        invocation,
        argv,
        cwd: ctx.state.job_dir(&job.name),
        status_file,
        log_db: ctx.state.logs_db(),
        worker_host: worker
            .map_or(ctx.worker_host, |w| w.hostname.as_str())
            .to_string(),
        task_subprocess: job.task_subprocess.clone(),
        kill_subprocess: job.kill_subprocess,
        on_worker_death: None,
        worker: worker.map(|w| w.shard.clone()),
    })
}
