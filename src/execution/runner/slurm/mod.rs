//! The Slurm runner: tasks go to a Slurm cluster as array jobs, and come back through
//! files in their run directory, which compute nodes must see (the state dir on a
//! shared file system; the databases stay on the scheduler's disk).
//!
//! - **prepare** writes the launch spec and the run's batch script ([`submit`]).
//! - **start** only queues the run; [`TaskRunner::finish_starts`] then submits the
//!   pass's runs that share Slurm options as one array per group (at most
//!   `max_array_size` each). Each run's [`SubmitRecord`] (job name and index) is
//!   written before `sbatch` runs, the array's id after it answered: the job name
//!   carries the first run's invocation id, so a scheduler that died in between finds
//!   the job again by name.
//! - **check** reads the run's exit file first, then Slurm's state ([`queue`], one
//!   `squeue` per pass); a run that ended gets its status line, else `error_backoff`
//!   with Slurm's final state and reason and the exit code, or `incomplete_backoff`
//!   when bistro killed it. A job Slurm no longer knows (purged after `MinJobAge`) is
//!   settled from its run directory. Output is ingested into the task-log database
//!   while the task runs and completely once it ends.
//! - **kill** (`bistro kill`, orphans) is `scancel` as `kill_subprocess` says.
//!
//! Slurm's client calls are behind [`SlurmCommands`], so all of this is tested without
//! a cluster.

pub mod commands;
pub mod queue;
pub mod run_files;
pub mod submit;

pub use commands::{SlurmCallError, SlurmCli, SlurmCommands};
pub use run_files::SubmitRecord;

use super::{Outcome, PreparedTask, RunnerError, TaskRunner};
use crate::execution::supervisor::{Launch, TaskResult};
use crate::foundation::config::{KillMethod, KillRequest, Settings, SlurmOptions};
use crate::model::task::{InvocationId, RunningTask};
use crate::storage::state::{run_dir, write_replace, StateDir};
use crate::storage::store::LogStore;
use queue::{parse_sbatch_id, parse_squeue, JobRow, Snapshot};
use run_files::{describe_exit, exit_code, final_status, new_output, Offsets};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use submit::{array_script, run_script, sbatch_args, JOB_NAME_PREFIX};

/// How long one `squeue` answer serves the checks of a pass.
const SNAPSHOT_TTL: Duration = Duration::from_millis(500);

/// Runs tasks on a Slurm cluster.
pub struct SlurmRunner {
    state: StateDir,
    slurm: Box<dyn SlurmCommands>,
    /// Runs started this pass, submitted by `finish_starts`.
    queued: Vec<Launch>,
    /// The largest array to submit (`bistro_settings.slurm.max_array_size`).
    max_array_size: usize,
    /// Where runs' files go that compute nodes must see (`bistro_settings.slurm.run_dir`;
    /// None: the run directory in the state dir).
    shared: Option<PathBuf>,
    /// The last `squeue` answer, and when it came.
    snapshot: Option<(Instant, Result<Snapshot, SlurmCallError>)>,
    /// The task-log database, opened at the first output.
    logs: Option<LogStore>,
}

impl SlurmRunner {
    /// A runner whose run directories are in `state` and that calls `slurm`.
    pub fn new(state: StateDir, slurm: Box<dyn SlurmCommands>) -> Self {
        Self {
            state,
            slurm,
            queued: Vec::new(),
            max_array_size: crate::foundation::config::SlurmSettings::default().max_array_size,
            shared: None,
            snapshot: None,
            logs: None,
        }
    }

    /// Slurm's jobs now (one `squeue` serves a pass).
    fn snapshot(&mut self) -> Result<&Snapshot, &SlurmCallError> {
        let fresh = self
            .snapshot
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < SNAPSHOT_TTL);
        if !fresh {
            let answer = self
                .slurm
                .squeue()
                .map(|text| Snapshot::new(parse_squeue(&text)));
            if let Err(e) = &answer {
                tracing::warn!("cannot ask Slurm how bistro's jobs stand (running tasks are kept as running): {e}");
            }
            self.snapshot = Some((Instant::now(), answer));
        }
        self.snapshot.as_ref().expect("just set").1.as_ref()
    }

    /// Submits `runs` (sharing `options`) as one array; their records are written
    /// first. On failure, every run of the array is returned with the error.
    fn submit(
        &mut self,
        options: &SlurmOptions,
        runs: Vec<Launch>,
    ) -> Vec<(InvocationId, RunnerError)> {
        let dirs: Vec<PathBuf> = runs
            .iter()
            .map(|l| self.state.invocation_dir(l.invocation))
            .collect();
        let name = format!("{JOB_NAME_PREFIX}{}", runs[0].invocation);
        let all_fail = |runs: &[Launch], message: String| {
            runs.iter()
                .map(|l| (l.invocation, err(l, message.clone())))
                .collect::<Vec<_>>()
        };
        for (index, dir) in dirs.iter().enumerate() {
            let record = SubmitRecord {
                name: name.clone(),
                index: u32::try_from(index).expect("arrays are small"),
                array_id: None,
                state: None,
            };
            if let Err(e) = record.write(dir) {
                return all_fail(&runs, format!("recording the submission: {e}"));
            }
        }
        let files: Vec<PathBuf> = runs
            .iter()
            .zip(&dirs)
            .map(|(l, dir)| files_dir(l, dir))
            .collect();
        let chdir = self
            .shared
            .clone()
            .unwrap_or_else(|| self.state.running_dir());
        let args = sbatch_args(options, &name, runs.len(), &chdir);
        let answer = self.slurm.sbatch(&args, &array_script(&files));
        self.snapshot = None;
        let array_id = match answer.map(|out| parse_sbatch_id(&out).ok_or(out)) {
            Ok(Ok(id)) => id,
            Ok(Err(out)) => {
                // Submitted, but the id is unreadable: the runs are found by name.
                tracing::warn!(
                    "sbatch printed no job id ({out:?}); bistro finds job {name} by its name"
                );
                return Vec::new();
            }
            Err(e) => {
                // A failed sbatch may still have submitted (a timeout after the
                // controller took it): released only once Slurm says it has no such job.
                match self.snapshot().map(|s| s.find(&name, 0).is_some()) {
                    Ok(false) => {
                        let partition = options
                            .partition
                            .as_deref()
                            .map_or(String::new(), |p| format!(" (partition {p})"));
                        return all_fail(&runs, format!("Slurm rejected the job{partition}: {e}"));
                    }
                    Ok(true) => tracing::warn!("{e}; but Slurm lists job {name}: it was submitted"),
                    Err(_) => tracing::warn!(
                        "{e}; Slurm cannot say whether job {name} was submitted: its runs stay recorded until it can"
                    ),
                }
                return Vec::new();
            }
        };
        for (index, dir) in dirs.iter().enumerate() {
            let record = SubmitRecord {
                name: name.clone(),
                index: u32::try_from(index).expect("arrays are small"),
                array_id: Some(array_id),
                state: None,
            };
            if let Err(e) = record.write(dir) {
                tracing::warn!("{e} (the run is found again by its job name)");
            }
        }
        Vec::new()
    }

    /// Appends the run's new output to the task-log database: what one read takes
    /// in while the task runs, all of it once `complete`. False when some of it could
    /// not be stored (the next check tries again from where it stopped).
    fn ingest(&mut self, dir: &Path, launch: &Launch, complete: bool) -> bool {
        loop {
            let offsets = Offsets::read(dir);
            let (lines, next) = new_output(dir, launch, offsets, complete);
            if lines.is_empty() {
                return true;
            }
            if self.logs.is_none() {
                match LogStore::open(&self.state.logs_db()) {
                    Ok(store) => self.logs = Some(store),
                    Err(e) => {
                        tracing::warn!(
                            "{}/{}: cannot store its output yet: {e}",
                            launch.job,
                            launch.node
                        );
                        return false;
                    }
                }
            }
            let store = self.logs.as_mut().expect("just opened");
            if let Err(e) = store.append(&lines) {
                tracing::warn!("{}/{}: storing its output: {e}", launch.job, launch.node);
                return false;
            }
            if let Err(e) = next.write(dir) {
                tracing::warn!("{e}");
                return false;
            }
            if !complete {
                return true;
            }
        }
    }

    /// Cancels a run that has outlived its `task_timeout_sec`, counted from when its
    /// batch script began (time waiting in Slurm's queue does not count), as its job's
    /// `kill_subprocess` says; the marker it leaves makes the run's end read "timed
    /// out after N s". Slurm's own `--time` (see [`group_options`]) is the backstop
    /// while no scheduler is checking.
    fn time_out(&mut self, task: &RunningTask, dir: &Path, files: &Path, launch: &Launch) {
        let Some(secs) = launch.task_timeout_sec else {
            return;
        };
        let marker = dir.join(run_dir::TIMED_OUT);
        let ran = std::fs::metadata(files.join(run_dir::STARTED))
            .and_then(|m| m.modified())
            .map(|at| at.elapsed().unwrap_or_default());
        if marker.exists() || ran.map_or(true, |ran| ran < Duration::from_secs(secs)) {
            return;
        }
        if let Err(e) = write_replace(&marker, b"") {
            tracing::warn!("{}/{}: {e}", launch.job, launch.node);
            return;
        }
        tracing::warn!(
            "{}/{}: timed out after {secs} s; cancelling its Slurm job",
            launch.job,
            launch.node
        );
        let event = crate::execution::supervisor::events::event_line(
            launch,
            "task_timed_out",
            serde_json::json!({"message": format!("timed out after {secs} s")}),
        );
        if let Err(e) = LogStore::open(&self.state.logs_db()).and_then(|mut s| s.append(&[event])) {
            tracing::warn!("{}/{}: logging its timeout: {e}", launch.job, launch.node);
        }
        if let Err(e) = kill_run(
            self.slurm.as_mut(),
            &self.state,
            task,
            &launch.kill_subprocess,
        ) {
            tracing::warn!("{e} (tried again at the next check)");
            let _ = std::fs::remove_file(&marker);
        }
    }

    /// The run's Slurm job as the snapshot has it; its record gets the array id when
    /// the job was found by name, and the job's state when it changed. `Err` when
    /// Slurm cannot be asked.
    fn job_of(&mut self, dir: &Path, record: &SubmitRecord) -> Result<Option<JobRow>, ()> {
        let snapshot = self.snapshot().map_err(drop)?;
        let row = match record.array_id {
            Some(id) => snapshot.get(id, record.index),
            None => snapshot.find(&record.name, record.index),
        }
        .cloned();
        if let Some(row) = &row {
            let seen = SubmitRecord {
                array_id: Some(row.array_id),
                state: Some(row.describe()),
                ..record.clone()
            };
            if seen != *record {
                if let Err(e) = seen.write(dir) {
                    tracing::warn!("{e}");
                }
            }
        }
        Ok(row)
    }
}

fn err(launch: &Launch, message: String) -> RunnerError {
    RunnerError {
        job: launch.job.clone(),
        node: launch.node.clone(),
        message,
    }
}

/// "Slurm job 12_0 ended TIMEOUT (TimeLimit)", saying when a cancel was not bistro's.
fn slurm_end(row: &JobRow, killed: bool) -> String {
    let outside = if row.state == "CANCELLED" && !killed {
        " (not by bistro)"
    } else {
        ""
    };
    format!(
        "Slurm job {} ended {}{outside}",
        row.display_id(),
        row.describe()
    )
}

/// Where the run's files for compute nodes are (script, status, output, exit code):
/// beside its status file, which is in its run directory unless `run_dir` moved it.
fn files_dir(launch: &Launch, dir: &Path) -> PathBuf {
    launch
        .status_file
        .parent()
        .map_or_else(|| dir.to_path_buf(), Path::to_path_buf)
}

/// The Slurm options a run is submitted with: its job's `slurm` options, and, when
/// they set no `time_limit`, a `--time` of the job's `task_timeout_sec` rounded up to
/// whole minutes (Slurm's unit) plus one, so bistro's own cancel at the timeout comes
/// first and Slurm's limit only ends a run no scheduler is checking.
fn group_options(launch: &Launch) -> SlurmOptions {
    let mut options = launch.slurm.clone().unwrap_or_default();
    if options.time_limit.is_none() {
        options.time_limit = launch
            .task_timeout_sec
            .map(|secs| (secs.div_ceil(60) + 1).to_string());
    }
    options
}

fn read_launch(dir: &Path) -> Option<Launch> {
    serde_json::from_slice(&std::fs::read(dir.join(run_dir::LAUNCH)).ok()?).ok()
}

impl TaskRunner for SlurmRunner {
    /// Writes the launch spec into the run directory and the batch script into the
    /// directory compute nodes see (the same one, unless `run_dir` is set: then the
    /// task's status file moves there too).
    fn prepare(&mut self, mut launch: Launch) -> Result<PreparedTask, RunnerError> {
        let dir = self.state.invocation_dir(launch.invocation);
        if let Some(shared) = &self.shared {
            let status = shared
                .join(launch.invocation.to_string())
                .join(run_dir::STATUS);
            let old = launch.status_file.display().to_string();
            if let Some(arg) = launch.argv.iter_mut().rev().find(|a| **a == old) {
                *arg = status.display().to_string();
            }
            launch.status_file = status;
        }
        let files = files_dir(&launch, &dir);
        for d in [&dir, &files] {
            std::fs::create_dir_all(d)
                .map_err(|e| err(&launch, format!("creating {}: {e}", d.display())))?;
        }
        let spec = serde_json::to_vec(&launch).expect("launch specs serialize");
        write_replace(&dir.join(run_dir::LAUNCH), &spec)
            .and_then(|()| {
                write_replace(
                    &files.join(run_dir::SCRIPT),
                    run_script(&launch, &files).as_bytes(),
                )
            })
            .map_err(|e| err(&launch, e.to_string()))?;
        Ok(PreparedTask { launch, lock: None })
    }

    fn start(&mut self, task: PreparedTask) -> Result<(), RunnerError> {
        self.queued.push(task.launch);
        Ok(())
    }

    /// Submits the queued runs, one array per group of equal Slurm options.
    fn finish_starts(&mut self) -> Vec<(InvocationId, RunnerError)> {
        let mut groups: Vec<(SlurmOptions, Vec<Launch>)> = Vec::new();
        for launch in std::mem::take(&mut self.queued) {
            let options = group_options(&launch);
            match groups
                .iter_mut()
                .find(|(o, runs)| *o == options && runs.len() < self.max_array_size)
            {
                Some((_, runs)) => runs.push(launch),
                None => groups.push((options, vec![launch])),
            }
        }
        groups
            .into_iter()
            .flat_map(|(options, runs)| self.submit(&options, runs))
            .collect()
    }

    fn start_capacity(&mut self, settings: &Settings) -> Option<usize> {
        self.max_array_size = settings.slurm.max_array_size;
        self.shared.clone_from(&settings.slurm.run_dir);
        let pending = match self.snapshot() {
            Ok(snapshot) => snapshot.pending_with_prefix(JOB_NAME_PREFIX),
            // Slurm cannot be asked: submitting would fail too.
            Err(_) => return Some(0),
        };
        Some(settings.slurm.max_queued.saturating_sub(pending))
    }

    fn check(&mut self, task: &RunningTask) -> Outcome {
        let dir = self.state.invocation_dir(task.invocation);
        let Some(record) = SubmitRecord::read(&dir) else {
            if dir.join(run_dir::SLURM).exists() {
                // Damaged: its job may still run in Slurm, so it is never given up
                // (that could start a second copy) but said, with what to do.
                tracing::warn!(
                    "{}/{}: {} cannot be read, so its Slurm job is unknown; it counts as \
                     running: find its job with squeue (named bistro-...), scancel it if \
                     needed, then remove that run directory",
                    task.job,
                    task.node,
                    dir.join(run_dir::SLURM).display()
                );
                return Outcome::Running;
            }
            // Never handed to sbatch (the tick that recorded it died first), or a
            // run an earlier `--runner local` started: the local judgement covers both.
            return super::local_outcome(&dir, task);
        };
        let Some(launch) = read_launch(&dir) else {
            return Outcome::Lost(
                crate::foundation::status::TaskStatus::error_backoff(
                    format!("its launch spec in {} is gone", dir.display()),
                    crate::foundation::time::now(),
                ),
                "its run directory was damaged".into(),
            );
        };
        let killed = dir.join(run_dir::KILL_REQUEST).exists();
        let files = files_dir(&launch, &dir);
        let ended = if let Some(code) = exit_code(&files) {
            // A signal may have come from Slurm (scancel, a time limit): say so
            // when Slurm already lists the job as ended.
            let by_slurm = match (code > 128).then(|| self.job_of(&dir, &record)) {
                Some(Ok(Some(row))) if row.is_final() => format!(" ({})", slurm_end(&row, killed)),
                _ => String::new(),
            };
            format!("{}{by_slurm}", describe_exit(code))
        } else {
            match self.job_of(&dir, &record) {
                Err(()) => return Outcome::Running,
                Ok(Some(row)) if !row.is_final() => {
                    let _ = self.ingest(&files, &launch, false);
                    self.time_out(task, &dir, &files, &launch);
                    return Outcome::Running;
                }
                Ok(Some(row)) => match exit_code(&files) {
                    Some(code) => describe_exit(code),
                    None if !files.join(run_dir::STARTED).exists() && !killed => format!(
                        "{}; its batch script never marked the run started: do the compute nodes see {}?",
                        slurm_end(&row, killed),
                        files.display()
                    ),
                    None => slurm_end(&row, killed),
                },
                Ok(None) if files.join(run_dir::STARTED).exists() => match exit_code(&files) {
                    Some(code) => describe_exit(code),
                    None => format!(
                        "Slurm no longer knows job {} (purged after MinJobAge) and the task left no exit code",
                        record.name
                    ),
                },
                Ok(None) => {
                    return Outcome::NeverStarted(format!(
                        "Slurm does not know job {} and it never started (cancelled while pending?)",
                        record.name
                    ))
                }
            }
        };
        if !self.ingest(&files, &launch, true) {
            // Its output is not all stored yet: the run ends once it is (its files
            // stay until then), as a local run's result waits for space.
            return Outcome::Running;
        }
        let status = match (
            dir.join(run_dir::TIMED_OUT).exists(),
            launch.task_timeout_sec,
        ) {
            (true, Some(secs)) => crate::foundation::status::TaskStatus::error_backoff(
                format!("timed out after {secs} s"),
                crate::foundation::time::now(),
            ),
            _ => final_status(&files, killed, &ended),
        };
        Outcome::Finished(TaskResult {
            status,
            exit: ended,
            killed,
            stop_signal: None,
            end_time: crate::foundation::time::now(),
        })
    }

    fn cleanup(&mut self, task: &RunningTask) {
        let dir = self.state.invocation_dir(task.invocation);
        let files = read_launch(&dir).map(|l| files_dir(&l, &dir));
        for d in files.iter().filter(|f| **f != dir).chain([&dir]) {
            if let Err(e) = std::fs::remove_dir_all(d) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("removing {}: {e}", d.display());
                }
            }
        }
    }

    fn kill(&mut self, task: &RunningTask, request: &KillRequest) -> Result<bool, RunnerError> {
        kill_run(self.slurm.as_mut(), &self.state, task, request)
    }

    fn tidy_up(&mut self) {
        self.snapshot = None;
    }
}

/// Kills the Slurm job of `task` as `request` says: `term` and `kill` send that
/// signal to the whole job (`scancel --full --signal`), `term_wait_kill` cancels it
/// (Slurm sends SIGTERM, then SIGKILL after its `KillWait`). The request is written
/// into the run directory first, so the run's end counts as killed. `Ok(false)` when
/// the run was never submitted or already ended.
pub fn kill_run(
    slurm: &mut dyn SlurmCommands,
    state: &StateDir,
    task: &RunningTask,
    request: &KillRequest,
) -> Result<bool, RunnerError> {
    let dir = state.invocation_dir(task.invocation);
    let fail = |message: String| RunnerError {
        job: task.job.clone(),
        node: task.node.clone(),
        message,
    };
    let Some(record) = SubmitRecord::read(&dir) else {
        // Not on Slurm: a run an earlier `--runner local` started, killed as locally.
        return super::request_kill(&dir, request).map_err(|e| fail(e.to_string()));
    };
    let files = read_launch(&dir).map_or_else(|| dir.clone(), |l| files_dir(&l, &dir));
    if exit_code(&files).is_some() {
        return Ok(false);
    }
    let id = match record.array_id {
        Some(id) => format!("{id}_{}", record.index),
        None => {
            let rows = slurm.squeue().map_err(|e| fail(e.to_string()))?;
            let snapshot = Snapshot::new(parse_squeue(&rows));
            match snapshot.find(&record.name, record.index) {
                Some(row) => row.display_id(),
                None => return Ok(false),
            }
        }
    };
    let mut args = match request.method {
        KillMethod::TermWaitKill => Vec::new(),
        KillMethod::Term => vec!["--full".to_string(), "--signal=TERM".to_string()],
        KillMethod::Kill => vec!["--full".to_string(), "--signal=KILL".to_string()],
    };
    args.push(id.clone());
    // Written once the job is known, so its end counts as killed only if bistro
    // really cancels it.
    write_replace(
        &dir.join(run_dir::KILL_REQUEST),
        &serde_json::to_vec(request).expect("kill requests serialize"),
    )
    .map_err(|e| fail(e.to_string()))?;
    slurm
        .scancel(&args)
        .map_err(|e| fail(format!("cancelling Slurm job {id}: {e}")))?;
    Ok(true)
}

/// Whether the run in `dir` went to Slurm, and then its job's id and state now, for
/// `why`: "submitted as Slurm job 123_0, PENDING (Resources)".
pub fn describe_run(slurm: &mut dyn SlurmCommands, dir: &Path) -> Option<String> {
    let record = SubmitRecord::read(dir)?;
    let snapshot = match slurm.squeue() {
        Ok(text) => Snapshot::new(parse_squeue(&text)),
        Err(e) => {
            return Some(format!(
                "{}, as last seen (Slurm cannot be asked now: {e})",
                record.describe()
            ))
        }
    };
    let row = match record.array_id {
        Some(id) => snapshot.get(id, record.index),
        None => snapshot.find(&record.name, record.index),
    };
    Some(match (row, record.job_id()) {
        (Some(row), _) => format!(
            "submitted as Slurm job {}, {}",
            row.display_id(),
            row.describe()
        ),
        (None, Some(id)) => format!("submitted as Slurm job {id}, which Slurm no longer lists"),
        (None, None) => record.describe(),
    })
}

#[cfg(test)]
mod tests;
