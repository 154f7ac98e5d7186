//! The local runner: each task gets a detached supervisor process (`bistro supervise`)
//! that outlives the tick which started it.
//!
//! Liveness is an flock on `running/INV/lock`: the tick takes it before the task is
//! recorded as running and hands the locked descriptor to the supervisor, so there is
//! no instant at which a live supervisor's lock looks free. The lock is released only
//! when the supervisor is gone, whatever killed it.

use super::process::{self, Scope};
use super::{Launch, Outcome, PreparedTask, RunnerError, TaskResult, TaskRunner};
use crate::state::StateDir;
use crate::status::{parse_status, read_status_file, TaskStatus};
use crate::task::RunningTask;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The descriptor number a supervisor finds its invocation lock on.
pub const LOCK_FD: i32 = 3;

/// Runs tasks as children of detached supervisors on this machine.
pub struct LocalRunner {
    state: StateDir,
    exe: PathBuf,
}

impl LocalRunner {
    /// A runner whose supervisors are `exe supervise` (normally this very binary).
    pub fn new(state: StateDir, exe: PathBuf) -> Self {
        Self { state, exe }
    }
}

/// Opens (creating) an invocation's lock file.
pub fn open_lock(dir: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join("lock"))
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
        std::fs::create_dir_all(&dir)
            .map_err(|e| err(&launch, format!("creating {}: {e}", dir.display())))?;
        crate::state::write_atomic(
            &dir.join("launch.json"),
            serde_json::to_string(&launch)
                .expect("serializes")
                .as_bytes(),
        )
        .map_err(|e| err(&launch, e.to_string()))?;
        let lock = open_lock(&dir)
            .map_err(|e| err(&launch, format!("creating {}/lock: {e}", dir.display())))?;
        lock.try_lock()
            .map_err(|e| err(&launch, format!("locking {}/lock: {e}", dir.display())))?;
        Ok(PreparedTask {
            launch,
            lock: Some(lock),
        })
    }

    fn start(&mut self, task: PreparedTask) -> Result<(), RunnerError> {
        let dir = self.state.invocation_dir(task.launch.invocation);
        let log = File::create(dir.join("supervisor.log"))
            .map_err(|e| err(&task.launch, format!("creating supervisor.log: {e}")))?;
        let lock = task
            .lock
            .ok_or_else(|| err(&task.launch, "the task was not prepared".into()))?;
        let lock_fd = lock.as_raw_fd();
        let mut cmd = Command::new(&self.exe);
        cmd.arg("--state-dir")
            .arg(self.state.root())
            .arg("supervise")
            .arg(task.launch.invocation.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // SAFETY: setsid and dup2 are async-signal-safe; nothing else runs in the child.
        unsafe {
            cmd.pre_exec(move || {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if lock_fd == LOCK_FD {
                    let flags = nix::fcntl::fcntl(lock_fd, nix::fcntl::FcntlArg::F_GETFD)
                        .map_err(std::io::Error::from)?;
                    let flags = nix::fcntl::FdFlag::from_bits_truncate(flags)
                        - nix::fcntl::FdFlag::FD_CLOEXEC;
                    nix::fcntl::fcntl(lock_fd, nix::fcntl::FcntlArg::F_SETFD(flags))
                        .map_err(std::io::Error::from)?;
                } else {
                    nix::unistd::dup2(lock_fd, LOCK_FD).map_err(std::io::Error::from)?;
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| {
            err(
                &task.launch,
                format!("cannot start supervisor {}: {e}", self.exe.display()),
            )
        })?;
        drop(lock);
        // The supervisor runs in its own session; reap it in the background so it
        // leaves no zombie while we live.
        std::thread::spawn(move || child.wait());
        Ok(())
    }

    fn check(&mut self, task: &RunningTask) -> Outcome {
        let dir = self.state.invocation_dir(task.invocation);
        if let Some(result) = read_result(&dir) {
            return Outcome::Finished(result);
        }
        match open_lock(&dir) {
            Ok(lock) if lock.try_lock().is_err() => return Outcome::Running,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // Cannot tell (e.g. out of descriptors): assume alive, look again next tick.
            Err(_) => return Outcome::Running,
        }
        if let Some(result) = read_result(&dir) {
            return Outcome::Finished(result);
        }
        lost(&dir, task)
    }

    fn cleanup(&mut self, task: &RunningTask) {
        let _ = std::fs::remove_dir_all(self.state.invocation_dir(task.invocation));
    }
}

fn read_result(dir: &Path) -> Option<TaskResult> {
    let path = dir.join("result.json");
    let text = std::fs::read_to_string(&path).ok()?;
    serde_json::from_str(&text)
        .map_err(|e| eprintln!("bistro: warning: ignoring corrupt {}: {e}", path.display()))
        .ok()
}

/// How long to wait for a lost run's processes to die before looking again next tick.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// The status of a run whose supervisor vanished. Everything the supervisor started is
/// killed first (its session, the task's process group), so the task cannot run twice;
/// then whatever the task managed to report is kept, else `error_backoff` saying the
/// supervisor was lost. A run whose task never started is released untouched.
fn lost(dir: &Path, task: &RunningTask) -> Outcome {
    let supervisor = process::read_record(&dir.join("supervisor.pid"));
    let started = process::read_record(&dir.join("task.pid"));
    let all_dead = supervisor.is_none_or(|p| p.kill_all(Scope::Session, KILL_WAIT))
        && started.is_none_or(|p| p.kill_all(Scope::Group, KILL_WAIT));
    if !all_dead {
        return Outcome::Running;
    }
    if started.is_none() && !dir.join(super::supervisor::SPAWNING).exists() {
        let why = "its supervisor was lost before it started the task (the tick that dispatched it died?)";
        return Outcome::NeverStarted(why.to_string());
    }

    let now = crate::now();
    let lost = format!(
        "the task's supervisor was lost (killed or crashed) while {}/{} ran",
        task.job, task.node
    );
    match std::fs::read(dir.join("status")).map(|b| read_status_file(&b)) {
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
