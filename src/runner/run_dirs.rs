//! Run directories (`STATE/running/INV/`), reused from one run to the next.
//!
//! A run's directory holds its launch spec, its status file, its supervisor's and
//! task's identities and its result. Creating and deleting these files for every run
//! made dispatch slow down the longer it ran on ext4 without a journal (the file
//! system of the machines we build on): its inode allocator skips, one by one, every
//! inode freed in the last minutes, so each new file cost more than the last. A
//! finished run's directory is therefore kept in `running/.spare/` with its files
//! emptied, and the next run renames it into place: in steady state a run creates and
//! deletes only the task's status file (which the task itself creates).
//!
//! Reused files are never truncated to nothing: ext4 then flushes the file to disk when
//! it is closed (its guard for programs that rewrite a file in place), which costs a
//! disk write per file per run. A file is "blank" instead, one space, and rewritten in
//! place over its old content; its readers take a blank or half-written file for one
//! not written yet.
//!
//! Only the runner holding the state lock makes and recycles directories, so spares
//! are never shared; a spare that vanished anyway is skipped.

use crate::state::StateDir;
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

/// The files a run directory keeps when it is reused; any other file in it (the
/// status file, a kill request, a temporary file) is removed.
pub const REUSED_FILES: [&str; 4] = [
    super::LAUNCH_FILE,
    super::RESULT_FILE,
    "supervisor.pid",
    super::TASK_FILE,
];

/// The reused files that are blanked: all but the launch spec, which the next run
/// writes before anyone reads the directory.
const BLANKED_FILES: [&str; 3] = [super::RESULT_FILE, "supervisor.pid", super::TASK_FILE];

/// What a reused file holds until it is written: not empty (see the module doc).
pub const BLANK: &[u8] = b" ";

/// Writes `bytes` over the file at `path` (made if missing) without truncating it to
/// nothing first: the file then holds exactly `bytes`, or [`BLANK`] for none.
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

/// [`write_in_place`] through a file already open for writing. The file is cut only
/// when it held more: a truncation costs more than the write.
pub fn overwrite(file: &std::fs::File, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let bytes = if bytes.is_empty() { BLANK } else { bytes };
    let held = file.metadata()?.len();
    file.write_all_at(bytes, 0)?;
    if held > bytes.len() as u64 {
        file.set_len(bytes.len() as u64)?;
    }
    Ok(())
}

/// Whether a reused file read as `bytes` was written since it was blanked.
pub fn is_written(bytes: &[u8]) -> bool {
    !bytes.trim_ascii().is_empty()
}

/// Where spare run directories wait, under `STATE/running/`. Not an invocation id, so
/// the sweep of stray run directories leaves it alone.
const SPARE_DIR: &str = ".spare";

/// Spares kept at most; more finished directories are removed.
const MAX_SPARES: usize = 1024;

/// The run directories of a state dir, with its spares.
pub struct RunDirs {
    state: StateDir,
    /// The spares, read from disk on first use.
    spares: Option<Vec<PathBuf>>,
}

impl RunDirs {
    /// The run directories of `state`.
    pub fn new(state: StateDir) -> Self {
        Self {
            state,
            spares: None,
        }
    }

    fn spares(&mut self) -> &mut Vec<PathBuf> {
        let spare_dir = self.state.running_dir().join(SPARE_DIR);
        self.spares.get_or_insert_with(|| {
            std::fs::read_dir(&spare_dir)
                .map(|entries| entries.flatten().map(|e| e.path()).collect())
                .unwrap_or_default()
        })
    }

    /// Makes `dir`, a new run's directory: a spare renamed into place when there is
    /// one (its files exist, blank), else a new directory. Fails if `dir` exists.
    pub fn make(&mut self, dir: &Path) -> io::Result<()> {
        if dir.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the run's directory already exists",
            ));
        }
        while let Some(spare) = self.spares().pop() {
            match std::fs::rename(&spare, dir) {
                // A file written by path into the finished run's directory between its
                // blanking and its move (a late kill request, a stray process of its
                // task) must not reach the new run.
                Ok(()) => return remove_strays(dir).map(drop),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::create_dir(dir)
    }

    /// Keeps a finished run's directory as a spare: its reused files are blanked and
    /// anything else is removed. Removes it instead when its launch file is still
    /// locked, enough spares are kept, or it cannot be emptied.
    pub fn recycle(&mut self, dir: &Path) {
        let spare_dir = self.state.running_dir().join(SPARE_DIR);
        let spare = spare_dir.join(format!("{:016x}", rand::random::<u64>()));
        // A supervisor may still hold the launch file's lock for a moment after its
        // result is readable; a file locked by a past run would block the next one.
        let released = super::is_supervised(dir) == Some(false);
        let kept = released
            && self.spares().len() < MAX_SPARES
            && blank(dir).is_ok()
            && std::fs::create_dir_all(&spare_dir).is_ok()
            && std::fs::rename(dir, &spare).is_ok();
        if kept {
            self.spares().push(spare);
        } else {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

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

/// Blanks the reused files of `dir` and removes everything else in it.
fn blank(dir: &Path) -> io::Result<()> {
    for path in remove_strays(dir)? {
        if BLANKED_FILES.iter().any(|f| path.ends_with(f)) {
            write_in_place(&path, BLANK)?;
        }
    }
    Ok(())
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
        let result = inode(&first.join(crate::runner::RESULT_FILE));
        dirs.recycle(&first);
        assert!(!first.exists());

        let second = state.running_dir().join("2-2");
        dirs.make(&second).unwrap();
        let reused = inode(&second.join(crate::runner::RESULT_FILE));
        assert_eq!(reused, result, "the same file, reused");
        for name in BLANKED_FILES {
            let bytes = std::fs::read(second.join(name)).unwrap();
            assert_eq!(bytes, BLANK, "{name}");
            assert!(!is_written(&bytes));
        }
        let launch = second.join(crate::runner::LAUNCH_FILE);
        assert!(
            launch.is_file(),
            "the launch file is kept for the next run to rewrite"
        );
        for gone in ["status", "kill.json"] {
            assert!(!second.join(gone).exists(), "{gone} is removed");
        }
    }

    #[test]
    fn a_file_left_in_a_spare_by_a_late_writer_never_reaches_the_next_run() {
        let (_tmp, state) = state();
        let mut dirs = RunDirs::new(state.clone());
        let first = state.running_dir().join("1-1");
        dirs.make(&first).unwrap();
        dirs.recycle(&first);
        let spare = dirs.spares().last().unwrap().clone();
        std::fs::write(spare.join("kill.json"), b"{}").unwrap();
        std::fs::write(spare.join("status"), b"done").unwrap();

        let second = state.running_dir().join("2-2");
        dirs.make(&second).unwrap();
        assert!(!second.join("kill.json").exists());
        assert!(!second.join("status").exists());
    }

    #[test]
    fn a_file_written_in_place_holds_exactly_the_new_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_in_place(&path, b"a long first content").unwrap();
        write_in_place(&path, b"short").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"short");
        assert!(is_written(b"short"));
        write_in_place(&path, b"").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), BLANK);
    }

    #[test]
    fn spares_left_by_an_earlier_process_are_used() {
        let (_tmp, state) = state();
        let first = state.running_dir().join("1-1");
        let mut earlier = RunDirs::new(state.clone());
        earlier.make(&first).unwrap();
        std::fs::write(first.join(crate::runner::RESULT_FILE), b"{}").unwrap();
        earlier.recycle(&first);

        let mut later = RunDirs::new(state.clone());
        let second = state.running_dir().join("2-2");
        later.make(&second).unwrap();
        let result = std::fs::read(second.join(crate::runner::RESULT_FILE)).unwrap();
        assert_eq!(result, BLANK);
        assert!(later.spares().is_empty());
    }

    #[test]
    fn a_new_directory_is_made_when_no_spare_is_left_and_never_over_an_existing_one() {
        let (_tmp, state) = state();
        let mut dirs = RunDirs::new(state.clone());
        let dir = state.running_dir().join("1-1");
        dirs.make(&dir).unwrap();
        assert!(dir.is_dir());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        assert!(
            dirs.make(&dir).is_err(),
            "an existing run's directory is never reused"
        );
    }
}
