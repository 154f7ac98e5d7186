//! Remote workers: the seed's two-process demo, load sharing under worker-level
//! limits, task logs served by the scheduler, and the faults of bistro-runtime §5 —
//! a worker killed or frozen mid-task, a restarted scheduler, a replaced shard — with
//! the protocol's timeouts shrunk by flags.

use crate::util::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

/// Health timeouts in seconds, so a silent worker is lost within seconds, and a lost
/// worker's tasks wait 2 s (margin 1 + kill wait 0.5 + 1) before running again. A
/// worker judges itself by `lose-unhealthy-worker-after` minus one sweep, from before
/// its first healthcheck is acknowledged: 4 s leaves it time to become healthy.
const FAST: &[&str] = &[
    "--heartbeat-grace-period",
    "1",
    "--healthcheck-period",
    "1",
    "--healthcheck-grace-period",
    "1",
    "--lose-unhealthy-worker-after",
    "4",
    "--worker-check-interval",
    "1",
    "--caution-worker-suicide-backoff-safety-margin-sec",
    "1",
    "--caution-worker-suicide-task-kill-wait-ms",
    "500",
    "--worker-call-timeout-ms",
    "1000",
];

/// `bistro daemon` in remote mode on `listen`, with `extra` flags.
fn scheduler(env: &Env, listen: &str, extra: &[&str]) -> Served {
    let mut args = vec![
        "daemon",
        "--http",
        listen,
        "--instance-node-name",
        "scheduler",
    ];
    args.extend_from_slice(extra);
    Served::start_with(env, &args)
}

/// A scheduler that waits 1 s for workers after its start and sweeps every second.
fn quick_scheduler(env: &Env) -> Served {
    scheduler(
        env,
        "127.0.0.1:0",
        &[
            "--caution-startup-wait-for-workers",
            "1",
            "--worker-check-interval",
            "1",
        ],
    )
}

/// A quick scheduler with the [`FAST`] health timeouts, so workers are lost in seconds.
fn fast_scheduler(env: &Env) -> Served {
    let mut flags = vec!["--caution-startup-wait-for-workers", "1"];
    flags.extend_from_slice(FAST);
    scheduler(env, "127.0.0.1:0", &flags)
}

/// A `bistro worker` in its own state dir, stopped with SIGTERM when dropped.
struct Worker {
    child: Child,
    /// Its stderr, read as it comes so a chatty worker never blocks on the pipe.
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    _watchdog: Watchdog,
}

impl Worker {
    fn start(env: &Env, scheduler: &Served, shard: &str, command: &Path) -> Self {
        Self::start_with_secret(
            env,
            scheduler,
            shard,
            command,
            &env.state().join("worker.token"),
        )
    }

    fn start_with_secret(
        env: &Env,
        scheduler: &Served,
        shard: &str,
        command: &Path,
        secret: &Path,
    ) -> Self {
        let state = env.path(&format!("worker-{shard}"));
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("bistro"))
            .current_dir(env.dir.path())
            .env_remove("BISTRO_STATE_DIR")
            .env_remove("BISTRO_CONFIG")
            .arg("--state-dir")
            .arg(&state)
            .args(["worker", "--scheduler"])
            .arg(format!("http://{}", scheduler.addr))
            .arg("--token-file")
            .arg(secret)
            .args(["--shard-id", shard, "--heartbeat-period-sec", "1"])
            .arg("--worker-command")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let watchdog = Watchdog::arm(child.id());
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (mut pipe, sink) = (child.stderr.take().unwrap(), std::sync::Arc::clone(&stderr));
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = std::io::Read::read(&mut pipe, &mut chunk) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        Self {
            child,
            stderr,
            _watchdog: watchdog,
        }
    }

    fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// Waits for the worker to exit; its exit code and stderr.
    fn wait(mut self) -> (Option<i32>, String) {
        let code = self.child.wait().unwrap().code();
        // The reader ends with the pipe, which the exited worker's supervisors no
        // longer hold once its tasks are gone.
        let deadline = std::time::Instant::now() + DEADLINE;
        while std::sync::Arc::strong_count(&self.stderr) > 1 && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let err = self.stderr.lock().unwrap().clone();
        (code, err)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

/// The seed's nodes, instance concurrency 10, fast iterations, `worker_resources`
/// (a JSON object of worker-level resources) and one job `j` with `job_extra` keys.
fn config(worker_resources: &str, job_extra: &str) -> String {
    format!(
        r#"{{
  "bistro_settings": {{
    "enabled": true, "working_wait": 0.1, "idle_wait": 0.2,
    "nodes": {{"levels": ["level1", "level2"], "node_sources": [{{"source": "manual",
      "prefs": {{"node1": ["node11", "node12"], "node2": ["node21", "node22"]}}}}]}},
    "resources": {{"instance": {{"concurrency": {{"limit": 10, "default": 1}}}},
                   "worker": {worker_resources}}},
    "backoff": [1, 2, 4, "fail"]
  }},
  "bistro_job->j": {{"owner": "me"{job_extra}}}
}}"#
    )
}

/// A task that holds its node's lock while it runs (an `overlap NODE` line in the
/// ledger means a second copy started while the first was alive), records
/// `start NODE WORKER PID`, waits for `release-NODE` or `release-all`, then records
/// `end NODE` and reports done.
fn holding_task(env: &Env) -> (PathBuf, PathBuf) {
    let ledger = env.path("ledger");
    let locks = env.path("node-locks");
    std::fs::create_dir_all(&locks).unwrap();
    let dir = env.dir.path().display().to_string();
    let task = env.script(
        "task.sh",
        &format!(
            r#"exec 9>>{locks}/$1
flock -n 9 || echo "overlap $1" >> {l}
worker=$(echo "$3" | sed 's/.*"worker_node":"\([^"]*\)".*/\1/')
echo "start $1 $worker $$" >> {l}
while [ ! -e {dir}/release-$1 ] && [ ! -e {dir}/release-all ]; do sleep 0.05; done
echo "end $1" >> {l}
echo done > "$2""#,
            locks = locks.display(),
            l = ledger.display(),
        ),
    );
    (task, ledger)
}

/// How many times each node started, from the ledger.
fn runs_per_node(ledger: &Path) -> std::collections::BTreeMap<String, usize> {
    let mut runs = std::collections::BTreeMap::new();
    for (node, _, _) in starts(ledger) {
        *runs.entry(node).or_insert(0) += 1;
    }
    runs
}

/// The nodes whose run started while another run of the node was alive.
fn overlaps(ledger: &Path) -> Vec<String> {
    Ledger::read(ledger).overlaps
}

/// The `start` lines of the ledger: (node, worker, pid).
fn starts(ledger: &Path) -> Vec<(String, String, i32)> {
    read(ledger)
        .lines()
        .filter_map(|l| {
            let mut words = l.split(' ');
            (words.next() == Some("start")).then(|| {
                let node = words.next().unwrap().to_string();
                let worker = words.next().unwrap().to_string();
                (node, worker, words.next().unwrap().parse().unwrap())
            })
        })
        .collect()
}

fn release(env: &Env, what: &str) {
    std::fs::write(env.path(&format!("release-{what}")), "").unwrap();
}

/// The scheduler's view of a worker from `status --json`.
fn worker_state(env: &Env, shard: &str) -> Option<Value> {
    let status = env.status_json(&[]);
    status["workers"]["workers"]
        .as_array()?
        .iter()
        .find(|w| w["shard"] == shard)
        .cloned()
}

#[test]
fn the_seed_s_two_process_demo_runs_to_completion_and_the_scheduler_serves_the_worker_s_logs() {
    let env = Env::new();
    env.config(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/configs/simple.json"
    )));
    let demo = std::fs::canonicalize("examples/demo_bistro_task.sh").unwrap();
    let scheduler = quick_scheduler(&env);
    let _worker = Worker::start(&env, &scheduler, "worker", &demo);
    env.wait_for("every task done", || {
        std::fs::metadata(env.state().join("workers.json")).is_ok()
            && all_done(&env.status_json(&[]), "simple_job")
    });
    let worker = worker_state(&env, "worker").expect("the worker is listed");
    assert_eq!(worker["state"], "HEALTHY", "{worker}");
    if let Some(dom) = render_page(&scheduler.addr) {
        assert!(
            dom.contains("<tr data-worker=\"worker\"><td>worker</td>")
                && dom.contains("<td>HEALTHY</td>"),
            "the status page lists the worker:\n{dom}"
        );
    }

    // The task ran on the worker: its output is in the worker's log, not the
    // scheduler's, and the scheduler serves it.
    assert!(env
        .logs(&["--node", "node11", "--stream", "stdout"])
        .is_empty());
    let (status, answer) = scheduler
        .post(r#"{"l": {"handler": "task_logs", "log_type": "stdout", "nodes": ["node11"]}}"#);
    assert_eq!(status, 200, "{answer}");
    let lines = answer["l"]["data"]["lines"].as_array().unwrap();
    assert!(
        lines.iter().any(|l| l[0] == "simple_job"
            && l[1] == "node11"
            && l[3]
                .as_str()
                .unwrap()
                .starts_with("I got these arguments: node11")),
        "{answer}"
    );
}

#[test]
fn two_workers_share_the_load_under_a_worker_level_limit() {
    let env = Env::new();
    env.config(&config(r#"{"slots": {"limit": 2, "default": 1}}"#, ""));
    let (task, ledger) = holding_task(&env);
    let scheduler = quick_scheduler(&env);
    let _w1 = Worker::start(&env, &scheduler, "w1", &task);
    let _w2 = Worker::start(&env, &scheduler, "w2", &task);
    env.wait_for("all four tasks running", || starts(&ledger).len() == 4);
    let mut per_worker = std::collections::BTreeMap::new();
    for (_, worker, _) in starts(&ledger) {
        *per_worker.entry(worker).or_insert(0) += 1;
    }
    assert_eq!(
        per_worker,
        [("w1".to_string(), 2), ("w2".to_string(), 2)]
            .into_iter()
            .collect(),
        "each worker holds 2 slots: {}",
        read(&ledger)
    );
    release(&env, "all");
    env.wait_for("every task done", || all_done(&env.status_json(&[]), "j"));
    assert_eq!(overlaps(&ledger), Vec::<String>::new());
    assert!(
        runs_per_node(&ledger).values().all(|&n| n == 1),
        "{}",
        read(&ledger)
    );
}

#[test]
fn a_killed_worker_s_tasks_run_again_elsewhere_only_once_they_are_dead() {
    let env = Env::new();
    env.config(&config("{}", ""));
    let (task, ledger) = holding_task(&env);
    let scheduler = fast_scheduler(&env);
    let first = Worker::start(&env, &scheduler, "first", &task);
    env.wait_for("four tasks on the first worker", || {
        starts(&ledger).len() == 4
    });
    let pids: Vec<i32> = starts(&ledger).iter().map(|s| s.2).collect();

    first.signal(Signal::SIGKILL);
    env.wait_for("the killed worker's tasks to die with it", || {
        pids.iter().all(|&p| !alive(p))
    });
    let _second = Worker::start(&env, &scheduler, "second", &task);
    env.wait_for("the lost tasks to run again on the second worker", || {
        starts(&ledger).iter().filter(|s| s.1 == "second").count() == 4
    });
    let lost = worker_state(&env, "first").expect("still listed");
    assert_eq!(lost["state"], "MUST_DIE", "{lost}");
    release(&env, "all");
    env.wait_for("every task done", || all_done(&env.status_json(&[]), "j"));
    assert_eq!(
        overlaps(&ledger),
        Vec::<String>::new(),
        "a node ran in two places"
    );
    assert!(
        runs_per_node(&ledger).values().all(|&n| n == 2),
        "{}",
        read(&ledger)
    );
    for node in ["node11", "node12", "node21", "node22"] {
        let t = env.task("j", node);
        assert_eq!(t["attempts"], 2, "{t}\n{}", read(&ledger));
    }
}

#[test]
fn a_frozen_worker_kills_its_tasks_and_exits_once_resumed_and_its_late_reports_count_once() {
    let env = Env::new();
    env.config(&config("{}", r#", "backoff": [3600, "fail"]"#));
    let (task, ledger) = holding_task(&env);
    let scheduler = fast_scheduler(&env);
    let worker = Worker::start(&env, &scheduler, "frozen", &task);
    env.wait_for("four tasks running", || starts(&ledger).len() == 4);
    let pids: Vec<i32> = starts(&ledger).iter().map(|s| s.2).collect();

    worker.signal(Signal::SIGSTOP);
    env.wait_for("the scheduler to lose the frozen worker", || {
        worker_state(&env, "frozen").is_some_and(|w| w["state"] == "MUST_DIE")
    });
    env.wait_for("its tasks recorded as lost", || {
        count(&env.status_json(&[]), "j", "error_backoff") == 4
    });
    assert!(
        pids.iter().all(|&p| alive(p)),
        "a frozen worker cannot kill"
    );

    worker.signal(Signal::SIGCONT);
    let (code, err) = worker.wait();
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("killed its tasks and exited"), "{err}");
    assert!(pids.iter().all(|&p| !alive(p)), "its tasks died with it");
    // The killed runs' own statuses arrive late and replace the stand-ins, once.
    env.wait_for("the late reports recorded", || {
        count(&env.status_json(&[]), "j", "incomplete") == 4
    });
    for node in ["node11", "node12", "node21", "node22"] {
        let t = env.task("j", node);
        assert_eq!(t["attempts"], 1, "{t}");
    }
    assert!(
        runs_per_node(&ledger).values().all(|&n| n == 1),
        "{}",
        read(&ledger)
    );
    drop(scheduler);
}

/// A free loopback port for a scheduler that must come back on the same address.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_restarted_scheduler_rediscovers_running_tasks_starts_none_twice_and_keeps_statuses_sent_meanwhile(
) {
    let env = Env::new();
    env.config(&config("{}", ""));
    let (task, ledger) = holding_task(&env);
    let listen = format!("127.0.0.1:{}", free_port());
    // Workers outlive a short scheduler outage; a long startup wait that only
    // worker-set consensus can end early.
    let flags = [
        "--caution-startup-wait-for-workers",
        "1",
        "--worker-check-interval",
        "1",
    ];
    let first = scheduler(&env, &listen, &flags);
    let _worker = Worker::start(&env, &first, "w", &task);
    env.wait_for("four tasks running", || starts(&ledger).len() == 4);

    kill(Pid::from_raw(first.pid()), Signal::SIGKILL).unwrap();
    drop(first);
    release(&env, "node11");
    env.wait_for("node11 to end while no scheduler listens", || {
        read(&ledger).contains("end node11")
    });

    let second = scheduler(
        &env,
        &listen,
        &[
            "--caution-startup-wait-for-workers",
            "40",
            "--worker-check-interval",
            "1",
        ],
    );
    env.wait_for("node11's status, sent during the restart, recorded", || {
        env.task("j", "node11")["status"] == "done"
    });
    let status = env.status_json(&[]);
    assert_eq!(count(&status, "j", "running"), 3, "{status}");
    env.wait_for("the worker healthy under the new scheduler", || {
        worker_state(&env, "w").is_some_and(|w| w["state"] == "HEALTHY")
    });
    release(&env, "all");
    env.wait_for("every task done", || all_done(&env.status_json(&[]), "j"));
    assert_eq!(overlaps(&ledger), Vec::<String>::new());
    assert!(
        runs_per_node(&ledger).values().all(|&n| n == 1),
        "{}",
        read(&ledger)
    );
    drop(second);
}

#[test]
fn a_new_worker_with_a_lost_worker_s_shard_id_replaces_it() {
    let env = Env::new();
    env.config(&config("{}", ""));
    let (task, ledger) = holding_task(&env);
    let scheduler = fast_scheduler(&env);
    let old = Worker::start(&env, &scheduler, "shard", &task);
    env.wait_for("four tasks on the old worker", || {
        starts(&ledger).len() == 4
    });
    let old_instance = worker_state(&env, "shard").unwrap()["instance"].clone();
    old.signal(Signal::SIGKILL);
    drop(old);

    let _new = Worker::start(&env, &scheduler, "shard", &task);
    env.wait_for("the new instance healthy on the shard", || {
        worker_state(&env, "shard")
            .is_some_and(|w| w["state"] == "HEALTHY" && w["instance"] != old_instance)
    });
    env.wait_for("the lost tasks to run again", || starts(&ledger).len() == 8);
    release(&env, "all");
    env.wait_for("every task done", || all_done(&env.status_json(&[]), "j"));
    assert_eq!(
        overlaps(&ledger),
        Vec::<String>::new(),
        "a node ran in two places"
    );
    assert!(
        runs_per_node(&ledger).values().all(|&n| n == 2),
        "{}",
        read(&ledger)
    );
}

#[test]
fn bistro_kill_of_a_task_on_a_worker_is_delivered_by_the_scheduler() {
    let env = Env::new();
    env.config(&config(
        "{}",
        r#", "backoff": [3600, "fail"], "filters": {"level2": {"whitelist": ["node11"]}}"#,
    ));
    let (task, ledger) = holding_task(&env);
    let scheduler = quick_scheduler(&env);
    let _worker = Worker::start(&env, &scheduler, "w", &task);
    env.wait_for("node11 running on the worker", || {
        starts(&ledger).len() == 1
    });
    let pid = starts(&ledger)[0].2;

    env.ok(&["kill", "j", "node11"]);
    env.wait_for("the task killed on the worker", || !alive(pid));
    env.wait_for("its end recorded", || {
        env.task("j", "node11")["status"] == "incomplete"
    });
    assert_eq!(env.task("j", "node11")["attempts"], 1);
    assert!(
        !read(&ledger).contains("end node11"),
        "it did not run to its end"
    );
}

#[test]
fn a_task_on_a_worker_past_its_timeout_is_killed_there_and_backs_off() {
    let env = Env::new();
    env.config(&config(
        "{}",
        r#", "task_timeout_sec": 1, "backoff": [3600, "fail"], "filters": {"level2": {"whitelist": ["node11"]}}"#,
    ));
    let (task, ledger) = holding_task(&env);
    let scheduler = quick_scheduler(&env);
    let _worker = Worker::start(&env, &scheduler, "w", &task);
    env.wait_for("node11 running on the worker", || {
        starts(&ledger).len() == 1
    });
    let pid = starts(&ledger)[0].2;
    env.wait_for("the task killed on the worker at its timeout", || {
        !alive(pid)
    });
    env.wait_for("its timeout recorded", || {
        env.task("j", "node11")["status"] == "error_backoff"
    });
    assert_eq!(
        env.task("j", "node11")["data"]["exception"],
        "timed out after 1 s"
    );
    assert!(
        !read(&ledger).contains("end node11"),
        "it did not run to its end"
    );
}

#[test]
fn a_worker_named_as_the_instance_node_is_warned_about() {
    let env = Env::new();
    env.config(&config("{}", ""));
    let (task, ledger) = holding_task(&env);
    let log = env.path("daemon.log");
    // The scheduler's instance node is "scheduler", and so is the worker's shard.
    let scheduler = Served::start_logging(
        &env,
        &[
            "daemon",
            "--http",
            "127.0.0.1:0",
            "--instance-node-name",
            "scheduler",
            "--caution-startup-wait-for-workers",
            "1",
        ],
        Some(&log),
    );
    let _worker = Worker::start(&env, &scheduler, "scheduler", &task);
    env.wait_for("a task on the worker", || !starts(&ledger).is_empty());
    env.wait_for("the warning", || {
        read(&log).contains("worker scheduler has the instance node's name")
    });
    let said = read(&log);
    assert!(said.contains("--instance-node-name NAME"), "{said}");
    assert_eq!(
        said.matches("has the instance node's name").count(),
        1,
        "once while it lasts: {said}"
    );
    release(&env, "all");
}

#[test]
fn a_worker_without_the_scheduler_s_secret_is_refused() {
    let env = Env::new();
    env.config(&config("{}", ""));
    let (task, ledger) = holding_task(&env);
    let scheduler = quick_scheduler(&env);
    let guess = env.path("guessed.token");
    std::fs::write(&guess, "0".repeat(64)).unwrap();
    let impostor = Worker::start_with_secret(&env, &scheduler, "impostor", &task, &guess);
    env.wait_for("the impostor's heartbeat refused", || {
        impostor
            .stderr
            .lock()
            .unwrap()
            .contains("secret sent is wrong")
    });
    let reply = scheduler.request(
        "POST",
        "/rpc/heartbeat",
        &[("Authorization", "Bearer nope")],
        b"{}",
    );
    assert_eq!(reply.status, 401, "{:?}", reply.json());
    let (code, err) = {
        impostor.signal(Signal::SIGTERM);
        impostor.wait()
    };
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("secret sent is wrong"), "{err}");
    assert!(worker_state(&env, "impostor").is_none());
    assert!(starts(&ledger).is_empty());
}

#[test]
fn a_stopped_worker_kills_its_tasks_and_exits() {
    let env = Env::new();
    env.config(&config("{}", r#", "backoff": [3600, "fail"]"#));
    let (task, ledger) = holding_task(&env);
    let scheduler = quick_scheduler(&env);
    let worker = Worker::start(&env, &scheduler, "w", &task);
    env.wait_for("four tasks running", || starts(&ledger).len() == 4);
    let pids: Vec<i32> = starts(&ledger).iter().map(|s| s.2).collect();
    worker.signal(Signal::SIGTERM);
    let (code, err) = worker.wait();
    assert_eq!(code, Some(0), "{err}");
    assert!(pids.iter().all(|&p| !alive(p)), "its tasks were killed");
    env.wait_for("the killed tasks' statuses recorded", || {
        count(&env.status_json(&[]), "j", "incomplete") == 4
    });
    drop(scheduler);
}

#[test]
fn a_task_that_ignores_sigterm_still_dies_with_its_killed_worker() {
    let env = Env::new();
    // The job's own kill would only send SIGTERM, which the task ignores.
    env.config(&config(
        "{}",
        r#", "kill_subprocess": {"method": "term"},
           "filters": {"level2": {"whitelist": ["node11"]}}"#,
    ));
    let pid_file = env.path("pid");
    let task = env.script(
        "stubborn.sh",
        &format!(
            "trap '' TERM\necho $$ > {}.tmp && mv {p}.tmp {p}\nwhile :; do sleep 0.05; done",
            pid_file.display(),
            p = pid_file.display()
        ),
    );
    let scheduler = scheduler(
        &env,
        "127.0.0.1:0",
        &[
            "--caution-startup-wait-for-workers",
            "1",
            "--worker-check-interval",
            "1",
            "--caution-worker-suicide-task-kill-wait-ms",
            "300",
        ],
    );
    let worker = Worker::start(&env, &scheduler, "w", &task);
    env.wait_for("the task running", || pid_file.exists());
    let pid: i32 = read(&pid_file).trim().parse().unwrap();
    worker.signal(Signal::SIGKILL);
    env.wait_for(
        "the stubborn task killed after the suicide kill wait",
        || !alive(pid),
    );
    drop(scheduler);
}

#[test]
fn public_load_on_the_scheduler_s_port_never_costs_a_worker_its_heartbeats() {
    let env = Env::new();
    env.config(&config("{}", r#", "backoff": [3600, "fail"]"#));
    let (task, ledger) = holding_task(&env);
    let scheduler = fast_scheduler(&env);
    let _worker = Worker::start(&env, &scheduler, "w", &task);
    env.wait_for("four tasks running", || starts(&ledger).len() == 4);
    let pids: Vec<i32> = starts(&ledger).iter().map(|s| s.2).collect();

    // Twice the time after which a silent worker is lost (4 s): 2,000 slow
    // connections on the one --http port, and clients keeping the API busy.
    let slow = Tricklers::start(&scheduler.addr, 2000, std::time::Duration::from_millis(500));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy: Vec<_> = (0..4)
        .map(|_| {
            let (addr, stop) = (scheduler.addr.clone(), std::sync::Arc::clone(&stop));
            std::thread::spawn(move || {
                let body = r#"{"h": {"handler": "histogram"}, "r": {"handler": "running_tasks"}}"#;
                let raw = format!(
                    "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let mut answered = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    if raw_request(&addr, raw.as_bytes()).status == 200 {
                        answered += 1;
                    }
                }
                answered
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_secs(8));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let answered: usize = busy.into_iter().map(|t| t.join().unwrap()).sum();
    drop(slow);
    assert!(answered > 0, "the API kept answering too");
    assert_eq!(
        worker_state(&env, "w").unwrap()["state"],
        "HEALTHY",
        "the worker's heartbeats got through"
    );
    assert!(pids.iter().all(|&p| alive(p)), "no task was killed");
    assert_eq!(count(&env.status_json(&[]), "j", "running"), 4);
    std::fs::write(env.path("release-all"), "").unwrap();
    env.wait_for("the tasks done", || {
        count(&env.status_json(&[]), "j", "done") == 4
    });
}
