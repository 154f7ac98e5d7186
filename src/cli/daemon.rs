//! `bistro daemon`: scheduling iterations in one long-running process, holding the
//! state lock (a cron `tick` beside it exits 75). Logs go to stderr through
//! `tracing`: warnings only by default, `-v` for each start and finish.

use super::{Cli, IterationFlags, RunFlags, SimulationFlags};
use crate::daemon::{DaemonEnd, DaemonOptions};
use crate::runner::remote::{Hub, RemoteRunner};
use crate::runner::TaskRunner;
use crate::sanitize::for_terminal;
use crate::state::StateDir;
use crate::store::StatusStore;
use crate::tick::{TickOptions, TickReport};
use anyhow::Context;
use clap::Args;
use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::sync::atomic::Ordering;
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
    /// has its own "command"). Without either, tasks go to remote workers.
    #[arg(long)]
    local: bool,
    #[command(flatten)]
    remote: RemoteFlags,
    /// More log on stderr: -v each start and finish, -vv every iteration
    /// (or set BISTRO_LOG, e.g. BISTRO_LOG=debug).
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
    fn hub_settings(&self) -> crate::runner::remote::HubSettings {
        use crate::remote::{health::HealthSettings, pool::PoolSettings};
        crate::runner::remote::HubSettings {
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

/// Logs to stderr through `tracing`: warnings by default, more with `-v`.
pub(super) fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BISTRO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false)
        .try_init();
}

pub(super) fn run(state: &StateDir, cli: &Cli, args: &DaemonArgs) -> anyhow::Result<i32> {
    init_logging(args.verbose);
    state.create()?;
    let _lock = state.lock(args.run.wait_lock)?;
    let stop = super::signals::stop_on_signals();
    // Created now, so the HTTP server has a state to serve from the start.
    let mut store = StatusStore::open(&state.statuses_db())?;
    // As Bistro picks its runner: a simulation, else local with a worker command,
    // else remote workers.
    let remote = !args.simulation.benchmark_run && args.run.worker_command.is_none() && !args.local;
    let opts = DaemonOptions {
        tick: TickOptions {
            config_update_ms: args.config_update_ms,
            on_workers: remote,
            ..args.iteration.tick_options(cli, &args.run)
        },
        exit_when_done: args.exit_when_done,
    };
    if remote && args.http.is_none() {
        super::warn("without --worker-command, tasks run on remote workers, which reach this scheduler over --http ADDR: pass --http ADDR, or run tasks here with --worker-command CMD (or --local when every job has a \"command\")");
        return Ok(super::ExitCode::Usage as i32);
    }
    let hub = if remote {
        Some(Arc::new(Hub::new(state, args.remote.hub_settings())?))
    } else {
        None
    };
    let mut runner: Box<dyn TaskRunner> = match &hub {
        Some(hub) => Box::new(RemoteRunner::new(Arc::clone(hub))),
        None => args.simulation.runner(state)?,
    };
    tracing::info!(
        "scheduling over {} (pid {})",
        state.root().display(),
        std::process::id()
    );
    let http = match &args.http {
        Some(listen) => Some(start_http(state, cli, args, listen, stop, hub.as_ref())?),
        None => None,
    };
    // After the `listening on` line, which scripts wait for first.
    if let Some(warning) = hub.as_ref().and_then(|_| {
        args.remote
            .hub_settings()
            .pool
            .health
            .initial_wait_warning()
    }) {
        tracing::warn!("{warning}");
    }
    let sweeps = hub.as_ref().map(|hub| {
        let hub = Arc::clone(hub);
        std::thread::spawn(move || hub.run_sweeps(stop))
    });
    // Only once everything has started: a start that fails must lose nothing.
    if args.clean_statuses {
        let cleared = store.clear_statuses()?;
        tracing::info!("--clean-statuses: forgot {cleared} stored statuses");
    }
    drop(store);
    let mut log = IterationLog::default();
    let end = crate::daemon::run(state, &opts, runner.as_mut(), stop, &mut |r| log.record(r));
    stop.store(true, Ordering::SeqCst);
    if let Some(server) = http {
        let _ = server.join();
    }
    if let Some(sweeps) = sweeps {
        let _ = sweeps.join();
    }
    let end = end?;
    Ok(match end {
        DaemonEnd::Stopped => {
            tracing::info!(
                "stopped; {} running task(s) keep running under their supervisors",
                log.running
            );
            super::ExitCode::Success as i32
        }
        DaemonEnd::Done => {
            tracing::info!("nothing runs and nothing can start: done");
            super::ExitCode::Success as i32
        }
        DaemonEnd::Unstartable(why) => {
            for reason in why {
                tracing::error!("{}", for_terminal(&reason));
            }
            tracing::error!("nothing else runs or can start: exiting");
            super::ExitCode::Usage as i32
        }
        DaemonEnd::NoConfig => {
            tracing::error!("no usable config, so nothing can ever start: fix it and run again (`bistro check` lists every problem)");
            super::ExitCode::Usage as i32
        }
    })
}

/// Logs each iteration: lasting problems once each while they last, events (failed
/// starts and kills, killed orphans, failed tasks) as warnings, starts and finishes
/// at info level, a summary at debug level; every name escaped for a terminal.
#[derive(Default)]
struct IterationLog {
    problems: BTreeSet<String>,
    running: usize,
}

impl IterationLog {
    fn record(&mut self, r: &TickReport) {
        let mut lasting = BTreeSet::new();
        for d in r.diagnostics() {
            if d.lasting {
                lasting.insert(d.message);
            } else {
                tracing::warn!("{}", for_terminal(&d.message));
            }
        }
        if r.config_errors.is_empty() && !r.scheduler_enabled {
            lasting
                .insert("bistro_settings.enabled is not true: the scheduler starts nothing".into());
        }
        for problem in lasting.difference(&self.problems) {
            tracing::warn!("{}", for_terminal(problem));
        }
        self.problems = lasting;
        for f in &r.finished {
            let message = f
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            let line = format!("finished {}/{}: {}{message}", f.job, f.node, f.status);
            let line = for_terminal(&line);
            match f.status {
                "error_backoff" | "failed" => tracing::warn!("{line}"),
                _ => tracing::info!("{line}"),
            }
        }
        for s in &r.started {
            tracing::info!("{}", for_terminal(&format!("started {}/{}", s.job, s.node)));
        }
        for change in &r.config_changes {
            tracing::info!("{}", for_terminal(&format!("config: {change}")));
        }
        tracing::debug!(
            "iteration: {} started, {} finished, {} running; next in {} ms",
            r.started.len(),
            r.finished.len(),
            r.running,
            r.wait_ms
        );
        self.running = r.running;
    }
}

/// Binds the HTTP server before the first iteration (a bad address fails the start)
/// and serves it on its own thread until `stop`.
fn start_http(
    state: &StateDir,
    cli: &Cli,
    args: &DaemonArgs,
    listen: &str,
    stop: &'static std::sync::atomic::AtomicBool,
    hub: Option<&Arc<Hub>>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let opts = crate::app::HttpOptions {
        listen: listen.to_string(),
        allow_remote: args.allow_remote,
        allow_hosts: args.allow_hosts.clone(),
        config: cli.config.clone(),
        hub: hub.cloned(),
        ..Default::default()
    };
    let server = crate::app::HttpServer::bind(state, &opts)
        .with_context(|| format!("serving HTTP on {listen}"))?;
    eprintln!("listening on http://{}", server.local_addr());
    if let Some(hub) = hub {
        eprintln!(
            "remote workers: bistro --state-dir WORKER_STATE worker --scheduler http://{} --token-file {} --worker-command CMD",
            server.local_addr(),
            hub.secret_path().display()
        );
    }
    Ok(std::thread::spawn(move || server.serve(stop)))
}
