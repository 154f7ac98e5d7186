//! The scheduler side of the remote-worker protocol (bistro-runtime §5.7 - §5.9), in
//! process: the real [`Hub`] and [`RemoteRunner`] against a fake worker, an
//! [`RpcServer`] whose service records every call and answers as the test scripts.
//! The fake registers by heartbeats and becomes HEALTHY through sweeps with 1 s
//! timeouts, acknowledging its healthchecks as a worker does.

use super::*;
use crate::execution::http::rpc::{RpcEndpoint, RpcServer};
use crate::execution::remote::health::{HealthSettings, WorkerState};
use crate::execution::remote::protocol::{
    HeartbeatResponse, KillTaskRequest, MachineLock, NotifyRequest, PROTOCOL_VERSION,
};
use crate::execution::remote::worker_set::WorkerSetId;
use crate::execution::runner::remote::{RemoteRunner, WorkerPlacement, LOST_INVOCATION_KEY};
use crate::execution::runner::{Launch, Outcome, PreparedTask, TaskRunner};
use crate::foundation::config::{KillMethod, KillRequest};
use crate::foundation::status::TaskStatus;
use crate::model::task::RunningTask;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar};
use std::time::Instant;

const SHARD: &str = "w1";
const JOB: &str = "job";

/// How long any awaited condition may take.
const PATIENCE: Duration = Duration::from_secs(20);

/// Seconds before the first "unsure if running" poll.
const UNSURE_PERIOD: i64 = 1;

/// How long one call to the fake worker may take.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);

fn settings() -> HubSettings {
    HubSettings {
        pool: PoolSettings {
            health: HealthSettings {
                heartbeat_grace_period: 1,
                healthcheck_period: 1,
                healthcheck_grace_period: 1,
                lose_unhealthy_worker_after: 3,
                worker_check_interval: 1,
                worker_suicide_backoff_safety_margin: 1,
                worker_suicide_task_kill_wait_ms: 500,
                startup_wait_for_workers: Some(0),
            },
            allow_bump_unhealthy_worker: false,
        },
        call_timeout: CALL_TIMEOUT,
        unsure_if_running_check_initial_period: UNSURE_PERIOD,
    }
}

/// A scripted answer of the fake worker.
enum Answer {
    /// Refuse the call.
    Refuse(u16, String),
    /// Answer as usual, but only after this long (the caller has given up by then).
    Late(Duration),
    /// Answer this.
    Reply(Value),
}

/// A call the fake worker got.
#[derive(Debug, Clone)]
struct Call {
    name: String,
    body: Value,
    /// Scheduler clock when it arrived.
    at: i64,
}

/// The fake worker's service: records each call, then answers with the next scripted
/// answer for it, or as a worker does when all goes well.
#[derive(Default)]
struct Script {
    calls: Mutex<Vec<Call>>,
    answers: Mutex<HashMap<String, VecDeque<Answer>>>,
    seen: Condvar,
}

/// What a real worker answers when all goes well (src/worker/service.rs).
fn usual_answer(name: &str) -> Value {
    match name {
        calls::RUNNING_TASKS => json!({ "tasks": [] }),
        calls::KILL_TASK => json!({ "signalled": true }),
        _ => json!({}),
    }
}

/// Healthchecks are `run_task` calls with a script of their own.
fn script_key(name: &str, body: &Value) -> String {
    if name == calls::RUN_TASK && body["task"]["job"] == HEALTHCHECK_JOB {
        "healthcheck".into()
    } else {
        name.into()
    }
}

impl RpcService for Script {
    fn call(&self, name: &str, body: Value) -> Result<Value, RpcRefusal> {
        let answer = self
            .answers
            .lock()
            .unwrap()
            .get_mut(&script_key(name, &body))
            .and_then(VecDeque::pop_front);
        self.calls.lock().unwrap().push(Call {
            name: name.into(),
            body,
            at: crate::foundation::time::now(),
        });
        self.seen.notify_all();
        match answer {
            None => Ok(usual_answer(name)),
            Some(Answer::Reply(value)) => Ok(value),
            Some(Answer::Refuse(status, message)) => Err(RpcRefusal::new(status, message)),
            Some(Answer::Late(after)) => {
                std::thread::sleep(after);
                Ok(usual_answer(name))
            }
        }
    }
}

/// A worker that exists only as its RPC server and its heartbeats.
struct FakeWorker {
    script: Arc<Script>,
    info: WorkerInfo,
    /// The worker-set id it echoes: the last one the scheduler sent.
    set_id: WorkerSetId,
    /// Healthchecks whose `done` the scheduler took.
    acked: HashSet<InvocationId>,
    stop: Arc<AtomicBool>,
    server: Option<std::thread::JoinHandle<()>>,
}

impl FakeWorker {
    /// Listens on 127.0.0.1, answering callers that present `hub`'s secret.
    fn start(hub: &Hub, shard: &str) -> Self {
        let script = Arc::new(Script::default());
        let server = RpcServer::bind(
            "127.0.0.1:0",
            RpcEndpoint {
                service: Arc::clone(&script) as Arc<dyn RpcService>,
                secret: hub.secret_path().to_path_buf(),
            },
        )
        .expect("binds");
        let addr = server.local_addr();
        let stop = Arc::new(AtomicBool::new(false));
        let server = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || server.serve(&stop))
        };
        FakeWorker {
            script,
            info: WorkerInfo {
                shard: shard.into(),
                id: InstanceId::new(),
                hostname: "localhost".into(),
                addr: addr.to_string(),
                lock: MachineLock {
                    hostname: "localhost".into(),
                    port: addr.port(),
                },
                heartbeat_period_sec: 1,
                protocol_version: PROTOCOL_VERSION,
            },
            set_id: WorkerSetId::empty(),
            acked: HashSet::new(),
            stop,
            server: Some(server),
        }
    }

    /// The calls named `name` it got, oldest first (healthchecks are not `run_task`s
    /// here).
    fn calls(&self, name: &str) -> Vec<Call> {
        self.script
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| script_key(&c.name, &c.body) == name)
            .cloned()
            .collect()
    }

    /// The `notify_if_tasks_not_running` calls it got.
    fn polls(&self) -> Vec<(i64, NotifyRequest)> {
        self.calls(calls::NOTIFY_IF_TASKS_NOT_RUNNING)
            .into_iter()
            .map(|c| {
                (
                    c.at,
                    serde_json::from_value(c.body).expect("a notify request"),
                )
            })
            .collect()
    }

    /// Scripts its next answer to `name` ("healthcheck" for healthchecks).
    fn script(&self, name: &str, answer: Answer) {
        self.script
            .answers
            .lock()
            .unwrap()
            .entry(name.into())
            .or_default()
            .push_back(answer);
    }

    /// Sends a heartbeat as a worker does, echoing the last worker-set id.
    fn heartbeat(&mut self, hub: &Hub) -> HeartbeatResponse {
        let request = HeartbeatRequest {
            worker: self.info.clone(),
            worker_set_id: self.set_id,
        };
        let answer = RpcService::call(
            hub,
            calls::HEARTBEAT,
            serde_json::to_value(request).unwrap(),
        )
        .expect("the heartbeat is accepted");
        let answer: HeartbeatResponse = serde_json::from_value(answer).unwrap();
        self.set_id = answer.worker_set_id;
        answer
    }

    /// A status report from this worker to `hub` about `task`.
    fn report(&self, hub: &Hub, task: &TaskRef, status: TaskStatus) -> UpdateStatusRequest {
        UpdateStatusRequest {
            task: task.clone(),
            status,
            exit: "exited with status 0".into(),
            killed: false,
            scheduler_id: hub.lock().pool.id(),
            worker_id: self.info.id,
            shard: self.info.shard.clone(),
        }
    }

    /// Reports `done` for every healthcheck the scheduler has not taken yet, as a
    /// worker does once the check's `echo done` has run (a refusal is retried later).
    fn ack_healthchecks(&mut self, hub: &Hub) {
        for call in self.calls("healthcheck") {
            let request: RunTaskRequest = serde_json::from_value(call.body).unwrap();
            if self.acked.contains(&request.task.invocation) {
                continue;
            }
            let mut report = self.report(hub, &request.task, done());
            report.scheduler_id = request.scheduler_id;
            if update_status(hub, &report).is_ok() {
                self.acked.insert(request.task.invocation);
            }
        }
    }
}

impl Drop for FakeWorker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }
}

fn update_status(hub: &Hub, request: &UpdateStatusRequest) -> Result<Value, RpcRefusal> {
    RpcService::call(
        hub,
        calls::UPDATE_STATUS,
        serde_json::to_value(request).unwrap(),
    )
}

fn done() -> TaskStatus {
    TaskStatus::new(bits::DONE, crate::foundation::time::now())
}

/// What a worker reports for a polled run it does not run.
fn was_not_running() -> TaskStatus {
    TaskStatus::with_exception(
        bits::ERROR | bits::OVERWRITEABLE,
        "was not running",
        crate::foundation::time::now(),
    )
}

/// An address nobody listens on.
fn dead_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// An address where a connection is taken and closed without an answer.
fn hang_up_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let _ = std::io::Read::read(&mut stream, &mut [0; 4096]);
        }
    });
    addr
}

/// A scheduler in remote mode with one HEALTHY fake worker.
struct Setup {
    worker: FakeWorker,
    runner: RemoteRunner,
    hub: Arc<Hub>,
    state: StateDir,
    _dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        state.create().unwrap();
        let hub = Arc::new(Hub::new(&state, settings()).unwrap());
        let mut s = Setup {
            worker: FakeWorker::start(&hub, SHARD),
            runner: RemoteRunner::new(Arc::clone(&hub)),
            hub,
            state,
            _dir: dir,
        };
        s.pump_until("the worker to become healthy", |s| {
            s.worker_state() == WorkerState::Healthy
        });
        assert!(!s.worker.calls(calls::RUNNING_TASKS).is_empty());
        let first_check = &s.worker.calls("healthcheck")[0].body;
        assert_eq!(first_check["task"]["node"], NEW_WORKER_NODE);
        assert_eq!(s.hub.lock().pool.initial_wait(), None);
        s
    }

    fn worker_state(&self) -> WorkerState {
        self.hub
            .lock()
            .pool
            .worker(SHARD)
            .expect("registered")
            .health
            .state
    }

    /// What the worker and the scheduler's sweep thread do: a heartbeat, the calls
    /// it asked for, a sweep (with its "unsure if running" poll), and the worker's
    /// answers to healthchecks.
    fn pump(&mut self) {
        self.worker.heartbeat(&self.hub);
        self.hub.perform_queued();
        self.hub.sweep();
        self.worker.ack_healthchecks(&self.hub);
    }

    /// Repeats `step` until it returns true; fails after [`PATIENCE`].
    fn until(&mut self, what: &str, mut step: impl FnMut(&mut Self) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !step(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Pumps until `done`.
    fn pump_until(&mut self, what: &str, mut done: impl FnMut(&Self) -> bool) {
        self.until(what, |s| {
            s.pump();
            done(s)
        });
    }

    /// Prepares a run of JOB on `node` for the worker, as the tick does.
    fn prepare(&mut self, node: &str) -> (PreparedTask, RunningTask, TaskRef) {
        let invocation = InvocationId::new(crate::foundation::time::now());
        let status_file = self.state.invocation_dir(invocation).join("status");
        let arg = json!({
            "id": JOB,
            "path_to_node": [node],
            "config": {},
            "resources_by_node": {},
            "worker_node": SHARD,
            "worker_host": "localhost",
        });
        let launch = Launch {
            job: JOB.into(),
            node: node.into(),
            invocation,
            argv: vec![
                "/bin/true".into(),
                node.into(),
                status_file.display().to_string(),
                arg.to_string(),
            ],
            cwd: self.state.job_dir(JOB),
            status_file,
            log_db: self.state.logs_db(),
            worker_host: "localhost".into(),
            task_subprocess: Default::default(),
            kill_subprocess: Default::default(),
            task_timeout_sec: None,
            on_worker_death: None,
            worker: Some(SHARD.into()),
            slurm: None,
        };
        let prepared = self.runner.prepare(launch).expect("prepared");
        let running = RunningTask {
            job: JOB.into(),
            node: node.into(),
            invocation,
            charges: Vec::new(),
            next_backoff: Default::default(),
            attempts: 1,
            worker_shard: SHARD.into(),
            timeout_sec: None,
        };
        let task = TaskRef {
            job: JOB.into(),
            node: node.into(),
            invocation,
        };
        (prepared, running, task)
    }

    /// Prepares and starts a run the worker takes.
    fn launch(&mut self, node: &str) -> (RunningTask, TaskRef) {
        let (prepared, running, task) = self.prepare(node);
        self.runner.start(prepared).expect("started");
        assert_eq!(self.runner.check(&running), Outcome::Running);
        (running, task)
    }

    /// Prepares a run while the worker advertises `addr`, where the start call fails
    /// in transit; the worker is back at its address before the call is made.
    /// Returns the scheduler time just before the start.
    fn launch_into_the_void(&mut self, node: &str, addr: String) -> (RunningTask, TaskRef, i64) {
        let real = std::mem::replace(&mut self.worker.info.addr, addr);
        self.worker.heartbeat(&self.hub);
        let (prepared, running, task) = self.prepare(node);
        self.worker.info.addr = real;
        self.worker.heartbeat(&self.hub);
        let before = crate::foundation::time::now();
        self.runner
            .start(prepared)
            .expect("a start lost in transit counts as started");
        (running, task, before)
    }

    fn result_file(&self, task: &TaskRef) -> PathBuf {
        self.state
            .invocation_dir(task.invocation)
            .join("result.json")
    }
}

/// §5.7: a `run_task` that never arrived leaves the run "running" and the worker is
/// polled about it after the initial period, with a notify sequence that rises with
/// each poll, until a poll succeeds; the run is then off the list (the next poll,
/// about a later run, names only that one, after the initial period again).
#[test]
fn a_start_lost_in_transit_is_polled_with_rising_notify_sequences_until_a_poll_succeeds() {
    let mut s = Setup::new();
    let scheduler = s.hub.lock().pool.id();
    s.worker.script(
        calls::NOTIFY_IF_TASKS_NOT_RUNNING,
        Answer::Refuse(503, "the worker is starting".into()),
    );
    let (a, a_task, before) = s.launch_into_the_void("a", dead_addr());
    assert_eq!(s.runner.check(&a), Outcome::Running);
    assert!(s.worker.calls(calls::RUN_TASK).is_empty());

    s.pump_until("the first poll", |s| !s.worker.polls().is_empty());
    let (first_at, first) = s.worker.polls()[0].clone();
    assert!(
        first_at >= before + UNSURE_PERIOD,
        "polled at {first_at}, before the initial period from {before} was over"
    );
    assert_eq!(first.tasks, vec![a_task.clone()]);
    assert_eq!(first.scheduler_id, scheduler);
    assert_eq!(first.worker_id, s.worker.info.id);
    assert!(first.notify_seq > 0);
    // Refused: still unsure, asked again after a doubled delay.
    assert_eq!(s.hub.lock().unsure.runs.len(), 1);
    assert_eq!(s.hub.lock().unsure.doublings, 1);

    s.pump_until("the second poll", |s| s.worker.polls().len() >= 2);
    let (second_at, second) = s.worker.polls()[1].clone();
    assert!(second_at > first_at);
    assert_eq!(second.tasks, vec![a_task.clone()]);
    assert!(second.notify_seq > first.notify_seq);
    assert!(s.hub.lock().unsure.runs.is_empty());
    assert_eq!(s.runner.check(&a), Outcome::Running);

    // The list emptied: the delay starts over for the next run added.
    // This time the start call reaches a peer that hangs up without answering.
    let (_b, b_task, before_b) = s.launch_into_the_void("b", hang_up_addr());
    let after_b = crate::foundation::time::now();
    {
        let inner = s.hub.lock();
        assert_eq!(inner.unsure.doublings, 0);
        assert!(
            (before_b + UNSURE_PERIOD..=after_b + UNSURE_PERIOD).contains(&inner.unsure.next_poll)
        );
    }
    s.pump_until("the third poll", |s| s.worker.polls().len() >= 3);
    let (third_at, third) = s.worker.polls()[2].clone();
    assert_eq!(third.tasks, vec![b_task], "a was polled again");
    assert!(third.notify_seq > second.notify_seq);
    assert!(third_at >= before_b + UNSURE_PERIOD);
    assert_eq!(s.worker.polls().len(), 3);

    // The worker never had `a`, so it answers the poll with "was not running",
    // which ends the run.
    let report = s.worker.report(&s.hub, &a_task, was_not_running());
    update_status(&s.hub, &report).expect("accepted");
    match s.runner.check(&a) {
        Outcome::Finished(result) => {
            assert_eq!(result.status.bits, bits::ERROR | bits::OVERWRITEABLE)
        }
        other => panic!("expected the run to end, got {other:?}"),
    }
}

/// §5.7: a `run_task` the worker got but whose answer never came back in time: the
/// run is "running", the poll finds it there (no report), and its real end counts.
#[test]
fn a_start_whose_answer_is_lost_is_polled_and_ends_with_the_worker_s_report() {
    let mut s = Setup::new();
    s.worker
        .script(calls::RUN_TASK, Answer::Late(CALL_TIMEOUT * 2));
    let (prepared, a, a_task) = s.prepare("a");
    s.runner
        .start(prepared)
        .expect("a start lost in transit counts as started");
    assert_eq!(s.runner.check(&a), Outcome::Running);
    let sent: RunTaskRequest =
        serde_json::from_value(s.worker.calls(calls::RUN_TASK)[0].body.clone()).unwrap();
    assert_eq!(sent.task, a_task);
    assert_eq!(sent.command, vec!["/bin/true".to_string()]);
    assert_eq!(sent.worker_id, s.worker.info.id);
    assert_eq!(s.hub.lock().unsure.runs.len(), 1);

    s.pump_until("the poll", |s| !s.worker.polls().is_empty());
    assert_eq!(s.worker.polls()[0].1.tasks, vec![a_task.clone()]);
    assert!(s.hub.lock().unsure.runs.is_empty());
    assert_eq!(s.runner.check(&a), Outcome::Running);

    let report = s.worker.report(&s.hub, &a_task, done());
    update_status(&s.hub, &report).expect("accepted");
    match s.runner.check(&a) {
        Outcome::Finished(result) => assert!(result.status.is_done()),
        other => panic!("expected the run to end, got {other:?}"),
    }
}

/// §5.7: a worker's refusal to start a run means it certainly did not start: the
/// start fails (the run may go again at once) and the worker is never polled about it.
#[test]
fn a_refused_start_fails_and_is_not_polled() {
    let mut s = Setup::new();
    s.worker.script(
        calls::RUN_TASK,
        Answer::Refuse(409, "Unhealthy, not running task".into()),
    );
    let (prepared, a, _) = s.prepare("a");
    let e = s.runner.start(prepared).expect_err("refused");
    assert!(e.message.contains("Unhealthy, not running task"), "{e}");
    assert!(s.hub.lock().unsure.runs.is_empty());
    s.runner.cleanup(&a);
    assert!(s.hub.lock().runs.is_empty());
}

/// §5.8: the run's own report is its `result.json`, and `check` ends the run with it;
/// a `running` status before it changes nothing, a later overwriteable report does not
/// replace it.
#[test]
fn a_report_for_the_run_is_kept_as_its_result() {
    let mut s = Setup::new();
    let (a, a_task) = s.launch("a");
    // A `running` status is acknowledged and dropped.
    let report = s.worker.report(
        &s.hub,
        &a_task,
        TaskStatus::new(bits::RUNNING, crate::foundation::time::now()),
    );
    assert_eq!(update_status(&s.hub, &report), Ok(json!({})));
    assert!(!s.result_file(&a_task).exists());
    assert_eq!(s.runner.check(&a), Outcome::Running);

    let mut report = s.worker.report(&s.hub, &a_task, done());
    report.exit = "exited with status 0".into();
    assert_eq!(update_status(&s.hub, &report), Ok(json!({})));
    assert!(s.result_file(&a_task).exists());
    let Outcome::Finished(result) = s.runner.check(&a) else {
        panic!("the run did not end");
    };
    assert_eq!(result.status.bits, bits::DONE);
    assert_eq!(result.exit, "exited with status 0");
    assert!(!result.killed);

    let report = s.worker.report(&s.hub, &a_task, was_not_running());
    assert_eq!(update_status(&s.hub, &report), Ok(json!({})));
    assert_eq!(s.runner.check(&a), Outcome::Finished(result));
}

/// §5.8: a report about another invocation of the same job and node is acknowledged
/// (the worker must stop resending it) but does not end this run.
#[test]
fn a_report_for_another_invocation_of_the_same_task_does_not_end_the_run() {
    let mut s = Setup::new();
    let (a, a_task) = s.launch("a");
    let other = TaskRef {
        invocation: InvocationId::new(crate::foundation::time::now()),
        ..a_task.clone()
    };
    assert_ne!(other.invocation, a_task.invocation);
    for status in [done(), was_not_running()] {
        let report = s.worker.report(&s.hub, &other, status);
        assert_eq!(update_status(&s.hub, &report), Ok(json!({})));
    }
    assert!(!s.result_file(&a_task).exists());
    assert_eq!(s.runner.check(&a), Outcome::Running);
}

/// §5.8: "was not running" for a run that has ended and been cleaned up is dropped.
#[test]
fn an_overwriteable_report_for_a_run_no_longer_running_is_dropped() {
    let mut s = Setup::new();
    let (a, a_task) = s.launch("a");
    let report = s.worker.report(&s.hub, &a_task, done());
    update_status(&s.hub, &report).expect("accepted");
    assert!(matches!(s.runner.check(&a), Outcome::Finished(_)));
    s.runner.cleanup(&a);
    let dir = s.state.invocation_dir(a_task.invocation);
    assert!(!dir.exists());

    let report = s.worker.report(&s.hub, &a_task, was_not_running());
    assert_eq!(update_status(&s.hub, &report), Ok(json!({})));
    assert!(!dir.exists());
    assert!(s.runner.late_statuses().is_empty());
}

/// §5.8, §5.9: once `check` has counted a run lost (its worker went silent and must
/// die), the worker's real report for it is late: kept in `STATE/late/` until the
/// iteration has recorded it; an overwriteable one is dropped.
#[test]
fn a_report_for_a_run_counted_lost_is_late() {
    let mut s = Setup::new();
    let (a, a_task) = s.launch("a");
    // The worker stops heartbeating: the sweeps lose it.
    s.until("the worker to be lost", |s| {
        s.hub.sweep();
        s.worker_state() == WorkerState::MustDie
    });
    let suicide = s.worker.calls(calls::REQUEST_SUICIDE);
    assert_eq!(suicide.len(), 1);
    assert_eq!(suicide[0].body["worker_id"], json!(s.worker.info.id));

    let Outcome::Lost(status, _) = s.runner.check(&a) else {
        panic!("the run of a lost worker was not lost");
    };
    assert_eq!(
        status.bits,
        bits::ERROR | bits::USES_BACKOFF | bits::OVERWRITEABLE | bits::HAS_SAVED_BACKOFF
    );
    assert_eq!(
        status.data.as_ref().unwrap()[LOST_INVOCATION_KEY],
        json!(a_task.invocation.to_string())
    );
    let dir = s.state.invocation_dir(a_task.invocation);
    assert!(dir.join(run_dir::LOST).exists());

    let report = s.worker.report(&s.hub, &a_task, was_not_running());
    assert_eq!(update_status(&s.hub, &report), Ok(json!({})));
    assert!(s.runner.late_statuses().is_empty());

    let report = s.worker.report(&s.hub, &a_task, done());
    assert_eq!(update_status(&s.hub, &report), Ok(json!({})));
    assert!(!s.result_file(&a_task).exists());
    let late = s.runner.late_statuses();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].task, a_task);
    assert!(late[0].status.is_done());
    assert!(late[0].path.starts_with(s.state.root().join("late")));
    assert!(late[0].path.exists());

    s.runner.late_recorded(&late);
    assert!(!late[0].path.exists());
    assert!(s.runner.late_statuses().is_empty());

    // Usually the report comes after the iteration recorded the loss and cleaned
    // the run up: still late.
    s.runner.cleanup(&a);
    assert!(!dir.exists());
    let report = s.worker.report(&s.hub, &a_task, was_not_running());
    assert_eq!(update_status(&s.hub, &report), Ok(json!({})));
    assert!(s.runner.late_statuses().is_empty());
    let report = s.worker.report(&s.hub, &a_task, done());
    assert_eq!(update_status(&s.hub, &report), Ok(json!({})));
    let late = s.runner.late_statuses();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].task, a_task);
    assert!(!dir.exists());
}

/// §5.8: reports from a sender the scheduler does not take are refused with 409 (the
/// worker retries) and change nothing.
#[test]
fn reports_from_the_wrong_sender_are_refused() {
    let mut s = Setup::new();
    let (a, a_task) = s.launch("a");
    let good = s.worker.report(&s.hub, &a_task, done());
    // A second worker that has only sent its first heartbeat: still NEW.
    let mut newcomer = FakeWorker::start(&s.hub, "w2");
    newcomer.heartbeat(&s.hub);
    let mut from_new = newcomer.report(&s.hub, &a_task, done());
    from_new.exit = "from a NEW worker".into();
    let bad = [
        UpdateStatusRequest {
            shard: "nobody".into(),
            exit: "from an unknown shard".into(),
            ..good.clone()
        },
        UpdateStatusRequest {
            worker_id: InstanceId::new(),
            exit: "from another instance of the shard".into(),
            ..good.clone()
        },
        UpdateStatusRequest {
            scheduler_id: InstanceId::new(),
            exit: "to another scheduler".into(),
            ..good.clone()
        },
        from_new,
    ];
    for report in bad {
        let refusal = update_status(&s.hub, &report).expect_err(&report.exit);
        assert_eq!(refusal.status, 409, "{}: {}", report.exit, refusal.message);
    }
    assert!(!s.result_file(&a_task).exists());
    assert!(s.runner.late_statuses().is_empty());
    assert_eq!(s.runner.check(&a), Outcome::Running);

    assert_eq!(update_status(&s.hub, &good), Ok(json!({})));
    assert!(matches!(s.runner.check(&a), Outcome::Finished(_)));
}

/// §5.10: `kill` sends `kill_task` with the request to the run's worker; "not
/// running" there means nothing was left to signal.
#[test]
fn kill_goes_to_the_run_s_worker() {
    let mut s = Setup::new();
    let (a, a_task) = s.launch("a");
    let request = KillRequest {
        method: KillMethod::Term,
        kill_wait_ms: 1234,
    };
    assert!(s.runner.kill(&a, &request).expect("delivered"));
    let calls = s.worker.calls(calls::KILL_TASK);
    assert_eq!(calls.len(), 1);
    let sent: KillTaskRequest = serde_json::from_value(calls[0].body.clone()).unwrap();
    assert_eq!(
        sent,
        KillTaskRequest {
            task: a_task.clone(),
            scheduler_id: s.hub.lock().pool.id(),
            worker_id: s.worker.info.id,
            request,
        }
    );

    s.worker.script(
        calls::KILL_TASK,
        Answer::Refuse(
            409,
            format!("{JOB}/a (run {}) is not running here", a_task.invocation),
        ),
    );
    assert!(!s
        .runner
        .kill(&a, &request)
        .expect("not running is no error"));

    s.worker.script(
        calls::KILL_TASK,
        Answer::Reply(json!({ "signalled": false })),
    );
    assert!(!s.runner.kill(&a, &request).expect("nothing to signal"));

    s.worker.script(
        calls::KILL_TASK,
        Answer::Refuse(409, "worker w1 is committing suicide".into()),
    );
    let e = s
        .runner
        .kill(&a, &request)
        .expect_err("other refusals fail");
    assert!(e.message.contains("committing suicide"), "{e}");
    assert_eq!(s.worker.calls(calls::KILL_TASK).len(), 4);
}
