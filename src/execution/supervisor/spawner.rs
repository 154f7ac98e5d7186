//! Starting tasks off the event loop's thread.
//!
//! A start ([`super::spawn`]) holds the thread that makes it until the child execs,
//! and on a machine busy with tasks that is a wait for a CPU: up to a millisecond or
//! more per task. Made by the loop, starts went one at a time, the loop could not
//! report the runs that ended meanwhile, and cores sat idle between a burst of starts
//! and the next. Here a few threads start tasks side by side, and the loop hears of
//! each start through the wake pipe, like a signal.
//!
//! A task gets its parent-death signal when the thread that started it ends, so these
//! threads never end before the process does.

use super::diagnostics::SUPERVISE;
use super::process::{self, ProcessId};
use super::run_dirs::{overwrite, BLANK};
use super::spawn::{spawn, SpawnError, SpawnSpec, TaskProcess};
use super::Launch;
use nix::sys::signal::Signal;
use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

/// How many tasks may be starting at once. Two cores are kept busy by two; a few more
/// cover starts that wait on the disk.
const MAX_THREADS: usize = 4;

/// A start asked of the threads: the run's key, what to start, and the run's open
/// `task.pid` (marked as spawning), where the started task's identity goes at once.
struct Request {
    key: u64,
    launch: Launch,
    record: Option<File>,
}

/// How a start went.
pub enum Start {
    /// The task runs; its identity, when `/proc` gave one, is recorded already.
    Started(TaskProcess, Option<ProcessId>),
    /// It could not start, for this reason.
    Failed(String),
    /// It was not started: starts were cancelled before a thread took it. Its
    /// `task.pid` is blank again, so the run reads as never started.
    Cancelled,
}

/// Threads that start tasks, made as they are needed, up to [`MAX_THREADS`].
pub struct Spawner {
    requests: Sender<Request>,
    queue: Arc<Mutex<Receiver<Request>>>,
    started_tx: Sender<(u64, Start)>,
    started: Receiver<(u64, Start)>,
    /// Called by a thread after each start, to wake the loop.
    notify: fn(),
    /// Set once no queued start may begin any more.
    cancelled: Arc<AtomicBool>,
    threads: usize,
    /// Starts asked for and not yet taken back with [`Spawner::take`].
    pending: usize,
}

impl Spawner {
    /// A spawner with no thread yet; `notify` is called after each start.
    pub fn new(notify: fn()) -> Self {
        let (requests, queue) = channel();
        let (started_tx, started) = channel();
        Self {
            requests,
            queue: Arc::new(Mutex::new(queue)),
            started_tx,
            started,
            notify,
            cancelled: Arc::new(AtomicBool::new(false)),
            threads: 0,
            pending: 0,
        }
    }

    /// Asks for the task of `launch` to be started, its identity recorded into
    /// `record`; [`Spawner::take`] returns how it went under `key`. Without any thread
    /// (none could be made), it starts here.
    pub fn start(&mut self, key: u64, launch: Launch, record: Option<File>) {
        self.pending += 1;
        if self.threads < self.pending.min(MAX_THREADS) {
            self.add_thread();
        }
        let request = Request {
            key,
            launch,
            record,
        };
        if self.threads == 0 {
            let _ = self.started_tx.send((key, start(request, &self.cancelled)));
            (self.notify)();
            return;
        }
        // The receiver lives in the threads, which never end.
        let _ = self.requests.send(request);
    }

    /// No start still queued begins: each comes back [`Start::Cancelled`]. (A
    /// supervisor told to stop drops the runs it has not started, as it drops those
    /// still on its socket.)
    pub fn cancel_queued(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// The starts made since the last call.
    pub fn take(&mut self) -> Vec<(u64, Start)> {
        let started: Vec<(u64, Start)> = self.started.try_iter().collect();
        self.pending -= started.len();
        started
    }

    fn add_thread(&mut self) {
        let (queue, started) = (self.queue.clone(), self.started_tx.clone());
        let (notify, cancelled) = (self.notify, self.cancelled.clone());
        let made = std::thread::Builder::new()
            .name("bistro-spawner".into())
            .stack_size(THREAD_STACK)
            .spawn(move || serve(&queue, &started, notify, &cancelled));
        match made {
            Ok(_) => self.threads += 1,
            Err(e) => {
                tracing::error!(target: SUPERVISE, "cannot make a thread to start tasks: {e}")
            }
        }
    }
}

/// A spawner thread's stack: it only prepares a start (the child gets its own stack).
const THREAD_STACK: usize = 256 * 1024;

/// A thread's life: start what is asked and tell the loop; once the loop is gone,
/// wait for the process to end (the tasks this thread started die with it).
fn serve(
    queue: &Mutex<Receiver<Request>>,
    started: &Sender<(u64, Start)>,
    notify: fn(),
    cancelled: &AtomicBool,
) {
    loop {
        let request = queue.lock().map(|q| q.recv());
        let Ok(Ok(request)) = request else {
            loop {
                std::thread::park();
            }
        };
        let key = request.key;
        // A panic must not end this thread (its tasks would get their parent-death
        // signal) nor leave the run starting for ever.
        let how =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| start(request, cancelled)))
                .unwrap_or_else(|_| Start::Failed("starting the task panicked".into()));
        if started.send((key, how)).is_ok() {
            notify();
        }
    }
}

/// Makes one start, and records the task's identity right after it, on this thread:
/// from then on a lost supervisor's task can be found and killed.
fn start(request: Request, cancelled: &AtomicBool) -> Start {
    let Request { launch, record, .. } = request;
    if cancelled.load(Ordering::SeqCst) {
        if let Some(file) = &record {
            if let Err(e) = overwrite(file, BLANK) {
                tracing::error!(target: SUPERVISE, "blanking the task.pid of {}/{}: {e}",
                    launch.job, launch.node
                );
            }
        }
        return Start::Cancelled;
    }
    match spawn_task(&launch) {
        Ok(task) => {
            let id = ProcessId::of(task.id() as i32);
            if let (Some(id), Some(file)) = (id, record) {
                if let Err(e) = process::record_into(&file, id) {
                    tracing::error!(target: SUPERVISE, "writing the task.pid of {}/{}: {e}",
                        launch.job, launch.node
                    );
                }
            }
            Start::Started(task, id)
        }
        Err(e) => Start::Failed(e.to_string()),
    }
}

/// Starts the task of `launch`, in its working directory, made if missing. The start
/// is tried first and the directory made only when the start found it missing (a
/// user may delete it between runs): a `mkdir` per task cost more than the start's
/// other checks.
fn spawn_task(launch: &Launch) -> Result<TaskProcess, SpawnError> {
    let death_signal =
        Signal::try_from(launch.task_subprocess.parent_death_signal).map_or(0, |sig| sig as i32);
    let spec = SpawnSpec {
        argv: &launch.argv,
        cwd: &launch.cwd,
        process_group: launch.task_subprocess.process_group_leader,
        death_signal,
    };
    match spawn(&spec) {
        Err(e) if e.missing_cwd() => {
            std::fs::create_dir_all(&launch.cwd).map_err(|source| SpawnError::CreateCwd {
                cwd: launch.cwd.clone(),
                source,
            })?;
            spawn(&spec)
        }
        started => started,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    static NOTIFIED: AtomicUsize = AtomicUsize::new(0);

    fn notify() {
        NOTIFIED.fetch_add(1, Ordering::SeqCst);
    }

    fn launch(dir: &std::path::Path, argv: &[&str]) -> Launch {
        let mut launch = super::super::run_loop::tests::launch(dir, "");
        launch.argv = argv.iter().map(|a| a.to_string()).collect();
        launch
    }

    #[test]
    fn starts_come_back_under_their_keys_made_by_a_few_threads() {
        let tmp = tempfile::tempdir().unwrap();
        let mut spawner = Spawner::new(notify);
        for key in 0..8 {
            spawner.start(key, launch(tmp.path(), &["sh", "-c", "exit 3"]), None);
        }
        spawner.start(8, launch(tmp.path(), &["/no/such/program"]), None);
        assert!(spawner.threads <= MAX_THREADS);
        let mut started = BTreeMap::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while started.len() < 9 {
            assert!(
                Instant::now() < deadline,
                "only {} starts came back",
                started.len()
            );
            started.extend(spawner.take());
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(spawner.pending, 0);
        assert!(NOTIFIED.load(Ordering::SeqCst) >= 9);
        let missing = started.remove(&8).unwrap();
        assert!(matches!(missing, Start::Failed(e) if e.contains("cannot run")));
        for (_, how) in started {
            let Start::Started(mut task, id) = how else {
                panic!("a task did not start");
            };
            assert!(id.is_some(), "its identity was read");
            let status = loop {
                if let Some(status) = task.try_wait().unwrap() {
                    break status;
                }
                assert!(Instant::now() < deadline, "a task never exited");
                std::thread::sleep(Duration::from_millis(5));
            };
            assert_eq!(status.code(), Some(3));
        }
    }

    #[test]
    fn queued_starts_cancelled_come_back_cancelled_with_their_record_blank() {
        let tmp = tempfile::tempdir().unwrap();
        let mut spawner = Spawner::new(notify);
        spawner.cancel_queued();
        let path = tmp.path().join("task.pid");
        std::fs::write(&path, "spawning").unwrap();
        let record = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        spawner.start(1, launch(tmp.path(), &["sh", "-c", "exit 3"]), Some(record));
        let deadline = Instant::now() + Duration::from_secs(30);
        let how = loop {
            if let Some((key, how)) = spawner.take().pop() {
                assert_eq!(key, 1);
                break how;
            }
            assert!(Instant::now() < deadline, "the start never came back");
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(matches!(how, Start::Cancelled));
        let record = std::fs::read(&path).unwrap();
        assert!(
            !crate::execution::supervisor::run_dirs::is_written(&record),
            "{record:?}"
        );
    }
}
