//! Ports of Bistro's test_remote_worker and of the initial-wait and protocol parts of
//! test_remote_workers, driven through the pool's public API with concrete times.

use super::*;
use crate::execution::remote::protocol::{MachineLock, TaskRef};
use crate::execution::remote::worker_set::{SetHash, WorkerSetId};
use crate::foundation::status::{bits, TaskStatus};
use crate::model::task::InvocationId;

const SHARD: &str = "w1";

fn scheduler() -> InstanceId {
    InstanceId {
        start_time: 1000,
        rand: 7,
    }
}

/// A worker on host1:31000 with a 15 s heartbeat period.
fn worker(start_time: i64, rand: u64) -> WorkerInfo {
    WorkerInfo {
        shard: SHARD.into(),
        id: InstanceId { start_time, rand },
        hostname: "host1".into(),
        addr: "host1:31000".into(),
        lock: MachineLock {
            hostname: "host1".into(),
            port: 31000,
        },
        heartbeat_period_sec: 15,
        protocol_version: PROTOCOL_VERSION,
    }
}

/// The same worker process listening on the next port: a different machine lock.
fn on_next_port(w: &WorkerInfo, rand: u64) -> WorkerInfo {
    let mut w = w.clone();
    w.lock.port += 1;
    w.addr = format!("host1:{}", w.lock.port);
    w.id.rand = rand;
    w
}

fn pool_at(now: i64) -> WorkerPool {
    WorkerPool::new(scheduler(), now, PoolSettings::default())
}

fn beat(
    pool: &mut WorkerPool,
    w: &WorkerInfo,
    set: WorkerSetId,
    now: i64,
) -> (Result<HeartbeatResponse, Refusal>, Vec<Action>) {
    pool.heartbeat(
        &HeartbeatRequest {
            worker: w.clone(),
            worker_set_id: set,
        },
        now,
    )
}

fn state(pool: &WorkerPool) -> WorkerState {
    pool.worker(SHARD).expect("known shard").health.state
}

fn suicide(w: &WorkerInfo, reason: &str) -> Action {
    Action::Suicide {
        worker: w.clone(),
        reason: reason.into(),
    }
}

fn healthcheck(w: &WorkerInfo, new_worker: bool, sent_at: i64) -> Action {
    Action::Healthcheck {
        worker: w.clone(),
        new_worker,
        sent_at,
    }
}

/// What a NEW worker is due: its running tasks and a new-worker healthcheck.
fn new_worker_checks(w: &WorkerInfo, now: i64) -> Vec<Action> {
    vec![
        Action::FetchRunning { worker: w.clone() },
        healthcheck(w, true, now),
    ]
}

/// Bistro's `initializeWorker`: a first heartbeat makes a NEW worker and asks for
/// its running tasks and a new-worker healthcheck, and the fetch makes it
/// UNHEALTHY. Returns the set id the heartbeat reply carried.
fn initialize(pool: &mut WorkerPool, w: &WorkerInfo, now: i64) -> WorkerSetId {
    let (answer, actions) = beat(pool, w, WorkerSetId::empty(), now);
    let answer = answer.expect("accepted");
    assert_eq!(answer.worker_state, WorkerState::New);
    assert_eq!(actions, new_worker_checks(w, now));
    // The fetch is in flight and the healthcheck not due: the sweep asks nothing.
    assert_eq!(pool.sweep(now), vec![]);
    assert_eq!(state(pool), WorkerState::New);
    assert!(pool.running_fetched(w, now));
    assert_eq!(state(pool), WorkerState::Unhealthy);
    answer.worker_set_id
}

/// Bistro's `makeWorkerHealthy`: a good healthcheck and a heartbeat echoing the
/// scheduler's set id; the sweep after it grants consensus and health.
fn make_healthy(pool: &mut WorkerPool, w: &WorkerInfo, now: i64) {
    pool.healthcheck_done(SHARD, w.id, now);
    assert_eq!(state(pool), WorkerState::Unhealthy);
    let current = pool.sets.current();
    let (answer, actions) = beat(pool, w, current, now);
    answer.expect("accepted");
    assert_eq!(actions, vec![]);
    assert_eq!(pool.sweep(now), vec![]);
    assert_eq!(state(pool), WorkerState::Healthy);
    assert!(pool.worker(SHARD).unwrap().health.has_been_healthy);
}

/// test_remote_worker `HandleNormal`.
#[test]
fn missed_heartbeat_makes_worker_unhealthy_and_next_heartbeat_restores_it() {
    let mut pool = pool_at(0);
    let w = worker(500, 1);
    let set = initialize(&mut pool, &w, 0);
    make_healthy(&mut pool, &w, 0);

    // Heartbeat gap: period 15 + grace 60. At 75 s it is still fine (but due for a
    // healthcheck, the period being 60 s).
    let mut at_gap = pool.clone();
    assert_eq!(at_gap.sweep(75), vec![healthcheck(&w, false, 75)]);
    assert_eq!(state(&at_gap), WorkerState::Healthy);

    // One second later it is unhealthy, and a healthcheck is requested; the previous
    // healthcheck (sent at 0, gap 125) is still good.
    let t = 60 + 15 + 1;
    assert_eq!(pool.sweep(t), vec![healthcheck(&w, false, t)]);
    assert_eq!(state(&pool), WorkerState::Unhealthy);
    assert!(pool.is_live(w.id));

    // The next heartbeat restores it, without consensus, and updates its metadata.
    let mut w2 = w.clone();
    w2.heartbeat_period_sec += 1;
    w2.hostname = "host1.example".into();
    let (answer, actions) = beat(&mut pool, &w2, set, t);
    assert_eq!(answer.unwrap().worker_state, WorkerState::Healthy);
    assert_eq!(actions, vec![]);
    assert_eq!(state(&pool), WorkerState::Healthy);
    assert_eq!(pool.worker(SHARD).unwrap().info, w2);
    assert_eq!(pool.worker(SHARD).unwrap().health.last_heartbeat, t);
}

/// test_remote_worker `DoNotDieDueToLackOfConsensus`: a worker unhealthy for longer
/// than the loss timeout is kept only if lacking consensus is its sole problem.
#[test]
fn worker_blocked_only_by_consensus_is_not_lost() {
    for do_not_lose in [false, true] {
        // The worker is created just over the loss timeout (500 s) before 0.
        let created = -500 - 1;
        let mut pool = pool_at(created);
        let w = worker(500, 1);
        initialize(&mut pool, &w, created);
        if do_not_lose {
            // A fresh heartbeat and healthcheck just before 0, but the worker never
            // echoes this scheduler's set id: it lacks consensus and nothing else.
            pool.healthcheck_done(SHARD, w.id, -1);
            let (answer, actions) = beat(&mut pool, &w, WorkerSetId::empty(), -1);
            assert_eq!(answer.unwrap().worker_state, WorkerState::Unhealthy);
            // Its last healthcheck was sent when it was created: one is due.
            assert_eq!(actions, vec![healthcheck(&w, false, -1)]);
        }
        assert_eq!(state(&pool), WorkerState::Unhealthy);

        let actions = pool.sweep(0);
        if do_not_lose {
            assert_eq!(state(&pool), WorkerState::Unhealthy);
            assert!(pool.worker(SHARD).unwrap().consensus_block.is_some());
            assert!(pool.is_live(w.id));
            assert!(!actions.iter().any(|a| matches!(a, Action::Suicide { .. })));
        } else {
            assert_eq!(state(&pool), WorkerState::MustDie);
            assert_eq!(
                actions,
                vec![suicide(&w, "Current worker just became lost")]
            );
            assert!(!pool.is_live(w.id), "its tasks are lost");
        }
    }
}

/// test_remote_worker `HandleMustDieAndLostTasks`.
#[test]
fn lost_worker_is_told_to_die_once_and_stays_lost() {
    let created = -500 - 1;
    let mut pool = pool_at(created);
    let w = worker(500, 1);
    let set = initialize(&mut pool, &w, created);
    assert_eq!(set.version, 1);
    assert!(pool.is_live(w.id));

    assert_eq!(
        pool.sweep(0),
        vec![suicide(&w, "Current worker just became lost")]
    );
    assert_eq!(state(&pool), WorkerState::MustDie);
    assert!(!pool.is_live(w.id));
    assert!(!pool.worker(SHARD).unwrap().health.has_been_healthy);
    // It left the worker set: a new version without it.
    assert_eq!(pool.sets.current().version, 2);
    assert_eq!(pool.sets.current().hash, SetHash::default());

    // Lost for good: later sweeps change nothing and ask for nothing, even if a
    // healthcheck comes back.
    pool.healthcheck_done(SHARD, w.id, 1000);
    for t in [0, 1, 1000, 100_000] {
        assert_eq!(pool.sweep(t), vec![]);
        assert_eq!(state(&pool), WorkerState::MustDie);
    }
    assert!(!pool.running_fetched(&w, 0));
    assert_eq!(pool.sets.current().version, 2);
}

/// test_remote_worker `WorkerReplacement`: every way a heartbeat from another
/// instance replaces, or fails to replace, the shard's current worker.
#[test]
fn worker_replacement_follows_machine_lock_and_health() {
    let mut t = 0;
    let mut pool = pool_at(t);
    let w1 = worker(500, 1);
    initialize(&mut pool, &w1, t);
    make_healthy(&mut pool, &w1, t);

    // Same machine lock, later start: the old one is surely dead; replace it, no
    // suicide.
    let w2 = worker(501, 1);
    let (answer, actions) = beat(&mut pool, &w2, WorkerSetId::empty(), t);
    let answer = answer.expect("replaced");
    assert_eq!(answer.worker_state, WorkerState::New);
    // v1 added w1, v2 removed it, v3 added w2.
    assert_eq!(answer.worker_set_id.version, 3);
    assert_eq!(actions, new_worker_checks(&w2, t), "no suicide");
    assert_eq!(pool.worker(SHARD).unwrap().info, w2);
    assert!(!pool.is_live(w1.id), "the old instance's tasks are lost");
    assert!(pool.is_live(w2.id));
    assert_eq!(pool.sweep(t), vec![]);
    assert!(pool.running_fetched(&w2, t));
    make_healthy(&mut pool, &w2, t);

    // Same machine lock, earlier start: a stale heartbeat, ignored without suicide.
    let stale = worker(500, 9);
    let (answer, actions) = beat(&mut pool, &stale, WorkerSetId::empty(), t);
    assert!(answer.is_err());
    assert_eq!(actions, vec![]);
    assert_eq!(state(&pool), WorkerState::Healthy);
    assert_eq!(pool.worker(SHARD).unwrap().info, w2);
    assert!(pool.is_live(w2.id));

    // Same machine lock and start time, another rand: the newcomer wins (logged as
    // an error), no suicide.
    let w3 = worker(501, 2);
    let (answer, actions) = beat(&mut pool, &w3, WorkerSetId::empty(), t);
    assert_eq!(answer.unwrap().worker_state, WorkerState::New);
    assert_eq!(actions, new_worker_checks(&w3, t), "no suicide");
    assert_eq!(pool.worker(SHARD).unwrap().info, w3);
    assert!(!pool.worker(SHARD).unwrap().health.has_been_healthy);
    assert!(!pool.is_live(w2.id));
    assert!(pool.running_fetched(&w3, t));
    make_healthy(&mut pool, &w3, t);

    // Another machine lock while the current worker is HEALTHY: the newcomer is told
    // to die and refused.
    let w4 = on_next_port(&w3, 4);
    let (answer, actions) = beat(&mut pool, &w4, WorkerSetId::empty(), t);
    let refusal = answer.unwrap_err();
    assert!(
        refusal.starts_with("Worker shouldn't associate with this scheduler"),
        "{refusal}"
    );
    assert_eq!(actions, vec![suicide(&w4, "The old worker is still okay")]);
    assert_eq!(state(&pool), WorkerState::Healthy);
    assert_eq!(pool.worker(SHARD).unwrap().info, w3);
    assert!(!pool.is_live(w4.id));

    // Miss a heartbeat: unhealthy.
    t += 60 + 15 + 1;
    assert_eq!(pool.sweep(t), vec![healthcheck(&w3, false, t)]);
    assert_eq!(state(&pool), WorkerState::Unhealthy);

    // An unhealthy worker is not bumped without allow_bump_unhealthy_worker...
    assert!(!pool.settings().allow_bump_unhealthy_worker);
    let (answer, actions) = beat(&mut pool, &w4, WorkerSetId::empty(), t);
    assert!(answer.is_err());
    assert_eq!(actions, vec![suicide(&w4, "The old worker is still okay")]);
    assert_eq!(state(&pool), WorkerState::Unhealthy);
    assert_eq!(pool.worker(SHARD).unwrap().info, w3);

    // ...and is with it.
    pool.settings.allow_bump_unhealthy_worker = true;
    let (answer, actions) = beat(&mut pool, &w4, WorkerSetId::empty(), t);
    assert_eq!(answer.unwrap().worker_state, WorkerState::New);
    let mut expected = vec![suicide(&w3, "Current unhealthy worker was replaced")];
    expected.extend(new_worker_checks(&w4, t));
    assert_eq!(actions, expected);
    assert_eq!(pool.worker(SHARD).unwrap().info, w4);
    assert!(!pool.is_live(w3.id));

    // A NEW worker is not healthy either, so it is bumped too.
    let w5 = on_next_port(&w4, 5);
    let (answer, actions) = beat(&mut pool, &w5, WorkerSetId::empty(), t);
    assert_eq!(answer.unwrap().worker_state, WorkerState::New);
    let mut expected = vec![suicide(&w4, "Current unhealthy worker was replaced")];
    expected.extend(new_worker_checks(&w5, t));
    assert_eq!(actions, expected);
    assert_eq!(pool.worker(SHARD).unwrap().info, w5);

    // Still NEW past the loss timeout (counted from its creation): lost.
    t += 500 + 1;
    assert_eq!(
        pool.sweep(t),
        vec![suicide(&w5, "Current worker just became lost")]
    );
    assert_eq!(state(&pool), WorkerState::MustDie);

    // Its heartbeats only re-request the suicide.
    let (answer, actions) = beat(&mut pool, &w5, WorkerSetId::empty(), t);
    assert_eq!(answer.unwrap().worker_state, WorkerState::MustDie);
    assert_eq!(
        actions,
        vec![suicide(&w5, "Current worker was already lost")]
    );
    assert_eq!(state(&pool), WorkerState::MustDie);
    assert_eq!(pool.worker(SHARD).unwrap().info, w5);

    // A lost worker is replaced even without allow_bump_unhealthy_worker.
    pool.settings.allow_bump_unhealthy_worker = false;
    let w6 = on_next_port(&w5, 6);
    let (answer, actions) = beat(&mut pool, &w6, WorkerSetId::empty(), t);
    assert_eq!(answer.unwrap().worker_state, WorkerState::New);
    let mut expected = vec![suicide(&w5, "Current lost worker was replaced")];
    expected.extend(new_worker_checks(&w6, t));
    assert_eq!(actions, expected);
    assert_eq!(pool.worker(SHARD).unwrap().info, w6);
    assert!(!pool.worker(SHARD).unwrap().health.has_been_healthy);
    assert!(pool.is_live(w6.id));

    // The lost instance, resumed, can never take the shard back: it is refused and
    // told to die (Bistro would let it bump a worker that is not healthy).
    pool.settings.allow_bump_unhealthy_worker = true;
    let (answer, actions) = beat(&mut pool, &w5, WorkerSetId::empty(), t);
    assert!(answer.unwrap_err().contains("must not associate again"));
    assert_eq!(
        actions,
        vec![suicide(&w5, "Current worker was already lost")]
    );
    assert_eq!(pool.worker(SHARD).unwrap().info, w6);
}

/// A worker past its loss timeout that no sweep has declared lost yet is replaced
/// with one suicide request, "Current lost worker was replaced", as in Bistro (which
/// only computes the old worker's state there).
#[test]
fn unswept_lost_worker_is_replaced_with_one_suicide_request() {
    let mut pool = pool_at(0);
    let w1 = worker(500, 1);
    initialize(&mut pool, &w1, 0);
    let w2 = on_next_port(&w1, 2);
    let t = 500 + 1;
    let (answer, actions) = beat(&mut pool, &w2, WorkerSetId::empty(), t);
    assert_eq!(answer.unwrap().worker_state, WorkerState::New);
    let mut expected = vec![suicide(&w1, "Current lost worker was replaced")];
    expected.extend(new_worker_checks(&w2, t));
    assert_eq!(actions, expected);
    assert!(!pool.is_live(w1.id));
    // v1 added w1, v2 removed it, v3 added w2.
    assert_eq!(pool.sets.current().version, 3);
}

fn update(w: &WorkerInfo, scheduler_id: InstanceId, shard: &str) -> UpdateStatusRequest {
    UpdateStatusRequest {
        task: TaskRef {
            job: "foobar".into(),
            node: "n".into(),
            invocation: InvocationId {
                start_time: 1,
                rand: 1,
            },
        },
        status: TaskStatus::new(bits::DONE, 0),
        exit: "exited with status 0".into(),
        killed: false,
        scheduler_id,
        worker_id: w.id,
        shard: shard.into(),
    }
}

/// test_remote_worker `RecordStatuses`, the sender checks: a NEW worker's reports
/// are refused until its running tasks are known, as are reports from another
/// instance, for another scheduler, or from an unknown shard.
#[test]
fn status_reports_are_refused_from_new_or_foreign_senders() {
    let mut pool = pool_at(0);
    let w = worker(500, 1);
    beat(&mut pool, &w, WorkerSetId::empty(), 0).0.unwrap();
    let report = update(&w, scheduler(), SHARD);
    let refusal = pool.check_update(&report).unwrap_err();
    assert!(refusal.contains("is NEW"), "{refusal}");

    pool.sweep(0);
    assert!(pool.running_fetched(&w, 0));
    assert_eq!(pool.check_update(&report), Ok(()));

    let mut bad_id = w.clone();
    bad_id.id.start_time += 1;
    assert!(pool
        .check_update(&update(&bad_id, scheduler(), SHARD))
        .is_err());

    let other_scheduler = InstanceId {
        start_time: 1000,
        rand: 8,
    };
    assert!(pool
        .check_update(&update(&w, other_scheduler, SHARD))
        .is_err());

    let refusal = pool
        .check_update(&update(&w, scheduler(), "w2"))
        .unwrap_err();
    assert!(refusal.contains("unknown worker shard w2"), "{refusal}");
}

/// test_remote_workers `ProtocolMismatch`.
#[test]
fn protocol_mismatch_is_refused_and_not_added() {
    let mut pool = pool_at(0);
    let mut bad = worker(500, 1);
    bad.protocol_version = -1;
    let (answer, actions) = beat(&mut pool, &bad, WorkerSetId::empty(), 0);
    assert!(answer.is_err());
    assert_eq!(actions, vec![]);
    assert!(pool.worker(SHARD).is_none());
    assert_eq!(pool.workers().count(), 0);
    assert_eq!(pool.sets.current().version, 0);

    let w = worker(500, 1);
    let (answer, actions) = beat(&mut pool, &w, WorkerSetId::empty(), 0);
    let answer = answer.unwrap();
    assert_eq!(actions, new_worker_checks(&w, 0));
    assert_eq!(answer.id, scheduler());
    assert_eq!(answer.protocol_version, PROTOCOL_VERSION);
    assert_eq!(answer.worker_state, WorkerState::New);
    let mut only_w = SetHash::default();
    only_w.add(w.id);
    assert_eq!(
        answer.worker_set_id,
        WorkerSetId {
            scheduler: scheduler(),
            version: 1,
            hash: only_w,
        }
    );
    assert_eq!(pool.workers().count(), 1);
}

/// The flags of test_remote_workers' `TestRemoteWorkersInitialWait`: safe wait 366 s.
fn test_flags(startup_wait_for_workers: Option<i64>) -> PoolSettings {
    PoolSettings {
        health: HealthSettings {
            worker_check_interval: 1,
            healthcheck_period: 3,
            healthcheck_grace_period: 9,
            lose_unhealthy_worker_after: 27,
            worker_suicide_backoff_safety_margin: 81,
            worker_suicide_task_kill_wait_ms: 243_000,
            startup_wait_for_workers,
            ..HealthSettings::default()
        },
        allow_bump_unhealthy_worker: false,
    }
}

/// test_remote_workers `NoWorkers`.
#[test]
fn initial_wait_without_workers_ends_at_the_safe_wait_and_never_returns() {
    let start = 1000;
    let mut pool = WorkerPool::new(scheduler(), start, test_flags(None));
    assert_eq!(pool.settings().health.safe_initial_wait(), 366);
    for t in [0, 1, 100, 364, 365] {
        assert!(pool.sweep(start + t).is_empty());
        let msg = pool.initial_wait().expect("still waiting");
        assert!(msg.contains("Waiting for all workers"), "{msg}");
    }
    pool.sweep(start + 366);
    assert_eq!(pool.initial_wait(), None);

    // A new worker appearing later does not bring the wait back.
    let w = worker(1300, 1);
    beat(&mut pool, &w, WorkerSetId::empty(), start + 400)
        .0
        .unwrap();
    pool.sweep(start + 400);
    assert_eq!(state(&pool), WorkerState::New);
    assert_eq!(pool.initial_wait(), None);
}

/// test_remote_workers `OneWorkerWithRunningTasks`.
#[test]
fn initial_wait_holds_while_a_worker_is_new() {
    let mut pool = WorkerPool::new(scheduler(), 0, test_flags(Some(10)));
    let w = worker(-100, 1);
    beat(&mut pool, &w, WorkerSetId::empty(), 0).0.unwrap();
    for t in [0, 5, 9] {
        pool.sweep(t);
        let msg = pool.initial_wait().expect("still waiting");
        assert!(msg.contains("CAUTION_startup_wait_for_workers"), "{msg}");
        assert!(msg.contains("Waiting for all workers"), "{msg}");
    }
    // The fetch of its running tasks failed: still NEW, still waiting.
    pool.fetch_failed(&w);
    for t in [10, 11, 20] {
        pool.sweep(t);
        assert_eq!(state(&pool), WorkerState::New);
        let msg = pool.initial_wait().expect("still waiting");
        assert!(msg.contains("Ready to exit initial wait, but "), "{msg}");
    }
    assert!(pool.running_fetched(&w, 20));
    pool.sweep(21);
    assert_eq!(pool.initial_wait(), None);
}

/// The workers the previous scheduler knew all reconnect with its set id: the wait
/// ends long before the safe wait, but only once none of them is NEW.
#[test]
fn initial_wait_ends_early_on_worker_set_consensus_once_no_worker_is_new() {
    let mut pool = pool_at(0);
    let mut w2 = worker(600, 2);
    w2.shard = "w2".into();
    let w1 = worker(500, 1);
    let mut previous = WorkerSetId {
        scheduler: InstanceId {
            start_time: -50,
            rand: 3,
        },
        version: 9,
        hash: SetHash::default(),
    };
    previous.hash.add(w1.id);
    previous.hash.add(w2.id);

    beat(&mut pool, &w1, previous, 1).0.unwrap();
    pool.sweep(1);
    let msg = pool.initial_wait().expect("w2 has not reconnected");
    assert!(msg.contains("No initial worker set ID consensus"), "{msg}");

    beat(&mut pool, &w2, previous, 2).0.unwrap();
    pool.sweep(2);
    let msg = pool.initial_wait().expect("both are NEW");
    assert!(msg.starts_with("Ready to exit initial wait, but "), "{msg}");

    assert!(pool.running_fetched(&w1, 3));
    pool.sweep(3);
    assert!(pool.initial_wait().is_some(), "w2 is still NEW");
    assert!(pool.running_fetched(&w2, 3));
    pool.sweep(4);
    assert_eq!(pool.initial_wait(), None);
}

/// Replies about an instance that is no longer the shard's change nothing.
#[test]
fn healthchecks_and_fetches_of_a_replaced_instance_are_ignored() {
    let mut pool = pool_at(0);
    let w1 = worker(500, 1);
    initialize(&mut pool, &w1, 0);
    let w2 = worker(501, 1);
    beat(&mut pool, &w2, WorkerSetId::empty(), 0).0.unwrap();
    pool.healthcheck_done(SHARD, w1.id, 50);
    assert_eq!(
        pool.worker(SHARD).unwrap().health.last_good_healthcheck,
        i64::MIN
    );
    assert!(!pool.running_fetched(&w1, 0));
    assert_eq!(state(&pool), WorkerState::New);
    pool.healthcheck_done(SHARD, w2.id, 50);
    assert_eq!(pool.worker(SHARD).unwrap().health.last_good_healthcheck, 50);
    // A new instance starts its notify sequence afresh.
    assert_eq!(pool.next_notify_seq(SHARD), Some(1));
    assert_eq!(pool.next_notify_seq(SHARD), Some(2));
    assert_eq!(pool.next_notify_seq("w9"), None);
}
