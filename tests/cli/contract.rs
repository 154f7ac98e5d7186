//! The documented shapes scripts rely on: `status --json`, `tick --json`, the example
//! configs and task script, node sources and node order through the binary.

use crate::util::*;
use serde_json::json;

#[test]
fn status_json_has_exactly_the_contract_keys() {
    let env = Env::new();
    env.ok(&["init"]);
    let task = env.script(
        "task.sh",
        "echo '{\"result\": \"done\", \"data\": {\"rows\": 3}}' > \"$2\"",
    );
    env.tick_until(&["--worker-command", task.to_str().unwrap()], |s| {
        all_done(s, "simple_job")
    });
    let status = env.status_json(&["--tasks"]);
    let keys =
        |v: &serde_json::Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(
        keys(&status),
        [
            "schema_version",
            "now",
            "scheduler",
            "jobs",
            "tasks",
            "orphans"
        ]
    );
    assert_eq!(status["orphans"], json!([]));
    assert_eq!(status["schema_version"], 1);
    assert!(status["now"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(
        status["scheduler"],
        json!({"enabled": true, "config_error": null})
    );
    let job = &status["jobs"][0];
    assert_eq!(
        keys(job),
        [
            "name",
            "owner",
            "enabled",
            "errors",
            "level_for_tasks",
            "counts"
        ]
    );
    assert_eq!(
        (
            &job["name"],
            &job["owner"],
            &job["enabled"],
            &job["errors"],
            &job["level_for_tasks"]
        ),
        (
            &json!("simple_job"),
            &json!("test"),
            &json!(true),
            &json!(null),
            &json!("level2")
        )
    );
    assert_eq!(
        job["counts"],
        json!({"done": 4, "running": 0, "incomplete": 0, "error_backoff": 0, "failed": 0, "not_started": 0, "excluded": 0, "total": 4})
    );
    let task = &status["tasks"][0];
    assert_eq!(
        keys(task),
        [
            "job",
            "node",
            "status",
            "time",
            "attempts",
            "backoff_until",
            "data"
        ]
    );
    assert_eq!(
        (&task["status"], &task["attempts"], &task["backoff_until"]),
        (&json!("done"), &json!(1), &json!(null))
    );
    assert!(task["time"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(task["data"], json!({"rows": 3}));
    assert!(
        env.status_json(&[]).get("tasks").is_none(),
        "tasks only with --tasks"
    );
}

#[test]
fn tick_json_reports_what_it_started_and_recorded() {
    let env = Env::new();
    env.ok(&["init"]);
    let task = env.script("task.sh", "echo done > \"$2\"");
    let first: serde_json::Value = serde_json::from_str(&env.ok(&[
        "tick",
        "--json",
        "--worker-command",
        task.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(first["schema_version"], 1);
    assert_eq!(first["started"].as_array().unwrap().len(), 3);
    assert!(first["started"][0]["invocation"].is_string());
    assert_eq!(first["running"], 3);
    assert_eq!(
        (&first["dry_run"], &first["scheduler_enabled"]),
        (&json!(false), &json!(true))
    );
    assert_eq!(first["config_errors"], json!([]));
    let deadline = std::time::Instant::now() + DEADLINE;
    let mut finished = 0;
    while finished < 4 {
        let tick: serde_json::Value = serde_json::from_str(&env.ok(&["tick", "--json"])).unwrap();
        for f in tick["finished"].as_array().unwrap() {
            assert_eq!(
                (&f["job"], &f["status"]),
                (&json!("simple_job"), &json!("done"))
            );
            finished += 1;
        }
        assert!(std::time::Instant::now() < deadline);
    }
}

#[test]
fn both_example_configs_run_the_example_task_script_to_completion() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("examples/demo_bistro_task.sh");
    for config in [
        "examples/configs/simple.json",
        "examples/configs/simple-node-sources.json",
    ] {
        let env = Env::new();
        env.ok(&["init", "--config", root.join(config).to_str().unwrap()]);
        env.tick_until(
            &[
                "--worker-command",
                script.to_str().unwrap(),
                "--instance-node-name",
                "scheduler",
            ],
            |s| all_done(s, "simple_job"),
        );
        let stderr = env.logs(&["--stream", "stderr"]);
        assert_eq!(stderr.len(), 4, "{config}");
        assert!(stderr
            .iter()
            .all(|l| l["line"] == "stderr is also logged\n"));
        let stdout = env.logs(&["--node", "node22", "--stream", "stdout"]);
        let line = stdout[0]["line"].as_str().unwrap();
        assert!(
            line.starts_with("I got these arguments: node22 ")
                && line.contains("\"path_to_node\":[\"scheduler\",\"node2\",\"node22\"]"),
            "{line}"
        );
    }
}

#[test]
fn range_label_and_script_sources_build_the_node_tree() {
    let env = Env::new();
    let dbs = env.script("dbs.sh", "echo \"$1.db_a\"\necho \"$1.db_b\"");
    let seen = env.path("seen");
    let task = env.script(
        "task.sh",
        &format!("echo \"$3\" >> {}\necho done > \"$2\"", seen.display()),
    );
    env.config(&format!(
        r#"{{"bistro_settings": {{"enabled": true,
              "nodes": {{"levels": ["host", "db"], "node_sources": [
                {{"source": "range_label", "prefs": {{"parent_level": "instance", "start": 1, "end": 2, "format": "h{{i}}"}}}},
                {{"source": "script", "prefs": {{"parent_level": "host", "script": "{}"}}}}]}},
              "resources": {{}}}},
            "bistro_job->j": {{"owner": "me"}}}}"#,
        dbs.display()
    ));
    let status = env.tick_until(
        &[
            "--worker-command",
            task.to_str().unwrap(),
            "--instance-node-name",
            "inst",
        ],
        |s| all_done(s, "j"),
    );
    let mut nodes: Vec<String> = status["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["node"].as_str().unwrap().to_string())
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["h1.db_a", "h1.db_b", "h2.db_a", "h2.db_b"]);
    let paths: Vec<serde_json::Value> = read(&seen)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["path_to_node"].clone())
        .collect();
    assert!(
        paths.contains(&json!(["inst", "h2", "h2.db_b"])),
        "{paths:?}"
    );
}

#[test]
fn add_time_nodes_follow_the_system_time_zone() {
    let env = Env::new();
    env.config(
        r#"{"bistro_settings": {"enabled": true,
              "nodes": {"levels": ["time"], "node_sources": [{"source": "add_time", "prefs": {
                "parent_level": "instance",
                "schedule": [{"lifetime": 14400, "enabled_lifetime": 900, "cron": {
                  "minute": [33, 47, 58], "hour": {"start": 1, "period": 4},
                  "dst_fixes": ["skip", "repeat_use_both"]}}]}}]},
              "resources": {}},
            "bistro_job->j": {"owner": "me"}}"#,
    );
    env.ok(&["init"]);
    // 39200 is Thu Jan 1 1970 05:53:20 EST: 01:58 and 05:33 EST are live but
    // disabled, 05:47 EST is enabled. In UTC the events would be 09:33, 09:47, 09:58.
    let out = env
        .cmd(&["tick", "--dry-run", "--instance-node-name", "inst"])
        .env("TZ", "EST5EDT,M3.2.0,M11.1.0")
        .env("BISTRO_FAKE_NOW", "39200")
        .output()
        .unwrap();
    let out = String::from_utf8(out.stdout).unwrap();
    assert!(out.contains("would start j/inst:38820"), "{out}");
    for disabled in ["inst:37980", "inst:25080"] {
        assert!(
            out.contains(&format!(
                "waiting j/{disabled}: node {disabled} is disabled"
            )),
            "{out}"
        );
    }
    assert!(
        out.contains("tick --dry-run: 1 would start, 0 finished, 0 running"),
        "{out}"
    );
}

#[test]
fn lexicographic_node_order_tries_the_last_name_first() {
    let env = Env::new();
    let ledger = env.path("ledger");
    let task = probe_task(&env, &ledger, "0");
    env.config(
        &config_with_jobs(1, r#""bistro_job->j": {"owner": "me"}"#).replace(
            r#""levels": ["level1", "level2"],"#,
            r#""levels": ["level1", "level2"], "node_order": "lexicographic","#,
        ),
    );
    env.tick_until(&["--worker-command", task.to_str().unwrap()], |s| {
        all_done(s, "j")
    });
    let order: Vec<String> = read(&ledger)
        .lines()
        .filter_map(|l| l.strip_prefix("start "))
        .map(str::to_string)
        .collect();
    assert_eq!(order, ["node22", "node21", "node12", "node11"]);
}

#[test]
fn logs_limit_keeps_the_newest_lines() {
    let env = Env::new();
    let task = run_single(&env, "seq 1 10\necho done > \"$2\"");
    assert_eq!(task["status"], "done");
    let last: Vec<String> = env
        .logs(&["--stream", "stdout", "--limit", "3"])
        .iter()
        .map(|l| l["line"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(last, ["8\n", "9\n", "10\n"]);
    let human = env.ok(&["logs", "--stream", "stdout", "-n", "1"]);
    assert!(human.ends_with("j/node11 stdout: 10\n"), "{human}");
}

#[test]
fn wait_lock_waits_for_the_holder_then_ticks() {
    let env = Env::new();
    env.ok(&["init"]);
    let holder = LockHolder::take(&env);
    let mut tick = env
        .spawn_cmd(&["tick", "--wait-lock", "60", "--worker-command", "true"])
        .spawn()
        .unwrap();
    // It has opened the lock file: from then on it only waits for the lock.
    let lock = env.state().join("lock");
    env.wait_for("the tick to open the lock file", || {
        std::fs::read_dir(format!("/proc/{}/fd", tick.id())).is_ok_and(|fds| {
            fds.flatten()
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == lock))
        })
    });
    assert!(
        tick.try_wait().unwrap().is_none(),
        "the tick must wait, not exit 75"
    );
    drop(holder);
    assert!(tick.wait().unwrap().success());
}

#[test]
fn status_shows_a_finished_run_before_the_next_tick_records_it() {
    let env = Env::new();
    let task = env.script(
        "task.sh",
        "echo '{\"result\": \"incomplete\", \"data\": {\"step\": 1}}' > \"$2\"",
    );
    env.config(&config_with_jobs(
        1,
        r#""bistro_job->j": {"owner": "me", "enabled": true, "filters": {"level2": {"whitelist": ["node11"]}}}"#,
    ));
    env.ok(&["tick", "--worker-command", task.to_str().unwrap()]);
    env.wait_for("the run to finish", || {
        env.task("j", "node11")["status"] == "incomplete"
    });
    let t = env.task("j", "node11");
    assert_eq!(
        (&t["data"], &t["attempts"]),
        (&json!({"step": 1}), &json!(1))
    );
    // Only now does a tick record it (and, being incomplete, start it again).
    env.config(&config_with_jobs(
        1,
        r#""bistro_job->j": {"owner": "me", "enabled": false}"#,
    ));
    let tick: serde_json::Value = serde_json::from_str(&env.ok(&["tick", "--json"])).unwrap();
    assert_eq!(tick["finished"][0]["status"], "incomplete");
}

#[test]
fn the_hourly_example_makes_one_task_per_host_and_recent_hour() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let env = Env::new();
    let config = root.join("examples/configs/hourly.json");
    env.ok(&["init", "--config", config.to_str().unwrap()]);
    env.ok(&["check", "--nodes"]);
    let dry: serde_json::Value =
        serde_json::from_str(&env.ok(&["tick", "--dry-run", "--json", "--worker-command", "true"]))
            .unwrap();
    let started = dry["started"].as_array().unwrap();
    assert_eq!(
        started.len(),
        4,
        "2 hosts x the 2 hourly events younger than enabled_lifetime (7200 s): {dry}"
    );
    assert!(started
        .iter()
        .all(|s| s["node"].as_str().unwrap().starts_with("host")));
}
