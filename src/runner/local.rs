//! The local runner: tasks run under a detached supervisor host (`bistro supervise`,
//! see [`super::host`]) that outlives the tick which started it.
//!
//! Liveness is an flock on `running/INV/launch.json`: the tick takes it while writing
//! the launch spec, before the task is recorded as running, and hands the locked
//! descriptor to the host, so there is no instant at which a live run's lock looks
//! free. The lock is released only once the run's result is written or its supervisor
//! is gone, whatever killed it.

use super::host::HostClient;
use super::process::{self, Scope};
use super::run_dirs::{is_written, overwrite, RunDirs};
use super::supervisor::{KILL_REQUEST_FILE, KILL_REQUEST_SIGNAL};
use super::{Launch, Outcome, PreparedTask, RunnerError, TaskResult, TaskRunner};
use crate::config::KillRequest;
use crate::state::StateDir;
use crate::status::{parse_status, read_status_file, TaskStatus};
use crate::task::{InvocationId, RunningTask};
use nix::sys::signal::{SigAction, SigSet, Signal};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The run's launch spec, flocked from before the run is recorded until its result is
/// written (or its supervisor is gone).
pub const LAUNCH_FILE: &str = "launch.json";

/// How often a runner looks at every run, even those its host has not said ended (a
/// message can be lost when the socket is full, and a host can hang).
pub const FULL_CHECK: Duration = Duration::from_secs(1);

/// Runs tasks on this machine under a detached supervisor host.
pub struct LocalRunner {
    state: StateDir,
    exe: PathBuf,
    log: Option<File>,
    /// Run directories, reused.
    dirs: RunDirs,
    /// The host this runner hands its runs to, started with the first run.
    host: Option<HostClient>,
    /// Runs handed to that host that it has not said ended: while it lives, they are
    /// running without a look at their directories (until the next full check).
    handed: HashSet<InvocationId>,
    /// Runs the host said ended.
    ended: HashSet<InvocationId>,
    /// Our caller listens to the host's news of ended runs (a daemon does, a worker
    /// does not): only then is a run it did not hear of taken to be running.
    listening: bool,
    /// When every run is looked at again, whatever the host said.
    full_check_at: Instant,
    /// Hosts this process started that stopped taking runs, not reaped yet.
    children: Vec<std::process::Child>,
}

impl LocalRunner {
    /// A runner whose supervisor host is `exe supervise` (normally this very binary).
    pub fn new(state: StateDir, exe: PathBuf) -> Self {
        Self {
            dirs: RunDirs::new(state.clone()),
            state,
            exe,
            log: None,
            host: None,
            handed: HashSet::new(),
            ended: HashSet::new(),
            listening: false,
            full_check_at: Instant::now(),
            children: Vec::new(),
        }
    }

    /// Hands a run to the host, starting a host first if there is none or the one
    /// there was is gone or stuck (it keeps the runs it has).
    fn hand_over(&mut self, launch: &Launch, lock: &File) -> Result<(), String> {
        if let Some(host) = &self.host {
            if host.send(launch.invocation, lock).is_ok() {
                return Ok(());
            }
        }
        if let Some(gone) = self.host.take() {
            self.children.push(gone.into_child());
            self.handed.clear();
        }
        let log = self.supervisor_log()?;
        let host = HostClient::spawn(&self.exe, &self.state, log)?;
        let sent = host.send(launch.invocation, lock);
        self.host = Some(host);
        sent
    }

    /// Where supervisors write their own diagnostics: `STATE/supervisors.log`, shared
    /// (appends of whole lines), opened once per runner.
    fn supervisor_log(&mut self) -> Result<File, String> {
        if self.log.is_none() {
            let path = self.state.root().join("supervisors.log");
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| format!("opening {}: {e}", path.display()))?;
            self.log = Some(file);
        }
        let log = self.log.as_ref().expect("just opened");
        log.try_clone()
            .map_err(|e| format!("sharing supervisors.log: {e}"))
    }
}

fn err(launch: &Launch, message: String) -> RunnerError {
    RunnerError {
        job: launch.job.clone(),
        node: launch.node.clone(),
        message,
    }
}

impl TaskRunner for LocalRunner {
    fn prepare(&mut self, launch: Launch) -> Result<PreparedTask, RunnerError> {
        let dir = self.state.invocation_dir(launch.invocation);
        // The launch file comes locked; a reused directory's is there, written in place.
        let file = self
            .dirs
            .make(&dir)
            .map_err(|e| err(&launch, format!("creating {}: {e}", dir.display())))?;
        let path = dir.join(LAUNCH_FILE);
        let spec = serde_json::to_vec(&launch).expect("launch specs serialize");
        overwrite(&file, &spec)
            .map_err(|e| err(&launch, format!("writing {}: {e}", path.display())))?;
        Ok(PreparedTask {
            launch,
            lock: Some(file),
        })
    }

    /// Hands the run to the host; the lock goes with it (our copy is closed).
    fn start(&mut self, task: PreparedTask) -> Result<(), RunnerError> {
        let lock = task
            .lock
            .ok_or_else(|| err(&task.launch, "the task was not prepared".into()))?;
        self.hand_over(&task.launch, &lock)
            .map_err(|e| err(&task.launch, e))?;
        if self.listening {
            self.handed.insert(task.launch.invocation);
        }
        Ok(())
    }

    /// A run handed to our live host that it has not said ended is running: its
    /// directory is read only at the next full check.
    fn check(&mut self, task: &RunningTask) -> Outcome {
        let heard_of = self.handed.contains(&task.invocation)
            && !self.ended.contains(&task.invocation)
            && Instant::now() < self.full_check_at;
        if heard_of {
            return Outcome::Running;
        }
        local_outcome(&self.state.invocation_dir(task.invocation), task)
    }

    fn cleanup(&mut self, task: &RunningTask) {
        self.handed.remove(&task.invocation);
        self.ended.remove(&task.invocation);
        self.dirs
            .recycle(&self.state.invocation_dir(task.invocation));
    }

    /// Reaps the hosts this process started that have exited, so a long-running
    /// scheduler leaves no zombies; a host that exited by itself (it was stopped) is
    /// replaced at the next start. Only our own children are waited for: a global
    /// wait would steal the exit status of other children (node scripts).
    fn tidy_up(&mut self) {
        if let Some(host) = &mut self.host {
            if matches!(host.child_mut().try_wait(), Ok(Some(_)) | Err(_)) {
                self.host = None;
                self.handed.clear();
            }
        }
        // The iteration that just ended looked at every run if the time had come.
        let now = Instant::now();
        if now >= self.full_check_at {
            self.full_check_at = now + FULL_CHECK;
        }
        self.children
            .retain_mut(|child| !matches!(child.try_wait(), Ok(Some(_)) | Err(_)));
    }

    fn wait_for_ends(&mut self, period: std::time::Duration) -> bool {
        self.listening = true;
        match &self.host {
            Some(host) => host.wait_for_ends(period, &mut self.ended),
            None => {
                std::thread::sleep(period);
                false
            }
        }
    }

    /// A run whose supervisor is already gone needs no kill: the next tick records
    /// how it ended.
    fn kill(&mut self, task: &RunningTask, request: &KillRequest) -> Result<bool, RunnerError> {
        request_kill(&self.state.invocation_dir(task.invocation), request).map_err(|message| {
            RunnerError {
                job: task.job.clone(),
                node: task.node.clone(),
                message,
            }
        })
    }
}

/// How the run in `dir` stands, judged by its supervisor's lock and result. A run
/// sent to a remote worker (it has `remote.json`) is left to the scheduler that
/// talks to that worker: it counts as running until its status arrives.
pub fn local_outcome(dir: &Path, task: &RunningTask) -> Outcome {
    if let Some(result) = read_result(dir) {
        return Outcome::Finished(result);
    }
    if dir.join(super::remote::hub::REMOTE_FILE).exists() {
        return Outcome::Running;
    }
    match is_supervised(dir) {
        Some(true) => return Outcome::Running,
        Some(false) => {}
        // Cannot tell (e.g. out of descriptors): assume alive, look again next tick.
        None => return Outcome::Running,
    }
    if let Some(result) = read_result(dir) {
        return Outcome::Finished(result);
    }
    lost(dir, task)
}

/// Asks the supervisor of the run in `dir` to kill its task as `request` says: the
/// request is written beside the launch spec, then the supervisor gets the
/// kill-request signal and signals the task's process group. A supervisor still starting reads the request
/// once it is up. `Ok(false)` when the run has no live supervisor (it ended, and the
/// next tick records how).
pub fn request_kill(dir: &Path, request: &KillRequest) -> Result<bool, String> {
    if !dir.join(LAUNCH_FILE).exists() {
        return Ok(false);
    }
    // The request is written before the pid is read, and a starting supervisor records
    // its pid before it looks for a request: one of the two always sees the other.
    crate::state::write_replace(
        &dir.join(KILL_REQUEST_FILE),
        &serde_json::to_vec(request).expect("kill requests serialize"),
    )
    .map_err(|e| e.to_string())?;
    match process::read_record(&dir.join("supervisor.pid")).filter(process::ProcessId::is_alive) {
        Some(supervisor) => {
            supervisor.signal(KILL_REQUEST_SIGNAL, false);
            Ok(true)
        }
        None => Ok(is_supervised(dir) == Some(true)),
    }
}

/// SIGINT, SIGHUP and SIGTERM held back while a supervisor host starts: ignored, which
/// the host keeps across exec until it has left our process group (a Ctrl-C or
/// hang-up meant for us must not reach it), and blocked in this thread, so that one
/// sent to us meanwhile stays pending instead of being lost (Linux never discards a
/// blocked signal, even an ignored one) and reaches our restored handler on drop. The
/// host inherits the mask too (std leaves it), and unblocks them once it handles them
/// (`RunLoop::new`).
pub(super) struct HoldStopSignals {
    previous: Vec<(Signal, SigAction)>,
    mask: SigSet,
}

impl HoldStopSignals {
    pub(super) fn install() -> Self {
        Self::hold(&[Signal::SIGINT, Signal::SIGHUP, Signal::SIGTERM])
    }

    fn hold(signals: &[Signal]) -> Self {
        use nix::sys::signal::{pthread_sigmask, sigaction, SaFlags, SigHandler, SigmaskHow};
        let held: SigSet = signals.iter().copied().collect();
        let mut mask = SigSet::empty();
        let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&held), Some(&mut mask));
        let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        let previous = signals
            .iter()
            // SAFETY: installing SIG_IGN runs no code in signal context.
            .filter_map(|&sig| {
                unsafe { sigaction(sig, &ignore) }
                    .ok()
                    .map(|old| (sig, old))
            })
            .collect();
        Self { previous, mask }
    }
}

impl Drop for HoldStopSignals {
    fn drop(&mut self) {
        for (sig, old) in &self.previous {
            // SAFETY: restores the disposition that was in place before.
            unsafe {
                let _ = nix::sys::signal::sigaction(*sig, old);
            }
        }
        // Only now: a signal that came meanwhile goes to the restored handler.
        let _ = nix::sys::signal::pthread_sigmask(
            nix::sys::signal::SigmaskHow::SIG_SETMASK,
            Some(&self.mask),
            None,
        );
    }
}

/// Whether a supervisor holds a run's launch file: `Some(false)` when the file is
/// free or gone, `None` when it cannot be told.
pub fn is_supervised(dir: &Path) -> Option<bool> {
    // Read-write: over NFS an exclusive lock needs a descriptor open for writing.
    match OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join(LAUNCH_FILE))
    {
        Ok(file) => match file.try_lock() {
            Ok(()) => Some(false),
            Err(std::fs::TryLockError::WouldBlock) => Some(true),
            Err(std::fs::TryLockError::Error(_)) => None,
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(false),
        Err(_) => None,
    }
}

/// The result a run's supervisor recorded, if it finished. The result is written in
/// place (the file is reused, see [`super::run_dirs`]): a blank file, or one caught
/// while it is written, is no result yet.
pub fn read_result(dir: &Path) -> Option<TaskResult> {
    let bytes = std::fs::read(dir.join(RESULT_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A run's result, written by its supervisor.
pub const RESULT_FILE: &str = "result.json";

/// A run's task: blank until its supervisor is about to start it, then
/// [`SPAWNING`], then the task's [`process::ProcessId`].
pub const TASK_FILE: &str = "task.pid";

/// What [`TASK_FILE`] says while the task is being started: from then on the task may
/// exist even if its supervisor dies before recording it.
pub const SPAWNING: &[u8] = b"spawning";

/// How long to wait for a lost run's processes to die before looking again next tick.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// The status of a run whose supervisor vanished. Everything the supervisor started is
/// killed first (its session, the task's process group), so the task cannot run twice;
/// then whatever the task managed to report is kept, else `error_backoff` saying the
/// supervisor was lost. A run whose task never started is released untouched.
///
/// A supervisor host that is still alive gave up on this run alone (it could not
/// write the result): only the run's own task group is killed, not the host's session.
fn lost(dir: &Path, task: &RunningTask) -> Outcome {
    let supervisor = process::read_record(&dir.join("supervisor.pid")).filter(|p| !p.is_alive());
    let task_file = std::fs::read(dir.join(TASK_FILE)).unwrap_or_default();
    let started: Option<process::ProcessId> = serde_json::from_slice(&task_file).ok();
    let all_dead = supervisor.is_none_or(|p| p.kill_all(Scope::Session, KILL_WAIT))
        && started.is_none_or(|p| p.kill_all(Scope::Group, KILL_WAIT));
    if !all_dead {
        return Outcome::Running;
    }
    if started.is_none() && !is_written(&task_file) {
        let why = "its supervisor was lost before it started the task (the tick that dispatched it died?)";
        return Outcome::NeverStarted(why.to_string());
    }

    let now = crate::now();
    let lost = format!(
        "the task's supervisor was lost (killed or crashed) while {}/{} ran",
        task.job, task.node
    );
    match super::supervisor::read_status_bytes(&dir.join("status")).map(|b| read_status_file(&b)) {
        Ok(Ok(line)) => Outcome::Lost(
            parse_status(&line, now),
            format!("{lost}; keeping the status it wrote"),
        ),
        Ok(Err(why)) => Outcome::Lost(
            TaskStatus::error_backoff(format!("{lost}: {why}"), now),
            lost,
        ),
        Err(e) => Outcome::Lost(
            TaskStatus::error_backoff(format!("{lost}: cannot read its status file: {e}"), now),
            lost,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::InvocationId;

    #[test]
    fn a_signal_that_comes_while_signals_are_held_reaches_the_handler_once_released() {
        use nix::sys::signal::{raise, sigaction, SaFlags, SigHandler};
        use std::sync::atomic::{AtomicUsize, Ordering};
        static GOT: AtomicUsize = AtomicUsize::new(0);
        extern "C" fn count(_: i32) {
            GOT.fetch_add(1, Ordering::SeqCst);
        }
        // A signal nothing else in this process handles (its default is to ignore).
        let handler = SigAction::new(
            SigHandler::Handler(count),
            SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: the handler only adds to an atomic.
        unsafe { sigaction(Signal::SIGWINCH, &handler) }.unwrap();
        let held = HoldStopSignals::hold(&[Signal::SIGWINCH]);
        raise(Signal::SIGWINCH).unwrap();
        assert_eq!(GOT.load(Ordering::SeqCst), 0, "held back");
        drop(held);
        assert_eq!(GOT.load(Ordering::SeqCst), 1, "delivered once released");
    }

    fn prepared(state: &StateDir) -> (PreparedTask, PathBuf) {
        let invocation = InvocationId {
            start_time: 1,
            rand: 7,
        };
        let launch = Launch {
            job: "j".into(),
            node: "n".into(),
            invocation,
            argv: vec!["true".into()],
            cwd: state.root().into(),
            status_file: state.root().join("status"),
            log_db: state.logs_db(),
            worker_host: "h".into(),
            task_subprocess: Default::default(),
            kill_subprocess: Default::default(),
            on_worker_death: None,
            worker: None,
        };
        let mut runner = LocalRunner::new(state.clone(), "unused".into());
        let task = runner.prepare(launch).unwrap();
        (task, state.invocation_dir(invocation))
    }

    #[test]
    fn a_kill_asked_while_the_supervisor_starts_is_left_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let (task, run) = prepared(&state);
        assert_eq!(request_kill(&run, &KillRequest::default()), Ok(true));
        assert!(run.join(KILL_REQUEST_FILE).exists());
        drop(task);
        // A task another test of this process starts holds a copy of every descriptor
        // (the lock's too) until it execs: the lock is free once that copy is gone.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while request_kill(&run, &KillRequest::default()) != Ok(false) {
            assert!(
                std::time::Instant::now() < deadline,
                "no one holds the launch file: the run ended"
            );
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_kill_of_a_cleaned_up_run_finds_nothing_to_kill() {
        let dir = tempfile::tempdir().unwrap();
        let run = StateDir::new(dir.path()).invocation_dir(InvocationId {
            start_time: 1,
            rand: 7,
        });
        assert_eq!(request_kill(&run, &KillRequest::default()), Ok(false));
        assert!(!run.exists());
    }
}
