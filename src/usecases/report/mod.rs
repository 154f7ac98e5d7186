//! The `status` document: per-job counts and, on request, one row per task. Its JSON
//! form is a stable contract (`schema_version` 1): extend it, never rename.

mod counts;

pub use counts::CountsInput;

use crate::foundation::config::Config;
use crate::foundation::error::{ErrorKind, HasKind};
use crate::foundation::status::{StatusName, TaskStatus};
use crate::model::nodes::Nodes;
use crate::model::task::RunningTask;
use crate::storage::state::StateDir;
use crate::storage::store::{StatusRow, StatusStore, StoreError};
use crate::usecases::context;
use rustc_hash::FxHashMap;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The whole document.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    /// Always 1 for this shape.
    pub schema_version: u32,
    /// Epoch seconds.
    pub now: i64,
    /// The scheduler's state.
    pub scheduler: SchedulerState,
    /// One entry per configured job.
    pub jobs: Vec<JobReport>,
    /// One entry per task, with `--tasks`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<TaskReport>>,
    /// Tasks still running that no job of the config counts: their job or node is
    /// gone (until they end or `kill_orphan_tasks_after_sec` kills them).
    pub orphans: Vec<OrphanReport>,
    /// With remote workers: the scheduler's last view of them (its `workers.json`,
    /// rewritten at each sweep; `as_of` says when).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<serde_json::Value>,
}

/// How far the runnable jobs of a report are (`status --check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Every task is done (tasks that filters or disabled nodes exclude aside).
    Done,
    /// Some tasks can still run.
    WorkRemains,
    /// Every task not done has failed for good.
    OnlyFailuresRemain,
}

impl StatusReport {
    /// How far the jobs of `config` that can run are.
    pub fn progress(&self, config: &Config) -> Progress {
        let runnable = self.jobs.iter().filter(|j| {
            config
                .job(&j.name)
                .is_some_and(crate::foundation::config::Job::can_run)
        });
        let (mut total, mut done, mut failed) = (0, 0, 0);
        for job in runnable {
            let c = |k: &str| job.counts.get(k).copied().unwrap_or(0);
            total += c("total") - c("excluded");
            done += c("done");
            failed += c("failed");
        }
        if done == total {
            Progress::Done
        } else if done + failed == total {
            Progress::OnlyFailuresRemain
        } else {
            Progress::WorkRemains
        }
    }
}

/// The remote workers as the scheduler last recorded them, with `as_of` (epoch
/// seconds of the record), if this state dir has a scheduler with remote workers.
pub fn workers(state: &StateDir) -> Option<serde_json::Value> {
    let path = state.workers_file();
    let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
    let mut value: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    let as_of = modified
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    value.as_object_mut()?.insert("as_of".into(), as_of.into());
    Some(value)
}

/// A running task that the config in force no longer accounts for.
#[derive(Debug, Serialize)]
pub struct OrphanReport {
    /// Job name.
    pub job: String,
    /// Node name.
    pub node: String,
    /// When it started, epoch seconds.
    pub start_time: i64,
    /// Why no job of the config counts it.
    pub reason: &'static str,
}

/// Whether the scheduler can start tasks.
#[derive(Debug, Serialize)]
pub struct SchedulerState {
    /// `bistro_settings.enabled` of the config in force.
    pub enabled: bool,
    /// Why the config file cannot be used (the last good config is then in force).
    pub config_error: Option<String>,
}

/// One job's summary.
#[derive(Debug, Serialize)]
pub struct JobReport {
    /// Job name.
    pub name: String,
    /// Owner.
    pub owner: String,
    /// `enabled` as configured.
    pub enabled: bool,
    /// The job's error record, or null when valid.
    pub errors: Option<Value>,
    /// The level whose nodes are its tasks.
    pub level_for_tasks: String,
    /// Task counts by status, `total`, and `excluded`: of the tasks that are not done,
    /// running or failed, those a disabled node (or ancestor) or the job's filters
    /// keep from running.
    pub counts: BTreeMap<&'static str, usize>,
}

/// One task.
#[derive(Debug, Serialize)]
pub struct TaskReport {
    /// Job name.
    pub job: String,
    /// Node name.
    pub node: String,
    /// `running`, `done`, `incomplete`, `error_backoff`, `failed` or `not_started`.
    pub status: &'static str,
    /// When the status was recorded (or the run started), epoch seconds.
    pub time: Option<i64>,
    /// Times the task was started.
    pub attempts: i64,
    /// When its backoff ends, if it is backing off.
    pub backoff_until: Option<i64>,
    /// The status's data.
    pub data: Value,
    /// A running task on Slurm: its job id and state as the scheduler last saw them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slurm: Option<String>,
}

/// What to include.
#[derive(Debug, Clone, Default)]
pub struct ReportFilter {
    /// Only these jobs (empty: all).
    pub jobs: Vec<String>,
    /// Only tasks with these statuses (empty: all).
    pub statuses: Vec<StatusName>,
    /// Include the task rows.
    pub tasks: bool,
}

/// Everything the report is computed from.
pub struct ReportInput<'a> {
    /// The config in force.
    pub config: &'a Config,
    /// The nodes.
    pub nodes: &'a Nodes,
    /// Stored statuses.
    pub rows: &'a [StatusRow],
    /// Running tasks.
    pub running: &'a [RunningTask],
    /// Why the config file is unusable, if it is.
    pub config_error: Option<String>,
    /// Epoch seconds.
    pub now: i64,
}

/// Builds the report.
pub fn build(input: &ReportInput, filter: &ReportFilter) -> StatusReport {
    let mut stored: FxHashMap<&str, FxHashMap<&str, &StatusRow>> = FxHashMap::default();
    for r in input.rows {
        stored
            .entry(r.job.as_str())
            .or_default()
            .insert(r.node.as_str(), r);
    }
    let no_rows = FxHashMap::default();
    let running: HashMap<(&str, &str), &RunningTask> = input
        .running
        .iter()
        .map(|t| ((t.job.as_str(), t.node.as_str()), t))
        .collect();
    let mut jobs = Vec::new();
    let mut tasks = Vec::new();
    for job in selected(input.config, filter) {
        let mut counts: BTreeMap<&'static str, usize> =
            StatusName::ALL.iter().map(|s| (s.as_str(), 0)).collect();
        let (mut total, mut excluded) = (0, 0);
        let stored = stored.get(job.name.as_str()).unwrap_or(&no_rows);
        // A name under several parents (replicas) is one task, met at its first node,
        // and excluded only if every copy is.
        let tables = input.nodes.tables();
        let roots = &tables.replica_roots;
        let level = job.level_for_tasks;
        for n in input
            .nodes
            .at_level(level)
            .filter(|&n| roots[n] as usize == n)
        {
            let node = input.nodes.list[n].name.as_str();
            total += 1;
            let row = stored.get(node);
            let run = running.get(&(job.name.as_str(), node));
            let name = match (run, row) {
                (Some(_), _) => StatusName::Running,
                (None, Some(r)) => r.status.name(),
                (None, None) => StatusName::NotStarted,
            };
            *counts.entry(name.as_str()).or_default() += 1;
            if may_run_again(name) && excluded_task(job, input.nodes, node) {
                excluded += 1;
            }
            if filter.tasks && (filter.statuses.is_empty() || filter.statuses.contains(&name)) {
                let status: Option<&TaskStatus> = row.map(|r| &r.status);
                tasks.push(TaskReport {
                    job: job.name.clone(),
                    node: node.to_string(),
                    status: name.as_str(),
                    time: run
                        .map(|t| t.invocation.start_time)
                        .or(status.map(|s| s.time)),
                    attempts: run
                        .map(|t| t.attempts)
                        .or(row.map(|r| r.attempts))
                        .unwrap_or(0),
                    backoff_until: if run.is_some() {
                        None
                    } else {
                        status
                            .and_then(TaskStatus::backoff_until)
                            .filter(|&t| t > input.now)
                    },
                    data: status.map_or(Value::Null, TaskStatus::data_json),
                    slurm: None,
                });
            }
        }
        counts.insert("total", total);
        counts.insert("excluded", excluded);
        jobs.push(job_report(input.config, job, counts));
    }
    StatusReport {
        schema_version: 1,
        now: input.now,
        scheduler: SchedulerState {
            enabled: input.config.settings.enabled,
            config_error: input.config_error.clone(),
        },
        jobs,
        tasks: filter.tasks.then_some(tasks),
        orphans: orphans(input.config, input.nodes, input.running),
        workers: None,
    }
}

/// The jobs the report covers, in config order.
fn selected<'a>(
    config: &'a Config,
    filter: &'a ReportFilter,
) -> impl Iterator<Item = &'a crate::foundation::config::Job> {
    config
        .jobs
        .iter()
        .filter(|job| filter.jobs.is_empty() || filter.jobs.contains(&job.name))
}

/// A job's entry, with its counts.
fn job_report(
    config: &Config,
    job: &crate::foundation::config::Job,
    counts: BTreeMap<&'static str, usize>,
) -> JobReport {
    JobReport {
        name: job.name.clone(),
        owner: job.owner.clone(),
        enabled: job.enabled,
        errors: job.errors.clone(),
        level_for_tasks: config.settings.levels.name(job.level_for_tasks).to_string(),
        counts,
    }
}

/// Whether a task with this status could start again, so that an exclusion matters.
fn may_run_again(name: StatusName) -> bool {
    !matches!(
        name,
        StatusName::Done | StatusName::Running | StatusName::Failed
    )
}

/// Whether every node named `node` at the job's level is excluded (a replicated task
/// is excluded only if every copy is).
fn excluded_task(job: &crate::foundation::config::Job, nodes: &Nodes, node: &str) -> bool {
    nodes
        .named(job.level_for_tasks, node)
        .all(|n| crate::scheduler::excluded_by_nodes(job, nodes, n))
}

/// Running tasks that no (job, node) of the config in force accounts for.
fn orphans(config: &Config, nodes: &Nodes, running: &[RunningTask]) -> Vec<OrphanReport> {
    running
        .iter()
        .filter_map(|t| {
            let reason = match config.job(&t.job) {
                None => "its job is not in the config",
                Some(job)
                    if !nodes
                        .at_level(job.level_for_tasks)
                        .any(|n| nodes.list[n].name == t.node) =>
                {
                    "its node is not one of its job's nodes any more"
                }
                Some(_) => return None,
            };
            Some(OrphanReport {
                job: t.job.clone(),
                node: t.node.clone(),
                start_time: t.invocation.start_time,
                reason,
            })
        })
        .collect()
}

/// A report read from a state directory, with the config it was computed from.
#[derive(Debug)]
pub struct StateReport {
    /// The document.
    pub report: StatusReport,
    /// The config in force.
    pub config: Config,
}

/// Why a report cannot be read from a state directory.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The state directory has no status database.
    #[error(transparent)]
    NoState(crate::storage::state::StateError),
    /// Neither the config file nor a last good config is usable.
    #[error("no usable config: {0}; pass --config FILE, or run `bistro init`")]
    NoConfig(String),
    /// The nodes could not be listed.
    #[error("cannot list the nodes: {0}")]
    Nodes(#[from] crate::model::nodes::NodeError),
    /// A database failed.
    #[error(transparent)]
    Store(#[from] crate::storage::store::StoreError),
}

impl HasKind for ReportError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NoState(e) => e.kind(),
            Self::NoConfig(_) => ErrorKind::Usage,
            Self::Nodes(_) => ErrorKind::Runtime,
            Self::Store(e) => e.kind(),
        }
    }
}

/// Reads the report of a state directory as `bistro status` shows it: the config in
/// force (`explicit` or the remembered file, else the last good one), the nodes the
/// scheduler stored for it (else freshly fetched), and statuses with
/// finished-but-unrecorded runs applied.
/// Takes no lock: the databases are safe to read beside a running tick.
pub fn from_state(
    state: &StateDir,
    explicit: Option<&Path>,
    filter: &ReportFilter,
) -> Result<StateReport, ReportError> {
    let db = state.existing_statuses_db().map_err(ReportError::NoState)?;
    let store = StatusStore::open_for_reading(&db)?;
    let path = context::config_path(state, Some(&store), explicit)?;
    let in_force = context::load_config(Some(&store), path)?;
    let config_error = in_force.error.as_ref().map(ToString::to_string);
    let Some(config) = in_force.config else {
        return Err(ReportError::NoConfig(config_error.unwrap_or_default()));
    };
    let instance = context::instance_name(Some(&store), None)?;
    let nodes = context::nodes_for_report(Some(&store), &config, &instance)??;
    let mut report = read(
        &CountsInput {
            config: &config,
            nodes: &nodes,
            statuses: &store.snapshot()?,
            state,
            config_error,
            now: crate::foundation::time::now(),
        },
        filter,
    )?;
    report.workers = workers(state);
    Ok(StateReport { report, config })
}

/// The report of one read of the status database, with runs that finished since the
/// last tick applied: from the status tallies when no task rows are asked for (see
/// `counts.rs`), else (or if the tallies are off) from every stored status.
pub fn read(input: &CountsInput, filter: &ReportFilter) -> Result<StatusReport, StoreError> {
    if !filter.tasks {
        if let Some(report) = counts::report(input, filter)? {
            return Ok(report);
        }
    }
    let mut rows = input.statuses.load()?;
    let mut running = input.statuses.running()?;
    crate::usecases::tick::preview_finished(input.state, &mut rows, &mut running);
    let mut report = build(
        &ReportInput {
            config: input.config,
            nodes: input.nodes,
            rows: &rows,
            running: &running,
            config_error: input.config_error.clone(),
            now: input.now,
        },
        filter,
    );
    add_slurm_jobs(input.state, &running, &mut report);
    Ok(report)
}

/// Adds to each running task that went to Slurm its job id and state, from its run
/// directory (no Slurm command runs: the HTTP server reports too).
fn add_slurm_jobs(state: &StateDir, running: &[RunningTask], report: &mut StatusReport) {
    let Some(tasks) = report.tasks.as_mut() else {
        return;
    };
    let by_task: HashMap<(&str, &str), &RunningTask> = running
        .iter()
        .map(|t| ((t.job.as_str(), t.node.as_str()), t))
        .collect();
    for task in tasks.iter_mut() {
        if let Some(run) = by_task.get(&(task.job.as_str(), task.node.as_str())) {
            task.slurm = crate::execution::runner::slurm::SubmitRecord::read(
                &state.invocation_dir(run.invocation),
            )
            .map(|r| r.describe());
        }
    }
}
