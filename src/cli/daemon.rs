//! `bistro daemon`: scheduling iterations in one long-running process, holding the
//! state lock (a cron `tick` beside it exits 75). Logs go to stderr through
//! `tracing`: warnings only by default, `-v` for each start and finish.

use super::{Cli, RunFlags};
use crate::daemon::{DaemonEnd, DaemonOptions};
use crate::runner::LocalRunner;
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
    /// Rerun the node sources at most this often (a change of node sources refetches at once).
    #[arg(long, value_name = "MS", default_value_t = 300_000)]
    nodes_update_ms: i64,
    /// Forget every stored status at start, so every task runs again.
    #[arg(long)]
    clean_statuses: bool,
    /// Task log lines older than SECS are deleted (default 30 days).
    #[arg(long, value_name = "SECS", default_value_t = 2_592_000)]
    log_retention: i64,
    /// Seconds between log prunes; 0 disables pruning.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    log_prune_frequency: i64,
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
            flags: crate::context::RunFlags {
                config: cli.config.clone(),
                worker_command: args.run.worker_command.clone(),
                instance_node_name: args.run.instance_node_name.clone(),
            },
            dry_run: false,
            log_retention_secs: args.log_retention,
            log_prune_frequency_secs: args.log_prune_frequency,
            nodes_update_ms: args.nodes_update_ms,
            config_update_ms: args.config_update_ms,
        },
        exit_when_done: args.exit_when_done,
    };
    let exe = std::env::current_exe().context("finding the bistro binary to run supervisors")?;
    let mut runner = LocalRunner::new(state.clone(), exe);
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
    let end = crate::daemon::run(state, &opts, &mut runner, stop, &mut |r| log.record(r));
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
        DaemonEnd::NoConfig => {
            tracing::error!("no usable config, so nothing can ever start: fix it and run again (`bistro check` lists every problem)");
            super::ExitCode::Usage as i32
        }
    })
}

/// Logs each iteration: problems once each while they last, starts and finishes
/// at info level, a summary at debug level.
#[derive(Default)]
struct IterationLog {
    problems: BTreeSet<String>,
    running: usize,
}

impl IterationLog {
    fn record(&mut self, r: &TickReport) {
        let mut problems = BTreeSet::new();
        problems.extend(
            r.config_errors
                .iter()
                .map(|(at, m)| format!("config error: {at}: {m}")),
        );
        problems.extend(
            r.job_errors
                .iter()
                .map(|(at, m)| format!("job error (the job will not run): {at}: {m}")),
        );
        problems.extend(
            r.nodes_error
                .iter()
                .map(|e| format!("cannot fetch nodes, nothing new starts: {e}")),
        );
        problems.extend(r.usage_errors.iter().cloned());
        if r.config_errors.is_empty() && !r.scheduler_enabled {
            problems
                .insert("bistro_settings.enabled is not true: the scheduler starts nothing".into());
        }
        for p in problems.difference(&self.problems) {
            tracing::warn!("{}", crate::sanitize::for_terminal(p));
        }
        self.problems = problems;
        for e in r.start_errors.iter().chain(&r.kill_errors) {
            tracing::warn!("{}", crate::sanitize::for_terminal(e));
        }
        for k in &r.orphans_killed {
            tracing::warn!("killed orphan {}/{}: {}", k.job, k.node, k.reason);
        }
        for f in &r.finished {
            let message = f
                .message
                .as_deref()
                .map(|m| format!(": {}", crate::sanitize::for_terminal(m)))
                .unwrap_or_default();
            match f.status {
                "error_backoff" | "failed" => {
                    tracing::warn!("finished {}/{}: {}{message}", f.job, f.node, f.status)
                }
                _ => tracing::info!("finished {}/{}: {}{message}", f.job, f.node, f.status),
            }
        }
        for s in &r.started {
            tracing::info!("started {}/{}", s.job, s.node);
        }
        for change in &r.config_changes {
            tracing::info!("config: {change}");
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
