//! Orphans: running tasks whose job or node no longer wants them, killed once their
//! grace period (`kill_orphan_tasks_after_sec`) is over.

use super::reap::lifecycle_event;
use super::{KilledOrphan, TickReport};
use crate::execution::runner::TaskRunner;
use crate::foundation::config::Config;
use crate::model::nodes::Nodes;
use crate::model::task::RunningTask;
use crate::scheduler::PassInput;
use crate::storage::store::{LogStore, StatusStore, StoreError};
use crate::usecases::context::keys;
use std::collections::BTreeMap;

/// Kills orphans whose grace period is over (bistro-runtime §2.11): the first tick
/// that sees an orphan sets its deadline from `kill_orphan_tasks_after_sec` (its
/// job's, or the global one for a deleted job); once due it is killed with that job's
/// `kill_subprocess` and forgotten, so a survivor is killed again after another full
/// delay. Deadlines live in meta `orphan_kill_at`, so they span ticks.
pub(super) fn kill_orphans(
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
    let deadlines = parse_deadlines(stored.as_deref());
    let mut pending = BTreeMap::new();
    let mut events = Vec::new();
    for task in orphans.iter().map(|&i| &running[i]) {
        let job = config.job(&task.job);
        let Some(due) = orphan_kill_at(config, task, &deadlines, report.now) else {
            continue;
        };
        if report.now < due {
            pending.insert(task.invocation.to_string(), due);
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

/// The orphan deadlines stored in meta `orphan_kill_at`, by invocation id.
pub fn orphan_deadlines(store: &StatusStore) -> Result<BTreeMap<String, i64>, StoreError> {
    Ok(parse_deadlines(
        store.meta(keys::ORPHAN_KILL_AT)?.as_deref(),
    ))
}

fn parse_deadlines(stored: Option<&str>) -> BTreeMap<String, i64> {
    stored
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

/// When the orphan `task` is killed (epoch seconds): the deadline an earlier tick set,
/// else `kill_orphan_tasks_after_sec` (its job's, or the global one for a deleted job)
/// from `now`; None when it is never killed.
pub fn orphan_kill_at(
    config: &Config,
    task: &RunningTask,
    deadlines: &BTreeMap<String, i64>,
    now: i64,
) -> Option<i64> {
    let delay_ms = config
        .job(&task.job)
        .map_or(config.settings.kill_orphan_tasks_after_ms, |j| {
            j.kill_orphan_tasks_after_ms
        })?;
    Some(
        deadlines
            .get(&task.invocation.to_string())
            .copied()
            .unwrap_or(now + (delay_ms + 999) / 1000),
    )
}

/// Why a running task is an orphan, in words.
pub fn orphan_reason(config: &Config, nodes: &Nodes, task: &RunningTask) -> String {
    match config.job(&task.job) {
        None => "its job was deleted".into(),
        Some(job) if job.errors.is_some() => "its job is invalid".into(),
        Some(job) if !job.enabled => "its job is disabled".into(),
        Some(_) if nodes.list.iter().any(|n| n.name == task.node) => "its node is disabled".into(),
        Some(_) => "its node is gone".into(),
    }
}
