//! The Slurm runner against a real single-node cluster that each test starts for
//! itself (`examples/slurm/start.sh`, stopped by `stop.sh` when the test ends).
//! Without Slurm's programs the tests skip loudly, except under CI, where they must run.

use crate::util::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A throwaway cluster, stopped when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    conf: String,
}

impl Cluster {
    /// Starts one, or None (after a loud notice) when Slurm is not installed and we
    /// are not under CI.
    fn start() -> Option<Self> {
        let installed = ["/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/bin/sbatch"]
            .iter()
            .all(|p| Path::new(p).exists());
        if !installed {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but Slurm is not installed (.ci/run installs slurmctld, slurmd, slurm-client, munge)"
            );
            eprintln!("NOTICE: Slurm is not installed; skipping the Slurm runner test (apt-get install slurmctld slurmd slurm-client munge)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("bash")
            .arg(script("start.sh"))
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "start.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let conf = stdout
            .lines()
            .find_map(|l| l.strip_prefix("export SLURM_CONF="))
            .expect("start.sh prints the export line")
            .to_string();
        Some(Self { dir, conf })
    }

    /// A scratch dir whose commands talk to this cluster.
    fn env(&self) -> Env {
        let mut env = Env::new();
        env.vars.push(("SLURM_CONF".into(), self.conf.clone()));
        env
    }

    /// Runs a Slurm client command against this cluster.
    fn client(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new(program)
            .args(args)
            .env("SLURM_CONF", &self.conf)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn pid(&self, name: &str) -> i32 {
        read(&self.dir.path().join(name)).trim().parse().unwrap()
    }

    /// Stops the controller (jobs keep running on the node).
    fn stop_controller(&self) {
        let pid = self.pid("slurmctld.pid");
        Command::new("kill").arg(pid.to_string()).status().unwrap();
        let deadline = Instant::now() + DEADLINE;
        while alive(pid) {
            assert!(Instant::now() < deadline, "slurmctld did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the controller again, waiting until it answers.
    fn start_controller(&self) {
        let status = Command::new("/usr/sbin/slurmctld")
            .args(["-f", &self.conf])
            .env("SLURM_CONF", &self.conf)
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + DEADLINE;
        while !self.client("sinfo", &["-h", "-o", "%t"]).contains("idle")
            && !self.client("sinfo", &["-h", "-o", "%t"]).contains("mix")
            && !self.client("sinfo", &["-h", "-o", "%t"]).contains("alloc")
        {
            assert!(Instant::now() < deadline, "slurmctld did not come back");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script("stop.sh"))
            .arg(self.dir.path())
            .status();
    }
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/slurm")
        .join(name)
}

/// `--runner slurm --worker-command TASK`: the flags of a tick that submits to Slurm.
fn on_slurm(task: &Path) -> [&str; 4] {
    [
        "--runner",
        "slurm",
        "--worker-command",
        task.to_str().unwrap(),
    ]
}

/// The task of `status --json --tasks` for (job, node).
fn task_of(status: &Value, job: &str, node: &str) -> Value {
    status["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["job"] == job && t["node"] == node)
        .cloned()
        .unwrap()
}

fn settled(status: &Value, job: &str, node: &str) -> bool {
    let t = task_of(status, job, node);
    t["status"] != "running" && t["status"] != "not_started"
}

#[test]
fn seed_demo_runs_to_completion_on_slurm_from_a_cron_style_tick_loop() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let env = cluster.env();
    let ledger = env.path("ledger");
    let task = env.script(
        "task.sh",
        &format!(
            "echo \"start $1\" >> {l}\nsleep 0.5\necho \"I got these arguments: $@\"\necho 'stderr is also logged' >&2\necho \"end $1\" >> {l}\necho done > \"$2\"",
            l = ledger.display()
        ),
    );
    env.ok(&["init"]);
    // Run directories and working directories on the "shared" file system, the
    // databases on the scheduler's disk (README: Running on Slurm).
    let shared = env.path("shared");
    for dir in ["running", "jobs"] {
        std::fs::create_dir_all(shared.join(dir)).unwrap();
        std::fs::remove_dir_all(env.state().join(dir)).unwrap();
        std::os::unix::fs::symlink(shared.join(dir), env.state().join(dir)).unwrap();
    }
    // The first tick names the runner and the command; the cron line repeats neither.
    env.ok(&[
        "tick",
        "--runner",
        "slurm",
        "--worker-command",
        task.to_str().unwrap(),
    ]);
    let status = env.tick_until(&[], |s| all_done(s, "simple_job"));
    assert_eq!(count(&status, "simple_job", "total"), 4);
    let seen = Ledger::read(&ledger);
    assert_eq!(seen.starts.len(), 4);
    assert!(seen.each_ran_once(), "a task ran twice: {:?}", seen.starts);
    // The instance's limit of 3 held although Slurm had 16 slots.
    assert!(seen.peak <= 3, "{} tasks ran at once", seen.peak);
    // Output came back into the task-log database.
    let stderr = env.logs(&["--node", "node21", "--stream", "stderr"]);
    assert_eq!(stderr[0]["line"], "stderr is also logged\n");
    let stdout = env.logs(&["--node", "node11", "--stream", "stdout"]);
    assert!(stdout[0]["line"]
        .as_str()
        .unwrap()
        .starts_with("I got these arguments: node11 "));
    assert!(
        run_dirs(&env).is_empty(),
        "run directories are removed once recorded"
    );
}

#[test]
fn a_task_without_a_status_or_killed_by_a_signal_backs_off_with_how_it_ended() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let env = cluster.env();
    let task = env.script(
        "task.sh",
        "case \"$1\" in node11) exit 3 ;; node12) kill -9 $$ ;; *) echo done > \"$2\" ;; esac",
    );
    // The files compute nodes need go to bistro_settings.slurm.run_dir.
    let shared = env.path("shared");
    env.config(
        &config_with_jobs(
            4,
            r#""bistro_job->j": {"owner": "me", "backoff": [3600, "fail"]}"#,
        )
        .replace(
            r#""backoff": [1, 2, "fail"]"#,
            &format!(
                r#""backoff": [1, 2, "fail"], "slurm": {{"run_dir": "{}"}}"#,
                shared.display()
            ),
        ),
    );
    let status = env.tick_until(&on_slurm(&task), |s| {
        ["node11", "node12", "node21"]
            .iter()
            .all(|n| settled(s, "j", n))
    });
    let exited = task_of(&status, "j", "node11");
    assert_eq!(exited["status"], "error_backoff", "{exited}");
    assert!(
        exited.to_string().contains("exited with status 3"),
        "{exited}"
    );
    let signalled = task_of(&status, "j", "node12");
    assert_eq!(signalled["status"], "error_backoff", "{signalled}");
    assert!(
        signalled.to_string().contains("killed by signal 9"),
        "{signalled}"
    );
    assert_eq!(task_of(&status, "j", "node21")["status"], "done");
    let left: Vec<_> = std::fs::read_dir(&shared).unwrap().collect();
    assert!(
        left.is_empty(),
        "run files are removed once recorded: {left:?}"
    );
}

#[test]
fn bistro_kill_and_orphan_kills_cancel_the_slurm_job_and_end_incomplete() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let env = cluster.env();
    let task = env.script("task.sh", "sleep 300\necho done > \"$2\"");
    let config = |enabled: bool| {
        config_with_jobs(
            4,
            &format!(
                r#""bistro_job->j": {{"owner": "me", "enabled": {enabled}, "backoff": [3600, "fail"],
                   "kill_orphan_tasks_after_sec": 0, "kill_subprocess": {{"method": "term"}},
                   "filters": {{"level2": {{"whitelist": ["node11", "node12"]}}}}}}"#
            ),
        )
    };
    env.config(&config(true));
    env.tick_until(&on_slurm(&task), |s| count(s, "j", "running") == 2);
    // Both jobs are really running on the node before they are killed.
    env.wait_for("both Slurm jobs to run", || {
        cluster
            .client("squeue", &["-h", "-t", "running", "-o", "%i"])
            .lines()
            .count()
            == 2
    });
    let why = env.ok(&["why", "j", "node11"]);
    assert!(why.contains("submitted as Slurm job"), "{why}");
    assert!(why.contains("RUNNING"), "{why}");
    // `status` shows what the last tick saw, without asking Slurm itself.
    env.ok(&["tick"]);
    let shown = env.task("j", "node11");
    let slurm = shown["slurm"].as_str().unwrap_or_default();
    assert!(
        slurm.starts_with("Slurm job ") && slurm.ends_with(", RUNNING"),
        "{shown}"
    );
    env.ok(&["kill", "j", "node11"]);
    let status = env.tick_until(&[], |s| settled(s, "j", "node11"));
    let killed = task_of(&status, "j", "node11");
    assert_eq!(killed["status"], "incomplete", "{killed}");
    // The job is disabled: node12's run is an orphan, killed at the next tick.
    env.config(&config(false));
    let status = env.tick_until(&[], |s| settled(s, "j", "node12"));
    let orphan = task_of(&status, "j", "node12");
    assert_eq!(orphan["status"], "incomplete", "{orphan}");
    assert!(cluster
        .client("squeue", &["-h", "-t", "running,pending", "-o", "%i"])
        .trim()
        .is_empty());
}

#[test]
fn an_sbatch_rejection_names_the_partition_and_loses_nothing() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let env = cluster.env();
    let task = env.script("task.sh", "echo done > \"$2\"");
    let job = |partition: &str| {
        config_with_jobs(
            4,
            &format!(
                r#""bistro_job->j": {{"owner": "me", "slurm": {{"partition": "{partition}"}}}}"#
            ),
        )
    };
    env.config(&job("nopart"));
    let out = env.run(&[
        "tick",
        "--runner",
        "slurm",
        "--worker-command",
        task.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nopart"), "{stderr}");
    let status = env.status_json(&["--tasks"]);
    assert_eq!(count(&status, "j", "running"), 0);
    assert_eq!(count(&status, "j", "done"), 0);
    assert!(run_dirs(&env).is_empty());
    env.config(&job("debug"));
    env.tick_until(&[], |s| all_done(s, "j"));
}

#[test]
fn bistro_check_names_a_bad_slurm_option() {
    let env = Env::new();
    env.config(&config_with_jobs(
        1,
        r#""bistro_job->j": {"owner": "me", "slurm": {"partiton": "x", "cpus_per_task": 0}}"#,
    ));
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("slurm.partiton"), "{text}");
    assert!(text.contains("slurm.cpus_per_task"), "{text}");
}

#[test]
fn a_scheduler_killed_between_submission_and_recording_finds_its_job_and_runs_it_once() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let env = cluster.env();
    let ledger = env.path("ledger");
    let task = probe_task(&env, &ledger, "0.2");
    // An sbatch that submits, then kills its caller (the daemon) before the answer
    // can be recorded; only the first time.
    let bin = env.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let marker = env.path("killed-once");
    std::fs::write(
        bin.join("sbatch"),
        format!(
            "#!/bin/sh\nout=$(/usr/bin/sbatch \"$@\") || exit $?\nif [ ! -e {m} ]; then touch {m}; kill -9 $PPID; sleep 5; fi\necho \"$out\"\n",
            m = marker.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("sbatch"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut env = env;
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    env.vars.push(("PATH".into(), path));
    env.config(&config_with_jobs(4, r#""bistro_job->j": {"owner": "me"}"#));
    let daemon = |exit_when_done: bool| {
        let mut args = vec![
            "daemon",
            "--runner",
            "slurm",
            "--worker-command",
            task.to_str().unwrap(),
        ];
        if exit_when_done {
            args.push("--exit-when-done");
        }
        env.run(&args)
    };
    let first = daemon(false);
    assert!(!first.status.success(), "the first daemon was killed");
    assert!(marker.exists(), "the fake sbatch ran");
    let second = daemon(true);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let status = env.status_json(&["--tasks"]);
    assert!(all_done(&status, "j"), "{status}");
    let seen = Ledger::read(&ledger);
    assert_eq!(seen.starts.len(), 4);
    assert!(seen.each_ran_once(), "a task ran twice: {:?}", seen.starts);
    assert!(seen.overlaps.is_empty());
}

#[test]
fn ticks_say_when_the_controller_is_down_for_a_minute_and_lose_nothing() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let env = cluster.env();
    let ledger = env.path("ledger");
    let task = probe_task(&env, &ledger, "4");
    env.config(&config_with_jobs(4, r#""bistro_job->j": {"owner": "me"}"#));
    env.tick_until(&on_slurm(&task), |s| count(s, "j", "running") == 4);
    env.wait_for("every task to start on the node", || {
        Ledger::read(&ledger).starts.len() == 4
    });
    cluster.stop_controller();
    // A minute without the controller: a tick that must ask Slurm says it cannot,
    // the tasks end meanwhile and are settled from their run directories, and no run
    // is given up.
    let out = env.run(&["tick"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot ask Slurm"), "{stderr}");
    let away = Instant::now();
    while away.elapsed() < Duration::from_secs(60) {
        env.ok(&["tick", "--quiet"]);
        let status = env.status_json(&[]);
        assert_eq!(
            count(&status, "j", "running") + count(&status, "j", "done"),
            4,
            "{status}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    let ended = read(&ledger)
        .lines()
        .filter(|l| l.starts_with("end "))
        .count();
    assert_eq!(ended, 4, "the tasks ended while the controller was away");
    cluster.start_controller();
    let status = env.tick_until(&[], |s| all_done(s, "j"));
    assert!(all_done(&status, "j"));
    assert!(Ledger::read(&ledger).each_ran_once());
}

#[test]
fn a_limit_per_database_host_holds_while_slurm_has_more_slots() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let env = cluster.env();
    let ledger = env.path("ledger");
    let locks = env.path("host-locks");
    std::fs::create_dir_all(&locks).unwrap();
    // Each task holds its host's lock (node11 -> node1) while it runs: a second task
    // of the same host running beside it records an overlap.
    let task = env.script(
        "task.sh",
        &format!(
            "host=${{1%?}}\nexec 9>>{locks}/$host\nflock -n 9 || echo \"overlap $1\" >> {l}\necho \"start $1\" >> {l}\nsleep 1\necho \"end $1\" >> {l}\necho done > \"$2\"",
            locks = locks.display(),
            l = ledger.display()
        ),
    );
    env.config(
        r#"{"bistro_settings": {"enabled": true,
              "nodes": {"levels": ["host", "db"], "node_sources": [{"source": "manual",
                "prefs": {"node1": ["node11", "node12", "node13"], "node2": ["node21", "node22", "node23"]}}]},
              "resources": {"host": {"host_slots": {"limit": 1, "default": 1}}}},
            "bistro_job->j": {"owner": "me"}}"#,
    );
    let status = env.tick_until(&on_slurm(&task), |s| all_done(s, "j"));
    assert_eq!(count(&status, "j", "total"), 6);
    let seen = Ledger::read(&ledger);
    assert!(
        seen.overlaps.is_empty(),
        "two tasks of one host ran at once: {:?}",
        seen.overlaps
    );
    assert!(seen.each_ran_once());
    assert_eq!(seen.peak, 2, "one task per host, both hosts at once");
}

#[test]
fn a_job_cancelled_outside_bistro_backs_off_with_slurms_state() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let env = cluster.env();
    let task = env.script("task.sh", "sleep 300\necho done > \"$2\"");
    env.config(&config_with_jobs(
        4,
        r#""bistro_job->j": {"owner": "me", "backoff": [3600, "fail"],
                             "filters": {"level2": {"whitelist": ["node11"]}}}"#,
    ));
    env.tick_until(&on_slurm(&task), |s| count(s, "j", "running") == 1);
    env.wait_for("the Slurm job to run", || {
        !cluster
            .client("squeue", &["-h", "-t", "running", "-o", "%i"])
            .trim()
            .is_empty()
    });
    let me = Command::new("id").arg("-un").output().unwrap().stdout;
    cluster.client("scancel", &["--user", String::from_utf8_lossy(&me).trim()]);
    // Once Slurm lists the job as ended, the next tick records why.
    env.wait_for("Slurm to end the job", || {
        cluster
            .client("squeue", &["-h", "-t", "all", "-o", "%T"])
            .contains("CANCELLED")
    });
    let status = env.tick_until(&[], |s| settled(s, "j", "node11"));
    let t = task_of(&status, "j", "node11");
    assert_eq!(t["status"], "error_backoff", "{t}");
    let message = t.to_string();
    assert!(
        message.contains("CANCELLED") && message.contains("not by bistro"),
        "{t}"
    );
}

#[test]
fn output_reaches_the_task_log_while_the_task_still_runs() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let env = cluster.env();
    let go = env.path("go");
    let task = env.script(
        "task.sh",
        &format!(
            "echo first\nwhile [ ! -e {go} ]; do sleep 0.05; done\necho second\necho done > \"$2\"",
            go = go.display()
        ),
    );
    env.config(&config_with_jobs(
        4,
        r#""bistro_job->j": {"owner": "me", "filters": {"level2": {"whitelist": ["node11"]}}}"#,
    ));
    env.ok(&[
        "tick",
        "--runner",
        "slurm",
        "--worker-command",
        task.to_str().unwrap(),
    ]);
    let deadline = Instant::now() + DEADLINE;
    loop {
        env.ok(&["tick", "--quiet"]);
        let lines = env.logs(&["--node", "node11", "--stream", "stdout"]);
        if !lines.is_empty() {
            assert_eq!(lines.len(), 1);
            assert_eq!(lines[0]["line"], "first\n");
            break;
        }
        assert!(Instant::now() < deadline, "no output while the task ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(env.task("j", "node11")["status"], "running");
    std::fs::write(&go, "").unwrap();
    let status = env.tick_until(&[], |s| settled(s, "j", "node11"));
    assert_eq!(task_of(&status, "j", "node11")["status"], "done");
    let lines: Vec<Value> = env.logs(&["--node", "node11", "--stream", "stdout"]);
    let text: Vec<&str> = lines.iter().map(|l| l["line"].as_str().unwrap()).collect();
    assert_eq!(text, ["first\n", "second\n"], "each line once, exact");
}

#[test]
fn a_task_past_its_timeout_is_cancelled_and_backs_off_as_timed_out() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let env = cluster.env();
    let task = env.script(
        "task.sh",
        "case \"$1\" in node11) exec sleep 600 ;; *) echo done > \"$2\" ;; esac",
    );
    env.config(&config_with_jobs(
        4,
        r#""bistro_job->j": {"owner": "me", "task_timeout_sec": 1, "backoff": [3600, "fail"]}"#,
    ));
    let status = env.tick_until(&on_slurm(&task), |s| {
        settled(s, "j", "node11") && settled(s, "j", "node12")
    });
    let timed_out = task_of(&status, "j", "node11");
    assert_eq!(timed_out["status"], "error_backoff", "{timed_out}");
    assert!(
        timed_out.to_string().contains("timed out after 1 s"),
        "{timed_out}"
    );
    assert_eq!(task_of(&status, "j", "node12")["status"], "done");
    let events = env.logs(&["--node", "node11", "--stream", "statuses"]);
    assert!(
        events
            .iter()
            .any(|e| e["line"].as_str().unwrap().contains("\"task_timed_out\"")),
        "the task log says it timed out: {events:?}"
    );
    env.wait_for("the cancelled Slurm job to leave the queue", || {
        cluster
            .client("squeue", &["-h", "-o", "%i %T"])
            .trim()
            .is_empty()
    });
}

#[test]
fn a_local_tick_says_that_slurm_runs_wait_for_a_slurm_runner() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let env = cluster.env();
    let go = env.path("go");
    let task = env.script(
        "task.sh",
        &format!(
            "while [ ! -e {} ]; do sleep 0.05; done\necho done > \"$2\"",
            go.display()
        ),
    );
    env.config(&config_with_jobs(1, r#""bistro_job->j": {"owner": "me"}"#));
    env.tick_until(&on_slurm(&task), |s| count(s, "j", "running") == 1);
    let out = env.run(&["tick", "--runner", "local"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("was submitted to Slurm") && stderr.contains("--runner slurm"),
        "{stderr}"
    );
    assert_eq!(count(&env.status_json(&[]), "j", "running"), 1);
    std::fs::write(&go, "").unwrap();
    let status = env.tick_until(&["--runner", "slurm"], |s| all_done(s, "j"));
    assert!(all_done(&status, "j"));
}
