//! Worker health (bistro-runtime §5.3) and the startup initial wait's timing (§5.11).
//!
//! Pure: nothing here reads a clock or does I/O; every time is an epoch-seconds `now`
//! passed in by the caller. The scheduler and the worker run the same health function
//! ([`WorkerHealth::compute_state`]) with slightly different timeouts
//! ([`HealthSettings::worker_timeouts`] versus [`HealthTimeouts::for_worker`]), so that
//! a partitioned worker kills its tasks just before the scheduler would lose it.

use serde::{Deserialize, Serialize};

/// A remote worker's state, as both the scheduler and the worker see it.
///
/// `New` ⇒ `Unhealthy` ⇄ `Healthy`, and any of them ⇒ `MustDie`, which is terminal. A
/// worker is `New` until the scheduler has fetched its running tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkerState {
    /// Just connected; its running tasks are not known yet.
    New,
    /// May be given tasks.
    Healthy,
    /// Missed a heartbeat or healthcheck, or lacks worker-set consensus.
    Unhealthy,
    /// Lost: its tasks are failed and it must kill them and exit.
    MustDie,
}

impl WorkerState {
    /// Bistro's wire number: NEW=0, HEALTHY=1, UNHEALTHY=2, MUST_DIE=3.
    pub fn code(self) -> i32 {
        match self {
            WorkerState::New => 0,
            WorkerState::Healthy => 1,
            WorkerState::Unhealthy => 2,
            WorkerState::MustDie => 3,
        }
    }

    /// The state with Bistro's wire number `code`, if there is one.
    pub fn from_code(code: i32) -> Option<Self> {
        match code {
            0 => Some(WorkerState::New),
            1 => Some(WorkerState::Healthy),
            2 => Some(WorkerState::Unhealthy),
            3 => Some(WorkerState::MustDie),
            _ => None,
        }
    }
}

/// The three timeouts of the health function, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthTimeouts {
    /// Unhealthy once `now` is more than this past the last good healthcheck's send time.
    pub healthcheck_gap: i64,
    /// Unhealthy once `now` is more than this past the last heartbeat.
    pub heartbeat_gap: i64,
    /// Lost once unhealthy (or new) for more than this; 0 or less never loses a worker.
    pub lose_after: i64,
}

impl HealthTimeouts {
    /// The worker's own timeouts, from the scheduler's last heartbeat response
    /// (`None` before any scheduler replied) and its own heartbeat period.
    ///
    /// With a response: the scheduler's healthcheck gap, its own period plus the
    /// scheduler's grace period, and `lose_unhealthy_worker_after − worker_check_interval`
    /// so that it dies slightly before the scheduler would lose it. Before any response:
    /// unhealthy at once (gap 0, own period) but never lost (`i32::MAX`), as in Bistro.
    pub fn for_worker(heartbeat_period: i64, scheduler: Option<&SchedulerTimeouts>) -> Self {
        match scheduler {
            Some(s) => HealthTimeouts {
                healthcheck_gap: s.max_healthcheck_gap,
                heartbeat_gap: heartbeat_period + s.heartbeat_grace_period,
                lose_after: s.lose_unhealthy_worker_after - s.worker_check_interval,
            },
            None => HealthTimeouts {
                healthcheck_gap: 0,
                heartbeat_gap: heartbeat_period,
                lose_after: i64::from(i32::MAX),
            },
        }
    }
}

/// The timeouts a scheduler sends in each heartbeat response (Bistro's
/// `SchedulerHeartbeatResponse` fields of the same names), already clamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulerTimeouts {
    /// `healthcheck_period + healthcheck_grace_period + worker_check_interval`.
    pub max_healthcheck_gap: i64,
    /// Added to the worker's own heartbeat period.
    pub heartbeat_grace_period: i64,
    /// Seconds unhealthy before the scheduler loses the worker.
    pub lose_unhealthy_worker_after: i64,
    /// Seconds between the scheduler's worker sweeps.
    pub worker_check_interval: i64,
}

/// What [`WorkerHealth::compute_state`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComputedState {
    /// The state the worker should be in now.
    pub state: WorkerState,
    /// True only when the worker would be healthy but has never been and was not
    /// allowed to become so (it lacks worker-set consensus); such a worker is not lost.
    pub blocked_by_consensus: bool,
}

/// The outcome of [`WorkerHealth::update`], for the caller to act on and log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthUpdate {
    /// The state before the update.
    pub previous: WorkerState,
    /// The state after it.
    pub state: WorkerState,
    /// See [`ComputedState::blocked_by_consensus`].
    pub blocked_by_consensus: bool,
}

impl HealthUpdate {
    /// The worker was just lost: request its suicide, drop it from the worker set and
    /// lose its tasks (§5.9).
    pub fn became_lost(&self) -> bool {
        self.previous != WorkerState::MustDie && self.state == WorkerState::MustDie
    }

    /// The worker just became healthy.
    pub fn became_healthy(&self) -> bool {
        self.previous != WorkerState::Healthy && self.state == WorkerState::Healthy
    }

    /// The worker was healthy and no longer is.
    pub fn became_unhealthy(&self) -> bool {
        self.previous == WorkerState::Healthy && self.state != WorkerState::Healthy
    }
}

/// One worker instance's health bookkeeping (Bistro's `RemoteWorkerState`). Times are
/// epoch seconds; `i64::MIN` stands for −∞ ("never").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerHealth {
    /// Current state.
    pub state: WorkerState,
    /// When it last stopped being healthy (its creation time while it never was);
    /// the loss timeout counts from here.
    pub time_became_unhealthy: i64,
    /// Scheduler-clock send time of the newest healthcheck that came back `done`.
    pub last_good_healthcheck: i64,
    /// When the last heartbeat was received (worker side: sent).
    pub last_heartbeat: i64,
    /// Reached `Healthy` at least once; from then on no consensus is needed.
    pub has_been_healthy: bool,
}

impl WorkerHealth {
    /// A worker instance first seen at `now`: `New`, never healthy, no healthcheck or
    /// heartbeat yet, and the loss timeout counting from `now`.
    pub fn new(now: i64) -> Self {
        WorkerHealth {
            state: WorkerState::New,
            time_became_unhealthy: now,
            last_good_healthcheck: i64::MIN,
            last_heartbeat: i64::MIN,
            has_been_healthy: false,
        }
    }

    /// Bistro's health function (§5.3): the state this worker should be in at `now`,
    /// without changing anything. `allowed_to_become_healthy` is the worker-set
    /// consensus verdict (always false on the worker side); it matters only for a
    /// worker that has never been healthy.
    pub fn compute_state(
        &self,
        now: i64,
        timeouts: &HealthTimeouts,
        allowed_to_become_healthy: bool,
    ) -> ComputedState {
        if self.state == WorkerState::MustDie {
            return ComputedState {
                state: WorkerState::MustDie,
                blocked_by_consensus: false,
            };
        }
        let mut blocked_by_consensus = false;
        let candidate = if self.state == WorkerState::New {
            WorkerState::New
        } else if now
            > self
                .last_good_healthcheck
                .saturating_add(timeouts.healthcheck_gap)
            || now > self.last_heartbeat.saturating_add(timeouts.heartbeat_gap)
        {
            WorkerState::Unhealthy
        } else if !allowed_to_become_healthy && !self.has_been_healthy {
            blocked_by_consensus = true;
            WorkerState::Unhealthy
        } else {
            WorkerState::Healthy
        };
        // A worker blocked only by consensus is never lost: losing it would only add
        // turnover, which makes consensus harder still. The HEALTHY checks keep a stale
        // `time_became_unhealthy` from losing a worker that only just became unhealthy.
        let lost = !blocked_by_consensus
            && timeouts.lose_after > 0
            && candidate != WorkerState::Healthy
            && self.state != WorkerState::Healthy
            && now
                > self
                    .time_became_unhealthy
                    .saturating_add(timeouts.lose_after);
        ComputedState {
            state: if lost {
                WorkerState::MustDie
            } else {
                candidate
            },
            blocked_by_consensus,
        }
    }

    /// Runs [`compute_state`](Self::compute_state) and applies the result with
    /// [`set_state`](Self::set_state). A `MustDie` worker is left alone.
    pub fn update(
        &mut self,
        now: i64,
        timeouts: &HealthTimeouts,
        allowed_to_become_healthy: bool,
    ) -> HealthUpdate {
        let previous = self.state;
        let computed = self.compute_state(now, timeouts, allowed_to_become_healthy);
        self.set_state(computed.state, now);
        HealthUpdate {
            previous,
            state: self.state,
            blocked_by_consensus: computed.blocked_by_consensus,
        }
    }

    /// Moves to `state` with Bistro's bookkeeping: leaving `Healthy` restarts the loss
    /// timeout at `now`; reaching `Healthy` sets `has_been_healthy` for good; `MustDie`
    /// is never left. Used by [`update`](Self::update), by the scheduler when a new
    /// worker's running tasks arrive (`New` ⇒ `Unhealthy`), and by the worker when it
    /// adopts the state of a heartbeat response.
    pub fn set_state(&mut self, state: WorkerState, now: i64) {
        if self.state == WorkerState::MustDie {
            return;
        }
        if self.state == WorkerState::Healthy && state != WorkerState::Healthy {
            self.time_became_unhealthy = now;
        }
        self.state = state;
        self.has_been_healthy |= state == WorkerState::Healthy;
    }

    /// Records a heartbeat received at `now`.
    pub fn record_heartbeat(&mut self, now: i64) {
        self.last_heartbeat = now;
    }

    /// Records a `done` healthcheck that was sent at `sent_at` (scheduler clock); the
    /// newest send time wins, so late replies never move it back.
    pub fn record_good_healthcheck(&mut self, sent_at: i64) {
        self.last_good_healthcheck = self.last_good_healthcheck.max(sent_at);
    }
}

/// The scheduler's worker-health settings (§1.1), in seconds unless named `_ms`.
/// Every accessor clamps to at least 1, as Bistro does when it uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    /// Added to each worker's own heartbeat period.
    pub heartbeat_grace_period: i64,
    /// Between healthchecks of one worker.
    pub healthcheck_period: i64,
    /// Added to the healthcheck period before a worker is unhealthy.
    pub healthcheck_grace_period: i64,
    /// Unhealthy this long ⇒ lost.
    pub lose_unhealthy_worker_after: i64,
    /// Between worker sweeps.
    pub worker_check_interval: i64,
    /// `CAUTION_worker_suicide_backoff_safety_margin_sec`.
    pub worker_suicide_backoff_safety_margin: i64,
    /// `CAUTION_worker_suicide_task_kill_wait_ms`.
    pub worker_suicide_task_kill_wait_ms: i64,
    /// `CAUTION_startup_wait_for_workers`; `None` (or a negative value, Bistro's −1)
    /// means the computed [`safe_initial_wait`](Self::safe_initial_wait).
    pub startup_wait_for_workers: Option<i64>,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            heartbeat_grace_period: 60,
            healthcheck_period: 60,
            healthcheck_grace_period: 60,
            lose_unhealthy_worker_after: 500,
            worker_check_interval: 5,
            worker_suicide_backoff_safety_margin: 60,
            worker_suicide_task_kill_wait_ms: 5000,
            startup_wait_for_workers: None,
        }
    }
}

/// Health settings Bistro refuses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("healthcheck_period must be positive, got {healthcheck_period}")]
pub struct BadHealthSettings {
    /// The period given.
    pub healthcheck_period: i64,
}

/// The configuration key named in initial-wait warnings.
const STARTUP_WAIT_KEY: &str = "CAUTION_startup_wait_for_workers";

impl HealthSettings {
    /// Checks what Bistro checks hard in its sweep: `healthcheck_period` must be
    /// positive (the other settings are merely clamped).
    pub fn validate(&self) -> Result<(), BadHealthSettings> {
        if self.healthcheck_period > 0 {
            Ok(())
        } else {
            Err(BadHealthSettings {
                healthcheck_period: self.healthcheck_period,
            })
        }
    }

    /// Seconds between healthchecks of one worker, at least 1.
    pub fn healthcheck_period(&self) -> i64 {
        self.healthcheck_period.max(1)
    }

    /// Heartbeat grace period, at least 1.
    pub fn heartbeat_grace_period(&self) -> i64 {
        self.heartbeat_grace_period.max(1)
    }

    /// Loss timeout, at least 1.
    pub fn lose_unhealthy_worker_after(&self) -> i64 {
        self.lose_unhealthy_worker_after.max(1)
    }

    /// Sweep interval, at least 1.
    pub fn worker_check_interval(&self) -> i64 {
        self.worker_check_interval.max(1)
    }

    /// Suicide safety margin, at least 1.
    pub fn worker_suicide_backoff_safety_margin(&self) -> i64 {
        self.worker_suicide_backoff_safety_margin.max(1)
    }

    /// Per-task kill wait stamped into running tasks, at least 1 ms.
    pub fn worker_suicide_task_kill_wait_ms(&self) -> i64 {
        self.worker_suicide_task_kill_wait_ms.max(1)
    }

    /// `healthcheck_period + healthcheck_grace_period + worker_check_interval` (125 by
    /// default): healthchecks may be sent up to one sweep late.
    pub fn max_healthcheck_gap(&self) -> i64 {
        self.healthcheck_period()
            + self.healthcheck_grace_period.max(1)
            + self.worker_check_interval()
    }

    /// The timeouts sent to workers in every heartbeat response.
    pub fn scheduler_timeouts(&self) -> SchedulerTimeouts {
        SchedulerTimeouts {
            max_healthcheck_gap: self.max_healthcheck_gap(),
            heartbeat_grace_period: self.heartbeat_grace_period(),
            lose_unhealthy_worker_after: self.lose_unhealthy_worker_after(),
            worker_check_interval: self.worker_check_interval(),
        }
    }

    /// The scheduler's timeouts for a worker whose own heartbeat period is
    /// `heartbeat_period`: the max healthcheck gap, that period plus the grace period,
    /// and the loss timeout.
    pub fn worker_timeouts(&self, heartbeat_period: i64) -> HealthTimeouts {
        HealthTimeouts {
            healthcheck_gap: self.max_healthcheck_gap(),
            heartbeat_gap: heartbeat_period + self.heartbeat_grace_period(),
            lose_after: self.lose_unhealthy_worker_after(),
        }
    }

    /// The shortest initial wait after which every live worker that has not
    /// reconnected has surely killed its tasks and itself: max healthcheck gap + loss
    /// timeout + one sweep + suicide margin + task kill wait + 1 s (696 by default).
    pub fn safe_initial_wait(&self) -> i64 {
        self.max_healthcheck_gap()
            + self.lose_unhealthy_worker_after()
            + self.worker_check_interval()
            + self.worker_suicide_backoff_safety_margin()
            + self.worker_suicide_task_kill_wait_ms() / 1000
            + 1
    }

    /// The configured startup wait if it is set and not negative, else the safe one.
    pub fn initial_wait(&self) -> i64 {
        match self.startup_wait_for_workers {
            Some(wait) if wait >= 0 => wait,
            _ => self.safe_initial_wait(),
        }
    }

    /// The warning for a configured startup wait shorter than is safe, if any: an
    /// alarm below the max healthcheck gap, a caution below the safe wait.
    pub fn initial_wait_warning(&self) -> Option<String> {
        let wait = self.startup_wait_for_workers.filter(|w| *w >= 0)?;
        let gap = self.max_healthcheck_gap();
        let safe = self.safe_initial_wait();
        if wait < gap {
            Some(format!(
                "DANGER! DANGER! Your {STARTUP_WAIT_KEY} of {wait} s is shorter than the \
                 max healthcheck gap of {gap} s, so this scheduler will very likely start \
                 second copies of tasks that are still running on workers that have not \
                 reconnected yet (unless their heartbeat period is much shorter). "
            ))
        } else if wait < safe {
            Some(format!(
                "Your {STARTUP_WAIT_KEY} of {wait} s is shorter than the safe minimum of \
                 {safe} s, which raises the risk of starting second copies of tasks that \
                 are still running. "
            ))
        } else {
            None
        }
    }

    /// The initial-wait decision of one sweep (§5.11), `None` meaning "exit the wait
    /// now" and `Some(message)` the message to publish while waiting. The caller
    /// evaluates it once per sweep while still waiting (a wait once exited is never
    /// re-entered) and handles the manual `CAUTION_exit_initial_wait_before_timestamp`
    /// override itself. `consensus` is the worker-set verdict
    /// ([`WorkerSetTracker::has_consensus`](super::worker_set::WorkerSetTracker::has_consensus));
    /// `any_new_worker` is true while some worker's running tasks are not fetched yet.
    pub fn initial_wait_message(
        &self,
        now: i64,
        scheduler_start: i64,
        consensus: bool,
        any_new_worker: bool,
    ) -> Option<String> {
        let mut message = self.initial_wait_warning().unwrap_or_default();
        if !consensus {
            message.push_str("No initial worker set ID consensus. ");
        }
        let waited_enough = now.saturating_sub(scheduler_start) >= self.initial_wait();
        if !waited_enough && !consensus {
            message.push_str("Waiting for all workers to connect before running tasks.");
        } else if any_new_worker {
            message.push_str(
                "Ready to exit initial wait, but not all workers' running tasks were \
                 fetched; not allowing tasks to start until all are fetched.",
            );
        } else {
            return None;
        }
        Some(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts(healthcheck_gap: i64, heartbeat_gap: i64, lose_after: i64) -> HealthTimeouts {
        HealthTimeouts {
            healthcheck_gap,
            heartbeat_gap,
            lose_after,
        }
    }

    fn computed(state: WorkerState, blocked_by_consensus: bool) -> ComputedState {
        ComputedState {
            state,
            blocked_by_consensus,
        }
    }

    /// test_remote_worker_state `HandleAll`.
    #[test]
    fn handle_all() {
        use WorkerState::*;
        let mut s = WorkerHealth::new(0);
        assert_eq!(s.state, New);
        // NEW stays NEW (until the loss timeout).
        assert_eq!(
            s.compute_state(0, &timeouts(0, 0, 1), false),
            computed(New, false)
        );

        s.state = Unhealthy;
        s.last_good_healthcheck = 1;
        s.last_heartbeat = 2;
        // Otherwise healthy, but never was, and consensus does not allow it.
        assert_eq!(
            s.compute_state(3, &timeouts(5, 5, 3), false),
            computed(Unhealthy, true)
        );
        // Unhealthy past the loss timeout, yet not lost: blocked only by consensus.
        assert_eq!(
            s.compute_state(5, &timeouts(5, 5, 1), false),
            computed(Unhealthy, true)
        );
        // A missed heartbeat is a real problem, so it is lost.
        assert_eq!(
            s.compute_state(5, &timeouts(5, 2, 1), true),
            computed(MustDie, false)
        );
        // Consensus allows it.
        assert_eq!(
            s.compute_state(3, &timeouts(5, 5, 1), true),
            computed(Healthy, false)
        );

        // Once it has been healthy, no permission is needed.
        s.has_been_healthy = true;
        assert_eq!(
            s.compute_state(3, &timeouts(5, 5, 1), false),
            computed(Healthy, false)
        );
        s.state = Healthy;
        // A missed heartbeat makes it unhealthy, but a healthy worker is not lost at once.
        assert_eq!(
            s.compute_state(5, &timeouts(5, 2, 1), false),
            computed(Unhealthy, false)
        );

        s.state = Unhealthy;
        assert_eq!(
            s.compute_state(3, &timeouts(5, 5, 1), false),
            computed(Healthy, false)
        );
        assert_eq!(
            s.compute_state(5, &timeouts(5, 2, 10), false),
            computed(Unhealthy, false)
        );
        // Unlike the never-healthy variant above, this one is lost.
        assert_eq!(
            s.compute_state(5, &timeouts(5, 2, 1), false),
            computed(MustDie, false)
        );

        // MUST_DIE is sticky even when everything else looks healthy.
        assert_eq!(
            s.compute_state(5, &timeouts(9, 9, 9), false),
            computed(Healthy, false)
        );
        s.state = MustDie;
        assert_eq!(
            s.compute_state(5, &timeouts(9, 9, 9), false),
            computed(MustDie, false)
        );
    }

    #[test]
    fn new_worker_is_lost_counting_from_creation() {
        let s = WorkerHealth::new(100);
        let t = timeouts(125, 75, 500);
        assert_eq!(s.compute_state(600, &t, true).state, WorkerState::New);
        assert_eq!(s.compute_state(601, &t, true).state, WorkerState::MustDie);
    }

    #[test]
    fn lose_after_zero_never_loses() {
        let mut s = WorkerHealth::new(0);
        s.state = WorkerState::Unhealthy;
        let t = timeouts(1, 1, 0);
        assert_eq!(
            s.compute_state(1_000_000, &t, true).state,
            WorkerState::Unhealthy
        );
    }

    #[test]
    fn update_does_bistros_bookkeeping() {
        let t = timeouts(125, 75, 500);
        let mut s = WorkerHealth::new(0);
        s.record_heartbeat(10);
        s.record_good_healthcheck(10);
        // NEW until the running tasks are fetched.
        let u = s.update(10, &t, true);
        assert_eq!((u.previous, u.state), (WorkerState::New, WorkerState::New));
        s.set_state(WorkerState::Unhealthy, 11);
        assert_eq!(s.time_became_unhealthy, 0, "NEW counts from creation");

        // Blocked by consensus.
        let u = s.update(12, &t, false);
        assert_eq!(u.state, WorkerState::Unhealthy);
        assert!(u.blocked_by_consensus && !u.became_healthy());
        assert!(!s.has_been_healthy);

        let u = s.update(13, &t, true);
        assert!(u.became_healthy());
        assert!(s.has_been_healthy);

        // Missing heartbeats: the loss timeout restarts when it stops being healthy.
        let u = s.update(86, &t, false);
        assert!(u.became_unhealthy() && !u.blocked_by_consensus);
        assert_eq!(s.time_became_unhealthy, 86);
        assert!(s.has_been_healthy);

        // A heartbeat and healthcheck restore it without consensus.
        s.record_heartbeat(90);
        s.record_good_healthcheck(90);
        s.record_good_healthcheck(20);
        assert_eq!(
            s.last_good_healthcheck, 90,
            "an older reply never moves it back"
        );
        assert!(s.update(91, &t, false).became_healthy());

        // Silent for good: unhealthy at 166, lost 500 s later.
        assert!(s.update(166, &t, false).became_unhealthy());
        assert_eq!(s.update(666, &t, false).state, WorkerState::Unhealthy);
        let u = s.update(667, &t, false);
        assert!(u.became_lost());
        // Sticky, also against set_state.
        s.record_heartbeat(668);
        s.record_good_healthcheck(668);
        let u = s.update(668, &t, true);
        assert_eq!(u.state, WorkerState::MustDie);
        assert!(!u.became_lost());
        s.set_state(WorkerState::Healthy, 669);
        assert_eq!(s.state, WorkerState::MustDie);
    }

    #[test]
    fn state_codes_and_names() {
        for (state, code, name) in [
            (WorkerState::New, 0, "\"NEW\""),
            (WorkerState::Healthy, 1, "\"HEALTHY\""),
            (WorkerState::Unhealthy, 2, "\"UNHEALTHY\""),
            (WorkerState::MustDie, 3, "\"MUST_DIE\""),
        ] {
            assert_eq!(state.code(), code);
            assert_eq!(WorkerState::from_code(code), Some(state));
            assert_eq!(serde_json::to_string(&state).unwrap(), name);
            assert_eq!(serde_json::from_str::<WorkerState>(name).unwrap(), state);
        }
        assert_eq!(WorkerState::from_code(4), None);
    }

    #[test]
    fn default_settings() {
        let s = HealthSettings::default();
        assert_eq!(s.max_healthcheck_gap(), 125);
        assert_eq!(s.safe_initial_wait(), 696);
        assert_eq!(s.initial_wait(), 696);
        assert_eq!(s.initial_wait_warning(), None);
        assert_eq!(
            s.worker_timeouts(15),
            HealthTimeouts {
                healthcheck_gap: 125,
                heartbeat_gap: 75,
                lose_after: 500
            }
        );
        assert_eq!(
            s.scheduler_timeouts(),
            SchedulerTimeouts {
                max_healthcheck_gap: 125,
                heartbeat_grace_period: 60,
                lose_unhealthy_worker_after: 500,
                worker_check_interval: 5
            }
        );
        assert!(s.validate().is_ok());
    }

    #[test]
    fn settings_clamp_to_one() {
        let s = HealthSettings {
            heartbeat_grace_period: 0,
            healthcheck_period: 0,
            healthcheck_grace_period: -5,
            lose_unhealthy_worker_after: 0,
            worker_check_interval: -1,
            worker_suicide_backoff_safety_margin: 0,
            worker_suicide_task_kill_wait_ms: 0,
            startup_wait_for_workers: Some(-1),
        };
        assert_eq!(s.max_healthcheck_gap(), 3);
        assert_eq!(s.heartbeat_grace_period(), 1);
        assert_eq!(s.lose_unhealthy_worker_after(), 1);
        assert_eq!(s.worker_suicide_task_kill_wait_ms(), 1);
        // 3 + 1 + 1 + 1 + 0 + 1
        assert_eq!(s.safe_initial_wait(), 7);
        assert_eq!(s.initial_wait(), 7, "a negative wait means the safe one");
        assert!(s.validate().is_err());
    }

    /// The flags of test_remote_workers' `TestRemoteWorkersInitialWait`.
    fn test_flags(startup_wait_for_workers: Option<i64>) -> HealthSettings {
        HealthSettings {
            worker_check_interval: 1,
            healthcheck_period: 3,
            healthcheck_grace_period: 9,
            lose_unhealthy_worker_after: 27,
            worker_suicide_backoff_safety_margin: 81,
            worker_suicide_task_kill_wait_ms: 243_000,
            startup_wait_for_workers,
            ..HealthSettings::default()
        }
    }

    /// test_remote_workers `NoWorkers`: the wait ends exactly at the safe wait.
    #[test]
    fn no_workers_wait_ends_at_safe_wait() {
        let s = test_flags(None);
        let safe = 27 + (9 + 3 + 1) + 1 + 81 + 243 + 1;
        assert_eq!(s.safe_initial_wait(), safe);
        for t in [0, 1, 5, safe - 2, safe - 1] {
            let msg = s.initial_wait_message(t, 0, false, false).unwrap();
            assert!(msg.contains("Waiting for all"), "{msg}");
            assert!(!msg.contains("CAUTION"), "{msg}");
        }
        assert_eq!(s.initial_wait_message(safe, 0, false, false), None);
    }

    /// test_remote_workers `OneWorkerWithRunningTasks`: an unsafe W=10 warns; at W the
    /// wait still holds while a worker is NEW, and ends once its tasks are fetched.
    #[test]
    fn one_new_worker_holds_the_wait() {
        let s = test_flags(Some(10));
        assert_eq!(s.initial_wait(), 10);
        for t in [0, 5, 7] {
            let msg = s.initial_wait_message(t, 0, false, true).unwrap();
            assert!(msg.contains("CAUTION_startup_wait_for_workers"), "{msg}");
            assert!(msg.contains("Waiting for all"), "{msg}");
        }
        let msg = s.initial_wait_message(10, 0, false, true).unwrap();
        assert!(msg.contains("CAUTION_startup_wait_for_workers"), "{msg}");
        assert!(
            msg.contains(" Ready to exit initial wait, but ")
                && msg.contains(" not allowing tasks to start "),
            "{msg}"
        );
        assert_eq!(s.initial_wait_message(10, 0, false, false), None);
    }

    #[test]
    fn consensus_ends_the_wait_early_but_not_while_new() {
        let s = HealthSettings::default();
        assert_eq!(s.initial_wait_message(1, 0, true, false), None);
        let msg = s.initial_wait_message(1, 0, true, true).unwrap();
        assert!(msg.starts_with("Ready to exit initial wait"), "{msg}");
    }

    #[test]
    fn startup_wait_warnings() {
        let warn = |w| test_flags(Some(w)).initial_wait_warning();
        // max healthcheck gap 13, safe wait 366
        assert!(warn(12).unwrap().starts_with("DANGER! DANGER! "));
        let mild = warn(13).unwrap();
        assert!(!mild.contains("DANGER") && mild.contains("366"), "{mild}");
        assert!(warn(365).is_some());
        assert_eq!(warn(366), None);
        assert_eq!(warn(0).map(|m| m.contains("DANGER")), Some(true));
    }

    #[test]
    fn worker_side_timeouts() {
        assert_eq!(
            HealthTimeouts::for_worker(15, None),
            HealthTimeouts {
                healthcheck_gap: 0,
                heartbeat_gap: 15,
                lose_after: i64::from(i32::MAX)
            }
        );
        let sched = HealthSettings::default().scheduler_timeouts();
        assert_eq!(
            HealthTimeouts::for_worker(15, Some(&sched)),
            HealthTimeouts {
                healthcheck_gap: 125,
                heartbeat_gap: 75,
                lose_after: 495
            }
        );
        // Before any reply the worker is unhealthy at once but never dies.
        let mut w = WorkerHealth::new(0);
        w.set_state(WorkerState::Unhealthy, 0);
        let t = HealthTimeouts::for_worker(15, None);
        assert_eq!(w.update(1_000_000, &t, false).state, WorkerState::Unhealthy);
    }
}
