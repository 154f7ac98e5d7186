//! The supervisor host: one detached process (`bistro supervise`) that supervises every
//! run a tick or daemon starts, all in one event loop ([`super::run_loop`]), so a task
//! costs one process start (its own), not two.
//!
//! The runner talks to its host over a Unix socket pair made when it starts the host:
//! each message names a run and carries the run's locked launch file, so the lock
//! passes from the runner to the host with no instant at which it looks free. When the
//! runner's process ends, the host stops taking runs and exits once the last one has
//! recorded its result; the tasks never depend on the process that started them.
//!
//! A host is told what to do by signals: a kill request
//! ([`super::constants::KILL_REQUEST_SIGNAL`]) makes
//! it look for new `kill.json` files among its runs; a stop signal kills every run (each
//! with its kill method) and ends it; on a remote worker, the worker's death kills every
//! run with the worker-death kill.

use super::diagnostics::SUPERVISE;
use super::run_loop::RunLoop;
use super::Launch;
use crate::model::task::InvocationId;
use crate::storage::state::{run_dir, StateDir};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use std::collections::HashSet;
use std::fs::File;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a runner waits for its host to take a run before starting another host
/// (a host stopped by SIGSTOP must not stall the scheduler).
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest a host waits for something to happen before it looks again.
const IDLE_WAKE: Duration = Duration::from_millis(500);

/// Why a runner could not hand a run to a supervisor host.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The socket pair could not be made.
    #[error("cannot make a socket for the supervisor host: {0}")]
    Socket(nix::Error),
    /// The host's end of the socket could not be made inheritable.
    #[error("cannot pass the socket to the supervisor host: {0}")]
    PassSocket(nix::Error),
    /// The host process could not be started.
    #[error("cannot start the supervisor host {}: {source}", exe.display())]
    Start {
        /// The executable.
        exe: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The socket could not be given its send timeout.
    #[error("configuring the supervisor host's socket: {0}")]
    Configure(std::io::Error),
    /// The host did not take the run (it is gone or stuck).
    #[error("the supervisor host did not take the run: {0}")]
    Send(nix::Error),
}

/// A supervisor host started by this process.
pub struct HostClient {
    socket: UnixStream,
    child: Child,
}

impl HostClient {
    /// Starts `exe supervise` for the state dir, detached (it makes its own session),
    /// with its diagnostics going to `log`.
    pub fn spawn(exe: &Path, state: &StateDir, log: File) -> Result<Self, HostError> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(HostError::Socket)?;
        // Hand the host its end: clear close-on-exec for this spawn (nothing else
        // spawns meanwhile), then close our copy. No pre_exec hook, so std can use
        // posix_spawn, which stays fast however large this process is.
        nix::fcntl::fcntl(
            theirs.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .map_err(HostError::PassSocket)?;
        // Until it calls setsid, the host shares our process group: a Ctrl-C or
        // hang-up meant for this process must not reach it, so it starts with them
        // ignored (and ours wait meanwhile).
        let quiet = super::signals::HoldStopSignals::install();
        let spawned = Command::new(exe)
            .arg("--state-dir")
            .arg(state.root())
            .arg("supervise")
            .arg("--socket-fd")
            .arg(theirs.as_raw_fd().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn();
        drop(quiet);
        drop(theirs);
        let child = spawned.map_err(|source| HostError::Start {
            exe: exe.to_path_buf(),
            source,
        })?;
        let socket = UnixStream::from(ours);
        socket
            .set_write_timeout(Some(SEND_TIMEOUT))
            .map_err(HostError::Configure)?;
        Ok(Self { socket, child })
    }

    /// Hands the run `invocation`, with its locked launch file, to the host. Once this
    /// returns Ok the host owns the run; on an error the host is unusable (gone or
    /// stuck) and the run was not handed over.
    pub fn send(&self, invocation: InvocationId, lock: &File) -> Result<(), HostError> {
        let name = invocation.to_string();
        let fds = [lock.as_raw_fd()];
        sendmsg::<()>(
            self.socket.as_raw_fd(),
            &[IoSlice::new(name.as_bytes())],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map(drop)
        .map_err(HostError::Send)
    }

    /// Waits up to `period` for the host to say that runs ended; true if it did. The
    /// runs it names are added to `ended` (every message that came is taken).
    pub fn wait_for_ends(&self, period: Duration, ended: &mut HashSet<InvocationId>) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        // Rounded up: a wait shorter than a millisecond must not become a busy loop.
        let millis = period.as_micros().div_ceil(1000);
        let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::POLLIN)];
        if !matches!(poll(&mut fds, timeout), Ok(n) if n > 0) {
            return false;
        }
        let mut heard = false;
        let mut closed = false;
        let mut buf = vec![0u8; ENDED_PER_MESSAGE * 40];
        loop {
            match nix::sys::socket::recv(self.socket.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT)
            {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => {
                    heard = true;
                    let names = String::from_utf8_lossy(&buf[..n]);
                    ended.extend(names.split(' ').filter_map(InvocationId::parse));
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        // A host that stopped taking runs (it was told to stop) leaves the socket
        // readable for good: wait the period out instead of polling again at once.
        if closed && !heard {
            std::thread::sleep(period);
        }
        heard
    }

    /// The host's process, to be reaped once it exits.
    pub fn into_child(self) -> Child {
        self.child
    }

    /// The host's process, to see whether it exited.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

/// Runs the host on `socket` (its end of the pair its runner made) until the runner
/// is gone and every run has recorded its result, or a stop signal ended every run.
pub fn serve(state: &StateDir, socket: OwnedFd) {
    let mut runs = match RunLoop::new(false) {
        Ok(runs) => runs,
        Err(e) => {
            tracing::error!(target: SUPERVISE, "cannot supervise runs: {e}");
            return;
        }
    };
    let socket = UnixStream::from(socket);
    let watched = socket
        .set_nonblocking(true)
        .and_then(|()| runs.watch(socket.as_fd()));
    let mut socket = match watched {
        Ok(()) => Some(socket),
        Err(e) => {
            tracing::error!(target: SUPERVISE, "watching the runner's socket: {e}");
            return;
        }
    };
    loop {
        let turn = runs.turn(IDLE_WAKE);
        if let Some(open) = socket.as_ref() {
            let ended: Vec<InvocationId> = turn.finished.iter().map(|(run, _)| *run).collect();
            tell_runs_ended(open, &ended);
        }
        if turn.stopped {
            // Runs still queued on the socket are dropped with it, and with them their
            // locks: the next tick finds them never started and releases them.
            if let Some(socket) = socket.take() {
                runs.unwatch(socket.as_fd());
            }
        }
        while let (true, Some(open)) = (turn.socket_ready, socket.as_ref()) {
            match receive(open) {
                Received::Run(name, lock) => start(state, &mut runs, &name, lock),
                Received::Nothing => break,
                // The runner is gone: no more runs.
                Received::Closed => {
                    runs.unwatch(open.as_fd());
                    socket = None;
                }
            }
        }
        if socket.is_none() && runs.is_empty() {
            break;
        }
    }
}

/// Tells the runner which runs ended, so a daemon waiting between iterations starts
/// the next one now and looks only at those. Never waits: a runner that does not
/// listen (a tick) fills the socket, and the news is not needed then (a runner looks
/// at every run it did not hear of at least every second).
fn tell_runs_ended(socket: &UnixStream, ended: &[InvocationId]) {
    for runs in ended.chunks(ENDED_PER_MESSAGE) {
        let names: Vec<String> = runs.iter().map(InvocationId::to_string).collect();
        let _ = nix::sys::socket::send(
            socket.as_raw_fd(),
            names.join(" ").as_bytes(),
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        );
    }
}

/// Runs named in one "ended" message (each name is under 40 bytes).
const ENDED_PER_MESSAGE: usize = 256;

enum Received {
    Run(String, File),
    Nothing,
    Closed,
}

/// The next message on the socket, if one is there.
fn receive(socket: &UnixStream) -> Received {
    let mut buf = [0u8; 128];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let (len, fds) = match recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    ) {
        Ok(msg) => {
            let fds: Vec<RawFd> = msg
                .cmsgs()
                .into_iter()
                .flatten()
                .filter_map(|c| match c {
                    ControlMessageOwned::ScmRights(fds) => Some(fds),
                    _ => None,
                })
                .flatten()
                .collect();
            (msg.bytes, fds)
        }
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return Received::Nothing,
        Err(e) => {
            tracing::error!(target: SUPERVISE, "reading from the runner: {e}");
            return Received::Closed;
        }
    };
    // SAFETY: the descriptors came with this message and nothing else owns them.
    let mut files = fds.into_iter().map(|fd| unsafe { File::from_raw_fd(fd) });
    if len == 0 {
        return Received::Closed;
    }
    let name = String::from_utf8_lossy(&buf[..len]).into_owned();
    match (files.next(), files.next()) {
        (Some(lock), None) => Received::Run(name, lock),
        _ => {
            tracing::error!(target: SUPERVISE, "a message for run {name} without exactly one lock; ignored"
            );
            Received::Nothing
        }
    }
}

/// Starts supervising the run `name`, whose locked launch file is `lock` (its spec is
/// read through it). A run that cannot be started is dropped with its lock: the next
/// tick releases it.
fn start(state: &StateDir, runs: &mut RunLoop, name: &str, lock: File) {
    let Some(invocation) = InvocationId::parse(name) else {
        tracing::error!(target: SUPERVISE, "{name:?} is not a run; ignored");
        return;
    };
    let dir = state.invocation_dir(invocation);
    match read_launch(&lock) {
        Ok(launch) => runs.start(launch, dir, Some(lock)),
        Err(e) => tracing::error!(target: SUPERVISE, "{}: {e}",
            dir.join(run_dir::LAUNCH).display()
        ),
    }
}

/// Why a run's launch file could not be read.
#[derive(Debug, thiserror::Error)]
enum LaunchFileError {
    /// Reading it failed.
    #[error("{0}")]
    Read(std::io::Error),
    /// It is not a launch spec.
    #[error("{0}")]
    Parse(serde_json::Error),
}

/// The launch spec in the launch file open as `file`.
fn read_launch(file: &File) -> Result<Launch, LaunchFileError> {
    use std::os::unix::fs::FileExt;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match file.read_at(&mut chunk, bytes.len() as u64) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(LaunchFileError::Read(e)),
        }
    }
    serde_json::from_slice(&bytes).map_err(LaunchFileError::Parse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn client_and_host_end() -> (HostClient, OwnedFd) {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let child = Command::new("true").spawn().unwrap();
        let client = HostClient {
            socket: UnixStream::from(ours),
            child,
        };
        (client, theirs)
    }

    #[test]
    fn the_runs_a_host_names_are_taken_as_ended() {
        let (client, host) = client_and_host_end();
        let host = UnixStream::from(host);
        let runs = [
            InvocationId {
                start_time: 1,
                rand: 2,
            },
            InvocationId {
                start_time: 3,
                rand: 4,
            },
        ];
        tell_runs_ended(&host, &runs);
        let mut ended = HashSet::new();
        assert!(client.wait_for_ends(Duration::from_secs(30), &mut ended));
        assert_eq!(ended, runs.into_iter().collect());
        let _ = client.into_child().wait();
    }

    #[test]
    fn a_host_that_closed_its_socket_makes_the_wait_last_its_period_not_spin() {
        let (client, host) = client_and_host_end();
        drop(host);
        let period = Duration::from_millis(200);
        let start = Instant::now();
        assert!(!client.wait_for_ends(period, &mut HashSet::new()));
        assert!(
            start.elapsed() >= period,
            "returned after {:?}",
            start.elapsed()
        );
        let _ = client.into_child().wait();
    }
}
