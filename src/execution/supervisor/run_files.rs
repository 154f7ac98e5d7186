//! What a run's directory tells whoever looks at it: whether a supervisor still holds
//! the run, the result it recorded, and the status line the task wrote.

use super::TaskResult;
use crate::foundation::status::MAX_STATUS_BYTES;
use crate::storage::state::run_dir;
use std::fs::OpenOptions;
use std::io::Read;
use std::path::Path;

/// What the task file says while the task is being started: from then on the task may
/// exist even if its supervisor dies before recording it.
pub const SPAWNING: &[u8] = b"spawning";

/// Whether a supervisor holds a run's launch file: `Some(false)` when the file is
/// free or gone, `None` when it cannot be told.
pub fn is_supervised(dir: &Path) -> Option<bool> {
    // Read-write: over NFS an exclusive lock needs a descriptor open for writing.
    match OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join(run_dir::LAUNCH))
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
    let bytes = std::fs::read(dir.join(run_dir::RESULT)).ok()?;
    serde_json::from_slice(&bytes).ok()
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
