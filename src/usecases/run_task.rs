//! `run-task`: run one task now, in the foreground, with the same bookkeeping as a
//! tick (claim, supervise, record). It ignores the policy, backoff and done-ness (it is
//! a manual run) but not resource limits, unless told to: its resources are checked
//! and held while it runs, so concurrent ticks account for them.

use crate::execution::runner::{build_launch, LaunchContext, LocalRunner, TaskResult, TaskRunner};
use crate::execution::supervisor;
use crate::foundation::error::{ErrorKind, HasKind};
use crate::model::nodes::fetch_nodes;
use crate::model::task::InvocationId;
use crate::scheduler::{charges_for, check_fits, PassInput};
use crate::storage::state::StateDir;
use crate::storage::store::StatusStore;
use crate::usecases::context::{self, Resolved, RunFlags};
use crate::usecases::tick::FinishedTask;
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
    /// The node sources failed.
    #[error("cannot fetch nodes: {0}")]
    Nodes(String),
    /// The task could not be set up.
    #[error("cannot start the task: {0}")]
    Start(String),
    /// Its resources are taken.
    #[error("not enough resources to run it now: {0} (pass --ignore-resources to run it anyway)")]
    NoRoom(String),
    /// The task already runs.
    #[error("{job}/{node} is already running (invocation {invocation}); wait for it to finish")]
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
    Tick(#[from] crate::usecases::tick::TickError),
}

impl HasKind for RunTaskError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Usage(_) | Self::Config(_) => ErrorKind::Usage,
            Self::Nodes(_) | Self::Start(_) | Self::NoRoom(_) | Self::AlreadyRunning { .. } => {
                ErrorKind::Runtime
            }
            Self::Tick(e) => e.kind(),
        }
    }
}

impl From<crate::storage::state::StateError> for RunTaskError {
    fn from(e: crate::storage::state::StateError) -> Self {
        RunTaskError::Tick(e.into())
    }
}

impl From<crate::storage::store::StoreError> for RunTaskError {
    fn from(e: crate::storage::store::StoreError) -> Self {
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
    /// Why the status could not be recorded (the state lock stayed taken): the next
    /// tick records it.
    pub unrecorded: Option<crate::storage::state::StateError>,
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
    let config = in_force.config.as_ref().ok_or_else(|| {
        let why = in_force
            .error
            .as_ref()
            .map_or_else(String::new, ToString::to_string);
        RunTaskError::Config(format!("{why}; fix the file or pass --config"))
    })?;
    let job_index = config.job_index(job_name).ok_or_else(|| {
        RunTaskError::Usage(format!(
            "no job named {job_name:?} in {}",
            in_force.path.display()
        ))
    })?;
    let job = &config.jobs[job_index];
    if job.errors.is_some() {
        let problems: Vec<String> = config
            .job_problems()
            .into_iter()
            .filter(|(at, _)| {
                at.starts_with(&format!(
                    "{}{job_name}",
                    crate::foundation::config::JOB_PREFIX
                ))
            })
            .map(|(at, message)| format!("{at}: {message}"))
            .collect();
        return Err(RunTaskError::Config(format!(
            "job {job_name} has config errors: {}",
            problems.join("; ")
        )));
    }
    let nodes =
        fetch_nodes(&config.settings, &instance).map_err(|e| RunTaskError::Nodes(e.to_string()))?;
    let levels = &config.settings.levels;
    let node = nodes.find(job.level_for_tasks, node_name).ok_or_else(|| {
        RunTaskError::Usage(format!(
            "job {job_name} has no node {node_name:?} at its level {}",
            levels.name(job.level_for_tasks)
        ))
    })?;
    let running = store.running()?;
    if let Some(t) = running
        .iter()
        .find(|t| t.job == job_name && t.node == node_name)
    {
        return Err(RunTaskError::AlreadyRunning {
            job: t.job.clone(),
            node: t.node.clone(),
            invocation: t.invocation.to_string(),
        });
    }
    let statuses = store.load_statuses()?;
    let prev = statuses.get(job_name, node_name);
    let input = PassInput {
        config,
        nodes: &nodes,
        statuses: &statuses,
        running: &running,
        now: crate::foundation::time::now(),
    };
    if !opts.ignore_resources {
        check_fits(&input, job_index, node)
            .map_err(|why| RunTaskError::NoRoom(why.describe(config, &nodes, input.now)))?;
    }
    let charges = charges_for(config, &nodes, job, node);
    let host = crate::execution::supervisor::process::hostname();
    let ctx = LaunchContext {
        state,
        nodes: &nodes,
        worker_command: worker_command.as_deref(),
        worker_host: &host,
        workers: None,
    };
    let invocation = InvocationId::new(crate::foundation::time::now());
    let launch = build_launch(&ctx, job, node, invocation, &charges, prev, None)
        .map_err(|e| RunTaskError::Usage(e.to_string()))?;
    let mut runner = LocalRunner::new(state.clone(), exe);
    let prepared = runner
        .prepare(launch.clone())
        .map_err(|e| RunTaskError::Start(e.to_string()))?;
    let task = crate::usecases::tick::new_run(job, node_name, invocation, charges, &statuses);
    store.claim(std::slice::from_ref(&task))?;
    drop(store);
    drop(lock);

    let dir = state.invocation_dir(invocation);
    let result = supervisor::supervise(&launch, &dir, opts.echo);
    supervisor::restore_signal_handlers();
    drop(prepared);

    let (recorded, unrecorded) = match state.lock(Duration::from_secs(600)) {
        Ok(_lock) => {
            let mut store = StatusStore::open(&state.statuses_db())?;
            if store.running_invocation(invocation)?.is_some() {
                let mut statuses = store.load_statuses()?;
                let (finished, _) = crate::usecases::tick::reap(
                    &mut store,
                    None,
                    &mut runner,
                    &mut statuses,
                    vec![task],
                )?;
                (finished.into_iter().next(), None)
            } else {
                (None, None)
            }
        }
        Err(e) => (None, Some(e)),
    };
    Ok(RunTaskOutcome {
        result,
        recorded,
        unrecorded,
    })
}
