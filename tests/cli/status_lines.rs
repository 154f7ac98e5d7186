//! What a task writes to its status file, and what we make of it.

use crate::util::*;

/// Runs a one-node job whose task body is `body`, then returns its task status and
/// the `got_status` event's status object.
fn outcome(body: &str) -> (serde_json::Value, serde_json::Value) {
    let env = Env::new();
    let task = run_single(&env, body);
    let events = env.logs(&["--stream", "statuses"]);
    let got: serde_json::Value = events
        .iter()
        .map(|e| serde_json::from_str::<serde_json::Value>(e["line"].as_str().unwrap()).unwrap())
        .find(|e| e["event"] == "got_status")
        .expect("a got_status event");
    (task, got)
}

fn assert_error_backoff(body: &str, expected: &str) {
    let (task, got) = outcome(body);
    assert_eq!(task["status"], "error_backoff", "{body}: {task}");
    let message = task["data"]["exception"].as_str().unwrap();
    assert!(
        message.contains(expected),
        "{body}: {message:?} should mention {expected:?}"
    );
    assert_eq!(
        got["status"]["data"]["exception"], message,
        "the events log carries the reason"
    );
}

#[test]
fn a_task_that_writes_no_status_line_backs_off_with_the_reason() {
    assert_error_backoff(": > \"$2\"", "no status line");
}

#[test]
fn a_task_that_exits_without_writing_backs_off() {
    assert_error_backoff("exit 3", "no status line");
}

#[test]
fn two_status_lines_are_an_error_quoting_both_escaped_once() {
    assert_error_backoff(
        "printf 'incomplete\\ndone\\n' > \"$2\"",
        "2 status lines instead of one: \"incomplete\\ndone\"",
    );
}

#[test]
fn garbage_is_an_error_quoting_the_line() {
    assert_error_backoff(
        "echo 'all good!' > \"$2\"",
        "Cannot parse status: \"all good!\"",
    );
}

#[test]
fn a_json_status_without_result_is_an_error() {
    assert_error_backoff(
        "echo '{\"result\": 42}' > \"$2\"",
        "Need a valid \"result\" or \"result_bits\" key",
    );
}

#[test]
fn trailing_blank_lines_and_a_final_carriage_return_are_ignored() {
    let (task, got) = outcome("printf 'done\\r\\n\\n\\n' > \"$2\"");
    assert_eq!(task["status"], "done");
    assert_eq!(got["raw_status"], "done");
}

#[test]
fn json_statuses_carry_result_bits_and_data() {
    let (task, _) = outcome("echo '{\"result_bits\": 16, \"data\": {\"why\": \"disk\"}}' > \"$2\"");
    assert_eq!(task["status"], "failed");
    assert_eq!(task["data"], serde_json::json!({"why": "disk"}));
}
