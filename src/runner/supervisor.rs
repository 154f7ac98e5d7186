//! The supervisor of a task run: starts the process, stores its output line by line,
//! waits for it (killing it on request), reads its status file and writes the result.
//!
//! A run is supervised either by the detached supervisor host a tick or daemon starts
//! (`bistro supervise`, see [`super::host`]: one process for many runs, so the tasks
//! outlive the tick) or by the `bistro run-task` process itself. The run's lock is held
//! until its result is written, which is how a later tick tells a live run from a lost
//! one, and the supervisor's identity is recorded before the task starts, so whoever
//! finds the run lost can kill everything it started.

use super::process::{self, ProcessId};
use super::run_dirs::write_in_place;
use super::spawn::{SpawnSpec, TaskProcess};
use super::{Launch, TaskResult, RESULT_FILE, SPAWNING, TASK_FILE};
use crate::config::{KillMethod, KillRequest};
use crate::status::{
    parse_status, read_status_file, StatusFileError, TaskStatus, MAX_STATUS_BYTES,
};
use crate::store::{LogKind, LogLine, LogStore};
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest line stored; longer output is cut into pieces of this size.
pub const MAX_LINE_BYTES: usize = 65000;

/// After the task's main process exits, how long its pipes may stay open (held by
/// background children) before the rest of its process group is killed.
const PIPE_GRACE: Duration = Duration::from_secs(3);

/// After the task's process group is killed, how long its buffered output may take to
/// reach the log, as long as it keeps coming (a process that left the group could
/// otherwise keep the supervisor forever).
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// Lines buffered between the pipe readers and the database writer. When full, the
/// readers stop reading and the task blocks on its pipe: back-pressure, as in Bistro,
/// instead of unbounded memory.
const LOG_BUFFER_LINES: usize = 10_000;

/// What asks one run's task to die: each request is applied once, with the kill
/// method [`kill_request`] finds at that moment.
#[derive(Debug, Default)]
pub struct KillSwitch {
    /// How many kill requests arrived.
    requests: AtomicUsize,
    /// The last signal that asked the supervisor itself to stop (0: none).
    signal: AtomicI32,
    /// The run's remote worker died: its task gets the worker-death kill.
    worker_died: AtomicBool,
}

impl KillSwitch {
    /// A switch no one has pulled.
    pub const fn new() -> Self {
        Self {
            requests: AtomicUsize::new(0),
            signal: AtomicI32::new(0),
            worker_died: AtomicBool::new(false),
        }
    }

    /// One more kill request; `signal` when a stop signal to the supervisor asked for
    /// it (recorded in the result). Async-signal-safe: atomics only.
    pub fn request(&self, signal: Option<i32>) {
        if let Some(signal) = signal {
            self.signal.store(signal, Ordering::SeqCst);
        }
        self.requests.fetch_add(1, Ordering::SeqCst);
    }

    /// The run's worker is gone: kill its task with the worker-death kill.
    pub fn worker_died(&self) {
        self.worker_died.store(true, Ordering::SeqCst);
        self.request(Some(Signal::SIGTERM as i32));
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn stop_signal(&self) -> Option<i32> {
        Some(self.signal.load(Ordering::SeqCst)).filter(|&s| s != 0)
    }
}

/// The switch of the one run a `bistro run-task` process supervises, pulled by its
/// signal handlers.
static THIS_RUN: KillSwitch = KillSwitch::new();

extern "C" fn on_stop_signal(signal: i32) {
    THIS_RUN.request(Some(signal));
}

extern "C" fn on_kill_request(_: i32) {
    THIS_RUN.request(None);
}

/// The signal [`super::request_kill`] sends a supervisor after writing the run's kill
/// request: "look at your runs' kill requests".
pub const KILL_REQUEST_SIGNAL: Signal = Signal::SIGUSR2;

/// The signal a supervisor on a remote worker gets when the worker dies.
pub const WORKER_DEATH_SIGNAL: Signal = Signal::SIGUSR1;

/// The file a killer writes before signalling the supervisor, to ask for a kill
/// method other than the one the task was launched with (the job's current
/// `kill_subprocess`, or the global one for an orphan of a deleted job).
pub const KILL_REQUEST_FILE: &str = "kill.json";

/// The kill a request asks for: the worker-death kill once the worker is gone, else
/// the request file's, else the launch's.
fn kill_request(launch: &Launch, dir: &Path, switch: &KillSwitch) -> KillRequest {
    if let (true, Some(death)) = (
        switch.worker_died.load(Ordering::SeqCst),
        launch.on_worker_death,
    ) {
        return death.kill;
    }
    std::fs::read(dir.join(KILL_REQUEST_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(launch.kill_subprocess)
}

/// The signals that ask a supervisor to stop: it kills its tasks, records them, exits.
pub const STOP_SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

/// Installs `handler` for `signal`. The handlers given here only touch atomics.
pub fn handle_signal(signal: Signal, handler: extern "C" fn(i32)) {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    let action = SigAction::new(
        SigHandler::Handler(handler),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: every handler passed here only stores to atomics, which is
    // async-signal-safe.
    unsafe {
        let _ = sigaction(signal, &action);
    }
}

/// Routes the stop signals and kill requests to this process's one run.
fn install_signal_handlers() {
    for sig in STOP_SIGNALS {
        handle_signal(sig, on_stop_signal);
    }
    handle_signal(KILL_REQUEST_SIGNAL, on_kill_request);
}

/// Arms the worker-death signal with `handler`: true when it is armed and the worker
/// is still our parent (else the worker is gone already, and the caller acts at once).
pub fn watch_worker(worker: i32, handler: extern "C" fn(i32)) -> bool {
    handle_signal(WORKER_DEATH_SIGNAL, handler);
    nix::sys::prctl::set_pdeathsig(WORKER_DEATH_SIGNAL).is_ok()
        && nix::unistd::getppid().as_raw() == worker
}

/// Puts the default dispositions back once the task is over.
pub fn restore_signal_handlers() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    let action = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in STOP_SIGNALS.into_iter().chain([KILL_REQUEST_SIGNAL]) {
        // SAFETY: restoring the default disposition.
        unsafe {
            let _ = sigaction(sig, &action);
        }
    }
}

enum Msg {
    Line(LogLine),
    /// Answer once every line sent before this one is stored.
    Flush(mpsc::Sender<()>),
    /// Store what came before, then stop: pipe readers that a stray process keeps
    /// blocked still hold senders, so the writer cannot wait for all of them to go.
    End,
}

/// The task-log writer of a supervisor: one connection to the task-log database,
/// shared by every run it supervises, storing lines in batches.
pub struct LogWriter {
    tx: Option<mpsc::SyncSender<Msg>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LogWriter {
    /// Starts the writer of the database at `db`.
    pub fn start(db: &Path) -> Self {
        let (tx, rx) = mpsc::sync_channel(LOG_BUFFER_LINES);
        let db = db.to_path_buf();
        let thread = std::thread::spawn(move || write_logs(&db, &rx));
        Self {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    fn sink<'a>(&self, launch: &'a Launch) -> LogSink<'a> {
        LogSink {
            launch,
            tx: self.tx.clone().expect("the writer runs until dropped"),
        }
    }
}

impl Drop for LogWriter {
    /// Stores what is left, then stops the writer.
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Msg::End);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One run's log lines and events on their way to the database.
struct LogSink<'a> {
    launch: &'a Launch,
    tx: mpsc::SyncSender<Msg>,
}

impl LogSink<'_> {
    /// Logs a lifecycle event (bistro-runtime §2.7).
    fn event(&self, name: &str, extra: Value) {
        let mut e = json!({
            "event": name,
            "invocation_start_time": self.launch.invocation.start_time,
            "invocation_rand": self.launch.invocation.rand,
            "worker_host": self.launch.worker_host,
        });
        if let (Some(e), Some(extra)) = (e.as_object_mut(), extra.as_object()) {
            e.extend(extra.clone());
        }
        let line = LogLine {
            kind: LogKind::Statuses,
            job: self.launch.job.clone(),
            node: self.launch.node.clone(),
            time: crate::now(),
            line: e.to_string(),
        };
        let _ = self.tx.send(Msg::Line(line));
    }

    /// Returns once everything this run sent is stored. Readers still blocked on a
    /// pipe held open by a stray process cannot delay it: their later lines are
    /// stored after the result, or dropped with the supervisor.
    fn finish(self) {
        let (ack, stored) = mpsc::channel();
        if self.tx.send(Msg::Flush(ack)).is_ok() {
            let _ = stored.recv();
        }
    }
}

/// Stores log lines in batches until [`Msg::End`] (or every sender is gone),
/// answering flushes once the lines before them are stored. Lines that cannot be stored are counted on
/// stderr (`supervisors.log`).
fn write_logs(db: &Path, rx: &mpsc::Receiver<Msg>) {
    let mut store = LogStore::open_appender(db)
        .map_err(|e| eprintln!("bistro supervise: {e}"))
        .ok();
    let mut batch = Vec::new();
    let mut acks = Vec::new();
    let mut ended = false;
    while !ended {
        let Ok(first) = rx.recv() else { break };
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Line(line) => batch.push(line),
                Msg::Flush(ack) => acks.push(ack),
                Msg::End => ended = true,
            }
            next = if batch.len() < 2000 && !ended {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        let stored = match store.as_mut() {
            Some(store) => store.append(&batch).map(drop).map_err(|e| e.to_string()),
            None => Err(format!("cannot open {}", db.display())),
        };
        if let (Err(e), Some(line)) = (stored, batch.first()) {
            eprintln!(
                "bistro supervise: {} log lines (the first of {}/{}) were lost: {e}",
                batch.len(),
                line.job,
                line.node
            );
        }
        batch.clear();
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
    }
}

/// The stack of a pipe reader: it only cuts lines (its buffer is on the heap). Small
/// stacks cost less to set up and to give back, twice per task.
const READER_STACK: usize = 64 * 1024;

/// Reads a pipe, cutting it into lines (and over-long lines into pieces); `task` is
/// (job, node).
fn read_lines(
    mut pipe: impl Read,
    kind: LogKind,
    task: &(String, String),
    tx: &mpsc::SyncSender<Msg>,
    mut echo: Option<Echo>,
    reads: &AtomicUsize,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut send = |bytes: &[u8], newline: bool| {
        let text = String::from_utf8_lossy(bytes).into_owned();
        if let Some(echo) = echo.as_mut() {
            echo.write_line(&text, newline);
        }
        let line = LogLine {
            kind,
            job: task.0.clone(),
            node: task.1.clone(),
            time: crate::now(),
            line: text,
        };
        tx.send(Msg::Line(line)).is_ok()
    };
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        reads.fetch_add(1, Ordering::Relaxed);
        for &b in &buf[..n] {
            if b == b'\n' || pending.len() == MAX_LINE_BYTES {
                if !send(&pending, b == b'\n') {
                    return;
                }
                pending.clear();
            }
            if b != b'\n' {
                pending.push(b);
            }
        }
    }
    if !pending.is_empty() {
        send(&pending, false);
    }
}

/// Where `run-task` copies a task's output: our stdout or stderr, with terminal
/// controls escaped when it is a terminal.
struct Echo {
    out: Box<dyn Write + Send>,
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

/// Supervises this process's one run (`bistro run-task`) to completion and writes
/// `result.json` into `dir`; the stop signals and kill requests sent to this process
/// are its kill requests.
///
/// With `echo`, the task's output is also copied to our stdout and stderr (for
/// `run-task` in a terminal).
pub fn supervise(launch: &Launch, dir: &Path, echo: bool) -> TaskResult {
    install_signal_handlers();
    take_over(dir, &THIS_RUN);
    let logs = LogWriter::start(&launch.log_db);
    supervise_run(launch, dir, &THIS_RUN, &logs, echo)
}

/// Which `kill.json` of a run was last acted on: a new request is a new file.
pub type KillFile = Option<(u64, u64, i64, i64)>;

/// The run's `kill.json` as it is now.
pub fn kill_file(dir: &Path) -> KillFile {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir.join(KILL_REQUEST_FILE))
        .ok()
        .map(|m| (m.dev(), m.ino(), m.mtime(), m.mtime_nsec()))
}

/// Records this process as the run's supervisor, then takes a kill request that came
/// before it: a killer writes its request before it reads the supervisor's identity,
/// so one of the two always sees the other. Returns the request file taken, if any.
pub fn take_over(dir: &Path, switch: &KillSwitch) -> KillFile {
    if let Some(me) = ProcessId::me() {
        if let Err(e) = process::record(&dir.join("supervisor.pid"), me) {
            eprintln!("bistro supervise: {e}");
        }
    }
    let request = kill_file(dir);
    if request.is_some() {
        switch.request(None);
    }
    request
}

/// Supervises one run to completion, storing its output through `logs`, and writes
/// `result.json` into `dir`; `switch` carries its kill requests. The caller has taken
/// the run over ([`take_over`]).
pub fn supervise_run(
    launch: &Launch,
    dir: &Path,
    switch: &KillSwitch,
    logs: &LogWriter,
    echo: bool,
) -> TaskResult {
    let sink = logs.sink(launch);
    sink.event("running", json!({"command": launch.argv}));
    // From here on the task may exist even if we die before recording its pid.
    if let Err(e) = write_in_place(&dir.join(TASK_FILE), SPAWNING) {
        eprintln!("bistro supervise: {}: {e}", dir.join(TASK_FILE).display());
    }
    let result = match spawn(launch) {
        Err(message) => {
            let status = TaskStatus::error_backoff(
                format!(
                    "Failed to start task {}/{}: {message}",
                    launch.job, launch.node
                ),
                crate::now(),
            );
            sink.event(
                "task_failed_to_start",
                json!({"status": status.to_event_json()}),
            );
            TaskResult {
                status,
                exit: format!("failed to start: {message}"),
                killed: false,
                stop_signal: None,
                end_time: crate::now(),
            }
        }
        Ok(child) => run(launch, dir, child, echo, &sink, switch),
    };
    sink.finish();
    // In place: the file is reused (see `run_dirs`), and readers take a partial
    // result for none, as long as the run's lock is held.
    let path = dir.join(RESULT_FILE);
    let json = serde_json::to_vec(&result).expect("results serialize");
    if let Err(e) = write_in_place(&path, &json) {
        eprintln!("bistro supervise: writing {}: {e}", path.display());
    }
    result
}

fn spawn(launch: &Launch) -> Result<TaskProcess, String> {
    std::fs::create_dir_all(&launch.cwd).map_err(|e| {
        format!(
            "cannot create working directory {}: {e}",
            launch.cwd.display()
        )
    })?;
    let death_signal =
        Signal::try_from(launch.task_subprocess.parent_death_signal).map_or(0, |sig| sig as i32);
    super::spawn::spawn(&SpawnSpec {
        argv: &launch.argv,
        cwd: &launch.cwd,
        process_group: launch.task_subprocess.process_group_leader,
        death_signal,
    })
}

fn run(
    launch: &Launch,
    dir: &Path,
    mut child: TaskProcess,
    echo: bool,
    sink: &LogSink,
    switch: &KillSwitch,
) -> TaskResult {
    let pid = ProcessId::of(child.id() as i32);
    if let Some(id) = pid {
        if let Err(e) = process::record(&dir.join(TASK_FILE), id) {
            eprintln!("bistro supervise: {e}");
        }
    }
    let child_pid = child.id();
    // Without a /proc identity, only the unreaped child itself can be signalled safely.
    let signal = |sig: Signal, group: bool, reaped: bool| match pid {
        Some(id) => id.signal(sig, group),
        None if !reaped => {
            let _ = child_kill(child_pid, sig);
        }
        None => {}
    };
    let group = launch.task_subprocess.process_group_leader;
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let pipes: Vec<(Box<dyn Read + Send>, LogKind)> = [
        child
            .stdout
            .take()
            .map(|p| (Box::new(p) as Box<dyn Read + Send>, LogKind::Stdout)),
        child
            .stderr
            .take()
            .map(|p| (Box::new(p) as Box<dyn Read + Send>, LogKind::Stderr)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut open = pipes.len();
    let reads = std::sync::Arc::new(AtomicUsize::new(0));
    for (pipe, kind) in pipes {
        let (tx, done_tx) = (sink.tx.clone(), done_tx.clone());
        let task = (launch.job.clone(), launch.node.clone());
        let out = echo.then(|| Echo::new(kind));
        let reads = reads.clone();
        let spawned = std::thread::Builder::new()
            .stack_size(READER_STACK)
            .spawn(move || {
                read_lines(pipe, kind, &task, &tx, out, &reads);
                let _ = done_tx.send(());
            });
        if let Err(e) = spawned {
            eprintln!(
                "bistro supervise: cannot read the output of {}/{}: {e}",
                launch.job, launch.node
            );
            open -= 1;
        }
    }
    drop(done_tx);

    let poll = Duration::from_millis(launch.task_subprocess.poll_ms.clamp(1, 1000) as u64);
    let exited = ExitWatch::new(child_pid);
    let mut killed = false;
    let mut stop_signal = None;
    let mut requests_seen = 0;
    let mut sigkill_at: Option<Instant> = None;
    let exit = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(e) => {
                eprintln!("bistro supervise: waiting for the task: {e}");
                break None;
            }
        }
        // Each new request is applied as Bistro merges queued kills: KILL at once
        // (cancelling a countdown), TERM, or TERM with the earliest SIGKILL deadline.
        let requests = switch.requests();
        if requests != requests_seen {
            requests_seen = requests;
            stop_signal = switch.stop_signal();
            killed = true;
            let request = kill_request(launch, dir, switch);
            match request.method {
                KillMethod::Kill => {
                    signal(Signal::SIGKILL, group, false);
                    sigkill_at = None;
                }
                KillMethod::Term => signal(Signal::SIGTERM, group, false),
                KillMethod::TermWaitKill => {
                    signal(Signal::SIGTERM, group, false);
                    let at =
                        Instant::now() + Duration::from_millis(request.kill_wait_ms.max(0) as u64);
                    sigkill_at = Some(sigkill_at.map_or(at, |t| t.min(at)));
                }
            }
        }
        if sigkill_at.is_some_and(|t| Instant::now() >= t) {
            signal(Signal::SIGKILL, group, false);
            sigkill_at = None;
        }
        exited.wait(poll);
    };
    let message = match exit.map(|e| (e.code(), e.signal())) {
        Some((Some(code), _)) => format!("exited with status {code}"),
        Some((None, Some(sig))) => format!("killed by signal {sig}"),
        _ => "exited".to_string(),
    };
    sink.event("process_exited", json!({"message": message}));

    let mut closed = wait_for_readers(&done_rx, &mut open, PIPE_GRACE, None, PIPE_GRACE);
    if !closed && group {
        sink.event("task_pipes_timeout", json!({"message": "the task's output stayed open after it exited (background processes, or more output than the log took in time); killing its process group"}));
        signal(Signal::SIGKILL, true, true);
        // Nothing of the group writes any more: what is left is buffered output,
        // drained for as long as it keeps coming (within DRAIN_LIMIT).
        closed = wait_for_readers(&done_rx, &mut open, PIPE_GRACE, Some(&reads), DRAIN_LIMIT);
    }
    if closed {
        sink.event("task_pipes_closed", json!({}));
    }

    let now = crate::now();
    let bytes = read_status_bytes(&launch.status_file);
    let (status, raw) = match bytes.as_deref().map(read_status_file) {
        Ok(Ok(line)) => (parse_status(&line, now), Some(line)),
        Ok(Err(StatusFileError::Empty)) if killed => (
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
    sink.event("got_status", got);
    TaskResult {
        status,
        exit: message,
        killed,
        stop_signal,
        end_time: now,
    }
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

/// Wakes a supervisor as soon as its task exits, not a poll period later: a task's
/// slot is free as soon as possible, which is most of a short task's overhead.
struct ExitWatch(Option<std::os::fd::OwnedFd>);

impl ExitWatch {
    /// Watches the child `pid` (a pidfd; without one, waits are plain sleeps).
    fn new(pid: u32) -> Self {
        use std::os::fd::FromRawFd;
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
        // SAFETY: a non-negative result is a descriptor we now own.
        Self((fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) }))
    }

    /// Waits up to `period`, or until the child exits.
    fn wait(&self, period: Duration) {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        match &self.0 {
            Some(fd) => {
                let timeout = PollTimeout::try_from(period).unwrap_or(PollTimeout::MAX);
                let _ = poll(&mut [PollFd::new(fd.as_fd(), PollFlags::POLLIN)], timeout);
            }
            None => std::thread::sleep(period),
        }
    }
}

/// Signals a child we could not identify in `/proc` (it exited at once).
fn child_kill(pid: u32, sig: Signal) -> nix::Result<()> {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig)
}

/// Waits until every reader reported EOF (`open` counts those still reading): up to
/// `grace`, extended (up to `at_most` in all) while the readers' count of `reads`
/// grows.
fn wait_for_readers(
    done: &mpsc::Receiver<()>,
    open: &mut usize,
    grace: Duration,
    reads: Option<&AtomicUsize>,
    at_most: Duration,
) -> bool {
    let progress = || reads.map(|r| r.load(Ordering::Relaxed));
    let mut seen = progress();
    let start = Instant::now();
    let mut deadline = start + grace;
    while *open > 0 {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(100));
        match done.recv_timeout(wait) {
            Ok(()) => *open -= 1,
            Err(mpsc::RecvTimeoutError::Disconnected) => return true,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let now = progress();
                if now != seen {
                    seen = now;
                    deadline = (Instant::now() + grace).min(start + at_most);
                }
                if Instant::now() >= deadline {
                    return false;
                }
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    /// A pipe reader that keeps reading (bumps `reads`) until `until()`, then reports EOF.
    fn reader(
        reads: Arc<AtomicUsize>,
        until: impl Fn() -> bool + Send + 'static,
    ) -> mpsc::Receiver<()> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            while !until() {
                reads.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = tx.send(());
        });
        rx
    }

    #[test]
    fn a_log_writer_stops_although_a_blocked_reader_still_holds_a_sender() {
        let dir = tempfile::tempdir().unwrap();
        let writer = LogWriter::start(&dir.path().join("logs.sql3"));
        let held = writer.tx.clone().unwrap();
        let (done, stopped) = mpsc::channel();
        std::thread::spawn(move || {
            drop(writer);
            let _ = done.send(());
        });
        assert!(
            stopped.recv_timeout(Duration::from_secs(30)).is_ok(),
            "dropping the writer waited for every sender"
        );
        drop(held);
    }

    #[test]
    fn output_that_keeps_coming_is_drained_past_the_grace() {
        let reads = Arc::new(AtomicUsize::new(0));
        let watched = reads.clone();
        let done = reader(reads.clone(), move || {
            watched.load(Ordering::Relaxed) >= 400
        });
        let mut open = 1;
        let grace = Duration::from_millis(500);
        assert!(wait_for_readers(
            &done,
            &mut open,
            grace,
            Some(&reads),
            Duration::from_secs(60)
        ));
        assert_eq!(open, 0);
    }

    #[test]
    fn silent_or_endless_output_is_given_up_on() {
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicUsize::new(0));
        let flag = stop.clone();
        let done = reader(reads.clone(), move || flag.load(Ordering::Relaxed));
        let mut open = 1;
        let short = Duration::from_millis(100);
        assert!(
            !wait_for_readers(&done, &mut open, short, None, short),
            "without counting reads the grace is fixed"
        );
        assert!(
            !wait_for_readers(&done, &mut open, short, Some(&reads), short * 5),
            "a reader that never ends is given up on after at_most"
        );
        assert_eq!(open, 1);
        stop.store(true, Ordering::Relaxed);
    }
}
