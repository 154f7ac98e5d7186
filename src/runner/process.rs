//! Process control for tasks: spawning in a new process group with a parent-death
//! signal, identifying processes by (pid, start time) so a reused pid is never
//! signalled, and killing whole groups.

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::path::Path;

/// A process identified robustly: its pid and its start time in clock ticks since boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessId {
    /// The pid (for a group leader, also the process group id).
    pub pid: i32,
    /// Field 22 of `/proc/PID/stat`.
    pub start_ticks: u64,
}

/// Reads a process's (start time, process group) from `/proc`.
fn stat(pid: i32) -> Option<(u64, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    // After "pid (comm) ": state=0, ppid=1, pgrp=2, ..., starttime=19.
    let state = fields.first()?;
    if *state == "Z" || *state == "X" {
        return None;
    }
    Some((fields.get(19)?.parse().ok()?, fields.get(2)?.parse().ok()?))
}

impl ProcessId {
    /// Identifies a live process.
    pub fn of(pid: i32) -> Option<Self> {
        stat(pid).map(|(start_ticks, _)| Self { pid, start_ticks })
    }

    /// Is this very process (not a reuse of its pid) still alive?
    pub fn is_alive(&self) -> bool {
        stat(self.pid).is_some_and(|(start, _)| start == self.start_ticks)
    }

    /// Does any live process still belong to the process group this process led?
    pub fn group_is_alive(&self) -> bool {
        !self.group_members().is_empty()
    }

    /// Pids in this process's group that started no earlier than it did.
    fn group_members(&self) -> Vec<i32> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| {
                stat(pid).is_some_and(|(start, pgrp)| pgrp == self.pid && start >= self.start_ticks)
            })
            .collect()
    }

    /// Sends `signal` to the process, or to its whole group when `group`; never to a
    /// reused pid.
    pub fn signal(&self, signal: Signal, group: bool) {
        if group {
            if self.group_is_alive() {
                let _ = killpg(Pid::from_raw(self.pid), signal);
            }
        } else if self.is_alive() {
            let _ = kill(Pid::from_raw(self.pid), signal);
        }
    }
}

/// Writes a [`ProcessId`] to a file.
pub fn record(path: &Path, id: ProcessId) -> Result<(), crate::state::StateError> {
    crate::state::write_atomic(
        path,
        serde_json::to_string(&id).expect("serializes").as_bytes(),
    )
}

/// Reads a [`ProcessId`] written by [`record`].
pub fn read_record(path: &Path) -> Option<ProcessId> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// The machine's host name.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    #[test]
    fn killing_a_group_reaches_background_children() {
        let mut child = Command::new("sh")
            .args(["-c", "sleep 1000 & sleep 1000 & wait"])
            .process_group(0)
            .spawn()
            .unwrap();
        let id = ProcessId::of(child.id() as i32).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while id.group_members().len() < 3 && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(id.group_members().len(), 3);
        id.signal(Signal::SIGKILL, true);
        child.wait().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while id.group_is_alive() && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert!(!id.group_is_alive());
        assert!(!id.is_alive());
    }
}
