//! The event loop of a supervisor: every run it supervises, on one thread.
//!
//! One `epoll` set watches each run's stdout and stderr pipes and its process (a
//! pidfd), the runner's socket (in a supervisor host) and a wake pipe written by the
//! signal handlers. Each turn reads what is ready, cuts it into lines, and applies kill
//! requests and deadlines. Log lines are stored in one transaction per task-log
//! database, within [`STORE_WITHIN`] of being read and always before the results of
//! the runs that ended are written and their locks released: a result is never
//! readable before the run's log is stored.
//!
//! Before this loop, each run had three threads (one waiting for the task, one per
//! pipe) and a log-writer thread took lines over a channel; starting and waking those
//! threads cost more CPU than a short task.

use super::constants::{
    DRAIN_LIMIT, KILL_REQUEST_SIGNAL, MAX_LINE_BYTES, PIPE_GRACE, STOP_SIGNALS, WORKER_DEATH_SIGNAL,
};
use super::kill::{kill_file, kill_request, take_over, KillFile};
use super::process::child_kill;
use super::process::ProcessId;
use super::run_dirs::{open_in_place, overwrite, write_in_place};
use super::run_files::{read_status_bytes, SPAWNING};
use super::signals::{handle_signal, watch_worker};
use super::spawn::TaskProcess;
use super::spawner::{Spawner, Start};
use super::{Launch, TaskResult};
use crate::config::KillMethod;
use crate::state::run_dir;
use crate::status::{parse_status, read_status_file, StatusFileError, TaskStatus};
use crate::store::{LogKind, LogLine, LogStore};
use crate::task::InvocationId;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The epoll token of the wake pipe.
const WAKE: u64 = u64::MAX;
/// The epoll token of the socket a host takes runs from.
const SOCKET: u64 = u64::MAX - 1;
/// A run's token is its key shifted left by this, plus what is ready: the index of a
/// pipe in [`Run::pipes`] (0 stdout, 1 stderr) or [`PROCESS`].
const KEY_SHIFT: u32 = 2;
const PROCESS: u64 = 2;

/// Bytes read from one pipe per turn, so a flood from one task cannot starve the
/// others; the rest waits in the pipe (and the task blocks on it: back-pressure).
const READ_PER_TURN: usize = 64 * 1024;

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

/// Read buffer size.
const READ_BUFFER: usize = 16 * 1024;

/// The last stop signal the process got, and how many.
static STOP_SIGNAL: AtomicI32 = AtomicI32::new(0);
static STOPS: AtomicUsize = AtomicUsize::new(0);
/// How many kill requests the process was told of.
static KILL_REQUESTS: AtomicUsize = AtomicUsize::new(0);
/// The remote worker that started this process is gone.
static WORKER_GONE: AtomicBool = AtomicBool::new(false);

/// The write end of the wake pipe, for the signal handlers (-1 before it exists).
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

/// The wake pipe (read end, write end): made once, kept for the life of the process,
/// so a handler never writes to a descriptor that was closed and reused.
static WAKE_PIPE: OnceLock<(OwnedFd, OwnedFd)> = OnceLock::new();

/// Makes a waiting turn return: the handlers' only way to reach the loop.
fn wake() {
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; errno is put back for the code the
        // signal interrupted.
        unsafe {
            let errno = *nix::libc::__errno_location();
            nix::libc::write(fd, [1u8].as_ptr().cast(), 1);
            *nix::libc::__errno_location() = errno;
        }
    }
}

extern "C" fn on_stop(signal: i32) {
    STOP_SIGNAL.store(signal, Ordering::SeqCst);
    STOPS.fetch_add(1, Ordering::SeqCst);
    wake();
}

extern "C" fn on_kill_request(_: i32) {
    KILL_REQUESTS.fetch_add(1, Ordering::SeqCst);
    wake();
}

extern "C" fn on_worker_gone(_: i32) {
    WORKER_GONE.store(true, Ordering::SeqCst);
    wake();
}

/// The kill requests of one run; each is applied once, with the kill method
/// [`kill_request`] finds at that moment.
#[derive(Debug, Default)]
struct Kills {
    requests: usize,
    applied: usize,
    /// The last stop signal that asked for one (recorded in the result).
    signal: Option<i32>,
    /// The run's remote worker died: its task gets the worker-death kill.
    worker_died: bool,
    /// The `kill.json` last acted on: a new request is a new file.
    file_seen: KillFile,
    /// When a TERM-then-KILL request sends its SIGKILL.
    sigkill_at: Option<Instant>,
}

impl Kills {
    fn request(&mut self, signal: Option<i32>) {
        if signal.is_some() {
            self.signal = signal;
        }
        self.requests += 1;
    }

    fn worker_died(&mut self) {
        self.worker_died = true;
        self.request(Some(Signal::SIGTERM as i32));
    }
}

/// Cuts a pipe's bytes into log lines, and over-long lines into pieces of
/// [`MAX_LINE_BYTES`].
#[derive(Debug, Default)]
struct LineCutter {
    pending: Vec<u8>,
}

impl LineCutter {
    /// Feeds `bytes`; `emit(text, ended_by_newline)` gets each complete line or piece.
    fn feed(&mut self, mut bytes: &[u8], mut emit: impl FnMut(&[u8], bool)) {
        while !bytes.is_empty() {
            let room = MAX_LINE_BYTES - self.pending.len();
            let reach = bytes.len().min(room + 1);
            match bytes[..reach].iter().position(|&b| b == b'\n') {
                Some(i) if self.pending.is_empty() => {
                    emit(&bytes[..i], true);
                    bytes = &bytes[i + 1..];
                }
                Some(i) => {
                    self.pending.extend_from_slice(&bytes[..i]);
                    emit(&self.pending, true);
                    self.pending.clear();
                    bytes = &bytes[i + 1..];
                }
                None if bytes.len() <= room => {
                    self.pending.extend_from_slice(bytes);
                    return;
                }
                None => {
                    self.pending.extend_from_slice(&bytes[..room]);
                    emit(&self.pending, false);
                    self.pending.clear();
                    bytes = &bytes[room..];
                }
            }
        }
    }

    /// The pipe ended: what is left is a last line without a newline.
    fn finish(&mut self, mut emit: impl FnMut(&[u8], bool)) {
        if !self.pending.is_empty() {
            emit(&self.pending, false);
            self.pending.clear();
        }
    }
}

/// One of a task's output pipes.
struct Pipe {
    file: File,
    kind: LogKind,
    lines: LineCutter,
    echo: Option<Echo>,
}

impl Pipe {
    /// Takes bytes read from the pipe: its complete lines go to `batch`.
    fn feed(&mut self, bytes: &[u8], launch: &Launch, batch: &mut Vec<LogLine>) {
        let (kind, echo) = (self.kind, &mut self.echo);
        self.lines.feed(bytes, |text, newline| {
            store_line(kind, echo, launch, batch, text, newline)
        });
    }

    /// Stops reading the pipe: what is left of a line goes to `batch`.
    fn close(mut self, launch: &Launch, batch: &mut Vec<LogLine>, epoll: &Epoll) {
        let (kind, echo) = (self.kind, &mut self.echo);
        self.lines
            .finish(|text, newline| store_line(kind, echo, launch, batch, text, newline));
        let _ = epoll.delete(&self.file);
    }
}

/// Adds a line of a task's output to `batch`, copying it to `echo` if there is one.
fn store_line(
    kind: LogKind,
    echo: &mut Option<Echo>,
    launch: &Launch,
    batch: &mut Vec<LogLine>,
    bytes: &[u8],
    newline: bool,
) {
    let text = String::from_utf8_lossy(bytes).into_owned();
    if let Some(echo) = echo.as_mut() {
        echo.write_line(&text, newline);
    }
    batch.push(LogLine {
        kind,
        job: launch.job.clone(),
        node: launch.node.clone(),
        time: crate::now(),
        line: text,
    });
}

/// Where `run-task` copies a task's output: our stdout or stderr, with terminal
/// controls escaped when it is a terminal.
struct Echo {
    out: Box<dyn Write>,
    terminal: bool,
}

impl Echo {
    fn new(kind: LogKind) -> Self {
        use std::io::IsTerminal;
        match kind {
            LogKind::Stderr => Self {
                terminal: std::io::stderr().is_terminal(),
                out: Box::new(std::io::stderr()),
            },
            _ => Self {
                terminal: std::io::stdout().is_terminal(),
                out: Box::new(std::io::stdout()),
            },
        }
    }

    fn write_line(&mut self, text: &str, newline: bool) {
        let text = if self.terminal {
            crate::sanitize::for_terminal(text)
        } else {
            text.into()
        };
        let end = if newline { "\n" } else { "" };
        let _ = write!(self.out, "{text}{end}").and_then(|()| self.out.flush());
    }
}

/// Where a run stands.
enum Phase {
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
struct Run {
    launch: Launch,
    dir: PathBuf,
    /// The run's locked launch file, released once the result is written.
    lock: Option<File>,
    /// Its task-log database, an index into [`RunLoop::logs`].
    db: usize,
    /// Its task is being started (by the [`Spawner`]); kill requests wait for it.
    starting: bool,
    /// The task, while it is not reaped.
    task: Option<TaskProcess>,
    pid: u32,
    /// The task's identity, when `/proc` gave one.
    id: Option<ProcessId>,
    /// Readable once the task exited; without one, the task is polled.
    pidfd: Option<OwnedFd>,
    next_poll: Option<Instant>,
    pipes: [Option<Pipe>; 2],
    kills: Kills,
    killed: bool,
    stop_signal: Option<i32>,
    exit: String,
    phase: Phase,
}

impl Run {
    /// Signals the task (or its group): through its identity, never a reused pid;
    /// without one, only while it is our unreaped child.
    fn signal(&self, sig: Signal, group: bool) {
        match self.id {
            Some(id) => id.signal(sig, group),
            None if self.task.is_some() => {
                let _ = child_kill(self.pid, sig);
            }
            None => {}
        }
    }

    fn group(&self) -> bool {
        self.launch.task_subprocess.process_group_leader
    }

    fn poll_period(&self) -> Duration {
        Duration::from_millis(self.launch.task_subprocess.poll_ms.clamp(1, 1000) as u64)
    }

    /// The next instant this run needs a turn, if it waits for one.
    fn deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Running => match (self.kills.sigkill_at, self.next_poll) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            Phase::Exited { deadline, .. } => Some(*deadline),
            Phase::Done(_) => Some(Instant::now()),
            Phase::Lingering => None,
        }
    }
}

/// A task-log database and the lines of this turn for it.
struct LogDb {
    path: PathBuf,
    store: Result<LogStore, String>,
    batch: Vec<LogLine>,
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
            .map_err(|e| eprintln!("bistro supervise: {}: {e}", task_path.display()))
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
        let store = LogStore::open_appender(path, STORE_BUSY_WAIT).map_err(|e| {
            eprintln!("bistro supervise: {e}");
            format!("cannot open {}", path.display())
        });
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
                eprintln!("bistro supervise: waiting for events: {e}");
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
        let finished = match self.busy {
            Some(_) => Vec::new(),
            None => self.write_results(),
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
                Ok(store) => match store.append(&db.batch) {
                    Err(e) if e.is_busy() && now < busy_since + STORE_GIVE_UP => {
                        busy = true;
                        continue;
                    }
                    stored => stored.map(drop).map_err(|e| e.to_string()),
                },
                Err(e) => Err(e.clone()),
            };
            if let (Err(e), Some(line)) = (stored, db.batch.first()) {
                eprintln!(
                    "bistro supervise: {} log lines (the first of {}/{}) were lost: {e}",
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
    /// lingering runs whose pipes closed.
    fn write_results(&mut self) -> Vec<(InvocationId, TaskResult)> {
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
            if let Err(e) = write_in_place(&path, &json) {
                eprintln!("bistro supervise: writing {}: {e}", path.display());
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

/// Watches the pipes and the exit of the run's started task, whose identity `id` (if
/// `/proc` gave one) the spawner recorded.
fn watch_task(
    epoll: &Epoll,
    echo: bool,
    key: u64,
    run: &mut Run,
    mut task: TaskProcess,
    id: Option<ProcessId>,
) {
    run.pid = task.id();
    run.id = id;
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
            Err(e) => eprintln!(
                "bistro supervise: cannot read the output of {}/{}: {e}",
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
fn failed_to_start(run: &mut Run, batch: &mut Vec<LogLine>, message: String) {
    let status = TaskStatus::error_backoff(
        format!(
            "Failed to start task {}/{}: {message}",
            run.launch.job, run.launch.node
        ),
        crate::now(),
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
        end_time: crate::now(),
    });
}

/// Logs a lifecycle event of a run (bistro-runtime §2.7).
fn event(batch: &mut Vec<LogLine>, launch: &Launch, name: &str, extra: Value) {
    let mut e = json!({
        "event": name,
        "invocation_start_time": launch.invocation.start_time,
        "invocation_rand": launch.invocation.rand,
        "worker_host": launch.worker_host,
    });
    if let (Some(e), Value::Object(extra)) = (e.as_object_mut(), extra) {
        e.extend(extra);
    }
    batch.push(LogLine {
        kind: LogKind::Statuses,
        job: launch.job.clone(),
        node: launch.node.clone(),
        time: crate::now(),
        line: e.to_string(),
    });
}

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a non-negative result is a descriptor we now own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn drain_wake_pipe() {
    if let Some((read, _)) = WAKE_PIPE.get() {
        let mut buf = [0u8; 64];
        while nix::unistd::read(read.as_raw_fd(), &mut buf).is_ok_and(|n| n > 0) {}
    }
}

/// Reads what a run's pipe has (up to [`READ_PER_TURN`]) into log lines; closes it at
/// its end.
fn read_pipe(
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
fn check_exit(run: &mut Run, batch: &mut Vec<LogLine>, epoll: &Epoll) {
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
            eprintln!("bistro supervise: waiting for the task: {e}");
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
fn advance(run: &mut Run, now: Instant, batch: &mut Vec<LogLine>, epoll: &Epoll) {
    if matches!(run.phase, Phase::Running) && run.next_poll.is_some_and(|t| now >= t) {
        check_exit(run, batch, epoll);
        run.next_poll = Some(now + run.poll_period());
    }
    match run.phase {
        // A kill asked of a task still starting waits for it.
        Phase::Running if run.starting => {}
        Phase::Running => apply_kills(run, now),
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
    let now = crate::now();
    let launch = &run.launch;
    let bytes = read_status_bytes(&launch.status_file);
    let (status, raw) = match bytes.as_deref().map(read_status_file) {
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::supervisor::run_dirs::is_written;

    fn cut(chunks: &[&[u8]]) -> Vec<(String, bool)> {
        let mut cutter = LineCutter::default();
        let mut out = Vec::new();
        for chunk in chunks {
            cutter.feed(chunk, |b, nl| {
                out.push((String::from_utf8_lossy(b).into(), nl))
            });
        }
        cutter.finish(|b, nl| out.push((String::from_utf8_lossy(b).into(), nl)));
        out
    }

    #[test]
    fn output_is_cut_into_lines_across_reads() {
        assert_eq!(
            cut(&[b"a\nb", b"c\n\nlast"]),
            vec![
                ("a".into(), true),
                ("bc".into(), true),
                ("".into(), true),
                ("last".into(), false)
            ]
        );
    }

    #[test]
    fn over_long_lines_are_cut_into_pieces_of_the_longest_line() {
        let exact = vec![b'x'; MAX_LINE_BYTES];
        let mut long = vec![b'y'; MAX_LINE_BYTES + 1];
        long.push(b'\n');
        let out = cut(&[&exact, b"\n", &long[..10], &long[10..]]);
        let shape: Vec<(usize, bool)> = out.iter().map(|(t, nl)| (t.len(), *nl)).collect();
        assert_eq!(
            shape,
            vec![(MAX_LINE_BYTES, true), (MAX_LINE_BYTES, false), (1, true)]
        );
    }

    #[test]
    fn a_full_piece_waits_for_the_next_byte_to_know_if_a_newline_ends_it() {
        let exact = vec![b'x'; MAX_LINE_BYTES];
        assert_eq!(
            cut(&[&exact, b"\nz"])
                .iter()
                .map(|(t, nl)| (t.len(), *nl))
                .collect::<Vec<_>>(),
            vec![(MAX_LINE_BYTES, true), (1, false)]
        );
    }

    /// A run of `sh -c script` in `dir`, with its status file and task log there.
    pub(in crate::supervisor) fn launch(dir: &Path, script: &str) -> Launch {
        Launch {
            job: "j".into(),
            node: "n".into(),
            invocation: crate::task::InvocationId {
                start_time: 1,
                rand: 7,
            },
            argv: vec![
                "sh".into(),
                "-c".into(),
                script.into(),
                "sh".into(),
                dir.join("status").display().to_string(),
            ],
            cwd: dir.into(),
            status_file: dir.join("status"),
            log_db: dir.join("logs.sql3"),
            worker_host: "h".into(),
            task_subprocess: Default::default(),
            kill_subprocess: Default::default(),
            on_worker_death: None,
            worker: None,
        }
    }

    /// Turns the loop until its runs are over; their results.
    fn run_out(runs: &mut RunLoop) -> Vec<TaskResult> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut results = Vec::new();
        while !runs.is_empty() {
            assert!(Instant::now() < deadline, "the runs never ended");
            results.extend(
                runs.turn(Duration::from_millis(100))
                    .finished
                    .into_iter()
                    .map(|(_, r)| r),
            );
        }
        results
    }

    fn rows(db: &Path, table: &str) -> Vec<String> {
        let conn = rusqlite::Connection::open(db).unwrap();
        let mut stmt = conn
            .prepare(&format!("SELECT line FROM {table} ORDER BY time_and_count"))
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn runs_in_one_loop_store_their_output_events_and_results() {
        let tmp = tempfile::tempdir().unwrap();
        let mut runs = RunLoop::new(false).unwrap();
        let dirs: Vec<PathBuf> = (0..3).map(|i| tmp.path().join(format!("run{i}"))).collect();
        for (i, dir) in dirs.iter().enumerate() {
            std::fs::create_dir(dir).unwrap();
            let mut launch = launch(
                dir,
                &format!("echo out{i}; echo err{i} >&2; printf 'partial'; echo done > \"$1\""),
            );
            launch.log_db = tmp.path().join("logs.sql3");
            runs.start(launch, dir.clone(), None);
        }
        let results = run_out(&mut runs);
        assert_eq!(results.len(), 3);
        for (i, dir) in dirs.iter().enumerate() {
            let written: TaskResult =
                serde_json::from_slice(&std::fs::read(dir.join(run_dir::RESULT)).unwrap()).unwrap();
            assert_eq!(
                written.status.name(),
                crate::status::StatusName::Done,
                "{written:?}"
            );
            assert_eq!(written.exit, "exited with status 0");
            let stdout = rows(&tmp.path().join("logs.sql3"), "stdout");
            assert!(stdout.contains(&format!("out{i}")), "{stdout:?}");
            assert!(stdout.contains(&"partial".to_string()), "{stdout:?}");
            let stderr = rows(&tmp.path().join("logs.sql3"), "stderr");
            assert!(stderr.contains(&format!("err{i}")), "{stderr:?}");
        }
        let events: Vec<String> = rows(&tmp.path().join("logs.sql3"), "statuses")
            .iter()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["event"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        for name in [
            "running",
            "process_exited",
            "task_pipes_closed",
            "got_status",
        ] {
            assert_eq!(
                events.iter().filter(|e| *e == name).count(),
                3,
                "{events:?}"
            );
        }
    }

    #[test]
    fn a_task_that_cannot_start_gets_a_result_and_an_event() {
        let tmp = tempfile::tempdir().unwrap();
        let mut runs = RunLoop::new(false).unwrap();
        let mut launch = launch(tmp.path(), "");
        launch.argv = vec![tmp.path().join("missing").display().to_string()];
        runs.start(launch, tmp.path().into(), None);
        let results = run_out(&mut runs);
        assert_eq!(
            results[0].status.name(),
            crate::status::StatusName::ErrorBackoff
        );
        assert!(
            results[0].exit.starts_with("failed to start"),
            "{:?}",
            results[0]
        );
        assert!(rows(&tmp.path().join("logs.sql3"), "statuses")
            .iter()
            .any(|l| l.contains("task_failed_to_start")));
    }

    #[test]
    fn a_task_whose_working_directory_was_removed_between_runs_still_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let cwd = tmp.path().join("job");
        let mut runs = RunLoop::new(false).unwrap();
        for i in 0..2 {
            let dir = tmp.path().join(format!("run{i}"));
            std::fs::create_dir(&dir).unwrap();
            let mut launch = launch(&dir, "pwd; echo done > \"$1\"");
            launch.cwd = cwd.clone();
            launch.log_db = tmp.path().join("logs.sql3");
            runs.start(launch, dir, None);
            let results = run_out(&mut runs);
            assert_eq!(
                results[0].status.name(),
                crate::status::StatusName::Done,
                "run {i}: {:?}",
                results[0]
            );
            std::fs::remove_dir(&cwd).unwrap();
        }
        let printed = rows(&tmp.path().join("logs.sql3"), "stdout");
        assert_eq!(printed, vec![cwd.display().to_string(); 2]);
    }

    #[test]
    fn a_kill_asked_while_the_task_starts_is_applied_once_it_started() {
        let tmp = tempfile::tempdir().unwrap();
        let mut runs = RunLoop::new(false).unwrap();
        let launch = launch(tmp.path(), "sleep 1000");
        // One SIGTERM, with no SIGKILL after it to make up for a lost one.
        let request = serde_json::to_vec(&crate::config::KillRequest {
            method: KillMethod::Term,
            kill_wait_ms: 0,
        })
        .unwrap();
        runs.start(launch, tmp.path().into(), None);
        // Asked before the loop heard of the start (and most likely before the
        // spawner made it): the request waits for the task instead of being lost.
        std::fs::write(tmp.path().join(run_dir::KILL_REQUEST), request).unwrap();
        on_kill_request(0);
        runs.turn(Duration::ZERO);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut results = Vec::new();
        while !runs.is_empty() {
            assert!(Instant::now() < deadline, "the kill was lost");
            let turn = runs.turn(Duration::from_millis(100));
            results.extend(turn.finished.into_iter().map(|(_, r)| r));
        }
        assert!(results[0].killed, "{:?}", results[0]);
    }

    #[test]
    fn output_of_a_process_that_outlives_the_pipe_grace_is_still_stored_after_the_result() {
        let tmp = tempfile::tempdir().unwrap();
        let mut runs = RunLoop::new(false).unwrap();
        // Not a group leader: the straggler is not killed with the task's group.
        let mut launch = launch(tmp.path(), "(sleep 3.5; echo late) & echo done > \"$1\"");
        launch.task_subprocess.process_group_leader = false;
        runs.start(launch, tmp.path().into(), None);
        let results = run_out(&mut runs);
        assert_eq!(results[0].status.name(), crate::status::StatusName::Done);
        let db = tmp.path().join("logs.sql3");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !rows(&db, "stdout").contains(&"late".to_string()) {
            assert!(Instant::now() < deadline, "the late line was never stored");
            runs.turn(Duration::from_millis(100));
        }
        assert!(rows(&db, "statuses")
            .iter()
            .all(|l| !l.contains("task_pipes_closed")));
    }

    #[test]
    fn a_busy_log_database_holds_results_back_without_blocking_the_loop() {
        let tmp = tempfile::tempdir().unwrap();
        let mut runs = RunLoop::new(false).unwrap();
        runs.start(
            launch(tmp.path(), "echo out; echo done > \"$1\""),
            tmp.path().into(),
            None,
        );
        let db = tmp.path().join("logs.sql3");
        let other = rusqlite::Connection::open(&db).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        // Turns keep coming (each waits at most STORE_BUSY_WAIT), but while another
        // writer holds the database no result is written.
        let until = Instant::now() + Duration::from_secs(1);
        let mut turns = 0;
        while Instant::now() < until {
            assert!(runs.turn(Duration::from_millis(100)).finished.is_empty());
            turns += 1;
        }
        assert!(
            turns > 10,
            "the loop blocked on the database: {turns} turns"
        );
        assert!(!is_written(
            &std::fs::read(tmp.path().join(run_dir::RESULT)).unwrap_or_default()
        ));
        other.execute_batch("ROLLBACK").unwrap();
        let results = run_out(&mut runs);
        assert_eq!(results[0].status.name(), crate::status::StatusName::Done);
        assert!(rows(&db, "stdout").contains(&"out".to_string()));
    }
}
