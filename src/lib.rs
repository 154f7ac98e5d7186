//! bistro: a Rust re-implementation of Facebook's Bistro scheduler, shaped as a Unix
//! CLI toolkit over a locked state directory.
//!
//! Bistro runs *jobs* over *nodes* (data shards arranged in levels). Each (job, node)
//! pair is a *task*; a task may start only when every node on its path has free
//! *resource* slots. Tasks report one *status* line; failures back off.
//!
//! The crate is built in layers, bottom first; a module uses only its own layer and
//! the layers below it, never in a circle (`tests/layers.rs` checks both, and
//! ARCHITECTURE.md draws the picture):
//!
//! | layer | modules | owns |
//! |---|---|---|
//! | [`foundation`] | config, status, time, sanitize, error | the config file, status values and backoff, clocks, terminal-safe text, error kinds |
//! | [`model`] | nodes, cron, resources, task | node sources and levels, cron schedules, slot accounting, a task run's identity |
//! | [`scheduler`] | policies, explain, workers | the pure scheduling pass: what starts, what waits and why; no I/O |
//! | [`storage`] | state, store | the state directory, its lock and every file name in it; the SQLite databases |
//! | [`execution`] | runner, supervisor, remote, http | the `TaskRunner` plugin and its runners, the supervisor host, the remote protocol, the HTTP transport |
//! | [`usecases`] | context, tick, daemon, why, run_task, control, worker, report | what each command does, over a state directory |
//! | [`app`] | handlers, envelope, page, metrics | the REST API, the status page and metrics |
//! | [`cli`] | one module per subcommand | the `bistro` command line: flags in, exit code out |

#![deny(missing_docs)]

pub mod app;
pub mod cli;
pub mod execution;
pub mod foundation;
pub mod model;
pub mod scheduler;
pub mod storage;
pub mod usecases;
