//! The supervisor host: one detached process (`bistro supervise`) that supervises every
//! run a tick or daemon starts, each on its own threads, so a task costs one process
//! start (its own), not two.
//!
//! The runner talks to its host over a Unix socket pair made when it starts the host:
//! each message names a run and carries the run's locked launch file, so the lock
//! passes from the runner to the host with no instant at which it looks free. When the
//! runner's process ends, the host stops taking runs and exits once the last one has
//! recorded its result; the tasks never depend on the process that started them.
//!
//! A host is told what to do by signals: a kill request ([`KILL_REQUEST_SIGNAL`]) makes
//! it look for new `kill.json` files among its runs; a stop signal kills every run (each
//! with its kill method) and ends it; on a remote worker, the worker's death kills every
//! run with the worker-death kill.

use super::supervisor::{
    handle_signal, kill_file, supervise_run, take_over, watch_worker, KillFile, KillSwitch,
    LogWriter, KILL_REQUEST_SIGNAL, STOP_SIGNALS, WORKER_DEATH_SIGNAL,
};
use super::Launch;
use crate::state::StateDir;
use crate::task::InvocationId;
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use std::collections::HashMap;
use std::fs::File;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long a runner waits for its host to take a run before starting another host
/// (a host stopped by SIGSTOP must not stall the scheduler).
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The stack of a run's thread: it starts the task and waits for it; JSON and SQLite
/// work happens on the heap or the log writer's thread.
const RUN_STACK: usize = 256 * 1024;

/// How often an idle host wakes up to reap the threads of ended runs.
const IDLE_WAKE: Duration = Duration::from_millis(500);

/// A supervisor host started by this process.
pub struct HostClient {
    socket: UnixStream,
    child: Child,
}

impl HostClient {
    /// Starts `exe supervise` for the state dir, detached (it makes its own session),
    /// with its diagnostics going to `log`.
    pub fn spawn(exe: &Path, state: &StateDir, log: File) -> Result<Self, String> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| format!("cannot make a socket for the supervisor host: {e}"))?;
        // Hand the host its end: clear close-on-exec for this spawn (nothing else
        // spawns meanwhile), then close our copy. No pre_exec hook, so std can use
        // posix_spawn, which stays fast however large this process is.
        nix::fcntl::fcntl(
            theirs.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .map_err(|e| format!("cannot pass the socket to the supervisor host: {e}"))?;
        // Until it calls setsid, the host shares our process group: a Ctrl-C or
        // hang-up meant for this process must not reach it, so it starts with them
        // ignored.
        let quiet = super::local::IgnoreStopSignals::install();
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
        let child = spawned
            .map_err(|e| format!("cannot start the supervisor host {}: {e}", exe.display()))?;
        let socket = UnixStream::from(ours);
        socket
            .set_write_timeout(Some(SEND_TIMEOUT))
            .map_err(|e| format!("configuring the supervisor host's socket: {e}"))?;
        Ok(Self { socket, child })
    }

    /// Hands the run `invocation`, with its locked launch file, to the host. Once this
    /// returns Ok the host owns the run; on an error the host is unusable (gone or
    /// stuck) and the run was not handed over.
    pub fn send(&self, invocation: InvocationId, lock: &File) -> Result<(), String> {
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
        .map_err(|e| format!("the supervisor host did not take the run: {e}"))
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

/// The last stop signal the host got, and how many.
static STOP_SIGNAL: AtomicI32 = AtomicI32::new(0);
static STOPS: AtomicUsize = AtomicUsize::new(0);
/// How many kill requests the host was told of.
static KILL_REQUESTS: AtomicUsize = AtomicUsize::new(0);
/// The remote worker that started this host is gone.
static WORKER_GONE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(signal: i32) {
    STOP_SIGNAL.store(signal, Ordering::SeqCst);
    STOPS.fetch_add(1, Ordering::SeqCst);
}

extern "C" fn on_kill_request(_: i32) {
    KILL_REQUESTS.fetch_add(1, Ordering::SeqCst);
}

extern "C" fn on_worker_gone(_: i32) {
    WORKER_GONE.store(true, Ordering::SeqCst);
}

/// A run the host supervises.
struct Run {
    dir: PathBuf,
    switch: Arc<KillSwitch>,
    kill_seen: KillFile,
    thread: std::thread::JoinHandle<()>,
}

/// What the host has been told, and the runs it supervises.
struct Host<'a> {
    state: &'a StateDir,
    runs: Vec<Run>,
    logs: HashMap<PathBuf, Arc<LogWriter>>,
    stops_seen: usize,
    kills_seen: usize,
    watching_worker: bool,
    worker_gone: bool,
}

/// Runs the host on `socket` (its end of the pair its runner made) until the runner
/// is gone and every run has recorded its result, or a stop signal ended every run.
pub fn serve(state: &StateDir, socket: OwnedFd) {
    for sig in STOP_SIGNALS {
        handle_signal(sig, on_stop);
    }
    handle_signal(KILL_REQUEST_SIGNAL, on_kill_request);
    let socket = UnixStream::from(socket);
    if let Err(e) = socket.set_read_timeout(Some(IDLE_WAKE)) {
        eprintln!("bistro supervise: configuring the socket: {e}");
    }
    let mut host = Host {
        state,
        runs: Vec::new(),
        logs: HashMap::new(),
        stops_seen: 0,
        kills_seen: 0,
        watching_worker: false,
        worker_gone: false,
    };
    let mut socket = Some(socket);
    loop {
        match socket.as_ref().map(receive) {
            Some(Received::Run(name, lock)) => host.start(&name, lock),
            Some(Received::Nothing) => {}
            // The runner is gone (or stopped us): no more runs. Runs still queued on
            // the socket are dropped with it, and with them their locks: the next tick
            // finds them never started and releases them.
            Some(Received::Closed) => socket = None,
            None => std::thread::sleep(Duration::from_millis(20)),
        }
        if host.handle_signals() {
            socket = None;
        }
        host.runs.retain(|run| !run.thread.is_finished());
        if socket.is_none() && host.runs.is_empty() {
            break;
        }
    }
}

enum Received {
    Run(String, File),
    Nothing,
    Closed,
}

/// The next message on the socket, waiting up to [`IDLE_WAKE`] (less when a signal
/// arrives).
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
            eprintln!("bistro supervise: reading from the runner: {e}");
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
            eprintln!(
                "bistro supervise: a message for run {name} without exactly one lock; ignored"
            );
            Received::Nothing
        }
    }
}

impl Host<'_> {
    /// Starts supervising the run `name`, whose locked launch file is `lock`. A run
    /// that cannot be started is dropped with its lock: the next tick releases it.
    fn start(&mut self, name: &str, lock: File) {
        let Some(invocation) = InvocationId::parse(name) else {
            eprintln!("bistro supervise: {name:?} is not a run; ignored");
            return;
        };
        let dir = self.state.invocation_dir(invocation);
        let path = dir.join(super::LAUNCH_FILE);
        let launch: Launch = match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(launch) => launch,
            Err(e) => {
                eprintln!("bistro supervise: {}: {e}", path.display());
                return;
            }
        };
        if let Some(death) = launch.on_worker_death {
            if !self.watching_worker {
                self.watching_worker = true;
                if !watch_worker(death.pid, on_worker_gone) {
                    on_worker_gone(WORKER_DEATH_SIGNAL as i32);
                }
            }
        }
        let switch = Arc::new(KillSwitch::new());
        let kill_seen = take_over(&dir, &switch);
        if self.worker_gone {
            switch.worker_died();
        }
        let logs = self
            .logs
            .entry(launch.log_db.clone())
            .or_insert_with(|| Arc::new(LogWriter::start(&launch.log_db)))
            .clone();
        let (run_dir, run_switch) = (dir.clone(), switch.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("run {name}"))
            .stack_size(RUN_STACK)
            .spawn(move || {
                supervise_run(&launch, &run_dir, &run_switch, &logs, false);
                // Only now, with the result written, may the run look finished.
                drop(lock);
            });
        match spawned {
            Ok(thread) => self.runs.push(Run {
                dir,
                switch,
                kill_seen,
                thread,
            }),
            Err(e) => eprintln!("bistro supervise: cannot supervise run {name}: {e}"),
        }
    }

    /// Acts on the signals that arrived; true when a stop signal ended taking runs.
    fn handle_signals(&mut self) -> bool {
        let stops = STOPS.load(Ordering::SeqCst);
        let stopping = stops != self.stops_seen;
        if stopping {
            self.stops_seen = stops;
            let signal = STOP_SIGNAL.load(Ordering::SeqCst);
            for run in &self.runs {
                run.switch.request(Some(signal));
            }
        }
        let kills = KILL_REQUESTS.load(Ordering::SeqCst);
        if kills != self.kills_seen {
            self.kills_seen = kills;
            for run in &mut self.runs {
                let now = kill_file(&run.dir);
                if now.is_some() && now != run.kill_seen {
                    run.kill_seen = now;
                    run.switch.request(None);
                }
            }
        }
        if WORKER_GONE.load(Ordering::SeqCst) && !self.worker_gone {
            self.worker_gone = true;
            for run in &self.runs {
                run.switch.worker_died();
            }
        }
        stopping
    }
}
