//! `bistro why JOB NODE`: why one task is or is not running, from the same dry-run
//! pass as `tick --dry-run`, plus what the status database says of the task.

use crate::execution::runner::TaskRunner;
use crate::foundation::error::{ErrorKind, HasKind};
use crate::scheduler::{WaitReason, Waiting};
use crate::storage::state::StateDir;
use crate::storage::store::{StatusStore, StoreError};
use crate::usecases::context::RunFlags;
use crate::usecases::tick::{tick, Explained, TickError, TickOptions, TickReport};
use serde_json::{json, Value};

/// The answer for one task.
#[derive(Debug, Clone, PartialEq)]
pub struct Why {
    /// `running`, `would_start`, `done` or `waiting`.
    pub state: &'static str,
    /// A stable reason code (the wait reasons of `tick --dry-run`, or `running`,
    /// `would_start`, `done`, `no_command`, `scheduler_disabled`, `no_config`,
    /// `nodes_error`).
    pub reason: &'static str,
    /// One sentence for humans.
    pub message: String,
    /// The whole answer as JSON: the fields above, the reason's details (resource,
    /// holders, backoff deadline, ...) and the stored status.
    pub json: Value,
}

/// Why `why` could not answer.
#[derive(Debug, thiserror::Error)]
pub enum WhyError {
    /// The job is not in the config in force.
    #[error("Unknown job {job}: the config in force has no \"bistro_job->{job}\"")]
    UnknownJob {
        /// The job asked about.
        job: String,
    },
    /// The node is not one of the job's task nodes.
    #[error("{node} is not a node of level {level}, where job {job} runs its tasks")]
    NotATask {
        /// The job.
        job: String,
        /// The node asked about.
        node: String,
        /// The job's `level_for_tasks`.
        level: String,
    },
    /// The state dir or its databases failed.
    #[error(transparent)]
    Tick(#[from] TickError),
}

impl HasKind for WhyError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownJob { .. } | Self::NotATask { .. } => ErrorKind::Usage,
            Self::Tick(e) => e.kind(),
        }
    }
}

impl From<StoreError> for WhyError {
    fn from(e: StoreError) -> Self {
        WhyError::Tick(e.into())
    }
}

/// Explains (job, node) with a dry-run pass over the state a scheduler made (with
/// `flags`' config): writes nothing, starts nothing.
pub fn why(
    state: &StateDir,
    flags: &RunFlags,
    runner: &mut dyn TaskRunner,
    job: &str,
    node: &str,
) -> Result<Why, WhyError> {
    state.existing_statuses_db().map_err(TickError::from)?;
    let opts = TickOptions {
        flags: flags.clone(),
        dry_run: true,
        // The nodes the scheduler fetched last, whatever its --nodes-update-ms: those
        // are the ones it schedules over (only a change of node sources refetches).
        nodes_update_ms: i64::MAX,
        ..Default::default()
    };
    let report = tick(state, &opts, runner)?;
    // Without a pass (no config, no nodes, scheduler off), what the database says.
    let stored;
    let (statuses, running) = match &report.explained {
        Some(e) => (&e.statuses, e.running.as_slice()),
        None => {
            let store = StatusStore::open_for_reading(&state.statuses_db())?;
            stored = (store.load_statuses()?, store.running()?);
            (&stored.0, stored.1.as_slice())
        }
    };
    let status = statuses.get(job, node).map_or(Value::Null, |s| {
        json!({"status": s.name().as_str(), "time": s.time,
               "attempts": statuses.attempts(job, node), "backoff_until": s.backoff_until(),
               "data": s.data_json()})
    });
    let running = running.iter().find(|t| t.job == job && t.node == node);
    let answer = |state: &'static str, reason: &'static str, message: String, details: Value| {
        let mut json = json!({"job": job, "node": node, "state": state, "reason": reason,
                              "message": message.clone(), "status": status.clone()});
        if let Value::Object(extra) = details {
            for (k, v) in extra {
                json[k.as_str()] = v;
            }
        }
        Why {
            state,
            reason,
            message,
            json,
        }
    };
    if let Some(task) = running {
        let mut message = format!(
            "since {} (invocation {})",
            crate::foundation::time::rfc3339(task.invocation.start_time),
            task.invocation
        );
        let slurm = crate::execution::runner::slurm::describe_run(
            &mut crate::execution::runner::slurm::SlurmCli,
            &state.invocation_dir(task.invocation),
        );
        // On Slurm the clock starts when the batch script begins, not at submission.
        let timeout_at = task.timeout_at().filter(|_| slurm.is_none());
        match (timeout_at, task.timeout_sec) {
            (Some(at), Some(secs)) => message.push_str(&format!(
                ", times out at {} (task_timeout_sec {secs})",
                crate::foundation::time::rfc3339(at)
            )),
            (None, Some(secs)) => message.push_str(&format!(
                ", times out {secs} s after it starts on a Slurm node (task_timeout_sec)"
            )),
            _ => {}
        }
        let mut details =
            json!({"invocation": task.invocation.to_string(), "timeout_at": timeout_at});
        if let Some(slurm) = slurm {
            message = format!("{message}: {slurm}");
            details["slurm"] = json!(slurm);
        }
        return Ok(answer("running", "running", message, details));
    }
    let Some(explained) = &report.explained else {
        // No pass ran; an unknown job is still an error, not a reason to wait.
        let store = StatusStore::open_for_reading(&state.statuses_db())?;
        if let Ok(config) =
            crate::usecases::context::usable_config(state, &store, opts.flags.config.as_deref())?
        {
            if config.job(job).is_none() {
                return Err(WhyError::UnknownJob { job: job.into() });
            }
        }
        return Ok(blocked(&report, answer));
    };
    let config = &explained.config;
    let nodes = &explained.nodes;
    let j = config
        .job_index(job)
        .ok_or_else(|| WhyError::UnknownJob { job: job.into() })?;
    let level = config.jobs[j].level_for_tasks;
    if !nodes.at_level(level).any(|n| nodes.list[n].name == node) {
        return Err(WhyError::NotATask {
            job: job.into(),
            node: node.into(),
            level: config.settings.levels.name(level).into(),
        });
    }
    if report
        .started
        .iter()
        .any(|s| s.job == job && s.node == node)
    {
        let no_command = crate::execution::runner::NoCommand { job: job.into() }.to_string();
        if report.usage_errors.contains(&no_command) {
            return Ok(answer("waiting", "no_command", no_command, Value::Null));
        }
        let message = "nothing stops it: a tick now would start it (where more tasks \
                       compete for free slots than fit, the policy's order decides which)"
            .to_string();
        return Ok(answer("would_start", "would_start", message, Value::Null));
    }
    if let Some(w) = most_telling(explained, j, |name| name == node) {
        let mut details =
            serde_json::to_value(w.to_json(config, nodes, report.now)).expect("serializes");
        let mut message = w.reason.describe(config, nodes, report.now);
        if let Some(blocker) = dependency_blocker(&report, explained, &w.reason, node) {
            message.push_str(&format!(" ({blocker})"));
            details["blocked_by"] = blocker.into();
        }
        return Ok(answer("waiting", w.reason.code(), message, details));
    }
    Ok(answer(
        "done",
        "done",
        "it will not run again unless its status is cleared (`daemon --clean-statuses` clears every status)".into(),
        Value::Null,
    ))
}

/// The waiting entry of `job` on a node whose name `matches` that says most: a name
/// under several parents (replicas) has an entry per replica, and a disabled or
/// filtered replica says less than the reason an eligible one waits.
fn most_telling(
    explained: &Explained,
    job: usize,
    matches: impl Fn(&str) -> bool,
) -> Option<&Waiting> {
    let vague = |w: &Waiting| match w.reason {
        WaitReason::NodeDisabled { .. } => 2,
        WaitReason::Filtered { .. } => 1,
        _ => 0,
    };
    explained
        .waiting
        .iter()
        .filter(|w| w.job == job && matches(&explained.nodes.list[w.node].name))
        .min_by_key(|w| vague(w))
}

/// What holds up the job a task waits for: that job's own state on the same node
/// (`depends_on`), or on one of its unfinished nodes
/// (`run_only_after_all_nodes_are_done_for`), so a dependency that can never finish
/// (filtered out, disabled, failed) is named as such.
fn dependency_blocker(
    report: &TickReport,
    explained: &Explained,
    reason: &WaitReason,
    node: &str,
) -> Option<String> {
    let (dep, same_node) = match reason {
        WaitReason::DependsOn { job } => (*job, true),
        WaitReason::AllNodesOf { job } => (*job, false),
        _ => return None,
    };
    let config = &explained.config;
    let name = config.jobs[dep].name.as_str();
    let on = |n: &str| !same_node || n == node;
    if let Some(t) = explained
        .running
        .iter()
        .find(|t| t.job == name && on(&t.node))
    {
        return Some(format!("{name}/{} is running", t.node));
    }
    if let Some(s) = report.started.iter().find(|s| s.job == name && on(&s.node)) {
        return Some(format!("{name}/{} starts at the next tick", s.node));
    }
    let w = most_telling(explained, dep, on)?;
    Some(format!(
        "{name}/{}: {}",
        explained.nodes.list[w.node].name,
        w.reason.describe(config, &explained.nodes, report.now)
    ))
}

/// The answer when no pass could run: no config, no nodes, or the scheduler is off.
fn blocked(
    report: &TickReport,
    answer: impl Fn(&'static str, &'static str, String, Value) -> Why,
) -> Why {
    if !report.config_errors.is_empty() && !report.using_last_good {
        let problems: Vec<String> = report
            .config_errors
            .iter()
            .map(|(at, m)| format!("{at}: {m}"))
            .collect();
        return answer(
            "waiting",
            "no_config",
            format!("no usable config: {}", problems.join("; ")),
            Value::Null,
        );
    }
    if let Some(e) = &report.nodes_error {
        return answer(
            "waiting",
            "nodes_error",
            format!("the nodes cannot be fetched: {e}"),
            Value::Null,
        );
    }
    answer(
        "waiting",
        "scheduler_disabled",
        "the scheduler is disabled: set \"enabled\": true in bistro_settings".into(),
        Value::Null,
    )
}
