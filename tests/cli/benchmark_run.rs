//! `--benchmark-run`: simulated runs that start no process, for measuring the
//! scheduler itself; their statuses are recorded like real ones.

use crate::util::*;

/// A config of `n` leaves, two running at a time, short waits between iterations.
fn config(env: &Env, n: usize) {
    env.config(&config_with_leaves(
        n,
        2,
        r#""backoff": [1, "fail"], "working_wait": 0.01,"#,
    ));
}

/// `bistro daemon --exit-when-done --benchmark-run` with `args`, run to its end.
fn batch(env: &Env, args: &[&str]) -> std::process::Output {
    let mut all = vec![
        "daemon",
        "--exit-when-done",
        "--benchmark-run",
        // Never run: a real run of it would fail every task.
        "--worker-command",
        "/bin/false",
    ];
    all.extend_from_slice(args);
    env.cmd(&all).output().unwrap()
}

#[test]
fn a_benchmark_daemon_runs_every_task_without_processes_and_records_it_done() {
    let env = Env::new();
    config(&env, 20);
    let out = batch(&env, &["--test-task-duration", "5"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let status = env.status_json(&["--tasks"]);
    assert_eq!(count(&status, "j", "total"), 20);
    assert!(all_done(&status, "j"), "{status}");
    for task in status["tasks"].as_array().unwrap() {
        assert_eq!(task["attempts"], 1, "each ran once: {task}");
    }
    let left = std::fs::read_dir(env.state().join("running")).map_or(0, |entries| entries.count());
    assert_eq!(left, 0, "no invocation directory: nothing was supervised");
}

#[test]
fn simulated_failures_back_off_as_testing_then_fail_for_good() {
    let env = Env::new();
    config(&env, 3);
    let out = batch(
        &env,
        &["--test-task-duration", "0", "--test-failure-rate", "1"],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let status = env.status_json(&["--tasks"]);
    assert_eq!(count(&status, "j", "failed"), 3, "{status}");
    for task in status["tasks"].as_array().unwrap() {
        assert_eq!(task["attempts"], 2, "one retry after the backoff: {task}");
        assert_eq!(task["data"]["exception"], "testing", "{task}");
    }
}

#[test]
fn ticks_record_the_simulated_runs_an_earlier_tick_started() {
    let env = Env::new();
    config(&env, 2);
    let tick = [
        "tick",
        "--benchmark-run",
        "--test-task-duration",
        "0",
        "--worker-command",
        "/bin/false",
    ];
    let first = env.ok(&tick);
    assert!(first.contains("2 started"), "{first}");
    let second = env.ok(&tick);
    assert!(second.contains("2 finished (2 done)"), "{second}");
    assert!(all_done(&env.status_json(&[]), "j"));
}

#[test]
fn the_simulation_flags_need_benchmark_run_and_a_probability() {
    let env = Env::new();
    config(&env, 1);
    let out = env.run(&["tick", "--test-task-duration", "5"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = env.run(&["tick", "--benchmark-run", "--test-failure-rate", "1.5"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("probability between 0 and 1"), "{err}");
}
