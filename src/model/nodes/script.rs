//! The `script` source: children are the lines a script prints for each parent.

use super::{check_new_node, parent_level, NodeFetcher, Nodes, SourceError};
use crate::foundation::config::Levels;
use crate::foundation::sanitize::for_terminal;
use crate::foundation::sanitize::lenient;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::{Map, Value};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `script PARENT` (no shell) for every parent; each stdout line is a child.
///
/// Unlike Bistro, a script that exits non-zero fails the refresh (a broken script must
/// not silently empty the node list and orphan every running task), and a script that
/// runs longer than the `timeout_sec` pref (default 60) is killed with its process group
/// and fails the refresh (it must not hold the state lock forever). Its stderr is passed
/// on, escaped for the terminal.
pub(super) struct ScriptFetcher;

/// Why a node script gave no nodes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    /// The script could not be started.
    #[error("cannot run script {script:?}: {error}")]
    CannotRun {
        /// The script.
        script: String,
        /// The OS error.
        error: String,
    },
    /// Waiting for the script failed.
    #[error("waiting for script {script:?}: {error}")]
    Wait {
        /// The script.
        script: String,
        /// The OS error.
        error: String,
    },
    /// The script ran past its timeout and was killed.
    #[error("script {script:?} {parent:?} ran longer than {}s and was killed", .timeout.as_secs_f64())]
    TimedOut {
        /// The script.
        script: String,
        /// The parent node it was run for.
        parent: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The thread reading the script's output panicked.
    #[error("reading the script's output failed")]
    Reader,
    /// The script exited unsuccessfully.
    #[error("script {script:?} {parent:?} failed: {status}{}", last_line(.last_stderr))]
    Failed {
        /// The script.
        script: String,
        /// The parent node it was run for.
        parent: String,
        /// How it exited.
        status: String,
        /// Its last non-blank stderr line, shortened.
        last_stderr: Option<String>,
    },
    /// Reading the script's output failed.
    #[error("reading the output of script {script:?}: {error}")]
    Read {
        /// The script.
        script: String,
        /// The OS error.
        error: String,
    },
    /// The script printed more than [`MAX_OUTPUT_BYTES`] and was killed.
    #[error("script {script:?} {parent:?} printed more than {} MiB of node names and was killed; a node script prints one child per line", MAX_OUTPUT_BYTES >> 20)]
    TooMuchOutput {
        /// The script.
        script: String,
        /// The parent node it was run for.
        parent: String,
    },
    /// The output is not UTF-8.
    #[error("script {script:?} printed node names that are not UTF-8")]
    NotUtf8 {
        /// The script.
        script: String,
    },
}

/// How a failed script's last stderr line is quoted in its error.
fn last_line(line: &Option<String>) -> String {
    line.as_ref()
        .map_or_else(String::new, |l| format!(" (its last stderr line: {l:?})"))
}

/// Seconds a node script may run when its prefs do not say.
const DEFAULT_TIMEOUT_SECS: f64 = 60.0;

fn run_script(script: &str, parent: &str, timeout: Duration) -> Result<String, ScriptError> {
    let mut child = Command::new(script)
        .arg(parent)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| ScriptError::CannotRun {
            script: script.to_string(),
            error: e.to_string(),
        })?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let group = Pid::from_raw(child.id() as i32);
    // Reads at most MAX_OUTPUT_BYTES; past that the script's group is killed.
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let read = stdout
            .take(MAX_OUTPUT_BYTES as u64 + 1)
            .read_to_end(&mut out);
        if out.len() > MAX_OUTPUT_BYTES {
            let _ = killpg(group, Signal::SIGKILL);
        }
        read.map(|_| out)
    });
    let (who, parent_name) = (script.to_string(), parent.to_string());
    // Echoes the script's stderr and keeps its last line for the error message.
    let errors = std::thread::spawn(move || {
        let mut last = None;
        let mut echoed = 0;
        for_each_line(stderr, |line| {
            if echoed < MAX_ECHOED_LINES {
                echoed += 1;
                tracing::warn!(
                    "node script {} {}: {}",
                    for_terminal(&who),
                    for_terminal(&parent_name),
                    for_terminal(line)
                );
            } else if echoed == MAX_ECHOED_LINES {
                echoed += 1;
                tracing::warn!(
                    "node script {} {}: more stderr lines are not shown",
                    for_terminal(&who),
                    for_terminal(&parent_name),
                );
            }
            if !line.trim().is_empty() {
                last = Some(line.to_string());
            }
        });
        last
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().map_err(|e| ScriptError::Wait {
            script: script.to_string(),
            error: e.to_string(),
        })? {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
                let _ = child.wait();
                let _ = errors.join();
                return Err(ScriptError::TimedOut {
                    script: script.to_string(),
                    parent: parent.to_string(),
                    timeout,
                });
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    // Background children of the script may hold its pipes: they die with its group.
    let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
    let output = reader.join().map_err(|_| ScriptError::Reader)?;
    let last_stderr = errors.join().ok().flatten();
    if output.as_ref().is_ok_and(|o| o.len() > MAX_OUTPUT_BYTES) {
        return Err(ScriptError::TooMuchOutput {
            script: script.to_string(),
            parent: parent.to_string(),
        });
    }
    if !status.success() {
        return Err(ScriptError::Failed {
            script: script.to_string(),
            parent: parent.to_string(),
            status: status.to_string(),
            last_stderr,
        });
    }
    let output = output.map_err(|e| ScriptError::Read {
        script: script.to_string(),
        error: e.to_string(),
    })?;
    String::from_utf8(output).map_err(|_| ScriptError::NotUtf8 {
        script: script.to_string(),
    })
}

impl NodeFetcher for ScriptFetcher {
    fn fetch(
        &self,
        nodes: &mut Nodes,
        prefs: &Map<String, Value>,
        levels: &Levels,
    ) -> Result<(), SourceError> {
        let (parent, level) = parent_level(prefs, levels)?;
        let script = prefs
            .get("script")
            .ok_or(SourceError::MissingPref("script"))?;
        let script = lenient::as_string(script)
            .ok_or_else(|| SourceError::bad_pref("script", "a path", script))?;
        let timeout = match prefs.get("timeout_sec") {
            None => DEFAULT_TIMEOUT_SECS,
            Some(t) => lenient::as_f64(t)
                .filter(|t| *t > 0.0 && *t < 1e9)
                .ok_or_else(|| {
                    SourceError::bad_pref("timeout_sec", "a positive number of seconds", t)
                })?,
        };
        let parents: Vec<usize> = nodes.at_level(parent).collect();
        for p in parents {
            let stdout = run_script(
                &script,
                &nodes.list[p].name,
                Duration::from_secs_f64(timeout),
            )?;
            for line in stdout.lines().filter(|l| !l.is_empty()) {
                check_new_node(nodes, line)?;
                nodes.push(line.to_string(), level, p, true);
            }
        }
        Ok(())
    }
}

/// How much of a script's stderr line an error message quotes (and is echoed).
const MAX_QUOTED_CHARS: usize = 500;

/// How many bytes of node names one run of a script may print.
pub const MAX_OUTPUT_BYTES: usize = 64 << 20;

/// How many of a script's stderr lines are echoed; the rest are read and dropped.
const MAX_ECHOED_LINES: usize = 100;

/// Calls `f` with each line of `input`, cut to [`MAX_QUOTED_CHARS`] bytes (at a
/// character boundary), holding no more than that of a line however long it is.
fn for_each_line(input: impl Read, mut f: impl FnMut(&str)) {
    let mut input = BufReader::new(input);
    let mut line: Vec<u8> = Vec::new();
    loop {
        let chunk = match input.fill_buf() {
            Ok([]) | Err(_) => break,
            Ok(chunk) => chunk,
        };
        let (part, ended) = match chunk.iter().position(|&b| b == b'\n') {
            Some(end) => (&chunk[..end], end + 1),
            None => (chunk, chunk.len()),
        };
        let room = MAX_QUOTED_CHARS.saturating_sub(line.len());
        line.extend_from_slice(&part[..part.len().min(room)]);
        let newline = ended > part.len();
        input.consume(ended);
        if newline {
            f(&lossy_cut(&line));
            line.clear();
        }
    }
    if !line.is_empty() {
        f(&lossy_cut(&line));
    }
}

/// `line` as text (bytes that are not UTF-8 replaced), cut to [`MAX_QUOTED_CHARS`]
/// bytes at a character boundary: a replacement character takes three.
fn lossy_cut(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut end = text.len().min(MAX_QUOTED_CHARS);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::super::tests::levels;
    use super::super::NodeFetcher;
    use super::*;
    use serde_json::json;

    proptest::proptest! {
        #![proptest_config(crate::foundation::fuzz::config(256))]

        #[test]
        fn fuzz_any_stderr_bytes_become_bounded_lines(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096),
            newline_every in 1usize..2000,
        ) {
            let mut input = bytes.clone();
            for i in (0..input.len()).step_by(newline_every) {
                input[i] = b'\n';
            }
            let mut lines = 0;
            for_each_line(&input[..], |line| {
                lines += 1;
                assert!(line.len() <= MAX_QUOTED_CHARS && !line.contains('\n'), "{line:?}");
            });
            let newlines = input.iter().filter(|&&b| b == b'\n').count();
            proptest::prop_assert!(lines == newlines || lines == newlines + 1);
        }

        #[test]
        fn fuzz_any_node_name_is_added_or_refused_by_its_length(name in ".{0,300}") {
            let nodes = Nodes::with_instance("inst");
            let checked = check_new_node(&nodes, &name);
            proptest::prop_assert_eq!(checked.is_ok(), name.len() <= super::super::MAX_NODE_NAME_BYTES);
        }
    }
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &tempfile::TempDir, body: &str) -> String {
        let path = dir.path().join("nodes.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    }

    #[test]
    fn each_line_becomes_a_child_of_the_parent() {
        let dir = tempfile::tempdir().unwrap();
        let path = script(&dir, "echo \"$1:foo\"; echo \"$1:bar\"");
        let mut nodes = Nodes::with_instance("inst");
        nodes.push("node1".into(), 1, 0, true);
        nodes.push("node2".into(), 1, 0, true);
        ScriptFetcher
            .fetch(
                &mut nodes,
                json!({"parent_level": "l1", "script": path})
                    .as_object()
                    .unwrap(),
                &levels(&["l1", "l2"]),
            )
            .unwrap();
        let names: Vec<(&str, usize)> = nodes
            .list
            .iter()
            .map(|n| (n.name.as_str(), n.level))
            .collect();
        assert_eq!(
            names[3..],
            [
                ("node1:foo", 2),
                ("node1:bar", 2),
                ("node2:foo", 2),
                ("node2:bar", 2)
            ]
        );
        assert_eq!(nodes.list[3].parent, Some(1));
    }

    #[test]
    fn a_missing_or_failing_script_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let l = levels(&["l1"]);
        let mut nodes = Nodes::with_instance("inst");
        assert!(ScriptFetcher
            .fetch(
                &mut nodes,
                json!({"parent_level": "instance"}).as_object().unwrap(),
                &l
            )
            .is_err());
        let missing = json!({"parent_level": "instance", "script": "/nonexistent/x"});
        assert!(ScriptFetcher
            .fetch(&mut nodes, missing.as_object().unwrap(), &l)
            .unwrap_err()
            .to_string()
            .contains("cannot run"));
        let failing = json!({"parent_level": "instance", "script": script(&dir, "echo a; exit 3")});
        assert!(ScriptFetcher
            .fetch(&mut nodes, failing.as_object().unwrap(), &l)
            .unwrap_err()
            .to_string()
            .contains("failed"));
    }
}
