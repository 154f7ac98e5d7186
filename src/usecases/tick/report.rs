//! What a tick tells its caller: the tasks it recorded, started and killed, the
//! problems it saw (as [`Diagnostic`]s), and with `--dry-run` why every other task
//! waits.

use crate::foundation::config::Config;
use crate::model::nodes::Nodes;
use crate::model::task::RunningTask;
use crate::scheduler::{Statuses, Waiting};

/// A finished task as a tick recorded it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FinishedTask {
    /// Job name.
    pub job: String,
    /// Node name.
    pub node: String,
    /// `done`, `incomplete`, `error_backoff` or `failed`.
    pub status: &'static str,
    /// The exception, if any.
    pub message: Option<String>,
}

/// A task a tick started (or, with `--dry-run`, would start).
#[derive(Debug, Clone, serde::Serialize)]
pub struct StartedTask {
    /// Job name.
    pub job: String,
    /// Node name.
    pub node: String,
    /// The run's id (absent in a dry run).
    pub invocation: Option<String>,
}

/// An orphan a tick killed (`kill_orphan_tasks_after_sec`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct KilledOrphan {
    /// Job name.
    pub job: String,
    /// Node name.
    pub node: String,
    /// Why it is an orphan.
    pub reason: String,
}

/// What a tick did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TickReport {
    /// Epoch seconds.
    pub now: i64,
    /// The config file read.
    pub config: String,
    /// Problems with the config file (the last good config was used if there is one).
    pub config_errors: Vec<(String, String)>,
    /// Problems inside jobs (those jobs do not run).
    pub job_errors: Vec<(String, String)>,
    /// `bistro_settings.enabled`.
    pub scheduler_enabled: bool,
    /// The file is unusable and the last good config was used instead.
    pub using_last_good: bool,
    /// How the config changed since the last good one (`added job x`, ...).
    pub config_changes: Vec<String>,
    /// Why nodes could not be fetched.
    pub nodes_error: Option<String>,
    /// Tasks whose status was recorded.
    pub finished: Vec<FinishedTask>,
    /// Tasks started.
    pub started: Vec<StartedTask>,
    /// Tasks that could not be started.
    pub start_errors: Vec<String>,
    /// Tasks that cannot start until the command line changes (no command for a job).
    pub usage_errors: Vec<String>,
    /// Orphans (tasks whose job or node no longer wants them) asked to die.
    pub orphans_killed: Vec<KilledOrphan>,
    /// Orphans that could not be signalled.
    pub kill_errors: Vec<String>,
    /// Lasting conditions the runner reports (e.g. a restarted scheduler waiting for
    /// its remote workers before it starts anything).
    pub runner_notes: Vec<String>,
    /// Tasks running after the tick.
    pub running: usize,
    /// How long a daemon waits before the next iteration.
    pub wait_ms: u64,
    /// With `--dry-run`: why each other task waits.
    #[serde(skip)]
    pub explained: Option<Explained>,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

/// Something a tick's user should be told, in words (not yet escaped for a terminal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// What happened or is wrong.
    pub message: String,
    /// A condition that lasts until someone acts (a config or node problem), as
    /// opposed to an event of this tick (a failed start, a killed orphan).
    pub lasting: bool,
}

impl TickReport {
    /// An empty report of an iteration at `now` (epoch seconds).
    pub(super) fn new(now: i64, dry_run: bool) -> Self {
        TickReport {
            now,
            dry_run,
            ..Default::default()
        }
    }

    /// The problems and notable events of this tick, for `tick` to print and the
    /// daemon to log.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        let lasting = |message: String| Diagnostic {
            message,
            lasting: true,
        };
        let event = |message: String| Diagnostic {
            message,
            lasting: false,
        };
        let mut out: Vec<Diagnostic> = self
            .config_errors
            .iter()
            .map(|(at, m)| lasting(format!("config error: {at}: {m}")))
            .collect();
        if self.using_last_good {
            out.push(lasting("the last good config stays in force until the file is fixed (`bistro check` lists every problem)".into()));
        } else if !self.config_errors.is_empty() {
            out.push(lasting("no config is in force: nothing new starts until the file is fixed (`bistro check` lists every problem)".into()));
        }
        out.extend(
            self.job_errors
                .iter()
                .map(|(at, m)| lasting(format!("job error (the job will not run): {at}: {m}"))),
        );
        out.extend(
            self.nodes_error
                .iter()
                .map(|e| lasting(format!("cannot fetch nodes, nothing new starts: {e}"))),
        );
        out.extend(self.usage_errors.iter().cloned().map(lasting));
        out.extend(self.runner_notes.iter().cloned().map(lasting));
        out.extend(
            self.start_errors
                .iter()
                .map(|e| event(format!("cannot start task: {e}"))),
        );
        out.extend(
            self.kill_errors
                .iter()
                .map(|e| event(format!("cannot kill orphan: {e}"))),
        );
        out.extend(
            self.orphans_killed
                .iter()
                .map(|k| event(format!("killed orphan {}/{}: {}", k.job, k.node, k.reason))),
        );
        out
    }
}

/// A dry run's waiting tasks, with the config and nodes their reasons refer to.
#[derive(Debug, Clone)]
pub struct Explained {
    /// The config the pass used.
    pub config: Config,
    /// The nodes the pass used.
    pub nodes: Nodes,
    /// Every task that neither runs nor would start, with its reason.
    pub waiting: Vec<Waiting>,
    /// The tasks the pass saw running.
    pub running: Vec<RunningTask>,
    /// Indices into `running` of the tasks the config or nodes no longer want.
    pub orphans: Vec<usize>,
    /// The statuses the pass saw, finished runs included.
    pub statuses: Statuses,
}
