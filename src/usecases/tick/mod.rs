//! One scheduling iteration over a state directory:
//! config -> nodes -> statuses -> policy -> dispatch -> record.
//!
//! - config: the config in force, its problems noted (`cache.rs`);
//! - nodes: the last fetch while it is fresh, else the node sources run (`cache.rs`);
//! - statuses: the stored statuses with the runs that ended recorded (`reap.rs`);
//! - policy: the scheduling pass, which picks the tasks to start and the orphans;
//! - dispatch: the picked tasks started (`dispatch.rs`), due orphans killed
//!   (`orphans.rs`); a dry run explains instead (`dry_run.rs`);
//! - record: what the next iteration reuses ([`TickCache`]), and what this one did
//!   ([`LastTick`](crate::storage::store::LastTick), meta `last_tick`).
//!
//! The caller holds the state lock (except for `--dry-run`, which writes nothing).
//! Crash safety comes from the order of the steps: a run is recorded as running only
//! after its invocation directory and locked launch file exist, and is started only after that record
//! is committed; a status is recorded before its invocation directory is removed.

mod cache;
mod dispatch;
mod dry_run;
mod iteration;
mod orphans;
mod pass;
mod reap;
mod report;

pub use cache::TickCache;
pub use dispatch::new_run;
pub use orphans::{orphan_deadlines, orphan_kill_at, orphan_reason};
pub use reap::{preview_finished, reap};
pub use report::{Diagnostic, Explained, FinishedTask, KilledOrphan, StartedTask, TickReport};

use crate::execution::runner::TaskRunner;
use crate::foundation::error::{ErrorKind, HasKind};
use crate::storage::state::StateDir;
use crate::storage::store::StoreError;
use crate::usecases::context::RunFlags;

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

/// A failure that stops the tick.
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    /// The status or log database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The state directory failed.
    #[error(transparent)]
    State(#[from] crate::storage::state::StateError),
}

impl HasKind for TickError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Store(e) => e.kind(),
            Self::State(e) => e.kind(),
        }
    }
}

/// Runs one iteration (see the module doc). The caller holds the state lock unless
/// `opts.dry_run`. A real tick records when it ran and what it did (meta
/// `last_tick`) for monitoring.
pub fn tick(
    state: &StateDir,
    opts: &TickOptions,
    runner: &mut dyn TaskRunner,
) -> Result<TickReport, TickError> {
    tick_with(state, opts, runner, &mut TickCache::default())
}

/// [`tick`] for a scheduler that runs many iterations in one process.
pub fn tick_with(
    state: &StateDir,
    opts: &TickOptions,
    runner: &mut dyn TaskRunner,
    cache: &mut TickCache,
) -> Result<TickReport, TickError> {
    let began = std::time::Instant::now();
    let mut store = cache.take_store(state, opts.dry_run)?;
    let mut report = iteration::iterate(state, &mut store, opts, runner, cache)?;
    report.wait_ms = iteration::next_wait_ms(&report, cache.settings());
    if !opts.dry_run {
        iteration::summary(&report, began).save(&mut store)?;
    }
    cache.store = Some(store);
    Ok(report)
}

#[cfg(test)]
mod tests;
