//! Execution: the `TaskRunner` plugin and its runners, the supervisor host that keeps
//! tasks alive, the remote protocol, and the HTTP transport and client.
//!
//! - [`http`]: the HTTP transport: wire format, server, client, tokens, worker calls;
//! - [`remote`]: the protocol between a scheduler and its remote workers;
//! - [`supervisor`]: the supervisor host of task processes (`bistro supervise`);
//! - [`runner`]: the `TaskRunner` plugin: local, simulated and remote runners.

pub mod http;
pub mod remote;
pub mod runner;
pub mod supervisor;
