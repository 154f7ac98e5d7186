//! Kill requests: a killer writes the kill it wants into the run's directory, then
//! signals the run's supervisor, which reads the request and kills the task as it
//! says. Either side may come first: the request is written before the supervisor's
//! identity is read, and a supervisor records its identity before it looks for a
//! request.

use super::constants::KILL_REQUEST_SIGNAL;
use super::diagnostics::SUPERVISE;
use super::process::{self, ProcessId};
use super::run_files::is_supervised;
use super::Launch;
use crate::foundation::config::KillRequest;
use crate::storage::state::{run_dir, StateError};
use std::path::Path;

/// The kill a request asks for: the worker-death kill once the worker is gone, else
/// the request file's (the job's current `kill_subprocess`, or the global one for an
/// orphan of a deleted job), else the launch's.
pub fn kill_request(launch: &Launch, dir: &Path, worker_died: bool) -> KillRequest {
    if let (true, Some(death)) = (worker_died, launch.on_worker_death) {
        return death.kill;
    }
    std::fs::read(dir.join(run_dir::KILL_REQUEST))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(launch.kill_subprocess)
}

/// Which `kill.json` of a run was last acted on: a new request is a new file.
pub type KillFile = Option<(u64, u64, i64, i64)>;

/// The run's `kill.json` as it is now.
pub fn kill_file(dir: &Path) -> KillFile {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir.join(run_dir::KILL_REQUEST))
        .ok()
        .map(|m| (m.dev(), m.ino(), m.mtime(), m.mtime_nsec()))
}

/// Records this process as the run's supervisor, then takes a kill request that came
/// before it: a killer writes its request before it reads the supervisor's identity,
/// so one of the two always sees the other. Returns the request file taken, if any.
pub fn take_over(dir: &Path, me: Option<ProcessId>) -> KillFile {
    if let Some(me) = me {
        if let Err(e) = process::record(&dir.join(run_dir::SUPERVISOR), me) {
            tracing::error!(target: SUPERVISE, "{e}");
        }
    }
    kill_file(dir)
}

/// Why a kill request could not be made: its file could not be written.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct KillError(#[from] StateError);

/// Two kill errors are the same when they say the same (an I/O error has no equality
/// of its own).
impl PartialEq for KillError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

/// Asks the supervisor of the run in `dir` to kill its task as `request` says: the
/// request is written beside the launch spec, then the supervisor gets the
/// kill-request signal and signals the task's process group. A supervisor still
/// starting reads the request once it is up. `Ok(false)` when the run has no live
/// supervisor (it ended, and the next tick records how).
pub fn request_kill(dir: &Path, request: &KillRequest) -> Result<bool, KillError> {
    if !dir.join(run_dir::LAUNCH).exists() {
        return Ok(false);
    }
    // The request is written before the pid is read, and a starting supervisor records
    // its pid before it looks for a request: one of the two always sees the other.
    crate::storage::state::write_replace(
        &dir.join(run_dir::KILL_REQUEST),
        &serde_json::to_vec(request).expect("kill requests serialize"),
    )?;
    match process::read_record(&dir.join(run_dir::SUPERVISOR)).filter(ProcessId::is_alive) {
        Some(supervisor) => {
            supervisor.signal(KILL_REQUEST_SIGNAL, false);
            Ok(true)
        }
        None => Ok(is_supervised(dir) == Some(true)),
    }
}
