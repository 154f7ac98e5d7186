//! `bistro run-task JOB NODE`: one task in the foreground.

use crate::util::*;

/// Starts `run-task j node11` in the background.
fn spawn_run_task(env: &Env, task: &str) -> std::process::Child {
    env.spawn_cmd(&[
        "run-task",
        "j",
        "node11",
        "--worker-command",
        task,
        "--quiet",
    ])
    .spawn()
    .unwrap()
}

fn setup(env: &Env, body: &str) -> String {
    let task = env.script("task.sh", body);
    env.config(&config_with_jobs(1, r#""bistro_job->j": {"owner": "me"}"#));
    env.ok(&["init"]);
    task.display().to_string()
}

#[test]
fn run_task_runs_in_the_foreground_records_done_and_exits_0() {
    let env = Env::new();
    let task = setup(&env, "echo \"hello from $1\"\necho done > \"$2\"");
    let out = env.run(&["run-task", "j", "node21", "--worker-command", &task]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from node21\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("j/node21 exited with status 0: done"));
    assert_eq!(env.task("j", "node21")["status"], "done");
    assert_eq!(
        env.logs(&["--node", "node21", "--stream", "stdout"])[0]["line"],
        "hello from node21\n"
    );
}

#[test]
fn run_task_exits_1_and_reports_the_recorded_status_on_failure() {
    let env = Env::new();
    let task = setup(&env, "echo error_backoff > \"$2\"");
    for expected in ["error_backoff", "error_backoff", "failed"] {
        let out = env.run(&[
            "run-task",
            "j",
            "node11",
            "--worker-command",
            &task,
            "--quiet",
        ]);
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&format!(": {expected}")), "{stderr}");
        assert_eq!(env.task("j", "node11")["status"], expected);
    }
    assert_eq!(env.task("j", "node11")["attempts"], 3);
}

#[test]
fn run_task_refuses_a_running_task_and_a_full_resource() {
    let env = Env::new();
    let gate = env.path("gate");
    let started = env.path("started");
    let task = setup(
        &env,
        &format!(
            "touch {}.$1\nwhile [ ! -e {} ]; do sleep 0.02; done\necho done > \"$2\"",
            started.display(),
            gate.display()
        ),
    );
    let mut first = spawn_run_task(&env, &task);
    env.wait_for("the first run to start", || {
        env.path("started.node11").exists()
    });

    let again = env.run(&["run-task", "j", "node11", "--worker-command", &task]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("j/node11 is already running"));

    // The instance allows one task at a time: node12 does not fit beside node11.
    let full = env.run(&["run-task", "j", "node12", "--worker-command", &task]);
    assert_eq!(full.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&full.stderr);
    assert!(
        stderr.contains("needs 1 concurrency") && stderr.contains("held by j/node11"),
        "{stderr}"
    );
    // A tick meanwhile sees the task running and starts nothing beside it.
    let tick = env.ok(&["tick", "--worker-command", &task]);
    assert!(tick.contains("0 started"), "{tick}");

    std::fs::write(&gate, "").unwrap();
    assert!(first.wait().unwrap().success());
    assert_eq!(env.task("j", "node11")["status"], "done");
}

#[test]
fn run_task_rejects_unknown_jobs_and_nodes_with_exit_2() {
    let env = Env::new();
    let task = setup(&env, "echo done > \"$2\"");
    let out = env.run(&["run-task", "nope", "node11", "--worker-command", &task]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no job named \"nope\""));
    let out = env.run(&["run-task", "j", "node1", "--worker-command", &task]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has no node \"node1\" at its level level2")
    );
}

#[test]
fn an_interrupted_run_task_kills_its_task_and_exits_128_plus_the_signal() {
    let env = Env::new();
    let pid_file = env.path("pid");
    let task = setup(
        &env,
        &format!("echo $$ > {}\nexec sleep 1000", pid_file.display()),
    );
    let mut run = spawn_run_task(&env, &task);
    env.wait_for("the task to start", || read(&pid_file).ends_with('\n'));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let t = env.task("j", "node11");
    assert_eq!(
        t["status"], "incomplete",
        "a killed task without a status backs off without using a retry: {t}"
    );
    assert_eq!(t["data"]["exception"], "Task killed, no status returned");
}
