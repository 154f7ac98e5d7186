//! The tick's bookkeeping through the library, with a scripted runner: what is
//! claimed, started, released and recorded, without any process.

use super::*;
use crate::execution::runner::{Launch, Outcome, PreparedTask, RunnerError, TaskResult};
use crate::foundation::status::{bits, TaskStatus};
use crate::model::task::RunningTask;
use crate::storage::store::{LastTick, StatusStore};
use crate::usecases::context::keys;
use std::collections::{BTreeMap, HashMap};

/// A runner whose runs end as the test says.
#[derive(Default)]
struct ScriptedRunner {
    outcomes: HashMap<String, Outcome>,
    refuse_start: bool,
    started: Vec<String>,
    cleaned: Vec<String>,
    killed: Vec<(String, crate::foundation::config::KillMethod)>,
}

impl TaskRunner for ScriptedRunner {
    fn prepare(&mut self, launch: Launch) -> Result<PreparedTask, RunnerError> {
        Ok(PreparedTask { launch, lock: None })
    }

    fn start(&mut self, task: PreparedTask) -> Result<(), RunnerError> {
        if self.refuse_start {
            return Err(RunnerError {
                job: task.launch.job,
                node: task.launch.node,
                message: "no room".into(),
            });
        }
        self.started.push(task.launch.node);
        Ok(())
    }

    fn check(&mut self, task: &RunningTask) -> Outcome {
        self.outcomes
            .get(&task.node)
            .cloned()
            .unwrap_or(Outcome::Running)
    }

    fn cleanup(&mut self, task: &RunningTask) {
        self.cleaned.push(task.node.clone());
    }

    fn kill(
        &mut self,
        task: &RunningTask,
        request: &crate::foundation::config::KillRequest,
    ) -> Result<bool, RunnerError> {
        self.killed.push((task.node.clone(), request.method));
        Ok(true)
    }
}

fn state_with_two_nodes() -> (tempfile::TempDir, StateDir) {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(dir.path().join("state"));
    state.create().unwrap();
    std::fs::write(
        state.default_config(),
        r#"{"bistro_settings": {"enabled": true, "backoff": [7, "fail"],
              "nodes": {"levels": ["db"], "node_order": "lexicographic",
                        "node_sources": [{"source": "manual", "prefs": {"a": [], "b": []}}]},
              "resources": {"instance": {"slots": {"limit": 1, "default": 1}}}},
            "bistro_job->j": {"owner": "o"}}"#,
    )
    .unwrap();
    (dir, state)
}

fn opts() -> TickOptions {
    TickOptions {
        flags: RunFlags {
            worker_command: Some("true".into()),
            instance_node_name: Some("inst".into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn finished(status: TaskStatus) -> Outcome {
    Outcome::Finished(TaskResult {
        status,
        exit: "exited with status 0".into(),
        killed: false,
        stop_signal: None,
        end_time: 0,
    })
}

fn stored(state: &StateDir) -> (Vec<crate::storage::store::StatusRow>, Vec<RunningTask>) {
    let store = StatusStore::open(&state.statuses_db()).unwrap();
    (store.load().unwrap(), store.running().unwrap())
}

#[test]
fn a_run_is_claimed_then_started_then_recorded_and_cleaned_up() {
    let (_dir, state) = state_with_two_nodes();
    let mut runner = ScriptedRunner::default();
    let report = tick(&state, &opts(), &mut runner).unwrap();
    // Lexicographic order is tried last name first; the limit of 1 stops at one task.
    assert_eq!(runner.started, ["b"]);
    assert_eq!((report.started.len(), report.running), (1, 1));
    let (rows, running) = stored(&state);
    assert!(rows.is_empty());
    assert_eq!(running.len(), 1);
    assert_eq!(
        (
            running[0].node.as_str(),
            running[0].attempts,
            running[0].next_backoff.seconds
        ),
        ("b", 1, 7)
    );

    runner
        .outcomes
        .insert("b".into(), finished(TaskStatus::new(bits::DONE, 5)));
    let report = tick(&state, &opts(), &mut runner).unwrap();
    assert_eq!(
        report
            .finished
            .iter()
            .map(|f| (f.node.as_str(), f.status))
            .collect::<Vec<_>>(),
        [("b", "done")]
    );
    assert_eq!(runner.cleaned, ["b"]);
    assert_eq!(
        runner.started,
        ["b", "a"],
        "the freed slot is used in the same tick"
    );
    let (rows, running) = stored(&state);
    assert_eq!(
        (rows[0].node.as_str(), rows[0].status.bits, rows[0].attempts),
        ("b", bits::DONE, 1)
    );
    assert_eq!(running[0].node, "a");
}

#[test]
fn a_lost_run_gets_the_backoff_computed_when_it_started() {
    let (_dir, state) = state_with_two_nodes();
    let mut runner = ScriptedRunner::default();
    tick(&state, &opts(), &mut runner).unwrap();
    runner.outcomes.insert(
        "b".into(),
        Outcome::Lost(TaskStatus::error_backoff("lost", 100), "lost".into()),
    );
    let report = tick(&state, &opts(), &mut runner).unwrap();
    assert_eq!(report.finished[0].status, "error_backoff");
    let (rows, _) = stored(&state);
    assert_eq!(
        (rows[0].status.backoff, rows[0].status.exception()),
        (7, Some("lost"))
    );
    let events = crate::storage::store::LogStore::open(&state.logs_db())
        .unwrap()
        .query(&Default::default())
        .unwrap();
    assert!(events[0].line.contains("supervisor_lost"));
}

#[test]
fn a_run_that_never_started_is_released_with_its_stored_status_untouched() {
    let (_dir, state) = state_with_two_nodes();
    let mut runner = ScriptedRunner::default();
    tick(&state, &opts(), &mut runner).unwrap();
    let mut incomplete = TaskStatus::new(bits::INCOMPLETE, 5);
    incomplete.data = Some(
        serde_json::json!({"checkpoint": 3})
            .as_object()
            .unwrap()
            .clone(),
    );
    runner
        .outcomes
        .insert("b".into(), finished(incomplete.clone()));
    tick(&state, &opts(), &mut runner).unwrap();
    // The incomplete task was started again (attempt 2); that run never starts.
    assert_eq!(stored(&state).1[0].attempts, 2);
    runner
        .outcomes
        .insert("b".into(), Outcome::NeverStarted("gone".into()));
    let report = tick(&state, &opts(), &mut runner).unwrap();
    assert!(report
        .finished
        .iter()
        .any(|f| f.node == "b" && f.status == "not_started"));
    let (rows, _) = stored(&state);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (&rows[0].status, rows[0].attempts),
        (&incomplete, 1),
        "prev_status data and attempts survive"
    );
}

#[test]
fn a_runner_that_cannot_start_a_task_releases_its_claim() {
    let (_dir, state) = state_with_two_nodes();
    let mut runner = ScriptedRunner {
        refuse_start: true,
        ..Default::default()
    };
    let report = tick(&state, &opts(), &mut runner).unwrap();
    assert_eq!(report.start_errors, ["j/b: no room"]);
    assert_eq!(report.running, 0);
    let (rows, running) = stored(&state);
    assert!(rows.is_empty() && running.is_empty());
    assert_eq!(runner.cleaned, ["b"]);
}

#[test]
fn a_broken_config_file_schedules_with_the_last_good_one() {
    let (_dir, state) = state_with_two_nodes();
    let mut runner = ScriptedRunner::default();
    tick(&state, &opts(), &mut runner).unwrap();
    std::fs::write(state.default_config(), "{ not json").unwrap();
    runner
        .outcomes
        .insert("b".into(), finished(TaskStatus::new(bits::DONE, 5)));
    let report = tick(&state, &opts(), &mut runner).unwrap();
    assert!(report.using_last_good);
    assert!(report.config_errors[0].1.contains("invalid JSON"));
    assert_eq!(runner.started, ["b", "a"], "scheduling goes on");
}

#[test]
fn a_real_tick_records_what_it_did_and_a_dry_run_does_not() {
    let (_dir, state) = state_with_two_nodes();
    let mut runner = ScriptedRunner::default();
    let last = |state: &StateDir| {
        LastTick::load(&StatusStore::open(&state.statuses_db()).unwrap()).unwrap()
    };
    let dry = TickOptions {
        dry_run: true,
        ..opts()
    };
    tick(&state, &dry, &mut runner).unwrap();
    assert_eq!(last(&state), None);
    let report = tick(&state, &opts(), &mut runner).unwrap();
    let recorded = last(&state).expect("a real tick leaves its summary");
    assert_eq!(
        (
            recorded.time,
            recorded.started,
            recorded.running,
            recorded.errors
        ),
        (report.now, 1, 1, 0)
    );
}

fn rewrite_config(state: &StateDir, from: &str, to: &str) {
    let text = std::fs::read_to_string(state.default_config()).unwrap();
    assert!(text.contains(from), "{from} not in the config");
    std::fs::write(state.default_config(), text.replace(from, to)).unwrap();
}

#[test]
fn an_orphan_of_a_disabled_job_is_killed_with_the_jobs_kill_method() {
    let (_dir, state) = state_with_two_nodes();
    let mut runner = ScriptedRunner::default();
    let report = orphan_running_task(
        &state,
        &mut runner,
        r#", "kill_orphan_tasks_after_sec": true, "kill_subprocess": {"method": "kill"}"#,
    );
    assert_eq!(
        runner.killed,
        [("b".to_string(), crate::foundation::config::KillMethod::Kill)]
    );
    assert_eq!(report.orphans_killed[0].reason, "its job is disabled");
    let report = tick(&state, &opts(), &mut runner).unwrap();
    assert_eq!(
        runner.killed.len(),
        2,
        "a surviving orphan is killed again after the delay (0)"
    );
    assert_eq!(report.started.len(), 0, "a disabled job starts nothing");
}

#[test]
fn an_orphan_waits_out_its_delay_and_is_not_killed_without_one() {
    let (_dir, state) = state_with_two_nodes();
    let mut runner = ScriptedRunner::default();
    orphan_running_task(&state, &mut runner, "");
    assert!(
        runner.killed.is_empty(),
        "no kill_orphan_tasks_after_sec: orphans live on"
    );

    rewrite_config(
        &state,
        r#""enabled": false}"#,
        r#""enabled": false, "kill_orphan_tasks_after_sec": 3600}"#,
    );
    let report = tick(&state, &opts(), &mut runner).unwrap();
    assert!(runner.killed.is_empty());
    let store = StatusStore::open(&state.statuses_db()).unwrap();
    let deadlines: BTreeMap<String, i64> =
        serde_json::from_str(&store.meta(keys::ORPHAN_KILL_AT).unwrap().unwrap()).unwrap();
    assert_eq!(
        deadlines.values().copied().collect::<Vec<_>>(),
        [report.now + 3600]
    );

    rewrite_config(
        &state,
        r#""enabled": false, "kill_orphan_tasks_after_sec": 3600}"#,
        r#""enabled": true}"#,
    );
    tick(&state, &opts(), &mut runner).unwrap();
    assert_eq!(
        store.meta(keys::ORPHAN_KILL_AT).unwrap().as_deref(),
        Some("{}"),
        "a task that is no orphan any more is forgotten"
    );
}

#[test]
fn an_orphan_of_a_deleted_job_is_killed_with_the_global_settings() {
    let (_dir, state) = state_with_two_nodes();
    let mut runner = ScriptedRunner::default();
    tick(&state, &opts(), &mut runner).unwrap();
    rewrite_config(
        &state,
        r#""bistro_job->j": {"owner": "o"}"#,
        r#""bistro_job->other": {"owner": "o", "enabled": false}"#,
    );
    rewrite_config(
        &state,
        r#""enabled": true,"#,
        r#""enabled": true, "kill_orphan_tasks_after_sec": 0, "kill_subprocess": {"method": "term"},"#,
    );
    let report = tick(&state, &opts(), &mut runner).unwrap();
    assert_eq!(
        runner.killed,
        [("b".to_string(), crate::foundation::config::KillMethod::Term)]
    );
    assert_eq!(report.orphans_killed[0].reason, "its job was deleted");
}

/// Starts job j's task on b, then disables the job with `kill_settings` (`, KEY:
/// VALUE...`) and ticks once, so the task is an orphan that tick has seen; returns
/// that tick's report.
fn orphan_running_task(
    state: &StateDir,
    runner: &mut ScriptedRunner,
    kill_settings: &str,
) -> TickReport {
    tick(state, &opts(), runner).unwrap();
    rewrite_config(
        state,
        r#""bistro_job->j": {"owner": "o"}"#,
        &format!(r#""bistro_job->j": {{"owner": "o", "enabled": false{kill_settings}}}"#),
    );
    tick(state, &opts(), runner).unwrap()
}

/// Bistro's KillJobOrphans with a delay: no kill before the deadline, a kill once it
/// has passed. We move the stored deadline instead of the clock.
#[test]
fn an_orphan_is_killed_once_its_stored_deadline_has_passed() {
    let (_dir, state) = state_with_two_nodes();
    let mut runner = ScriptedRunner::default();
    orphan_running_task(&state, &mut runner, r#", "kill_orphan_tasks_after_sec": 1"#);
    assert!(runner.killed.is_empty(), "not due yet");
    let mut store = StatusStore::open(&state.statuses_db()).unwrap();
    let mut deadlines: BTreeMap<String, i64> =
        serde_json::from_str(&store.meta(keys::ORPHAN_KILL_AT).unwrap().unwrap()).unwrap();
    assert_eq!(deadlines.len(), 1);
    for due in deadlines.values_mut() {
        *due -= 1;
    }
    let passed = serde_json::to_string(&deadlines).unwrap();
    store.set_meta(&[(keys::ORPHAN_KILL_AT, &passed)]).unwrap();
    let report = tick(&state, &opts(), &mut runner).unwrap();
    assert_eq!(runner.killed.len(), 1);
    assert_eq!(report.orphans_killed[0].node, "b");
}

/// Bistro's KillJobOrphans when loading fails: the pass stops early, so no orphan
/// is killed and pending deadlines are kept. (A broken config file is not such a
/// failure here: the last good config stays in force, spec README.)
#[test]
fn a_failed_node_fetch_kills_no_orphan_and_keeps_its_deadline() {
    let (_dir, state) = state_with_two_nodes();
    let mut runner = ScriptedRunner::default();
    orphan_running_task(
        &state,
        &mut runner,
        r#", "kill_orphan_tasks_after_sec": 3600"#,
    );
    let deadlines = || {
        StatusStore::open(&state.statuses_db())
            .unwrap()
            .meta(keys::ORPHAN_KILL_AT)
            .unwrap()
    };
    let pending = deadlines();
    assert!(pending.as_deref().is_some_and(|d| d != "{}"), "{pending:?}");

    rewrite_config(
        &state,
        r#"{"source": "manual", "prefs": {"a": [], "b": []}}"#,
        r#"{"source": "script", "prefs": {"parent_level": "instance", "script": "/nonexistent/nodes.sh"}}"#,
    );
    rewrite_config(
        &state,
        r#""kill_orphan_tasks_after_sec": 3600"#,
        r#""kill_orphan_tasks_after_sec": 0"#,
    );
    let report = tick(&state, &opts(), &mut runner).unwrap();
    assert!(report.nodes_error.is_some());
    assert!(
        runner.killed.is_empty(),
        "no kill while the nodes cannot be fetched, even when due"
    );
    assert_eq!(
        deadlines(),
        pending,
        "the pending deadline is left untouched"
    );
    assert_eq!(stored(&state).1.len(), 1, "the task still runs");
}

#[test]
fn a_tick_cache_rereads_the_config_only_after_config_update_ms() {
    let (_dir, state) = state_with_two_nodes();
    let mut runner = ScriptedRunner::default();
    let slow = TickOptions {
        config_update_ms: 3_600_000,
        ..opts()
    };
    let mut cache = TickCache::default();
    tick_with(&state, &slow, &mut runner, &mut cache).unwrap();
    rewrite_config(
        &state,
        r#""bistro_job->j": {"owner": "o"}"#,
        r#""bistro_job->j": {"owner": "o"}, "bistro_job->k": {"owner": "o"}"#,
    );
    let report = tick_with(&state, &slow, &mut runner, &mut cache).unwrap();
    assert!(
        report.config_changes.is_empty(),
        "the cached config is still in force"
    );
    let fresh = TickOptions {
        config_update_ms: 0,
        ..opts()
    };
    let report = tick_with(&state, &fresh, &mut runner, &mut cache).unwrap();
    assert_eq!(report.config_changes, ["added job k"]);
}

#[test]
fn the_next_wait_follows_bistros_loop() {
    let (_dir, state) = state_with_two_nodes();
    rewrite_config(
        &state,
        r#""enabled": true,"#,
        r#""enabled": true, "working_wait": 0.25, "idle_wait": 7,"#,
    );
    let mut runner = ScriptedRunner::default();
    let report = tick(&state, &opts(), &mut runner).unwrap();
    assert_eq!(
        (report.running, report.wait_ms),
        (1, 250),
        "working_wait while a task runs"
    );
    rewrite_config(
        &state,
        r#""bistro_job->j": {"owner": "o"}"#,
        r#""bistro_job->j": {"owner": "o", "enabled": false}"#,
    );
    runner
        .outcomes
        .insert("b".into(), finished(TaskStatus::new(bits::DONE, 5)));
    let report = tick(&state, &opts(), &mut runner).unwrap();
    assert_eq!(
        (report.running, report.wait_ms),
        (0, 7000),
        "idle_wait when nothing runs"
    );
    std::fs::write(state.default_config(), "{ broken").unwrap();
    let report = tick(&state, &opts(), &mut runner).unwrap();
    assert_eq!(
        report.wait_ms, 7000,
        "the last good config's idle_wait, as it stays in force"
    );

    let (_dir, never_good) = state_with_two_nodes();
    std::fs::write(never_good.default_config(), "{ broken").unwrap();
    let report = tick(&never_good, &opts(), &mut runner).unwrap();
    assert_eq!(report.wait_ms, 5000, "5 s after a config failure");
}

/// A daemon-like sequence: b fails for good (the backoff is [7, "fail"]) and a starts;
/// then, with the scheduler's connection dropped first when `reconnect`, another
/// process forgives b, a ends, and b must start again: the kept statuses never hide
/// another process's write.
fn another_processes_forgive_is_seen(reconnect: bool) {
    let (_dir, state) = state_with_two_nodes();
    let mut runner = ScriptedRunner::default();
    let mut cache = TickCache::default();
    tick_with(&state, &opts(), &mut runner, &mut cache).unwrap();
    assert_eq!(runner.started, ["b"]);
    runner
        .outcomes
        .insert("b".into(), finished(TaskStatus::new(bits::FAILED, 5)));
    tick_with(&state, &opts(), &mut runner, &mut cache).unwrap();
    assert_eq!(runner.started, ["b", "a"]);
    let known = &cache.statuses.as_ref().expect("kept").statuses;
    assert!(known.get("j", "b").is_some_and(|s| s.has(bits::FAILED)));

    if reconnect {
        // As after a failed iteration. A new connection's data_version starts where
        // the old one's did, so only reading the statuses again shows the change.
        cache.store = None;
    }
    let mut other = StatusStore::open(&state.statuses_db()).unwrap();
    assert_eq!(other.forgive(&["j".into()], &[]).unwrap(), 1);
    runner
        .outcomes
        .insert("a".into(), finished(TaskStatus::new(bits::DONE, 6)));
    tick_with(&state, &opts(), &mut runner, &mut cache).unwrap();
    assert_eq!(
        runner.started,
        ["b", "a", "b"],
        "the forgiven task starts again"
    );
}

#[test]
fn a_long_running_scheduler_keeps_its_statuses_yet_sees_other_processes_writes() {
    another_processes_forgive_is_seen(false);
}

#[test]
fn statuses_read_through_a_dropped_connection_are_read_again() {
    another_processes_forgive_is_seen(true);
}

/// The invocation of each running task: what a cached list must match.
fn invocations(tasks: &[RunningTask]) -> Vec<String> {
    tasks.iter().map(|t| t.invocation.to_string()).collect()
}

#[test]
fn a_long_running_scheduler_keeps_its_running_tasks_yet_sees_other_processes_writes() {
    let (_dir, state) = state_with_two_nodes();
    let mut runner = ScriptedRunner::default();
    let mut cache = TickCache::default();
    tick_with(&state, &opts(), &mut runner, &mut cache).unwrap();
    assert_eq!(runner.started.len(), 1);
    let kept = invocations(&cache.running.as_ref().expect("kept").tasks);
    assert_eq!(
        kept,
        invocations(&stored(&state).1),
        "as stored after a start"
    );
    // Another process releases the run: the slot is free again, and the scheduler
    // must see it rather than the list it kept.
    let mut other = StatusStore::open(&state.statuses_db()).unwrap();
    let (_, running) = stored(&state);
    other.finish(&[(running[0].clone(), None)]).unwrap();
    tick_with(&state, &opts(), &mut runner, &mut cache).unwrap();
    assert_eq!(runner.started.len(), 2, "a task started in the freed slot");
    let kept = invocations(&cache.running.as_ref().expect("kept").tasks);
    assert_eq!(kept, invocations(&stored(&state).1));
    // The run ends: the kept list loses it as the database does.
    let node = runner.started[1].clone();
    runner
        .outcomes
        .insert(node, finished(TaskStatus::new(bits::DONE, 6)));
    tick_with(&state, &opts(), &mut runner, &mut cache).unwrap();
    let kept = invocations(&cache.running.as_ref().expect("kept").tasks);
    assert_eq!(
        kept,
        invocations(&stored(&state).1),
        "as stored after an end"
    );
}
