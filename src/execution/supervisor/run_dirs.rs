//! Run directories (`STATE/running/INV/`), reused from one run to the next.
//!
//! A run's directory holds its launch spec, its status file, its supervisor's and
//! task's identities and its result. Creating and deleting these files for every run
//! made dispatch slow down the longer it ran on ext4 without a journal (the file
//! system of the machines we build on): its inode allocator skips, one by one, every
//! inode freed in the last minutes, so each new file cost more than the last. A
//! finished run's directory is therefore moved to `running/.spare/` as it is, and the
//! next run renames it into place and empties its files: in steady state a run creates
//! and deletes only the task's status file, made empty before the run starts (so that
//! a task can report its status on a file system out of inodes).
//!
//! A spare is emptied when it is taken, not when it is put aside: its supervisor may
//! still hold the launch file's lock for a moment after its result is readable, and
//! only a spare whose lock is free may be taken (a file locked by a past run would
//! block the next one). A spare still locked waits for a later run, so no directory is
//! thrown away for being released late.
//!
//! Reused files are never truncated: a truncation to nothing makes ext4 flush the file
//! to disk when it is closed (its guard for programs that rewrite a file in place), and
//! any truncation costs more than the write. A file is "blank" instead, all spaces,
//! and rewritten in place over its old content, padded with spaces; its readers skip
//! whitespace, and take a blank or half-written file for one not written yet.
//!
//! Only the runner holding the state lock makes and recycles directories, so spares
//! are never shared; a spare that vanished anyway is skipped.

use crate::storage::state::{run_dir, StateDir};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// The files a run directory keeps when it is reused; any other file in it (the
/// status file, a kill request, a temporary file) is removed.
pub const REUSED_FILES: [&str; 4] = [
    run_dir::LAUNCH,
    run_dir::RESULT,
    run_dir::SUPERVISOR,
    run_dir::TASK,
];

/// The reused files that are blanked: all but the launch spec, which the next run
/// writes before anyone reads the directory.
const BLANKED_FILES: [&str; 3] = [run_dir::RESULT, run_dir::SUPERVISOR, run_dir::TASK];

/// What a reused file holds until it is written: spaces, never nothing (see the module
/// doc).
pub const BLANK: &[u8] = b" ";

/// Writes `bytes` over the file at `path` (made if missing), padded with spaces to the
/// file's old length: the file then holds `bytes` and whitespace (which JSON readers
/// skip), or only spaces ([`BLANK`]) for none. It is never truncated: a truncation cost
/// more than the write, and one to nothing makes ext4 flush the file.
pub fn write_in_place(path: &Path, bytes: &[u8]) -> io::Result<()> {
    overwrite(&open_in_place(path)?, bytes)
}

/// Opens the file at `path` (made if missing) for [`overwrite`], as it is.
pub fn open_in_place(path: &Path) -> io::Result<std::fs::File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// [`write_in_place`] through a file already open for writing.
pub fn overwrite(file: &std::fs::File, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let bytes = if bytes.is_empty() { BLANK } else { bytes };
    let held = file.metadata()?.len() as usize;
    if held <= bytes.len() {
        return file.write_all_at(bytes, 0);
    }
    let mut padded = Vec::with_capacity(held);
    padded.extend_from_slice(bytes);
    padded.resize(held, b' ');
    file.write_all_at(&padded, 0)
}

/// Whether a reused file read as `bytes` was written since it was blanked.
pub fn is_written(bytes: &[u8]) -> bool {
    !bytes.trim_ascii().is_empty()
}

/// Spares kept at most; more finished directories are removed.
const MAX_SPARES: usize = 1024;

/// The run directories of a state dir, with its spares.
pub struct RunDirs {
    state: StateDir,
    /// The spares, read from disk on first use, oldest first: the longer a spare
    /// waited, the surer its lock is free. A spare still locked goes to the back.
    spares: Option<VecDeque<PathBuf>>,
}

/// What became of a spare that a new run tried to take.
enum Taken {
    /// It is the run's directory now; its launch file, open and locked.
    Yes(File),
    /// Its launch file is still locked: it stays a spare.
    Held,
    /// It is gone.
    Gone,
}

impl RunDirs {
    /// The run directories of `state`.
    pub fn new(state: StateDir) -> Self {
        Self {
            state,
            spares: None,
        }
    }

    fn spare_dir(&self) -> PathBuf {
        self.state.spare_dir()
    }

    fn spares(&mut self) -> &mut VecDeque<PathBuf> {
        let spare_dir = self.spare_dir();
        self.spares.get_or_insert_with(|| {
            std::fs::read_dir(&spare_dir)
                .map(|entries| entries.flatten().map(|e| e.path()).collect())
                .unwrap_or_default()
        })
    }

    /// Makes `dir`, a new run's directory, and returns its launch file (made if
    /// missing), open for reading and writing and locked. The directory is a spare
    /// whose lock is free renamed into place when there is one (its reused files
    /// blank, anything else removed), else a new directory. Fails if `dir` exists.
    pub fn make(&mut self, dir: &Path) -> io::Result<File> {
        if dir.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the run's directory already exists",
            ));
        }
        for _ in 0..self.spares().len() {
            let Some(spare) = self.spares().pop_front() else {
                break;
            };
            match take(&spare, dir)? {
                Taken::Yes(launch) => return Ok(launch),
                Taken::Held => self.spares().push_back(spare),
                Taken::Gone => {}
            }
        }
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::create_dir(dir)?;
        let launch = open_launch(dir)?;
        launch.try_lock().map_err(io::Error::from)?;
        new_status_file(dir)?;
        Ok(launch)
    }

    /// Keeps a finished run's directory as a spare, as it is: it is emptied when a
    /// later run takes it. Removes it instead when enough spares are kept or it cannot
    /// be moved.
    pub fn recycle(&mut self, dir: &Path) {
        let spare_dir = self.spare_dir();
        let spare = spare_dir.join(format!("{:016x}", rand::random::<u64>()));
        let kept = self.spares().len() < MAX_SPARES
            && match std::fs::rename(dir, &spare) {
                // The first spare of this state dir.
                Err(e) if e.kind() == io::ErrorKind::NotFound && dir.exists() => {
                    std::fs::create_dir_all(&spare_dir).is_ok()
                        && std::fs::rename(dir, &spare).is_ok()
                }
                moved => moved.is_ok(),
            };
        if kept {
            self.spares().push_back(spare);
        } else {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Opens the launch file of the run directory `dir` for reading and writing (over
/// NFS a lock needs a descriptor open for writing), making it if missing.
fn open_launch(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(run_dir::LAUNCH))
}

/// Takes `spare` as the new run's directory `dir` if its launch file's lock is free:
/// the lock is taken, the spare renamed into place, its reused files blanked and
/// anything else removed.
fn take(spare: &Path, dir: &Path) -> io::Result<Taken> {
    let launch = match open_launch(spare) {
        Ok(launch) => launch,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Taken::Gone),
        Err(e) => return Err(e),
    };
    match launch.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(Taken::Held),
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    match std::fs::rename(spare, dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Taken::Gone),
        Err(e) => return Err(e),
    }
    // Everything the past run, or a late writer by path (a kill request, a stray
    // process of its task), left must not reach the new run.
    for path in remove_strays(dir)? {
        if BLANKED_FILES.iter().any(|f| path.ends_with(f)) {
            write_in_place(&path, BLANK)?;
        }
    }
    new_status_file(dir)?;
    Ok(Taken::Yes(launch))
}

/// Makes the run's status file before the run starts, holding [`STATUS_RESERVE`]
/// newlines: the task then writes into a file that exists, which a file system out of
/// inodes still allows, and the block its `> STATUS_FILE` frees is the block its status
/// line then takes, on a file system out of bytes too (a task that had to create the
/// file, or find a free block, could not report its status). Blank lines are no
/// status, so a task that writes none still reports none, and one that appends
/// writes a line of its own. A new file each run, so a stray process of an earlier
/// run holding the old one writes nowhere that counts.
fn new_status_file(dir: &Path) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dir.join(run_dir::STATUS))?;
    io::Write::write_all(&mut file, &[b'\n'; STATUS_RESERVE])
}

/// The bytes a status file holds before its task writes it: one block, so that a
/// status line fits in what truncating it frees.
const STATUS_RESERVE: usize = 4096;

/// Removes everything in `dir` but its reused files; returns those.
fn remove_strays(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut kept = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_file() && REUSED_FILES.iter().any(|f| entry.file_name() == *f) {
            kept.push(entry.path());
        } else if kind.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> (tempfile::TempDir, StateDir) {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        std::fs::create_dir_all(state.running_dir()).unwrap();
        (dir, state)
    }

    fn inode(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).unwrap().ino()
    }

    #[test]
    fn a_recycled_directory_comes_back_with_the_same_files_its_results_blanked() {
        let (_tmp, state) = state();
        let mut dirs = RunDirs::new(state.clone());
        let first = state.running_dir().join("1-1");
        dirs.make(&first).unwrap();
        for name in REUSED_FILES {
            std::fs::write(first.join(name), b"old content").unwrap();
        }
        std::fs::write(first.join("status"), b"done").unwrap();
        std::fs::write(first.join("kill.json"), b"{}").unwrap();
        let result = inode(&first.join(run_dir::RESULT));
        dirs.recycle(&first);
        assert!(!first.exists());

        let second = state.running_dir().join("2-2");
        dirs.make(&second).unwrap();
        let reused = inode(&second.join(run_dir::RESULT));
        assert_eq!(reused, result, "the same file, reused");
        for name in BLANKED_FILES {
            let bytes = std::fs::read(second.join(name)).unwrap();
            assert!(
                !bytes.is_empty() && !is_written(&bytes),
                "{name}: {bytes:?}"
            );
        }
        let launch = second.join(run_dir::LAUNCH);
        assert!(
            launch.is_file(),
            "the launch file is kept for the next run to rewrite"
        );
        assert!(!second.join("kill.json").exists(), "kill.json is removed");
        assert_eq!(
            std::fs::read(second.join("status")).unwrap(),
            [b'\n'; STATUS_RESERVE],
            "a new status file holding only its reserve of blank lines"
        );
    }

    #[test]
    fn a_file_left_in_a_spare_by_a_late_writer_never_reaches_the_next_run() {
        let (_tmp, state) = state();
        let mut dirs = RunDirs::new(state.clone());
        let first = state.running_dir().join("1-1");
        dirs.make(&first).unwrap();
        dirs.recycle(&first);
        let spare = dirs.spares().back().unwrap().clone();
        std::fs::write(spare.join("kill.json"), b"{}").unwrap();
        std::fs::write(spare.join("status"), b"done").unwrap();

        let second = state.running_dir().join("2-2");
        dirs.make(&second).unwrap();
        assert!(!second.join("kill.json").exists());
        assert_eq!(
            std::fs::read(second.join("status")).unwrap(),
            [b'\n'; STATUS_RESERVE],
            "no status of the late writer's"
        );
    }

    #[test]
    fn a_file_written_in_place_holds_the_new_bytes_padded_with_spaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let first = b"{\"a long\": \"first content\"}";
        write_in_place(&path, first).unwrap();
        write_in_place(&path, b"{\"b\": 1}").unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), first.len(), "never truncated");
        assert_eq!(bytes.trim_ascii(), b"{\"b\": 1}");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
            serde_json::json!({"b": 1})
        );
        assert!(is_written(&bytes));
        write_in_place(&path, b"").unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.is_empty() && !is_written(&bytes), "{bytes:?}");
    }

    #[test]
    fn spares_left_by_an_earlier_process_are_used() {
        let (_tmp, state) = state();
        let first = state.running_dir().join("1-1");
        let mut earlier = RunDirs::new(state.clone());
        earlier.make(&first).unwrap();
        std::fs::write(first.join(run_dir::RESULT), b"{}").unwrap();
        earlier.recycle(&first);

        let mut later = RunDirs::new(state.clone());
        let second = state.running_dir().join("2-2");
        later.make(&second).unwrap();
        let result = std::fs::read(second.join(run_dir::RESULT)).unwrap();
        assert!(!result.is_empty() && !is_written(&result), "{result:?}");
        assert!(later.spares().is_empty());
    }

    #[test]
    fn a_spare_still_locked_is_kept_for_a_later_run_and_not_taken_before_it_is_released() {
        let (_tmp, state) = state();
        let mut dirs = RunDirs::new(state.clone());
        let first = state.running_dir().join("1-1");
        let held = dirs.make(&first).unwrap();
        std::fs::write(first.join(run_dir::RESULT), b"{}").unwrap();
        let result = inode(&first.join(run_dir::RESULT));
        dirs.recycle(&first);
        assert!(!first.exists());
        assert_eq!(dirs.spares().len(), 1, "kept although its lock is held");

        let second = state.running_dir().join("2-2");
        let _second_lock = dirs.make(&second).unwrap();
        assert!(
            !second.join(run_dir::RESULT).exists(),
            "a new directory, not the locked spare"
        );
        assert_eq!(dirs.spares().len(), 1);

        drop(held);
        let third = state.running_dir().join("3-3");
        let _third_lock = dirs.make(&third).unwrap();
        let path = third.join(run_dir::RESULT);
        assert_eq!(inode(&path), result, "the spare, once released");
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.is_empty() && !is_written(&bytes), "{bytes:?}");
        assert!(dirs.spares().is_empty());
    }

    #[test]
    fn a_made_directory_comes_with_its_launch_file_locked() {
        let (_tmp, state) = state();
        let mut dirs = RunDirs::new(state.clone());
        let first = state.running_dir().join("1-1");
        let lock = dirs.make(&first).unwrap();
        assert_eq!(
            crate::execution::supervisor::run_files::is_supervised(&first),
            Some(true)
        );
        drop(lock);
        dirs.recycle(&first);
        let second = state.running_dir().join("2-2");
        let lock = dirs.make(&second).unwrap();
        assert_eq!(
            crate::execution::supervisor::run_files::is_supervised(&second),
            Some(true),
            "a spare's too"
        );
        drop(lock);
        assert_eq!(
            crate::execution::supervisor::run_files::is_supervised(&second),
            Some(false)
        );
    }

    #[test]
    fn a_new_directory_is_made_when_no_spare_is_left_and_never_over_an_existing_one() {
        let (_tmp, state) = state();
        let mut dirs = RunDirs::new(state.clone());
        let dir = state.running_dir().join("1-1");
        dirs.make(&dir).unwrap();
        assert!(dir.is_dir());
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        files.sort();
        assert_eq!(
            files,
            [run_dir::LAUNCH, run_dir::STATUS],
            "its launch file and an empty status file"
        );
        assert!(
            dirs.make(&dir).is_err(),
            "an existing run's directory is never reused"
        );
    }
}
