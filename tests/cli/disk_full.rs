//! Running out of space: writes fail with a clear error, nothing already stored is lost.

use crate::util::*;

#[test]
fn a_file_size_limit_during_a_noisy_task_loses_log_lines_but_not_the_status() {
    let env = Env::new();
    let task = env.script("task.sh", "seq 1 200000\necho done > \"$2\"");
    env.config(&config_with_jobs(
        1,
        r#""bistro_job->j": {"owner": "me", "filters": {"level2": {"whitelist": ["node11"]}}}"#,
    ));
    env.ok(&["init"]);
    let bistro = assert_cmd::cargo::cargo_bin("bistro");
    // Writes past 512 KiB fail with EFBIG (SIGXFSZ ignored) in the tick and its supervisor.
    let limited = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f 512; exec {} --state-dir {} tick --worker-command {}",
            bistro.display(),
            env.state().display(),
            task.display()
        ))
        .output()
        .unwrap();
    assert!(
        limited.status.success(),
        "{}",
        String::from_utf8_lossy(&limited.stderr)
    );
    let status = env.tick_until(&[], |s| count(s, "j", "done") == 1);
    assert_eq!(count(&status, "j", "done"), 1);
    let logs = env.logs(&["--stream", "stdout"]);
    assert!(
        !logs.is_empty() && logs.len() < 200_000,
        "{} lines stored",
        logs.len()
    );
    for db in ["task_logs.sql3", "statuses.sql3"] {
        let conn = rusqlite::Connection::open(env.state().join(db)).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "{db}");
    }
}

#[test]
fn writing_to_a_full_stdout_fails_cleanly() {
    let env = Env::new();
    env.ok(&["init"]);
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = env.spawn_cmd(&["status"]).stdout(full).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("No space left on device") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

/// A small tmpfs mounted over a fresh directory, unmounted when dropped; `None` (the
/// test says it is skipped) where this process may not mount.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(env: &Env, options: &str) -> Option<Self> {
        let dir = env.path("small");
        std::fs::create_dir_all(&dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&dir)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "skipped: cannot mount a tmpfs (needs root): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        Some(Self(dir))
    }

    /// Fills the file system: files until no inode is left, or one file until no byte is.
    fn fill(&self, inodes: bool) {
        if inodes {
            for i in 0.. {
                if std::fs::File::create(self.0.join(format!("fill{i}"))).is_err() {
                    break;
                }
            }
        } else {
            use std::io::Write;
            let mut f = std::fs::File::create(self.0.join("fill0")).unwrap();
            while f.write_all(&[0; 65536]).is_ok() {}
        }
    }

    fn free(&self) {
        for entry in std::fs::read_dir(&self.0).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("fill")
            {
                std::fs::remove_file(path).unwrap();
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Ticks on a full file system fail with its true name, the reading commands still
/// answer, and once space returns the tasks run with no attempt used.
fn a_full_file_system_is_named_and_loses_nothing(inodes: bool, options: &str) {
    let env = Env::new();
    let Some(fs) = Tmpfs::mount(&env, options) else {
        return;
    };
    let state = fs.0.join("state");
    let bistro = |args: &[&str]| {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("bistro"))
            .env_remove("BISTRO_CONFIG")
            .args(["--state-dir", state.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    };
    let task = env.script("task.sh", "echo done > \"$2\"");
    let first = env.path("first.json");
    std::fs::write(
        &first,
        config_with_jobs(4, r#""bistro_job->j": {"owner": "me"}"#),
    )
    .unwrap();
    assert!(bistro(&["init", "--config", first.to_str().unwrap()])
        .status
        .success());
    let worker = ["--worker-command", task.to_str().unwrap()];
    let tick = |extra: &[&str]| bistro(&[&["tick"][..], extra].concat());
    assert!(tick(&worker).status.success());
    // A new job arrives (a rename needs no new inode), then the disk fills.
    let next = state.join("next.json");
    std::fs::write(
        &next,
        config_with_jobs(
            4,
            r#""bistro_job->j": {"owner": "me"}, "bistro_job->k": {"owner": "me"}"#,
        ),
    )
    .unwrap();
    env.wait_for("j to finish", || {
        tick(&[]);
        let out = bistro(&["status", "--json"]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).is_ok_and(|s| all_done(&s, "j"))
    });
    fs.fill(inodes);
    std::fs::rename(&next, state.join("config.json")).unwrap();
    for _ in 0..3 {
        let out = tick(&[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("No space left on device") && stderr.contains("df -i"),
            "{stderr}"
        );
        assert!(!stderr.contains("supervisor was lost"), "{stderr}");
    }
    for args in [&["status"][..], &["logs"], &["why", "j", "node11"]] {
        let out = bistro(args);
        assert!(
            out.status.success(),
            "{args:?} on a full disk: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    fs.free();
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        tick(&[]);
        let out = bistro(&["status", "--json", "--tasks"]);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if all_done(&status, "k") {
            for t in status["tasks"].as_array().unwrap() {
                assert_eq!(
                    t["attempts"], 1,
                    "a run that could not start used a retry: {t}"
                );
            }
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{status}");
    }
}

#[test]
fn out_of_inodes_ticks_fail_naming_the_cause_and_lose_nothing() {
    a_full_file_system_is_named_and_loses_nothing(true, "size=64m,nr_inodes=400");
}

#[test]
fn out_of_bytes_ticks_fail_naming_the_cause_and_lose_nothing() {
    a_full_file_system_is_named_and_loses_nothing(false, "size=4m");
}

/// One task (job `j`, node `node11`) started by a tick over a state dir on a tmpfs
/// mounted with `options`, whose `body` runs with `$READY` and `$GO` set to two files
/// outside the tmpfs; None where no tmpfs can be mounted. Returns the scratch dir,
/// the tmpfs, the state dir and the task's ready and go files.
fn one_task_on_a_tmpfs(options: &str, body: &str) -> Option<OnTmpfs> {
    let env = Env::new();
    let fs = Tmpfs::mount(&env, options)?;
    let state = fs.0.join("state");
    let (ready, go) = (env.path("ready"), env.path("go"));
    let task = env.script(
        "task.sh",
        &format!("READY={}\nGO={}\n{body}", ready.display(), go.display()),
    );
    let config = env.path("config.json");
    std::fs::write(
        &config,
        config_with_jobs(
            1,
            r#""bistro_job->j": {"owner": "me", "filters": {"level2": {"whitelist": ["node11"]}}}"#,
        ),
    )
    .unwrap();
    let on = OnTmpfs {
        fs,
        env,
        state,
        ready,
        go,
    };
    assert!(on
        .bistro(&["init", "--config", config.to_str().unwrap()])
        .status
        .success());
    assert!(on
        .bistro(&["tick", "--worker-command", task.to_str().unwrap()])
        .status
        .success());
    Some(on)
}

/// What [`one_task_on_a_tmpfs`] made (the tmpfs first: fields drop in order, and it
/// is unmounted before the scratch dir that holds it is removed).
struct OnTmpfs {
    fs: Tmpfs,
    env: Env,
    state: std::path::PathBuf,
    ready: std::path::PathBuf,
    go: std::path::PathBuf,
}

impl OnTmpfs {
    /// Runs `bistro ARGS...` over the state dir on the tmpfs.
    fn bistro(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("bistro"))
            .env_remove("BISTRO_CONFIG")
            .args(["--state-dir", self.state.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    }

    /// The status of `node11` once no task runs, ticking meanwhile.
    fn settled_task(&self) -> serde_json::Value {
        self.env.wait_for("the task to be recorded", || {
            self.bistro(&["tick"]);
            let out = self.bistro(&["status", "--json", "--tasks"]);
            serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .is_ok_and(|s| count(&s, "j", "running") == 0)
        });
        let out = self.bistro(&["status", "--json", "--tasks"]);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        status["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["node"] == "node11")
            .unwrap()
            .clone()
    }
}

#[test]
fn a_result_that_finds_no_space_waits_for_space_and_is_recorded_once() {
    let Some(on) = one_task_on_a_tmpfs(
        "size=8m",
        "echo done > \"$2\"\necho $$ > \"$READY\"\nwhile [ ! -e \"$GO\" ]; do sleep 0.05; done",
    ) else {
        return;
    };
    on.env.wait_for("the task to write its status", || {
        read(&on.ready).ends_with('\n')
    });
    let pid: i32 = read(&on.ready).trim().parse().unwrap();
    on.fs.fill(false);
    std::fs::write(&on.go, "").unwrap();
    on.env.wait_for("the task to exit", || !alive(pid));
    // Its result cannot be written: the run is kept, and counts as running.
    for _ in 0..10 {
        let out = on.bistro(&["status", "--json"]);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(count(&status, "j", "running"), 1, "{status}");
    }
    on.fs.free();
    assert_eq!(on.settled_task()["status"], "done");
    let out = on.bistro(&["logs", "--stream", "statuses"]);
    let events = String::from_utf8_lossy(&out.stdout);
    assert!(!events.contains("lost"), "{events}");
    assert_eq!(events.matches("got_status").count(), 1, "{events}");
}

#[test]
fn a_daemon_out_of_inodes_keeps_running_tasks_that_report_their_status() {
    let env = Env::new();
    let Some(fs) = Tmpfs::mount(&env, "size=64m,nr_inodes=300") else {
        return;
    };
    let state = fs.0.join("state");
    let starts = env.path("starts");
    let task = env.script(
        "task.sh",
        &format!(
            "echo \"$1\" >> {}\nsleep 0.3\necho done > \"$2\"",
            starts.display()
        ),
    );
    let config = env.path("config.json");
    std::fs::write(
        &config,
        config_with_leaves(30, 4, r#""working_wait": 0.05,"#),
    )
    .unwrap();
    let bistro = || {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("bistro"));
        cmd.env_remove("BISTRO_CONFIG")
            .args(["--state-dir", state.to_str().unwrap()]);
        cmd
    };
    assert!(bistro()
        .args(["init", "--config", config.to_str().unwrap()])
        .output()
        .unwrap()
        .status
        .success());
    let mut daemon = bistro()
        .args(["daemon", "--exit-when-done", "--worker-command"])
        .arg(&task)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _watchdog = Watchdog::arm(daemon.id());
    // Once finished runs have left spare directories, the inodes run out.
    env.wait_for("a first wave of tasks", || {
        read(&starts).lines().count() >= 8
    });
    fs.fill(true);
    assert!(daemon.wait().unwrap().success());
    let out = bistro()
        .args(["status", "--json", "--tasks"])
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(all_done(&status, "j"), "{status}");
    for t in status["tasks"].as_array().unwrap() {
        assert_eq!(t["attempts"], 1, "{t}");
    }
}

#[test]
fn a_task_reports_its_status_on_a_file_system_out_of_bytes() {
    let Some(on) = one_task_on_a_tmpfs(
        "size=8m",
        "echo $$ > \"$READY\"\nwhile [ ! -e \"$GO\" ]; do sleep 0.05; done\necho done > \"$2\"",
    ) else {
        return;
    };
    on.env
        .wait_for("the task to start", || read(&on.ready).ends_with('\n'));
    let pid: i32 = read(&on.ready).trim().parse().unwrap();
    // Not one byte left when the task writes its status line.
    on.fs.fill(false);
    std::fs::write(&on.go, "").unwrap();
    on.env.wait_for("the task to exit", || !alive(pid));
    on.fs.free();
    let task = on.settled_task();
    assert_eq!(
        task["status"], "done",
        "its own status line, no retry: {task}"
    );
    assert_eq!(task["attempts"], 1, "{task}");
}
