//! Starting the planned tasks: each is prepared (its invocation directory and locked
//! launch file made), then all are recorded as running in one transaction, then
//! started. A run is recorded before it is started; a start that fails releases its
//! record.

use super::pass::Pass;
use super::{StartedTask, TickError, TickReport};
use crate::execution::runner::{build_launch, LaunchContext, TaskRunner};
use crate::foundation::config::Job;
use crate::foundation::status::configured_backoff;
use crate::model::resources::NodeCharge;
use crate::model::task::{InvocationId, RunningTask};
use crate::scheduler::workers::WorkerSlots;
use crate::scheduler::{PlannedStart, Statuses};
use crate::storage::state::StateDir;
use crate::storage::store::StatusStore;

/// Starts `starts` (see the module doc), then tells the runner's worker placement, if
/// any, what the pass placed on its workers' free `slots`.
pub(super) fn dispatch(
    report: &mut TickReport,
    store: &mut StatusStore,
    runner: &mut dyn TaskRunner,
    state: &StateDir,
    pass: &Pass,
    starts: Vec<PlannedStart>,
    slots: Option<WorkerSlots>,
) -> Result<Vec<RunningTask>, TickError> {
    if let (Some(slots), Some(instance)) = (&slots, pass.nodes.nodes.list.first()) {
        report
            .runner_notes
            .extend(name_clashes(&instance.name, slots));
    }
    let host = crate::execution::supervisor::process::hostname();
    let ctx = LaunchContext {
        state,
        nodes: &pass.nodes.nodes,
        worker_command: pass.worker_command.as_deref(),
        worker_host: &host,
        workers: slots.as_ref(),
    };
    let mut starts = starts;
    if !starts.is_empty() {
        if let Some(capacity) = runner.start_capacity(&pass.config.settings) {
            starts.truncate(capacity);
        }
    }
    let started = start_all(report, store, runner, &ctx, pass, starts);
    if let (Some(slots), Some(placement)) = (slots, runner.placement()) {
        placement.placed(slots);
    }
    started
}

/// A worker named as the instance node: both are nodes of a task's path, so the task's
/// `resources_by_node` has one entry for the two and the instance's is lost. Both
/// default to the host name when the scheduler and a worker share a machine.
fn name_clashes(instance: &str, slots: &WorkerSlots) -> Vec<String> {
    slots
        .workers
        .iter()
        .filter(|w| w.shard == instance)
        .map(|w| {
            format!(
                "worker {} has the instance node's name: a task's resources_by_node keeps one entry for both and loses the instance's; start the daemon with --instance-node-name NAME (e.g. scheduler) or the worker with --shard-id ID",
                w.shard
            )
        })
        .collect()
}

/// Starts the planned tasks in batches, each prepared, claimed, then started.
fn start_all(
    report: &mut TickReport,
    store: &mut StatusStore,
    runner: &mut dyn TaskRunner,
    ctx: &LaunchContext,
    pass: &Pass,
    starts: Vec<PlannedStart>,
) -> Result<Vec<RunningTask>, TickError> {
    // In batches, so the prepared runs' open lock files stay well within the fd limit.
    let batch_size = dispatch_batch_size();
    let mut starts = starts.into_iter().peekable();
    let mut started = Vec::new();
    while starts.peek().is_some() {
        let batch: Vec<_> = starts.by_ref().take(batch_size).collect();
        started.extend(dispatch_batch(report, store, runner, ctx, pass, batch)?);
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

/// Prepares a batch of starts, records them as running in one transaction, then
/// starts them; a start that fails releases its record.
fn dispatch_batch(
    report: &mut TickReport,
    store: &mut StatusStore,
    runner: &mut dyn TaskRunner,
    ctx: &LaunchContext,
    pass: &Pass,
    starts: Vec<PlannedStart>,
) -> Result<Vec<RunningTask>, TickError> {
    let config = &pass.config;
    let statuses = &pass.tasks.statuses;
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
            Ok(()) => started.push(claim),
            Err(e) => {
                report.start_errors.push(e.to_string());
                failed.push((claim, None));
            }
        }
    }
    for (invocation, e) in runner.finish_starts() {
        report.start_errors.push(e.to_string());
        if let Some(at) = started.iter().position(|c| c.invocation == invocation) {
            failed.push((started.remove(at), None));
        }
    }
    report
        .started
        .extend(started.iter().map(|claim| StartedTask {
            job: claim.job.clone(),
            node: claim.node.clone(),
            invocation: Some(claim.invocation.to_string()),
        }));
    store.finish(&failed)?;
    for (claim, _) in &failed {
        runner.cleanup(claim);
    }
    Ok(started)
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
        timeout_sec: job.task_timeout_sec,
    }
}
