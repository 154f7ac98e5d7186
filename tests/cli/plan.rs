//! `bistro plan`: a config edit compared with the config in force before a scheduler
//! picks it up, with exit codes for hooks: 0 no change, 1 changes, 2 problems.

use crate::util::*;
use serde_json::Value;

/// The seed's nodes (plus `extra_nodes` under node2), `settings` keys and `jobs`.
fn config(extra_nodes: &str, settings: &str, jobs: &str) -> String {
    format!(
        r#"{{
  "bistro_settings": {{
    "enabled": true, {settings}
    "nodes": {{"levels": ["level1", "level2"], "node_sources": [{{"source": "manual",
      "prefs": {{"node1": ["node11", "node12"], "node2": ["node21", "node22"{extra_nodes}]}}}}]}},
    "resources": {{"instance": {{"concurrency": {{"limit": 12, "default": 1}}}}}}
  }},
  {jobs}
}}"#
    )
}

/// A task that waits for the file `go`, then reports done.
fn gated_task(env: &Env) -> String {
    env.script(
        "task.sh",
        &format!(
            "while [ ! -e {} ]; do sleep 0.02; done\necho done > \"$2\"",
            env.path("go").display()
        ),
    )
    .display()
    .to_string()
}

fn plan(env: &Env, file: &str) -> (Option<i32>, Value) {
    let out = env.run(&["--config", file, "plan", "--json"]);
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code(), json)
}

#[test]
fn plan_lists_changed_keys_nodes_starts_and_orphans_and_exits_by_what_it_found() {
    let env = Env::new();
    let task = gated_task(&env);
    let jobs =
        r#""bistro_job->a": {"owner": "me", "priority": 1}, "bistro_job->b": {"owner": "me"}"#;
    let in_force = config("", r#""kill_orphan_tasks_after_sec": 60,"#, jobs);
    env.config(&in_force);
    env.ok(&["tick", "--worker-command", &task]);
    assert_eq!(count(&env.status_json(&[]), "b", "running"), 4);

    // The same file: nothing changes (formatting aside).
    let same = env.path("same.json");
    std::fs::write(&same, in_force.replace('\n', " ")).unwrap();
    let (code, report) = plan(&env, same.to_str().unwrap());
    assert_eq!(code, Some(0), "{report}");
    let text = env.run(&["--config", same.to_str().unwrap(), "plan"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("no change"));

    // b removed, c added, a's priority changed, a node added, a settings key added.
    let edited = env.path("edited.json");
    std::fs::write(
        &edited,
        config(
            r#", "node23""#,
            r#""kill_orphan_tasks_after_sec": 60, "idle_wait": 2,"#,
            r#""bistro_job->a": {"owner": "me", "priority": 2}, "bistro_job->c": {"owner": "me"}"#,
        ),
    )
    .unwrap();
    let (code, report) = plan(&env, edited.to_str().unwrap());
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["settings"][0]["key"], "idle_wait", "{report}");
    assert_eq!(report["settings"][0]["after"], 2);
    assert_eq!(report["jobs"]["added"], serde_json::json!(["c"]));
    assert_eq!(report["jobs"]["removed"], serde_json::json!(["b"]));
    assert_eq!(report["jobs"]["changed"][0]["job"], "a");
    assert_eq!(report["jobs"]["changed"][0]["keys"][0]["key"], "priority");
    assert_eq!(report["nodes"]["added"], serde_json::json!(["node23"]));
    // 4 free slots (12 less the 8 running, orphans included): round robin gives a
    // its one new node, and c the rest.
    let starts = report["would_start"].as_array().unwrap();
    assert_eq!(starts.len(), 4, "{report}");
    assert!(starts.contains(&serde_json::json!({"job": "a", "node": "node23"})));
    let orphans = report["orphans"].as_array().unwrap();
    assert_eq!(orphans.len(), 4, "{report}");
    let now = report_now(&env);
    for o in orphans {
        assert_eq!(o["job"], "b");
        assert_eq!(o["reason"], "its job was deleted");
        let at = o["kill_at"].as_i64().unwrap();
        assert!((now + 55..=now + 65).contains(&at), "{o} at {now}");
    }
    let text = env.run(&["--config", edited.to_str().unwrap(), "plan"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("job changed: a: priority: 1 -> 2"), "{text}");
    assert!(
        text.contains("orphan: b/node11 (its job was deleted): killed at"),
        "{text}"
    );

    // The plan wrote nothing: the scheduler still runs the old config.
    assert_eq!(count(&env.status_json(&[]), "b", "running"), 4);

    // A job error and an unusable file are problems: exit 2.
    let bad_job = env.path("bad-job.json");
    std::fs::write(
        &bad_job,
        config(
            "",
            "",
            r#""bistro_job->a": {"owner": "me", "task_timeout_sec": "x"}"#,
        ),
    )
    .unwrap();
    let (code, report) = plan(&env, bad_job.to_str().unwrap());
    assert_eq!(code, Some(2), "{report}");
    assert_eq!(
        report["problems"][0]["where"],
        "bistro_job->a: task_timeout_sec"
    );
    assert_eq!(report["unusable"], false);
    let broken = env.path("broken.json");
    std::fs::write(&broken, "{\"bistro_settings\": ").unwrap();
    let (code, report) = plan(&env, broken.to_str().unwrap());
    assert_eq!(code, Some(2), "{report}");
    assert_eq!(report["unusable"], true);
    // Let the gated tasks end before the scratch dir goes, or they wait for ever.
    std::fs::write(env.path("go"), "").unwrap();
    env.tick_until(&["--worker-command", &task], |s| {
        all_done(s, "a") && all_done(s, "b")
    });
}

/// Epoch seconds now, as the binary sees them.
fn report_now(env: &Env) -> i64 {
    env.status_json(&[])["now"].as_i64().unwrap()
}

#[test]
fn plan_without_a_state_dir_checks_the_file_and_lists_every_job_as_added() {
    let env = Env::new();
    let file = env.path("config.json");
    std::fs::write(&file, config("", "", r#""bistro_job->a": {"owner": "me"}"#)).unwrap();
    let (code, report) = plan(&env, file.to_str().unwrap());
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["in_force"], false);
    assert_eq!(report["jobs"]["added"], serde_json::json!(["a"]));
    assert_eq!(report["pass"], false);
    assert!(!env.state().exists(), "plan creates no state dir");
}
