//! `bistro supervise INVOCATION`: the detached supervisor a tick starts for each task.

use crate::runner::{supervisor, Launch, LOCK_FD};
use crate::state::StateDir;
use anyhow::Context;
use clap::Args;
use std::os::fd::FromRawFd;

/// `bistro supervise`.
#[derive(Debug, Args)]
pub struct SuperviseArgs {
    /// The run to supervise (a directory under STATE/running).
    pub invocation: String,
}

pub(super) fn run(state: &StateDir, args: &SuperviseArgs) -> anyhow::Result<i32> {
    let invocation = crate::task::InvocationId::parse(&args.invocation)
        .with_context(|| format!("{:?} is not an invocation id", args.invocation))?;
    let dir = state.invocation_dir(invocation);
    // SAFETY: the tick hands us the invocation's locked file on LOCK_FD; we own it now.
    let lock = unsafe { std::fs::File::from_raw_fd(LOCK_FD) };
    nix::fcntl::fcntl(
        LOCK_FD,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .context("the invocation lock was not passed on descriptor 3")?;
    let text = std::fs::read_to_string(dir.join("launch.json"))
        .with_context(|| format!("reading {}/launch.json", dir.display()))?;
    let launch: Launch = serde_json::from_str(&text)
        .with_context(|| format!("parsing {}/launch.json", dir.display()))?;
    supervisor::supervise(&launch, &dir, false);
    drop(lock);
    Ok(0)
}
