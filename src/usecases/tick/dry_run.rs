//! `--dry-run`: the pass of a real tick, starting and writing nothing. Runs that
//! ended are applied in memory only (as `status` shows them); what a real tick would
//! start is listed, with the starts it would refuse (a job with no command to run),
//! and every other task with why it waits.

use super::pass::Pass;
use super::reap::take_finished;
use super::{Explained, StartedTask, TickReport};
use crate::foundation::status::apply_status;
use crate::model::task::RunningTask;
use crate::scheduler::{Plan, Statuses};
use crate::storage::state::StateDir;

/// Applies to `statuses`, in memory only, the results that supervisors recorded but
/// no tick has yet, taking their runs out of `running`.
pub(super) fn preview(state: &StateDir, statuses: &mut Statuses, running: &mut Vec<RunningTask>) {
    take_finished(state, running, |task, result| {
        let stored = statuses.get(&task.job, &task.node);
        let status = apply_status(stored, result.status, task.next_backoff);
        statuses.insert(&task.job, &task.node, status, task.attempts);
    });
}

/// Fills `report` with what a real tick would do after `pass` planned `planned`.
/// With remote workers (`on_workers`), a job without a command gets one from them.
pub(super) fn explain(report: &mut TickReport, pass: Pass, planned: Plan, on_workers: bool) {
    let Pass {
        config,
        nodes,
        worker_command,
        tasks,
    } = pass;
    report.started = planned
        .starts
        .iter()
        .map(|s| StartedTask {
            job: config.jobs[s.job].name.clone(),
            node: nodes.nodes.list[s.node].name.clone(),
            invocation: None,
        })
        .collect();
    // What a real tick would refuse to start: a job with no command to run.
    for s in &planned.starts {
        let job = &config.jobs[s.job];
        if job.command.is_empty() && worker_command.is_none() && !on_workers {
            let e = crate::execution::runner::NoCommand {
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
        nodes: nodes.nodes.clone(),
        running: tasks.running,
        orphans: planned.orphans,
        statuses: tasks.statuses,
    });
}
