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
