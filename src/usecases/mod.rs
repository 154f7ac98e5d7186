//! Use-cases: what the commands do, each as a function over a state directory: one
//! tick, the daemon, why, run-task, control, the worker, the status report.
//!
//! - [`context`]: what a command resolves from its flags and the state dir;
//! - [`report`]: the `status` document;
//! - [`tick`]: one scheduling iteration over the state directory;
//! - [`daemon`]: iterations in one long-running process;
//! - [`why`]: why one task is or is not running;
//! - [`plan`]: what applying a config file would do;
//! - [`run_task`]: one task now, in the foreground;
//! - [`control`]: killing tasks and forgiving failures from outside an iteration;
//! - [`worker`]: `bistro worker`, a remote worker that runs what a scheduler sends.

pub mod context;
pub mod control;
pub mod daemon;
pub mod plan;
pub mod report;
pub mod run_task;
pub mod tick;
pub mod why;
pub mod worker;
