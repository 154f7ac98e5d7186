//! The worker's task thread: starts runs under detached supervisors (which die with
//! this thread, so it lives as long as the worker), watches them, and queues each
//! final status for the scheduler. Also the suicide routine that kills every run.

use super::{Outgoing, Shared, TaskEntry};
use crate::execution::remote::protocol::{RunTaskRequest, TaskRef};
use crate::execution::runner::{
    request_kill, Launch, LocalRunner, Outcome, RunnerError, TaskRunner,
};
use crate::foundation::config::{KillMethod, KillRequest};
use crate::foundation::status::TaskStatus;
use crate::model::task::RunningTask;
use crate::storage::state::{run_dir, StateDir};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::time::Duration;

/// How often runs are checked for an end.
const POLL: Duration = Duration::from_millis(50);

/// What the task thread is asked to do.
pub(super) enum Command {
    /// Start a run (already entered in the worker's task table).
    Start(Box<RunTaskRequest>),
}

/// The run's record in the shape the local runner checks.
fn as_running(task: &TaskRef) -> RunningTask {
    RunningTask {
        job: task.job.clone(),
        node: task.node.clone(),
        invocation: task.invocation,
        charges: Vec::new(),
        next_backoff: Default::default(),
        attempts: 0,
        worker_shard: "local".into(),
        timeout_sec: None,
    }
}

/// Why the worker did not start a run the scheduler sent.
#[derive(Debug, thiserror::Error)]
pub(super) enum StartError {
    /// The job has no command and the worker none to run it with.
    #[error("job {job} has no \"command\" and this worker has no --worker-command")]
    NoCommand {
        /// The job.
        job: String,
    },
    /// The local runner could not prepare or start it.
    #[error("{0}")]
    Runner(#[from] RunnerError),
    /// The worker has begun to die.
    #[error("the worker is committing suicide")]
    Suicide,
}

/// The launch spec of a run the scheduler sent.
pub(super) fn launch(shared: &Shared, request: &RunTaskRequest) -> Result<Launch, StartError> {
    let task = &request.task;
    let mut argv = if request.command.is_empty() {
        vec![shared
            .opts
            .worker_command
            .clone()
            .ok_or_else(|| StartError::NoCommand {
                job: task.job.clone(),
            })?]
    } else {
        request.command.clone()
    };
    let dir = shared.state.invocation_dir(task.invocation);
    let status_file = dir.join(run_dir::STATUS);
    argv.extend([
        task.node.clone(),
        status_file.display().to_string(),
        request.arg.clone(),
    ]);
    Ok(Launch {
        job: task.job.clone(),
        node: task.node.clone(),
        invocation: task.invocation,
        argv,
        cwd: shared.state.job_dir(&task.job),
        status_file,
        log_db: shared.state.logs_db(),
        worker_host: shared.info.hostname.clone(),
        task_subprocess: request.task_subprocess.clone(),
        kill_subprocess: KillRequest {
            kill_wait_ms: request
                .kill_subprocess
                .kill_wait_ms
                .min(request.suicide_kill_wait_ms),
            ..request.kill_subprocess
        },
        task_timeout_sec: request.task_timeout_sec,
        on_worker_death: Some(crate::execution::runner::WorkerDeath {
            pid: std::process::id() as i32,
            kill: KillRequest {
                method: KillMethod::TermWaitKill,
                kill_wait_ms: request.suicide_kill_wait_ms,
            },
        }),
        worker: None,
        slurm: None,
    })
}

/// Queues the end of a run for the scheduler.
fn finish(shared: &Shared, task: &TaskRef, status: TaskStatus, exit: String, killed: bool) {
    let mut core = shared.core();
    let key = (task.job.clone(), task.node.clone());
    match core.tasks.get_mut(&key) {
        Some(entry) if entry.task.invocation == task.invocation && !entry.finished => {
            entry.finished = true;
        }
        _ => return,
    }
    core.outbox.push_back(Outgoing {
        task: task.clone(),
        status,
        exit,
        killed,
    });
}

/// The task thread's loop: start what is asked, record what ended, until the worker
/// is finished.
pub(super) fn run(shared: &Shared, commands: Receiver<Command>) {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            shared.die(format!(
                "cannot find the bistro binary to run supervisors: {e}"
            ));
            return;
        }
    };
    let mut runner = LocalRunner::new(shared.state.clone(), exe);
    while !shared.finished.load(Ordering::SeqCst) {
        while let Ok(Command::Start(request)) = commands.try_recv() {
            start(shared, &mut runner, &request);
        }
        let unfinished: Vec<TaskRef> = shared
            .core()
            .tasks
            .values()
            .filter(|e| e.launched && !e.finished)
            .map(|e| e.task.clone())
            .collect();
        for task in unfinished {
            match runner.check(&as_running(&task)) {
                Outcome::Running => {}
                Outcome::Finished(result) => {
                    finish(shared, &task, result.status, result.exit, result.killed)
                }
                Outcome::Lost(status, message) => finish(shared, &task, status, message, false),
                Outcome::NeverStarted(why) => finish(
                    shared,
                    &task,
                    TaskStatus::error_backoff(why.clone(), crate::foundation::time::now()),
                    why,
                    false,
                ),
            }
        }
        runner.tidy_up();
        std::thread::sleep(POLL);
    }
}

/// Starts a run: its directory is made (and the run marked launched, so it is
/// checked and killed from now on) before its supervisor starts. A worker that has
/// begun to die starts nothing.
fn start(shared: &Shared, runner: &mut LocalRunner, request: &RunTaskRequest) {
    let started = launch(shared, request).and_then(|launch| {
        let prepared = runner.prepare(launch)?;
        {
            let mut core = shared.core();
            if core.suicide.is_some() {
                return Err(StartError::Suicide);
            }
            let key = (request.task.job.clone(), request.task.node.clone());
            if let Some(entry) = core.tasks.get_mut(&key) {
                entry.launched = true;
            }
        }
        Ok(runner.start(prepared)?)
    });
    if let Err(e) = started {
        let message = e.to_string();
        let status = TaskStatus::error_backoff(
            format!("the worker could not start the task: {message}"),
            crate::foundation::time::now(),
        );
        finish(shared, &request.task, status, message, false);
    }
}

/// Kills every unfinished run (TERM, then KILL after the scheduler's suicide kill
/// wait) and waits until their supervisors have recorded their ends, then gives the
/// status reporter a moment to deliver them.
pub(super) fn kill_all(shared: &Shared) {
    let longest_wait = shared
        .core()
        .tasks
        .values()
        .map(|e| e.suicide_kill_wait_ms.max(0) as u64)
        .max()
        .unwrap_or(0);
    let deadline =
        std::time::Instant::now() + Duration::from_millis(longest_wait) + Duration::from_secs(10);
    let mut asked = std::collections::HashSet::new();
    loop {
        let unfinished: Vec<TaskEntry> = shared
            .core()
            .tasks
            .values()
            .filter(|e| !e.finished)
            .cloned()
            .collect();
        if unfinished.is_empty() || std::time::Instant::now() > deadline {
            break;
        }
        // A run not launched yet is refused by the task thread; a launched one is
        // asked to die until its supervisor has taken the request.
        for entry in unfinished.iter().filter(|e| e.launched) {
            if asked.contains(&entry.task.invocation) {
                continue;
            }
            let request = KillRequest {
                method: KillMethod::TermWaitKill,
                kill_wait_ms: entry.suicide_kill_wait_ms,
            };
            let dir = shared.state.invocation_dir(entry.task.invocation);
            match request_kill(&dir, &request) {
                Ok(true) => {
                    asked.insert(entry.task.invocation);
                }
                Ok(false) => {}
                Err(e) => tracing::error!("killing {}/{}: {e}", entry.task.job, entry.task.node),
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let flush = std::time::Instant::now() + Duration::from_secs(3);
    while !shared.core().outbox.is_empty() && std::time::Instant::now() < flush {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Removes run directories of an earlier worker instance whose supervisors are gone
/// (their tasks died with that worker; the scheduler counted them as lost).
pub(super) fn clear_leftovers(state: &StateDir) {
    let Ok(entries) = std::fs::read_dir(state.running_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        if crate::execution::runner::is_supervised(&entry.path()) == Some(false) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
