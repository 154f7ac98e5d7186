//! The iteration itself, one step after another: config -> nodes -> statuses ->
//! policy -> dispatch -> record (see the module doc of [`crate::usecases::tick`]).

use super::cache::{current_config, current_nodes, current_running, current_statuses};
use super::dispatch::dispatch;
use super::dry_run;
use super::orphans::kill_orphans;
use super::pass::{Pass, Tasks};
use super::reap::{prune_logs, reap, sweep_stray_dirs};
use super::{TickCache, TickError, TickOptions, TickReport};
use crate::execution::runner::TaskRunner;
use crate::foundation::config::Settings;
use crate::scheduler::workers::WorkerSlots;
use crate::scheduler::{plan_on, Plan};
use crate::storage::state::StateDir;
use crate::storage::store::{LastTick, LogStore, StatusStore};
use rand::SeedableRng;
use std::time::Instant;

/// One iteration over `store`, reading and keeping what it can in `cache`. Returns
/// early, having recorded what ended, when there is no config, no nodes or the
/// scheduler is disabled; a dry run returns after the policy.
pub(super) fn iterate(
    state: &StateDir,
    store: &mut StatusStore,
    opts: &TickOptions,
    runner: &mut dyn TaskRunner,
    cache: &mut TickCache,
) -> Result<TickReport, TickError> {
    let mut report = TickReport::new(crate::foundation::time::now(), opts.dry_run);
    let mut logs = cache.take_logs(state, opts.dry_run)?;
    let resolved = current_config(&mut report, state, store, opts, cache)?;
    let nodes = current_nodes(&mut report, store, cache, &resolved, opts)?;
    let tasks = current_tasks(
        &mut report,
        state,
        store,
        logs.as_mut(),
        runner,
        cache,
        opts,
    )?;
    let (Some(config), Some(nodes)) = (resolved.config.config, nodes) else {
        return Ok(report);
    };
    if !config.settings.enabled {
        return Ok(report);
    }
    let pass = Pass {
        config,
        nodes,
        worker_command: resolved.worker_command,
        tasks,
    };
    let (planned, slots) = policy(&pass, runner, report.now, opts.dry_run);
    if opts.dry_run {
        dry_run::explain(&mut report, pass, planned, opts.on_workers);
        return Ok(report);
    }
    let started = dispatch(
        &mut report,
        store,
        runner,
        state,
        &pass,
        planned.starts,
        slots,
    )?;
    let input = pass.input(report.now);
    kill_orphans(
        &mut report,
        store,
        logs.as_mut(),
        runner,
        &input,
        &planned.orphans,
    )?;
    cache.keep(logs, pass.tasks, started);
    Ok(report)
}

/// The statuses step: a real tick records the runs that ended (a status before its
/// invocation directory is removed), sweeps the directories no run owns and prunes
/// old task-log lines; a dry run (no `logs`) applies the ended runs in memory only.
fn current_tasks(
    report: &mut TickReport,
    state: &StateDir,
    store: &mut StatusStore,
    logs: Option<&mut LogStore>,
    runner: &mut dyn TaskRunner,
    cache: &mut TickCache,
    opts: &TickOptions,
) -> Result<Tasks, TickError> {
    let (data_version, mut statuses) = current_statuses(store, cache)?;
    let mut running = current_running(store, cache, data_version)?;
    match logs {
        Some(logs) => {
            let (finished, still) = reap(store, Some(&mut *logs), runner, &mut statuses, running)?;
            report.finished = finished;
            sweep_stray_dirs(state, &still);
            running = still;
            prune_logs(store, logs, opts, report.now)?;
        }
        None => dry_run::preview(state, &mut statuses, &mut running),
    }
    report.running = running.len();
    report.runner_notes = runner.placement().map(|p| p.notes()).unwrap_or_default();
    Ok(Tasks {
        data_version,
        statuses,
        running,
    })
}

/// The policy step: the scheduling pass. A real tick with remote workers also places
/// each start on a worker's free slots; a dry run shows what the scheduler itself
/// decides, and placement waits for the real pass.
fn policy(
    pass: &Pass,
    runner: &mut dyn TaskRunner,
    now: i64,
    dry_run: bool,
) -> (Plan, Option<WorkerSlots>) {
    let mut slots = if dry_run {
        None
    } else {
        runner
            .placement()
            .map(|p| p.workers(&pass.config, &pass.tasks.running))
    };
    let planned = plan_on(
        &pass.input(now),
        &mut rand::rngs::StdRng::from_entropy(),
        dry_run,
        slots.as_mut(),
    );
    (planned, slots)
}

/// What a real tick records of itself for monitoring (meta `last_tick`).
pub(super) fn summary(report: &TickReport, began: Instant) -> LastTick {
    LastTick {
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
    }
}

/// How long a long-running scheduler waits before its next iteration, as Bistro's
/// loop does (bistro-runtime §1.4): 5 s after a config or node failure, `idle_wait`
/// when the scheduler is disabled or nothing runs, `working_wait` otherwise.
pub(super) fn next_wait_ms(report: &TickReport, settings: Option<&Settings>) -> u64 {
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
