//! `bistro worker`: a remote worker for a scheduler run as `bistro daemon --http ADDR`
//! without `--worker-command` (bistro-runtime §1.2). Its state dir holds its task
//! logs and the jobs' working directories.

use super::{Cli, CliError, ExitCode};
use crate::storage::state::StateDir;
use crate::usecases::worker::{WorkerEnd, WorkerOptions};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// `bistro worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The scheduler: the address of its `daemon --http`, as http://HOST:PORT or HOST:PORT.
    #[arg(long, value_name = "URL")]
    scheduler: String,
    /// The scheduler's worker secret (its STATE/worker.token, copied here).
    #[arg(long, value_name = "FILE")]
    token_file: PathBuf,
    /// Command run for each task whose job has no "command", as `CMD NODE STATUS_FILE JSON`.
    #[arg(long, value_name = "CMD")]
    worker_command: Option<String>,
    /// This worker's shard id: one worker per shard is associated [default: the host name].
    #[arg(long, value_name = "ID")]
    shard_id: Option<String>,
    /// Where to listen for the scheduler's calls (IP:PORT; port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: String,
    /// The HOST:PORT the scheduler should call [default: the address listened on].
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// Seconds between heartbeats (also sent to the scheduler, which allows this plus
    /// its grace period).
    #[arg(long, value_name = "SECS", default_value_t = 15, value_parser = clap::value_parser!(i64).range(1..=86_400))]
    heartbeat_period_sec: i64,
    /// How long one call to the scheduler may take, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    call_timeout_ms: u64,
    /// More log on stderr: -v each association and death, -vv every call (or set
    /// BISTRO_LOG, e.g. BISTRO_LOG=debug).
    #[arg(long, short, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// A worker pointed at a state dir that a scheduler or another worker holds (the
/// default `./bistro-state`, beside a daemon started in the same directory): trying
/// again later would not help.
#[derive(Debug, thiserror::Error)]
#[error("state dir {} is in use by {holder} (a scheduler or another worker): a worker needs a state dir of its own (Bistro's --data_dir): pass --state-dir DIR", dir.display())]
struct NotItsOwn {
    /// The state dir.
    dir: PathBuf,
    /// Who holds the lock.
    holder: String,
}

impl crate::foundation::error::HasKind for NotItsOwn {
    fn kind(&self) -> crate::foundation::error::ErrorKind {
        crate::foundation::error::ErrorKind::Usage
    }
}

/// Takes the worker's state lock; a held one is a usage error saying what to do.
fn lock_own_state(state: &StateDir) -> Result<crate::storage::state::StateLock, CliError> {
    state.create()?;
    match state.lock(Duration::ZERO) {
        Ok(lock) => Ok(lock),
        Err(crate::storage::state::StateError::Locked { dir, holder }) => {
            Err(NotItsOwn { dir, holder }.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// The scheduler's `host:port` from `http://host:port[/]` or `host:port`.
fn scheduler_addr(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or(url)
        .trim_end_matches('/');
    if rest.contains('/') || url.starts_with("https://") || !rest.contains(':') {
        anyhow::bail!(
            "--scheduler {url:?}: expected http://HOST:PORT or HOST:PORT (the scheduler's `daemon --http` address)"
        );
    }
    Ok(rest.to_string())
}

pub(super) fn run(state: &StateDir, _cli: &Cli, args: &WorkerArgs) -> Result<i32, CliError> {
    super::logging::init(args.verbose, false);
    let scheduler = match scheduler_addr(&args.scheduler) {
        Ok(addr) => addr,
        Err(e) => {
            super::warn(&e.to_string());
            return Ok(ExitCode::Usage as i32);
        }
    };
    let _lock = lock_own_state(state)?;
    use nix::sys::signal::Signal;
    let stop = super::signals::stop_on(&[
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ]);
    let opts = WorkerOptions {
        scheduler,
        worker_command: args.worker_command.clone(),
        shard_id: args.shard_id.clone(),
        listen: args.listen.clone(),
        advertise: args.advertise.clone(),
        token_file: args.token_file.clone(),
        heartbeat_period_sec: args.heartbeat_period_sec,
        call_timeout: Duration::from_millis(args.call_timeout_ms),
    };
    let end = crate::usecases::worker::run(state, &opts, stop, |line| note!("{line}"))
        .context("running the worker")?;
    Ok(match end {
        WorkerEnd::Stopped => {
            tracing::info!("stopped by a signal; tasks were killed");
            ExitCode::Success as i32
        }
        WorkerEnd::Suicide(why) => {
            note!(
                "bistro: worker: killed its tasks and exited: {}",
                crate::foundation::sanitize::for_terminal(&why)
            );
            ExitCode::Failure as i32
        }
    })
}
