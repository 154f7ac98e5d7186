//! The read and control commands: dry runs, status filters and checks, logs, init,
//! generated docs.

use crate::util::*;
use std::io::{BufRead, Read};

#[test]
fn dry_run_starts_and_writes_nothing_and_explains_every_waiting_task() {
    let env = Env::new();
    let marker = env.path("ran");
    let task = env.script(
        "task.sh",
        &format!("touch {}\necho done > \"$2\"", marker.display()),
    );
    env.config(&config_with_jobs(
        1,
        r#""bistro_job->j": {"owner": "me", "filters": {"level2": {"blacklist": ["node22"]}}},
           "bistro_job->off": {"owner": "me", "enabled": false}"#,
    ));
    env.ok(&["init"]);
    let before = std::fs::read(env.state().join("statuses.sql3")).unwrap();
    let out = env.ok(&[
        "tick",
        "--dry-run",
        "--worker-command",
        task.to_str().unwrap(),
    ]);
    assert!(out.contains("would start j/"), "{out}");
    assert!(
        out.contains("the job's level2 filter (blacklist) excludes node node22"),
        "{out}"
    );
    assert!(
        out.contains("needs 1 concurrency on instance node"),
        "{out}"
    );
    assert!(out.contains("(starting)"), "{out}");
    assert!(
        out.contains("waiting off/node11: the job is disabled"),
        "{out}"
    );
    assert!(
        out.contains("tick --dry-run: 1 would start, 0 finished, 0 running"),
        "{out}"
    );
    let json: serde_json::Value = serde_json::from_str(&env.ok(&[
        "tick",
        "--dry-run",
        "--json",
        "--worker-command",
        task.to_str().unwrap(),
    ]))
    .unwrap();
    let reasons: std::collections::BTreeSet<&str> = json["waiting"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["filtered", "job_disabled", "resources"]
            .into_iter()
            .collect()
    );
    assert!(!marker.exists());
    assert!(std::fs::read_dir(env.state().join("running"))
        .unwrap()
        .next()
        .is_none());
    assert_eq!(
        std::fs::read(env.state().join("statuses.sql3")).unwrap(),
        before
    );
    assert_eq!(count(&env.status_json(&[]), "j", "running"), 0);
}

/// Ticks at a fake time until the task is no longer running.
fn tick_at(env: &Env, now: i64) -> String {
    let out = env
        .cmd(&["tick"])
        .env("BISTRO_FAKE_NOW", now.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn failures_back_off_on_the_ladder_then_fail_for_good() {
    let env = Env::new();
    let runs = env.path("runs");
    let task = env.script(
        "task.sh",
        &format!(
            "echo run >> {}\necho error_backoff > \"$2\"",
            runs.display()
        ),
    );
    env.config(&config_with_jobs(
        1,
        r#""bistro_job->j": {"owner": "me", "filters": {"level2": {"whitelist": ["node11"]}}}"#,
    ));
    env.ok(&["init"]);
    let t0 = 2_000_000_000;
    // Ticks at `now` until the run has been recorded.
    let wait_reaped = |now: i64| {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            tick_at(&env, now);
            let t = env.task("j", "node11");
            if t["status"] != "running" {
                return t;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the run never finished"
            );
        }
    };
    env.cmd(&["tick", "--worker-command", task.to_str().unwrap()])
        .env("BISTRO_FAKE_NOW", t0.to_string())
        .assert()
        .success();
    let t = wait_reaped(t0);
    assert_eq!(
        (t["status"].as_str(), t["backoff_until"].as_i64()),
        (Some("error_backoff"), Some(t0 + 1))
    );
    // Still backing off at t0: nothing starts.
    assert!(tick_at(&env, t0).contains("0 started"));
    assert_eq!(read(&runs).lines().count(), 1);
    assert!(tick_at(&env, t0 + 1).contains("1 started"));
    let t = wait_reaped(t0 + 1);
    assert_eq!(t["backoff_until"].as_i64(), Some(t0 + 1 + 2));
    assert!(tick_at(&env, t0 + 3).contains("1 started"));
    let t = wait_reaped(t0 + 3);
    assert_eq!(
        t["status"], "failed",
        "the third failure exhausts [1, 2, \"fail\"]: {t}"
    );
    assert!(tick_at(&env, t0 + 1000).contains("0 started"));
    assert_eq!(read(&runs).lines().count(), 3);
    assert_eq!(t["attempts"], 3);
}

#[test]
fn status_filters_by_job_and_status_and_check_reports_progress() {
    let env = Env::new();
    let task = env.script(
        "task.sh",
        "case $1 in node11) echo failed;; *) echo done;; esac > \"$2\"",
    );
    env.config(&config_with_jobs(
        4,
        r#""bistro_job->a": {"owner": "me"}, "bistro_job->b": {"owner": "me", "enabled": false}"#,
    ));
    env.ok(&["init"]);
    assert_eq!(env.run(&["status", "--check"]).status.code(), Some(3));
    env.tick_until(&["--worker-command", task.to_str().unwrap()], |s| {
        count(s, "a", "done") == 3 && count(s, "a", "failed") == 1
    });
    let only_a = env.status_json(&["--job", "a", "--status", "failed"]);
    assert_eq!(only_a["jobs"].as_array().unwrap().len(), 1);
    let tasks = only_a["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        (tasks[0]["node"].as_str(), tasks[0]["status"].as_str()),
        (Some("node11"), Some("failed"))
    );
    assert_eq!(
        env.run(&["status", "--check"]).status.code(),
        Some(4),
        "only a permanent failure remains for runnable jobs"
    );
    let bad = env.run(&["status", "--status", "bogus"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown status \"bogus\""));
}

#[test]
fn hostile_strings_are_escaped_on_the_terminal_but_kept_in_json() {
    let env = Env::new();
    let task = env.script(
        "task.sh",
        "printf 'evil \\033[2J\\342\\200\\256 text\\n'\necho done > \"$2\"",
    );
    env.config(&config_with_jobs(1, r#""bistro_job->j": {"owner": "me\u001b[31m", "filters": {"level2": {"whitelist": ["node11"]}}}"#));
    env.tick_until(&["--worker-command", task.to_str().unwrap()], |s| {
        count(s, "j", "done") == 1
    });
    let human = env.ok(&["logs", "--stream", "stdout"]);
    assert!(human.contains("evil \\u{1b}[2J\\u{202e} text"), "{human}");
    assert!(!human.contains('\u{1b}'));
    let json = env.logs(&["--stream", "stdout"]);
    assert_eq!(json[0]["line"], "evil \u{1b}[2J\u{202e} text\n");
    let table = env.ok(&["status"]);
    assert!(
        table.contains("me\\u{1b}[31m") && !table.contains('\u{1b}'),
        "{table}"
    );
}

#[test]
fn logs_follow_prints_lines_as_they_arrive() {
    let env = Env::new();
    let gate = env.path("gate");
    let task = env.script(
        "task.sh",
        &format!(
            "echo first\nwhile [ ! -e {} ]; do sleep 0.02; done\necho second\necho done > \"$2\"",
            gate.display()
        ),
    );
    env.config(&config_with_jobs(
        1,
        r#""bistro_job->j": {"owner": "me", "filters": {"level2": {"whitelist": ["node11"]}}}"#,
    ));
    env.ok(&["init"]);
    let mut follow = env
        .spawn_cmd(&["logs", "--follow", "--json", "--stream", "stdout"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _watchdog = Watchdog::arm(follow.id());
    let mut lines = std::io::BufReader::new(follow.stdout.take().unwrap()).lines();
    env.ok(&["tick", "--worker-command", task.to_str().unwrap()]);
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["line"], "first\n");
    std::fs::write(&gate, "").unwrap();
    let second: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(
        (second["line"].as_str(), second["node"].as_str()),
        (Some("second\n"), Some("node11"))
    );
    follow.kill().unwrap();
    follow.wait().unwrap();
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let env = Env::new();
    env.ok(&["init"]);
    let task = env.script("task.sh", "seq 1 5000\necho done > \"$2\"");
    env.tick_until(&["--worker-command", task.to_str().unwrap()], |s| {
        all_done(s, "simple_job")
    });
    let mut child = env
        .spawn_cmd(&["logs"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn old_task_logs_are_pruned_by_retention() {
    let env = Env::new();
    env.ok(&["init"]);
    let task = env.script("task.sh", "echo hello\necho done > \"$2\"");
    env.tick_until(&["--worker-command", task.to_str().unwrap()], |s| {
        all_done(s, "simple_job")
    });
    assert!(!env.logs(&[]).is_empty());
    let later = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 7200)
        .to_string();
    env.cmd(&["tick", "--log-retention", "3600"])
        .env("BISTRO_FAKE_NOW", later)
        .assert()
        .success();
    assert!(env.logs(&[]).is_empty());
}

#[test]
fn init_writes_the_demo_config_and_never_clobbers_a_different_one() {
    let env = Env::new();
    env.ok(&["init"]);
    let config = read(&env.state().join("config.json"));
    assert!(config.contains("\"node_source\": \"manual\""));
    let other = env.path("other.json");
    std::fs::write(
        &other,
        config_with_jobs(1, r#""bistro_job->x": {"owner": "me"}"#),
    )
    .unwrap();
    let out = env.run(&["init", "--config", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(read(&env.state().join("config.json")), config);
    env.ok(&["init", "--force", "--config", other.to_str().unwrap()]);
    assert!(read(&env.state().join("config.json")).contains("bistro_job->x"));
}

#[test]
fn tick_reports_config_changes() {
    let env = Env::new();
    env.config(&config_with_jobs(1, r#""bistro_job->a": {"owner": "me"}"#));
    env.ok(&["tick", "--worker-command", "true"]);
    env.config(&config_with_jobs(
        1,
        r#""bistro_job->a": {"owner": "you"}, "bistro_job->b": {"owner": "me"}"#,
    ));
    let out = env.ok(&["tick"]);
    assert!(
        out.contains("; config: modified job a, added job b"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 1, "one summary line: {out}");
}

#[test]
fn a_corrupt_status_database_is_reported_and_left_alone() {
    let env = Env::new();
    env.ok(&["init"]);
    let db = env.state().join("statuses.sql3");
    std::fs::remove_file(env.state().join("statuses.sql3-wal")).ok();
    std::fs::remove_file(env.state().join("statuses.sql3-shm")).ok();
    std::fs::write(&db, vec![b'x'; 8192]).unwrap();
    let out = env.run(&["tick"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("statuses.sql3") && stderr.contains("move it aside"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&db).unwrap(), vec![b'x'; 8192]);
}

#[test]
fn an_unreadable_config_names_the_file() {
    let env = Env::new();
    env.ok(&["init"]);
    let dir = env.path("a_directory.json");
    std::fs::create_dir(&dir).unwrap();
    let out = env.run(&["check", "--config", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("a_directory.json: cannot read"), "{stdout}");
}

#[test]
fn generated_docs_are_up_to_date() {
    let env = Env::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut expected: Vec<(Vec<String>, std::path::PathBuf)> = vec![
        (vec!["manpage".into()], root.join("man/bistro.1")),
        (
            vec!["completions".into(), "bash".into()],
            root.join("completions/bistro.bash"),
        ),
        (
            vec!["completions".into(), "zsh".into()],
            root.join("completions/_bistro"),
        ),
        (
            vec!["completions".into(), "fish".into()],
            root.join("completions/bistro.fish"),
        ),
    ];
    for entry in std::fs::read_dir(root.join("man")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if let Some(sub) = name
            .strip_prefix("bistro-")
            .and_then(|n| n.strip_suffix(".1"))
        {
            expected.push((vec!["manpage".into(), sub.to_string()], path));
        }
    }
    assert!(expected.len() > 8, "one page per subcommand");
    for (args, file) in expected {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert!(
            env.ok(&args) == read(&file),
            "{} is stale: run ./scripts/update-docs.sh",
            file.display()
        );
    }
}

#[test]
fn init_with_a_config_replaces_the_one_ticks_remember() {
    let env = Env::new();
    let a = env.path("a.json");
    std::fs::write(
        &a,
        config_with_jobs(1, r#""bistro_job->from_a": {"owner": "me"}"#),
    )
    .unwrap();
    env.ok(&["init"]);
    env.ok(&[
        "tick",
        "--config",
        a.to_str().unwrap(),
        "--worker-command",
        "true",
    ]);
    assert_eq!(env.status_json(&[])["jobs"][0]["name"], "from_a");
    let b = env.path("b.json");
    std::fs::write(
        &b,
        config_with_jobs(1, r#""bistro_job->from_b": {"owner": "me"}"#),
    )
    .unwrap();
    env.ok(&["init", "--force", "--config", b.to_str().unwrap()]);
    env.ok(&["tick"]);
    assert_eq!(env.status_json(&[])["jobs"][0]["name"], "from_b");
}

#[test]
fn commands_that_read_a_state_say_how_to_create_it_and_exit_2() {
    let env = Env::new();
    for args in [
        &["status"][..],
        &["why", "j", "n"],
        &["kill", "j", "n"],
        &["forgive", "j"],
        &["tick", "--dry-run"],
        &["serve-http", "--listen", "127.0.0.1:0"],
    ] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("no state in")
                && stderr.contains("run `bistro init` (or a tick) first"),
            "{args:?}: {stderr}"
        );
    }
    assert!(!env.state().exists(), "reading commands create nothing");
}

#[test]
fn an_unknown_job_or_an_unreadable_config_is_a_usage_error() {
    let env = Env::new();
    let missing = env.path("no-such-config.json");
    let init = env.run(&["--config", missing.to_str().unwrap(), "init"]);
    assert_eq!(init.status.code(), Some(2), "{init:?}");
    assert!(String::from_utf8_lossy(&init.stderr).contains("no-such-config.json"));
    assert!(!env.state().exists(), "an init that fails creates nothing");

    env.config(&config_with_jobs(1, r#""bistro_job->j": {"owner": "me"}"#));
    env.ok(&["init"]);
    let status = env.run(&["status", "--job", "nope"]);
    assert_eq!(status.status.code(), Some(2), "{status:?}");
    assert!(String::from_utf8_lossy(&status.stderr).contains("no job named \"nope\""));
}
