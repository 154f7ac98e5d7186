//! Acting on a scheduler from outside its iterations: killing a running task and
//! forgiving failures. `bistro kill` / `bistro forgive` and the HTTP handlers
//! `kill_task` / `forgive_jobs` share this code.
//!
//! Neither takes the state lock, so both work beside a running daemon: a kill only
//! signals the task's supervisor (the task's end is then recorded as usual), and a
//! forgiveness rewrites stored statuses in one transaction, where the next iteration
//! reads them (a failed or backed-off task is not running; a running task's new
//! status replaces its forgiven one when it ends).

use crate::foundation::config::Config;
use crate::foundation::error::{ErrorKind, HasKind};
use crate::storage::state::StateDir;
use crate::storage::store::{StatusStore, StoreError};

/// Why a control action was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The job is not in the config in force.
    #[error("Unknown job {0}")]
    UnknownJob(String),
    /// No run of (job, node) is recorded as running.
    #[error("Unknown running task {job}, {node}")]
    NotRunning {
        /// Job name.
        job: String,
        /// Node name.
        node: String,
    },
    /// The task is running but could not be signalled.
    #[error("cannot kill {job}/{node}: {message}")]
    Signal {
        /// Job name.
        job: String,
        /// Node name.
        node: String,
        /// Why.
        message: String,
    },
    /// The status database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl HasKind for ControlError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownJob(_) => ErrorKind::Usage,
            Self::NotRunning { .. } | Self::Signal { .. } => ErrorKind::Runtime,
            Self::Store(e) => e.kind(),
        }
    }
}

/// Kills the running task of (job, node) with the job's `kill_subprocess` in
/// `config` (the config in force; the global one for a job no longer in it), applied
/// by its supervisor to the task's whole process group (on a remote worker, the
/// scheduler delivers the request to the worker). A task that dies without
/// writing a status is recorded as `incomplete_backoff`, as in Bistro.
pub fn kill(state: &StateDir, config: &Config, job: &str, node: &str) -> Result<(), ControlError> {
    let task = StatusStore::open(&state.statuses_db())?
        .running()?
        .into_iter()
        .find(|t| t.job == job && t.node == node);
    let request = match (config.job(job), &task) {
        (Some(j), _) => j.kill_subprocess,
        // Still running for a deleted job (an orphan): Bistro refuses; we let it be
        // ended, as an orphan kill would end it.
        (None, Some(_)) => config.settings.kill_subprocess,
        (None, None) => return Err(ControlError::UnknownJob(job.to_string())),
    };
    let task = task.ok_or_else(|| ControlError::NotRunning {
        job: job.to_string(),
        node: node.to_string(),
    })?;
    let signal_error = |message: String| ControlError::Signal {
        job: job.to_string(),
        node: node.to_string(),
        message,
    };
    let dir = state.invocation_dir(task.invocation);
    if dir.join(crate::storage::state::run_dir::REMOTE).exists() {
        // On a remote worker: the scheduler, which holds the worker's identity,
        // delivers the request at its next iteration.
        return crate::storage::state::write_replace(
            &dir.join(crate::storage::state::run_dir::KILL_REQUEST),
            &serde_json::to_vec(&request).expect("kill requests serialize"),
        )
        .map_err(|e| signal_error(e.to_string()));
    }
    if dir.join(crate::storage::state::run_dir::SLURM).exists() {
        // On Slurm: scancel, as the scheduler's orphan kills do.
        let mut slurm = crate::execution::runner::slurm::SlurmCli;
        let signalled =
            crate::execution::runner::slurm::kill_run(&mut slurm, state, &task, &request)
                .map_err(|e| signal_error(e.message))?;
        return if signalled {
            Ok(())
        } else {
            Err(signal_error(
                "its Slurm job already ended (the next tick records how)".into(),
            ))
        };
    }
    let signalled = crate::execution::runner::request_kill(&dir, &request)
        .map_err(|e| signal_error(e.to_string()))?;
    if signalled {
        Ok(())
    } else {
        Err(signal_error(
            "its supervisor is not running (it ended: the next tick records how)".into(),
        ))
    }
}

/// Releases the tasks of `jobs` (only those on `nodes`, unless it is empty) from
/// permanent failure and backoff, durably. Every job must be in `config` (the config
/// in force). Returns how many stored statuses changed.
pub fn forgive(
    state: &StateDir,
    config: &Config,
    jobs: &[String],
    nodes: &[String],
) -> Result<usize, ControlError> {
    if let Some(unknown) = jobs.iter().find(|j| config.job(j).is_none()) {
        return Err(ControlError::UnknownJob(unknown.clone()));
    }
    Ok(StatusStore::open(&state.statuses_db())?.forgive(jobs, nodes)?)
}
