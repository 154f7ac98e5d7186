//! A Slurm run's files in its run directory, as the scheduler reads them: the
//! submission record (written before `sbatch`), the exit code and status the batch
//! script leaves, and the output it writes, ingested into the task-log database.

use crate::execution::supervisor::constants::MAX_LINE_BYTES;
use crate::execution::supervisor::lines::LineCutter;
use crate::execution::supervisor::run_files::read_status_bytes;
use crate::execution::supervisor::Launch;
use crate::foundation::status::{parse_status, read_status_file, TaskStatus};
use crate::storage::state::{run_dir, write_replace, StateError};
use crate::storage::store::{LogKind, LogLine};
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Where a run stands with Slurm: its job name and array index, written before it is
/// submitted; the array's job id once `sbatch` answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitRecord {
    /// The array's job name (`bistro-` and the invocation id of its first run).
    pub name: String,
    /// This run's index in the array.
    pub index: u32,
    /// The array's job id, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_id: Option<u64>,
    /// The job's state as the scheduler last saw it (`PENDING (Resources)`), for
    /// `status` and the status page, which run no Slurm command themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

impl SubmitRecord {
    /// The record in `dir`, if the run was ever handed to `sbatch`.
    pub fn read(dir: &Path) -> Option<Self> {
        let bytes = std::fs::read(dir.join(run_dir::SLURM)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The job's id as users know it, `ARRAY_INDEX`, once known.
    pub fn job_id(&self) -> Option<String> {
        self.array_id.map(|id| format!("{id}_{}", self.index))
    }

    /// "Slurm job 12_0, PENDING (Resources)", or what is known of it so far.
    pub fn describe(&self) -> String {
        match (self.job_id(), &self.state) {
            (Some(id), Some(state)) => format!("Slurm job {id}, {state}"),
            (Some(id), None) => format!("Slurm job {id}"),
            (None, _) => format!("being submitted to Slurm as {}", self.name),
        }
    }

    /// Writes the record into `dir` (atomically: a reader sees the old or the new one).
    pub fn write(&self, dir: &Path) -> Result<(), StateError> {
        write_replace(
            &dir.join(run_dir::SLURM),
            &serde_json::to_vec(self).expect("records serialize"),
        )
    }
}

/// The exit code the batch script recorded once the task ended.
pub fn exit_code(dir: &Path) -> Option<i32> {
    std::fs::read_to_string(dir.join(run_dir::EXIT))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// How a task ended, in words, from the exit code sh reports (128+N: signal N).
pub fn describe_exit(code: i32) -> String {
    if code > 128 && code < 128 + 65 {
        format!("killed by signal {}", code - 128)
    } else {
        format!("exited with status {code}")
    }
}

/// The status a finished run gets: the status line it wrote; else, if bistro killed
/// it, `incomplete_backoff`; else `error_backoff` saying how it ended (`ended`).
pub fn final_status(dir: &Path, killed: bool, ended: &str) -> TaskStatus {
    let now = crate::foundation::time::now();
    match read_status_bytes(&dir.join(run_dir::STATUS)).map(|b| read_status_file(&b)) {
        Ok(Ok(line)) => parse_status(&line, now),
        _ if killed => TaskStatus::incomplete_backoff("Task killed, no status returned", now),
        Ok(Err(why)) => TaskStatus::error_backoff(format!("{ended}, without a status: {why}"), now),
        Err(e) => {
            TaskStatus::error_backoff(format!("{ended}; its status file cannot be read: {e}"), now)
        }
    }
}

/// How many bytes of each output file are in the task-log database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offsets {
    /// Of `stdout`.
    pub stdout: u64,
    /// Of `stderr`.
    pub stderr: u64,
}

impl Offsets {
    /// The offsets stored in `dir` (zero when none are).
    pub fn read(dir: &Path) -> Self {
        std::fs::read(dir.join(run_dir::LOG_OFFSETS))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Stores the offsets in `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), StateError> {
        write_replace(
            &dir.join(run_dir::LOG_OFFSETS),
            &serde_json::to_vec(self).expect("offsets serialize"),
        )
    }
}

/// The most bytes of one output file that one read takes in: a task printing without
/// end costs the scheduler this much at a time, never the whole file.
pub const READ_CAP: usize = 1 << 20;

/// The output written since `offsets`, at most [`READ_CAP`] bytes of each file, as
/// log lines with their newline (cut as the supervisor cuts a pipe): whole lines, and
/// pieces of a line longer than `MAX_LINE_BYTES`; once `complete` (the task ended)
/// and the end of a file is reached, its last line without a newline too. Returns the
/// lines and the offsets past them; call again while it returns lines to read all.
pub fn new_output(
    dir: &Path,
    launch: &Launch,
    offsets: Offsets,
    complete: bool,
) -> (Vec<LogLine>, Offsets) {
    let mut lines = Vec::new();
    let mut next = offsets;
    for (kind, name, at) in [
        (LogKind::Stdout, run_dir::STDOUT, &mut next.stdout),
        (LogKind::Stderr, run_dir::STDERR, &mut next.stderr),
    ] {
        let Some(bytes) = read_from(&dir.join(name), *at, READ_CAP) else {
            continue;
        };
        let at_end = bytes.len() < READ_CAP;
        let usable = match bytes.iter().rposition(|&b| b == b'\n') {
            _ if complete && at_end => bytes.len(),
            Some(i) => i + 1,
            // No newline yet: whole pieces of an over-long line only.
            None => bytes.len() / MAX_LINE_BYTES * MAX_LINE_BYTES,
        };
        let now = crate::foundation::time::now();
        let mut store = |piece: &[u8], newline: bool| {
            let mut line = String::from_utf8_lossy(piece).into_owned();
            if newline {
                line.push('\n');
            }
            lines.push(LogLine {
                kind,
                job: launch.job.clone(),
                node: launch.node.clone(),
                time: now,
                line,
            });
        };
        // What is read ends at a newline, at a piece's end or at the file's end, so
        // nothing is left pending between two reads.
        let mut cutter = LineCutter::default();
        cutter.feed(&bytes[..usable], &mut store);
        cutter.finish(&mut store);
        *at += usable as u64;
    }
    (lines, next)
}

/// At most `cap` bytes of `path` from `offset` on (None when there are none).
fn read_from(path: &Path, offset: u64, cap: usize) -> Option<Vec<u8>> {
    let mut file = std::fs::File::open(path).ok()?;
    file.seek(SeekFrom::Start(offset)).ok()?;
    let mut bytes = Vec::new();
    file.take(cap as u64).read_to_end(&mut bytes).ok()?;
    (!bytes.is_empty()).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::task::InvocationId;

    fn launch() -> Launch {
        Launch {
            job: "j".into(),
            node: "n".into(),
            invocation: InvocationId {
                start_time: 1,
                rand: 2,
            },
            argv: vec![],
            cwd: "/".into(),
            status_file: "/status".into(),
            log_db: "/logs".into(),
            worker_host: "h".into(),
            task_subprocess: Default::default(),
            kill_subprocess: Default::default(),
            task_timeout_sec: None,
            on_worker_death: None,
            worker: None,
            slurm: None,
        }
    }

    #[test]
    fn output_is_ingested_a_whole_line_at_a_time_then_completely() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(run_dir::STDOUT), "one\ntw").unwrap();
        let (lines, at) = new_output(dir.path(), &launch(), Offsets::default(), false);
        assert_eq!(
            lines.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(),
            ["one\n"]
        );
        assert_eq!(at.stdout, 4);
        std::fs::write(dir.path().join(run_dir::STDOUT), "one\ntwo\n\nthree").unwrap();
        let (lines, at) = new_output(dir.path(), &launch(), at, true);
        assert_eq!(
            lines.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(),
            ["two\n", "\n", "three"],
            "each line as the task wrote it, its newline included"
        );
        assert_eq!(at.stdout, 14);
        assert!(new_output(dir.path(), &launch(), at, true).0.is_empty());
    }

    #[test]
    fn output_without_end_or_newline_is_read_a_bounded_piece_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let size = 3 * READ_CAP + 10;
        std::fs::write(dir.path().join(run_dir::STDOUT), vec![b'y'; size]).unwrap();
        let (lines, at) = new_output(dir.path(), &launch(), Offsets::default(), false);
        let read: usize = lines.iter().map(|l| l.line.len()).sum();
        assert!(read <= READ_CAP && read > 0, "{read} bytes in one read");
        assert!(lines.iter().all(|l| l.line.len() == MAX_LINE_BYTES));
        assert_eq!(at.stdout, read as u64);
        // Once the task ended, repeated reads take in the rest, to the last byte.
        let mut at = at;
        let mut total = read;
        loop {
            let (lines, next) = new_output(dir.path(), &launch(), at, true);
            if lines.is_empty() {
                break;
            }
            assert!(lines.iter().map(|l| l.line.len()).sum::<usize>() <= READ_CAP);
            total += lines.iter().map(|l| l.line.len()).sum::<usize>();
            at = next;
        }
        assert_eq!((total, at.stdout), (size, size as u64));
    }

    #[test]
    fn a_run_without_a_status_gets_how_it_ended() {
        let dir = tempfile::tempdir().unwrap();
        let status = final_status(
            dir.path(),
            false,
            "Slurm job 4_0 ended FAILED (NonZeroExitCode), exited with status 3",
        );
        assert_eq!(status.name().as_str(), "error_backoff");
        assert!(status.exception().unwrap().contains("exited with status 3"));
        let status = final_status(dir.path(), true, "x");
        assert_eq!(status.name().as_str(), "incomplete");
        std::fs::write(dir.path().join(run_dir::STATUS), "done\n").unwrap();
        assert_eq!(final_status(dir.path(), true, "x").name().as_str(), "done");
        assert_eq!(describe_exit(137), "killed by signal 9");
        assert_eq!(describe_exit(3), "exited with status 3");
    }
}
