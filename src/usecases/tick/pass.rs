//! What one pass of an iteration works on: the config in force, its nodes, and the
//! tasks' statuses with the runs that ended recorded.

use crate::foundation::config::Config;
use crate::model::task::RunningTask;
use crate::scheduler::{PassInput, Statuses};
use crate::usecases::context::NodesSnapshot;
use std::sync::Arc;

/// What the pass of an iteration works on.
pub(super) struct Pass {
    /// The config in force.
    pub config: Config,
    /// The nodes of the config in force.
    pub nodes: Arc<NodesSnapshot>,
    /// The default task command.
    pub worker_command: Option<String>,
    /// The stored statuses and running tasks, ended runs recorded.
    pub tasks: Tasks,
}

impl Pass {
    /// The scheduler's view of this pass at `now`.
    pub fn input(&self, now: i64) -> PassInput<'_> {
        PassInput {
            config: &self.config,
            nodes: &self.nodes.nodes,
            statuses: &self.tasks.statuses,
            running: &self.tasks.running,
            now,
        }
    }
}

/// The statuses and running tasks a pass schedules with, as of the database's
/// `data_version` when they were read.
pub(super) struct Tasks {
    /// The database's version when they were read.
    pub data_version: i64,
    /// The statuses.
    pub statuses: Statuses,
    /// The running tasks.
    pub running: Vec<RunningTask>,
}
