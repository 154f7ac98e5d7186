//! A whole `bistro daemon`: the state locked, its runner chosen (local, simulated or
//! remote workers with their hub), its services started (the HTTP server the command
//! line provides, the hub's sweeps over the workers), the iterations run and logged,
//! and everything stopped in order.

use super::log::IterationLog;
use super::{run, DaemonEnd, DaemonOptions};
use crate::execution::runner::remote::{Hub, HubSettings, RemoteRunner};
use crate::execution::runner::TaskRunner;
use crate::foundation::error::{ErrorKind, HasKind};
use crate::foundation::sanitize::for_terminal;
use crate::storage::state::{StateDir, StateError, StateLock};
use crate::storage::store::{StatusStore, StoreError};
use crate::usecases::tick::TickError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Where a daemon's tasks run.
pub enum RunOn {
    /// Here, with this runner (local processes under supervisors, or simulated runs).
    Here(Box<dyn TaskRunner>),
    /// On remote workers, which a hub with these settings tracks; they reach the
    /// daemon over its HTTP server.
    Workers(HubSettings),
}

/// How a whole daemon runs.
pub struct ServeOptions {
    /// Its iterations.
    pub daemon: DaemonOptions,
    /// Where its tasks run.
    pub run_on: RunOn,
    /// How long to wait for the state lock.
    pub wait_lock: Duration,
    /// Forget every stored status once everything has started.
    pub clean_statuses: bool,
}

/// Why a daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The state directory failed (or is locked by another scheduler).
    #[error(transparent)]
    State(#[from] StateError),
    /// The status database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The check for remaining work failed.
    #[error(transparent)]
    Tick(#[from] TickError),
    /// Tasks would go to remote workers, which could not reach the daemon.
    #[error("without --worker-command, tasks run on remote workers, which reach this scheduler over --http ADDR: pass --http ADDR, or run tasks here with --worker-command CMD (or --local when every job has a \"command\")")]
    WorkersWithoutHttp,
}

impl HasKind for DaemonError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::State(e) => e.kind(),
            Self::Store(e) => e.kind(),
            Self::Tick(e) => e.kind(),
            Self::WorkersWithoutHttp => ErrorKind::Usage,
        }
    }
}

/// A daemon's failure as the caller's error type `E`.
fn fail<E: From<DaemonError>>(error: impl Into<DaemonError>) -> E {
    E::from(error.into())
}

/// Runs a daemon over `state` until it stops or its work is done. `stop_on_signals`
/// makes the flag that stops it, once the state is locked; `http`, if given, binds
/// the HTTP server before the first iteration (with the hub of the remote workers,
/// if any) and returns the thread that serves it until the flag it is given is set;
/// its errors, and the daemon's, are the caller's `E`.
pub fn serve<E>(
    state: &StateDir,
    opts: ServeOptions,
    stop_on_signals: impl FnOnce() -> &'static AtomicBool,
    http: Option<impl FnOnce(Option<&Arc<Hub>>, &'static AtomicBool) -> Result<JoinHandle<()>, E>>,
) -> Result<DaemonEnd, E>
where
    E: From<DaemonError>,
{
    let created = CreatedUntilStarted::create_and_lock(state, opts.wait_lock).map_err(fail)?;
    let stop = stop_on_signals();
    // Created now, so the HTTP server has a state to serve from the start.
    let mut store = StatusStore::open(&state.statuses_db()).map_err(fail)?;
    let (mut runner, hub): (Box<dyn TaskRunner>, _) = match opts.run_on {
        RunOn::Workers(_) if http.is_none() => {
            return Err(fail(DaemonError::WorkersWithoutHttp));
        }
        RunOn::Workers(settings) => {
            let initial_wait = settings.pool.health.initial_wait_warning();
            let hub = Arc::new(Hub::new(state, settings).map_err(fail)?);
            (
                Box::new(RemoteRunner::new(Arc::clone(&hub))),
                Some((hub, initial_wait)),
            )
        }
        RunOn::Here(runner) => (runner, None),
    };
    let hub_only = hub.as_ref().map(|(hub, _)| hub);
    tracing::info!(
        "scheduling over {} (pid {})",
        state.root().display(),
        std::process::id()
    );
    let server = match http {
        Some(start) => Some(start(hub_only, stop)?),
        None => None,
    };
    let _lock = created.started();
    // After the `listening on` line, which scripts wait for first.
    if let Some(warning) = hub.as_ref().and_then(|(_, warning)| warning.as_ref()) {
        tracing::warn!("{warning}");
    }
    let sweeps = hub_only.map(|hub| {
        let hub = Arc::clone(hub);
        std::thread::spawn(move || hub.run_sweeps(stop))
    });
    // Only once everything has started: a start that fails must lose nothing.
    if opts.clean_statuses {
        let cleared = store.clear_statuses().map_err(fail)?;
        tracing::info!("--clean-statuses: forgot {cleared} stored statuses");
    }
    drop(store);
    let mut log = IterationLog::default();
    let end = run(state, &opts.daemon, runner.as_mut(), stop, &mut |r| {
        log.record(r)
    });
    stop.store(true, Ordering::SeqCst);
    if let Some(server) = server {
        let _ = server.join();
    }
    if let Some(sweeps) = sweeps {
        let _ = sweeps.join();
    }
    let end = end.map_err(fail)?;
    say_end(&end, log.running);
    Ok(end)
}

/// The state lock, and the state dir if this daemon created it: removed again, while
/// the lock is still held, if the daemon fails before it has started (a refused
/// `--http` address, a hub that cannot start), so a refused start leaves nothing
/// behind. A state dir that existed is never removed, nor one whose lock another
/// process took first (it may be that process's new state).
struct CreatedUntilStarted {
    created: Option<std::path::PathBuf>,
    lock: Option<StateLock>,
}

impl CreatedUntilStarted {
    fn create_and_lock(
        state: &StateDir,
        wait: std::time::Duration,
    ) -> Result<Self, crate::storage::state::StateError> {
        let existed = state.root().try_exists().unwrap_or(true);
        state.create()?;
        let lock = state.lock(wait)?;
        Ok(Self {
            created: (!existed).then(|| state.root().to_path_buf()),
            lock: Some(lock),
        })
    }

    /// The daemon has started: what it created stays; the lock is the caller's.
    fn started(mut self) -> StateLock {
        self.created = None;
        self.lock.take().expect("held until started")
    }
}

impl Drop for CreatedUntilStarted {
    fn drop(&mut self) {
        if let Some(root) = self.created.take() {
            if let Err(e) = std::fs::remove_dir_all(&root) {
                tracing::warn!("removing {} after a failed start: {e}", root.display());
            }
        }
    }
}

/// Logs why the daemon ended.
fn say_end(end: &DaemonEnd, running: usize) {
    match end {
        DaemonEnd::Stopped => tracing::info!(
            "stopped; {running} running task(s) keep running under their supervisors"
        ),
        DaemonEnd::Done => tracing::info!("nothing runs and nothing can start: done"),
        DaemonEnd::Unstartable(why) => {
            for reason in why {
                tracing::error!("{}", for_terminal(reason));
            }
            tracing::error!("nothing else runs or can start: exiting");
        }
        DaemonEnd::NoConfig => tracing::error!("no usable config, so nothing can ever start: fix it and run again (`bistro check` lists every problem)"),
    }
}
