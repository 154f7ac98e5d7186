//! Every input from outside has a bound and a clear error past it: resource values,
//! names the file system must hold, a job's config in the task's argv, a node
//! script's output, the config file's size, and keys nothing reads.

use crate::util::*;

/// `bistro check` on `config`: its exit code and everything it printed.
fn check(env: &Env, config: &str) -> (Option<i32>, String) {
    env.config(config);
    let out = env.run(&["check"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

fn with_resources(resources: &str, job: &str) -> String {
    format!(
        r#"{{"bistro_settings": {{"enabled": true,
              "nodes": {{"levels": ["host", "db"], "node_sources": [{{"source": "manual", "prefs": {{"h1": ["n0", "n1"]}}}}]}},
              {resources}}},
            "bistro_job->j": {job}}}"#
    )
}

#[test]
fn negative_and_fractional_resource_values_are_rejected_with_the_key_named() {
    let env = Env::new();
    for (resources, key, why) in [
        (
            r#""resources": {"instance": {"concurrency": {"limit": 3, "default": -5}}}"#,
            "resources.instance.concurrency.default",
            "must not be negative",
        ),
        (
            r#""resources": {"instance": {"concurrency": {"limit": -1, "default": 1}}}"#,
            "resources.instance.concurrency.limit",
            "must not be negative",
        ),
        (
            r#""resources": {"instance": {"concurrency": {"limit": 2.5, "default": 1}}}"#,
            "resources.instance.concurrency.limit",
            "must be an integer",
        ),
        (
            r#""resources": {"worker": {"mem": {"limit": 4, "default": 1}}},
               "worker_resources_override": {"w1": {"mem": -2}}"#,
            "worker_resources_override.w1.mem",
            "must not be negative",
        ),
    ] {
        let (code, text) = check(&env, &with_resources(resources, r#"{"owner": "me"}"#));
        assert_eq!(code, Some(2), "{resources}: {text}");
        assert!(
            text.contains(key) && text.contains(why),
            "{resources}: {text}"
        );
    }
    let (code, text) = check(
        &env,
        &with_resources(
            r#""resources": {"instance": {"concurrency": {"limit": 3, "default": 1}}}"#,
            r#"{"owner": "me", "resources": {"concurrency": 0.5}}"#,
        ),
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("resources.concurrency"), "{text}");
}

#[test]
fn a_job_name_too_long_for_a_directory_is_a_job_error_and_never_runs() {
    let env = Env::new();
    let long = "j".repeat(300);
    let config = config_with_jobs(
        2,
        &format!(r#""bistro_job->{long}": {{"owner": "me"}}, "bistro_job->ok": {{"owner": "me"}}"#),
    );
    let (code, text) = check(&env, &config);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("at most 255"), "{text}");
    let task = env.script("task.sh", "echo done > \"$2\"");
    let status = env.tick_until(&["--worker-command", task.to_str().unwrap()], |s| {
        all_done(s, "ok")
    });
    assert_eq!(count(&status, &long, "done"), 0, "{status}");
    assert_eq!(count(&status, &long, "running"), 0, "{status}");
}

#[test]
fn a_job_config_too_large_for_the_tasks_argv_is_a_job_error_that_stores_nothing() {
    let env = Env::new();
    let big = "x".repeat(200 << 10);
    let config = config_with_jobs(
        2,
        &format!(r#""bistro_job->big": {{"owner": "me", "config": {{"blob": "{big}"}}}}"#),
    );
    let (code, text) = check(&env, &config);
    assert_eq!(code, Some(2));
    assert!(
        text.contains("bistro_job->big") && text.contains("config") && text.contains("too large"),
        "{}",
        &text[..text.len().min(2000)]
    );
    assert!(
        text.len() < 10_000,
        "the error quotes the config: {} bytes",
        text.len()
    );
    env.run(&["tick", "--worker-command", "true"]);
    env.run(&["tick", "--worker-command", "true"]);
    let logs = std::fs::metadata(env.state().join("task_logs.sql3"))
        .unwrap()
        .len();
    assert!(logs < 1 << 20, "task log database grew to {logs} bytes");
    assert_eq!(count(&env.status_json(&[]), "big", "running"), 0);
}

#[test]
fn a_config_file_larger_than_the_bound_is_refused_with_its_size() {
    let env = Env::new();
    let padding = " ".repeat(65 << 20);
    let (code, text) = check(
        &env,
        &format!(
            "{}{padding}",
            config_with_jobs(1, r#""bistro_job->j": {"owner": "me"}"#)
        ),
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("larger than 64 MiB"), "{text}");
}

#[test]
fn a_node_script_printing_without_end_is_killed_at_the_bound() {
    let env = Env::new();
    let script = env.script("nodes.sh", "exec yes nodename");
    env.config(&format!(
        r#"{{"bistro_settings": {{"enabled": true,
              "nodes": {{"levels": ["db"], "node_sources": [{{"source": "script",
                 "prefs": {{"parent_level": "instance", "script": "{}", "timeout_sec": 50}}}}]}},
              "resources": {{}}}},
            "bistro_job->j": {{"owner": "me"}}}}"#,
        script.display()
    ));
    let out = env.run(&["tick", "--worker-command", "true"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("more than 64 MiB"), "{stderr}");
}

#[test]
fn node_names_longer_than_a_file_name_are_refused() {
    let env = Env::new();
    let long = "n".repeat(300);
    let script = env.script("nodes.sh", &format!("echo short; echo {long}"));
    env.config(&format!(
        r#"{{"bistro_settings": {{"enabled": true,
              "nodes": {{"levels": ["db"], "node_sources": [{{"source": "script",
                 "prefs": {{"parent_level": "instance", "script": "{}"}}}}]}},
              "resources": {{}}}},
            "bistro_job->j": {{"owner": "me"}}}}"#,
        script.display()
    ));
    let out = env.run(&["tick", "--worker-command", "true"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("300 bytes long") && stderr.contains("at most 255"),
        "{stderr}"
    );
}

#[test]
fn unknown_keys_get_the_closest_known_one_and_bistros_spellings_ours() {
    let env = Env::new();
    let config = r#"{"bistro_settings": {"enabled": true,
          "nodes": {"levels": ["db"], "node_sources": [{"source": "manual", "prefs": {"instance": ["n"]}}]},
          "resources": {}, "kill_subproces": {}, "worker_resources_overrides": {}},
        "bistro_job->j": {"owner": "me", "kill_request": {"method": "kill"}}}"#;
    let (code, text) = check(&env, config);
    assert_eq!(code, Some(0), "unknown keys are warnings: {text}");
    for expected in [
        "\"kill_subproces\" is ignored; did you mean kill_subprocess?",
        "\"worker_resources_overrides\" is ignored; Bistro's docs spell it so, but the key is worker_resources_override",
        "bistro_job->j: unknown key \"kill_request\" is ignored; Bistro's docs spell it so, but the key is kill_subprocess",
    ] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
    let out = env.run(&["check", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["warnings"].as_array().unwrap().len(), 3, "{v}");
}
