//! `bistro daemon`: the seed demo in one process, batch exits, the state lock, clean
//! stops and restarts that lose no status and start nothing twice.

use crate::util::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::process::{Child, Stdio};

/// A daemon in the background, killed if the test ends early.
struct Daemon(Child);

impl Daemon {
    fn start(env: &Env, args: &[&str]) -> Self {
        let mut all = vec!["daemon"];
        all.extend_from_slice(args);
        let child = env
            .spawn_cmd(&all)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Self(child)
    }

    fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.0.id() as i32), sig).unwrap();
    }

    /// Waits for the daemon to exit; returns its exit code and stderr.
    fn wait(mut self) -> (Option<i32>, String) {
        let deadline = std::time::Instant::now() + DEADLINE;
        let code = loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                break status.code();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the daemon did not exit"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(self.0.stderr.as_mut().unwrap(), &mut err).unwrap();
        (code, err)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A probe task (see util) that waits for the file `release` (or the end of the
/// test's directory) before finishing.
fn held_probe(env: &Env, ledger: &std::path::Path) -> std::path::PathBuf {
    probe_task(
        env,
        ledger,
        &format!(
            "0; while [ ! -e {} ] && [ -d {} ]; do sleep 0.05; done",
            env.path("release").display(),
            env.dir.path().display()
        ),
    )
}

/// A daemon over the seed's four nodes (two at a time) whose tasks hold until the
/// file `release` exists; returns once two run, with the path of their ledger.
fn daemon_running_two_held_tasks(env: &Env) -> (Daemon, std::path::PathBuf) {
    let ledger = env.path("ledger");
    let task = held_probe(env, &ledger);
    env.config(&config_with_jobs(2, r#""bistro_job->j": {"owner": "me"}"#));
    let daemon = Daemon::start(env, &["--worker-command", task.to_str().unwrap()]);
    env.wait_for("two tasks to run", || running_count(env) == 2);
    (daemon, ledger)
}

/// `bistro daemon --exit-when-done --worker-command TASK`, run to its end.
fn batch(env: &Env, task: &std::path::Path) -> std::process::Output {
    env.cmd(&[
        "daemon",
        "--exit-when-done",
        "--worker-command",
        task.to_str().unwrap(),
    ])
    .output()
    .unwrap()
}

/// Tasks of job j running, 0 before the daemon has created the state.
fn running_count(env: &Env) -> u64 {
    let out = env.run(&["status", "--json"]);
    if !out.status.success() {
        return 0;
    }
    count(
        &serde_json::from_slice(&out.stdout).unwrap(),
        "j",
        "running",
    )
}

#[test]
fn the_seed_demo_runs_under_a_daemon_that_exits_when_done() {
    let env = Env::new();
    env.config(&config_with_jobs(2, r#""bistro_job->j": {"owner": "me"}"#));
    let task = env.script("task.sh", "echo done > \"$2\"");
    let out = batch(&env, &task);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stderr.is_empty(), "quiet on success: {out:?}");
    assert!(all_done(&env.status_json(&[]), "j"));
}

#[test]
fn on_a_terminal_the_daemon_logs_starts_and_finishes_without_v() {
    let env = Env::new();
    env.config(&config_with_jobs(2, r#""bistro_job->j": {"owner": "me"}"#));
    let task = env.script("task.sh", "echo done > \"$2\"");
    // util-linux `script` gives the daemon a terminal for its stderr.
    let command = format!(
        "{} --state-dir {} daemon --exit-when-done --worker-command {}",
        assert_cmd::cargo::cargo_bin("bistro").display(),
        env.state().display(),
        task.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("BISTRO_LOG")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("started j/node11"), "{said}");
    assert!(said.contains("finished j/node11: done"), "{said}");
}

#[test]
fn a_daemon_starts_the_next_task_when_one_ends_not_a_working_wait_later() {
    let env = Env::new();
    // One task at a time and an hour between iterations while tasks run: only the
    // supervisor host telling the daemon that a run ended lets the four run now.
    env.config(&config_with_leaves(4, 1, r#""working_wait": 3600,"#));
    let task = env.script("task.sh", "echo done > \"$2\"");
    let _daemon = Daemon::start(&env, &["--worker-command", task.to_str().unwrap()]);
    env.wait_for("the four tasks to be done one after another", || {
        let out = env.run(&["status", "--json"]);
        out.status.success() && all_done(&serde_json::from_slice(&out.stdout).unwrap(), "j")
    });
}

#[test]
fn exit_when_done_waits_for_tasks_in_backoff() {
    let env = Env::new();
    let tries = env.path("tries");
    let task = env.script(
        "task.sh",
        &format!(
            "echo x >> {t}.$1\nif [ $(wc -l < {t}.$1) -ge 2 ]; then echo done > \"$2\"; else echo error_backoff > \"$2\"; fi",
            t = tries.display()
        ),
    );
    env.config(&config_with_jobs(4, r#""bistro_job->j": {"owner": "me"}"#));
    let out = batch(&env, &task);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let status = env.status_json(&["--tasks"]);
    assert!(
        all_done(&status, "j"),
        "every task ran again after its backoff: {status}"
    );
}

#[test]
fn exit_when_done_without_a_usable_config_exits_2() {
    let env = Env::new();
    env.config("{ not json");
    let out = env
        .cmd(&["daemon", "--local", "--exit-when-done"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("config.json") && err.contains("no usable config"),
        "{err}"
    );
}

#[test]
fn sigterm_stops_the_daemon_while_tasks_run_on_and_a_restart_records_them() {
    let env = Env::new();
    let (daemon, ledger) = daemon_running_two_held_tasks(&env);

    let beside = env.run(&["tick"]);
    assert_eq!(
        beside.status.code(),
        Some(75),
        "the daemon holds the state lock"
    );

    daemon.signal(Signal::SIGTERM);
    let (code, err) = daemon.wait();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(running_count(&env), 2, "the tasks outlive the daemon");

    std::fs::write(env.path("release"), "").unwrap();
    let out = env
        .cmd(&["daemon", "--local", "--exit-when-done"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(all_done(&env.status_json(&[]), "j"));
    let ledger = Ledger::read(&ledger);
    assert!(ledger.each_ran_once(), "{ledger:?}");
}

#[test]
fn a_daemon_killed_mid_run_loses_no_status_and_starts_nothing_twice() {
    let env = Env::new();
    let (daemon, ledger) = daemon_running_two_held_tasks(&env);
    daemon.signal(Signal::SIGKILL);
    daemon.wait();

    let restarted = Daemon::start(&env, &["--local", "--exit-when-done"]);
    env.wait_for("the restarted daemon to see the runs", || {
        read(&ledger)
            .lines()
            .filter(|l| l.starts_with("start"))
            .count()
            >= 2
    });
    std::fs::write(env.path("release"), "").unwrap();
    let (code, err) = restarted.wait();
    assert_eq!(code, Some(0), "{err}");
    assert!(all_done(&env.status_json(&[]), "j"));
    let ledger = Ledger::read(&ledger);
    assert!(ledger.each_ran_once(), "{ledger:?}");
}

#[test]
fn a_daemon_serves_the_api_refuses_bad_requests_and_kill_task_ends_a_process_group() {
    let env = Env::new();
    let pids = env.path("pids");
    let task = env.script(
        "task.sh",
        &format!(
            "if [ \"$1\" = node22 ]; then (while [ -d {dir} ]; do sleep 0.1; done) & echo \"$$ $!\" > {pids}; wait; fi\necho done > \"$2\"",
            pids = pids.display(),
            dir = env.dir.path().display()
        ),
    );
    // A long backoff, so the killed node22 is not started again before the check.
    env.config(&config_with_jobs(
        4,
        r#""bistro_job->j": {"owner": "me", "backoff": [3600, "fail"]}"#,
    ));
    let served = Served::start_with(
        &env,
        &[
            "daemon",
            "--http",
            "127.0.0.1:0",
            "--allow-host",
            "bistro.example",
            "--worker-command",
            task.to_str().unwrap(),
        ],
    );
    env.wait_for("node22's task to record its pids", || {
        read(&pids).split_whitespace().count() == 2
    });
    let pids: Vec<i32> = read(&pids)
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();

    let (code, answer) = served.post(r#"{"a":{"handler":"jobs"},"b":{"handler":"running_tasks"}}"#);
    assert_eq!(code, 200);
    assert_eq!(answer["a"]["data"]["j"]["owner"], "me", "{answer}");
    assert!(answer["b"]["data"]["j"]["node22"].is_object(), "{answer}");

    let port = served.addr.rsplit(':').next().unwrap();
    let named = served.request(
        "GET",
        "/",
        &[("Host", &format!("bistro.example:{port}"))],
        b"",
    );
    assert_eq!(named.status, 200, "--allow-host");
    let without_http = env.run(&["daemon", "--allow-host", "bistro.example"]);
    assert_eq!(
        without_http.status.code(),
        Some(2),
        "--allow-host needs --http"
    );
    let oversized = served.request("POST", "/", &[], &vec![b' '; 2 << 20]);
    assert_eq!(oversized.status, 413);
    let (_, bad) = served
        .post(r#"{"x": {"handler": "no_such_handler"}, "y": {"handler": "sorted_node_names"}}"#);
    assert!(
        bad["x"]["error"].is_string() && bad["y"]["data"].is_object(),
        "{bad}"
    );

    let token = read(&env.state().join("http.token"));
    let killed = served.post_with_token(
        &token,
        r#"{"k": {"handler": "kill_task", "job_id": "j", "node_id": "node22"}}"#,
    );
    assert_eq!(killed["k"]["data"], "signaled", "{killed}");
    env.wait_for("the task's whole process group to die", || {
        pids.iter().all(|&p| !alive(p))
    });
    env.wait_for("the daemon to record the kill and the other runs", || {
        let counts = &env.status_json(&[])["jobs"][0]["counts"];
        counts["incomplete"] == 1 && counts["done"] == 3
    });
    let status = served.request("GET", "/api/status", &[], b"").json();
    assert_eq!(status["jobs"][0]["counts"]["done"], 3, "{status}");
}

/// Zombie children of `pid`.
fn zombie_children(pid: u32) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
            fields[0] == "Z" && fields[1] == pid.to_string()
        })
        .count()
}

#[test]
fn a_daemon_reaps_the_supervisors_it_started() {
    let env = Env::new();
    env.config(&config_with_leaves(
        40,
        8,
        r#""idle_wait": 0.05, "working_wait": 0.02,"#,
    ));
    let task = env.script("task.sh", "echo done > \"$2\"");
    let daemon = Daemon::start(&env, &["--worker-command", task.to_str().unwrap()]);
    env.wait_for("every task to be done", || {
        let out = env.run(&["status", "--json"]);
        out.status.success() && {
            let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            s["jobs"][0]["counts"]["done"] == 40
        }
    });
    env.wait_for("no zombie supervisor under the daemon", || {
        zombie_children(daemon.0.id()) == 0
    });
}

#[test]
fn clean_statuses_runs_everything_again_but_not_when_the_start_fails() {
    let env = Env::new();
    let runs = env.path("runs");
    let task = env.script(
        "task.sh",
        &format!("echo \"$1\" >> {}\necho done > \"$2\"", runs.display()),
    );
    env.config(&config_with_jobs(4, r#""bistro_job->j": {"owner": "me"}"#));
    let task = task.to_str().unwrap();
    let batch = |extra: &[&str]| {
        let mut args = vec!["daemon", "--exit-when-done", "--worker-command", task];
        args.extend_from_slice(extra);
        env.run(&args)
    };
    assert_eq!(batch(&[]).status.code(), Some(0));
    assert_eq!(read(&runs).lines().count(), 4);

    let refused = batch(&["--clean-statuses", "--http", "not-an-address"]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(
        all_done(&env.status_json(&[]), "j"),
        "a failed start forgets nothing"
    );

    assert_eq!(batch(&["--clean-statuses"]).status.code(), Some(0));
    assert_eq!(read(&runs).lines().count(), 8, "every task ran again");
}

#[test]
fn exit_when_done_with_a_job_it_cannot_start_exits_2_saying_why_once() {
    let env = Env::new();
    env.config(&config_with_jobs(4, r#""bistro_job->j": {"owner": "me"}"#));
    let out = env
        .cmd(&["daemon", "--local", "--exit-when-done"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("job j has no \"command\"").count(),
        2,
        "once as the warning, once as the reason to exit: {stderr}"
    );
    assert!(stderr.contains("--worker-command"), "{stderr}");
}

#[test]
fn exit_when_done_lets_backoffs_finish_before_giving_up_on_a_job_without_command() {
    let env = Env::new();
    let tries = env.path("tries");
    let task = env.script(
        "task.sh",
        &format!(
            "echo x >> {t}.$1\nif [ $(wc -l < {t}.$1) -ge 2 ]; then echo done > \"$2\"; else echo error_backoff > \"$2\"; fi",
            t = tries.display()
        ),
    );
    env.config(&config_with_jobs(
        4,
        &format!(
            r#""bistro_job->retried": {{"owner": "me", "command": ["{}"]}},
               "bistro_job->commandless": {{"owner": "me"}}"#,
            task.display()
        ),
    ));
    let out = env
        .cmd(&["daemon", "--local", "--exit-when-done"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        all_done(&env.status_json(&[]), "retried"),
        "the retried job finished its backoffs first"
    );
}

#[test]
fn local_wins_over_a_remembered_runner_and_is_remembered_in_its_place() {
    let env = Env::new();
    env.config(&config_with_jobs(2, r#""bistro_job->j": {"owner": "me"}"#));
    let task = env.script("task.sh", "echo done > \"$2\"");
    env.ok(&["init"]);
    let state = bistro::storage::state::StateDir::new(env.state());
    let remember = |runner: &str| {
        let mut store = bistro::storage::store::StatusStore::open(&state.statuses_db()).unwrap();
        store.set_meta(&[("runner", runner)]).unwrap();
    };
    remember("slurm");
    let out = env.run(&[
        "daemon",
        "--local",
        "--exit-when-done",
        "--worker-command",
        task.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(all_done(&env.status_json(&[]), "j"));
    let store = bistro::storage::store::StatusStore::open(&state.statuses_db()).unwrap();
    assert_eq!(store.meta("runner").unwrap().as_deref(), Some("local"));
}
