//! The getting-started demo, translated to our CLI.

use crate::util::*;

#[test]
fn seed_demo_runs_every_task_once_never_more_than_three_at_once() {
    let env = Env::new();
    let ledger = env.path("ledger");
    let task = env.script(
        "task.sh",
        &format!(
            "echo \"start $1\" >> {l}\nsleep 0.3\necho \"I got these arguments: $@\"\necho 'stderr is also logged' >&2\necho \"end $1\" >> {l}\necho done > \"$2\"",
            l = ledger.display()
        ),
    );
    env.ok(&["init"]);
    let status = env.tick_until(&["--worker-command", task.to_str().unwrap()], |s| {
        all_done(s, "simple_job")
    });
    assert_eq!(count(&status, "simple_job", "total"), 4);

    let events = read(&ledger);
    let ledger_seen = Ledger::read(&ledger);
    assert!(
        ledger_seen.peak <= 3,
        "{} tasks ran at once:\n{events}",
        ledger_seen.peak
    );
    assert_eq!(ledger_seen.starts.len(), 4);
    assert!(
        ledger_seen.each_ran_once(),
        "a task ran twice: {:?}",
        ledger_seen.starts
    );

    // Done work is never redone.
    env.ok(&["tick"]);
    assert_eq!(read(&ledger), events);

    // Logs are retrievable per node and stream.
    let stderr = env.logs(&[
        "--job",
        "simple_job",
        "--node",
        "node21",
        "--stream",
        "stderr",
    ]);
    assert_eq!(stderr.len(), 1);
    assert_eq!(stderr[0]["line"], "stderr is also logged\n");
    let stdout = env.logs(&["--node", "node11", "--stream", "stdout"]);
    assert!(stdout[0]["line"]
        .as_str()
        .unwrap()
        .starts_with("I got these arguments: node11 "));
    let events = env.logs(&["--node", "node12", "--stream", "statuses"]);
    let names: Vec<String> = events
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(e["line"].as_str().unwrap()).unwrap()["event"]
                .to_string()
        })
        .collect();
    assert_eq!(names.first().map(String::as_str), Some("\"running\""));
    assert_eq!(names.last().map(String::as_str), Some("\"got_status\""));
}

#[test]
fn the_task_gets_its_node_a_status_file_and_json_arguments() {
    let env = Env::new();
    let out = env.path("args");
    let task = env.script(
        "task.sh",
        &format!(
            "printf '%s\\n' \"$1\" \"$2\" \"$3\" > {}\npwd >> {}\necho done > \"$2\"",
            out.display(),
            out.display()
        ),
    );
    env.config(&config_with_jobs(
        1,
        r#""bistro_job->j": {"owner": "me", "config": {"k": [1, 2]}, "filters": {"level2": {"whitelist": ["node12"]}}}"#,
    ));
    env.tick_until(
        &[
            "--worker-command",
            task.to_str().unwrap(),
            "--instance-node-name",
            "inst",
        ],
        |s| count(s, "j", "done") == 1,
    );
    let text = read(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "node12");
    assert!(
        lines[1].starts_with(env.state().join("running").to_str().unwrap()),
        "{}",
        lines[1]
    );
    let arg: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(arg["id"], "j");
    assert_eq!(
        arg["path_to_node"],
        serde_json::json!(["inst", "node1", "node12"])
    );
    assert_eq!(arg["config"], serde_json::json!({"k": [1, 2]}));
    assert_eq!(
        arg["resources_by_node"],
        serde_json::json!({"inst": {"concurrency": 1}})
    );
    assert_eq!(arg["worker_node"], "inst");
    assert!(arg["worker_host"].is_string());
    assert!(arg.get("prev_status").is_none());
    assert_eq!(lines[3], env.state().join("jobs/j").to_str().unwrap());
}

#[test]
fn prev_status_carries_the_last_data_across_runs() {
    let env = Env::new();
    let seen = env.path("seen");
    let task = env.script(
        "task.sh",
        &format!(
            "echo \"$3\" >> {}\nif grep -q step \"{}\" 2>/dev/null && [ $(wc -l < {}) -ge 2 ]; then echo done > \"$2\"; else echo '{{\"result\": \"incomplete\", \"data\": {{\"step\": 7}}}}' > \"$2\"; fi",
            seen.display(),
            seen.display(),
            seen.display()
        ),
    );
    env.config(&config_with_jobs(
        1,
        r#""bistro_job->j": {"owner": "me", "filters": {"level2": {"whitelist": ["node11"]}}}"#,
    ));
    env.tick_until(&["--worker-command", task.to_str().unwrap()], |s| {
        count(s, "j", "done") == 1
    });
    let runs: Vec<serde_json::Value> = read(&seen)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(runs.len(), 2);
    assert!(runs[0].get("prev_status").is_none());
    assert_eq!(runs[1]["prev_status"]["result_bits"], 8);
    assert_eq!(
        runs[1]["prev_status"]["data"],
        serde_json::json!({"step": 7})
    );
    assert_eq!(env.task("j", "node11")["attempts"], 2);
}

#[test]
fn a_disabled_scheduler_starts_nothing_and_says_so() {
    let env = Env::new();
    let marker = env.path("ran");
    let task = env.script(
        "task.sh",
        &format!("touch {}\necho done > \"$2\"", marker.display()),
    );
    env.config(
        &config_with_jobs(1, r#""bistro_job->j": {"owner": "me"}"#)
            .replace("\"enabled\": true,", ""),
    );
    let out = env.ok(&["tick", "--worker-command", task.to_str().unwrap()]);
    assert!(out.contains("scheduler disabled"), "{out}");
    let status = env.run(&["status"]);
    assert!(String::from_utf8_lossy(&status.stderr).contains("scheduler is disabled"));
    assert_eq!(env.status_json(&[])["scheduler"]["enabled"], false);
    assert!(!marker.exists());
}

/// The README's "By hand" steps, as a user types them, with the example task script.
#[test]
fn the_readme_by_hand_steps_reach_all_four_tasks_done() {
    let env = Env::new();
    let task = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo_bistro_task.sh");
    env.ok(&["init"]);
    env.ok(&["tick", "--worker-command", task]);
    let status = env.status_json(&[]);
    assert_eq!(
        count(&status, "simple_job", "running") + count(&status, "simple_job", "done"),
        3,
        "{status}"
    );
    assert_eq!(count(&status, "simple_job", "not_started"), 1, "{status}");
    // until bistro status --check; do sleep 1; bistro tick --quiet; done
    let deadline = std::time::Instant::now() + DEADLINE;
    while env.run(&["status", "--check"]).status.code() != Some(0) {
        assert!(std::time::Instant::now() < deadline, "never all done");
        std::thread::sleep(std::time::Duration::from_millis(100));
        env.ok(&["tick", "--quiet"]);
    }
    let status = env.status_json(&["--tasks"]);
    assert_eq!(count(&status, "simple_job", "done"), 4, "{status}");
    let stderr = env.logs(&["--job", "simple_job", "--stream", "stderr"]);
    assert_eq!(stderr.len(), 4);
}
