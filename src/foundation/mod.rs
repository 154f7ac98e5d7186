//! Foundations: the config file, statuses, clocks, terminal-safe text and error kinds.
//! Imports nothing above it.
//!
//! - [`error`]: the kinds of failure, which choose a command's exit code;
//! - [`time`]: clocks and dates;
//! - [`sanitize`]: terminal-safe strings and lenient JSON readers;
//! - [`status`]: status values, status lines and backoff;
//! - [`config`]: the JSON config file: settings and jobs.

pub mod config;
pub mod error;
#[cfg(test)]
pub(crate) mod fuzz;
pub mod sanitize;
pub mod status;
pub mod time;
