//! The supervisor of a task run: starts the process, stores its output line by line,
//! waits for it (killing it on request), reads its status file and writes the result.
//! Every run of a supervisor process goes through one event loop ([`super::run_loop`]);
//! this module holds what the loop shares with the runners and killers.
//!
//! A run is supervised either by the detached supervisor host a tick or daemon starts
//! (`bistro supervise`, see [`super::host`]: one process for many runs, so the tasks
//! outlive the tick) or by the `bistro run-task` process itself. The run's lock is held
//! until its result is written, which is how a later tick tells a live run from a lost
//! one, and the supervisor's identity is recorded before the task starts, so whoever
//! finds the run lost can kill everything it started.

use super::process::{self, ProcessId};
use super::run_loop::RunLoop;
use super::spawn::{spawn, SpawnSpec, TaskProcess};
use super::{Launch, TaskResult};
use crate::config::KillRequest;
use crate::status::{TaskStatus, MAX_STATUS_BYTES};
use nix::sys::signal::Signal;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

/// Longest line stored; longer output is cut into pieces of this size.
pub const MAX_LINE_BYTES: usize = 65000;

/// After the task's main process exits, how long its pipes may stay open (held by
/// background children) before the rest of its process group is killed.
pub(super) const PIPE_GRACE: Duration = Duration::from_secs(3);

/// After the task's process group is killed, how long its buffered output may take to
/// reach the log, as long as it keeps coming (a process that left the group could
/// otherwise keep the supervisor forever).
pub(super) const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// The signal [`super::request_kill`] sends a supervisor after writing the run's kill
/// request: "look at your runs' kill requests".
pub const KILL_REQUEST_SIGNAL: Signal = Signal::SIGUSR2;

/// The signal a supervisor on a remote worker gets when the worker dies.
pub const WORKER_DEATH_SIGNAL: Signal = Signal::SIGUSR1;

/// The file a killer writes before signalling the supervisor, to ask for a kill
/// method other than the one the task was launched with (the job's current
/// `kill_subprocess`, or the global one for an orphan of a deleted job).
pub const KILL_REQUEST_FILE: &str = "kill.json";

/// The kill a request asks for: the worker-death kill once the worker is gone, else
/// the request file's, else the launch's.
pub(super) fn kill_request(launch: &Launch, dir: &Path, worker_died: bool) -> KillRequest {
    if let (true, Some(death)) = (worker_died, launch.on_worker_death) {
        return death.kill;
    }
    std::fs::read(dir.join(KILL_REQUEST_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(launch.kill_subprocess)
}

/// The signals that ask a supervisor to stop: it kills its tasks, records them, exits.
pub const STOP_SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

/// Installs `handler` for `signal` (recorded first, so the tasks this process starts
/// get the signal's default back). The handlers given here only touch atomics and
/// write to a pipe.
pub fn handle_signal(signal: Signal, handler: extern "C" fn(i32)) {
    super::spawn::record_handler(signal);
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    let action = SigAction::new(
        SigHandler::Handler(handler),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: every handler passed here only stores to atomics, which is
    // async-signal-safe.
    unsafe {
        let _ = sigaction(signal, &action);
    }
}

/// Arms the worker-death signal with `handler`: true when it is armed and the worker
/// is still our parent (else the worker is gone already, and the caller acts at once).
pub fn watch_worker(worker: i32, handler: extern "C" fn(i32)) -> bool {
    handle_signal(WORKER_DEATH_SIGNAL, handler);
    nix::sys::prctl::set_pdeathsig(WORKER_DEATH_SIGNAL).is_ok()
        && nix::unistd::getppid().as_raw() == worker
}

/// Puts the default dispositions back once the task is over.
pub fn restore_signal_handlers() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    let action = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in STOP_SIGNALS.into_iter().chain([KILL_REQUEST_SIGNAL]) {
        // SAFETY: restoring the default disposition.
        unsafe {
            let _ = sigaction(sig, &action);
        }
    }
}

/// Supervises this process's one run (`bistro run-task`) to completion and writes
/// `result.json` into `dir`; the stop signals and kill requests sent to this process
/// are its kill requests.
///
/// With `echo`, the task's output is also copied to our stdout and stderr (for
/// `run-task` in a terminal).
pub fn supervise(launch: &Launch, dir: &Path, echo: bool) -> TaskResult {
    let mut runs = match RunLoop::new(echo) {
        Ok(runs) => runs,
        Err(e) => {
            let why = format!("cannot supervise {}/{}: {e}", launch.job, launch.node);
            let result = TaskResult {
                status: TaskStatus::error_backoff(why.clone(), crate::now()),
                exit: why,
                killed: false,
                stop_signal: None,
                end_time: crate::now(),
            };
            // Recorded like any result, so the run is not taken for never started.
            let path = dir.join(super::RESULT_FILE);
            let json = serde_json::to_vec(&result).expect("results serialize");
            if let Err(e) = super::run_dirs::write_in_place(&path, &json) {
                eprintln!("bistro run-task: writing {}: {e}", path.display());
            }
            return result;
        }
    };
    runs.start(launch.clone(), dir.to_path_buf(), None);
    loop {
        if let Some((_, result)) = runs.turn(Duration::from_secs(1)).finished.pop() {
            return result;
        }
    }
}

/// Which `kill.json` of a run was last acted on: a new request is a new file.
pub type KillFile = Option<(u64, u64, i64, i64)>;

/// The run's `kill.json` as it is now.
pub fn kill_file(dir: &Path) -> KillFile {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir.join(KILL_REQUEST_FILE))
        .ok()
        .map(|m| (m.dev(), m.ino(), m.mtime(), m.mtime_nsec()))
}

/// Records this process as the run's supervisor, then takes a kill request that came
/// before it: a killer writes its request before it reads the supervisor's identity,
/// so one of the two always sees the other. Returns the request file taken, if any.
pub fn take_over(dir: &Path, me: Option<ProcessId>) -> KillFile {
    if let Some(me) = me {
        if let Err(e) = process::record(&dir.join("supervisor.pid"), me) {
            eprintln!("bistro supervise: {e}");
        }
    }
    kill_file(dir)
}

/// Starts the task of `launch`, in its working directory, made if missing. The start
/// is tried first and the directory made only when the start found it missing (a
/// user may delete it between runs): a `mkdir` per task cost more than the start's
/// other checks.
pub(super) fn spawn_task(launch: &Launch) -> Result<TaskProcess, String> {
    let death_signal =
        Signal::try_from(launch.task_subprocess.parent_death_signal).map_or(0, |sig| sig as i32);
    let spec = SpawnSpec {
        argv: &launch.argv,
        cwd: &launch.cwd,
        process_group: launch.task_subprocess.process_group_leader,
        death_signal,
    };
    match spawn(&spec) {
        Err(e) if e.missing_cwd() => {
            std::fs::create_dir_all(&launch.cwd).map_err(|e| {
                format!(
                    "cannot create working directory {}: {e}",
                    launch.cwd.display()
                )
            })?;
            spawn(&spec)
        }
        started => started,
    }
    .map_err(|e| e.to_string())
}

/// The first bytes of a run's status file. The task makes the file (it is not made
/// for it, so that writing it with `>` creates it rather than truncating it, which ext4
/// follows with a disk flush): a task that wrote none wrote nothing.
pub fn read_status_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    match std::fs::File::open(path) {
        Ok(f) => {
            let mut bytes = Vec::new();
            f.take(MAX_STATUS_BYTES as u64 + 1)
                .read_to_end(&mut bytes)?;
            Ok(bytes)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Signals a child we could not identify in `/proc` (it exited at once).
pub(super) fn child_kill(pid: u32, sig: Signal) -> nix::Result<()> {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig)
}
