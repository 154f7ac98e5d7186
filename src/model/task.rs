//! The identity of a task and of one run of it (an invocation).

use crate::foundation::status::BackoffDuration;
use crate::model::resources::NodeCharge;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Identifies one run of a task: the scheduler's start time plus a random number, so a
/// late report from an old run can never be mistaken for the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InvocationId {
    /// Epoch seconds when the run was started.
    pub start_time: i64,
    /// Random 64 bits.
    pub rand: u64,
}

impl InvocationId {
    /// A fresh id for a run starting at `start_time`.
    pub fn new(start_time: i64) -> Self {
        Self {
            start_time,
            rand: rand::random(),
        }
    }

    /// Parses the [`Display`](fmt::Display) form.
    pub fn parse(s: &str) -> Option<Self> {
        let (time, rand) = s.split_once('-')?;
        Some(Self {
            start_time: time.parse().ok()?,
            rand: u64::from_str_radix(rand, 16).ok()?,
        })
    }
}

impl fmt::Display for InvocationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:016x}", self.start_time, self.rand)
    }
}

/// A task that a supervisor is running, as recorded before it was started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningTask {
    /// Job name.
    pub job: String,
    /// Node name.
    pub node: String,
    /// This run's id.
    pub invocation: InvocationId,
    /// Resources held, frozen at start time.
    pub charges: Vec<NodeCharge>,
    /// The backoff step a failure of this run gets (computed at start, as in Bistro).
    pub next_backoff: BackoffDuration,
    /// How many times the task has been started, this run included.
    pub attempts: i64,
    /// Who runs it: `local` or a worker's shard id.
    pub worker_shard: String,
    /// The job's `task_timeout_sec` when the run started (None: no limit), so that a
    /// later process (`why`, a runner that did not start it) knows its deadline.
    /// Absent from runs recorded before timeouts existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_sec: Option<u64>,
}

impl RunningTask {
    /// The epoch second at which the run times out, if its job has a timeout.
    pub fn timeout_at(&self) -> Option<i64> {
        let secs = i64::try_from(self.timeout_sec?).unwrap_or(i64::MAX);
        Some(self.invocation.start_time.saturating_add(secs))
    }
}
