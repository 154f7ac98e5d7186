//! The local runner: tasks run under a detached supervisor host (`bistro supervise`,
//! see [`crate::execution::supervisor::host`]) that outlives the tick which started it.
//!
//! Liveness is an flock on `running/INV/launch.json`: the tick takes it while writing
//! the launch spec, before the task is recorded as running, and hands the locked
//! descriptor to the host, so there is no instant at which a live run's lock looks
//! free. The lock is released only once the run's result is written or its supervisor
//! is gone, whatever killed it.

use super::{Outcome, PreparedTask, RunnerError, TaskRunner};
use crate::execution::supervisor::host::{HostClient, HostError};
use crate::execution::supervisor::kill::request_kill;
use crate::execution::supervisor::process::{self, Scope};
use crate::execution::supervisor::run_dirs::{is_written, overwrite, RunDirs};
use crate::execution::supervisor::run_files::{is_supervised, read_result, read_status_bytes};
use crate::execution::supervisor::Launch;
use crate::foundation::config::KillRequest;
use crate::foundation::status::{parse_status, read_status_file, TaskStatus};
use crate::model::task::{InvocationId, RunningTask};
use crate::storage::state::{run_dir, StateDir};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
    fn hand_over(&mut self, launch: &Launch, lock: &File) -> Result<(), HandOverError> {
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
        Ok(sent?)
    }

    /// Where supervisors write their own diagnostics: `STATE/supervisors.log`, shared
    /// (appends of whole lines), opened once per runner.
    fn supervisor_log(&mut self) -> Result<File, HandOverError> {
        if self.log.is_none() {
            let path = self.state.supervisors_log();
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|source| HandOverError::OpenLog { path, source })?;
            self.log = Some(file);
        }
        let log = self.log.as_ref().expect("just opened");
        log.try_clone().map_err(HandOverError::ShareLog)
    }
}

/// Why a run could not be handed to a supervisor host.
#[derive(Debug, thiserror::Error)]
enum HandOverError {
    /// The supervisors' log could not be opened.
    #[error("opening {}: {source}", path.display())]
    OpenLog {
        /// The log.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The supervisors' log could not be shared with a new host.
    #[error("sharing supervisors.log: {0}")]
    ShareLog(std::io::Error),
    /// The host could not be started or did not take the run.
    #[error(transparent)]
    Host(#[from] HostError),
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
        let path = dir.join(run_dir::LAUNCH);
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
            .map_err(|e| err(&task.launch, e.to_string()))?;
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
        request_kill(&self.state.invocation_dir(task.invocation), request).map_err(|e| {
            RunnerError {
                job: task.job.clone(),
                node: task.node.clone(),
                message: e.to_string(),
            }
        })
    }
}

/// How the run in `dir` stands, judged by its supervisor's lock and result. A run
/// sent to a remote worker (it has `remote.json`) or to Slurm (`slurm.json`) is left
/// to the scheduler that sent it: it counts as running until its status arrives.
pub fn local_outcome(dir: &Path, task: &RunningTask) -> Outcome {
    if let Some(result) = read_result(dir) {
        return Outcome::Finished(result);
    }
    // A run sent to a remote worker or to Slurm is left to the runner that sent it.
    if dir.join(run_dir::REMOTE).exists() {
        return Outcome::Running;
    }
    if dir.join(run_dir::SLURM).exists() {
        warn_of_slurm_runs(task);
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

/// Says, once per process, that runs submitted to Slurm wait for a Slurm runner: a
/// scheduler switched to `--runner local` cannot settle or cancel them, and they keep
/// their resources until one does.
fn warn_of_slurm_runs(task: &RunningTask) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            "{}/{} (and maybe others) was submitted to Slurm and counts as running until a \
             scheduler with --runner slurm settles it; run one tick with --runner slurm, \
             then switch back",
            task.job,
            task.node
        );
    });
}

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
    let supervisor = process::read_record(&dir.join(run_dir::SUPERVISOR)).filter(|p| !p.is_alive());
    let task_file = std::fs::read(dir.join(run_dir::TASK)).unwrap_or_default();
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

    let now = crate::foundation::time::now();
    let lost = format!(
        "the task's supervisor was lost (killed or crashed) while {}/{} ran",
        task.job, task.node
    );
    match read_status_bytes(&dir.join(run_dir::STATUS)).map(|b| read_status_file(&b)) {
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
    use crate::model::task::InvocationId;

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
            task_timeout_sec: None,
            on_worker_death: None,
            worker: None,
            slurm: None,
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
        assert!(run.join(run_dir::KILL_REQUEST).exists());
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
