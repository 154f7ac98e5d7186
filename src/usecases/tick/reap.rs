//! Recording what ended: the results of finished runs (and late ones from lost
//! workers) over the stored statuses, the invocation directories no run owns any more,
//! and task-log lines past their retention. A status is recorded before its
//! invocation directory is removed.

use super::{FinishedTask, TickError, TickOptions};
use crate::execution::runner::remote::{LateStatus, LOST_INVOCATION_KEY};
use crate::execution::runner::{Outcome, TaskResult, TaskRunner};
use crate::foundation::status::{apply_status, configured_backoff, TaskStatus};
use crate::model::task::{InvocationId, RunningTask};
use crate::scheduler::Statuses;
use crate::storage::state::StateDir;
use crate::storage::store::{LogKind, LogLine, LogStore, StatusRow, StatusStore, StoreError};
use crate::usecases::context::keys;
use serde_json::json;
use std::collections::{HashMap, HashSet};

/// A line of a run's lifecycle in the `statuses` task log, as supervisors write
/// theirs (bistro-runtime §2.7), for what the scheduler itself saw or did.
pub(super) fn lifecycle_event(task: &RunningTask, name: &str, message: &str) -> LogLine {
    LogLine {
        kind: LogKind::Statuses,
        job: task.job.clone(),
        node: task.node.clone(),
        time: crate::foundation::time::now(),
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
            tracing::warn!("{e}");
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
    let stands_in_for = |stored: &TaskStatus, l: &LateStatus| {
        stored
            .data
            .as_ref()
            .and_then(|d| d.get(LOST_INVOCATION_KEY))
            .and_then(|v| v.as_str())
            == Some(l.task.invocation.to_string().as_str())
    };
    let rows: Vec<StatusRow> = late
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
            Some(StatusRow {
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
    rows: &mut Vec<StatusRow>,
    running: &mut Vec<RunningTask>,
) {
    // Most of the time nothing runs: no need to index the rows.
    if running.is_empty() {
        return;
    }
    let mut at: HashMap<(String, String), usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| ((r.job.clone(), r.node.clone()), i))
        .collect();
    take_finished(state, running, |task, result| {
        let key = (task.job.clone(), task.node.clone());
        let stored = at.get(&key).map(|&i| &rows[i].status);
        let status = apply_status(stored, result.status, task.next_backoff);
        let row = StatusRow {
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
pub(super) fn take_finished(
    state: &StateDir,
    running: &mut Vec<RunningTask>,
    mut finished: impl FnMut(&RunningTask, TaskResult),
) {
    running.retain(|task| {
        match crate::execution::runner::read_result(&state.invocation_dir(task.invocation)) {
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
pub(super) fn sweep_stray_dirs(state: &StateDir, running: &[RunningTask]) {
    let owned: HashSet<String> = running.iter().map(|t| t.invocation.to_string()).collect();
    let Ok(entries) = std::fs::read_dir(state.running_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if owned.contains(&name) || InvocationId::parse(&name).is_none() {
            continue;
        }
        let held = crate::execution::runner::is_supervised(&entry.path()) != Some(false);
        if !held {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Deletes task-log lines past their retention, at most once per prune period.
pub(super) fn prune_logs(
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
