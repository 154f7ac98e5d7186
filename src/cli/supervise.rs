//! `bistro supervise INVOCATION`: the detached supervisor a tick starts for each task.

use crate::runner::{supervisor, Launch, LAUNCH_FILE};
use crate::state::StateDir;
use anyhow::Context;
use clap::Args;
use std::os::fd::FromRawFd;

/// `bistro supervise`.
#[derive(Debug, Args)]
pub struct SuperviseArgs {
    /// The run to supervise (a directory under STATE/running).
    pub invocation: String,
    /// The descriptor of the run's locked launch file, handed over by the tick.
    #[arg(long)]
    pub lock_fd: i32,
}

pub(super) fn run(state: &StateDir, args: &SuperviseArgs) -> anyhow::Result<i32> {
    let invocation = crate::task::InvocationId::parse(&args.invocation)
        .with_context(|| format!("{:?} is not an invocation id", args.invocation))?;
    let dir = state.invocation_dir(invocation);
    // SAFETY: the tick hands us the run's locked launch file on this descriptor and
    // keeps no copy; we own it from now on, and hold its lock until we exit.
    let lock = unsafe { std::fs::File::from_raw_fd(args.lock_fd) };
    nix::fcntl::fcntl(
        args.lock_fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .with_context(|| {
        format!(
            "descriptor {} was not passed to the supervisor",
            args.lock_fd
        )
    })?;
    // Our own session: terminal signals and the tick's exit cannot reach us, and a
    // later tick can kill everything we started through the session id.
    nix::unistd::setsid().context("starting a session")?;
    let path = dir.join(LAUNCH_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let launch: Launch =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    supervisor::supervise(&launch, &dir, false);
    drop(lock);
    Ok(0)
}
