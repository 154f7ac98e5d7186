//! `bistro daemon`: scheduling iterations in one long-running process, holding the
//! state lock (a cron `tick` beside it exits 75). Logs go to stderr through
//! `tracing`: warnings only by default, `-v` for each start and finish.

use super::{Cli, IterationFlags, RunFlags, SimulationFlags};
use crate::daemon::{DaemonEnd, DaemonOptions};
use crate::sanitize::for_terminal;
use crate::state::StateDir;
use crate::store::StatusStore;
use crate::tick::{TickOptions, TickReport};
use anyhow::Context;
use clap::Args;
use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::sync::atomic::Ordering;

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
    /// More log on stderr: -v each start and finish, -vv every iteration
    /// (or set BISTRO_LOG, e.g. BISTRO_LOG=debug).
    #[arg(long, short, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn init_logging(verbose: u8) {
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
    let opts = DaemonOptions {
        tick: TickOptions {
            config_update_ms: args.config_update_ms,
            ..args.iteration.tick_options(cli, &args.run)
        },
        exit_when_done: args.exit_when_done,
    };
    let mut runner = args.simulation.runner(state)?;
    tracing::info!(
        "scheduling over {} (pid {})",
        state.root().display(),
        std::process::id()
    );
    let http = match &args.http {
        Some(listen) => Some(start_http(state, cli, args, listen, stop)?),
        None => None,
    };
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
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let opts = crate::http::HttpOptions {
        listen: listen.to_string(),
        allow_remote: args.allow_remote,
        allow_hosts: args.allow_hosts.clone(),
        config: cli.config.clone(),
        ..Default::default()
    };
    let server = crate::http::HttpServer::bind(state, &opts)
        .with_context(|| format!("serving HTTP on {listen}"))?;
    eprintln!("listening on http://{}", server.local_addr());
    Ok(std::thread::spawn(move || server.serve(stop)))
}
