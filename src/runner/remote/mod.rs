//! Remote workers, scheduler side (bistro-runtime §5): the protocol's messages, each
//! worker's health, the worker-set consensus that keeps a restarted scheduler from
//! starting a task twice, and the runner that hands tasks to workers.

pub mod health;
pub mod hub;
pub mod pool;
pub mod protocol;
mod runner;
pub mod worker_set;

pub use hub::{Hub, HubSettings, LateStatus};
pub use runner::{RemoteRunner, LOST_INVOCATION_KEY};

use crate::config::Config;
use crate::scheduler::workers::WorkerSlots;
use crate::task::RunningTask;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a runner that sends tasks to remote workers adds to [`super::TaskRunner`]:
/// the scheduler places each task on one of its workers, and hears of statuses that
/// arrive after their run was given up for lost.
pub trait WorkerPlacement {
    /// The workers this pass may place tasks on.
    fn workers(&mut self, config: &Config, running: &[RunningTask]) -> WorkerSlots;
    /// Hands back the workers after the pass (their round-robin positions persist).
    fn placed(&mut self, slots: WorkerSlots);
    /// Statuses reported for runs that had already ended (their worker was lost).
    fn late_statuses(&mut self) -> Vec<LateStatus>;
    /// The late statuses have been recorded (or dropped) durably: forget them.
    fn late_recorded(&mut self, late: &[LateStatus]);
    /// Lasting conditions the scheduler should report (e.g. waiting for workers).
    fn notes(&self) -> Vec<String>;
}

/// Identifies one scheduler or worker process instance (Bistro's `BistroInstanceID`):
/// its start time and a random number, so a restarted process is a new instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InstanceId {
    /// Epoch seconds when the process started.
    pub start_time: i64,
    /// Random 64 bits.
    pub rand: u64,
}

impl InstanceId {
    /// A fresh id for a process starting now.
    pub fn new() -> Self {
        Self {
            start_time: crate::now(),
            rand: rand::random(),
        }
    }
}

impl Default for InstanceId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:016x}", self.start_time, self.rand)
    }
}
