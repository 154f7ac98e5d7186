//! Broken, missing and half-written configs: a clear error, the last good config kept.

use crate::util::*;

const GOOD_JOB: &str = r#""bistro_job->j": {"owner": "me"}"#;

fn done_task(env: &Env) -> String {
    env.script("task.sh", "echo done > \"$2\"")
        .display()
        .to_string()
}

#[test]
fn a_half_written_config_keeps_the_last_good_one_and_exits_2() {
    let env = Env::new();
    let task = done_task(&env);
    let good = config_with_jobs(2, GOOD_JOB);
    env.config(&good);
    env.ok(&["tick", "--worker-command", &task]);
    env.config(&good[..57]);
    let out = env.run(&["tick"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = env.state().join("config.json");
    assert!(
        stderr.contains(&format!("{}:", file.display())),
        "names the file: {stderr}"
    );
    assert!(stderr.contains("invalid JSON"), "{stderr}");
    assert!(stderr.contains("last good config"), "{stderr}");
    // Scheduling goes on with the last good config until every task is done.
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let status = env.status_json(&[]);
        assert!(status["scheduler"]["config_error"]
            .as_str()
            .unwrap()
            .contains("invalid JSON"));
        if all_done(&status, "j") {
            break;
        }
        assert_eq!(env.run(&["tick"]).status.code(), Some(2));
        assert!(
            std::time::Instant::now() < deadline,
            "tasks never finished: {status}"
        );
    }
    // The file is left untouched.
    assert_eq!(read(&file), good[..57]);
}

#[test]
fn a_missing_config_is_reported_with_its_path() {
    let env = Env::new();
    let out = env.run(&["tick", "--config", "nope.json"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nope.json") && stderr.contains("cannot read"),
        "{stderr}"
    );
}

#[test]
fn check_reports_json_syntax_errors_with_line_and_column() {
    let env = Env::new();
    env.config("{\n  \"bistro_settings\": {,\n}");
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("config.json:2:23: invalid JSON"),
        "{stdout}"
    );
}

#[test]
fn an_unknown_node_source_is_a_settings_error_naming_the_key() {
    let env = Env::new();
    env.config(&config_with_jobs(1, GOOD_JOB).replace("\"manual\"", "\"bogus\""));
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("bistro_settings.nodes.node_sources.0.source: Invalid node source: bogus"),
        "{stdout}"
    );
    assert_eq!(env.run(&["tick"]).status.code(), Some(2));
}

#[test]
fn a_failing_node_script_starts_nothing_and_exits_1() {
    let env = Env::new();
    let marker = env.path("ran");
    let task = env.script(
        "task.sh",
        &format!("touch {}\necho done > \"$2\"", marker.display()),
    );
    let script = env.script("nodes.sh", "echo partial; exit 4");
    env.config(&format!(
        r#"{{"bistro_settings": {{"enabled": true, "nodes": {{"levels": ["db"], "node_sources": [
            {{"source": "script", "prefs": {{"parent_level": "instance", "script": "{}"}}}}]}}, "resources": {{}}}},
          {GOOD_JOB}}}"#,
        script.display()
    ));
    let out = env.run(&["tick", "--worker-command", task.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot fetch nodes")
            && stderr.contains("nodes.sh")
            && stderr.contains("exit status: 4"),
        "{stderr}"
    );
    assert!(!marker.exists());
}

#[test]
fn an_invalid_job_is_kept_never_runs_and_others_do() {
    let env = Env::new();
    let task = done_task(&env);
    env.config(&config_with_jobs(
        4,
        r#""bistro_job->bad": {"owner": "me", "resources": {"no_such_resource": 1}},
           "bistro_job->good": {"owner": "me"}"#,
    ));
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("bistro_job->bad: resources.no_such_resource"),
        "{stdout}"
    );
    let status = env.tick_until(&["--worker-command", &task], |s| all_done(s, "good"));
    assert_eq!(count(&status, "bad", "not_started"), 4);
    let bad = status["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "bad")
        .unwrap();
    assert!(bad["errors"]["nested"]["resources"].is_object(), "{bad}");
}

#[test]
fn status_warns_that_the_shown_config_is_the_last_good_one() {
    let env = Env::new();
    let task = done_task(&env);
    env.config(&config_with_jobs(1, GOOD_JOB));
    env.ok(&["tick", "--worker-command", &task]);
    env.config(&config_with_jobs(1, GOOD_JOB).replace("\"nodes\"", "\"nodez\""));
    let out = env.run(&["status"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bistro_settings") && stderr.contains("nodes"),
        "{stderr}"
    );
}

#[test]
fn odd_job_errors_and_bad_sources_are_reported_not_crashed_on() {
    let env = Env::new();
    env.config(&config_with_jobs(
        1,
        r#""bistro_job->j": {"owner": "me", "errors": "oops", "depends_on": ["m1", "m2"]}"#,
    ));
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("depends_on.0: no job named \"m1\"")
            && stdout.contains("depends_on.1: no job named \"m2\""),
        "{stdout}"
    );
    assert!(stdout.contains("errors: Pre-existing errors"), "{stdout}");
    env.config(
        &config_with_jobs(1, GOOD_JOB).replace("\"source\": \"manual\"", "\"source\": true"),
    );
    let stdout = String::from_utf8(env.run(&["check"]).stdout).unwrap();
    assert!(
        stdout.contains("node_sources.0.source: must be a node source name"),
        "{stdout}"
    );
}

#[test]
fn without_any_usable_config_a_tick_says_so_and_exits_2() {
    let env = Env::new();
    env.config("{");
    let out = env.run(&["tick"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("; no usable config"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no config is in force"));
}

#[test]
fn run_task_exits_1_when_the_node_script_fails() {
    let env = Env::new();
    let script = env.script("nodes.sh", "exit 3");
    env.config(&format!(
        r#"{{"bistro_settings": {{"enabled": true, "nodes": {{"levels": ["db"], "node_sources": [
            {{"source": "script", "prefs": {{"parent_level": "instance", "script": "{}"}}}}]}}, "resources": {{}}}},
          {GOOD_JOB}}}"#,
        script.display()
    ));
    let out = env.run(&["run-task", "j", "x", "--worker-command", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot fetch nodes"));
}

#[test]
fn bad_filters_and_dependencies_are_job_errors_naming_the_key_and_others_run() {
    let env = Env::new();
    let task = done_task(&env);
    env.config(&config_with_jobs(
        4,
        r#""bistro_job->regex": {"owner": "me", "filters": {"level2": {"whitelist_regex": "node(1"}}},
           "bistro_job->level": {"owner": "me", "filters": {"no_such_level": {"whitelist": ["x"]}}},
           "bistro_job->fraction": {"owner": "me", "filters": {"level2": {"fraction_of_nodes": 1.5}}},
           "bistro_job->cycle_a": {"owner": "me", "depends_on": ["cycle_b"]},
           "bistro_job->cycle_b": {"owner": "me", "depends_on": ["cycle_a"]},
           "bistro_job->missing": {"owner": "me", "depends_on": ["nosuch"]},
           "bistro_job->good": {"owner": "me"}"#,
    ));
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for (job, key) in [
        ("regex", "filters.level2.whitelist_regex"),
        ("level", "filters.no_such_level"),
        ("fraction", "filters.level2.fraction_of_nodes"),
        ("cycle_a", "depends_on"),
        ("cycle_b", "depends_on"),
        ("missing", "depends_on.0"),
    ] {
        assert!(
            stdout.contains(&format!("bistro_job->{job}: {key}")),
            "{job} {key} not named in:\n{stdout}"
        );
    }
    let status = env.tick_until(&["--worker-command", &task], |s| all_done(s, "good"));
    for job in [
        "regex", "level", "fraction", "cycle_a", "cycle_b", "missing",
    ] {
        assert_eq!(count(&status, job, "not_started"), 4, "{job} must not run");
    }
}

#[test]
fn check_warns_that_cgroups_are_accepted_but_not_enforced() {
    let env = Env::new();
    env.config(&config_with_jobs(
        1,
        r#""bistro_job->limited": {"owner": "me",
             "task_subprocess": {"cgroups": {"root": "/sys/fs/cgroup", "slice": "bistro", "subsystems": ["memory"]}}},
           "bistro_job->plain": {"owner": "me"}"#,
    ));
    let out = env.run(&["check"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a warning is not an error: {out:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("bistro_job->limited: task_subprocess.cgroups is accepted but not enforced"),
        "{stderr}"
    );
    assert!(!stderr.contains("bistro_job->plain"), "{stderr}");
}

#[test]
fn a_node_script_s_stderr_is_shown_by_tick_and_by_run_task() {
    let env = Env::new();
    let task = env.script("task.sh", "echo done > \"$2\"");
    let script = env.script("nodes.sh", "echo shard1; echo 'slow replica' >&2");
    env.config(&format!(
        r#"{{"bistro_settings": {{"enabled": true, "nodes": {{"levels": ["db"], "node_sources": [
            {{"source": "script", "prefs": {{"parent_level": "instance", "script": "{}"}}}}]}}, "resources": {{}}}},
          {GOOD_JOB}}}"#,
        script.display()
    ));
    let worker_command = task.to_str().unwrap();
    for args in [
        vec!["tick", "--worker-command", worker_command],
        vec![
            "run-task",
            "j",
            "shard1",
            "--worker-command",
            worker_command,
        ],
    ] {
        let out = env.run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("bistro: warning: node script") && stderr.contains("slow replica"),
            "{}: {stderr}",
            args[0]
        );
    }
}
