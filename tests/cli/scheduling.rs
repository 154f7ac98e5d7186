//! Scheduling fidelity on a three-level model (instance -> host -> db) made by a
//! `range_label` source and a `script` source, with instance- and host-level
//! resources: limits, priorities, dependencies, filters, forgiveness, killing, and
//! `bistro why`.

use crate::util::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Two hosts (`range_label`), two dbs each (`script`): host1.a, host1.b, host2.a,
/// host2.b. Each host has one `host_slots`; the instance has `slots` slots.
fn three_levels(env: &Env, slots: u32, extra_settings: &str, jobs: &str) {
    let dbs = env.script("dbs.sh", "echo \"$1.a\"\necho \"$1.b\"");
    env.config(&format!(
        r#"{{
  "bistro_settings": {{
    "enabled": true, {extra_settings}
    "nodes": {{"levels": ["host", "db"], "node_order": "lexicographic", "node_sources": [
      {{"source": "range_label", "prefs": {{"parent_level": "instance", "start": 1, "end": 2, "format": "host{{i}}"}}}},
      {{"source": "script", "prefs": {{"parent_level": "host", "script": "{dbs}"}}}}]}},
    "resources": {{"instance": {{"slots": {{"limit": {slots}, "default": 1}}}},
                  "host": {{"host_slots": {{"limit": 1, "default": 1}}}}}},
    "backoff": [1, "fail"]
  }},
  {jobs}
}}"#,
        dbs = dbs.display()
    ));
    env.ok(&["init"]);
}

/// A task script taking the job name as its first argument (jobs set `"command":
/// ["TASK", "JOB"]`): holds its host's lock while it runs (recording `overlap HOST`
/// if another task holds it), logs `start JOB NODE` / `end JOB NODE`, waits until
/// the file `release` exists (or the test's directory is gone), and reports done.
fn host_probe(env: &Env) -> (PathBuf, PathBuf) {
    let ledger = env.path("ledger");
    let locks = env.path("host-locks");
    std::fs::create_dir_all(&locks).unwrap();
    let task = env.script(
        "task.sh",
        &format!(
            "host=${{2%%.*}}\nexec 9>>{locks}/$host\nflock -n 9 || echo \"overlap $host\" >> {l}\necho \"start $1 $2\" >> {l}\nwhile [ ! -e {release} ] && [ -d {dir} ]; do sleep 0.05; done\necho \"end $1 $2\" >> {l}\necho done > \"$3\"",
            locks = locks.display(),
            l = ledger.display(),
            release = env.path("release").display(),
            dir = env.dir.path().display()
        ),
    );
    (task, ledger)
}

fn command(task: &Path, job: &str) -> String {
    format!(r#"["{}", "{job}"]"#, task.display())
}

fn ledger_lines(ledger: &Path) -> Vec<String> {
    read(ledger).lines().map(str::to_string).collect()
}

fn running(status: &Value) -> Vec<(String, String)> {
    status["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "running")
        .map(|t| {
            (
                t["job"].as_str().unwrap().to_string(),
                t["node"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn why(env: &Env, job: &str, node: &str) -> Value {
    serde_json::from_str(&env.ok(&["why", job, node, "--json"])).unwrap()
}

#[test]
fn host_limits_hold_and_ranked_priority_starts_the_higher_job_first() {
    let env = Env::new();
    let (task, ledger) = host_probe(&env);
    three_levels(
        &env,
        4,
        r#""scheduler": "ranked_priority","#,
        &format!(
            r#""bistro_job->low": {{"owner": "me", "priority": 1, "command": {low}}},
               "bistro_job->high": {{"owner": "me", "priority": 10, "command": {high}}}"#,
            low = command(&task, "low"),
            high = command(&task, "high")
        ),
    );
    env.ok(&["tick"]);
    let status = env.status_json(&["--tasks"]);
    let mut started = running(&status);
    started.sort();
    let expected = [("high", "host1.b"), ("high", "host2.b")].map(|(j, n)| (j.into(), n.into()));
    assert_eq!(
        started, expected,
        "one task per host (host_slots limit 1), of the higher-priority job, last name first"
    );
    let waiting = why(&env, "high", "host1.a");
    assert_eq!(waiting["reason"], "resources", "{waiting}");
    assert_eq!(
        (
            &waiting["resource"],
            &waiting["resource_node"],
            &waiting["used"],
            &waiting["limit"]
        ),
        (
            &Value::from("host_slots"),
            &Value::from("host1"),
            &Value::from(1),
            &Value::from(1)
        )
    );
    assert_eq!(waiting["holders"], serde_json::json!(["high/host1.b"]));
    let busy = why(&env, "high", "host1.b");
    assert_eq!(busy["state"], "running", "{busy}");

    std::fs::write(env.path("release"), "").unwrap();
    env.tick_until(&[], |s| all_done(s, "low") && all_done(s, "high"));
    let lines = ledger_lines(&ledger);
    assert!(!lines.iter().any(|l| l.starts_with("overlap")), "{lines:?}");
    // A host's slot goes to a high task while one is left for it; another host may
    // already run low tasks meanwhile.
    for host in ["host1", "host2"] {
        let starts = |job: &str| {
            let prefix = format!("start {job} {host}.");
            lines
                .iter()
                .enumerate()
                .filter(|(_, l)| l.starts_with(&prefix))
                .map(|(i, _)| i)
                .collect::<Vec<_>>()
        };
        let (high, low) = (starts("high"), starts("low"));
        assert!(
            high.iter().max() < low.iter().min(),
            "on {host}, every high task starts before any low task: {lines:?}"
        );
    }
}

#[test]
fn dependencies_order_jobs_per_node_filters_exclude_and_all_nodes_gates_wait() {
    let env = Env::new();
    let (task, ledger) = host_probe(&env);
    std::fs::write(env.path("release"), "").unwrap();
    three_levels(
        &env,
        4,
        "",
        &format!(
            r#""bistro_job->extract": {{"owner": "me", "command": {extract},
                 "filters": {{"db": {{"blacklist": ["host1.b"]}}}}}},
               "bistro_job->load": {{"owner": "me", "command": {load}, "depends_on": ["extract"]}},
               "bistro_job->report": {{"owner": "me", "command": {report}, "level_for_tasks": "host",
                 "resources": {{"host_slots": 0}},
                 "run_only_after_all_nodes_are_done_for": ["extract"]}}"#,
            extract = command(&task, "extract"),
            load = command(&task, "load"),
            report = command(&task, "report")
        ),
    );
    let filtered = why(&env, "extract", "host1.b");
    assert_eq!(
        (
            &filtered["reason"],
            &filtered["filtered_node"],
            &filtered["filter"]
        ),
        (
            &Value::from("filtered"),
            &Value::from("host1.b"),
            &Value::from("blacklist")
        ),
        "{filtered}"
    );
    let dependent = why(&env, "load", "host2.a");
    assert_eq!(
        (&dependent["reason"], &dependent["waits_for_job"]),
        (&Value::from("depends_on"), &Value::from("extract")),
        "{dependent}"
    );
    let gated = why(&env, "report", "host1");
    assert_eq!(
        gated["reason"], "run_only_after_all_nodes_are_done_for",
        "{gated}"
    );

    let status = env.tick_until(&[], |s| {
        count(s, "report", "done") == 2 && count(s, "load", "done") == 3
    });
    assert_eq!(
        count(&status, "extract", "done"),
        3,
        "the filtered node never runs: {status}"
    );
    let lines = ledger_lines(&ledger);
    assert!(
        !lines.iter().any(|l| l.contains("extract host1.b")),
        "{lines:?}"
    );
    let at = |what: &str| {
        lines
            .iter()
            .position(|l| l == what)
            .unwrap_or_else(|| panic!("{what} not in {lines:?}"))
    };
    for db in ["host1.a", "host2.a", "host2.b"] {
        assert!(at(&format!("end extract {db}")) < at(&format!("start load {db}")));
    }
    let last_extract = lines
        .iter()
        .rposition(|l| l.starts_with("end extract"))
        .unwrap();
    let first_report = lines
        .iter()
        .position(|l| l.starts_with("start report"))
        .unwrap();
    assert!(
        last_extract < first_report,
        "report waits for every extract: {lines:?}"
    );
    let blocked = why(&env, "load", "host1.b");
    assert_eq!(blocked["reason"], "depends_on", "{blocked}");
    assert_eq!(
        blocked["blocked_by"],
        "extract/host1.b: the job's db filter (blacklist) excludes node host1.b",
        "a dependency that can never finish says why"
    );
}

#[test]
fn a_forgiven_failure_runs_again_and_the_forgiveness_is_durable() {
    let env = Env::new();
    let tries = env.path("tries");
    let task = env.script(
        "flaky.sh",
        &format!(
            "echo x >> {t}\nif [ $(wc -l < {t}) -ge 2 ]; then echo done > \"$3\"; else echo failed > \"$3\"; fi",
            t = tries.display()
        ),
    );
    three_levels(
        &env,
        4,
        "",
        &format!(
            r#""bistro_job->flaky": {{"owner": "me", "command": {cmd},
                 "filters": {{"db": {{"whitelist": ["host1.a"]}}}}}}"#,
            cmd = command(&task, "flaky")
        ),
    );
    env.tick_until(&[], |s| count(s, "flaky", "failed") == 1);
    let failed = why(&env, "flaky", "host1.a");
    assert_eq!(
        (&failed["reason"], &failed["status"]["status"]),
        (&Value::from("failed"), &Value::from("failed")),
        "{failed}"
    );
    env.ok(&["tick"]);
    assert_eq!(
        read(&tries).lines().count(),
        1,
        "a failed task is not retried"
    );

    let out = env.ok(&["forgive", "flaky"]);
    assert!(out.contains("forgave 1 task of flaky"), "{out}");
    assert_eq!(
        why(&env, "flaky", "host1.a")["state"],
        "would_start",
        "forgiveness is stored, so a new process sees it"
    );
    env.tick_until(&[], |s| count(s, "flaky", "done") == 1);
    assert_eq!(read(&tries).lines().count(), 2);

    let unknown = env.run(&["forgive", "nosuch"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("Unknown job nosuch"));
}

/// A task that starts a background child in its process group, records both pids,
/// and runs until killed (or its test directory is gone) without writing a status.
fn sleeper(env: &Env) -> PathBuf {
    env.script(
        "sleeper.sh",
        &format!(
            "(while [ -d {dir} ]; do sleep 0.1; done) &\necho \"$$ $!\" > {pids}\nwait",
            pids = env.path("pids").display(),
            dir = env.dir.path().display()
        ),
    )
}

fn task_pids(env: &Env) -> Vec<i32> {
    read(&env.path("pids"))
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

#[test]
fn an_orphan_of_a_disabled_job_is_killed_with_its_process_group() {
    let env = Env::new();
    let task = sleeper(&env);
    let job = |extra: &str| {
        format!(
            r#""bistro_job->sleepy": {{"owner": "me", "command": {cmd}, {extra}
                 "kill_subprocess": {{"method": "term"}},
                 "filters": {{"db": {{"whitelist": ["host2.a"]}}}}}}"#,
            cmd = command(&task, "sleepy")
        )
    };
    three_levels(&env, 4, "", &job(""));
    env.ok(&["tick"]);
    env.wait_for("the task to record its pids", || task_pids(&env).len() == 2);
    let pids = task_pids(&env);

    three_levels(
        &env,
        4,
        "",
        &job(r#""enabled": false, "kill_orphan_tasks_after_sec": 0,"#),
    );
    let out = env.run(&["tick"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("killed orphan sleepy/host2.a: its job is disabled"),
        "{stderr}"
    );
    env.wait_for("the task's whole group to die", || {
        pids.iter().all(|&p| !alive(p))
    });
    let status = env.tick_until(&[], |s| count(s, "sleepy", "running") == 0);
    let t = status["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["node"] == "host2.a")
        .unwrap()
        .clone();
    assert_eq!(t["status"], "incomplete", "{t}");
    assert_eq!(t["data"]["exception"], "Task killed, no status returned");
    let killed: Vec<Value> = env
        .logs(&["--stream", "statuses"])
        .iter()
        .map(|e| serde_json::from_str(e["line"].as_str().unwrap()).unwrap())
        .filter(|e: &Value| e["event"] == "orphan_killed")
        .collect();
    // With a delay of 0, every tick kills again while the task is still dying.
    assert!(
        !killed.is_empty() && killed.iter().all(|e| e["message"] == "its job is disabled"),
        "{killed:?}"
    );
}

#[test]
fn bistro_kill_ends_a_running_tasks_process_group_and_refuses_what_is_not_running() {
    let env = Env::new();
    let task = sleeper(&env);
    three_levels(
        &env,
        4,
        "",
        &format!(
            r#""bistro_job->sleepy": {{"owner": "me", "command": {cmd},
                 "kill_subprocess": {{"method": "term_wait_kill", "kill_wait_ms": 100}},
                 "backoff": [3600, "fail"],
                 "filters": {{"db": {{"whitelist": ["host1.a"]}}}}}}"#,
            cmd = command(&task, "sleepy")
        ),
    );
    env.ok(&["tick"]);
    env.wait_for("the task to record its pids", || task_pids(&env).len() == 2);
    let pids = task_pids(&env);

    let not_running = env.run(&["kill", "sleepy", "host2.a"]);
    assert_eq!(not_running.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&not_running.stderr)
            .contains("Unknown running task sleepy, host2.a"),
        "{not_running:?}"
    );
    assert_eq!(
        env.run(&["kill", "nosuch", "host1.a"]).status.code(),
        Some(2)
    );

    let out = env.ok(&["kill", "sleepy", "host1.a"]);
    assert!(out.contains("signaled sleepy/host1.a"), "{out}");
    env.wait_for("the task's whole group to die", || {
        pids.iter().all(|&p| !alive(p))
    });
    env.tick_until(&[], |s| count(s, "sleepy", "running") == 0);
    let t = env.task("sleepy", "host1.a");
    assert_eq!(t["status"], "incomplete", "{t}");
}

#[test]
fn node_scripts_rerun_only_after_nodes_update_ms_or_a_change_of_sources() {
    let env = Env::new();
    let runs = env.path("runs");
    let dbs = env.script(
        "dbs.sh",
        &format!("echo run >> {}\necho \"$1.a\"", runs.display()),
    );
    let config = |end: u32| {
        format!(
            r#"{{"bistro_settings": {{"enabled": true, "nodes": {{"levels": ["host", "db"], "node_sources": [
                 {{"source": "range_label", "prefs": {{"parent_level": "instance", "start": 1, "end": {end}, "format": "host{{i}}"}}}},
                 {{"source": "script", "prefs": {{"parent_level": "host", "script": "{dbs}"}}}}]}},
                 "resources": {{}}}},
               "bistro_job->j": {{"owner": "me", "enabled": false}}}}"#,
            dbs = dbs.display()
        )
    };
    env.config(&config(1));
    let script_runs = || read(&runs).lines().count();
    env.ok(&["tick", "--worker-command", "true"]);
    assert_eq!(script_runs(), 1);
    env.ok(&["tick"]);
    assert_eq!(
        script_runs(),
        1,
        "the nodes fetched a moment ago are reused"
    );
    env.ok(&["tick", "--nodes-update-ms", "0"]);
    assert_eq!(script_runs(), 2, "a zero period refetches every tick");
    env.config(&config(2));
    env.ok(&["tick"]);
    assert_eq!(
        script_runs(),
        4,
        "new node sources refetch at once (one run per host)"
    );
    let why = env.run(&["why", "j", "host2.a", "--json"]);
    assert!(why.status.success(), "{why:?}");
    assert_eq!(script_runs(), 4, "why reuses the tick's nodes");
}

#[test]
fn why_names_backoff_deadlines_disabled_jobs_and_nodes_and_the_instance_limit() {
    let env = Env::new();
    let (task, _ledger) = host_probe(&env);
    let failing = env.script("fail.sh", "echo error_backoff > \"$3\"");
    three_levels(
        &env,
        1,
        "",
        &format!(
            r#""bistro_job->holder": {{"owner": "me", "command": {holder},
                 "filters": {{"db": {{"whitelist": ["host2.b"]}}}}}},
               "bistro_job->flaky": {{"owner": "me", "command": {flaky}, "backoff": [3600, "fail"],
                 "resources": {{"slots": 0, "host_slots": 0}},
                 "filters": {{"db": {{"whitelist": ["host1.a"]}}}}}},
               "bistro_job->off": {{"owner": "me", "enabled": false}}"#,
            holder = command(&task, "holder"),
            flaky = command(&failing, "flaky")
        ),
    );
    env.tick_until(&["--instance-node-name", "inst"], |s| {
        count(s, "holder", "running") == 1 && count(s, "flaky", "error_backoff") == 1
    });
    let backoff = why(&env, "flaky", "host1.a");
    let failed_at = backoff["status"]["time"].as_i64().unwrap();
    assert_eq!(
        (&backoff["reason"], backoff["backoff_until"].as_i64()),
        (&Value::from("backoff"), Some(failed_at + 3600)),
        "{backoff}"
    );
    assert_eq!(backoff["status"]["status"], "error_backoff");
    assert_eq!(why(&env, "off", "host1.a")["reason"], "job_disabled");

    // The instance has one slot and holder/host2.b takes it.
    std::fs::write(
        env.state().join("config.json"),
        read(&env.state().join("config.json")).replace(
            r#"{"db": {"whitelist": ["host2.b"]}}"#,
            r#"{"db": {"whitelist": ["host2.b", "host1.b"]}}"#,
        ),
    )
    .unwrap();
    let short = why(&env, "holder", "host1.b");
    assert_eq!(
        (
            &short["reason"],
            &short["resource"],
            &short["resource_node"],
            &short["level"]
        ),
        (
            &Value::from("resources"),
            &Value::from("slots"),
            &Value::from("inst"),
            &Value::from("instance")
        ),
        "{short}"
    );
    assert_eq!(
        (&short["used"], &short["limit"]),
        (&Value::from(1), &Value::from(1))
    );
    assert_eq!(short["holders"], serde_json::json!(["holder/host2.b"]));
}

#[test]
fn why_explains_the_eligible_replica_of_a_node_name() {
    let env = Env::new();
    let (task, _ledger) = host_probe(&env);
    env.config(&format!(
        r#"{{"bistro_settings": {{"enabled": true, "scheduler": "ranked_priority",
             "nodes": {{"levels": ["host", "db"], "node_sources": [{{"source": "manual", "prefs":
               {{"host1": {{"children": ["db1"], "disabled": true}}, "host2": ["db1", "db2"]}}}}]}},
             "resources": {{"host": {{"host_slots": {{"limit": 1, "default": 1}}}}}}}},
           "bistro_job->hold": {{"owner": "me", "priority": 10, "command": {hold}, "filters": {{"db": {{"whitelist": ["db2"]}}}}}},
           "bistro_job->j": {{"owner": "me", "command": {j}, "filters": {{"db": {{"whitelist": ["db1"]}}}}}}}}"#,
        hold = command(&task, "hold"),
        j = command(&task, "j")
    ));
    env.ok(&["tick", "--instance-node-name", "inst"]);
    assert_eq!(
        running(&env.status_json(&["--tasks"])),
        [("hold".to_string(), "db2".to_string())],
        "ranked priority gives host2's slot to hold"
    );
    let answer = why(&env, "j", "db1");
    assert_eq!(
        (&answer["reason"], &answer["resource_node"]),
        (&Value::from("resources"), &Value::from("host2")),
        "the replica under disabled host1 says less than the one under host2: {answer}"
    );
    assert_eq!(answer["holders"], serde_json::json!(["hold/db2"]));
}

#[test]
fn kill_and_forgive_read_the_config_given_with_config() {
    let env = Env::new();
    env.config(&config_with_jobs(1, r#""bistro_job->j": {"owner": "me"}"#));
    env.ok(&["init"]);
    let other = env.path("other.json");
    std::fs::write(
        &other,
        config_with_jobs(1, r#""bistro_job->only_there": {"owner": "me"}"#),
    )
    .unwrap();
    let default = env.run(&["forgive", "only_there"]);
    assert_eq!(default.status.code(), Some(2), "{default:?}");
    let given = env.ok(&["--config", other.to_str().unwrap(), "forgive", "only_there"]);
    assert!(given.contains("forgave 0 tasks of only_there"), "{given}");
    let kill = env.run(&[
        "--config",
        other.to_str().unwrap(),
        "kill",
        "only_there",
        "node11",
    ]);
    assert!(
        String::from_utf8_lossy(&kill.stderr).contains("Unknown running task only_there, node11"),
        "{kill:?}"
    );
}

#[test]
fn why_and_dry_runs_name_a_missing_command_instead_of_promising_a_start() {
    let env = Env::new();
    env.config(&config_with_jobs(4, r#""bistro_job->j": {"owner": "me"}"#));
    env.ok(&["init"]);
    let answer = why(&env, "j", "node11");
    assert_eq!(
        (&answer["state"], &answer["reason"]),
        (&Value::from("waiting"), &Value::from("no_command")),
        "{answer}"
    );
    let dry = env.run(&["tick", "--dry-run"]);
    assert_eq!(
        dry.status.code(),
        Some(2),
        "as the real tick would: {dry:?}"
    );
    assert!(String::from_utf8_lossy(&dry.stderr).contains("--worker-command"));

    env.ok(&["tick", "--worker-command", "true"]);
    let remembered = why(&env, "j", "node11");
    assert_ne!(
        remembered["reason"], "no_command",
        "a real tick remembers its --worker-command: {remembered}"
    );
}

#[test]
fn status_counts_filtered_and_disabled_tasks_apart_and_check_ignores_them() {
    let env = Env::new();
    let task = env.script("task.sh", "echo done > \"$3\"");
    three_levels(
        &env,
        4,
        "",
        &format!(
            r#""bistro_job->j": {{"owner": "me", "command": {cmd},
                 "filters": {{"db": {{"blacklist": ["host2.b"]}}}}}}"#,
            cmd = command(&task, "j")
        ),
    );
    let status = env.tick_until(&[], |s| count(s, "j", "done") == 3);
    assert_eq!(
        (
            count(&status, "j", "not_started"),
            count(&status, "j", "excluded")
        ),
        (1, 1),
        "{status}"
    );
    assert_eq!(env.run(&["status", "--check"]).status.code(), Some(0));
    let table = env.ok(&["status"]);
    assert!(table.contains("100%"), "{table}");
}

#[test]
fn status_lists_tasks_still_running_for_a_deleted_job_and_kill_ends_them() {
    let env = Env::new();
    let task = sleeper(&env);
    let job = format!(
        r#""bistro_job->sleepy": {{"owner": "me", "command": {cmd},
             "filters": {{"db": {{"whitelist": ["host1.a"]}}}}}}"#,
        cmd = command(&task, "sleepy")
    );
    three_levels(&env, 4, "", &job);
    env.ok(&["tick"]);
    three_levels(
        &env,
        4,
        "",
        r#""bistro_job->other": {"owner": "me", "enabled": false}"#,
    );
    env.ok(&["tick"]);
    let status = env.status_json(&[]);
    assert_eq!(status["orphans"].as_array().unwrap().len(), 1, "{status}");
    assert_eq!(
        (&status["orphans"][0]["job"], &status["orphans"][0]["node"]),
        (&Value::from("sleepy"), &Value::from("host1.a"))
    );
    let table = env.ok(&["status"]);
    assert!(
        table.contains("still running, though its job is not in the config: sleepy/host1.a"),
        "{table}"
    );
    env.wait_for("the task to record its pids", || task_pids(&env).len() == 2);
    let pids = task_pids(&env);
    env.ok(&["kill", "sleepy", "host1.a"]);
    env.wait_for("the deleted job's task to die", || {
        pids.iter().all(|&p| !alive(p))
    });
    env.tick_until(&[], |s| s["orphans"].as_array().unwrap().is_empty());
}

#[test]
fn why_refuses_an_unknown_job_even_while_the_scheduler_is_disabled() {
    let env = Env::new();
    env.config(
        &config_with_jobs(1, r#""bistro_job->j": {"owner": "me"}"#)
            .replace("\"enabled\": true", "\"enabled\": false"),
    );
    env.ok(&["init"]);
    assert_eq!(why(&env, "j", "node11")["reason"], "scheduler_disabled");
    let unknown = env.run(&["why", "nosuch", "node11"]);
    assert_eq!(unknown.status.code(), Some(2), "{unknown:?}");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("Unknown job nosuch"));
}
