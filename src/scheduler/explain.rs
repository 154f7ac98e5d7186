//! Why a task is not running: the reasons `tick --dry-run` (and later `bistro why`)
//! print for every waiting task.

use super::{PassInput, Plan};
use crate::resources::Shortage;
use serde_json::{json, Value};

/// Why a task does not start in this pass.
#[derive(Debug, Clone, PartialEq)]
pub enum WaitReason {
    /// Already running (not reported as waiting).
    Running,
    /// Done (not reported as waiting).
    Done,
    /// The job is disabled.
    JobDisabled,
    /// The job has config errors.
    JobInvalid,
    /// Failed permanently; `forgive` releases it.
    Failed,
    /// Backing off until this epoch second.
    Backoff {
        /// When the backoff ends.
        until: i64,
    },
    /// The node or an ancestor is disabled.
    NodeDisabled {
        /// The disabled node.
        node: String,
    },
    /// A job filter excludes the node or an ancestor.
    Filtered {
        /// The filter's level.
        level: String,
        /// The rejected node.
        node: String,
        /// Which part of the filter rejected it.
        filter: &'static str,
    },
    /// A `depends_on` job is not done on this node.
    DependsOn {
        /// The job it waits for.
        job: String,
    },
    /// A `run_only_after_all_nodes_are_done_for` job is not done everywhere.
    AllNodesOf {
        /// The job it waits for.
        job: String,
    },
    /// Not enough of a resource on a node of its path.
    Resource {
        /// The node short of slots.
        node: String,
        /// The node's level.
        level: String,
        /// The resource.
        resource: String,
        /// What the job needs.
        need: i64,
        /// Slots in use.
        used: i64,
        /// The level's limit.
        limit: i64,
        /// `job/node` of the tasks holding it (running or starting in this pass).
        holders: Vec<String>,
    },
}

/// A task that waits, with its reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    /// Index into `config.jobs`.
    pub job: usize,
    /// Index into `nodes.list`.
    pub node: usize,
    /// Why.
    pub reason: WaitReason,
}

impl WaitReason {
    /// A short stable code for scripts.
    pub fn code(&self) -> &'static str {
        match self {
            WaitReason::Running => "running",
            WaitReason::Done => "done",
            WaitReason::JobDisabled => "job_disabled",
            WaitReason::JobInvalid => "job_invalid",
            WaitReason::Failed => "failed",
            WaitReason::Backoff { .. } => "backoff",
            WaitReason::NodeDisabled { .. } => "node_disabled",
            WaitReason::Filtered { .. } => "filtered",
            WaitReason::DependsOn { .. } => "depends_on",
            WaitReason::AllNodesOf { .. } => "run_only_after_all_nodes_are_done_for",
            WaitReason::Resource { .. } => "resources",
        }
    }

    /// One sentence for humans.
    pub fn describe(&self, now: i64) -> String {
        match self {
            WaitReason::Running => "already running".into(),
            WaitReason::Done => "done".into(),
            WaitReason::JobDisabled => "the job is disabled (\"enabled\": false)".into(),
            WaitReason::JobInvalid => "the job has config errors (see `bistro check`)".into(),
            WaitReason::Failed => "failed permanently; `bistro forgive` releases it".into(),
            WaitReason::Backoff { until } => {
                format!("backing off for {}s more (until {until})", until - now)
            }
            WaitReason::NodeDisabled { node } => format!("node {node} is disabled"),
            WaitReason::Filtered {
                level,
                node,
                filter,
            } => format!("the job's {level} filter ({filter}) excludes node {node}"),
            WaitReason::DependsOn { job } => format!("depends on job {job}, not done on this node"),
            WaitReason::AllNodesOf { job } => {
                format!("waits until job {job} is done on all its nodes")
            }
            WaitReason::Resource {
                node,
                level,
                resource,
                need,
                used,
                limit,
                holders,
            } => {
                let held = if holders.is_empty() {
                    String::new()
                } else {
                    format!("; held by {}", holders.join(", "))
                };
                format!(
                    "needs {need} {resource} on {level} node {node}, {used}/{limit} in use{held}"
                )
            }
        }
    }

    /// The JSON form for `--json`.
    pub fn to_json(&self, now: i64) -> Value {
        let mut out = json!({"reason": self.code(), "message": self.describe(now)});
        let extra = match self {
            WaitReason::Backoff { until } => json!({"backoff_until": until}),
            WaitReason::NodeDisabled { node } => json!({"disabled_node": node}),
            WaitReason::Filtered {
                level,
                node,
                filter,
            } => json!({"level": level, "filtered_node": node, "filter": filter}),
            WaitReason::DependsOn { job } | WaitReason::AllNodesOf { job } => {
                json!({"waits_for_job": job})
            }
            WaitReason::Resource {
                node,
                level,
                resource,
                need,
                used,
                limit,
                holders,
            } => json!({
                "resource_node": node, "level": level, "resource": resource, "need": need,
                "used": used, "limit": limit, "holders": holders,
            }),
            _ => json!({}),
        };
        if let (Some(out), Some(extra)) = (out.as_object_mut(), extra.as_object()) {
            out.extend(extra.clone());
        }
        out
    }
}

/// Turns resource shortages into waiting reasons naming the tasks that hold the slots.
pub(super) fn add_shortages(
    plan: &mut Plan,
    input: &PassInput,
    shortages: Vec<(usize, usize, Shortage)>,
) {
    let settings = &input.config.settings;
    for (job, node, s) in shortages {
        let short = &input.nodes.list[s.node];
        let level = settings.levels.name(short.level).to_string();
        let resource = settings.resources.names[s.resource].clone();
        let holds = |charges: &[crate::resources::NodeCharge]| {
            charges.iter().any(|c| {
                c.level == level
                    && c.node == short.name
                    && c.amounts.iter().any(|(r, a)| *r == resource && *a > 0)
            })
        };
        let mut holders: Vec<String> = input
            .running
            .iter()
            .filter(|t| holds(&t.charges))
            .map(|t| format!("{}/{}", t.job, t.node))
            .collect();
        holders.extend(plan.starts.iter().filter(|p| holds(&p.charges)).map(|p| {
            format!(
                "{}/{} (starting)",
                input.config.jobs[p.job].name, input.nodes.list[p.node].name
            )
        }));
        let reason = WaitReason::Resource {
            node: short.name.clone(),
            level,
            resource,
            need: s.need,
            used: s.limit - s.free,
            limit: s.limit,
            holders,
        };
        plan.waiting.push(super::Waiting { job, node, reason });
    }
}
