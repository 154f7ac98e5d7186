//! `bistro daemon`: the tick loop kept in one process (bistro-runtime §1.4). Each
//! iteration is exactly a `tick`; between them the daemon keeps its config (re-read
//! every `config_update_ms`) and waits as Bistro does (`working_wait` while tasks run,
//! `idle_wait` otherwise, 5 s after a failure).
//!
//! Tasks belong to their detached supervisors, not to the daemon: stopping it (or
//! killing it) leaves them running, and the next daemon or tick records their ends.
//!
//! [`run`] is the loop, whose caller holds the state lock; [`serve`] is a whole
//! daemon around it: the lock, the runner, the services, the log.

mod log;
mod serve;

pub use serve::{serve, DaemonError, RunOn, ServeOptions};

use crate::execution::runner::TaskRunner;
use crate::scheduler::WaitReason;
use crate::storage::state::StateDir;
use crate::usecases::tick::{tick, tick_with, TickCache, TickError, TickOptions, TickReport};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long the daemon waits after an iteration failed.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(5);

/// The longest a daemon waits after a run ended before its next iteration.
const MAX_FLOOR: Duration = Duration::from_millis(50);

/// How a daemon runs.
#[derive(Debug, Clone, Default)]
pub struct DaemonOptions {
    /// What each iteration does.
    pub tick: TickOptions,
    /// End once nothing runs and nothing can start (a batch run).
    pub exit_when_done: bool,
}

/// Why a daemon returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonEnd {
    /// Asked to stop (SIGTERM, SIGINT).
    Stopped,
    /// `exit_when_done`, and nothing runs or can start any more.
    Done,
    /// `exit_when_done`, and no usable config exists, so nothing can ever start.
    NoConfig,
    /// `exit_when_done`, and tasks wait for something only the command line can
    /// give (a job without `command` and no `--worker-command`).
    Unstartable(Vec<String>),
}

/// Runs iterations until `stop` is set or, with `exit_when_done`, the work is over.
/// `on_iteration` sees every iteration's report (for logs and monitoring). Only the
/// check for remaining work can fail the daemon; failed iterations are retried.
pub fn run(
    state: &StateDir,
    opts: &DaemonOptions,
    runner: &mut dyn TaskRunner,
    stop: &AtomicBool,
    on_iteration: &mut dyn FnMut(&TickReport),
) -> Result<DaemonEnd, TickError> {
    let mut cache = TickCache::default();
    while !stop.load(Ordering::SeqCst) {
        // A failed iteration (a busy or full disk, a database error) is logged and
        // retried, as Bistro's loop does: the tasks are safe with their supervisors.
        let report = match tick_with(state, &opts.tick, runner, &mut cache) {
            Ok(report) => report,
            Err(e) => {
                tracing::error!("iteration failed, retrying in 5 s: {e}");
                wait(RETRY_AFTER_ERROR, stop);
                continue;
            }
        };
        on_iteration(&report);
        runner.tidy_up();
        if opts.exit_when_done && report.running == 0 && report.started.is_empty() {
            if !report.config_errors.is_empty() && !report.using_last_good {
                return Ok(DaemonEnd::NoConfig);
            }
            if report.nodes_error.is_none() {
                match remaining_work(state, opts, runner)? {
                    Remaining::Some => {}
                    Remaining::None => return Ok(DaemonEnd::Done),
                    Remaining::OnlyUnstartable(why) => return Ok(DaemonEnd::Unstartable(why)),
                }
            }
        }
        wait_for_work(Duration::from_millis(report.wait_ms), runner, stop);
    }
    Ok(DaemonEnd::Stopped)
}

/// What a batch run still has to do once nothing runs.
enum Remaining {
    /// Tasks can start now or after their backoff.
    Some,
    /// Nothing: what waits needs a person (done, failed, filtered, disabled, a
    /// dependency that cannot finish).
    None,
    /// Only tasks that need something the command line lacks (a command to run).
    OnlyUnstartable(Vec<String>),
}

/// With nothing running, can any task still start, now or after a backoff? Asks a
/// dry-run pass, which also names the tasks that only a command line can start.
fn remaining_work(
    state: &StateDir,
    opts: &DaemonOptions,
    runner: &mut dyn TaskRunner,
) -> Result<Remaining, TickError> {
    let dry = TickOptions {
        dry_run: true,
        ..opts.tick.clone()
    };
    let report = tick(state, &dry, runner)?;
    let Some(explained) = &report.explained else {
        return Ok(Remaining::None);
    };
    let startable = report.started.iter().any(|s| {
        let no_command = crate::execution::runner::NoCommand { job: s.job.clone() }.to_string();
        !report.usage_errors.contains(&no_command)
    });
    let backing_off = explained
        .waiting
        .iter()
        .any(|w| matches!(w.reason, WaitReason::Backoff { .. }));
    Ok(if startable || backing_off {
        Remaining::Some
    } else if report.usage_errors.is_empty() {
        Remaining::None
    } else {
        Remaining::OnlyUnstartable(report.usage_errors)
    })
}

/// Waits up to `period` between iterations, less when a run ends (its slot is free
/// for the next task) but at least a sixteenth of `period` (at most [`MAX_FLOOR`]),
/// so a stream of short tasks does not turn into an iteration per task. (With 16
/// slots of the seed's short tasks, a quarter left slots empty for longer than the
/// extra iterations cost.) Wakes early when `stop` is set.
fn wait_for_work(period: Duration, runner: &mut dyn TaskRunner, stop: &AtomicBool) {
    const SLICE: Duration = Duration::from_millis(50);
    let floor = (period / 16).min(MAX_FLOOR);
    let start = Instant::now();
    let until = start + period;
    while !stop.load(Ordering::SeqCst) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        if runner.wait_for_ends(left.min(SLICE)) {
            wait(floor.saturating_sub(start.elapsed()), stop);
            break;
        }
    }
}

/// Sleeps up to `period`, waking early when `stop` is set.
fn wait(period: Duration, stop: &AtomicBool) {
    const SLICE: Duration = Duration::from_millis(50);
    let until = Instant::now() + period;
    while !stop.load(Ordering::SeqCst) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(SLICE));
    }
}
