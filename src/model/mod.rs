//! The model: nodes and their levels, cron schedules, resources and the identity of a
//! task run. Depends only on foundations.
//!
//! - [`cron`]: crontab items, the schedules of the `add_time` node source;
//! - [`nodes`]: node sources and levels;
//! - [`resources`]: limits and per-pass slot accounting;
//! - [`task`]: the identity of a task run.

pub mod cron;
pub mod nodes;
pub mod resources;
pub mod task;
