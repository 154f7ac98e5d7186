//! Tasks that fork, hold their pipes open, escape their group or flood their output;
//! how their output lines are stored.

use crate::util::*;
use serde_json::Value;

#[test]
fn a_background_child_holding_the_output_is_killed_after_the_task_exits() {
    let env = Env::new();
    let pid_file = env.path("bg");
    let task = run_single(
        &env,
        &format!(
            "sleep 1000 &\necho $! > {}\necho done > \"$2\"",
            pid_file.display()
        ),
    );
    assert_eq!(task["status"], "done");
    let bg: i32 = read(&pid_file).trim().parse().unwrap();
    env.wait_for("the background child to die", || !alive(bg));
    let names = event_names(&env);
    assert!(
        names.contains(&"task_pipes_timeout".to_string()),
        "{names:?}"
    );
}

#[test]
fn a_child_that_escapes_its_session_cannot_hang_the_supervisor() {
    let env = Env::new();
    let pid_file = env.path("escaped");
    let task = run_single(
        &env,
        &format!(
            "setsid sh -c 'echo $$ > {}; exec sleep 1000' &\necho done > \"$2\"",
            pid_file.display()
        ),
    );
    assert_eq!(task["status"], "done");
    env.wait_for("the escapee to write its pid", || {
        read(&pid_file).ends_with('\n')
    });
    let escaped: i32 = read(&pid_file).trim().parse().unwrap();
    // It escaped every group we know of: documented limit; clean it up ourselves.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(escaped),
        nix::sys::signal::Signal::SIGKILL,
    );
}

#[test]
fn a_flood_of_output_is_stored_line_by_line() {
    let env = Env::new();
    let task = run_single(
        &env,
        "seq 1 50000\nprintf 'no newline at end'\necho done > \"$2\"",
    );
    assert_eq!(task["status"], "done");
    let lines = env.logs(&["--stream", "stdout"]);
    assert_eq!(lines.len(), 50001);
    assert_eq!(lines[0]["line"], "1\n");
    assert_eq!(lines[49999]["line"], "50000\n");
    assert_eq!(lines[50000]["line"], "no newline at end");
}

#[test]
fn over_long_lines_are_cut_into_pieces() {
    let env = Env::new();
    let task = run_single(
        &env,
        "head -c 150000 /dev/zero | tr '\\0' x\necho\necho done > \"$2\"",
    );
    assert_eq!(task["status"], "done");
    let lines = env.logs(&["--stream", "stdout"]);
    let sizes: Vec<usize> = lines
        .iter()
        .map(|l| l["line"].as_str().unwrap().len())
        .collect();
    // The last piece keeps the newline that ended the line.
    assert_eq!(sizes, vec![65000, 65000, 20001]);
}

#[test]
fn a_task_cannot_report_itself_running() {
    let env = Env::new();
    let task = run_single(&env, "echo '{\"result_bits\": 2}' > \"$2\"");
    assert_eq!(task["status"], "error_backoff");
    assert!(task["data"]["exception"]
        .as_str()
        .unwrap()
        .contains("cannot report itself running"));
}

#[test]
fn log_lines_keep_their_exact_bytes_in_json_and_read_as_before_on_the_terminal() {
    let env = Env::new();
    let task = run_single(&env, "echo x\nprintf x\necho done > \"$2\"");
    assert_eq!(task["status"], "done");
    let lines: Vec<Value> = env
        .logs(&["--stream", "stdout"])
        .iter()
        .map(|l| l["line"].clone())
        .collect();
    assert_eq!(lines, ["x\n", "x"], "`echo x` and `echo -n x` differ");
    let human = env.ok(&["logs", "--stream", "stdout"]);
    let shown: Vec<&str> = human
        .lines()
        .map(|l| l.rsplit(": ").next().unwrap())
        .collect();
    assert_eq!(shown, ["x", "x"], "{human}");
}
