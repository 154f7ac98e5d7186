//! `run-task`: run one task now, in the foreground, with the same bookkeeping as a
//! tick (claim, supervise, record). It ignores the policy, backoff and done-ness (it is
//! a manual run) but not resource limits, unless told to: its resources are checked
//! and held while it runs, so concurrent ticks account for them.

use crate::context::{self, Resolved, RunFlags};
use crate::nodes::fetch_nodes;
use crate::runner::{build_launch, supervisor, LaunchContext, LocalRunner, TaskResult, TaskRunner};
use crate::scheduler::{charges_for, check_fits, PassInput};
use crate::state::StateDir;
use crate::status::configured_backoff;
use crate::store::StatusStore;
use crate::task::{InvocationId, RunningTask};
use crate::tick::FinishedTask;
use std::path::PathBuf;
use std::time::Duration;

/// How `run-task` runs.
#[derive(Debug, Clone)]
pub struct RunTaskOptions {
    /// What config, command and instance name to use.
    pub flags: RunFlags,
    /// How long to wait for the state lock.
    pub wait_lock: Duration,
    /// Copy the task's output to our stdout/stderr.
    pub echo: bool,
    /// Run even if the task's resources are taken.
    pub ignore_resources: bool,
}

/// Why a task could not be run.
#[derive(Debug, thiserror::Error)]
pub enum RunTaskError {
    /// Bad request: unknown job or node, or no command.
    #[error("{0}")]
    Usage(String),
    /// The config in force is unusable.
    #[error("{0}")]
    Config(String),
    /// Its resources are taken.
    #[error("not enough resources to run it now: {0} (pass --ignore-resources to run it anyway)")]
    NoRoom(String),
    /// The task already runs.
    #[error("{job}/{node} is already running (invocation {invocation}); wait for it or kill it")]
    AlreadyRunning {
        /// Job name.
        job: String,
        /// Node name.
        node: String,
        /// Its run.
        invocation: String,
    },
    /// The state directory or databases failed.
    #[error(transparent)]
    Tick(#[from] crate::tick::TickError),
}

impl From<crate::state::StateError> for RunTaskError {
    fn from(e: crate::state::StateError) -> Self {
        RunTaskError::Tick(e.into())
    }
}

impl From<crate::store::StoreError> for RunTaskError {
    fn from(e: crate::store::StoreError) -> Self {
        RunTaskError::Tick(e.into())
    }
}

/// How a foreground run ended.
#[derive(Debug)]
pub struct RunTaskOutcome {
    /// What the supervisor saw.
    pub result: TaskResult,
    /// The status recorded (after backoff); None if another process records it.
    pub recorded: Option<FinishedTask>,
}

/// Runs (job, node) to completion and records its status.
pub fn run_task(
    state: &StateDir,
    exe: PathBuf,
    job_name: &str,
    node_name: &str,
    opts: &RunTaskOptions,
) -> Result<RunTaskOutcome, RunTaskError> {
    state.create()?;
    let lock = state.lock(opts.wait_lock)?;
    let mut store = StatusStore::open(&state.statuses_db())?;
    let Resolved {
        config: in_force,
        instance,
        worker_command,
    } = context::resolve(state, &store, &opts.flags)?;
    let config = match (&in_force.config, &in_force.error) {
        (Some(c), _) => c,
        (None, Some(e)) => return Err(RunTaskError::Config(e.to_string())),
        (None, None) => unreachable!("a config or an error"),
    };
    let job = config.job(job_name).ok_or_else(|| {
        RunTaskError::Usage(format!(
            "no job named {job_name:?} in {}",
            in_force.path.display()
        ))
    })?;
    if let Some(errors) = &job.errors {
        return Err(RunTaskError::Config(format!(
            "job {job_name} has config errors: {errors}"
        )));
    }
    let nodes = fetch_nodes(&config.settings, &instance)
        .map_err(|e| RunTaskError::Config(e.to_string()))?;
    let levels = &config.settings.levels;
    let node = nodes.find(job.level_for_tasks, node_name).ok_or_else(|| {
        RunTaskError::Usage(format!(
            "job {job_name} has no node {node_name:?} at its level {}",
            levels.name(job.level_for_tasks)
        ))
    })?;
    if let Some(t) = store
        .running()?
        .into_iter()
        .find(|t| t.job == job_name && t.node == node_name)
    {
        return Err(RunTaskError::AlreadyRunning {
            job: t.job,
            node: t.node,
            invocation: t.invocation.to_string(),
        });
    }
    let (statuses, _) = store.load_statuses()?;
    let prev = statuses.get(job_name, node_name);
    let running = store.running()?;
    let job_index = config
        .jobs
        .iter()
        .position(|j| j.name == job.name)
        .expect("the job is in the config");
    let input = PassInput {
        config,
        nodes: &nodes,
        statuses: &statuses,
        running: &running,
        now: crate::now(),
    };
    if !opts.ignore_resources {
        check_fits(&input, job_index, node)
            .map_err(|why| RunTaskError::NoRoom(why.describe(config, &nodes, input.now)))?;
    }
    let charges = charges_for(config, &nodes, job, node);
    let host = crate::runner::process::hostname();
    let ctx = LaunchContext {
        state,
        nodes: &nodes,
        worker_command: worker_command.as_deref(),
        worker_host: &host,
    };
    let invocation = InvocationId::new(crate::now());
    let launch =
        build_launch(&ctx, job, node, invocation, &charges, prev).map_err(RunTaskError::Usage)?;
    let mut runner = LocalRunner::new(state.clone(), exe);
    let prepared = runner
        .prepare(launch.clone())
        .map_err(|e| RunTaskError::Usage(e.to_string()))?;
    let attempts = statuses.attempts(job_name, node_name) + 1;
    let task = RunningTask {
        job: job.name.clone(),
        node: node_name.to_string(),
        invocation,
        charges,
        next_backoff: job
            .backoff
            .next(prev.map(configured_backoff).unwrap_or_default()),
        attempts,
        worker_shard: "local".into(),
    };
    store.claim(std::slice::from_ref(&task))?;
    drop(store);
    drop(lock);

    let dir = state.invocation_dir(invocation);
    let result = supervisor::supervise(&launch, &dir, opts.echo);
    supervisor::restore_signal_handlers();
    drop(prepared);

    let recorded = match state.lock(Duration::from_secs(600)) {
        Ok(_lock) => {
            let mut store = StatusStore::open(&state.statuses_db())?;
            if store.running_invocation(invocation)?.is_some() {
                let (mut statuses, _) = store.load_statuses()?;
                let (finished, _) =
                    crate::tick::reap(&mut store, None, &mut runner, &mut statuses, vec![task])?;
                finished.into_iter().next()
            } else {
                None
            }
        }
        Err(e) => {
            eprintln!("bistro: {e}; the next tick will record the task's status");
            None
        }
    };
    Ok(RunTaskOutcome { result, recorded })
}
