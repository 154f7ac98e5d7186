//! Contention and crashes: locked state dirs, concurrent ticks, killed supervisors.

use crate::util::*;

#[test]
fn tick_and_run_task_exit_75_while_another_holds_the_state_lock() {
    let env = Env::new();
    env.config(&config_with_jobs(1, r#""bistro_job->j": {"owner": "me"}"#));
    env.ok(&["init"]);
    let holder = LockHolder::take(&env);
    for args in [
        &["tick"][..],
        &["run-task", "j", "node11", "--worker-command", "true"],
    ] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(75), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("is locked"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // `status` does not need the lock.
    env.ok(&["status"]);
    drop(holder);
    env.ok(&["tick", "--worker-command", "true"]);
}

#[test]
fn concurrent_ticks_never_exceed_limits_nor_start_a_task_twice() {
    let env = Env::new();
    let ledger = env.path("ledger");
    let task = probe_task(&env, &ledger, "0.1");
    env.config(&config_with_leaves(12, 3, ""));
    env.ok(&["init"]);
    env.ok(&[
        "tick",
        "--worker-command",
        task.to_str().unwrap(),
        "--quiet",
    ]);
    let deadline = std::time::Instant::now() + DEADLINE;
    while !all_done(&env.status_json(&[]), "j") {
        let ticks: Vec<_> = (0..4)
            .map(|_| env.spawn_cmd(&["tick", "--quiet"]).spawn().unwrap())
            .collect();
        for mut t in ticks {
            let code = t.wait().unwrap().code();
            assert!(matches!(code, Some(0) | Some(75)), "tick exited {code:?}");
        }
        assert!(std::time::Instant::now() < deadline, "tasks never finished");
    }
    let seen = Ledger::read(&ledger);
    assert!(seen.peak <= 3, "{} at once", seen.peak);
    assert_eq!(seen.starts.len(), 12);
    assert!(seen.each_ran_once(), "{:?}", seen.starts);
}

#[test]
fn a_killed_supervisor_is_reported_and_its_task_group_dies() {
    let env = Env::new();
    let pids = env.path("pids");
    let task = env.script(
        "task.sh",
        &format!("sleep 1000 &\necho \"$$ $!\" > {}\nwait", pids.display()),
    );
    env.config(&config_with_jobs(
        1,
        // A long backoff: the lost run must not be restarted while the test looks.
        r#""bistro_job->j": {"owner": "me", "backoff": [3600, "fail"],
                             "filters": {"level2": {"whitelist": ["node11"]}}}"#,
    ));
    env.ok(&["tick", "--worker-command", task.to_str().unwrap()]);
    env.wait_for("the task to start", || read(&pids).ends_with('\n'));
    let text = read(&pids);
    let (shell, sleeper): (i32, i32) = {
        let mut it = text.split_whitespace().map(|p| p.parse().unwrap());
        (it.next().unwrap(), it.next().unwrap())
    };
    let supervisor = parent_of(shell);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    env.wait_for("the supervisor to die", || !alive(supervisor));
    // The supervisor's other threads may still hold its lock for a moment after its
    // main thread is gone: a later tick records the loss.
    env.tick_until(&[], |s| {
        s["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["node"] == "node11" && t["status"] != "running")
    });
    let t = env.task("j", "node11");
    assert_eq!(t["status"], "error_backoff", "{t}");
    assert!(
        t["data"]["exception"]
            .as_str()
            .unwrap()
            .contains("supervisor was lost"),
        "{t}"
    );
    env.wait_for("the task's process group to die", || {
        !alive(shell) && !alive(sleeper)
    });
    let events = env.logs(&["--stream", "statuses"]);
    assert!(events
        .iter()
        .any(|e| e["line"].as_str().unwrap().contains("supervisor_lost")));
}

#[test]
fn a_killed_tick_loses_no_task_and_starts_none_twice() {
    let env = Env::new();
    let ledger = env.path("ledger");
    let task = probe_task(&env, &ledger, "0.05");
    env.config(&config_with_leaves(10, 4, r#""backoff": [1, "repeat"],"#));
    env.ok(&["init"]);
    env.ok(&[
        "tick",
        "--worker-command",
        task.to_str().unwrap(),
        "--quiet",
    ]);
    for i in 0..15u64 {
        let mut child = env
            .spawn_cmd(&["tick", "--quiet", "--wait-lock", "10"])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(i * 3 % 40));
        let _ = child.kill();
        let _ = child.wait();
    }
    env.tick_until(&["--wait-lock", "10"], |s| all_done(s, "j"));
    let seen = Ledger::read(&ledger);
    assert!(
        seen.overlaps.is_empty(),
        "started while already running: {:?}",
        seen.overlaps
    );
    assert!(seen.peak <= 4, "{} at once", seen.peak);
    assert!(
        seen.each_ran_once(),
        "a lost status would make a task run again: {:?}",
        seen.starts
    );
    let running = env.status_json(&["--tasks", "--status", "running"]);
    assert!(running["tasks"].as_array().unwrap().is_empty());
    // `status` previews finished runs; the next tick records them and keeps their
    // dirs only as spares for later runs.
    env.ok(&["tick", "--quiet"]);
    assert_eq!(
        run_dirs(&env),
        Vec::<String>::new(),
        "no stray invocation dirs"
    );
}

/// Pids of the live supervisors of a state dir.
fn supervisors(env: &Env) -> Vec<i32> {
    let state = env.state().display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let args: Vec<&[u8]> = c.split(|&b| b == 0).collect();
                args.contains(&b"supervise".as_slice()) && args.contains(&state.as_bytes())
            })
        })
        .collect()
}

#[test]
fn supervisors_killed_at_random_lose_no_status_and_never_overlap_runs() {
    let env = Env::new();
    let ledger = env.path("ledger");
    // Runs long enough that each wave of supervisors is still there to be killed.
    let task = probe_task(&env, &ledger, "0.5");
    env.config(&config_with_leaves(12, 4, r#""backoff": [1, "repeat"],"#));
    env.ok(&["init"]);
    env.ok(&[
        "tick",
        "--quiet",
        "--worker-command",
        task.to_str().unwrap(),
    ]);
    let deadline = std::time::Instant::now() + DEADLINE;
    let mut kills = 0;
    while !all_done(&env.status_json(&[]), "j") {
        if kills < 6 {
            if let Some(&pid) = supervisors(&env).first() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                kills += 1;
            }
        }
        env.ok(&["tick", "--quiet"]);
        assert!(std::time::Instant::now() < deadline, "tasks never finished");
    }
    assert!(kills > 0, "the test killed no supervisor");
    let seen = Ledger::read(&ledger);
    assert!(
        seen.overlaps.is_empty(),
        "a task ran twice at once: {:?}",
        seen.overlaps
    );
    assert_eq!(seen.starts.len(), 12);
    let running = env.status_json(&["--tasks", "--status", "running"]);
    assert!(running["tasks"].as_array().unwrap().is_empty());
}

#[test]
fn a_terminated_supervisor_terms_then_kills_the_whole_task_group() {
    let env = Env::new();
    let pids = env.path("pids");
    let task = env.script(
        "task.sh",
        &format!(
            "trap '' TERM\nsleep 1000 &\na=$!\nsleep 1000 &\necho \"$$ $a $!\" > {}\nwait",
            pids.display()
        ),
    );
    env.config(&config_with_jobs(
        1,
        r#""bistro_job->j": {"owner": "me", "filters": {"level2": {"whitelist": ["node11"]}},
                             "backoff": [3600, "fail"],
                             "kill_subprocess": {"method": "term_wait_kill", "kill_wait_ms": 300}}"#,
    ));
    env.ok(&["tick", "--worker-command", task.to_str().unwrap()]);
    env.wait_for("the task to start", || read(&pids).ends_with('\n'));
    let all: Vec<i32> = read(&pids)
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(all.len(), 3, "{all:?}");
    let supervisor = parent_of(all[0]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    env.wait_for("every process of the task to die", || {
        all.iter().all(|&p| !alive(p))
    });
    env.tick_until(&[], |s| {
        s["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["node"] == "node11" && t["status"] != "running")
    });
    let t = env.task("j", "node11");
    assert_eq!(
        t["status"], "incomplete",
        "a killed task backs off without using a retry: {t}"
    );
    assert_eq!(t["data"]["exception"], "Task killed, no status returned");
    let events = event_names(&env);
    assert!(
        events.contains(&"process_exited".to_string())
            && events.last().map(String::as_str) == Some("got_status"),
        "{events:?}"
    );
}
