//! One run as the loop supervises it: where it stands, its kill requests, and how it
//! moves on as its task starts, writes, exits and is killed, until its result is made.

use super::output::{event, Echo, Pipe};
use super::{KEY_SHIFT, PROCESS, STORE_LINES};
use crate::execution::supervisor::constants::{DRAIN_LIMIT, PIPE_GRACE};
use crate::execution::supervisor::diagnostics::SUPERVISE;
use crate::execution::supervisor::kill::{kill_request, KillFile};
use crate::execution::supervisor::lines::LineCutter;
use crate::execution::supervisor::process::{child_kill, ProcessId};
use crate::execution::supervisor::run_files::read_status_bytes;
use crate::execution::supervisor::spawn::TaskProcess;
use crate::execution::supervisor::{Launch, TaskResult};
use crate::foundation::config::KillMethod;
use crate::foundation::status::{parse_status, read_status_file, StatusFileError, TaskStatus};
use crate::storage::store::{LogKind, LogLine};
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Bytes read from one pipe per turn, so a flood from one task cannot starve the
/// others; the rest waits in the pipe (and the task blocks on it: back-pressure).
const READ_PER_TURN: usize = 64 * 1024;

/// The kill requests of one run; each is applied once, with the kill method
/// [`kill_request`] finds at that moment.
#[derive(Debug, Default)]
pub(super) struct Kills {
    pub(super) requests: usize,
    pub(super) applied: usize,
    /// The last stop signal that asked for one (recorded in the result).
    pub(super) signal: Option<i32>,
    /// The run's remote worker died: its task gets the worker-death kill.
    pub(super) worker_died: bool,
    /// The `kill.json` last acted on: a new request is a new file.
    pub(super) file_seen: KillFile,
    /// When a TERM-then-KILL request sends its SIGKILL.
    pub(super) sigkill_at: Option<Instant>,
}

impl Kills {
    pub(super) fn request(&mut self, signal: Option<i32>) {
        if signal.is_some() {
            self.signal = signal;
        }
        self.requests += 1;
    }

    pub(super) fn worker_died(&mut self) {
        self.worker_died = true;
        self.request(Some(Signal::SIGTERM as i32));
    }
}

/// Where a run stands.
pub(super) enum Phase {
    /// The task runs.
    Running,
    /// The task exited; its pipes may stay open until `deadline`. Once its process
    /// group was killed for holding them, `drain_until` bounds how long output that
    /// keeps coming may still be read.
    Exited {
        deadline: Instant,
        drain_until: Option<Instant>,
    },
    /// The run is over: its result is written at the end of the turn.
    Done(TaskResult),
    /// The result is written and the lock released, but a process that outlived the
    /// task still holds a pipe: its output is stored as it comes, without holding
    /// the supervisor up, and it gets no SIGPIPE while the supervisor lives.
    Lingering,
}

/// A run the loop supervises.
pub(super) struct Run {
    pub(super) launch: Launch,
    pub(super) dir: PathBuf,
    /// The run's locked launch file, released once the result is written.
    pub(super) lock: Option<File>,
    /// Its task-log database, an index into [`super::RunLoop`]'s logs.
    pub(super) db: usize,
    /// Its task is being started (by the spawner); kill requests wait for it.
    pub(super) starting: bool,
    /// The task, while it is not reaped.
    pub(super) task: Option<TaskProcess>,
    pub(super) pid: u32,
    /// The task's identity, when `/proc` gave one.
    pub(super) id: Option<ProcessId>,
    /// Readable once the task exited; without one, the task is polled.
    pub(super) pidfd: Option<OwnedFd>,
    pub(super) next_poll: Option<Instant>,
    pub(super) pipes: [Option<Pipe>; 2],
    pub(super) kills: Kills,
    /// When the task times out (`task_timeout_sec` after it started), if it may.
    pub(super) timeout_at: Option<Instant>,
    /// The task ran out of time and was asked to die: its result is the timeout.
    pub(super) timed_out: bool,
    pub(super) killed: bool,
    pub(super) stop_signal: Option<i32>,
    pub(super) exit: String,
    pub(super) phase: Phase,
}

impl Run {
    /// Signals the task (or its group): through its identity, never a reused pid;
    /// without one, only while it is our unreaped child.
    pub(super) fn signal(&self, sig: Signal, group: bool) {
        match self.id {
            Some(id) => id.signal(sig, group),
            None if self.task.is_some() => {
                let _ = child_kill(self.pid, sig);
            }
            None => {}
        }
    }

    pub(super) fn group(&self) -> bool {
        self.launch.task_subprocess.process_group_leader
    }

    pub(super) fn poll_period(&self) -> Duration {
        Duration::from_millis(self.launch.task_subprocess.poll_ms.clamp(1, 1000) as u64)
    }

    /// The next instant this run needs a turn, if it waits for one.
    pub(super) fn deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Running => [
                self.kills.sigkill_at,
                self.next_poll,
                self.timeout_at.filter(|_| !self.timed_out),
            ]
            .into_iter()
            .flatten()
            .min(),
            Phase::Exited { deadline, .. } => Some(*deadline),
            Phase::Done(_) => Some(Instant::now()),
            Phase::Lingering => None,
        }
    }
}

/// Watches the pipes and the exit of the run's started task, whose identity `id` (if
/// `/proc` gave one) the spawner recorded.
pub(super) fn watch_task(
    epoll: &Epoll,
    echo: bool,
    key: u64,
    run: &mut Run,
    mut task: TaskProcess,
    id: Option<ProcessId>,
) {
    run.pid = task.id();
    run.id = id;
    // Timed from the moment the task exists, by the supervisor that outlives the tick.
    run.timeout_at = run
        .launch
        .task_timeout_sec
        .map(|secs| Instant::now() + Duration::from_secs(secs));
    let token = key << KEY_SHIFT;
    for (slot, (pipe, kind)) in [
        (task.stdout.take(), LogKind::Stdout),
        (task.stderr.take(), LogKind::Stderr),
    ]
    .into_iter()
    .enumerate()
    {
        let Some(file) = pipe else { continue };
        let watched = nix::fcntl::fcntl(
            file.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .and_then(|_| {
            epoll.add(
                &file,
                EpollEvent::new(EpollFlags::EPOLLIN, token | slot as u64),
            )
        });
        match watched {
            Ok(()) => {
                run.pipes[slot] = Some(Pipe {
                    file,
                    kind,
                    lines: LineCutter::default(),
                    echo: echo.then(|| Echo::new(kind)),
                })
            }
            Err(e) => tracing::error!(target: SUPERVISE, "cannot read the output of {}/{}: {e}",
                run.launch.job, run.launch.node
            ),
        }
    }
    run.pidfd = pidfd_open(run.pid).filter(|fd| {
        epoll
            .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token | PROCESS))
            .is_ok()
    });
    if run.pidfd.is_none() {
        run.next_poll = Some(Instant::now());
    }
    run.task = Some(task);
}

/// Ends a run whose task could not start.
pub(super) fn failed_to_start(run: &mut Run, batch: &mut Vec<LogLine>, message: String) {
    let status = TaskStatus::error_backoff(
        format!(
            "Failed to start task {}/{}: {message}",
            run.launch.job, run.launch.node
        ),
        crate::foundation::time::now(),
    );
    event(
        batch,
        &run.launch,
        "task_failed_to_start",
        json!({"status": status.to_event_json()}),
    );
    run.phase = Phase::Done(TaskResult {
        status,
        exit: format!("failed to start: {message}"),
        killed: false,
        stop_signal: None,
        end_time: crate::foundation::time::now(),
    });
}

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a non-negative result is a descriptor we now own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Reads what a run's pipe has (up to [`READ_PER_TURN`]) into log lines; closes it at
/// its end.
pub(super) fn read_pipe(
    run: &mut Run,
    slot: usize,
    batch: &mut Vec<LogLine>,
    epoll: &Epoll,
    buffer: &mut [u8],
) {
    let Some(pipe) = run.pipes.get_mut(slot).and_then(Option::as_mut) else {
        return;
    };
    let mut read = 0;
    let ended = loop {
        match pipe.file.read(buffer) {
            Ok(0) => break true,
            Ok(n) => {
                pipe.feed(&buffer[..n], &run.launch, batch);
                read += n;
                if read >= READ_PER_TURN || batch.len() >= STORE_LINES {
                    break false;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    if ended {
        if let Some(pipe) = run.pipes[slot].take() {
            pipe.close(&run.launch, batch, epoll);
        }
    }
    // Output that keeps coming after the task's group was killed extends the wait.
    if read > 0 {
        if let Phase::Exited {
            deadline,
            drain_until: Some(limit),
        } = &mut run.phase
        {
            *deadline = (Instant::now() + PIPE_GRACE).min(*limit);
        }
    }
}

/// Reaps the run's task if it exited.
pub(super) fn check_exit(run: &mut Run, batch: &mut Vec<LogLine>, epoll: &Epoll) {
    if !matches!(run.phase, Phase::Running) {
        return;
    }
    let Some(task) = run.task.as_mut() else {
        return;
    };
    let exit = match task.try_wait() {
        Ok(None) => {
            // Readable with nothing to reap (a tracer holds the task): poll it instead
            // of waking for it again and again.
            if let Some(fd) = run.pidfd.take() {
                let _ = epoll.delete(&fd);
                run.next_poll = Some(Instant::now() + run.poll_period());
            }
            return;
        }
        Ok(Some(status)) => Some(status),
        Err(e) => {
            tracing::error!(target: SUPERVISE, "waiting for the task: {e}");
            None
        }
    };
    run.task = None;
    if let Some(fd) = run.pidfd.take() {
        let _ = epoll.delete(&fd);
    }
    run.exit = match exit.map(|e| (e.code(), e.signal())) {
        Some((Some(code), _)) => format!("exited with status {code}"),
        Some((None, Some(sig))) => format!("killed by signal {sig}"),
        _ => "exited".to_string(),
    };
    event(
        batch,
        &run.launch,
        "process_exited",
        json!({"message": run.exit}),
    );
    run.phase = Phase::Exited {
        deadline: Instant::now() + PIPE_GRACE,
        drain_until: None,
    };
}

/// Moves a run on at `now`: polls a task without a pidfd, applies new kill requests
/// and due SIGKILLs, and ends the run once its pipes closed or its time to close them
/// ran out.
pub(super) fn advance(run: &mut Run, now: Instant, batch: &mut Vec<LogLine>, epoll: &Epoll) {
    if matches!(run.phase, Phase::Running) && run.next_poll.is_some_and(|t| now >= t) {
        check_exit(run, batch, epoll);
        run.next_poll = Some(now + run.poll_period());
    }
    match run.phase {
        // A kill asked of a task still starting waits for it.
        Phase::Running if run.starting => {}
        Phase::Running => {
            time_out(run, now, batch);
            apply_kills(run, now);
        }
        Phase::Exited {
            deadline,
            drain_until,
        } => {
            if run.pipes.iter().all(Option::is_none) {
                event(batch, &run.launch, "task_pipes_closed", json!({}));
                finish(run, batch);
            } else if now >= deadline {
                if drain_until.is_none() && run.group() {
                    event(
                        batch,
                        &run.launch,
                        "task_pipes_timeout",
                        json!({"message": "the task's output stayed open after it exited (background processes, or more output than the log took in time); killing its process group"}),
                    );
                    run.signal(Signal::SIGKILL, true);
                    // Nothing of the group writes any more: what is left is buffered
                    // output, drained for as long as it keeps coming.
                    run.phase = Phase::Exited {
                        deadline: now + PIPE_GRACE,
                        drain_until: Some(now + DRAIN_LIMIT),
                    };
                } else {
                    finish(run, batch);
                }
            }
        }
        Phase::Done(_) | Phase::Lingering => {}
    }
}

/// Asks a task that ran out of time to die, once, with its job's kill (a `bistro kill`
/// request written meanwhile still takes precedence, see [`kill_request`]).
fn time_out(run: &mut Run, now: Instant, batch: &mut Vec<LogLine>) {
    if run.timed_out || run.timeout_at.is_none_or(|at| now < at) {
        return;
    }
    run.timed_out = true;
    event(
        batch,
        &run.launch,
        "task_timed_out",
        json!({"message": timeout_message(&run.launch)}),
    );
    run.kills.request(None);
}

/// The exception a timed-out task's status carries.
fn timeout_message(launch: &Launch) -> String {
    format!(
        "timed out after {} s",
        launch.task_timeout_sec.unwrap_or_default()
    )
}

/// Applies each new kill request as Bistro merges queued kills: KILL at once
/// (cancelling a countdown), TERM, or TERM with the earliest SIGKILL deadline; then a
/// SIGKILL that is due.
fn apply_kills(run: &mut Run, now: Instant) {
    if run.kills.requests != run.kills.applied {
        run.kills.applied = run.kills.requests;
        run.stop_signal = run.kills.signal;
        run.killed = true;
        let request = kill_request(&run.launch, &run.dir, run.kills.worker_died);
        let group = run.group();
        match request.method {
            KillMethod::Kill => {
                run.signal(Signal::SIGKILL, group);
                run.kills.sigkill_at = None;
            }
            KillMethod::Term => run.signal(Signal::SIGTERM, group),
            KillMethod::TermWaitKill => {
                run.signal(Signal::SIGTERM, group);
                let at = now + Duration::from_millis(request.kill_wait_ms.max(0) as u64);
                run.kills.sigkill_at = Some(run.kills.sigkill_at.map_or(at, |t| t.min(at)));
            }
        }
    }
    if run.kills.sigkill_at.is_some_and(|t| now >= t) {
        run.signal(Signal::SIGKILL, run.group());
        run.kills.sigkill_at = None;
    }
}

/// Reads the run's status file and makes its result.
fn finish(run: &mut Run, batch: &mut Vec<LogLine>) {
    let now = crate::foundation::time::now();
    let launch = &run.launch;
    let bytes = read_status_bytes(&launch.status_file);
    let (mut status, raw) = match bytes.as_deref().map(read_status_file) {
        Ok(Ok(line)) => (parse_status(&line, now), Some(line)),
        Ok(Err(StatusFileError::Empty)) if run.killed => (
            TaskStatus::incomplete_backoff("Task killed, no status returned", now),
            None,
        ),
        Ok(Err(why)) => (
            TaskStatus::error_backoff(format!("Failed to read a status: {why}"), now),
            None,
        ),
        Err(e) => (
            TaskStatus::error_backoff(
                format!(
                    "Failed to read a status: {}: {e}",
                    launch.status_file.display()
                ),
                now,
            ),
            None,
        ),
    };
    if run.timed_out {
        // A task that ran out of time failed, whatever it wrote before it was killed.
        status = TaskStatus::error_backoff(timeout_message(launch), now);
    }
    let mut got = json!({"status": status.to_event_json()});
    if let Some(raw) = &raw {
        got["raw_status"] = Value::from(raw.as_str());
    }
    event(batch, launch, "got_status", got);
    run.phase = Phase::Done(TaskResult {
        status,
        exit: std::mem::take(&mut run.exit),
        killed: run.killed,
        stop_signal: run.stop_signal,
        end_time: now,
    });
}
