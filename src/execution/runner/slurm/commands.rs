//! The Slurm client calls the runner makes (`sbatch`, `squeue`, `scancel`), behind one
//! small trait so that everything that parses their answers is tested without a
//! cluster. The real calls honour `SLURM_CONF` and the rest of Slurm's environment.

use std::io::{Read, Write};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long one Slurm client call may take before it is killed and counted as
/// failed: a controller that hangs (or munge down) must not stop the scheduler's
/// loop. Slurm's own client timeout (`MessageTimeout`) is 10 s by default.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A Slurm client call that failed: the command, and what it said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{command} failed: {message}")]
pub struct SlurmCallError {
    /// The command (`sbatch`, `squeue`, `scancel`).
    pub command: &'static str,
    /// Its stderr, or why it could not be run.
    pub message: String,
}

/// The three calls the runner needs.
pub trait SlurmCommands {
    /// Runs `sbatch ARGS` with `script` on stdin; returns its stdout.
    fn sbatch(&mut self, args: &[String], script: &str) -> Result<String, SlurmCallError>;
    /// Lists every job of this user Slurm still knows, one per array task, as
    /// [`super::queue::SQUEUE_FORMAT`] says.
    fn squeue(&mut self) -> Result<String, SlurmCallError>;
    /// Runs `scancel ARGS`.
    fn scancel(&mut self, args: &[String]) -> Result<(), SlurmCallError>;
}

/// The Slurm client programs on this machine's `PATH`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SlurmCli;

impl SlurmCli {
    fn run(
        command: &'static str,
        args: &[String],
        stdin: Option<&str>,
    ) -> Result<String, SlurmCallError> {
        let fail = |message: String| SlurmCallError { command, message };
        let mut child = Command::new(command)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                fail(format!(
                    "cannot run {command} (is Slurm's client installed and on PATH?): {e}"
                ))
            })?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())
                .map_err(|e| fail(format!("writing the batch script to {command}: {e}")))?;
        }
        let out = wait_within(child, CALL_TIMEOUT).map_err(|e| fail(e.to_string()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let lines: Vec<&str> = stderr
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            Err(fail(if lines.is_empty() {
                format!("{} with no message", out.status)
            } else {
                lines.join("; ")
            }))
        }
    }
}

impl SlurmCommands for SlurmCli {
    fn sbatch(&mut self, args: &[String], script: &str) -> Result<String, SlurmCallError> {
        Self::run("sbatch", args, Some(script))
    }

    fn squeue(&mut self) -> Result<String, SlurmCallError> {
        let args =
            ["--noheader", "--array", "--states=all", "--me", "--format"].map(str::to_string);
        let mut args = args.to_vec();
        args.push(super::queue::SQUEUE_FORMAT.to_string());
        Self::run("squeue", &args, None)
    }

    fn scancel(&mut self, args: &[String]) -> Result<(), SlurmCallError> {
        Self::run("scancel", args, None).map(drop)
    }
}

/// Waits for `child` at most `timeout`, reading its output meanwhile; past it the
/// child is killed and the call fails with a message saying so.
fn wait_within(mut child: Child, timeout: Duration) -> std::io::Result<Output> {
    fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no answer within {} s; is the Slurm controller (and munge) up?",
                    timeout.as_secs()
                ),
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_that_hangs_is_killed_at_its_timeout() {
        let child = Command::new("sleep")
            .arg("30")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let error = wait_within(child, Duration::from_millis(100)).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert!(error.to_string().contains("controller"), "{error}");
    }

    #[test]
    fn a_call_that_answers_gives_its_output() {
        let child = Command::new("sh")
            .args(["-c", "echo out; echo err >&2; exit 3"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = wait_within(child, CALL_TIMEOUT).unwrap();
        assert_eq!(
            (out.stdout, out.stderr),
            (b"out\n".to_vec(), b"err\n".to_vec())
        );
        assert_eq!(out.status.code(), Some(3));
    }
}
