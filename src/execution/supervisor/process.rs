//! Process control for tasks: identifying processes by (pid, start time, session) so a
//! reused pid is never signalled, and killing whole process groups or sessions.

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// A process identified robustly: its pid, start time and session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessId {
    /// The pid (for a group or session leader, also the group or session id).
    pub pid: i32,
    /// Field 22 of `/proc/PID/stat`: clock ticks since boot.
    pub start_ticks: u64,
    /// The session the process belongs to.
    pub session: i32,
}

/// What `/proc/PID/stat` says of a process.
struct Stat {
    pgrp: i32,
    session: i32,
    start_ticks: u64,
    /// Exited, not yet reaped (or being reaped).
    zombie: bool,
}

/// Any process, zombies included. This runs for every task started (to record its
/// identity), so it costs one open, read and close, into a buffer on the stack.
fn stat_any(pid: i32) -> Option<Stat> {
    let mut path = [0u8; 32];
    let mut rest = &mut path[..];
    write!(rest, "/proc/{pid}/stat").ok()?;
    let path_len = 32 - rest.len();
    let mut file = File::open(OsStr::from_bytes(&path[..path_len])).ok()?;
    let mut buf = [0u8; 1024];
    let mut len = 0;
    loop {
        match file.read(&mut buf[len..]) {
            Ok(0) => return parse_stat(&buf[..len]),
            Ok(n) => {
                len += n;
                // /proc gives the whole line at once: a second read is only made
                // for a line that came in pieces.
                if let Some(stat) = parse_stat(&buf[..len]) {
                    return Some(stat);
                }
                if len == buf.len() {
                    return None;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// Parses a `/proc/PID/stat` line, or its start as long as the start time is whole
/// (the field after it has begun).
fn parse_stat(line: &[u8]) -> Option<Stat> {
    // The command may hold any byte, `)` included: the fields start after the last.
    let close = line.iter().rposition(|&b| b == b')')?;
    let mut fields = line.get(close + 2..)?.split(|&b| b == b' ');
    // After "pid (comm) ": state=0, ppid=1, pgrp=2, session=3, ..., starttime=19.
    let state = fields.next()?;
    let pgrp = number(fields.nth(1)?)?;
    let session = number(fields.next()?)?;
    let start_ticks = number(fields.nth(15)?)?;
    fields.next()?;
    Some(Stat {
        zombie: matches!(state, b"Z" | b"X"),
        pgrp,
        session,
        start_ticks,
    })
}

fn number<T: std::str::FromStr>(field: &[u8]) -> Option<T> {
    std::str::from_utf8(field).ok()?.parse().ok()
}

/// A live (not zombie) process.
fn stat(pid: i32) -> Option<Stat> {
    stat_any(pid).filter(|s| !s.zombie)
}

/// Live processes matching `keep`.
fn processes(keep: impl Fn(&Stat) -> bool) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| stat(pid).is_some_and(|s| keep(&s)))
        .collect()
}

impl ProcessId {
    /// Identifies a process, even one that already exited but is not reaped yet (a
    /// child we have not waited for), so its group can still be told apart from a
    /// later process that reuses its pid.
    pub fn of(pid: i32) -> Option<Self> {
        stat_any(pid).map(|s| Self {
            pid,
            start_ticks: s.start_ticks,
            session: s.session,
        })
    }

    /// This process.
    pub fn me() -> Option<Self> {
        Self::of(std::process::id() as i32)
    }

    /// Is this very process (not a reuse of its pid) still alive?
    pub fn is_alive(&self) -> bool {
        stat(self.pid).is_some_and(|s| s.start_ticks == self.start_ticks)
    }

    /// Is this process the leader of its own session?
    pub fn leads_session(&self) -> bool {
        self.session == self.pid
    }

    /// Live members of the process group this process leads (same session, started no
    /// earlier than it), so a group id reused by unrelated processes is never matched.
    fn group_members(&self) -> Vec<i32> {
        processes(|s| {
            s.pgrp == self.pid && s.session == self.session && s.start_ticks >= self.start_ticks
        })
    }

    /// Live members of the session this process leads, started no earlier than it.
    fn session_members(&self) -> Vec<i32> {
        processes(|s| s.session == self.pid && s.start_ticks >= self.start_ticks)
    }

    /// Does any process of the group this process led still live?
    pub fn group_is_alive(&self) -> bool {
        !self.group_members().is_empty()
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

    /// SIGKILLs this process and its group (or, with [`Scope::Session`], every process
    /// of the session it leads); waits up to `wait` for them to be gone. True when none
    /// is left.
    pub fn kill_all(&self, scope: Scope, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let mut left = match scope {
                Scope::Group => self.group_members(),
                Scope::Session if self.leads_session() => self.session_members(),
                Scope::Session => Vec::new(),
            };
            if self.is_alive() {
                left.push(self.pid);
            }
            if left.is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            for pid in left {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// What [`ProcessId::kill_all`] reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The process group the process leads.
    Group,
    /// The session the process leads (nothing more if it leads none).
    Session,
}

/// Writes a [`ProcessId`] to a file, in place: run directories are reused (see
/// `run_dirs`), and a reader racing the write finds no record, which is what it
/// would have found a moment earlier.
pub fn record(path: &Path, id: ProcessId) -> Result<(), crate::storage::state::StateError> {
    super::run_dirs::write_in_place(path, &serde_json::to_vec(&id).expect("serializes"))
        .map_err(crate::storage::state::io_err("writing", path))
}

/// [`record`] into a file already open for writing.
pub fn record_into(file: &std::fs::File, id: ProcessId) -> std::io::Result<()> {
    super::run_dirs::overwrite(file, &serde_json::to_vec(&id).expect("serializes"))
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

/// Signals a child we could not identify in `/proc` (it exited at once).
pub fn child_kill(pid: u32, sig: Signal) -> nix::Result<()> {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    fn wait_until(cond: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        cond()
    }

    #[test]
    fn a_stat_line_is_read_after_the_last_parenthesis_of_the_command() {
        let line = b"42 (a) b) (c) S 1 40 30 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 987654 1000 10";
        let stat = parse_stat(line).unwrap();
        assert_eq!(
            (stat.pgrp, stat.session, stat.start_ticks),
            (40, 30, 987654)
        );
        assert!(!stat.zombie);
        let zombie = parse_stat(b"7 (z) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0").unwrap();
        assert!(zombie.zombie);
    }

    #[test]
    fn a_stat_line_cut_before_the_start_time_ends_is_not_parsed() {
        let line = b"42 (a) S 1 40 30 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 987654 1000";
        let cut = line.iter().position(|&b| b == b'7').unwrap();
        assert!(parse_stat(&line[..cut]).is_none());
        assert!(parse_stat(&line[..line.len() - 5]).is_none());
        assert!(parse_stat(&line[..line.len() - 4]).is_some());
    }

    #[test]
    fn our_own_identity_is_our_pid_session_and_start_time() {
        let me = ProcessId::me().unwrap();
        assert_eq!(me.pid, std::process::id() as i32);
        assert_eq!(me.session, nix::unistd::getsid(None).unwrap().as_raw());
        let text = std::fs::read_to_string("/proc/self/stat").unwrap();
        let start: u64 = text[text.rfind(')').unwrap() + 2..]
            .split(' ')
            .nth(19)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(me.start_ticks, start);
    }

    #[test]
    fn killing_a_group_reaches_background_children() {
        let mut child = Command::new("sh")
            .args(["-c", "sleep 1000 & sleep 1000 & wait"])
            .process_group(0)
            .spawn()
            .unwrap();
        let id = ProcessId::of(child.id() as i32).unwrap();
        assert!(wait_until(|| id.group_members().len() == 3));
        id.signal(Signal::SIGKILL, true);
        child.wait().unwrap();
        assert!(wait_until(|| !id.group_is_alive()));
        assert!(!id.is_alive());
    }

    #[test]
    fn kill_all_reaches_a_session_across_process_groups() {
        let mut child = Command::new("setsid")
            .args(["sh", "-c", "(sleep 1000 &); sleep 1000 & wait"])
            .spawn()
            .unwrap();
        let leader = child.id() as i32;
        assert!(wait_until(
            || ProcessId::of(leader).is_some_and(|p| p.leads_session())
        ));
        let id = ProcessId::of(leader).unwrap();
        assert!(wait_until(|| id.session_members().len() >= 3));
        assert!(id.kill_all(Scope::Session, Duration::from_secs(10)));
        child.wait().unwrap();
        assert!(id.session_members().is_empty());
    }
}
