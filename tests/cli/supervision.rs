//! The supervisor host: one detached process supervises all the runs a tick starts,
//! takes kill requests per run, outlives the tick, and ends after its last run; run
//! directories are reused.

use crate::util::*;

/// A task that records `PID` in `pids/NODE`, then waits for the file `go` before it
/// reports done.
fn gated_task(env: &Env) -> std::path::PathBuf {
    let pids = env.path("pids");
    std::fs::create_dir_all(&pids).unwrap();
    env.script(
        "task.sh",
        &format!(
            "echo $$ > {pids}/$1.tmp && mv {pids}/$1.tmp {pids}/$1\nwhile [ ! -e {go} ]; do sleep 0.02; done\necho done > \"$2\"",
            pids = pids.display(),
            go = env.path("go").display()
        ),
    )
}

/// The pids the gated tasks recorded, by node.
fn task_pids(env: &Env) -> Vec<(String, i32)> {
    std::fs::read_dir(env.path("pids"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none())
        .map(|p| {
            let node = p.file_name().unwrap().to_string_lossy().into_owned();
            (node, read(&p).trim().parse().unwrap())
        })
        .collect()
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

#[test]
fn one_host_supervises_a_ticks_tasks_outlives_the_tick_and_exits_after_them() {
    let env = Env::new();
    let task = gated_task(&env);
    env.config(&config_with_leaves(4, 4, ""));
    env.ok(&["tick", "--worker-command", task.to_str().unwrap()]);
    env.wait_for("the four tasks to start", || task_pids(&env).len() == 4);
    let parents: Vec<i32> = task_pids(&env).iter().map(|&(_, p)| parent_of(p)).collect();
    let host = parents[0];
    assert!(parents.iter().all(|&p| p == host), "{parents:?}");
    assert!(cmdline(host).contains(" supervise "), "{}", cmdline(host));
    assert!(alive(host), "the host outlives the tick that started it");

    std::fs::write(env.path("go"), b"").unwrap();
    env.wait_for("the host to exit after its last run", || !alive(host));
    let status = env.tick_until(&[], |s| all_done(s, "j"));
    assert_eq!(count(&status, "j", "done"), 4);
    assert_eq!(run_dirs(&env), Vec::<String>::new());
}

#[test]
fn a_kill_request_reaches_only_its_own_run_under_a_shared_host() {
    let env = Env::new();
    let task = gated_task(&env);
    env.config(&config_with_leaves(3, 3, r#""backoff": [3600, "fail"],"#));
    env.ok(&["tick", "--worker-command", task.to_str().unwrap()]);
    env.wait_for("the three tasks to start", || task_pids(&env).len() == 3);
    let pids = task_pids(&env);
    let (victim, victim_pid) = pids.iter().find(|(n, _)| n == "n1").cloned().unwrap();

    let out = env.ok(&["kill", "j", &victim]);
    assert!(out.contains("signaled"), "{out}");
    env.wait_for("the killed task to die", || !alive(victim_pid));
    env.tick_until(&[], |s| count(s, "j", "running") == 2);
    assert!(
        pids.iter()
            .filter(|(n, _)| *n != victim)
            .all(|&(_, p)| alive(p)),
        "the other runs of the host go on"
    );
    assert_eq!(env.task("j", &victim)["status"], "incomplete");

    std::fs::write(env.path("go"), b"").unwrap();
    let status = env.tick_until(&[], |s| count(s, "j", "running") == 0);
    assert_eq!(count(&status, "j", "done"), 2);
}

#[test]
fn run_directories_are_reused_with_no_result_of_the_last_run() {
    let env = Env::new();
    let ledger = env.path("ledger");
    let task = probe_task(&env, &ledger, "0");
    // One at a time: each run after the first can take the last run's directory.
    env.config(&config_with_leaves(6, 1, ""));
    let status = env.tick_until(&["--worker-command", task.to_str().unwrap()], |s| {
        all_done(s, "j")
    });
    assert_eq!(count(&status, "j", "done"), 6);
    assert!(Ledger::read(&ledger).each_ran_once());
    // `status` shows a run done once its result is written; the next tick records it
    // and puts its directory aside.
    env.ok(&["tick", "--quiet"]);
    assert_eq!(run_dirs(&env), Vec::<String>::new());
    let spares: Vec<_> = std::fs::read_dir(env.state().join("running/.spare"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    // A spare keeps its last run's files until a run takes it and blanks them.
    assert!(!spares.is_empty() && spares.len() <= 2, "{spares:?}");
}
