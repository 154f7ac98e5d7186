//! The Slurm runner against a fake Slurm: what it submits, how it reads states back,
//! and how it settles runs after a restart.

use super::*;
use crate::foundation::config::SlurmSettings;
use crate::foundation::status::TaskStatus;
use std::cell::RefCell;
use std::rc::Rc;

/// What the fake cluster was asked and will answer.
#[derive(Default)]
struct Cluster {
    submitted: Vec<(Vec<String>, String)>,
    cancelled: Vec<Vec<String>>,
    rows: String,
    reject: Option<String>,
    down: bool,
}

struct Fake(Rc<RefCell<Cluster>>);

impl SlurmCommands for Fake {
    fn sbatch(&mut self, args: &[String], script: &str) -> Result<String, SlurmCallError> {
        let mut c = self.0.borrow_mut();
        if let Some(message) = c.reject.clone() {
            return Err(SlurmCallError {
                command: "sbatch",
                message,
            });
        }
        c.submitted.push((args.to_vec(), script.to_string()));
        Ok(format!("{}\n", c.submitted.len() * 10))
    }

    fn squeue(&mut self) -> Result<String, SlurmCallError> {
        let c = self.0.borrow();
        if c.down {
            return Err(SlurmCallError {
                command: "squeue",
                message: "Unable to contact slurm controller".into(),
            });
        }
        Ok(c.rows.clone())
    }

    fn scancel(&mut self, args: &[String]) -> Result<(), SlurmCallError> {
        self.0.borrow_mut().cancelled.push(args.to_vec());
        Ok(())
    }
}

struct Setup {
    _tmp: tempfile::TempDir,
    state: StateDir,
    cluster: Rc<RefCell<Cluster>>,
    runner: SlurmRunner,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let state = StateDir::new(tmp.path());
    let cluster = Rc::new(RefCell::new(Cluster::default()));
    let runner = SlurmRunner::new(state.clone(), Box::new(Fake(cluster.clone())));
    Setup {
        _tmp: tmp,
        state,
        cluster,
        runner,
    }
}

fn launch(state: &StateDir, node: &str, rand: u64, partition: Option<&str>) -> Launch {
    let invocation = InvocationId {
        start_time: 100,
        rand,
    };
    let status_file = state.invocation_dir(invocation).join(run_dir::STATUS);
    Launch {
        job: "j".into(),
        node: node.into(),
        invocation,
        argv: vec![
            "/bin/task".into(),
            node.into(),
            status_file.display().to_string(),
            "{}".into(),
        ],
        cwd: state.job_dir("j"),
        status_file,
        log_db: state.logs_db(),
        worker_host: "h".into(),
        task_subprocess: Default::default(),
        kill_subprocess: Default::default(),
        task_timeout_sec: None,
        on_worker_death: None,
        worker: None,
        slurm: Some(SlurmOptions {
            partition: partition.map(str::to_string),
            ..Default::default()
        }),
    }
}

fn running(l: &Launch) -> RunningTask {
    RunningTask {
        job: l.job.clone(),
        node: l.node.clone(),
        invocation: l.invocation,
        charges: Vec::new(),
        next_backoff: Default::default(),
        attempts: 1,
        worker_shard: "local".into(),
        timeout_sec: l.task_timeout_sec,
    }
}

fn start(s: &mut Setup, launches: &[Launch]) -> Vec<(InvocationId, RunnerError)> {
    for l in launches {
        let prepared = s.runner.prepare(l.clone()).unwrap();
        s.runner.start(prepared).unwrap();
    }
    s.runner.finish_starts()
}

fn status_of(outcome: Outcome) -> TaskStatus {
    match outcome {
        Outcome::Finished(result) => result.status,
        other => panic!("not finished: {other:?}"),
    }
}

#[test]
fn starts_sharing_options_go_in_one_array_and_others_in_their_own() {
    let mut s = setup();
    let runs = [
        launch(&s.state, "a", 1, None),
        launch(&s.state, "b", 2, Some("gpu")),
        launch(&s.state, "c", 3, None),
    ];
    assert!(start(&mut s, &runs).is_empty());
    let cluster = s.cluster.borrow();
    assert_eq!(cluster.submitted.len(), 2);
    let (args, script) = &cluster.submitted[0];
    assert!(args.contains(&"--array=0-1".to_string()));
    assert!(args.contains(&format!("--job-name=bistro-{}", runs[0].invocation)));
    assert!(script.contains(
        &s.state
            .invocation_dir(runs[2].invocation)
            .display()
            .to_string()
    ));
    assert!(cluster.submitted[1]
        .0
        .contains(&"--partition=gpu".to_string()));
    let record = SubmitRecord::read(&s.state.invocation_dir(runs[2].invocation)).unwrap();
    assert_eq!((record.index, record.array_id), (1, Some(10)));
}

#[test]
fn arrays_respect_the_largest_size() {
    let mut s = setup();
    let settings = crate::foundation::config::Settings {
        slurm: SlurmSettings {
            max_array_size: 2,
            ..Default::default()
        },
        ..crate::foundation::config::Settings::parse(
            &serde_json::json!({"nodes": {"levels": ["l"]}, "resources": {}}),
        )
        .unwrap()
    };
    assert_eq!(s.runner.start_capacity(&settings), Some(1000));
    let runs: Vec<Launch> = (1..=5).map(|i| launch(&s.state, "n", i, None)).collect();
    assert!(start(&mut s, &runs).is_empty());
    assert_eq!(s.cluster.borrow().submitted.len(), 3);
}

#[test]
fn the_queue_cap_counts_bistro_jobs_pending_in_slurm() {
    let mut s = setup();
    s.cluster.borrow_mut().rows =
        "5|5|0|PENDING|Resources|bistro-x\n5|5|1|PENDING|Resources|bistro-x\n6|6|0|PENDING|None|theirs\n".into();
    let mut settings = crate::foundation::config::Settings::parse(
        &serde_json::json!({"nodes": {"levels": ["l"]}, "resources": {}, "slurm": {"max_queued": 3}}),
    )
    .unwrap();
    assert_eq!(s.runner.start_capacity(&settings), Some(1));
    settings.slurm.max_queued = 1;
    assert_eq!(s.runner.start_capacity(&settings), Some(0));
    s.cluster.borrow_mut().down = true;
    s.runner.tidy_up();
    assert_eq!(
        s.runner.start_capacity(&settings),
        Some(0),
        "no submissions while Slurm is down"
    );
}

#[test]
fn a_rejected_submission_returns_every_run_of_the_array_with_the_reason() {
    let mut s = setup();
    s.cluster.borrow_mut().reject = Some("invalid partition specified: nopart".into());
    let runs = [
        launch(&s.state, "a", 1, Some("nopart")),
        launch(&s.state, "b", 2, Some("nopart")),
    ];
    let failed = start(&mut s, &runs);
    assert_eq!(failed.len(), 2);
    assert!(
        failed[0].1.to_string().contains("partition nopart"),
        "{}",
        failed[0].1
    );
    // When Slurm cannot say whether a failed sbatch submitted, nothing is released.
    s.cluster.borrow_mut().down = true;
    let again = [launch(&s.state, "c", 3, Some("nopart"))];
    assert!(start(&mut s, &again).is_empty());
}

#[test]
fn states_come_from_slurm_then_from_the_run_directory() {
    let mut s = setup();
    let l = launch(&s.state, "a", 1, None);
    assert!(start(&mut s, std::slice::from_ref(&l)).is_empty());
    let task = running(&l);
    let dir = s.state.invocation_dir(l.invocation);
    s.cluster.borrow_mut().rows = "11|10|0|RUNNING|None|x\n".into();
    std::fs::write(dir.join(run_dir::STDOUT), "hello\npart").unwrap();
    assert_eq!(s.runner.check(&task), Outcome::Running);
    // A job that ended without a status: error_backoff with Slurm's state and reason.
    s.cluster.borrow_mut().rows = "11|10|0|TIMEOUT|TimeLimit|x\n".into();
    s.runner.tidy_up();
    let status = status_of(s.runner.check(&task));
    assert_eq!(status.name().as_str(), "error_backoff");
    let message = status.exception().unwrap();
    assert!(
        message.contains("Slurm job 10_0 ended TIMEOUT (TimeLimit)"),
        "{message}"
    );
    let logs = LogStore::open(&s.state.logs_db()).unwrap();
    let lines: Vec<String> = logs
        .query(&Default::default())
        .unwrap()
        .into_iter()
        .map(|r| r.line)
        .collect();
    assert_eq!(
        lines,
        ["hello\n", "part"],
        "exact bytes, as a local run stores them"
    );
}

#[test]
fn a_status_or_an_exit_code_settles_a_run_whatever_slurm_says() {
    let mut s = setup();
    let l = launch(&s.state, "a", 1, None);
    assert!(start(&mut s, std::slice::from_ref(&l)).is_empty());
    let dir = s.state.invocation_dir(l.invocation);
    std::fs::write(dir.join(run_dir::EXIT), "137\n").unwrap();
    let status = status_of(s.runner.check(&running(&l)));
    assert!(status.exception().unwrap().contains("killed by signal 9"));
    std::fs::write(dir.join(run_dir::STATUS), "done\n").unwrap();
    assert_eq!(
        status_of(s.runner.check(&running(&l))).name().as_str(),
        "done"
    );
}

#[test]
fn a_restarted_scheduler_finds_its_job_by_name_or_releases_a_run_never_submitted() {
    let mut s = setup();
    let l = launch(&s.state, "a", 1, None);
    s.runner.prepare(l.clone()).unwrap();
    assert!(matches!(
        s.runner.check(&running(&l)),
        Outcome::NeverStarted(_)
    ));
    // Recorded, handed to sbatch, and the scheduler died before it answered.
    let dir = s.state.invocation_dir(l.invocation);
    let name = format!("bistro-{}", l.invocation);
    SubmitRecord {
        name: name.clone(),
        index: 0,
        array_id: None,
        state: None,
    }
    .write(&dir)
    .unwrap();
    s.cluster.borrow_mut().rows = format!("31|30|0|PENDING|Priority|{name}\n");
    assert_eq!(s.runner.check(&running(&l)), Outcome::Running);
    let found = SubmitRecord::read(&dir).unwrap();
    assert_eq!(found.array_id, Some(30));
    assert_eq!(found.describe(), "Slurm job 30_0, PENDING (Priority)");
    // Slurm down: still running, nothing settled.
    s.cluster.borrow_mut().down = true;
    s.runner.tidy_up();
    assert_eq!(s.runner.check(&running(&l)), Outcome::Running);
    // Purged after MinJobAge: settled from the run directory.
    s.cluster.borrow_mut().down = false;
    s.cluster.borrow_mut().rows.clear();
    s.runner.tidy_up();
    std::fs::write(dir.join(run_dir::STARTED), "node1\n").unwrap();
    let status = status_of(s.runner.check(&running(&l)));
    assert!(status.exception().unwrap().contains("no longer knows"));
}

#[test]
fn kills_are_scancel_as_kill_subprocess_says_and_end_incomplete() {
    let mut s = setup();
    let l = launch(&s.state, "a", 1, None);
    assert!(start(&mut s, std::slice::from_ref(&l)).is_empty());
    let task = running(&l);
    let term = KillRequest {
        method: KillMethod::Term,
        kill_wait_ms: 0,
    };
    assert!(s.runner.kill(&task, &term).unwrap());
    assert!(s.runner.kill(&task, &KillRequest::default()).unwrap());
    assert_eq!(
        s.cluster.borrow().cancelled,
        [vec!["--full", "--signal=TERM", "10_0"], vec!["10_0"]]
    );
    s.cluster.borrow_mut().rows = "11|10|0|CANCELLED|None|x\n".into();
    s.runner.tidy_up();
    assert_eq!(
        status_of(s.runner.check(&task)).name().as_str(),
        "incomplete"
    );
}

#[test]
fn a_job_that_never_marked_its_run_started_asks_whether_nodes_see_the_run_directory() {
    let mut s = setup();
    let l = launch(&s.state, "a", 1, None);
    assert!(start(&mut s, std::slice::from_ref(&l)).is_empty());
    s.cluster.borrow_mut().rows = "11|10|0|FAILED|NonZeroExitCode|x\n".into();
    let message = status_of(s.runner.check(&running(&l)))
        .exception()
        .unwrap()
        .to_string();
    assert!(message.contains("do the compute nodes see"), "{message}");
    let dir = s.state.invocation_dir(l.invocation);
    assert_eq!(
        describe_run(&mut Fake(s.cluster.clone()), &dir).unwrap(),
        "submitted as Slurm job 10_0, FAILED (NonZeroExitCode)"
    );
    s.cluster.borrow_mut().down = true;
    let why = describe_run(&mut Fake(s.cluster.clone()), &dir).unwrap();
    assert!(
        why.contains("as last seen (Slurm cannot be asked now"),
        "{why}"
    );
}

#[test]
fn with_a_run_dir_the_files_compute_nodes_need_go_there_and_are_read_back_from_there() {
    let mut s = setup();
    let shared = tempfile::tempdir().unwrap();
    let settings = crate::foundation::config::Settings::parse(&serde_json::json!({
        "nodes": {"levels": ["l"]}, "resources": {},
        "slurm": {"run_dir": shared.path()}}))
    .unwrap();
    assert_eq!(s.runner.start_capacity(&settings), Some(1000));
    let l = launch(&s.state, "a", 1, None);
    assert!(start(&mut s, std::slice::from_ref(&l)).is_empty());
    let files = shared.path().join(l.invocation.to_string());
    let status_file = files.join(run_dir::STATUS);
    assert!(files.join(run_dir::SCRIPT).exists());
    assert!(s.cluster.borrow().submitted[0]
        .1
        .contains(&files.display().to_string()));
    let dir = s.state.invocation_dir(l.invocation);
    let launched = read_launch(&dir).unwrap();
    assert_eq!(launched.status_file, status_file);
    assert_eq!(launched.argv[2], status_file.display().to_string());
    std::fs::write(files.join(run_dir::EXIT), "0\n").unwrap();
    std::fs::write(&status_file, "done\n").unwrap();
    assert_eq!(
        status_of(s.runner.check(&running(&l))).name().as_str(),
        "done"
    );
    s.runner.cleanup(&running(&l));
    assert!(!files.exists() && !dir.exists());
}

#[test]
fn a_timeout_becomes_slurms_time_limit_unless_the_job_sets_one() {
    let mut s = setup();
    let mut timed = launch(&s.state, "a", 1, None);
    timed.task_timeout_sec = Some(90);
    let mut limited = launch(&s.state, "b", 2, None);
    limited.task_timeout_sec = Some(90);
    limited.slurm.as_mut().unwrap().time_limit = Some("10:00".into());
    assert!(start(&mut s, &[timed, limited]).is_empty());
    let cluster = s.cluster.borrow();
    assert_eq!(
        cluster.submitted.len(),
        2,
        "different limits, different arrays"
    );
    assert!(cluster.submitted[0].0.contains(&"--time=3".to_string()));
    assert!(cluster.submitted[1].0.contains(&"--time=10:00".to_string()));
}

#[test]
fn a_run_past_its_timeout_is_cancelled_and_ends_timed_out() {
    let mut s = setup();
    let mut l = launch(&s.state, "a", 1, None);
    l.task_timeout_sec = Some(5);
    assert!(start(&mut s, std::slice::from_ref(&l)).is_empty());
    let task = running(&l);
    let dir = s.state.invocation_dir(l.invocation);
    s.cluster.borrow_mut().rows = "11|10|0|RUNNING|None|x\n".into();
    // Time in the queue does not count: the clock starts when the script began.
    let started = std::fs::File::create(dir.join(run_dir::STARTED)).unwrap();
    assert_eq!(s.runner.check(&task), Outcome::Running);
    assert!(s.cluster.borrow().cancelled.is_empty());
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(6);
    started.set_modified(long_ago).unwrap();
    assert_eq!(s.runner.check(&task), Outcome::Running);
    assert_eq!(s.cluster.borrow().cancelled, [vec!["10_0"]]);
    s.runner.tidy_up();
    assert_eq!(s.runner.check(&task), Outcome::Running);
    assert_eq!(s.cluster.borrow().cancelled.len(), 1, "cancelled once");
    s.cluster.borrow_mut().rows = "11|10|0|CANCELLED|None|x\n".into();
    s.runner.tidy_up();
    let status = status_of(s.runner.check(&task));
    assert_eq!(status.name().as_str(), "error_backoff");
    assert_eq!(status.exception(), Some("timed out after 5 s"));
}
