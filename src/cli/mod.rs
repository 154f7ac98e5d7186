//! The `bistro` command line: argument definitions and one module per subcommand.
//! Data goes to stdout, diagnostics to stderr; exit codes are in [`ExitCode`].

/// Writes one diagnostic line to stderr, as `eprintln!` does, but never panics: a
/// closed stderr (`bistro daemon 2>&1 | grep -m1 listening`) loses the line, not the
/// command.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod check;
mod control;
mod daemon;
mod docs;
mod error;
mod init;
mod logging;
mod logs;
mod plan;
mod run_task;
mod seed_flags;
mod serve_http;
mod signals;
mod status;
mod supervise;
mod tick;
mod why;
mod worker;

pub use error::{error_message, CliError};
pub use seed_flags::parse;

use crate::execution::runner::{LocalRunner, SimulatedRunner, Simulation, TaskRunner};
use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The process exit codes users' scripts may rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Success.
    Success = 0,
    /// A runtime failure.
    Failure = 1,
    /// A usage or configuration error.
    Usage = 2,
    /// The state dir is locked by another tick; try again later.
    Locked = 75,
}

/// Exit code for "interrupted by signal N".
pub fn signal_exit(signal: i32) -> i32 {
    128 + signal
}

const ABOUT: &str = "Bistro, the sharded-job scheduler, as a Unix toolkit over a state directory.

Jobs run over nodes (data shards arranged in levels); each (job, node) is a task that \
starts only when every node on its path has free resource slots. Drive it from cron \
with `bistro tick`, inspect it with `bistro status` and `bistro logs`.";

const AFTER_HELP: &str = "Examples:
  bistro init                                  # state dir with the demo config
  bistro tick --worker-command ./task.sh       # one scheduling iteration
  * * * * * bistro --state-dir /srv/bistro tick --quiet   # from cron
  bistro status --json | jq '.jobs[].counts'
  bistro logs --job simple_job --stream stderr

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error,
3/4 `status --check`: work remains / only permanent failures remain,
75 state dir locked by another tick (try again later), 128+N run-task interrupted by signal N.";

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(name = "bistro", version, about = ABOUT, after_help = AFTER_HELP, max_term_width = 100)]
pub struct Cli {
    /// The state directory (created by `init`, `tick`, `daemon` and `run-task`).
    #[arg(
        long,
        global = true,
        env = "BISTRO_STATE_DIR",
        default_value = "bistro-state",
        value_name = "DIR"
    )]
    pub state_dir: PathBuf,
    /// The config file [default: the one `tick` last used, else STATE/config.json].
    #[arg(long, global = true, env = "BISTRO_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// When to use colour (nothing is coloured when stdout is not a terminal).
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto, value_name = "WHEN")]
    pub color: Color,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    /// Colour on a terminal unless NO_COLOR is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Flags shared by the commands that run tasks.
#[derive(Debug, Clone, Args)]
pub struct RunFlags {
    /// Command run for each task as `CMD NODE STATUS_FILE JSON` (a job's "command"
    /// overrides it); remembered for later ticks.
    #[arg(long, value_name = "CMD")]
    pub worker_command: Option<String>,
    /// Name of the root instance node [default: remembered, else the host name].
    #[arg(long, value_name = "NAME")]
    pub instance_node_name: Option<String>,
    /// Wait up to SECS for the state lock instead of exiting 75 at once.
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = parse_seconds)]
    pub wait_lock: std::time::Duration,
}

/// Flags shared by the commands that run scheduling iterations (`tick`, `daemon`).
#[derive(Debug, Clone, Args)]
pub struct IterationFlags {
    /// Task log lines older than SECS are deleted (default 30 days).
    #[arg(long, value_name = "SECS", default_value_t = 2_592_000)]
    log_retention: i64,
    /// Seconds between log prunes; 0 disables pruning.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    log_prune_frequency: i64,
    /// Reuse the nodes fetched by an earlier iteration for this long (node scripts do
    /// not rerun); a change of node sources, levels or instance name refetches at once.
    #[arg(long, value_name = "MS", default_value_t = 300_000)]
    nodes_update_ms: i64,
}

impl IterationFlags {
    /// What each iteration does, from these flags, `run` and the global ones.
    fn tick_options(&self, cli: &Cli, run: &RunFlags) -> crate::usecases::tick::TickOptions {
        crate::usecases::tick::TickOptions {
            flags: crate::usecases::context::RunFlags {
                config: cli.config.clone(),
                worker_command: run.worker_command.clone(),
                instance_node_name: run.instance_node_name.clone(),
                runner: None,
            },
            dry_run: false,
            log_retention_secs: self.log_retention,
            log_prune_frequency_secs: self.log_prune_frequency,
            nodes_update_ms: self.nodes_update_ms,
            config_update_ms: 0,
            on_workers: false,
        }
    }
}

/// Flags that choose what runs the tasks (`tick`, `daemon`): `--runner`, or simulated
/// runs instead of task processes (named as Bistro's benchmark flags).
#[derive(Debug, Clone, Args)]
pub struct SimulationFlags {
    /// Start no processes: each task ends after a random time and reports `done` (or
    /// `error_backoff` "testing"), to measure the scheduler itself. Statuses are
    /// recorded as usual; the command is never run.
    #[arg(long)]
    pub benchmark_run: bool,
    /// With --benchmark-run: the mean run length; runs take 0..2x MS, uniformly.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 5000,
        requires = "benchmark_run"
    )]
    test_task_duration: u64,
    /// With --benchmark-run: the probability (0 to 1) that a run fails with
    /// `error_backoff` "testing".
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability,
          requires = "benchmark_run")]
    test_failure_rate: f64,
    /// Where tasks run: `local` (on this machine), `remote` (bistro's remote workers;
    /// daemon only) or `slurm` (submitted to the Slurm cluster SLURM_CONF names);
    /// remembered for later ticks [default: remembered, else as before: local for a
    /// tick, and for a daemon local with --worker-command or --local, else remote].
    #[arg(
        long,
        value_enum,
        value_name = "WHERE",
        conflicts_with = "benchmark_run"
    )]
    pub runner: Option<RunnerKind>,
}

/// `--runner`: where tasks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunnerKind {
    /// On this machine, under supervisors.
    Local,
    /// On bistro's remote workers (a daemon only).
    Remote,
    /// On a Slurm cluster.
    Slurm,
}

impl RunnerKind {
    /// The name remembered in the state dir.
    fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Remote => "remote",
            Self::Slurm => "slurm",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [Self::Local, Self::Remote, Self::Slurm]
            .into_iter()
            .find(|k| k.name() == name)
    }
}

impl SimulationFlags {
    /// `--runner`, else the one a tick or daemon last remembered (None for a
    /// simulation, or when neither says).
    fn runner_kind(
        &self,
        state: &crate::storage::state::StateDir,
    ) -> anyhow::Result<Option<RunnerKind>> {
        if self.benchmark_run || self.runner.is_some() {
            return Ok(self.runner);
        }
        let db = state.statuses_db();
        if !db.exists() {
            return Ok(None);
        }
        let store = crate::storage::store::StatusStore::open(&db)
            .with_context(|| format!("reading the remembered --runner from {}", db.display()))?;
        let remembered = store.meta(crate::usecases::context::keys::RUNNER)?;
        Ok(remembered.as_deref().and_then(RunnerKind::parse))
    }

    /// The runner these flags ask for: simulated, Slurm, or processes under
    /// supervisors (`kind` as [`Self::runner_kind`] resolved it; `remote` is the
    /// daemon's to build).
    fn runner(
        &self,
        state: &crate::storage::state::StateDir,
        kind: Option<RunnerKind>,
    ) -> anyhow::Result<Box<dyn TaskRunner>> {
        if self.benchmark_run {
            return Ok(Box::new(SimulatedRunner::new(Simulation {
                task_duration_ms: self.test_task_duration,
                failure_rate: self.test_failure_rate,
            })));
        }
        if kind == Some(RunnerKind::Slurm) {
            return Ok(Box::new(crate::execution::runner::SlurmRunner::new(
                state.clone(),
                Box::new(crate::execution::runner::slurm::SlurmCli),
            )));
        }
        let exe =
            std::env::current_exe().context("finding the bistro binary to run supervisors")?;
        Ok(Box::new(LocalRunner::new(state.clone(), exe)))
    }
}

/// A flag's value out of its range.
#[derive(Debug, thiserror::Error)]
enum BadValue {
    /// Not a probability.
    #[error("expected a probability between 0 and 1, got {0:?}")]
    Probability(String),
    /// Not a number of seconds in range.
    #[error("expected a number of seconds between 0 and 1000000, got {0:?}")]
    Seconds(String),
}

/// Parses a probability, from 0 to 1.
fn parse_probability(text: &str) -> Result<f64, BadValue> {
    text.parse::<f64>()
        .ok()
        .filter(|p| (0.0..=1.0).contains(p))
        .ok_or_else(|| BadValue::Probability(text.to_string()))
}

/// Parses a duration in (fractional) seconds, from 0 to a million.
fn parse_seconds(text: &str) -> Result<std::time::Duration, BadValue> {
    text.parse::<f64>()
        .ok()
        .filter(|s| (0.0..=1e6).contains(s))
        .map(std::time::Duration::from_secs_f64)
        .ok_or_else(|| BadValue::Seconds(text.to_string()))
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the state directory; copy --config into it, or write the demo config.
    Init(init::InitArgs),
    /// One scheduling iteration: reload config and nodes, record finished tasks, start what fits.
    Tick(tick::TickArgs),
    /// Scheduling iterations in one long-running process (SIGTERM/SIGINT stop it;
    /// tasks keep running).
    Daemon(daemon::DaemonArgs),
    /// Run one task now in the foreground and record its status; exit 0 only if it is done.
    RunTask(run_task::RunTaskArgs),
    /// Per-job task counts, and with --tasks one row per task.
    Status(status::StatusArgs),
    /// Task output and lifecycle events from the task-log database.
    Logs(logs::LogsArgs),
    /// Validate the config; print every problem; exit 2 if there is any.
    Check(check::CheckArgs),
    /// What applying the config file would do: settings and jobs changed key by key,
    /// node changes, tasks that would start, running tasks that would become orphans;
    /// exit 0 no change, 1 changes, 2 problems.
    Plan(plan::PlanArgs),
    /// Why a task is or is not running: its status, backoff, a disabled job or node,
    /// a filter, an unfinished dependency, or the exact resource and who holds it.
    Why(why::WhyArgs),
    /// Kill a running task (its job's kill_subprocess, on its whole process group).
    Kill(control::KillArgs),
    /// Let failed and backed-off tasks of a job run again (durably).
    Forgive(control::ForgiveArgs),
    /// Serve the REST API, a status page and metrics over the state dir (loopback only by default).
    ServeHttp(serve_http::ServeHttpArgs),
    /// A remote worker: runs the tasks a `bistro daemon` without --worker-command sends it.
    Worker(worker::WorkerArgs),
    /// Print a shell completion script.
    Completions(docs::CompletionsArgs),
    /// Print the man page (roff) of bistro or of one subcommand.
    Manpage(docs::ManpageArgs),
    /// Supervise the task runs of a tick or daemon (started by them; not for direct use).
    #[command(hide = true)]
    Supervise(supervise::SuperviseArgs),
}

/// Runs a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32, CliError> {
    let state = bistro_state(&cli);
    // Library diagnostics go through `tracing`: the daemon and the worker set their
    // own verbosity; every other command prints warnings as one line each.
    match &cli.command {
        Command::Daemon(_) | Command::Worker(_) => {}
        _ => crate::execution::supervisor::diagnostics::init(),
    }
    match &cli.command {
        Command::Init(args) => init::run(&state, &cli, args),
        Command::Tick(args) => tick::run(&state, &cli, args),
        Command::Daemon(args) => daemon::run(&state, &cli, args),
        Command::RunTask(args) => run_task::run(&state, &cli, args),
        Command::Status(args) => status::run(&state, &cli, args),
        Command::Logs(args) => logs::run(&state, args),
        Command::Check(args) => check::run(&state, &cli, args),
        Command::Plan(args) => plan::run(&state, &cli, args),
        Command::Why(args) => why::run(&state, &cli, args),
        Command::Kill(args) => control::kill(&state, &cli, args),
        Command::Forgive(args) => control::forgive(&state, &cli, args),
        Command::ServeHttp(args) => serve_http::run(&state, &cli, args),
        Command::Worker(args) => worker::run(&state, &cli, args),
        Command::Completions(args) => docs::completions(args),
        Command::Manpage(args) => docs::manpage(args),
        Command::Supervise(args) => supervise::run(&state, args),
    }
}

fn bistro_state(cli: &Cli) -> crate::storage::state::StateDir {
    crate::storage::state::StateDir::new(&cli.state_dir)
}

/// Prints a diagnostic to stderr.
pub(crate) fn warn(message: &str) {
    note!(
        "bistro: {}",
        crate::foundation::sanitize::for_terminal(message)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn an_error_message_says_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let state = crate::storage::state::io_err("creating", std::path::Path::new("/x"))(io);
        let error = anyhow::Error::new(state).context("starting");
        assert_eq!(error_message(&error), "starting: creating /x: No such file");
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
