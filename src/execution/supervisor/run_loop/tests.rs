//! The event loop's tests: line cutting, and runs of real tasks through one loop.

use super::*;
use crate::execution::supervisor::constants::MAX_LINE_BYTES;
use crate::execution::supervisor::lines::LineCutter;
use crate::execution::supervisor::run_dirs::is_written;
use crate::foundation::config::KillMethod;
use serde_json::Value;

fn cut(chunks: &[&[u8]]) -> Vec<(String, bool)> {
    let mut cutter = LineCutter::default();
    let mut out = Vec::new();
    for chunk in chunks {
        cutter.feed(chunk, |b, nl| {
            out.push((String::from_utf8_lossy(b).into(), nl))
        });
    }
    cutter.finish(|b, nl| out.push((String::from_utf8_lossy(b).into(), nl)));
    out
}

#[test]
fn output_is_cut_into_lines_across_reads() {
    assert_eq!(
        cut(&[b"a\nb", b"c\n\nlast"]),
        vec![
            ("a".into(), true),
            ("bc".into(), true),
            ("".into(), true),
            ("last".into(), false)
        ]
    );
}

#[test]
fn over_long_lines_are_cut_into_pieces_of_the_longest_line() {
    let exact = vec![b'x'; MAX_LINE_BYTES];
    let mut long = vec![b'y'; MAX_LINE_BYTES + 1];
    long.push(b'\n');
    let out = cut(&[&exact, b"\n", &long[..10], &long[10..]]);
    let shape: Vec<(usize, bool)> = out.iter().map(|(t, nl)| (t.len(), *nl)).collect();
    assert_eq!(
        shape,
        vec![(MAX_LINE_BYTES, true), (MAX_LINE_BYTES, false), (1, true)]
    );
}

#[test]
fn a_full_piece_waits_for_the_next_byte_to_know_if_a_newline_ends_it() {
    let exact = vec![b'x'; MAX_LINE_BYTES];
    assert_eq!(
        cut(&[&exact, b"\nz"])
            .iter()
            .map(|(t, nl)| (t.len(), *nl))
            .collect::<Vec<_>>(),
        vec![(MAX_LINE_BYTES, true), (1, false)]
    );
}

/// A run of `sh -c script` in `dir`, with its status file and task log there.
pub(in crate::execution::supervisor) fn launch(dir: &Path, script: &str) -> Launch {
    Launch {
        job: "j".into(),
        node: "n".into(),
        invocation: crate::model::task::InvocationId {
            start_time: 1,
            rand: 7,
        },
        argv: vec![
            "sh".into(),
            "-c".into(),
            script.into(),
            "sh".into(),
            dir.join("status").display().to_string(),
        ],
        cwd: dir.into(),
        status_file: dir.join("status"),
        log_db: dir.join("logs.sql3"),
        worker_host: "h".into(),
        task_subprocess: Default::default(),
        kill_subprocess: Default::default(),
        task_timeout_sec: None,
        on_worker_death: None,
        worker: None,
        slurm: None,
    }
}

/// Turns the loop until its runs are over; their results.
fn run_out(runs: &mut RunLoop) -> Vec<TaskResult> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut results = Vec::new();
    while !runs.is_empty() {
        assert!(Instant::now() < deadline, "the runs never ended");
        results.extend(
            runs.turn(Duration::from_millis(100))
                .finished
                .into_iter()
                .map(|(_, r)| r),
        );
    }
    results
}

fn rows(db: &Path, table: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(&format!("SELECT line FROM {table} ORDER BY time_and_count"))
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn runs_in_one_loop_store_their_output_events_and_results() {
    let tmp = tempfile::tempdir().unwrap();
    let mut runs = RunLoop::new(false).unwrap();
    let dirs: Vec<PathBuf> = (0..3).map(|i| tmp.path().join(format!("run{i}"))).collect();
    for (i, dir) in dirs.iter().enumerate() {
        std::fs::create_dir(dir).unwrap();
        let mut launch = launch(
            dir,
            &format!("echo out{i}; echo err{i} >&2; printf 'partial'; echo done > \"$1\""),
        );
        launch.log_db = tmp.path().join("logs.sql3");
        runs.start(launch, dir.clone(), None);
    }
    let results = run_out(&mut runs);
    assert_eq!(results.len(), 3);
    for (i, dir) in dirs.iter().enumerate() {
        let written: TaskResult =
            serde_json::from_slice(&std::fs::read(dir.join(run_dir::RESULT)).unwrap()).unwrap();
        assert_eq!(
            written.status.name(),
            crate::foundation::status::StatusName::Done,
            "{written:?}"
        );
        assert_eq!(written.exit, "exited with status 0");
        let stdout = rows(&tmp.path().join("logs.sql3"), "stdout");
        assert!(stdout.contains(&format!("out{i}\n")), "{stdout:?}");
        assert!(stdout.contains(&"partial".to_string()), "{stdout:?}");
        let stderr = rows(&tmp.path().join("logs.sql3"), "stderr");
        assert!(stderr.contains(&format!("err{i}\n")), "{stderr:?}");
    }
    let events: Vec<String> = rows(&tmp.path().join("logs.sql3"), "statuses")
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for name in [
        "running",
        "process_exited",
        "task_pipes_closed",
        "got_status",
    ] {
        assert_eq!(
            events.iter().filter(|e| *e == name).count(),
            3,
            "{events:?}"
        );
    }
}

#[test]
fn a_task_that_cannot_start_gets_a_result_and_an_event() {
    let tmp = tempfile::tempdir().unwrap();
    let mut runs = RunLoop::new(false).unwrap();
    let mut launch = launch(tmp.path(), "");
    launch.argv = vec![tmp.path().join("missing").display().to_string()];
    runs.start(launch, tmp.path().into(), None);
    let results = run_out(&mut runs);
    assert_eq!(
        results[0].status.name(),
        crate::foundation::status::StatusName::ErrorBackoff
    );
    assert!(
        results[0].exit.starts_with("failed to start"),
        "{:?}",
        results[0]
    );
    assert!(rows(&tmp.path().join("logs.sql3"), "statuses")
        .iter()
        .any(|l| l.contains("task_failed_to_start")));
}

#[test]
fn a_task_whose_working_directory_was_removed_between_runs_still_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path().join("job");
    let mut runs = RunLoop::new(false).unwrap();
    for i in 0..2 {
        let dir = tmp.path().join(format!("run{i}"));
        std::fs::create_dir(&dir).unwrap();
        let mut launch = launch(&dir, "pwd; echo done > \"$1\"");
        launch.cwd = cwd.clone();
        launch.log_db = tmp.path().join("logs.sql3");
        runs.start(launch, dir, None);
        let results = run_out(&mut runs);
        assert_eq!(
            results[0].status.name(),
            crate::foundation::status::StatusName::Done,
            "run {i}: {:?}",
            results[0]
        );
        std::fs::remove_dir(&cwd).unwrap();
    }
    let printed = rows(&tmp.path().join("logs.sql3"), "stdout");
    assert_eq!(printed, vec![format!("{}\n", cwd.display()); 2]);
}

#[test]
fn a_kill_asked_while_the_task_starts_is_applied_once_it_started() {
    let tmp = tempfile::tempdir().unwrap();
    let mut runs = RunLoop::new(false).unwrap();
    let launch = launch(tmp.path(), "sleep 1000");
    // One SIGTERM, with no SIGKILL after it to make up for a lost one.
    let request = serde_json::to_vec(&crate::foundation::config::KillRequest {
        method: KillMethod::Term,
        kill_wait_ms: 0,
    })
    .unwrap();
    runs.start(launch, tmp.path().into(), None);
    // Asked before the loop heard of the start (and most likely before the
    // spawner made it): the request waits for the task instead of being lost.
    std::fs::write(tmp.path().join(run_dir::KILL_REQUEST), request).unwrap();
    on_kill_request(0);
    runs.turn(Duration::ZERO);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut results = Vec::new();
    while !runs.is_empty() {
        assert!(Instant::now() < deadline, "the kill was lost");
        let turn = runs.turn(Duration::from_millis(100));
        results.extend(turn.finished.into_iter().map(|(_, r)| r));
    }
    assert!(results[0].killed, "{:?}", results[0]);
}

#[test]
fn a_task_that_runs_past_its_timeout_is_killed_as_its_job_says_and_backs_off() {
    let tmp = tempfile::tempdir().unwrap();
    let mut runs = RunLoop::new(false).unwrap();
    // It reports done at once, then ignores SIGTERM: only the job's SIGKILL ends it.
    let mut launch = launch(
        tmp.path(),
        "trap '' TERM; echo done > \"$1\"; while :; do sleep 0.05; done",
    );
    launch.task_timeout_sec = Some(1);
    launch.kill_subprocess = crate::foundation::config::KillRequest {
        method: KillMethod::TermWaitKill,
        kill_wait_ms: 100,
    };
    runs.start(launch, tmp.path().into(), None);
    let results = run_out(&mut runs);
    let result = &results[0];
    assert_eq!(
        result.status.name(),
        crate::foundation::status::StatusName::ErrorBackoff,
        "{result:?}"
    );
    assert_eq!(result.status.exception(), Some("timed out after 1 s"));
    assert!(result.killed, "{result:?}");
    assert_eq!(result.exit, "killed by signal 9");
    let events = rows(&tmp.path().join("logs.sql3"), "statuses");
    assert!(
        events
            .iter()
            .any(|l| l.contains("task_timed_out") && l.contains("timed out after 1 s")),
        "{events:?}"
    );
}

#[test]
fn output_of_a_process_that_outlives_the_pipe_grace_is_still_stored_after_the_result() {
    let tmp = tempfile::tempdir().unwrap();
    let mut runs = RunLoop::new(false).unwrap();
    // Not a group leader: the straggler is not killed with the task's group.
    let mut launch = launch(tmp.path(), "(sleep 3.5; echo late) & echo done > \"$1\"");
    launch.task_subprocess.process_group_leader = false;
    runs.start(launch, tmp.path().into(), None);
    let results = run_out(&mut runs);
    assert_eq!(
        results[0].status.name(),
        crate::foundation::status::StatusName::Done
    );
    let db = tmp.path().join("logs.sql3");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !rows(&db, "stdout").contains(&"late\n".to_string()) {
        assert!(Instant::now() < deadline, "the late line was never stored");
        runs.turn(Duration::from_millis(100));
    }
    assert!(rows(&db, "statuses")
        .iter()
        .all(|l| !l.contains("task_pipes_closed")));
}

#[test]
fn a_busy_log_database_holds_results_back_without_blocking_the_loop() {
    let tmp = tempfile::tempdir().unwrap();
    let mut runs = RunLoop::new(false).unwrap();
    runs.start(
        launch(tmp.path(), "echo out; echo done > \"$1\""),
        tmp.path().into(),
        None,
    );
    let db = tmp.path().join("logs.sql3");
    let other = rusqlite::Connection::open(&db).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    // Turns keep coming (each waits at most STORE_BUSY_WAIT), but while another
    // writer holds the database no result is written.
    let until = Instant::now() + Duration::from_secs(1);
    let mut turns = 0;
    while Instant::now() < until {
        assert!(runs.turn(Duration::from_millis(100)).finished.is_empty());
        turns += 1;
    }
    assert!(
        turns > 10,
        "the loop blocked on the database: {turns} turns"
    );
    assert!(!is_written(
        &std::fs::read(tmp.path().join(run_dir::RESULT)).unwrap_or_default()
    ));
    other.execute_batch("ROLLBACK").unwrap();
    let results = run_out(&mut runs);
    assert_eq!(
        results[0].status.name(),
        crate::foundation::status::StatusName::Done
    );
    assert!(rows(&db, "stdout").contains(&"out\n".to_string()));
}
