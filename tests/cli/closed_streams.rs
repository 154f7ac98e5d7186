//! A closed stdout or stderr never makes a command panic: the output is lost, the
//! command goes on or ends quietly.

use crate::util::*;
use std::io::Read;

/// A pipe whose reading end is already closed: every write to it fails with EPIPE.
fn closed_pipe() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer
}

#[test]
fn a_daemon_whose_stderr_reader_went_away_keeps_running_and_stops_cleanly() {
    let env = Env::new();
    env.config(&config_with_jobs(1, r#""bistro_job->j": {"owner": "me"}"#));
    env.ok(&["init"]);
    let ready = env.path("ready");
    let task = env.script(
        "task.sh",
        &format!("touch {}\necho done > \"$2\"", ready.display()),
    );
    let mut daemon = env
        .spawn_cmd(&[
            "daemon",
            "--worker-command",
            task.to_str().unwrap(),
            "--http",
            "127.0.0.1:0",
            "-v",
        ])
        .stderr(closed_pipe())
        .spawn()
        .unwrap();
    let _watchdog = Watchdog::arm(daemon.id());
    // It lived past its `listening on` line and its info logs: it runs tasks.
    env.wait_for("a task to run", || ready.exists());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = daemon.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn a_failing_command_with_a_closed_stderr_keeps_its_exit_code() {
    let env = Env::new();
    let out = env
        .spawn_cmd(&["status"])
        .stderr(closed_pipe())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "no state: a usage error");
    let out = env
        .spawn_cmd(&["manpage", "nosuch"])
        .stderr(closed_pipe())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_closed_stdout_ends_data_commands_quietly() {
    let env = Env::new();
    env.config(&config_with_jobs(1, r#""bistro_job->j": {"owner": "me"}"#));
    env.ok(&["init"]);
    for args in [
        &["why", "j", "node11"][..],
        &["forgive", "j"],
        &["status", "--tasks"],
    ] {
        let mut child = env
            .spawn_cmd(args)
            .stdout(closed_pipe())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
