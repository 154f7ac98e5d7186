//! The event loop of a supervisor: every run it supervises, on one thread.
//!
//! One `epoll` set watches each run's stdout and stderr pipes and its process (a
//! pidfd), the runner's socket (in a supervisor host) and a wake pipe written by the
//! signal handlers. Each turn reads what is ready, cuts it into lines, and applies kill
//! requests and deadlines. Log lines are stored in one transaction per task-log
//! database, within `STORE_WITHIN` of being read and always before the results of
//! the runs that ended are written and their locks released: a result is never
//! readable before the run's log is stored.
//!
//! The loop itself (the `epoll` set, the turns, log storage and results) is here;
//! `run` is one run's state machine, `output` the lines it stores, and `wake`
//! how signals reach the loop.
//!
//! Before this loop, each run had three threads (one waiting for the task, one per
//! pipe) and a log-writer thread took lines over a channel; starting and waking those
//! threads cost more CPU than a short task.

mod output;
mod run;
#[cfg(test)]
pub(super) mod tests;
mod wake;

use super::constants::{KILL_REQUEST_SIGNAL, STOP_SIGNALS, WORKER_DEATH_SIGNAL};
use super::diagnostics::SUPERVISE;
use super::kill::{kill_file, take_over};
use super::process::{child_kill, ProcessId};
use super::run_dirs::{open_in_place, overwrite, write_in_place};
use super::run_files::SPAWNING;
use super::signals::{handle_signal, watch_worker};
use super::spawner::{Spawner, Start};
use super::{Launch, TaskResult};
use crate::model::task::InvocationId;
use crate::storage::state::run_dir;
use crate::storage::store::{LogLine, LogStore, StoreError};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signal::Signal;
use output::event;
use run::{advance, check_exit, failed_to_start, read_pipe, watch_task, Kills, Phase, Run};
use serde_json::json;
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use wake::{
    drain_wake_pipe, on_kill_request, on_stop, on_worker_gone, wake, KILL_REQUESTS, STOPS,
    STOP_SIGNAL, WAKE_FD, WAKE_PIPE, WORKER_GONE,
};

/// The epoll token of the wake pipe.
const WAKE: u64 = u64::MAX;
/// The epoll token of the socket a host takes runs from.
const SOCKET: u64 = u64::MAX - 1;
/// A run's token is its key shifted left by this, plus what is ready: the index of a
/// pipe in [`Run::pipes`] (0 stdout, 1 stderr) or [`PROCESS`].
const KEY_SHIFT: u32 = 2;
const PROCESS: u64 = 2;

/// How long a line may wait to be stored with later ones: a transaction per turn
/// cost more than the rest of a short task's supervision. A run's lines are always
/// stored before its result is written.
const STORE_WITHIN: Duration = Duration::from_millis(100);

/// Lines that are stored at once, however recent.
const STORE_LINES: usize = 4096;

/// How long a store waits for another writer of the task-log database. The loop
/// must not block on it (kills and exits wait meanwhile): a busy store is tried
/// again a moment later, with the results of ended runs held until it succeeds.
const STORE_BUSY_WAIT: Duration = Duration::from_millis(20);

/// After this long busy, lines are given up on (and counted on stderr), so results
/// are not held for ever.
const STORE_GIVE_UP: Duration = Duration::from_secs(10);

/// How often a result that could not be written for want of space is tried again:
/// the run keeps its lock meanwhile, so it counts as running, and its status is
/// recorded once space returns.
const RESULT_RETRY: Duration = Duration::from_secs(1);

/// Read buffer size.
const READ_BUFFER: usize = 16 * 1024;

/// A task-log database and the lines of this turn for it.
struct LogDb {
    path: PathBuf,
    /// None when it could not be opened.
    store: Option<LogStore>,
    batch: Vec<LogLine>,
}

/// Why log lines could not be stored.
#[derive(Debug, thiserror::Error)]
enum LinesLost {
    /// The task-log database could not be opened.
    #[error("cannot open {}", .0.display())]
    Unopened(PathBuf),
    /// Appending the lines failed.
    #[error("{0}")]
    Append(StoreError),
}

/// What one turn of the loop saw.
pub struct Turn {
    /// The watched socket has something to read.
    pub socket_ready: bool,
    /// A stop signal arrived: every run was asked to die; take no new runs.
    pub stopped: bool,
    /// The runs whose results were written this turn, with those results.
    pub finished: Vec<(InvocationId, TaskResult)>,
}

/// The runs of one supervisor process, and the signals that steer them.
pub struct RunLoop {
    epoll: Epoll,
    events: Vec<EpollEvent>,
    buffer: Vec<u8>,
    runs: HashMap<u64, Run>,
    next_key: u64,
    logs: Vec<LogDb>,
    echo: bool,
    /// This process, recorded as each run's supervisor.
    me: Option<ProcessId>,
    stops_seen: usize,
    kills_seen: usize,
    watching_worker: bool,
    worker_gone: bool,
    /// When the oldest line not stored yet was read.
    unstored_since: Option<Instant>,
    /// When to try again to write results that found no space ([`RESULT_RETRY`]).
    result_retry: Option<Instant>,
    /// While the database is busy: since when, and when to try again.
    busy: Option<(Instant, Instant)>,
    spawner: Spawner,
}

impl RunLoop {
    /// A loop with no runs. It takes over the stop signals and kill requests of this
    /// process (one loop per process). With `echo`, the tasks' output is also copied
    /// to our stdout and stderr.
    pub fn new(echo: bool) -> std::io::Result<Self> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let (wake_read, wake_write) = match WAKE_PIPE.get() {
            Some(pipe) => pipe,
            None => {
                let pipe = nix::unistd::pipe2(
                    nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK,
                )?;
                WAKE_PIPE.get_or_init(|| pipe)
            }
        };
        WAKE_FD.store(wake_write.as_raw_fd(), Ordering::SeqCst);
        epoll.add(wake_read, EpollEvent::new(EpollFlags::EPOLLIN, WAKE))?;
        // Counted before the handlers exist, so a signal that comes while they are
        // installed is acted on.
        let (stops_seen, kills_seen) = (
            STOPS.load(Ordering::SeqCst),
            KILL_REQUESTS.load(Ordering::SeqCst),
        );
        for sig in STOP_SIGNALS {
            handle_signal(sig, on_stop);
        }
        handle_signal(KILL_REQUEST_SIGNAL, on_kill_request);
        // A runner starts its supervisor host with the stop signals held (ignored and
        // blocked, see `signals::HoldStopSignals`), and the mask survives exec: with our
        // handlers in place, take them. (Before any spawner thread exists, which
        // inherits this thread's mask, as do the tasks they start.)
        let stops: nix::sys::signal::SigSet = STOP_SIGNALS.into_iter().collect();
        nix::sys::signal::pthread_sigmask(
            nix::sys::signal::SigmaskHow::SIG_UNBLOCK,
            Some(&stops),
            None,
        )?;
        Ok(Self {
            epoll,
            events: vec![EpollEvent::empty(); 64],
            buffer: vec![0; READ_BUFFER],
            runs: HashMap::new(),
            next_key: 0,
            logs: Vec::new(),
            echo,
            me: ProcessId::me(),
            stops_seen,
            kills_seen,
            watching_worker: false,
            worker_gone: false,
            unstored_since: None,
            result_retry: None,
            busy: None,
            spawner: Spawner::new(wake),
        })
    }

    /// Watches `socket`: a turn reports when it is readable.
    pub fn watch(&self, socket: BorrowedFd) -> std::io::Result<()> {
        Ok(self
            .epoll
            .add(socket, EpollEvent::new(EpollFlags::EPOLLIN, SOCKET))?)
    }

    /// Stops watching `socket`.
    pub fn unwatch(&self, socket: BorrowedFd) {
        let _ = self.epoll.delete(socket);
    }

    /// No run is left but lingering output.
    pub fn is_empty(&self) -> bool {
        self.runs
            .values()
            .all(|run| matches!(run.phase, Phase::Lingering))
    }

    /// Takes the run of `launch` in `dir` over and has its task started; `lock` (the
    /// locked launch file) is released once its result is written. A task that cannot
    /// start gets a result at the end of the turn that hears of it.
    pub fn start(&mut self, launch: Launch, dir: PathBuf, lock: Option<File>) {
        if let Some(death) = launch.on_worker_death {
            if !self.watching_worker {
                self.watching_worker = true;
                if !watch_worker(death.pid, on_worker_gone) {
                    on_worker_gone(WORKER_DEATH_SIGNAL as i32);
                }
            }
        }
        let db = self.log_db(&launch.log_db);
        let mut kills = Kills {
            file_seen: take_over(&dir, self.me),
            ..Kills::default()
        };
        if kills.file_seen.is_some() {
            kills.request(None);
        }
        if self.worker_gone {
            kills.worker_died();
        }
        let batch = &mut self.logs[db].batch;
        event(batch, &launch, "running", json!({"command": launch.argv}));
        // From here on the task may exist even if we die before recording its pid.
        let task_path = dir.join(run_dir::TASK);
        let task_file = open_in_place(&task_path)
            .and_then(|file| overwrite(&file, SPAWNING).map(|()| file))
            .map_err(|e| tracing::error!(target: SUPERVISE, "{}: {e}", task_path.display()))
            .ok();
        let key = self.next_key;
        self.next_key += 1;
        self.spawner.start(key, launch.clone(), task_file);
        let run = Run {
            launch,
            dir,
            lock,
            db,
            starting: true,
            task: None,
            pid: 0,
            id: None,
            pidfd: None,
            next_poll: None,
            pipes: [None, None],
            kills,
            timeout_at: None,
            timed_out: false,
            killed: false,
            stop_signal: None,
            exit: String::new(),
            phase: Phase::Running,
        };
        self.runs.insert(key, run);
    }

    /// Takes the tasks the spawner started (or could not) into their runs. A run whose
    /// start was cancelled is dropped with its lock, without a result: the next tick
    /// finds it never started and releases it.
    fn take_started(&mut self) {
        for (key, how) in self.spawner.take() {
            let Some(run) = self.runs.get_mut(&key) else {
                if let Start::Started(mut task, _) = how {
                    // No run of ours: not ours to keep running.
                    let _ = child_kill(task.id(), Signal::SIGKILL);
                    let _ = task.try_wait();
                }
                continue;
            };
            run.starting = false;
            match how {
                Start::Started(task, id) => watch_task(&self.epoll, self.echo, key, run, task, id),
                Start::Failed(message) => {
                    failed_to_start(run, &mut self.logs[run.db].batch, message)
                }
                Start::Cancelled => {
                    self.runs.remove(&key);
                }
            }
        }
    }

    /// The task-log database at `path`, opened on first use.
    fn log_db(&mut self, path: &Path) -> usize {
        if let Some(i) = self.logs.iter().position(|db| db.path == path) {
            return i;
        }
        let store = LogStore::open_appender(path, STORE_BUSY_WAIT)
            .map_err(|e| tracing::error!(target: SUPERVISE, "{e}"))
            .ok();
        self.logs.push(LogDb {
            path: path.to_path_buf(),
            store,
            batch: Vec::new(),
        });
        self.logs.len() - 1
    }

    /// Waits (up to `max_wait`, less when a run has a deadline) for something to
    /// happen and acts on it: output, exits, signals, deadlines; then stores the log
    /// lines and writes the results of the runs that ended.
    pub fn turn(&mut self, max_wait: Duration) -> Turn {
        let now = Instant::now();
        let retry_at = self.busy.map(|(_, retry)| retry);
        let store_at = retry_at.or(self.unstored_since.map(|t| t + STORE_WITHIN));
        let wait = self
            .runs
            .values()
            .filter_map(|run| match (&run.phase, retry_at) {
                // An ended run waits for its lines to be stored.
                (Phase::Done(_), Some(retry)) => Some(retry),
                _ => run.deadline(),
            })
            .chain(store_at)
            .chain(self.result_retry)
            .min()
            .map_or(max_wait, |d| d.saturating_duration_since(now).min(max_wait));
        // Rounded up: a deadline a fraction of a millisecond away must not spin.
        let millis = wait.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        let ready = match self.epoll.wait(
            &mut self.events,
            EpollTimeout::try_from(millis).unwrap_or(EpollTimeout::MAX),
        ) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => 0,
            Err(e) => {
                tracing::error!(target: SUPERVISE, "waiting for events: {e}");
                std::thread::sleep(Duration::from_millis(10));
                0
            }
        };
        let mut socket_ready = false;
        for i in 0..ready {
            match self.events[i].data() {
                WAKE => drain_wake_pipe(),
                SOCKET => socket_ready = true,
                token => self.on_ready(token),
            }
        }
        self.take_started();
        let stopped = self.handle_signals();
        let now = Instant::now();
        for run in self.runs.values_mut() {
            advance(run, now, &mut self.logs[run.db].batch, &self.epoll);
        }
        let lines: usize = self.logs.iter().map(|db| db.batch.len()).sum();
        if lines > 0 && self.unstored_since.is_none() {
            self.unstored_since = Some(now);
        }
        let ended = self
            .runs
            .values()
            .any(|run| matches!(run.phase, Phase::Done(_)));
        let due = ended
            || lines >= STORE_LINES
            || self.unstored_since.is_some_and(|t| now >= t + STORE_WITHIN);
        if due && self.busy.is_none_or(|(_, retry)| now >= retry) {
            self.store_logs(now);
        }
        let finished = match (self.busy, self.result_retry) {
            (None, None) => self.write_results(now),
            (None, Some(retry)) if now >= retry => self.write_results(now),
            _ => Vec::new(),
        };
        Turn {
            socket_ready,
            stopped,
            finished,
        }
    }

    /// Reads a ready pipe, or looks at a task that exited.
    fn on_ready(&mut self, token: u64) {
        let Some(run) = self.runs.get_mut(&(token >> KEY_SHIFT)) else {
            return;
        };
        let batch = &mut self.logs[run.db].batch;
        match token & ((1 << KEY_SHIFT) - 1) {
            PROCESS => check_exit(run, batch, &self.epoll),
            slot => read_pipe(run, slot as usize, batch, &self.epoll, &mut self.buffer),
        }
    }

    /// Acts on the signals that arrived; true when a stop signal asked every run to die.
    fn handle_signals(&mut self) -> bool {
        let stops = STOPS.load(Ordering::SeqCst);
        let stopping = stops != self.stops_seen;
        if stopping {
            self.stops_seen = stops;
            self.spawner.cancel_queued();
            let signal = STOP_SIGNAL.load(Ordering::SeqCst);
            for run in self.runs.values_mut() {
                run.kills.request(Some(signal));
            }
        }
        let kills = KILL_REQUESTS.load(Ordering::SeqCst);
        if kills != self.kills_seen {
            self.kills_seen = kills;
            for run in self.runs.values_mut() {
                let now = kill_file(&run.dir);
                if now.is_some() && now != run.kills.file_seen {
                    run.kills.file_seen = now;
                    run.kills.request(None);
                }
            }
        }
        if WORKER_GONE.load(Ordering::SeqCst) && !self.worker_gone {
            self.worker_gone = true;
            for run in self.runs.values_mut() {
                run.kills.worker_died();
            }
        }
        stopping
    }

    /// Stores the lines read so far, one transaction per database. A busy database
    /// keeps its lines for the next try (see [`STORE_BUSY_WAIT`]); lines that cannot
    /// be stored are counted on stderr (`supervisors.log`).
    fn store_logs(&mut self, now: Instant) {
        let busy_since = self.busy.map_or(now, |(since, _)| since);
        let mut busy = false;
        for db in &mut self.logs {
            if db.batch.is_empty() {
                continue;
            }
            let stored = match db.store.as_mut() {
                Some(store) => match store.append(&db.batch) {
                    // A full disk may get space back soon: waited for as for a busy one.
                    Err(e)
                        if (e.is_busy() || e.is_no_space()) && now < busy_since + STORE_GIVE_UP =>
                    {
                        busy = true;
                        continue;
                    }
                    stored => stored.map(drop).map_err(LinesLost::Append),
                },
                None => Err(LinesLost::Unopened(db.path.clone())),
            };
            if let (Err(e), Some(line)) = (stored, db.batch.first()) {
                tracing::error!(target: SUPERVISE, "{} log lines (the first of {}/{}) were lost: {e}",
                    db.batch.len(),
                    line.job,
                    line.node
                );
            }
            db.batch.clear();
        }
        if busy {
            self.busy = Some((busy_since, now + STORE_BUSY_WAIT));
        } else {
            self.busy = None;
            self.unstored_since = None;
        }
    }

    /// Writes the results of the runs that ended and releases their locks; forgets
    /// lingering runs whose pipes closed. A result that finds no space keeps its run
    /// (and lock) for another try after [`RESULT_RETRY`].
    fn write_results(&mut self, now: Instant) -> Vec<(InvocationId, TaskResult)> {
        self.result_retry = None;
        let mut results = Vec::new();
        for run in self.runs.values_mut() {
            if !matches!(run.phase, Phase::Done(_)) {
                continue;
            }
            let Phase::Done(result) = std::mem::replace(&mut run.phase, Phase::Lingering) else {
                continue;
            };
            // In place: the file is reused (see `run_dirs`), and readers take a partial
            // result for none, as long as the run's lock is held.
            let path = run.dir.join(run_dir::RESULT);
            let json = serde_json::to_vec(&result).expect("results serialize");
            match write_in_place(&path, &json) {
                Err(e) if crate::storage::store::is_no_space(&e) => {
                    if self.result_retry.is_none() {
                        tracing::error!(target: SUPERVISE, "writing {}: {e}; trying again every {}s until space returns (the run counts as running)",
                            path.display(),
                            RESULT_RETRY.as_secs()
                        );
                    }
                    run.phase = Phase::Done(result);
                    self.result_retry = Some(now + RESULT_RETRY);
                    continue;
                }
                Err(e) => tracing::error!(target: SUPERVISE, "writing {}: {e}", path.display()),
                Ok(()) => {}
            }
            // Only now, with the result written, may the run look finished.
            drop(run.lock.take());
            results.push((run.launch.invocation, result));
        }
        self.runs.retain(|_, run| {
            !matches!(run.phase, Phase::Lingering) || run.pipes.iter().any(Option::is_some)
        });
        results
    }
}
