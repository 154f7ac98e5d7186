//! The state directory: the only code that knows its layout.
//!
//! ```text
//! STATE/lock              flock held by the command that schedules (tick)
//! STATE/config.json       the default config file
//! STATE/statuses.sql3     task statuses, running tasks, metadata
//! STATE/task_logs.sql3    task stdout, stderr and lifecycle events
//! STATE/jobs/JOB/         each job's working directory
//! STATE/running/INV/      one directory per running task: its launch spec (locked
//!                         until its result is written), status file, pids and result
//!                         (the files of [`run_dir`])
//! STATE/running/.spare/   finished runs' directories, reused by later runs
//! STATE/supervisors.log   supervisor hosts' own diagnostics
//! STATE/workers.json      a scheduler's remote workers, for `bistro status`
//! STATE/late/             statuses remote workers sent for runs already given up
//! STATE/http.token        the REST API's secret
//! STATE/worker.token      the secret remote workers call the scheduler with
//! ```

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::model::task::InvocationId;

/// Problems with the state directory itself.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What we were doing.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Nothing has created the state yet (no status database).
    #[error("no state in {0}: run `bistro init` (or a tick) first")]
    NoState(PathBuf),
    /// Another scheduling command holds the lock.
    #[error("state dir {dir} is locked by {holder}; try again later")]
    Locked {
        /// The state directory.
        dir: PathBuf,
        /// Who holds it, as written in the lock file.
        holder: String,
    },
}

/// Wraps an I/O error with the operation and path.
pub fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// A state directory at `root` (not created yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let root = std::path::absolute(&root).unwrap_or(root);
        Self { root }
    }

    /// Creates the directory tree (mode 0700) if it is missing.
    pub fn create(&self) -> Result<(), StateError> {
        for dir in [self.root.clone(), self.jobs_dir(), self.running_dir()] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(io_err("creating", &dir))?;
        }
        Ok(())
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The default config file.
    pub fn default_config(&self) -> PathBuf {
        self.root.join("config.json")
    }

    /// The status database.
    pub fn statuses_db(&self) -> PathBuf {
        self.root.join("statuses.sql3")
    }

    /// The status database, which must already exist: for the commands that read
    /// a state rather than create it. A state dir this user may not search is said
    /// so (`permission denied` with the path), not mistaken for a missing one.
    pub fn existing_statuses_db(&self) -> Result<PathBuf, StateError> {
        self.existing(self.statuses_db())
    }

    /// The task-log database, which must already exist (see
    /// [`existing_statuses_db`](Self::existing_statuses_db)).
    pub fn existing_logs_db(&self) -> Result<PathBuf, StateError> {
        self.existing(self.logs_db())
    }

    fn existing(&self, db: PathBuf) -> Result<PathBuf, StateError> {
        match db.try_exists() {
            Ok(true) => Ok(db),
            Ok(false) => Err(StateError::NoState(self.root().to_path_buf())),
            Err(source) => Err(StateError::Io {
                op: "reading",
                path: db,
                source,
            }),
        }
    }

    /// The task-log database.
    pub fn logs_db(&self) -> PathBuf {
        self.root.join("task_logs.sql3")
    }

    /// Parent of the job working directories.
    pub fn jobs_dir(&self) -> PathBuf {
        self.root.join("jobs")
    }

    /// A job's working directory (the name escaped so it is always one path component).
    pub fn job_dir(&self, job: &str) -> PathBuf {
        self.jobs_dir().join(escape_component(job))
    }

    /// Parent of the per-invocation directories.
    pub fn running_dir(&self) -> PathBuf {
        self.root.join("running")
    }

    /// One running task's directory.
    pub fn invocation_dir(&self, invocation: InvocationId) -> PathBuf {
        self.running_dir().join(invocation.to_string())
    }

    /// Finished runs' directories, kept for later runs to reuse. Not an invocation
    /// id, so the sweep of stray run directories leaves it alone.
    pub fn spare_dir(&self) -> PathBuf {
        self.running_dir().join(".spare")
    }

    /// Where supervisor hosts write their own diagnostics.
    pub fn supervisors_log(&self) -> PathBuf {
        self.root.join("supervisors.log")
    }

    /// A scheduler's remote workers as last seen, for `bistro status` and the status
    /// page (rewritten after each sweep).
    pub fn workers_file(&self) -> PathBuf {
        self.root.join("workers.json")
    }

    /// Statuses that remote workers sent for runs already given up for lost, kept
    /// until they are recorded.
    pub fn late_dir(&self) -> PathBuf {
        self.root.join("late")
    }

    /// The REST API's secret.
    pub fn http_token(&self) -> PathBuf {
        self.root.join("http.token")
    }

    /// The secret remote workers call the scheduler with.
    pub fn worker_token(&self) -> PathBuf {
        self.root.join("worker.token")
    }

    /// Takes the scheduling lock, waiting up to `wait` for it.
    pub fn lock(&self, wait: Duration) -> Result<StateLock, StateError> {
        let path = self.root.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_err("opening the lock file", &path))?;
        let deadline = Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    let holder = if holder.trim().is_empty() {
                        "another process".to_string()
                    } else {
                        holder.trim().to_string()
                    };
                    return Err(StateError::Locked {
                        dir: self.root.clone(),
                        holder,
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io_err("locking", &path)(e)),
            }
        }
        let me = format!(
            "pid {} (since {})",
            std::process::id(),
            crate::foundation::time::now()
        );
        file.set_len(0)
            .and_then(|()| file.write_all(me.as_bytes()))
            .map_err(io_err("writing the lock file", &path))?;
        Ok(StateLock { _file: file })
    }
}

/// The files of one run's directory (`STATE/running/INV/`, or a remote worker's own
/// run directory), by name.
pub mod run_dir {
    /// The run's launch spec, flocked from before the run is recorded until its result
    /// is written (or its supervisor is gone).
    pub const LAUNCH: &str = "launch.json";
    /// The run's result, written by its supervisor.
    pub const RESULT: &str = "result.json";
    /// The run's task: blank until its supervisor is about to start it, then
    /// `spawning`, then the task's process identity.
    pub const TASK: &str = "task.pid";
    /// The identity of the run's supervisor.
    pub const SUPERVISOR: &str = "supervisor.pid";
    /// The kill a killer asks for, written before it signals the supervisor.
    pub const KILL_REQUEST: &str = "kill.json";
    /// The status line the task writes.
    pub const STATUS: &str = "status";
    /// On a scheduler: the remote worker the run was sent to, written before the run
    /// is recorded as running.
    pub const REMOTE: &str = "remote.json";
    /// On a scheduler: marks a run whose worker was counted as lost, so a report
    /// that arrives for it afterwards is late, whatever the order of the two.
    pub const LOST: &str = "lost";
    /// On a scheduler: a kill request once delivered to the run's worker.
    pub const KILL_SENT: &str = "kill.sent";
    /// With Slurm: the run's job name and array index, written before it is
    /// submitted, then with the array's job id once `sbatch` answered.
    pub const SLURM: &str = "slurm.json";
    /// With Slurm: the batch script a compute node runs for this run (needs only sh).
    pub const SCRIPT: &str = "run.sh";
    /// With Slurm: written by the batch script before it starts the task.
    pub const STARTED: &str = "started";
    /// With Slurm: the task's exit code, written by the batch script once it ended.
    pub const EXIT: &str = "exit";
    /// With Slurm: the task's standard output.
    pub const STDOUT: &str = "stdout";
    /// With Slurm: the task's standard error.
    pub const STDERR: &str = "stderr";
    /// With Slurm: how many bytes of `stdout` and `stderr` are in the task-log database.
    pub const LOG_OFFSETS: &str = "log_offsets.json";
    /// With Slurm: the run outlived its `task_timeout_sec` and bistro cancelled it, so
    /// its end reads "timed out after N s".
    pub const TIMED_OUT: &str = "timed_out";
}

/// Proof that this process holds the scheduling lock; released on drop or death.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

pub use crate::foundation::sanitize::escape_component;

/// Writes a file atomically: a temporary file in the same directory, fsync, rename.
/// For files a user keeps (configs).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    write_replacing(path, bytes, true)
}

/// Writes a file atomically without forcing it to disk: readers never see a torn file
/// and it survives any process crash, but not a power cut. For the per-run files of
/// `running/` (launch spec, pids, result), which a power cut makes moot anyway and
/// whose fsync would dominate the cost of starting a task.
pub fn write_replace(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    write_replacing(path, bytes, false)
}

/// Writes `bytes` to a new temporary file beside `path` and renames it over `path`.
/// The temporary name is random and created with `create_new` (`O_EXCL`, which also
/// refuses a symlink), so two writers never share one and a name planted in a shared
/// directory is never written through; it is removed if the write fails.
fn write_replacing(path: &Path, bytes: &[u8], sync: bool) -> Result<(), StateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{:016x}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        rand::random::<u64>()
    ));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err("creating", &tmp))?;
    let written = file
        .write_all(bytes)
        .and_then(|()| if sync { file.sync_all() } else { Ok(()) })
        .map_err(io_err("writing", &tmp))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(io_err("renaming into place", path)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

impl crate::foundation::error::HasKind for StateError {
    fn kind(&self) -> crate::foundation::error::ErrorKind {
        match self {
            Self::Io { .. } => crate::foundation::error::ErrorKind::Runtime,
            Self::NoState(_) => crate::foundation::error::ErrorKind::Usage,
            Self::Locked { .. } => crate::foundation::error::ErrorKind::Locked,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_become_single_safe_components() {
        assert_eq!(escape_component("simple_job"), "simple_job");
        assert_eq!(escape_component("a/b"), "a%2Fb");
        assert_eq!(escape_component(".."), "%2E.");
        assert_eq!(escape_component(""), "%00");
        assert_eq!(escape_component("v1.2"), "v1.2");
    }

    #[test]
    fn atomic_writes_replace_the_file_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        write_atomic(&path, b"one").unwrap();
        write_replace(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        std::fs::create_dir(dir.path().join("d")).unwrap();
        let failed = write_atomic(&dir.path().join("d"), b"x").unwrap_err();
        assert!(failed.to_string().contains("renaming"), "{failed}");
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, vec!["d", "f.json"], "no temporary is left behind");
    }

    #[test]
    fn a_second_lock_waits_then_fails_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        state.create().unwrap();
        let held = state.lock(Duration::ZERO).unwrap();
        let err = state
            .lock(Duration::from_millis(100))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        state.lock(Duration::ZERO).unwrap();
    }
}
