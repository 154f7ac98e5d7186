//! `task_timeout_sec`: a task still running at its timeout is killed by its supervisor
//! with the job's `kill_subprocess`, becomes `error_backoff` "timed out after N s" on
//! its job's backoff ladder, and `status`, `why` and the task log say so; the simulated
//! runner honours it too, and `check` refuses a bad value.

use crate::util::*;

/// A task that records its pid in `pids/NODE`, ignores SIGTERM and never ends.
fn hanging_task(env: &Env) -> std::path::PathBuf {
    let pids = env.path("pids");
    std::fs::create_dir_all(&pids).unwrap();
    env.script(
        "hang.sh",
        &format!(
            "trap '' TERM\necho $$ > {pids}/$1.tmp && mv {pids}/$1.tmp {pids}/$1\nwhile :; do sleep 0.05; done",
            pids = pids.display()
        ),
    )
}

/// One job `j` on one node, with `job_extra` keys.
fn one_node_config(job_extra: &str) -> String {
    format!(
        r#"{{"bistro_settings": {{"enabled": true, "backoff": [1, "fail"],
              "nodes": {{"levels": ["host", "db"], "node_sources": [{{"source": "manual", "prefs": {{"h1": ["n0"]}}}}]}},
              "resources": {{}}}},
            "bistro_job->j": {{"owner": "me"{job_extra}}}}}"#
    )
}

#[test]
fn a_task_past_its_timeout_is_killed_with_its_job_s_kill_and_backs_off_until_it_fails() {
    let env = Env::new();
    let task = hanging_task(&env);
    env.config(&one_node_config(
        r#", "task_timeout_sec": 1, "kill_subprocess": {"method": "term_wait_kill", "kill_wait_ms": 200}"#,
    ));
    let pid_file = env.path("pids").join("n0");
    env.ok(&["tick", "--worker-command", task.to_str().unwrap()]);
    env.wait_for("the task to start", || pid_file.exists());
    let pid: i32 = read(&pid_file).trim().parse().unwrap();
    let why = env.ok(&["why", "j", "n0"]);
    assert!(
        why.contains("times out at") && why.contains("task_timeout_sec 1"),
        "{why}"
    );

    // The tick that started it is gone: its supervisor kills it (TERM is ignored,
    // the KILL after 200 ms is not).
    env.wait_for("the hung task to be killed", || !alive(pid));
    let status = env.tick_until(&[], |s| count(s, "j", "error_backoff") == 1);
    let row = &status["tasks"][0];
    assert_eq!(row["data"]["exception"], "timed out after 1 s", "{row}");
    assert!(row["backoff_until"].is_i64(), "{row}");
    let table = env.ok(&["status", "--tasks"]);
    assert!(table.contains("timed out after 1 s"), "{table}");
    let why = env.ok(&["why", "j", "n0"]);
    assert!(why.contains("\"timed out after 1 s\""), "{why}");
    let events = env.logs(&["--stream", "statuses"]);
    assert!(
        events
            .iter()
            .any(|e| e["line"].as_str().unwrap_or("").contains("task_timed_out")),
        "{events:?}"
    );

    // The ladder [1, "fail"]: after one backoff it runs again, times out again, and
    // fails for good.
    std::fs::remove_file(&pid_file).unwrap();
    let status = env.tick_until(&[], |s| count(s, "j", "failed") == 1);
    assert_eq!(status["tasks"][0]["attempts"], 2, "{status}");
    let pid: i32 = read(&pid_file).trim().parse().unwrap();
    assert!(!alive(pid), "the second run was killed too");
}

#[test]
fn a_job_without_a_timeout_of_its_own_takes_the_settings_one_and_zero_lifts_it() {
    let env = Env::new();
    let config = |job_extra: &str| {
        one_node_config(job_extra).replace(
            r#""enabled": true,"#,
            r#""enabled": true, "task_timeout_sec": 1,"#,
        )
    };
    let task = env.script("quick.sh", "sleep 2; echo done > \"$2\"");
    env.config(&config(r#", "task_timeout_sec": 0"#));
    let status = env.tick_until(&["--worker-command", task.to_str().unwrap()], |s| {
        all_done(s, "j")
    });
    assert_eq!(
        status["tasks"][0]["attempts"], 1,
        "no timeout: it ran its 2 s"
    );

    let env = Env::new();
    env.config(&config(""));
    let status = env.tick_until(&["--worker-command", task.to_str().unwrap()], |s| {
        count(s, "j", "error_backoff") + count(s, "j", "failed") == 1
    });
    assert_eq!(
        status["tasks"][0]["data"]["exception"], "timed out after 1 s",
        "{status}"
    );
}

#[test]
fn simulated_runs_longer_than_the_timeout_end_at_it_as_timed_out() {
    let env = Env::new();
    env.config(&config_with_leaves(
        4,
        4,
        r#""task_timeout_sec": 1, "backoff": [3600, "fail"],"#,
    ));
    // Runs drawn from 0..200 s: each that is not over within 1 s times out.
    let status = env.tick_until(
        &[
            "--benchmark-run",
            "--test-task-duration",
            "100000",
            "--worker-command",
            "/bin/false",
        ],
        |s| count(s, "j", "running") + count(s, "j", "not_started") == 0,
    );
    let timed_out = status["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] != "done")
        .inspect(|t| assert_eq!(t["data"]["exception"], "timed out after 1 s", "{t}"))
        .count();
    assert!(timed_out > 0, "{status}");
}

#[test]
fn check_names_a_bad_task_timeout_in_the_settings_and_in_a_job() {
    let env = Env::new();
    env.config(&one_node_config(r#", "task_timeout_sec": "soon""#));
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("bistro_job->j: task_timeout_sec: must be a whole number of seconds"),
        "{stdout}"
    );
    env.config(&one_node_config("").replace(
        r#""enabled": true,"#,
        r#""enabled": true, "task_timeout_sec": -1,"#,
    ));
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("bistro_settings.task_timeout_sec: must be a whole number of seconds"),
        "{stdout}"
    );
}
