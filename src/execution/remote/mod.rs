//! The remote-worker protocol (bistro-runtime §5), shared by the scheduler's remote
//! runner and `bistro worker`: the messages, each worker's health, the worker-set
//! consensus that keeps a restarted scheduler from starting a task twice, the pool of
//! workers a scheduler keeps, and the identity of a process instance.

pub mod health;
pub mod pool;
pub mod protocol;
pub mod worker_set;

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
            start_time: crate::foundation::time::now(),
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
