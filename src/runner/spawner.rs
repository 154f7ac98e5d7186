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

use super::spawn::TaskProcess;
use super::supervisor::spawn_task;
use super::Launch;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

/// How many tasks may be starting at once. Two cores are kept busy by two; a few more
/// cover starts that wait on the disk.
const MAX_THREADS: usize = 4;

/// A start asked of the threads: the run's key and what to start.
type Request = (u64, Launch);

/// A start made: the run's key, and its task or why it could not start.
pub type Started = (u64, Result<TaskProcess, String>);

/// Threads that start tasks, made as they are needed, up to [`MAX_THREADS`].
pub struct Spawner {
    requests: Sender<Request>,
    queue: Arc<Mutex<Receiver<Request>>>,
    started_tx: Sender<Started>,
    started: Receiver<Started>,
    /// Called by a thread after each start, to wake the loop.
    notify: fn(),
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
            threads: 0,
            pending: 0,
        }
    }

    /// Asks for the task of `launch` to be started; [`Spawner::take`] returns it
    /// under `key`. Without any thread (none could be made), it starts here.
    pub fn start(&mut self, key: u64, launch: Launch) {
        self.pending += 1;
        if self.threads < self.pending.min(MAX_THREADS) {
            self.add_thread();
        }
        if self.threads == 0 {
            let _ = self.started_tx.send((key, spawn_task(&launch)));
            return;
        }
        // The receiver lives in the threads, which never end.
        let _ = self.requests.send((key, launch));
    }

    /// The starts made since the last call.
    pub fn take(&mut self) -> Vec<Started> {
        let started: Vec<Started> = self.started.try_iter().collect();
        self.pending -= started.len();
        started
    }

    fn add_thread(&mut self) {
        let (queue, started, notify) = (self.queue.clone(), self.started_tx.clone(), self.notify);
        let made = std::thread::Builder::new()
            .name("bistro-spawner".into())
            .stack_size(THREAD_STACK)
            .spawn(move || serve(&queue, &started, notify));
        match made {
            Ok(_) => self.threads += 1,
            Err(e) => eprintln!("bistro supervise: cannot make a thread to start tasks: {e}"),
        }
    }
}

/// A spawner thread's stack: it only prepares a start (the child gets its own stack).
const THREAD_STACK: usize = 256 * 1024;

/// A thread's life: start what is asked and tell the loop; once the loop is gone,
/// wait for the process to end (the tasks this thread started die with it).
fn serve(queue: &Mutex<Receiver<Request>>, started: &Sender<Started>, notify: fn()) {
    loop {
        let request = queue.lock().map(|q| q.recv());
        let Ok(Ok((key, launch))) = request else {
            loop {
                std::thread::park();
            }
        };
        if started.send((key, spawn_task(&launch))).is_ok() {
            notify();
        }
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
        Launch {
            job: "j".into(),
            node: "n".into(),
            invocation: crate::task::InvocationId {
                start_time: 1,
                rand: 1,
            },
            argv: argv.iter().map(|a| a.to_string()).collect(),
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

    #[test]
    fn starts_come_back_under_their_keys_made_by_a_few_threads() {
        let tmp = tempfile::tempdir().unwrap();
        let mut spawner = Spawner::new(notify);
        for key in 0..8 {
            spawner.start(key, launch(tmp.path(), &["sh", "-c", "exit 3"]));
        }
        spawner.start(8, launch(tmp.path(), &["/no/such/program"]));
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
        assert!(missing.is_err_and(|e| e.contains("cannot run")));
        for (_, task) in started {
            let mut task = task.unwrap();
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
}
