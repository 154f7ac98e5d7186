//! Running tasks (bistro-runtime §2): what a task is given, how it is started, and how
//! its end is collected. [`TaskRunner`] is Bistro's plugin point; [`LocalRunner`] runs
//! tasks on this machine under detached supervisors ([`crate::execution::supervisor`], which also
//! defines what a run is given and leaves); [`remote::RemoteRunner`] hands them to
//! remote workers; [`SimulatedRunner`] only pretends to (`--benchmark-run`).

mod local;
pub mod remote;
mod simulated;
pub mod slurm;

pub use crate::execution::supervisor::kill::request_kill;
pub use crate::execution::supervisor::run_files::{is_supervised, read_result};
pub use crate::execution::supervisor::{Launch, TaskResult, WorkerDeath};
pub use local::{local_outcome, LocalRunner};
pub use simulated::{SimulatedRunner, Simulation};
pub use slurm::SlurmRunner;

use crate::foundation::config::{Job, KillRequest};
use crate::foundation::status::TaskStatus;
use crate::model::nodes::Nodes;
use crate::model::resources::NodeCharge;
use crate::model::task::{InvocationId, RunningTask};
use crate::scheduler::workers::{WorkerSlot, WorkerSlots};
use crate::storage::state::{run_dir, StateDir};
use serde_json::{json, Map, Value};

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

/// Starts tasks and tells how they stand. Bistro's runners are local processes
/// ([`LocalRunner`]), remote workers ([`remote::RemoteRunner`]), or no-ops
/// ([`SimulatedRunner`]).
///
/// What a new runner must guarantee, for the scheduler to run a task at most once and
/// never lose one:
///
/// - **At most once: recorded before started.** The scheduler calls
///   [`prepare`](Self::prepare), records the run as running in the status database,
///   and only then calls [`start`](Self::start). Whatever `start` needs to find the run
///   again (its launch spec, its lock) is made durable by `prepare`, so a scheduler that
///   dies between the two leaves a recorded run that [`check`](Self::check) reports as
///   [`Outcome::NeverStarted`], not a task that runs unrecorded.
/// - **Start failures are released.** A run whose `prepare` fails is not recorded; one
///   whose `start` fails has its record released, its stored status untouched. Either
///   way nothing of the run may be left running, since a later pass may start the task
///   again.
/// - **Kill changes no status by itself.** [`kill`](Self::kill) only asks the task to
///   die; its end is reported by a later `check` like any other end. `Ok(false)` means
///   there was nothing left to signal (the run is ending, and the next check records it).
/// - **Timeouts.** A run whose launch has a `task_timeout_sec` and is still going that
///   long after it started is killed as its job's `kill_subprocess` says and ends as
///   `error_backoff` "timed out after N s" (the recorded [`RunningTask::timeout_sec`]
///   tells a runner that did not start it).
/// - **Restart: runs are found through the state dir.** A new scheduler process (a new
///   runner) must be able to `check`, `kill` and [`cleanup`](Self::cleanup) the runs an
///   earlier process started, knowing nothing but what is in the state directory and
///   the recorded [`RunningTask`]: a run's supervisor, lock, result or remote worker is
///   found from its invocation directory, and `check` reports how it ended
///   ([`Outcome::Finished`]) or that it was lost ([`Outcome::Lost`]).
pub trait TaskRunner {
    /// Durable setup before the task is recorded as running.
    fn prepare(&mut self, launch: Launch) -> Result<PreparedTask, RunnerError>;
    /// Starts a prepared task (it is already recorded as running).
    fn start(&mut self, task: PreparedTask) -> Result<(), RunnerError>;
    /// Called after each batch of starts, for a runner that hands them over
    /// together (Slurm submits one array job per group): returns the runs that
    /// could not be started after all, whose records are then released like a
    /// failed `start`'s.
    fn finish_starts(&mut self) -> Vec<(InvocationId, RunnerError)> {
        Vec::new()
    }
    /// How many more tasks this pass may start under the runner's own limits and the
    /// settings in force (Slurm caps its queue); None: no limit of its own.
    fn start_capacity(&mut self, _settings: &crate::foundation::config::Settings) -> Option<usize> {
        None
    }
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
    let status_file = dir.join(run_dir::STATUS);
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
        task_timeout_sec: job.task_timeout_sec,
        on_worker_death: None,
        worker: worker.map(|w| w.shard.clone()),
        slurm: Some(crate::foundation::config::SlurmOptions {
            nodelist: crate::scheduler::workers::placement_host(job, ctx.nodes, node)
                .map(str::to_string),
            ..job.slurm.clone()
        }),
    })
}
