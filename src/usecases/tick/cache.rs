//! What a long-running scheduler keeps between iterations ([`TickCache`]), and the
//! `current_*` steps that read the config, nodes, statuses and running tasks through
//! it: from the cache while it is still true, else from the state dir.

use super::pass::Tasks;
use super::{TickOptions, TickReport};
use crate::foundation::config::{Config, Settings};
use crate::model::nodes::{fetch_nodes, NodeError};
use crate::model::task::RunningTask;
use crate::scheduler::Statuses;
use crate::storage::state::StateDir;
use crate::storage::store::{LogStore, StatusStore, StoreError};
use crate::usecases::context::{self, keys, NodesSnapshot, Resolved};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a long-running scheduler keeps between iterations: the config it resolved,
/// re-read only every `config_update_ms`, the nodes of its last fetch, its database
/// connections (opening one reads the schema, and closing the last one checkpoints
/// and syncs the database: too much for every iteration), and the task statuses as
/// its last iteration left them. A failed iteration drops its connections and
/// statuses; the next one opens and reads them anew.
#[derive(Default)]
pub struct TickCache {
    pub(super) config: Option<(Instant, Resolved)>,
    pub(super) nodes: Option<Arc<NodesSnapshot>>,
    pub(super) store: Option<StatusStore>,
    pub(super) logs: Option<LogStore>,
    pub(super) statuses: Option<KnownStatuses>,
    pub(super) running: Option<KnownRunning>,
}

impl TickCache {
    /// The kept connection to the status database, else a new one (then the kept
    /// statuses and running tasks are dropped too); a dry run's only reads.
    pub(super) fn take_store(
        &mut self,
        state: &StateDir,
        dry_run: bool,
    ) -> Result<StatusStore, StoreError> {
        match self.store.take() {
            Some(store) => Ok(store),
            None => {
                // data_version is counted per connection: statuses read through an
                // earlier one cannot be checked through a new one.
                self.statuses = None;
                self.running = None;
                if dry_run {
                    StatusStore::open_for_reading(&state.statuses_db())
                } else {
                    StatusStore::open(&state.statuses_db())
                }
            }
        }
    }

    /// The task-log database of a real iteration: the kept connection, else a new
    /// one. A dry run gets none: it writes nothing, not even a log database's schema.
    pub(super) fn take_logs(
        &mut self,
        state: &StateDir,
        dry_run: bool,
    ) -> Result<Option<LogStore>, StoreError> {
        if dry_run {
            return Ok(None);
        }
        match self.logs.take() {
            Some(logs) => Ok(Some(logs)),
            None => LogStore::open(&state.logs_db()).map(Some),
        }
    }

    /// The settings of the config in force, if there is one.
    pub(super) fn settings(&self) -> Option<&Settings> {
        self.config
            .as_ref()
            .and_then(|(_, r)| r.config.config.as_ref())
            .map(|c| &c.settings)
    }

    /// Keeps what a complete iteration leaves for the next: its log connection, the
    /// statuses as it recorded them, and the tasks running after it (those it found
    /// and those it `started`), all as of the `data_version` they were read at.
    pub(super) fn keep(&mut self, logs: Option<LogStore>, tasks: Tasks, started: Vec<RunningTask>) {
        let Tasks {
            data_version,
            statuses,
            running: mut tasks,
        } = tasks;
        if logs.is_some() {
            self.logs = logs;
        }
        self.statuses = Some(KnownStatuses {
            data_version,
            statuses,
        });
        tasks.extend(started);
        // As the database lists them.
        tasks.sort_by_cached_key(|task| task.invocation.to_string());
        self.running = Some(KnownRunning {
            data_version,
            tasks,
        });
    }
}

/// Statuses read from the database at a given `data_version`, then kept up to date
/// with this scheduler's own writes. Another process's write (`bistro forgive`, an
/// HTTP handler) changes the version, and the statuses are read again.
pub(super) struct KnownStatuses {
    pub(super) data_version: i64,
    pub(super) statuses: Statuses,
}

/// The running tasks as stored, like [`KnownStatuses`]: those the last iteration left
/// running or started, while no one else wrote. (Reading and decoding them each
/// iteration cost a daemon more than its pass.)
pub(super) struct KnownRunning {
    pub(super) data_version: i64,
    pub(super) tasks: Vec<RunningTask>,
}

/// The running tasks as stored at `version`: see [`KnownRunning`].
pub(super) fn current_running(
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
pub(super) fn current_statuses(
    store: &StatusStore,
    cache: &mut TickCache,
) -> Result<(i64, Statuses), StoreError> {
    let version = store.data_version()?;
    match cache.statuses.take() {
        Some(known) if known.data_version == version => Ok((version, known.statuses)),
        _ => Ok((version, store.load_statuses()?)),
    }
}

/// The config in force: the one resolved before while it is younger than
/// `config_update_ms`, else read again. Notes its problems in `report`; a real tick
/// stores what it runs with when it reads it (not every iteration).
pub(super) fn current_config(
    report: &mut TickReport,
    state: &StateDir,
    store: &mut StatusStore,
    opts: &TickOptions,
    cache: &mut TickCache,
) -> Result<Resolved, StoreError> {
    let period = Duration::from_millis(opts.config_update_ms);
    let (read_at, resolved, fresh) = match cache.config.take() {
        Some((at, resolved)) if at.elapsed() < period => (at, resolved, false),
        _ => {
            let now = Instant::now();
            (now, context::resolve(state, store, &opts.flags)?, true)
        }
    };
    note_config(report, &resolved);
    if fresh && !opts.dry_run {
        remember_run(report, store, &resolved, opts)?;
    }
    cache.config = Some((read_at, resolved.clone()));
    Ok(resolved)
}

/// Reports problems with the config file (the last good config may stand in) and its
/// jobs, and whether the scheduler is enabled.
fn note_config(report: &mut TickReport, resolved: &Resolved) {
    report.config = resolved.config.path.display().to_string();
    if let Some(e) = &resolved.config.error {
        report.config_errors = e.problems();
        report.using_last_good = resolved.config.config.is_some();
    }
    if let Some(config) = &resolved.config.config {
        report.job_errors = config.job_problems();
        report.scheduler_enabled = config.settings.enabled;
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
    if let Some(runner) = &opts.flags.runner {
        remember.push((keys::RUNNER, runner));
    }
    store.set_meta(&remember)
}

/// The nodes of the config in force, if there is one: see [`fetch_or_reuse`]. A
/// failed fetch is noted in `report`.
pub(super) fn current_nodes(
    report: &mut TickReport,
    store: &mut StatusStore,
    cache: &mut TickCache,
    resolved: &Resolved,
    opts: &TickOptions,
) -> Result<Option<Arc<NodesSnapshot>>, StoreError> {
    let Some(config) = &resolved.config.config else {
        return Ok(None);
    };
    let fetched = fetch_or_reuse(store, cache, config, &resolved.instance, opts, report.now)?;
    Ok(fetched
        .map_err(|e| report.nodes_error = Some(e.to_string()))
        .ok())
}

/// The nodes for this pass: the last fetch while it is younger than
/// `nodes_update_ms` and was made from the same levels, node sources and instance
/// name (so a cron tick does not rerun node scripts every minute), else a new fetch,
/// which a real tick stores for the next ones and for `status`. A daemon keeps the
/// last fetch in its cache instead of reading it back each iteration. Failed fetches
/// are not stored: the next tick tries again.
fn fetch_or_reuse(
    store: &mut StatusStore,
    cache: &mut TickCache,
    config: &Config,
    instance: &str,
    opts: &TickOptions,
    now: i64,
) -> Result<Result<Arc<NodesSnapshot>, NodeError>, StoreError> {
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
