//! The simulated runner (Bistro's BenchmarkRunner, bistro-runtime §2.12): no process is
//! started; each run ends after a uniform random 0..2×`task_duration_ms` and reports
//! `done`, or `error_backoff` with the exception `testing` at `failure_rate`; a run
//! longer than its job's `task_timeout_sec` ends at the timeout as `error_backoff`
//! "timed out after N s", as a real one is killed then. It
//! measures the scheduler's own overhead (`--benchmark-run`).
//!
//! A run's length and outcome are drawn from its invocation's random number, so a run
//! started by one process (a `tick`) ends the same way when another process checks
//! it. Unlike Bistro, statuses are recorded as for real runs (so `status`,
//! `--exit-when-done` and the store's own cost are part of the measure); a benchmark
//! state dir is thrown away after, or reset with `daemon --clean-statuses`.

use super::{Outcome, PreparedTask, RunnerError, TaskResult, TaskRunner};
use crate::foundation::config::KillRequest;
use crate::foundation::status::{bits, TaskStatus};
use crate::model::task::{InvocationId, RunningTask};
use std::collections::HashMap;

/// How simulated runs behave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Simulation {
    /// Mean run length in milliseconds (runs take 0..2× this, uniformly).
    pub task_duration_ms: u64,
    /// The probability that a run fails with `error_backoff("testing")`, 0 to 1.
    pub failure_rate: f64,
}

impl Default for Simulation {
    /// Bistro's defaults: 5 s mean, no failures.
    fn default() -> Self {
        Self {
            task_duration_ms: 5000,
            failure_rate: 0.0,
        }
    }
}

impl Simulation {
    /// How long the run with this invocation takes, in milliseconds.
    pub fn duration_ms(&self, invocation: InvocationId) -> u64 {
        let span = self.task_duration_ms.saturating_mul(2).saturating_add(1);
        mix(invocation.rand) % span
    }

    /// Does the run with this invocation fail?
    pub fn fails(&self, invocation: InvocationId) -> bool {
        // An independent draw: another mix of the same random bits, as a fraction.
        let draw =
            (mix(invocation.rand ^ 0x9e37_79b9_7f4a_7c15) >> 11) as f64 / (1u64 << 53) as f64;
        draw < self.failure_rate
    }
}

/// SplitMix64's finalizer: spreads the invocation's random bits into independent draws.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Epoch milliseconds.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A run this runner started or was asked to kill.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// Epoch milliseconds when it was started.
    started_ms: i64,
    /// Killed: it ends at the next check.
    killed: bool,
}

/// Completes tasks after a simulated duration, without processes.
#[derive(Debug, Default)]
pub struct SimulatedRunner {
    simulation: Simulation,
    runs: HashMap<InvocationId, Run>,
}

impl SimulatedRunner {
    /// A runner whose runs behave as `simulation` says.
    pub fn new(simulation: Simulation) -> Self {
        Self {
            simulation,
            runs: HashMap::new(),
        }
    }
}

impl TaskRunner for SimulatedRunner {
    fn prepare(&mut self, launch: super::Launch) -> Result<PreparedTask, RunnerError> {
        Ok(PreparedTask { launch, lock: None })
    }

    fn start(&mut self, task: PreparedTask) -> Result<(), RunnerError> {
        self.runs.insert(
            task.launch.invocation,
            Run {
                started_ms: now_ms(),
                killed: false,
            },
        );
        Ok(())
    }

    /// Runs another process started are timed from their invocation's start second.
    fn check(&mut self, task: &RunningTask) -> Outcome {
        let invocation = task.invocation;
        let run = self.runs.get(&invocation).copied().unwrap_or(Run {
            started_ms: invocation.start_time.saturating_mul(1000),
            killed: false,
        });
        let now = now_ms();
        let duration_ms = self.simulation.duration_ms(invocation);
        let timeout_ms = task.timeout_sec.map(|s| s.saturating_mul(1000));
        let timed_out = timeout_ms.is_some_and(|t| t < duration_ms);
        let ends_ms = run
            .started_ms
            .saturating_add(timeout_ms.unwrap_or(u64::MAX).min(duration_ms) as i64);
        let status = if run.killed {
            TaskStatus::incomplete_backoff("killed by bistro", now / 1000)
        } else if now < ends_ms {
            return Outcome::Running;
        } else if timed_out {
            TaskStatus::error_backoff(
                format!("timed out after {} s", task.timeout_sec.unwrap_or_default()),
                now / 1000,
            )
        } else if self.simulation.fails(invocation) {
            TaskStatus::error_backoff("testing", now / 1000)
        } else {
            TaskStatus::new(bits::DONE, now / 1000)
        };
        Outcome::Finished(TaskResult {
            status,
            exit: "simulated".into(),
            killed: run.killed || timed_out,
            stop_signal: None,
            end_time: now / 1000,
        })
    }

    fn cleanup(&mut self, task: &RunningTask) {
        self.runs.remove(&task.invocation);
    }

    /// A simulated run dies at once: it is recorded `incomplete` at the next check.
    fn kill(&mut self, task: &RunningTask, _request: &KillRequest) -> Result<bool, RunnerError> {
        let invocation = task.invocation;
        let run = self.runs.entry(invocation).or_insert(Run {
            started_ms: invocation.start_time.saturating_mul(1000),
            killed: false,
        });
        run.killed = true;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundation::status::BackoffDuration;
    use crate::model::resources::NodeCharge;

    fn running(invocation: InvocationId) -> RunningTask {
        RunningTask {
            job: "j".into(),
            node: "n".into(),
            invocation,
            charges: Vec::<NodeCharge>::new(),
            next_backoff: BackoffDuration::new(60),
            attempts: 1,
            worker_shard: "local".into(),
            timeout_sec: None,
        }
    }

    fn invocations(count: u64) -> impl Iterator<Item = InvocationId> {
        (0..count).map(|i| InvocationId {
            start_time: crate::foundation::time::now(),
            rand: i.wrapping_mul(0x2545_f491_4f6c_dd1d),
        })
    }

    #[test]
    fn durations_are_spread_over_zero_to_twice_the_mean() {
        let sim = Simulation {
            task_duration_ms: 100,
            failure_rate: 0.0,
        };
        let durations: Vec<u64> = invocations(10_000).map(|i| sim.duration_ms(i)).collect();
        assert!(durations.iter().all(|&d| d <= 200));
        let mean = durations.iter().sum::<u64>() as f64 / durations.len() as f64;
        assert!((90.0..110.0).contains(&mean), "mean {mean}");
        assert!(durations.iter().any(|&d| d < 20));
        assert!(durations.iter().any(|&d| d > 180));
    }

    #[test]
    fn failures_come_at_the_configured_rate() {
        let rate = |failure_rate| {
            let sim = Simulation {
                task_duration_ms: 0,
                failure_rate,
            };
            invocations(10_000).filter(|&i| sim.fails(i)).count()
        };
        assert_eq!(rate(0.0), 0);
        assert_eq!(rate(1.0), 10_000);
        let quarter = rate(0.25);
        assert!((2_200..2_800).contains(&quarter), "{quarter} of 10000");
    }

    #[test]
    fn a_zero_length_run_ends_at_its_first_check_as_done_or_testing() {
        for failure_rate in [0.0, 1.0] {
            let mut runner = SimulatedRunner::new(Simulation {
                task_duration_ms: 0,
                failure_rate,
            });
            let task = running(invocations(1).next().unwrap());
            let Outcome::Finished(result) = runner.check(&task) else {
                panic!("a zero-length run is over");
            };
            assert!(!result.killed);
            if failure_rate == 0.0 {
                assert!(result.status.is_done());
            } else {
                assert!(result.status.has(bits::ERROR));
                assert_eq!(result.status.exception(), Some("testing"));
            }
        }
    }

    #[test]
    fn a_run_is_running_until_its_duration_is_over() {
        let mut runner = SimulatedRunner::new(Simulation {
            task_duration_ms: 3_600_000,
            failure_rate: 0.0,
        });
        // Drawn from 0..2 hours, this run lasts at least a minute.
        let invocation = invocations(100)
            .find(|&i| runner.simulation.duration_ms(i) > 60_000)
            .unwrap();
        let task = running(invocation);
        assert_eq!(runner.check(&task), Outcome::Running);
        // Started a day ago (by another process): long over.
        let old = running(InvocationId {
            start_time: crate::foundation::time::now() - 86_400,
            ..invocation
        });
        assert!(matches!(runner.check(&old), Outcome::Finished(r) if r.status.is_done()));
    }

    #[test]
    fn a_run_longer_than_its_timeout_ends_at_the_timeout_as_error_backoff() {
        let mut runner = SimulatedRunner::new(Simulation {
            task_duration_ms: 3_600_000,
            failure_rate: 0.0,
        });
        // Drawn from 0..2 hours, this run lasts more than 100 s.
        let invocation = invocations(100)
            .find(|&i| runner.simulation.duration_ms(i) > 100_000)
            .unwrap();
        let task = RunningTask {
            timeout_sec: Some(100),
            ..running(invocation)
        };
        assert_eq!(runner.check(&task), Outcome::Running);
        // Started 101 s ago (by another process): over at 100 s, not at its length.
        let old = RunningTask {
            invocation: InvocationId {
                start_time: crate::foundation::time::now() - 101,
                ..invocation
            },
            ..task
        };
        let Outcome::Finished(result) = runner.check(&old) else {
            panic!("a run past its timeout is over");
        };
        assert!(result.killed);
        assert!(result.status.has(bits::ERROR));
        assert_eq!(result.status.exception(), Some("timed out after 100 s"));
    }

    #[test]
    fn a_killed_run_ends_incomplete_at_the_next_check() {
        let mut runner = SimulatedRunner::new(Simulation {
            task_duration_ms: 3_600_000,
            failure_rate: 0.0,
        });
        let invocation = invocations(100)
            .find(|&i| runner.simulation.duration_ms(i) > 60_000)
            .unwrap();
        let task = running(invocation);
        assert_eq!(runner.check(&task), Outcome::Running);
        assert!(runner.kill(&task, &KillRequest::default()).unwrap());
        let Outcome::Finished(result) = runner.check(&task) else {
            panic!("a killed run is over");
        };
        assert!(result.killed);
        assert!(result.status.has(bits::INCOMPLETE));
        runner.cleanup(&task);
        assert!(runner.runs.is_empty());
    }
}
