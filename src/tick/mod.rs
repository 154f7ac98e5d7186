//! One scheduling iteration over a state directory:
//! config -> nodes -> statuses -> policy -> dispatch -> record.
//!
//! The caller holds the state lock (except for `--dry-run`, which writes nothing).
//! Crash safety comes from the order of the steps: a run is recorded as running only
//! after its invocation directory and locked launch file exist, and is started only after that record
//! is committed; a status is recorded before its invocation directory is removed.

use crate::config::{Config, Job};
use crate::context::{self, keys, NodesSnapshot, Resolved, RunFlags};
use crate::nodes::{fetch_nodes, Nodes};
use crate::resources::NodeCharge;
use crate::runner::{build_launch, LaunchContext, Outcome, TaskRunner};
use crate::scheduler::{plan_on, PassInput, Statuses, Waiting};
use crate::state::StateDir;
use crate::status::{apply_status, configured_backoff, TaskStatus};
use crate::store::{LogKind, LogLine, LogStore, StatusStore, StoreError};
use crate::task::{InvocationId, RunningTask};
use rand::SeedableRng;
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// How a tick runs.
#[derive(Debug, Clone, Default)]
pub struct TickOptions {
    /// What config, command and instance name to use.
    pub flags: RunFlags,
    /// Start and write nothing; explain every waiting task.
    pub dry_run: bool,
    /// Task logs older than this many seconds are pruned.
    pub log_retention_secs: i64,
    /// Seconds between prunes.
    pub log_prune_frequency_secs: i64,
    /// How long fetched nodes are reused before the node sources run again.
    pub nodes_update_ms: i64,
    /// How long a [`TickCache`] reuses the config before reading the file again.
    pub config_update_ms: u64,
    /// Tasks run on remote workers, which bring the command of a job without one.
    pub on_workers: bool,
}

/// A finished task as a tick recorded it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FinishedTask {
    /// Job name.
    pub job: String,
    /// Node name.
    pub node: String,
    /// `done`, `incomplete`, `error_backoff` or `failed`.
    pub status: &'static str,
    /// The exception, if any.
    pub message: Option<String>,
}

/// A task a tick started (or, with `--dry-run`, would start).
#[derive(Debug, Clone, serde::Serialize)]
pub struct StartedTask {
    /// Job name.
    pub job: String,
    /// Node name.
    pub node: String,
    /// The run's id (absent in a dry run).
    pub invocation: Option<String>,
}

/// An orphan a tick killed (`kill_orphan_tasks_after_sec`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct KilledOrphan {
    /// Job name.
    pub job: String,
    /// Node name.
    pub node: String,
    /// Why it is an orphan.
    pub reason: String,
}

/// What a tick did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TickReport {
    /// Epoch seconds.
    pub now: i64,
    /// The config file read.
    pub config: String,
    /// Problems with the config file (the last good config was used if there is one).
    pub config_errors: Vec<(String, String)>,
    /// Problems inside jobs (those jobs do not run).
    pub job_errors: Vec<(String, String)>,
    /// `bistro_settings.enabled`.
    pub scheduler_enabled: bool,
    /// The file is unusable and the last good config was used instead.
    pub using_last_good: bool,
    /// How the config changed since the last good one (`added job x`, ...).
    pub config_changes: Vec<String>,
    /// Why nodes could not be fetched.
    pub nodes_error: Option<String>,
    /// Tasks whose status was recorded.
    pub finished: Vec<FinishedTask>,
    /// Tasks started.
    pub started: Vec<StartedTask>,
    /// Tasks that could not be started.
    pub start_errors: Vec<String>,
    /// Tasks that cannot start until the command line changes (no command for a job).
    pub usage_errors: Vec<String>,
    /// Orphans (tasks whose job or node no longer wants them) asked to die.
    pub orphans_killed: Vec<KilledOrphan>,
    /// Orphans that could not be signalled.
    pub kill_errors: Vec<String>,
    /// Lasting conditions the runner reports (e.g. a restarted scheduler waiting for
    /// its remote workers before it starts anything).
    pub runner_notes: Vec<String>,
    /// Tasks running after the tick.
    pub running: usize,
    /// How long a daemon waits before the next iteration.
    pub wait_ms: u64,
    /// With `--dry-run`: why each other task waits.
    #[serde(skip)]
    pub explained: Option<Explained>,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

/// Something a tick's user should be told, in words (not yet escaped for a terminal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// What happened or is wrong.
    pub message: String,
    /// A condition that lasts until someone acts (a config or node problem), as
    /// opposed to an event of this tick (a failed start, a killed orphan).
    pub lasting: bool,
}

impl TickReport {
    /// The problems and notable events of this tick, for `tick` to print and the
    /// daemon to log.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        let lasting = |message: String| Diagnostic {
            message,
            lasting: true,
        };
        let event = |message: String| Diagnostic {
            message,
            lasting: false,
        };
        let mut out: Vec<Diagnostic> = self
            .config_errors
            .iter()
            .map(|(at, m)| lasting(format!("config error: {at}: {m}")))
            .collect();
        if self.using_last_good {
            out.push(lasting("the last good config stays in force until the file is fixed (`bistro check` lists every problem)".into()));
        } else if !self.config_errors.is_empty() {
            out.push(lasting("no config is in force: nothing new starts until the file is fixed (`bistro check` lists every problem)".into()));
        }
        out.extend(
            self.job_errors
                .iter()
                .map(|(at, m)| lasting(format!("job error (the job will not run): {at}: {m}"))),
        );
        out.extend(
            self.nodes_error
                .iter()
                .map(|e| lasting(format!("cannot fetch nodes, nothing new starts: {e}"))),
        );
        out.extend(self.usage_errors.iter().cloned().map(lasting));
        out.extend(self.runner_notes.iter().cloned().map(lasting));
        out.extend(
            self.start_errors
                .iter()
                .map(|e| event(format!("cannot start task: {e}"))),
        );
        out.extend(
            self.kill_errors
                .iter()
                .map(|e| event(format!("cannot kill orphan: {e}"))),
        );
        out.extend(
            self.orphans_killed
                .iter()
                .map(|k| event(format!("killed orphan {}/{}: {}", k.job, k.node, k.reason))),
        );
        out
    }
}

/// A dry run's waiting tasks, with the config and nodes their reasons refer to.
#[derive(Debug, Clone)]
pub struct Explained {
    /// The config the pass used.
    pub config: Config,
    /// The nodes the pass used.
    pub nodes: Nodes,
    /// Every task that neither runs nor would start, with its reason.
    pub waiting: Vec<Waiting>,
    /// The tasks the pass saw running.
    pub running: Vec<RunningTask>,
    /// The statuses the pass saw, finished runs included.
    pub statuses: Statuses,
}

/// A failure that stops the tick.
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    /// The status or log database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The state directory failed.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

/// A line of a run's lifecycle in the `statuses` task log, as supervisors write
/// theirs (bistro-runtime §2.7), for what the scheduler itself saw or did.
fn lifecycle_event(task: &RunningTask, name: &str, message: &str) -> LogLine {
    LogLine {
        kind: LogKind::Statuses,
        job: task.job.clone(),
        node: task.node.clone(),
        time: crate::now(),
        line: json!({"event": name, "message": message,
                     "invocation_start_time": task.invocation.start_time,
                     "invocation_rand": task.invocation.rand})
        .to_string(),
    }
}

/// Records finished runs: applies each result over the stored status with the backoff
/// step computed at start, in one transaction, then forgets their directories. Runs
/// that never started are released with their stored status untouched.
pub fn reap(
    store: &mut StatusStore,
    logs: Option<&mut LogStore>,
    runner: &mut dyn TaskRunner,
    statuses: &mut Statuses,
    running: Vec<RunningTask>,
) -> Result<(Vec<FinishedTask>, Vec<RunningTask>), TickError> {
    let mut results: Vec<(RunningTask, Option<TaskStatus>)> = Vec::new();
    let mut events = Vec::new();
    let mut finished = Vec::new();
    let mut still = Vec::new();
    for task in running {
        let event = |name: &str, message: &str| lifecycle_event(&task, name, message);
        let reported = match runner.check(&task) {
            Outcome::Running => {
                still.push(task);
                continue;
            }
            Outcome::Finished(result) => result.status,
            Outcome::Lost(status, message) => {
                events.push(event("supervisor_lost", &message));
                status
            }
            Outcome::NeverStarted(why) => {
                events.push(event("never_started", &why));
                finished.push(FinishedTask {
                    job: task.job.clone(),
                    node: task.node.clone(),
                    status: "not_started",
                    message: Some(why),
                });
                results.push((task, None));
                continue;
            }
        };
        let status = apply_status(
            statuses.get(&task.job, &task.node),
            reported,
            task.next_backoff,
        );
        statuses.insert(&task.job, &task.node, status.clone(), task.attempts);
        finished.push(FinishedTask {
            job: task.job.clone(),
            node: task.node.clone(),
            status: status.name().as_str(),
            message: status.exception().map(str::to_string),
        });
        results.push((task, Some(status)));
    }
    if let Some(logs) = logs {
        if let Err(e) = logs.append(&events) {
            eprintln!("bistro: warning: {e}");
        }
    }
    store.finish(&results)?;
    for (task, _) in &results {
        runner.cleanup(task);
    }
    record_late(store, runner, statuses, &mut finished)?;
    Ok((finished, still))
}

/// Records statuses reported for runs that had already ended here (their worker was
/// lost meanwhile): each replaces the stand-in `worker lost` status, unless the task
/// runs again or has a real status already, and never advances the backoff twice.
fn record_late(
    store: &mut StatusStore,
    runner: &mut dyn TaskRunner,
    statuses: &mut Statuses,
    finished: &mut Vec<FinishedTask>,
) -> Result<(), TickError> {
    let Some(placement) = runner.placement() else {
        return Ok(());
    };
    let late = placement.late_statuses();
    if late.is_empty() {
        return Ok(());
    }
    // Only the stand-in of the very run that reports may be replaced.
    let stands_in_for = |stored: &TaskStatus, l: &crate::runner::remote::LateStatus| {
        stored
            .data
            .as_ref()
            .and_then(|d| d.get(crate::runner::remote::LOST_INVOCATION_KEY))
            .and_then(|v| v.as_str())
            == Some(l.task.invocation.to_string().as_str())
    };
    let rows: Vec<crate::store::StatusRow> = late
        .iter()
        .filter_map(|l| {
            let stored = statuses.get(&l.task.job, &l.task.node)?;
            if !stands_in_for(stored, l) {
                tracing::info!(
                    "dropping a late status of {}/{}: the stand-in of its run was replaced already",
                    l.task.job,
                    l.task.node
                );
                return None;
            }
            let status = apply_status(Some(stored), l.status.clone(), configured_backoff(stored));
            Some(crate::store::StatusRow {
                attempts: statuses.attempts(&l.task.job, &l.task.node),
                job: l.task.job.clone(),
                node: l.task.node.clone(),
                status,
            })
        })
        .collect();
    let recorded = store.replace_overwriteable(&rows)?;
    placement.late_recorded(&late);
    for row in recorded {
        statuses.insert(&row.job, &row.node, row.status.clone(), row.attempts);
        finished.push(FinishedTask {
            job: row.job.clone(),
            node: row.node.clone(),
            status: row.status.name().as_str(),
            message: row.status.exception().map(str::to_string),
        });
    }
    Ok(())
}

/// Applies, in memory only, the results of runs that finished since the last tick,
/// so a report shows what the next tick will record instead of `running`.
pub fn preview_finished(
    state: &StateDir,
    rows: &mut Vec<crate::store::StatusRow>,
    running: &mut Vec<RunningTask>,
) {
    // Most of the time nothing runs: no need to index the rows.
    if running.is_empty() {
        return;
    }
    let mut at: std::collections::HashMap<(String, String), usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| ((r.job.clone(), r.node.clone()), i))
        .collect();
    take_finished(state, running, |task, result| {
        let key = (task.job.clone(), task.node.clone());
        let stored = at.get(&key).map(|&i| &rows[i].status);
        let status = apply_status(stored, result.status, task.next_backoff);
        let row = crate::store::StatusRow {
            job: task.job.clone(),
            node: task.node.clone(),
            status,
            attempts: task.attempts,
        };
        match at.get(&key) {
            Some(&i) => rows[i] = row,
            None => {
                at.insert(key, rows.len());
                rows.push(row);
            }
        }
    });
}

/// Takes out of `running` the runs whose supervisors recorded a result that no tick
/// has recorded yet, handing each to `finished` with its result.
fn take_finished(
    state: &StateDir,
    running: &mut Vec<RunningTask>,
    mut finished: impl FnMut(&RunningTask, crate::runner::TaskResult),
) {
    running.retain(|task| {
        match crate::runner::read_result(&state.invocation_dir(task.invocation)) {
            Some(result) => {
                finished(task, result);
                false
            }
            None => true,
        }
    });
}

/// Removes invocation directories that no recorded run owns and no supervisor holds
/// (left by a tick that died before recording them, or after recording their status).
fn sweep_stray_dirs(state: &StateDir, running: &[RunningTask]) {
    let owned: HashSet<String> = running.iter().map(|t| t.invocation.to_string()).collect();
    let Ok(entries) = std::fs::read_dir(state.running_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if owned.contains(&name) || InvocationId::parse(&name).is_none() {
            continue;
        }
        let held = crate::runner::is_supervised(&entry.path()) != Some(false);
        if !held {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The nodes for this pass: the last fetch while it is younger than
/// `nodes_update_ms` and was made from the same levels, node sources and instance
/// name (so a cron tick does not rerun node scripts every minute), else a new fetch,
/// which a real tick stores for the next ones and for `status`. A daemon keeps the
/// last fetch in its cache instead of reading it back each iteration. Failed fetches
/// are not stored: the next tick tries again.
fn current_nodes(
    store: &mut StatusStore,
    cache: &mut TickCache,
    config: &Config,
    instance: &str,
    opts: &TickOptions,
    now: i64,
) -> Result<Result<Arc<NodesSnapshot>, crate::nodes::NodeError>, StoreError> {
    let key = context::nodes_key(config, instance);
    let fresh = |s: &NodesSnapshot| {
        s.key == key && (now - s.fetched_at).saturating_mul(1000) < opts.nodes_update_ms
    };
    if let Some(cached) = cache.nodes.as_ref().filter(|s| fresh(s)) {
        return Ok(Ok(Arc::clone(cached)));
    }
    let snapshot = match context::stored_snapshot(store)?.filter(|s| fresh(s)) {
        Some(stored) => stored,
        None => {
            let nodes = match fetch_nodes(&config.settings, instance) {
                Ok(nodes) => nodes,
                Err(e) => return Ok(Err(e)),
            };
            let snapshot = NodesSnapshot {
                nodes,
                key,
                fetched_at: now,
            };
            if !opts.dry_run {
                let text = serde_json::to_string(&snapshot).expect("serializes");
                store.set_meta(&[(keys::NODES, &text)])?;
            }
            snapshot
        }
    };
    let snapshot = Arc::new(snapshot);
    cache.nodes = Some(Arc::clone(&snapshot));
    Ok(Ok(snapshot))
}

/// The record of a run about to start: its backoff step if it fails is computed now
/// from the stored status (as Bistro does), and it counts one more attempt.
pub fn new_run(
    job: &Job,
    node: &str,
    invocation: InvocationId,
    charges: Vec<NodeCharge>,
    statuses: &Statuses,
) -> RunningTask {
    let prev = statuses.get(&job.name, node);
    RunningTask {
        job: job.name.clone(),
        node: node.to_string(),
        invocation,
        charges,
        next_backoff: job
            .backoff
            .next(prev.map(configured_backoff).unwrap_or_default()),
        attempts: statuses.attempts(&job.name, node) + 1,
        worker_shard: "local".into(),
    }
}

/// Runs one iteration: config -> statuses (recording finished runs) -> nodes ->
/// policy -> dispatch. The caller holds the state lock unless `opts.dry_run`.
/// A real tick records when it ran and what it did (meta `last_tick`) for monitoring.
pub fn tick(
    state: &StateDir,
    opts: &TickOptions,
    runner: &mut dyn TaskRunner,
) -> Result<TickReport, TickError> {
    tick_with(state, opts, runner, &mut TickCache::default())
}

/// What a long-running scheduler keeps between iterations: the config it resolved,
/// re-read only every `config_update_ms`, the nodes of its last fetch, its database
/// connections (opening one reads the schema, and closing the last one checkpoints
/// and syncs the database: too much for every iteration), and the task statuses as
/// its last iteration left them. A failed iteration drops its connections and
/// statuses; the next one opens and reads them anew.
#[derive(Default)]
pub struct TickCache {
    config: Option<(std::time::Instant, Resolved)>,
    nodes: Option<Arc<NodesSnapshot>>,
    store: Option<StatusStore>,
    logs: Option<LogStore>,
    statuses: Option<KnownStatuses>,
    running: Option<KnownRunning>,
}

/// Statuses read from the database at a given `data_version`, then kept up to date
/// with this scheduler's own writes. Another process's write (`bistro forgive`, an
/// HTTP handler) changes the version, and the statuses are read again.
struct KnownStatuses {
    data_version: i64,
    statuses: Statuses,
}

/// The running tasks as stored, like [`KnownStatuses`]: those the last iteration left
/// running or started, while no one else wrote. (Reading and decoding them each
/// iteration cost a daemon more than its pass.)
struct KnownRunning {
    data_version: i64,
    tasks: Vec<RunningTask>,
}

/// The running tasks as stored at `version`: see [`KnownRunning`].
fn current_running(
    store: &StatusStore,
    cache: &mut TickCache,
    version: i64,
) -> Result<Vec<RunningTask>, StoreError> {
    match cache.running.take() {
        Some(known) if known.data_version == version => Ok(known.tasks),
        _ => store.running(),
    }
}

/// The statuses as stored: those the last iteration left when no one else wrote
/// since it read them, else read from the database. Also returns the database's
/// version when they were read.
fn current_statuses(
    store: &StatusStore,
    cache: &mut TickCache,
) -> Result<(i64, Statuses), StoreError> {
    let version = store.data_version()?;
    match cache.statuses.take() {
        Some(known) if known.data_version == version => Ok((version, known.statuses)),
        _ => Ok((version, store.load_statuses()?)),
    }
}

/// [`tick`] for a scheduler that runs many iterations in one process.
pub fn tick_with(
    state: &StateDir,
    opts: &TickOptions,
    runner: &mut dyn TaskRunner,
    cache: &mut TickCache,
) -> Result<TickReport, TickError> {
    let began = std::time::Instant::now();
    let mut store = match cache.store.take() {
        Some(store) => store,
        None => {
            // data_version is counted per connection: statuses read through an
            // earlier one cannot be checked through a new one.
            cache.statuses = None;
            cache.running = None;
            StatusStore::open(&state.statuses_db())?
        }
    };
    let mut report = iterate(state, &mut store, opts, runner, cache)?;
    let settings = cache
        .config
        .as_ref()
        .and_then(|(_, r)| r.config.config.as_ref())
        .map(|c| &c.settings);
    report.wait_ms = next_wait_ms(&report, settings);
    if !opts.dry_run {
        let summary = LastTick {
            time: report.now,
            duration_ms: began.elapsed().as_millis() as u64,
            started: report.started.len(),
            finished: report.finished.len(),
            running: report.running,
            errors: report.config_errors.len()
                + report.job_errors.len()
                + report.start_errors.len()
                + report.usage_errors.len()
                + usize::from(report.nodes_error.is_some()),
            nodes_error: report.nodes_error.clone(),
        };
        let text = serde_json::to_string(&summary).expect("serializes");
        store.set_meta(&[(keys::LAST_TICK, &text)])?;
    }
    cache.store = Some(store);
    Ok(report)
}

/// How long a long-running scheduler waits before its next iteration, as Bistro's
/// loop does (bistro-runtime §1.4): 5 s after a config or node failure, `idle_wait`
/// when the scheduler is disabled or nothing runs, `working_wait` otherwise.
fn next_wait_ms(report: &TickReport, settings: Option<&crate::config::Settings>) -> u64 {
    const AFTER_FAILURE_MS: u64 = 5000;
    let Some(settings) = settings else {
        return AFTER_FAILURE_MS;
    };
    let ms = |v: i64| u64::try_from(v).unwrap_or(0);
    if !report.scheduler_enabled {
        ms(settings.idle_wait_ms)
    } else if report.nodes_error.is_some() {
        AFTER_FAILURE_MS
    } else if report.running > 0 {
        ms(settings.working_wait_ms)
    } else {
        ms(settings.idle_wait_ms)
    }
}

/// What the last real tick did, kept in meta `last_tick` for `serve-http` and metrics.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LastTick {
    /// When it started, epoch seconds.
    pub time: i64,
    /// How long it took.
    pub duration_ms: u64,
    /// Tasks it started.
    pub started: usize,
    /// Finished tasks it recorded.
    pub finished: usize,
    /// Tasks running after it.
    pub running: usize,
    /// Config, job, node-source and start problems it saw.
    pub errors: usize,
    /// Why it could not fetch the nodes, if it could not.
    #[serde(default)]
    pub nodes_error: Option<String>,
}

impl LastTick {
    /// The last tick's summary stored in the state dir, if any tick ran.
    pub fn load(store: &StatusStore) -> Result<Option<Self>, StoreError> {
        Ok(store
            .meta(keys::LAST_TICK)?
            .and_then(|text| serde_json::from_str(&text).ok()))
    }
}

fn iterate(
    state: &StateDir,
    store: &mut StatusStore,
    opts: &TickOptions,
    runner: &mut dyn TaskRunner,
    cache: &mut TickCache,
) -> Result<TickReport, TickError> {
    let now = crate::now();
    let mut report = TickReport {
        now,
        dry_run: opts.dry_run,
        ..Default::default()
    };
    // A dry run writes nothing, not even a log database's schema.
    let mut logs = match (opts.dry_run, cache.logs.take()) {
        (true, cached) => {
            cache.logs = cached;
            None
        }
        (false, Some(logs)) => Some(logs),
        (false, None) => Some(LogStore::open(&state.logs_db())?),
    };

    let period = std::time::Duration::from_millis(opts.config_update_ms);
    let (read_at, resolved, fresh) = match cache.config.take() {
        Some((at, resolved)) if at.elapsed() < period => (at, resolved, false),
        _ => {
            let now = std::time::Instant::now();
            (now, context::resolve(state, store, &opts.flags)?, true)
        }
    };
    note_config(&mut report, &resolved);
    // What the scheduler runs with is stored when it is read, not every iteration.
    if fresh && !opts.dry_run {
        remember_run(&mut report, store, &resolved, opts)?;
    }
    cache.config = Some((read_at, resolved.clone()));

    let (data_version, mut statuses) = current_statuses(store, cache)?;
    let mut running = current_running(store, cache, data_version)?;
    if let Some(logs) = logs.as_mut() {
        let (finished, still) = reap(store, Some(&mut *logs), runner, &mut statuses, running)?;
        report.finished = finished;
        sweep_stray_dirs(state, &still);
        running = still;
        prune_logs(store, logs, opts, now)?;
    } else {
        // What `status` shows: results recorded by supervisors but not by a tick.
        take_finished(state, &mut running, |task, result| {
            let stored = statuses.get(&task.job, &task.node);
            let status = apply_status(stored, result.status, task.next_backoff);
            statuses.insert(&task.job, &task.node, status, task.attempts);
        });
    }
    report.running = running.len();
    report.runner_notes = runner.placement().map(|p| p.notes()).unwrap_or_default();

    let Resolved {
        config: in_force,
        instance,
        worker_command,
    } = resolved;
    let Some(config) = in_force.config else {
        return Ok(report);
    };
    report.job_errors = config.job_problems();
    report.scheduler_enabled = config.settings.enabled;
    let fetched = match current_nodes(store, cache, &config, &instance, opts, now)? {
        Ok(fetched) => fetched,
        Err(e) => {
            report.nodes_error = Some(e.to_string());
            return Ok(report);
        }
    };
    if !config.settings.enabled {
        return Ok(report);
    }
    let nodes = &fetched.nodes;

    let input = PassInput {
        config: &config,
        nodes,
        statuses: &statuses,
        running: &running,
        now,
    };
    // A dry run shows what the scheduler itself decides; placement on workers waits
    // for the real pass.
    let mut slots = if opts.dry_run {
        None
    } else {
        runner.placement().map(|p| p.workers(&config, &running))
    };
    let planned = plan_on(
        &input,
        &mut rand::rngs::StdRng::from_entropy(),
        opts.dry_run,
        slots.as_mut(),
    );
    if opts.dry_run {
        report.started = planned
            .starts
            .iter()
            .map(|s| StartedTask {
                job: config.jobs[s.job].name.clone(),
                node: nodes.list[s.node].name.clone(),
                invocation: None,
            })
            .collect();
        // What a real tick would refuse to start: a job with no command to run.
        for s in &planned.starts {
            let job = &config.jobs[s.job];
            if job.command.is_empty() && worker_command.is_none() && !opts.on_workers {
                let e = crate::runner::NoCommand {
                    job: job.name.clone(),
                }
                .to_string();
                if !report.usage_errors.contains(&e) {
                    report.usage_errors.push(e);
                }
            }
        }
        report.explained = Some(Explained {
            waiting: planned.waiting,
            config,
            nodes: nodes.clone(),
            running,
            statuses,
        });
        return Ok(report);
    }
    let host = crate::supervisor::process::hostname();
    let ctx = LaunchContext {
        state,
        nodes,
        worker_command: worker_command.as_deref(),
        worker_host: &host,
        workers: slots.as_ref(),
    };
    let placed = dispatch(
        &mut report,
        store,
        runner,
        &ctx,
        &config,
        &statuses,
        planned.starts,
    );
    if let (Some(slots), Some(placement)) = (slots, runner.placement()) {
        placement.placed(slots);
    }
    let started = placed?;
    kill_orphans(
        &mut report,
        store,
        logs.as_mut(),
        runner,
        &input,
        &planned.orphans,
    )?;
    if logs.is_some() {
        cache.logs = logs;
    }
    cache.statuses = Some(KnownStatuses {
        data_version,
        statuses,
    });
    let mut tasks = running;
    tasks.extend(started);
    // As the database lists them.
    tasks.sort_by_cached_key(|task| task.invocation.to_string());
    cache.running = Some(KnownRunning {
        data_version,
        tasks,
    });
    Ok(report)
}

/// Kills orphans whose grace period is over (bistro-runtime §2.11): the first tick
/// that sees an orphan sets its deadline from `kill_orphan_tasks_after_sec` (its
/// job's, or the global one for a deleted job); once due it is killed with that job's
/// `kill_subprocess` and forgotten, so a survivor is killed again after another full
/// delay. Deadlines live in meta `orphan_kill_at`, so they span ticks.
fn kill_orphans(
    report: &mut TickReport,
    store: &mut StatusStore,
    logs: Option<&mut LogStore>,
    runner: &mut dyn TaskRunner,
    pass: &PassInput,
    orphans: &[usize],
) -> Result<(), StoreError> {
    let PassInput {
        config,
        nodes,
        running,
        ..
    } = *pass;
    let stored = store.meta(keys::ORPHAN_KILL_AT)?;
    let deadlines: BTreeMap<String, i64> = stored
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    let mut pending = BTreeMap::new();
    let mut events = Vec::new();
    for task in orphans.iter().map(|&i| &running[i]) {
        let job = config.job(&task.job);
        let Some(delay_ms) = job.map_or(config.settings.kill_orphan_tasks_after_ms, |j| {
            j.kill_orphan_tasks_after_ms
        }) else {
            continue;
        };
        let key = task.invocation.to_string();
        let due = deadlines
            .get(&key)
            .copied()
            .unwrap_or(report.now + (delay_ms + 999) / 1000);
        if report.now < due {
            pending.insert(key, due);
            continue;
        }
        let request = job.map_or(config.settings.kill_subprocess, |j| j.kill_subprocess);
        match runner.kill(task, &request) {
            Ok(true) => {
                let reason = orphan_reason(config, nodes, task);
                events.push(lifecycle_event(task, "orphan_killed", &reason));
                report.orphans_killed.push(KilledOrphan {
                    job: task.job.clone(),
                    node: task.node.clone(),
                    reason,
                });
            }
            Ok(false) => {}
            Err(e) => report.kill_errors.push(e.to_string()),
        }
    }
    if let (Some(logs), false) = (logs, events.is_empty()) {
        if let Err(e) = logs.append(&events) {
            report
                .kill_errors
                .push(format!("recording the kills in the task log: {e}"));
        }
    }
    let text = serde_json::to_string(&pending).expect("serializes");
    if stored.as_deref().unwrap_or("{}") != text {
        store.set_meta(&[(keys::ORPHAN_KILL_AT, &text)])?;
    }
    Ok(())
}

/// Why a running task is an orphan, in words.
fn orphan_reason(config: &Config, nodes: &Nodes, task: &RunningTask) -> String {
    match config.job(&task.job) {
        None => "its job was deleted".into(),
        Some(job) if job.errors.is_some() => "its job is invalid".into(),
        Some(job) if !job.enabled => "its job is disabled".into(),
        Some(_) if nodes.list.iter().any(|n| n.name == task.node) => "its node is disabled".into(),
        Some(_) => "its node is gone".into(),
    }
}

/// Reports problems with the config file (the last good config may stand in).
fn note_config(report: &mut TickReport, resolved: &Resolved) {
    report.config = resolved.config.path.display().to_string();
    if let Some(e) = &resolved.config.error {
        report.config_errors = e.problems();
        report.using_last_good = resolved.config.config.is_some();
    }
}

/// Remembers this run's config path, flags and last good config for later commands,
/// noting how the config changed.
fn remember_run(
    report: &mut TickReport,
    store: &mut StatusStore,
    resolved: &Resolved,
    opts: &TickOptions,
) -> Result<(), StoreError> {
    let path = resolved.config.path.display().to_string();
    let mut remember: Vec<(&str, &str)> = vec![
        (keys::CONFIG_PATH, &path),
        (keys::INSTANCE_NODE_NAME, &resolved.instance),
    ];
    if let Some(text) = &resolved.config.text {
        let last_good = store.meta(keys::LAST_GOOD_CONFIG)?;
        if last_good.as_deref() != Some(text.as_str()) {
            report.config_changes = context::config_changes(last_good.as_deref(), text);
            remember.push((keys::LAST_GOOD_CONFIG, text));
        }
    }
    if let Some(cmd) = &opts.flags.worker_command {
        remember.push((keys::WORKER_COMMAND, cmd));
    }
    store.set_meta(&remember)
}

/// Deletes task-log lines past their retention, at most once per prune period.
fn prune_logs(
    store: &mut StatusStore,
    logs: &mut LogStore,
    opts: &TickOptions,
    now: i64,
) -> Result<(), StoreError> {
    if opts.log_prune_frequency_secs <= 0 {
        return Ok(());
    }
    let last: i64 = store
        .meta(keys::LAST_LOG_PRUNE)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if now - last >= opts.log_prune_frequency_secs {
        logs.prune(now - opts.log_retention_secs)?;
        store.set_meta(&[(keys::LAST_LOG_PRUNE, &now.to_string())])?;
    }
    Ok(())
}

/// Starts the planned tasks: each is prepared, then all are recorded as running in one
/// transaction, then started; a start that fails releases its record.
fn dispatch(
    report: &mut TickReport,
    store: &mut StatusStore,
    runner: &mut dyn TaskRunner,
    ctx: &LaunchContext,
    config: &Config,
    statuses: &Statuses,
    starts: Vec<crate::scheduler::PlannedStart>,
) -> Result<Vec<RunningTask>, TickError> {
    // In batches, so the prepared runs' open lock files stay well within the fd limit.
    let batch_size = dispatch_batch_size();
    let mut starts = starts.into_iter().peekable();
    let mut started = Vec::new();
    while starts.peek().is_some() {
        let batch: Vec<_> = starts.by_ref().take(batch_size).collect();
        started.extend(dispatch_batch(
            report, store, runner, ctx, config, statuses, batch,
        )?);
    }
    report.running += report.started.len();
    Ok(started)
}

/// How many starts go through prepare, claim and start at a time: up to 256, and at
/// most a quarter of the descriptors this process may open.
fn dispatch_batch_size() -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft);
    usize::try_from(soft / 4)
        .unwrap_or(usize::MAX)
        .clamp(1, 256)
}

fn dispatch_batch(
    report: &mut TickReport,
    store: &mut StatusStore,
    runner: &mut dyn TaskRunner,
    ctx: &LaunchContext,
    config: &Config,
    statuses: &Statuses,
    starts: Vec<crate::scheduler::PlannedStart>,
) -> Result<Vec<RunningTask>, TickError> {
    let mut prepared = Vec::new();
    let mut claims = Vec::new();
    for start in starts {
        let job = &config.jobs[start.job];
        let node = &ctx.nodes.list[start.node].name;
        let invocation = InvocationId::new(report.now);
        let launch = match build_launch(
            ctx,
            job,
            start.node,
            invocation,
            &start.charges,
            statuses.get(&job.name, node),
            start
                .worker
                .and_then(|w| ctx.workers.map(|slots| &slots.workers[w])),
        ) {
            Ok(l) => l,
            Err(e) => {
                // Said once per job, not once per task.
                let e = e.to_string();
                if !report.usage_errors.contains(&e) {
                    report.usage_errors.push(e);
                }
                continue;
            }
        };
        let shard = launch.worker.clone();
        match runner.prepare(launch) {
            Ok(p) => prepared.push(p),
            Err(e) => {
                report.start_errors.push(e.to_string());
                continue;
            }
        }
        let mut claim = new_run(job, node, invocation, start.charges, statuses);
        if let Some(shard) = shard {
            claim.worker_shard = shard;
        }
        claims.push(claim);
    }
    store.claim(&claims)?;
    let mut failed = Vec::new();
    let mut started = Vec::new();
    for (task, claim) in prepared.into_iter().zip(claims) {
        match runner.start(task) {
            Ok(()) => {
                report.started.push(StartedTask {
                    job: claim.job.clone(),
                    node: claim.node.clone(),
                    invocation: Some(claim.invocation.to_string()),
                });
                started.push(claim);
            }
            Err(e) => {
                report.start_errors.push(e.to_string());
                failed.push((claim, None));
            }
        }
    }
    store.finish(&failed)?;
    for (claim, _) in &failed {
        runner.cleanup(claim);
    }
    Ok(started)
}

#[cfg(test)]
mod tests;
