//! The Slurm client calls the runner makes (`sbatch`, `squeue`, `scancel`), behind one
//! small trait so that everything that parses their answers is tested without a
//! cluster. The real calls honour `SLURM_CONF` and the rest of Slurm's environment.

use std::io::Write;
use std::process::{Command, Stdio};

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
        let out = child
            .wait_with_output()
            .map_err(|e| fail(format!("waiting for {command}: {e}")))?;
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
