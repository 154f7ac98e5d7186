//! The supervisor of task runs (bistro-runtime §2): starts a task's process, stores its
//! output line by line, waits for it (killing it on request), reads its status file
//! and records the result in the run's directory. Every run goes through one event
//! loop ([`run_loop`]).
//!
//! A run is supervised either by the detached supervisor host a tick or daemon starts
//! (`bistro supervise`, see [`host`]: one process for many runs, so the tasks outlive
//! the tick) or by the `bistro run-task` process itself ([`single_run`]). The run's
//! lock is held until its result is written, which is how a later tick tells a live
//! run from a lost one, and the supervisor's identity is recorded before the task
//! starts, so whoever finds the run lost can kill everything it started.
//!
//! What a run is given ([`Launch`]) and what it leaves ([`TaskResult`]) are defined
//! here; the runners that hand runs to supervisors build on them.

pub mod constants;
pub mod diagnostics;
pub mod events;
pub mod host;
pub mod kill;
pub mod lines;
pub mod process;
pub mod run_dirs;
pub mod run_files;
pub mod run_loop;
pub mod signals;
pub mod single_run;
pub mod spawn;
mod spawner;

pub use signals::restore_signal_handlers;
pub use single_run::supervise;

use crate::foundation::config::{KillRequest, TaskSubprocess};
use crate::foundation::status::TaskStatus;
use crate::model::task::InvocationId;
use serde::{Deserialize, Serialize};
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
    /// The job's `task_timeout_sec`: the supervisor kills the task (as
    /// `kill_subprocess` says) this long after it started it, and records
    /// `error_backoff` "timed out after N s". None: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_timeout_sec: Option<u64>,
    /// On a remote worker: what the supervisor does when the worker dies, however it
    /// dies, so a task never outlives its worker by more than the kill wait that the
    /// scheduler's safety backoff counts on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_worker_death: Option<WorkerDeath>,
    /// On a scheduler with remote workers: the shard of the worker the task goes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// What the task asks of Slurm, used only when it is submitted there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<crate::foundation::config::SlurmOptions>,
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
