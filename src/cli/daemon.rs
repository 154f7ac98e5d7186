//! `bistro daemon`: scheduling iterations in one long-running process, holding the
//! state lock (a cron `tick` beside it exits 75). Logs go to stderr through
//! `tracing`: warnings only by default, `-v` for each start and finish. The flags
//! become [`ServeOptions`] for [`daemon::serve`]; this file adds the HTTP server.

use super::{Cli, CliError, ExitCode, IterationFlags, RunFlags, RunnerKind, SimulationFlags};
use crate::execution::runner::remote::Hub;
use crate::storage::state::StateDir;
use crate::usecases::daemon::{self, DaemonEnd, DaemonOptions, RunOn, ServeOptions};
use crate::usecases::tick::TickOptions;
use clap::Args;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// `bistro daemon`.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    #[command(flatten)]
    run: RunFlags,
    /// Exit 0 once nothing runs and nothing can start (tasks in backoff still can).
    #[arg(long)]
    exit_when_done: bool,
    /// Re-read the config file at most this often.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    config_update_ms: u64,
    /// Forget every stored status at start, so every task runs again.
    #[arg(long)]
    clean_statuses: bool,
    #[command(flatten)]
    iteration: IterationFlags,
    #[command(flatten)]
    simulation: SimulationFlags,
    /// Also serve the REST API, status page and metrics on ADDR (as `serve-http`).
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    /// Allow a non-loopback --http address (changes still need the token).
    #[arg(long, requires = "http")]
    allow_remote: bool,
    /// Another name clients may reach the --http server by (as `serve-http
    /// --allow-host`): NAME or NAME:PORT. Repeatable.
    #[arg(long = "allow-host", value_name = "NAME[:PORT]", requires = "http")]
    allow_hosts: Vec<String>,
    /// Run tasks on this machine although no --worker-command is given (every job
    /// has its own "command"). Without either, tasks go to remote workers. The same
    /// as `--runner local`, and remembered as it is.
    #[arg(long, conflicts_with = "runner")]
    local: bool,
    #[command(flatten)]
    remote: RemoteFlags,
    /// More log on stderr: -v each start and finish (shown without -v when stderr is
    /// a terminal), -vv every iteration (or set BISTRO_LOG, e.g. BISTRO_LOG=debug).
    #[arg(long, short, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// How the scheduler treats remote workers (Bistro's flags of the same names; all
/// in seconds unless said otherwise).
#[derive(Debug, Args)]
#[command(next_help_heading = "Remote workers (without --worker-command or --local)")]
struct RemoteFlags {
    /// Seconds added to each worker's own heartbeat period before it is unhealthy.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    heartbeat_grace_period: i64,
    /// Seconds between healthchecks of each worker.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(i64).range(1..))]
    healthcheck_period: i64,
    /// Seconds a healthcheck may be late before its worker is unhealthy.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    healthcheck_grace_period: i64,
    /// Seconds a worker may stay unhealthy before it is lost (its tasks back off and
    /// run again elsewhere once it has surely killed them).
    #[arg(long, value_name = "SECS", default_value_t = 500)]
    lose_unhealthy_worker_after: i64,
    /// Seconds between sweeps over the workers.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    worker_check_interval: i64,
    /// Let a new worker replace a shard's worker that is not healthy at once.
    #[arg(long)]
    allow_bump_unhealthy_worker: bool,
    /// Seconds before asking a worker about a task whose start may not have arrived.
    #[arg(long, value_name = "SECS", default_value_t = 1)]
    unsure_if_running_check_initial_period: i64,
    /// Seconds to wait for workers after a start before starting tasks (-1: the safe
    /// wait computed from the timeouts, 696 s by default). Shorter risks running a task
    /// twice.
    #[arg(long = "caution-startup-wait-for-workers", value_name = "SECS", default_value_t = -1, allow_negative_numbers = true)]
    startup_wait_for_workers: i64,
    /// Seconds a lost worker's tasks wait, beyond its kill wait, before running again.
    #[arg(
        long = "caution-worker-suicide-backoff-safety-margin-sec",
        value_name = "SECS",
        default_value_t = 60
    )]
    worker_suicide_backoff_safety_margin: i64,
    /// Milliseconds a dying worker's tasks have between SIGTERM and SIGKILL.
    #[arg(
        long = "caution-worker-suicide-task-kill-wait-ms",
        value_name = "MS",
        default_value_t = 5000
    )]
    worker_suicide_task_kill_wait_ms: i64,
    /// Milliseconds one call to a worker may take.
    #[arg(long, value_name = "MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    worker_call_timeout_ms: u64,
}

impl RemoteFlags {
    fn hub_settings(&self) -> crate::execution::runner::remote::HubSettings {
        use crate::execution::remote::{health::HealthSettings, pool::PoolSettings};
        crate::execution::runner::remote::HubSettings {
            pool: PoolSettings {
                health: HealthSettings {
                    heartbeat_grace_period: self.heartbeat_grace_period,
                    healthcheck_period: self.healthcheck_period,
                    healthcheck_grace_period: self.healthcheck_grace_period,
                    lose_unhealthy_worker_after: self.lose_unhealthy_worker_after,
                    worker_check_interval: self.worker_check_interval,
                    worker_suicide_backoff_safety_margin: self.worker_suicide_backoff_safety_margin,
                    worker_suicide_task_kill_wait_ms: self.worker_suicide_task_kill_wait_ms,
                    startup_wait_for_workers: Some(self.startup_wait_for_workers),
                },
                allow_bump_unhealthy_worker: self.allow_bump_unhealthy_worker,
            },
            call_timeout: std::time::Duration::from_millis(self.worker_call_timeout_ms),
            unsure_if_running_check_initial_period: self.unsure_if_running_check_initial_period,
        }
    }
}

pub(super) fn run(state: &StateDir, cli: &Cli, args: &DaemonArgs) -> Result<i32, CliError> {
    super::logging::init(args.verbose, true);
    // As Bistro picks its runner: a simulation, else local with a worker command,
    // else remote workers.
    // `--runner` (or the remembered one) decides when given.
    let kind = if args.local {
        Some(RunnerKind::Local)
    } else {
        args.simulation.runner_kind(state)?
    };
    let remote = match kind {
        Some(kind) => kind == RunnerKind::Remote,
        None => !args.simulation.benchmark_run && args.run.worker_command.is_none() && !args.local,
    };
    let mut tick = TickOptions {
        config_update_ms: args.config_update_ms,
        on_workers: remote,
        ..args.iteration.tick_options(cli, &args.run)
    };
    let explicit = args
        .simulation
        .runner
        .or(args.local.then_some(RunnerKind::Local));
    tick.flags.runner = explicit.map(|k| k.name().to_string());
    let opts = ServeOptions {
        daemon: DaemonOptions {
            tick,
            exit_when_done: args.exit_when_done,
        },
        run_on: if remote {
            RunOn::Workers(args.remote.hub_settings())
        } else {
            RunOn::Here(args.simulation.runner(state, kind)?)
        },
        wait_lock: args.run.wait_lock,
        clean_statuses: args.clean_statuses,
    };
    let http = args.http.as_deref().map(|listen| {
        move |hub: Option<&Arc<Hub>>, stop| start_http(state, cli, args, listen, stop, hub)
    });
    let end = daemon::serve(state, opts, super::signals::stop_on_signals, http)?;
    Ok(match end {
        DaemonEnd::Stopped | DaemonEnd::Done => ExitCode::Success as i32,
        DaemonEnd::Unstartable(_) | DaemonEnd::NoConfig => ExitCode::Usage as i32,
    })
}

/// Binds the HTTP server before the first iteration (a bad address fails the start)
/// and serves it on its own thread until `stop`.
fn start_http(
    state: &StateDir,
    cli: &Cli,
    args: &DaemonArgs,
    listen: &str,
    stop: &'static AtomicBool,
    hub: Option<&Arc<Hub>>,
) -> Result<std::thread::JoinHandle<()>, CliError> {
    let opts = crate::app::HttpOptions {
        listen: crate::execution::http::ListenOptions {
            listen: listen.to_string(),
            allow_remote: args.allow_remote,
            allow_hosts: args.allow_hosts.clone(),
            ..Default::default()
        },
        config: cli.config.clone(),
        hub: hub.cloned(),
    };
    let server = crate::app::HttpServer::bind(state, &opts)
        .map_err(|e| CliError::from(e).context(format!("serving HTTP on {listen}")))?;
    note!("listening on http://{}", server.local_addr());
    if let Some(hub) = hub {
        note!(
            "remote workers: bistro --state-dir WORKER_STATE worker --scheduler http://{} --token-file {} --worker-command CMD",
            server.local_addr(),
            hub.secret_path().display()
        );
    }
    Ok(std::thread::spawn(move || server.serve(stop)))
}
