//! Remote workers, scheduler side (bistro-runtime §5): the hub that keeps in touch
//! with the workers (through the protocol of [`crate::execution::remote`]) and the runner that
//! hands tasks to them.

pub mod hub;
mod runner;

pub use hub::{Hub, HubSettings, LateStatus};
pub use runner::{RemoteRunner, LOST_INVOCATION_KEY};

use crate::foundation::config::Config;
use crate::model::task::RunningTask;
use crate::scheduler::workers::WorkerSlots;

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
