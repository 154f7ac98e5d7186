//! Remote workers, scheduler side (bistro-runtime §5): the protocol's messages, each
//! worker's health, the worker-set consensus that keeps a restarted scheduler from
//! starting a task twice, and the runner that hands tasks to workers.

pub mod health;
pub mod hub;
pub mod pool;
pub mod protocol;
mod runner;
pub mod worker_set;

pub use hub::{Hub, HubSettings};
pub use runner::{RemoteRunner, LOST_INVOCATION_KEY};

use serde::{Deserialize, Serialize};
use std::fmt;

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
