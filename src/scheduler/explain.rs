//! Why a task is not running: the reasons `tick --dry-run` prints for every waiting
//! task. Reasons hold job, node and resource indices, not names, so explaining a
//! million waiting tasks stays cheap; they are rendered against the config and nodes
//! they came from.

use super::{PassInput, Plan};
use crate::foundation::config::Config;
use crate::model::nodes::Nodes;
use crate::model::resources::Shortage;
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::sync::Arc;

/// At most this many holders of a resource are named; the rest are counted.
const MAX_HOLDERS: usize = 5;

/// The tasks holding a resource on a node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Holders {
    /// The first few, as `job/node` (`(starting)` for tasks starting in this pass).
    pub named: Vec<String>,
    /// How many there are in all.
    pub total: usize,
}

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
        /// The disabled node (index into the nodes).
        node: usize,
    },
    /// A job filter excludes the node or an ancestor.
    Filtered {
        /// The rejected node (index into the nodes).
        node: usize,
        /// Which part of the filter rejected it.
        filter: &'static str,
    },
    /// A `depends_on` job is not done on this node.
    DependsOn {
        /// The job it waits for (index into the jobs).
        job: usize,
    },
    /// A `run_only_after_all_nodes_are_done_for` job is not done everywhere.
    AllNodesOf {
        /// The job it waits for (index into the jobs).
        job: usize,
    },
    /// Not enough of a resource on a node of its path.
    Resource {
        /// The node short of slots (index into the nodes).
        node: usize,
        /// The resource id.
        resource: usize,
        /// What the job needs.
        need: i64,
        /// Slots in use.
        used: i64,
        /// The level's limit.
        limit: i64,
        /// The tasks holding it, shared by every task waiting on the same slots.
        holders: Arc<Holders>,
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

/// The JSON form of a waiting task (`tick --dry-run --json`).
#[derive(Debug, Serialize)]
pub struct WaitingJson<'a> {
    /// Job name.
    pub job: &'a str,
    /// Node name.
    pub node: &'a str,
    /// A stable reason code.
    pub reason: &'static str,
    /// One sentence for humans.
    pub message: String,
    /// When the backoff ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_until: Option<i64>,
    /// The disabled node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_node: Option<&'a str>,
    /// The node a filter rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filtered_node: Option<&'a str>,
    /// The filter part that rejected it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<&'static str>,
    /// The job it waits for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waits_for_job: Option<&'a str>,
    /// The level of the filtered or short node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<&'a str>,
    /// The node short of a resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_node: Option<&'a str>,
    /// The resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<&'a str>,
    /// What the job needs of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub need: Option<i64>,
    /// What is in use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used: Option<i64>,
    /// The limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// The first few holders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holders: Option<&'a [String]>,
    /// How many holders in all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holders_total: Option<usize>,
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

    /// Does `other` surely read as this one? A cheap test, true only for waits on the
    /// same slots with the same holders (as the many tasks waiting on one node's
    /// slots do), so a long listing describes each such wait once.
    pub fn same_message_as(&self, other: &WaitReason) -> bool {
        match (self, other) {
            (
                WaitReason::Resource {
                    node,
                    resource,
                    need,
                    used,
                    limit,
                    holders,
                },
                WaitReason::Resource {
                    node: node2,
                    resource: resource2,
                    need: need2,
                    used: used2,
                    limit: limit2,
                    holders: holders2,
                },
            ) => {
                (node, resource, need, used, limit) == (node2, resource2, need2, used2, limit2)
                    && Arc::ptr_eq(holders, holders2)
            }
            _ => false,
        }
    }

    /// One sentence for humans.
    pub fn describe(&self, config: &Config, nodes: &Nodes, now: i64) -> String {
        let name = |i: usize| nodes.list[i].name.as_str();
        let level = |i: usize| config.settings.levels.name(nodes.list[i].level);
        match self {
            WaitReason::Running => "already running".into(),
            WaitReason::Done => "done".into(),
            WaitReason::JobDisabled => "the job is disabled (\"enabled\": false)".into(),
            WaitReason::JobInvalid => "the job has config errors (see `bistro check`)".into(),
            WaitReason::Failed => {
                "failed permanently (it reported failed, or its backoff list ran out); \
                 `bistro forgive` lets it run again"
                    .into()
            }
            WaitReason::Backoff { until } => {
                format!(
                    "backing off for {}s more (until {})",
                    until - now,
                    crate::foundation::time::rfc3339(*until)
                )
            }
            WaitReason::NodeDisabled { node } => format!("node {} is disabled", name(*node)),
            WaitReason::Filtered { node, filter } => {
                format!(
                    "the job's {} filter ({filter}) excludes node {}",
                    level(*node),
                    name(*node)
                )
            }
            WaitReason::DependsOn { job } => {
                format!(
                    "depends on job {}, not done on this node",
                    config.jobs[*job].name
                )
            }
            WaitReason::AllNodesOf { job } => {
                format!(
                    "waits until job {} is done on all its nodes",
                    config.jobs[*job].name
                )
            }
            WaitReason::Resource {
                node,
                resource,
                need,
                used,
                limit,
                holders,
            } => {
                let mut held = String::new();
                if holders.total > 0 {
                    held = format!("; held by {}", holders.named.join(", "));
                    if holders.total > holders.named.len() {
                        held.push_str(&format!(
                            " and {} more",
                            holders.total - holders.named.len()
                        ));
                    }
                }
                format!(
                    "needs {need} {} on {} node {}, {used}/{limit} in use{held}",
                    config.settings.resources.names[*resource],
                    level(*node),
                    name(*node)
                )
            }
        }
    }
}

impl Waiting {
    /// The JSON form, rendered against the pass's config and nodes.
    pub fn to_json<'a>(
        &'a self,
        config: &'a Config,
        nodes: &'a Nodes,
        now: i64,
    ) -> WaitingJson<'a> {
        let name = |i: usize| nodes.list[i].name.as_str();
        let level = |i: usize| config.settings.levels.name(nodes.list[i].level);
        let mut out = WaitingJson {
            job: &config.jobs[self.job].name,
            node: name(self.node),
            reason: self.reason.code(),
            message: self.reason.describe(config, nodes, now),
            backoff_until: None,
            disabled_node: None,
            filtered_node: None,
            filter: None,
            waits_for_job: None,
            level: None,
            resource_node: None,
            resource: None,
            need: None,
            used: None,
            limit: None,
            holders: None,
            holders_total: None,
        };
        match &self.reason {
            WaitReason::Backoff { until } => out.backoff_until = Some(*until),
            WaitReason::NodeDisabled { node } => out.disabled_node = Some(name(*node)),
            WaitReason::Filtered { node, filter } => {
                out.filtered_node = Some(name(*node));
                out.level = Some(level(*node));
                out.filter = Some(filter);
            }
            WaitReason::DependsOn { job } | WaitReason::AllNodesOf { job } => {
                out.waits_for_job = Some(&config.jobs[*job].name)
            }
            WaitReason::Resource {
                node,
                resource,
                need,
                used,
                limit,
                holders,
            } => {
                out.resource_node = Some(name(*node));
                out.level = Some(level(*node));
                out.resource = Some(&config.settings.resources.names[*resource]);
                (out.need, out.used, out.limit) = (Some(*need), Some(*used), Some(*limit));
                out.holders = Some(&holders.named);
                out.holders_total = Some(holders.total);
            }
            _ => {}
        }
        out
    }
}

/// Turns resource shortages into waiting reasons naming the tasks that hold the slots.
/// Holders are indexed once and shared, so this is linear in shortages and charges.
pub(super) fn add_shortages(
    plan: &mut Plan,
    input: &PassInput,
    shortages: Vec<(usize, usize, Shortage)>,
) {
    // (level, node name, resource) -> holders, from running tasks then starts.
    let mut index: FxHashMap<(usize, &str, usize), Holders> = FxHashMap::default();
    fn hold<'a>(
        index: &mut FxHashMap<(usize, &'a str, usize), Holders>,
        input: &PassInput,
        at: (&str, &'a str, &str),
        holder: String,
    ) {
        let settings = &input.config.settings;
        let (Some(level), Some(resource)) = (settings.levels.id(at.0), settings.resources.id(at.2))
        else {
            return;
        };
        let h = index.entry((level, at.1, resource)).or_default();
        h.total += 1;
        if h.named.len() < MAX_HOLDERS {
            h.named.push(holder);
        }
    }
    fn held(
        charges: &[crate::model::resources::NodeCharge],
    ) -> impl Iterator<Item = (&str, &str, &str)> {
        charges.iter().flat_map(|c| {
            c.amounts
                .iter()
                .filter(|(_, a)| *a > 0)
                .map(move |(r, _)| (c.level.as_str(), c.node.as_str(), r.as_str()))
        })
    }
    for t in input.running {
        for at in held(&t.charges) {
            hold(&mut index, input, at, format!("{}/{}", t.job, t.node));
        }
    }
    for p in &plan.starts {
        let holder = format!(
            "{}/{} (starting)",
            input.config.jobs[p.job].name, input.nodes.list[p.node].name
        );
        for at in held(&p.charges) {
            hold(&mut index, input, at, holder.clone());
        }
    }
    // Keyed by indices with a cheap hash: there is one lookup per waiting task.
    let mut shared: FxHashMap<(usize, usize), Arc<Holders>> = FxHashMap::default();
    for (job, node, s) in shortages {
        let holders = shared
            .entry((s.node, s.resource))
            .or_insert_with(|| {
                let short = &input.nodes.list[s.node];
                Arc::new(
                    index
                        .get(&(short.level, short.name.as_str(), s.resource))
                        .cloned()
                        .unwrap_or_default(),
                )
            })
            .clone();
        let reason = WaitReason::Resource {
            node: s.node,
            resource: s.resource,
            need: s.need,
            used: s.limit - s.free,
            limit: s.limit,
            holders,
        };
        plan.waiting.push(Waiting { job, node, reason });
    }
}
