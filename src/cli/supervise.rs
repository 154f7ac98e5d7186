//! `bistro supervise`: the detached supervisor host a tick or daemon starts for its
//! tasks (see `supervisor::host`).

use super::CliError;
use crate::execution::supervisor::host;
use crate::storage::state::StateDir;
use anyhow::Context;
use clap::Args;
use std::os::fd::{FromRawFd, OwnedFd};

/// `bistro supervise`.
#[derive(Debug, Args)]
pub struct SuperviseArgs {
    /// The descriptor of the socket the runner hands runs over, inherited from it.
    #[arg(long)]
    pub socket_fd: i32,
}

pub(super) fn run(state: &StateDir, args: &SuperviseArgs) -> Result<i32, CliError> {
    nix::fcntl::fcntl(
        args.socket_fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .with_context(|| {
        format!(
            "descriptor {} was not passed to the supervisor host",
            args.socket_fd
        )
    })?;
    // SAFETY: the runner hands us its socket on this descriptor and keeps no copy; we
    // own it from now on.
    let socket = unsafe { OwnedFd::from_raw_fd(args.socket_fd) };
    // Our own session: terminal signals and the runner's exit cannot reach us, and a
    // later tick can kill everything we started through the session id.
    nix::unistd::setsid().context("starting a session")?;
    host::serve(state, socket);
    Ok(0)
}
