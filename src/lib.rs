//! bistro: a Rust re-implementation of Facebook's Bistro scheduler, shaped as a Unix
//! CLI toolkit over a locked state directory.
//!
//! Bistro runs *jobs* over *nodes* (data shards arranged in levels). Each (job, node)
//! pair is a *task*; a task may start only when every node on its path has free
//! *resource* slots. Tasks report one *status* line; failures back off. One module per
//! Bistro concept:
//!
//! - [`config`]: the JSON config file, settings and jobs;
//! - [`nodes`]: node sources and levels;
//! - [`cron`]: crontab items, the schedules of the `add_time` node source;
//! - [`resources`]: limits and per-pass slot accounting;
//! - [`status`]: status values, parsing and backoff;
//! - [`scheduler`]: the pure scheduling pass and its policies;
//! - [`task`]: the identity of a task run;
//! - [`store`]: the SQLite status and task-log databases;
//! - [`runner`]: the task runner plugin: how the scheduler starts tasks and learns how
//!   they ended, locally or on remote workers;
//! - [`supervisor`]: the supervisor of task processes (`bistro supervise`);
//! - [`remote`]: the protocol between a scheduler and its remote workers;
//! - [`state`]: the state directory and its lock;
//! - [`context`]: what a command resolves from its flags and the state dir;
//! - [`tick`]: one scheduling iteration over the state directory;
//! - [`daemon`]: iterations in one long-running process;
//! - [`control`]: killing tasks and forgiving failures from outside an iteration;
//! - [`why`]: why one task is or is not running;
//! - [`worker`]: `bistro worker`, a remote worker that runs what a scheduler sends;
//! - [`run_task`]: one task now, in the foreground;
//! - [`report`]: the `status` document;
//! - [`http`]: the HTTP transport: wire format, server, client, tokens, worker calls;
//! - [`app`]: the REST API, status page and metrics, over [`http`];
//! - [`sanitize`], [`time`]: terminal-safe strings, lenient JSON readers, clocks and dates;
//! - [`error`]: the kinds of failure, which choose a command's exit code;
//! - [`cli`]: the `bistro` command line.

#![deny(missing_docs)]

pub mod app;
pub mod cli;
pub mod config;
pub mod context;
pub mod control;
pub mod cron;
pub mod daemon;
pub mod error;
pub mod http;
pub mod nodes;
pub mod remote;
pub mod report;
pub mod resources;
pub mod run_task;
pub mod runner;
pub mod sanitize;
pub mod scheduler;
pub mod state;
pub mod status;
pub mod store;
pub mod supervisor;
pub mod task;
pub mod tick;
pub mod time;
pub mod why;
pub mod worker;

pub use time::now;
