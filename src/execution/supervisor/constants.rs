//! The numbers and signals a supervisor works by, shared by its event loop, its host
//! and the runners and killers that signal it.

use nix::sys::signal::Signal;
use std::time::Duration;

/// Longest line stored; longer output is cut into pieces of this size.
pub const MAX_LINE_BYTES: usize = 65000;

/// After the task's main process exits, how long its pipes may stay open (held by
/// background children) before the rest of its process group is killed.
pub const PIPE_GRACE: Duration = Duration::from_secs(3);

/// After the task's process group is killed, how long its buffered output may take to
/// reach the log, as long as it keeps coming (a process that left the group could
/// otherwise keep the supervisor forever).
pub const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// The signal [`super::kill::request_kill`] sends a supervisor after writing the
/// run's kill request: "look at your runs' kill requests".
pub const KILL_REQUEST_SIGNAL: Signal = Signal::SIGUSR2;

/// The signal a supervisor on a remote worker gets when the worker dies.
pub const WORKER_DEATH_SIGNAL: Signal = Signal::SIGUSR1;

/// The signals that ask a supervisor to stop: it kills its tasks, records them, exits.
pub const STOP_SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];
