//! Ports of Bistro's test_worker_set_id and of the consensus and history parts of
//! test_remote_workers, driving the tracker the way the scheduler's pool will.

use super::*;
use crate::execution::remote::health::{HealthSettings, WorkerHealth, WorkerState};

fn id(start_time: i64, rand: u64) -> InstanceId {
    InstanceId { start_time, rand }
}

/// Instance ids with large values, so that sums overflow.
fn worker_id(n: u64) -> InstanceId {
    id(
        (1 << 62) + 1_000_003 * n as i64,
        0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(n) | (1 << 63),
    )
}

fn hash_of(ids: &[InstanceId]) -> SetHash {
    let mut h = SetHash::default();
    for i in ids {
        h.add(*i);
    }
    h
}

/// test_worker_set_id `TestWorkerSetHash.Exact`.
#[test]
fn set_hash_exact() {
    let s1: i64 = (1 << 62) + 938_249;
    let r1: u64 = (1 << 62) + 123_455;
    let s2: i64 = (1 << 62) + 4_559_023_894_911;
    let r2: u64 = (1 << 62) + 7_231_233_244_239;
    let id1 = id(s1, r1);
    let id2 = id(s2, r2);

    let mut w1w2 = hash_of(&[id1, id2]);
    assert_eq!(w1w2.num_workers, 2);
    let mut w2w1 = hash_of(&[id2, id1]);
    assert_eq!(w1w2, w2w1, "commutative");

    assert_eq!(w1w2.start_time.add_all, s1.wrapping_add(s2) as u64);
    assert_eq!(w1w2.rand.add_all, r1.wrapping_add(r2));
    assert_eq!(w1w2.start_time.xor_all, (s1 ^ s2) as u64);
    assert_eq!(w1w2.rand.xor_all, r1 ^ r2);

    w1w2.remove(id2);
    assert_eq!(w1w2, hash_of(&[id1]));
    w2w1.remove(id1);
    assert_eq!(w2w1, hash_of(&[id2]));
    assert_eq!(w2w1.start_time.add_all, s2 as u64);
    assert_eq!(w2w1.start_time.xor_all, s2 as u64);
    assert_eq!(w2w1.rand.add_all, r2);
    assert_eq!(w2w1.rand.xor_all, r2);
    assert_eq!(w2w1.num_workers, 1);

    w2w1.remove(id2);
    w1w2.remove(id1);
    assert_eq!(w2w1, SetHash::default());
    assert_eq!(w1w2, SetHash::default());
}

/// test_worker_set_id `TestWorkerSetHash.EarlierThan`.
#[test]
fn earlier_than_wraps_around() {
    let earlier = [
        (0x8000_0000_0000_0001, 0),
        (0x8000_0000_0000_0002, 0),
        (0xffff_ffff_ffff_fffe, 0),
        (0xffff_ffff_ffff_ffff, 0),
        (0x8000_0000_0000_0002, 1),
        (0x8000_0000_0000_0003, 1),
        (0xffff_ffff_ffff_fffe, 1),
        (0xffff_ffff_ffff_ffff, 1),
        (0, 1),
        (0xffff_ffff_ffff_ffff, 0x7fff_ffff_ffff_fffe),
        (0, 0x7fff_ffff_ffff_fffe),
        (1, 0x7fff_ffff_ffff_fffe),
        (0x7fff_ffff_ffff_fffc, 0x7fff_ffff_ffff_fffe),
        (0x7fff_ffff_ffff_fffd, 0x7fff_ffff_ffff_fffe),
    ];
    let not_earlier = [
        (0, 0),
        (1, 0),
        (0x7fff_ffff_ffff_fffe, 0),
        (0x7fff_ffff_ffff_ffff, 0),
        (1, 1),
        (2, 1),
        (0x7fff_ffff_ffff_fffe, 1),
        (0x7fff_ffff_ffff_ffff, 1),
        (0x8000_0000_0000_0000, 1),
        (0x7fff_ffff_ffff_fffe, 0x7fff_ffff_ffff_fffe),
        (0x7fff_ffff_ffff_ffff, 0x7fff_ffff_ffff_fffe),
        (0x8000_0000_0000_0000, 0x7fff_ffff_ffff_fffe),
        (0xffff_ffff_ffff_fffc, 0x7fff_ffff_ffff_fffe),
        (0xffff_ffff_ffff_fffd, 0x7fff_ffff_ffff_fffe),
    ];
    for (a, b) in earlier {
        assert!(earlier_than(a, b), "{a:#x} should be earlier than {b:#x}");
    }
    for (a, b) in not_earlier {
        assert!(
            !earlier_than(a, b),
            "{a:#x} should not be earlier than {b:#x}"
        );
    }
}

/// test_worker_set_id `WorkerSetVersionDeathTest.EarlierThan`.
#[test]
#[should_panic(expected = "differ by 2^63")]
fn earlier_than_half_the_ring_apart_panics() {
    earlier_than(0x8000_0000_0000_0000, 0);
}

#[test]
#[should_panic(expected = "differ by 2^63")]
fn earlier_than_half_the_ring_apart_panics_too() {
    earlier_than(0x7fff_ffff_ffff_ffff, 0xffff_ffff_ffff_ffff);
}

#[test]
fn worker_set_id_json() {
    let wsid = WorkerSetId {
        scheduler: id(5, 6),
        version: 7,
        hash: hash_of(&[id(1, 2)]),
    };
    let json = serde_json::to_value(wsid).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "scheduler": {"start_time": 5, "rand": 6},
            "version": 7,
            "hash": {
                "num_workers": 1,
                "start_time": {"add_all": 1, "xor_all": 1},
                "rand": {"add_all": 2, "xor_all": 2},
            },
        })
    );
    assert_eq!(serde_json::from_value::<WorkerSetId>(json).unwrap(), wsid);
    assert_eq!(WorkerSetId::default(), WorkerSetId::empty());
}

/// A stand-in for the scheduler's worker pool, wired the way §5.4/§5.5 and Bistro's
/// RemoteWorkers do it, with test_remote_workers' flags. Every worker reports a
/// heartbeat period of 0, like Bistro's test workers.
struct Pool {
    settings: HealthSettings,
    tracker: WorkerSetTracker,
    workers: BTreeMap<String, (InstanceId, WorkerHealth)>,
    in_initial_wait: bool,
}

/// What one sweep reported.
struct Sweep {
    waiting_for_echo: usize,
    initial_wait: Option<String>,
    blocked_by_consensus: Vec<String>,
}

impl Pool {
    fn new() -> Self {
        Pool {
            settings: HealthSettings {
                worker_check_interval: 1,
                healthcheck_period: 3,
                healthcheck_grace_period: 9,
                lose_unhealthy_worker_after: 27,
                worker_suicide_backoff_safety_margin: 81,
                worker_suicide_task_kill_wait_ms: 243_000,
                ..HealthSettings::default()
            },
            tracker: WorkerSetTracker::new(id(-7, 0xfeed_f00d)),
            workers: BTreeMap::new(),
            in_initial_wait: true,
        }
    }

    /// `processHeartbeat`, minus the replacement policy (any new instance is taken).
    fn heartbeat(
        &mut self,
        now: i64,
        shard: &str,
        instance: InstanceId,
        echoed: WorkerSetId,
    ) -> WorkerSetId {
        let timeouts = self.settings.worker_timeouts(0);
        match self.workers.get_mut(shard) {
            Some((current, health)) if *current == instance => {
                let allowed = self.tracker.may_become_healthy(shard);
                self.tracker.record_echo(shard, instance, &echoed);
                health.record_heartbeat(now);
                if health.update(now, &timeouts, allowed).became_lost() {
                    self.tracker.remove_worker(shard, instance);
                }
            }
            _ => {
                self.tracker.add_worker(shard, instance, echoed);
                let mut health = WorkerHealth::new(now);
                health.record_heartbeat(now);
                health.update(now, &timeouts, false);
                self.workers.insert(shard.to_string(), (instance, health));
            }
        }
        self.tracker.current()
    }

    fn healthcheck_ok(&mut self, shard: &str, sent_at: i64) {
        self.workers
            .get_mut(shard)
            .unwrap()
            .1
            .record_good_healthcheck(sent_at);
    }

    /// `getRunningTasks` succeeded.
    fn fetched_running_tasks(&mut self, shard: &str, now: i64) {
        let health = &mut self.workers.get_mut(shard).unwrap().1;
        if health.state == WorkerState::New {
            health.set_state(WorkerState::Unhealthy, now);
        }
    }

    fn state(&self, shard: &str) -> WorkerState {
        self.workers[shard].1.state
    }

    /// `updateState`: tracker sweep, then health, then the initial wait.
    fn sweep(&mut self, now: i64) -> Sweep {
        let timeouts = self.settings.worker_timeouts(0);
        let waiting_for_echo = self.tracker.sweep();
        let mut blocked_by_consensus = vec![];
        for (shard, (instance, health)) in &mut self.workers {
            let allowed = self.tracker.may_become_healthy(shard);
            let update = health.update(now, &timeouts, allowed);
            if update.blocked_by_consensus {
                blocked_by_consensus.push(shard.clone());
            }
            if update.became_lost() {
                self.tracker.remove_worker(shard, *instance);
            }
        }
        let mut initial_wait = None;
        if self.in_initial_wait {
            let any_new = self
                .workers
                .values()
                .any(|(_, h)| h.state == WorkerState::New);
            initial_wait =
                self.settings
                    .initial_wait_message(now, 0, self.tracker.has_consensus(), any_new);
            self.in_initial_wait = initial_wait.is_some();
        }
        Sweep {
            waiting_for_echo,
            initial_wait,
            blocked_by_consensus,
        }
    }

    fn member(&self, shard: &str) -> &WorkerSetMember {
        self.tracker.worker(shard).unwrap()
    }

    fn live_initials(&self) -> Vec<WorkerSetId> {
        self.tracker
            .members
            .values()
            .filter(|m| m.live)
            .map(|m| m.initial)
            .collect()
    }
}

/// Compares two lists as multisets.
fn assert_same_multiset(actual: Vec<WorkerSetId>, expected: &[WorkerSetId]) {
    let mut rest = actual.clone();
    for e in expected {
        let pos = rest
            .iter()
            .position(|a| a == e)
            .unwrap_or_else(|| panic!("{e} missing from {actual:?}"));
        rest.remove(pos);
    }
    assert!(rest.is_empty(), "unexpected {rest:?}");
}

/// test_remote_workers' `addWorker`: registers the worker at t=1 with a good
/// healthcheck, checks that nothing about its set ids changes while it is NEW (and that
/// history is not pruned meanwhile), then fetches its running tasks, after which it
/// would be healthy but for consensus.
fn add_worker(
    pool: &mut Pool,
    shard: &str,
    instance: InstanceId,
    initial: WorkerSetId,
    expected_initials: &[WorkerSetId],
    expected_current: WorkerSetId,
) {
    for pass in 0..2 {
        if pass == 0 {
            assert_eq!(
                pool.heartbeat(1, shard, instance, initial),
                expected_current
            );
            pool.healthcheck_ok(shard, 1);
        } else {
            let sweep = pool.sweep(1);
            assert!(sweep.waiting_for_echo > 0, "history must not be pruned now");
            assert!(!sweep.blocked_by_consensus.contains(&shard.to_string()));
            assert!(sweep.initial_wait.unwrap().contains("Waiting for all"));
        }
        assert_eq!(pool.state(shard), WorkerState::New);
        let member = pool.member(shard);
        assert_eq!(member.instance, instance);
        assert_eq!(member.initial, initial);
        assert_eq!(member.echoed, None);
        assert_eq!(member.first_associated, None);
        assert_eq!(pool.tracker.current(), expected_current);
        assert_same_multiset(pool.live_initials(), expected_initials);
    }

    pool.fetched_running_tasks(shard, 1);
    assert_eq!(pool.state(shard), WorkerState::Unhealthy);
    assert_eq!(pool.member(shard).indirect, None);
    let sweep = pool.sweep(1);
    assert!(sweep.initial_wait.unwrap().contains("Waiting for all"));
    assert!(sweep.blocked_by_consensus.contains(&shard.to_string()));
}

/// A set id of another scheduler (or none) holding `ids`.
fn foreign(ids: &[InstanceId]) -> WorkerSetId {
    WorkerSetId {
        hash: hash_of(ids),
        ..WorkerSetId::empty()
    }
}

/// test_remote_workers `AchieveAndMaintainWorkerSetConsensus`: two workers that were
/// together before the restart reach consensus once an impostor is lost.
#[test]
fn achieve_and_maintain_worker_set_consensus() {
    let mut pool = Pool::new();
    let (w1, w2, w3) = (worker_id(1), worker_id(2), worker_id(3));
    let ours = |version, ids: &[InstanceId]| WorkerSetId {
        scheduler: pool_scheduler(),
        version,
        hash: hash_of(ids),
    };
    let id3 = foreign(&[w3]);
    let id12 = foreign(&[w1, w2]);

    add_worker(&mut pool, "w2", w2, id12, &[id12], ours(1, &[w2]));
    add_worker(&mut pool, "w3", w3, id3, &[id12, id3], ours(2, &[w2, w3]));
    add_worker(
        &mut pool,
        "w1",
        w1,
        id12,
        &[id12, id12, id3],
        ours(3, &[w2, w3, w1]),
    );

    // An echo of its own initial (foreign) id is ignored.
    let reply = pool.heartbeat(2, "w3", w3, id3);
    assert_eq!(reply, ours(3, &[w1, w2, w3]));
    assert_eq!(pool.member("w3").first_associated, None);
    assert_eq!(pool.state("w3"), WorkerState::Unhealthy);

    // Past the loss timeout the impostor is lost, right after its first real echo.
    let echoed = pool.tracker.current();
    let reply = pool.heartbeat(2 + 27, "w3", w3, echoed);
    assert_eq!(reply, ours(4, &[w1, w2]));
    assert_eq!(
        pool.member("w3").first_associated,
        Some(ours(3, &[w1, w2, w3]))
    );
    assert_eq!(pool.state("w3"), WorkerState::MustDie);
    assert_eq!(pool.tracker.current(), ours(4, &[w1, w2]));
    assert_same_multiset(pool.live_initials(), &[id12, id12]);

    assert!(pool.tracker.has_consensus());
    assert_eq!(pool.sweep(1).initial_wait, None, "consensus ends the wait");
}

fn pool_scheduler() -> InstanceId {
    Pool::new().tracker.current().scheduler
}

/// test_remote_workers `NoConsensusWithEmptyWorkerSetID`.
#[test]
fn no_consensus_with_empty_worker_set_id() {
    let mut pool = Pool::new();
    let w = worker_id(1);
    let expected = WorkerSetId {
        scheduler: pool_scheduler(),
        version: 1,
        hash: hash_of(&[w]),
    };
    let empty = WorkerSetId::empty();
    add_worker(&mut pool, "w", w, empty, &[empty], expected);
    assert!(!pool.tracker.has_consensus());
    assert!(pool.sweep(1).initial_wait.is_some());
}

#[test]
fn no_workers_no_consensus() {
    let tracker = WorkerSetTracker::new(id(1, 1));
    assert!(!tracker.has_consensus());
}

type Vss<'a> = &'a [(u64, &'a str)];
type History<'a> = &'a [(u64, Option<&'a str>, &'a [&'a str])];

fn vss(pool: &Pool) -> BTreeSet<(u64, String)> {
    pool.tracker
        .indirect_versions
        .iter()
        .map(|(v, s)| (v.0, s.clone()))
        .collect()
}

fn to_set(expected: Vss) -> BTreeSet<(u64, String)> {
    expected.iter().map(|(v, s)| (*v, s.to_string())).collect()
}

fn history(pool: &Pool) -> Vec<(u64, HistoryStep)> {
    pool.tracker
        .history()
        .map(|(v, s)| (v, s.clone()))
        .collect()
}

fn to_history(expected: History) -> Vec<(u64, HistoryStep)> {
    expected
        .iter()
        .map(|(v, removed, added)| {
            let step = HistoryStep {
                removed: removed.map(String::from),
                added: added.iter().map(|s| s.to_string()).collect(),
            };
            (*v, step)
        })
        .collect()
}

/// test_remote_workers' `updateWorkers`: checks the index of indirect versions, the
/// indirect set ids and the history, sweeps at t=1, then checks consensus permission.
fn update_workers(
    pool: &mut Pool,
    expected_vss: Vss,
    indirect: &[(&str, WorkerSetId)],
    expected_history: History,
    permits: &[(&str, bool)],
) {
    assert_eq!(vss(pool), to_set(expected_vss));
    for (shard, wsid) in indirect {
        assert_eq!(
            pool.member(shard).indirect,
            Some(*wsid),
            "indirect of {shard}"
        );
    }
    assert_eq!(history(pool), to_history(expected_history));
    pool.sweep(1);
    for (shard, allowed) in permits {
        assert_eq!(
            pool.tracker.may_become_healthy(shard),
            *allowed,
            "{shard}: {:?}",
            pool.tracker.consensus_block(shard)
        );
    }
}

/// test_remote_workers' `addAndUpdateWorker`.
#[allow(clippy::too_many_arguments)]
fn add_and_update_worker(
    pool: &mut Pool,
    shard: &str,
    instance: InstanceId,
    wid: WorkerSetId,
    num_workers: usize,
    before_vss: Vss,
    after_vss: Vss,
    indirect: &[(&str, WorkerSetId)],
    expected_history: History,
    permits: &[(&str, bool)],
) {
    let empty = WorkerSetId::empty();
    add_worker(pool, shard, instance, empty, &vec![empty; num_workers], wid);
    assert_eq!(vss(pool), to_set(before_vss));
    assert_eq!(pool.tracker.indirect_versions.len(), num_workers - 1);
    assert_eq!(pool.tracker.current().hash.num_workers, num_workers as u64);
    for (s, _) in permits {
        assert!(!pool.tracker.may_become_healthy(s), "{s}");
    }

    let member = pool.member(shard);
    assert_eq!(
        (member.echoed, member.indirect, member.first_associated),
        (None, None, None)
    );
    assert_eq!(pool.heartbeat(1, shard, instance, wid), wid);
    let member = pool.member(shard);
    assert_eq!(member.echoed, Some(wid));
    assert_eq!(member.indirect, Some(wid));
    assert_eq!(member.first_associated, Some(wid));
    assert_eq!(pool.tracker.indirect_versions.len(), num_workers);
    assert_eq!(pool.tracker.current().hash.num_workers, num_workers as u64);

    // Sweeping twice: the second sweep must change nothing.
    for _ in 0..2 {
        update_workers(pool, after_vss, indirect, expected_history, permits);
    }
}

fn check_echoed(pool: &Pool, expected: &[(&str, WorkerSetId)]) {
    for (shard, wsid) in expected {
        assert_eq!(pool.member(shard).echoed, Some(*wsid), "echoed by {shard}");
    }
}

/// test_remote_workers `HistoryAndWorkerSetIDPropagation`: a scripted walk through
/// history, pruning, indirect versions, consensus permission, replacement and
/// propagation through a MUST_DIE worker.
#[test]
fn history_and_worker_set_id_propagation() {
    let mut pool = Pool::new();
    let (w1, w2, w3, w4) = (worker_id(1), worker_id(2), worker_id(3), worker_id(4));
    let scheduler = pool_scheduler();
    let wsid = |version, ids: &[InstanceId]| WorkerSetId {
        scheduler,
        version,
        hash: hash_of(ids),
    };

    // Add w1; it knows itself, so consensus lets it be healthy.
    let wid1 = wsid(1, &[w1]);
    let mut hist: Vec<(u64, Option<&str>, &[&str])> = vec![(1, None, &["w1"])];
    add_and_update_worker(
        &mut pool,
        "w1",
        w1,
        wid1,
        1,
        &[],
        &[(1, "w1")],
        &[],
        &hist,
        &[("w1", true)],
    );
    assert_eq!(pool.state("w1"), WorkerState::Healthy);

    // Add w2: w1's indirect version stays; w1 and w2 do not yet require each other.
    let wid12 = wsid(2, &[w1, w2]);
    hist.push((2, None, &["w2"]));
    add_and_update_worker(
        &mut pool,
        "w2",
        w2,
        wid12,
        2,
        &[(1, "w1")],
        &[(1, "w1"), (2, "w2")],
        &[("w1", wid1)],
        &hist,
        &[("w1", false), ("w2", false)],
    );

    // Add w3.
    let wid123 = wsid(3, &[w1, w2, w3]);
    hist.push((3, None, &["w3"]));
    add_and_update_worker(
        &mut pool,
        "w3",
        w3,
        wid123,
        3,
        &[(1, "w1"), (2, "w2")],
        &[(1, "w1"), (2, "w2"), (3, "w3")],
        &[("w1", wid1), ("w2", wid12)],
        &hist,
        &[("w1", false), ("w2", false), ("w3", false)],
    );

    // w2 echoes {w1, w2, w3}: its indirect version moves at once; sweeps change nothing.
    assert_eq!(pool.heartbeat(1, "w2", w2, wid123), wid123);
    assert_eq!(pool.member("w2").echoed, Some(wid123));
    for _ in 0..2 {
        update_workers(
            &mut pool,
            &[(1, "w1"), (3, "w2"), (3, "w3")],
            &[("w1", wid1), ("w2", wid123), ("w3", wid123)],
            &hist,
            &[("w1", false), ("w2", false), ("w3", false)],
        );
    }

    // Add w4.
    let wid1234 = wsid(4, &[w1, w2, w3, w4]);
    hist.push((4, None, &["w4"]));
    add_and_update_worker(
        &mut pool,
        "w4",
        w4,
        wid1234,
        4,
        &[(1, "w1"), (3, "w2"), (3, "w3")],
        &[(1, "w1"), (3, "w2"), (3, "w3"), (4, "w4")],
        &[("w1", wid1), ("w2", wid123), ("w3", wid123)],
        &hist,
        &[("w1", false), ("w2", false), ("w3", false), ("w4", false)],
    );

    // w2 echoes {w1..w4}; the next sweep propagates it to w3. w1, which knows only
    // itself, blocks everyone; nothing is pruned while it references version 1.
    assert_eq!(pool.heartbeat(1, "w2", w2, wid1234), wid1234);
    assert_eq!(pool.member("w2").echoed, Some(wid1234));
    let all_blocked = [("w1", false), ("w2", false), ("w3", false), ("w4", false)];
    update_workers(
        &mut pool,
        &[(1, "w1"), (4, "w2"), (3, "w3"), (4, "w4")],
        &[
            ("w1", wid1),
            ("w2", wid1234),
            ("w3", wid123),
            ("w4", wid1234),
        ],
        &hist,
        &all_blocked,
    );
    for _ in 0..2 {
        update_workers(
            &mut pool,
            &[(1, "w1"), (4, "w2"), (4, "w3"), (4, "w4")],
            &[
                ("w1", wid1),
                ("w2", wid1234),
                ("w3", wid1234),
                ("w4", wid1234),
            ],
            &hist,
            &all_blocked,
        );
    }

    // Lose w1 (it echoes {w1, w2} on the way, which no longer matters).
    let wid234 = wsid(5, &[w2, w3, w4]);
    assert_eq!(pool.state("w1"), WorkerState::Healthy);
    let mut t = 1;
    for (state, dt, reply) in [
        (WorkerState::Unhealthy, 1 + 3 + 9 + 1, wid1234),
        (WorkerState::MustDie, 1 + 27, wid234),
    ] {
        t += dt;
        assert_eq!(pool.heartbeat(t, "w1", w1, wid12), reply);
        assert_eq!(pool.member("w1").echoed, Some(wid12));
        assert_eq!(pool.state("w1"), state);
    }
    check_echoed(
        &pool,
        &[
            ("w1", wid12),
            ("w2", wid1234),
            ("w3", wid123),
            ("w4", wid1234),
        ],
    );

    // Before a sweep, the only change is the loss of w1 (which keeps its indirect id).
    hist.push((5, Some("w1"), &[]));
    let w1_lost_indirect = [
        ("w1", wid12),
        ("w2", wid1234),
        ("w3", wid1234),
        ("w4", wid1234),
    ];
    update_workers(
        &mut pool,
        &[(4, "w2"), (4, "w3"), (4, "w4")],
        &w1_lost_indirect,
        &hist,
        &all_blocked,
    );
    // The sweep pruned versions 1-2 into 3, which w3's echo keeps alive.
    let hist: Vec<(u64, Option<&str>, &[&str])> = vec![
        (3, None, &["w1", "w2", "w3"]),
        (4, None, &["w4"]),
        (5, Some("w1"), &[]),
    ];
    for _ in 0..2 {
        update_workers(
            &mut pool,
            &[(4, "w2"), (4, "w3"), (4, "w4")],
            &w1_lost_indirect,
            &hist,
            &all_blocked,
        );
    }

    // w3 echoes the current set: consensus lets it be healthy even before propagation.
    assert_eq!(pool.heartbeat(1, "w3", w3, wid234), wid234);
    assert_eq!(pool.member("w3").echoed, Some(wid234));
    for (shard, allowed) in [("w1", false), ("w2", false), ("w3", true), ("w4", false)] {
        assert_eq!(pool.tracker.may_become_healthy(shard), allowed, "{shard}");
    }
    check_echoed(
        &pool,
        &[
            ("w1", wid12),
            ("w2", wid1234),
            ("w3", wid234),
            ("w4", wid1234),
        ],
    );
    let only_w3 = [("w1", false), ("w2", false), ("w3", true), ("w4", false)];
    update_workers(
        &mut pool,
        &[(4, "w2"), (5, "w3"), (4, "w4")],
        &[
            ("w1", wid12),
            ("w2", wid1234),
            ("w3", wid234),
            ("w4", wid1234),
        ],
        &hist,
        &only_w3,
    );
    // w2 and w4 now keep version 4 alive; propagation caught them up.
    let hist: Vec<(u64, Option<&str>, &[&str])> =
        vec![(4, None, &["w1", "w2", "w3", "w4"]), (5, Some("w1"), &[])];
    update_workers(
        &mut pool,
        &[(5, "w2"), (5, "w3"), (5, "w4")],
        &[
            ("w1", wid12),
            ("w2", wid234),
            ("w3", wid234),
            ("w4", wid234),
        ],
        &hist,
        &only_w3,
    );

    // Reincarnate w1 as a newer instance on the same shard.
    let w1a = id(w1.start_time + 1, 0x1234_5678_9abc_def0);
    let wid1a234 = wsid(6, &[w2, w3, w4, w1a]);
    let mut hist = hist;
    hist.push((6, None, &["w1"]));
    add_and_update_worker(
        &mut pool,
        "w1",
        w1a,
        wid1a234,
        4,
        &[(5, "w2"), (5, "w3"), (5, "w4")],
        &[(5, "w2"), (5, "w3"), (5, "w4"), (6, "w1")],
        &[
            ("w2", wid234),
            ("w3", wid234),
            ("w4", wid234),
            ("w1", wid1a234),
        ],
        &hist,
        &all_blocked,
    );

    // Lose w4 after it echoed version 6: propagating through the dead w4 catches w2
    // and w3 up to version 6.
    let wid1a23 = wsid(7, &[w2, w3, w1a]);
    assert_eq!(pool.state("w4"), WorkerState::Unhealthy);
    assert_eq!(pool.heartbeat(2 + 27, "w4", w4, wid1a234), wid1a23);
    assert_eq!(pool.member("w4").echoed, Some(wid1a234));
    assert_eq!(pool.state("w4"), WorkerState::MustDie);
    hist.push((7, Some("w4"), &[]));
    update_workers(
        &mut pool,
        &[(5, "w2"), (5, "w3"), (6, "w1")],
        &[
            ("w1", wid1a234),
            ("w2", wid234),
            ("w3", wid234),
            ("w4", wid1a234),
        ],
        &hist,
        &all_blocked,
    );
    update_workers(
        &mut pool,
        &[(6, "w2"), (6, "w3"), (6, "w1")],
        &[
            ("w1", wid1a234),
            ("w2", wid1a234),
            ("w3", wid1a234),
            ("w4", wid1a234),
        ],
        &hist,
        &all_blocked,
    );
    check_echoed(
        &pool,
        &[
            ("w1", wid1a234),
            ("w2", wid1234),
            ("w3", wid234),
            ("w4", wid1a234),
        ],
    );

    // w1a echoes version 7 and it propagates to w2 and w3 (not to the dead w4).
    assert_eq!(pool.heartbeat(1, "w1", w1a, wid1a23), wid1a23);
    assert_eq!(pool.member("w1").echoed, Some(wid1a23));
    let only_w1 = [("w1", true), ("w2", false), ("w3", false), ("w4", false)];
    update_workers(
        &mut pool,
        &[(6, "w2"), (6, "w3"), (7, "w1")],
        &[
            ("w1", wid1a23),
            ("w2", wid1a234),
            ("w3", wid1a234),
            ("w4", wid1a234),
        ],
        &hist,
        &only_w1,
    );
    update_workers(
        &mut pool,
        &[(7, "w2"), (7, "w3"), (7, "w1")],
        &[
            ("w1", wid1a23),
            ("w2", wid1a23),
            ("w3", wid1a23),
            ("w4", wid1a234),
        ],
        &hist,
        &only_w1,
    );
}

#[test]
fn echo_outcomes() {
    let scheduler = id(100, 1);
    let mut t = WorkerSetTracker::new(scheduler);
    let (a, b) = (worker_id(1), worker_id(2));
    let initial = foreign(&[a]);
    let v1 = t.add_worker("a", a, initial);
    assert_eq!(t.record_echo("a", a, &initial), EchoOutcome::Initial);
    assert_eq!(
        t.record_echo("a", a, &foreign(&[b])),
        EchoOutcome::ForeignScheduler
    );
    assert_eq!(t.record_echo("a", b, &v1), EchoOutcome::UnknownWorker);
    assert_eq!(t.record_echo("zz", a, &v1), EchoOutcome::UnknownWorker);
    let future = WorkerSetId { version: 9, ..v1 };
    assert_eq!(t.record_echo("a", a, &future), EchoOutcome::NotInHistory);
    assert_eq!(t.record_echo("a", a, &v1), EchoOutcome::Accepted);
    assert_eq!(t.record_echo("a", a, &v1), EchoOutcome::Unchanged);
    let forged = WorkerSetId {
        hash: SetHash::default(),
        ..v1
    };
    assert_eq!(t.record_echo("a", a, &forged), EchoOutcome::Conflicting);
    let v2 = t.add_worker("b", b, WorkerSetId::empty());
    assert_eq!(t.record_echo("a", a, &v2), EchoOutcome::Accepted);
    assert_eq!(t.record_echo("a", a, &v1), EchoOutcome::OutOfOrder);
    assert_eq!(t.worker("a").unwrap().first_associated, Some(v1));
    assert_eq!(t.worker("a").unwrap().echoed, Some(v2));

    // A worker whose first heartbeat already carried this scheduler's id.
    let c = worker_id(3);
    let v3 = t.add_worker("c", c, v2);
    assert_eq!(t.record_echo("c", c, &v2), EchoOutcome::NotLaterThanInitial);
    assert_eq!(t.record_echo("c", c, &v3), EchoOutcome::Accepted);

    // A lost worker's echoes are ignored.
    assert!(t.remove_worker("c", c));
    assert!(!t.remove_worker("c", c), "removing twice changes nothing");
    let v4 = t.current();
    assert_eq!(v4.version, 4);
    assert_eq!(t.record_echo("c", c, &v4), EchoOutcome::UnknownWorker);
    assert_eq!(t.worker("c").unwrap().echoed, Some(v3));
}

#[test]
fn replacing_a_live_worker_takes_two_versions() {
    let mut t = WorkerSetTracker::new(id(100, 1));
    let (a, a2) = (worker_id(1), worker_id(2));
    assert_eq!(t.add_worker("a", a, WorkerSetId::empty()).version, 1);
    assert_eq!(
        t.add_worker("a", a, WorkerSetId::empty()).version,
        1,
        "same instance"
    );
    let v3 = t.add_worker("a", a2, WorkerSetId::empty());
    assert_eq!(v3.version, 3);
    assert_eq!(v3.hash, hash_of(&[a2]));
    assert!(!t.remove_worker("a", a), "the old instance is gone");
    let steps: Vec<_> = t.history().map(|(v, s)| (v, s.clone())).collect();
    assert_eq!(
        steps,
        to_history(&[(1, None, &["a"]), (2, Some("a"), &[]), (3, None, &["a"])])
    );
    // Pruning waits for the new instance's echo, then keeps only what it references.
    assert_eq!(t.sweep(), 1);
    assert_eq!(t.history().count(), 3);
    assert_eq!(t.record_echo("a", a2, &v3), EchoOutcome::Accepted);
    assert_eq!(t.sweep(), 0);
    let steps: Vec<_> = t.history().map(|(v, s)| (v, s.clone())).collect();
    assert_eq!(steps, to_history(&[(3, None, &["a"])]));
    assert!(t.may_become_healthy("a"));
    // Once nobody is live, the history is dropped.
    assert!(t.remove_worker("a", a2));
    assert_eq!(t.sweep(), 0);
    assert_eq!(t.history().count(), 0);
}

/// Versions that wrap past u64::MAX keep their order in the history, the pruning and
/// the propagation.
#[test]
fn versions_wrap_around() {
    let mut t = WorkerSetTracker::new(id(100, 1));
    t.current.version = u64::MAX - 1;
    let (a, b) = (worker_id(1), worker_id(2));
    let va = t.add_worker("a", a, WorkerSetId::empty());
    assert_eq!(va.version, u64::MAX);
    let vab = t.add_worker("b", b, WorkerSetId::empty());
    assert_eq!(vab.version, 0);
    assert_eq!(t.record_echo("a", a, &va), EchoOutcome::Accepted);
    assert_eq!(t.record_echo("b", b, &vab), EchoOutcome::Accepted);
    assert_eq!(t.sweep(), 0);
    // a requires only itself, so it stays at the version before the wrap, which
    // b (first associated after it) cannot accept.
    assert_eq!(t.worker("a").unwrap().indirect, Some(va));
    assert_eq!(
        t.history().map(|(v, _)| v).collect::<Vec<_>>(),
        vec![u64::MAX, 0]
    );
    assert!(!t.may_become_healthy("b"));
    assert!(
        !t.may_become_healthy("a"),
        "a has not echoed the current set"
    );
    assert_eq!(t.record_echo("a", a, &vab), EchoOutcome::Accepted);
    assert_eq!(t.sweep(), 0);
    assert!(t.may_become_healthy("a") && t.may_become_healthy("b"));
    let steps: Vec<_> = t.history().map(|(v, s)| (v, s.clone())).collect();
    assert_eq!(steps, to_history(&[(0, None, &["a", "b"])]));
}
