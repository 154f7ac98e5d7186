//! Worker-set consensus (bistro-runtime §5.11, §5.12), after Bistro's `WorkerSetID.h`
//! and the WorkerSetID parts of `RemoteWorkers`.
//!
//! The scheduler numbers each change of its set of non-MUST_DIE worker instances and
//! sends the current [`WorkerSetId`] in every heartbeat response; workers echo the
//! latest one back. After a scheduler restart, the workers' first echoes are the set
//! they knew before: if every worker reports the same set and it is exactly the set
//! that has reconnected, nobody is missing and the startup wait can end early
//! ([`WorkerSetTracker::has_consensus`]). To make that safe, a worker that has never
//! been healthy may become healthy (and run tasks) only once every other worker
//! provably requires it ([`WorkerSetTracker::may_become_healthy`]).
//!
//! Pure: no I/O and no clocks. Workers are keyed by shard, as in Bistro (only one
//! worker per shard is associated at a time); the instance id is kept with each entry
//! and checked by the calls that come from one instance's messages.

use super::InstanceId;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Bound;

/// Wrapping sum and xor of one 64-bit field over a set of instance ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct HashPart {
    /// Wrapping sum of the values.
    pub add_all: u64,
    /// Xor of the values.
    pub xor_all: u64,
}

impl HashPart {
    fn add(&mut self, v: u64) {
        self.add_all = self.add_all.wrapping_add(v);
        self.xor_all ^= v;
    }

    fn remove(&mut self, v: u64) {
        self.add_all = self.add_all.wrapping_sub(v);
        self.xor_all ^= v;
    }
}

/// An order-independent hash of a set of worker instance ids (Bistro's
/// `WorkerSetHash`); adding and removing an id are exact inverses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct SetHash {
    /// How many ids are in the set.
    pub num_workers: u64,
    /// Over the ids' start times (two's-complement bits).
    pub start_time: HashPart,
    /// Over the ids' random parts.
    pub rand: HashPart,
}

impl SetHash {
    /// Adds `id` to the set.
    pub fn add(&mut self, id: InstanceId) {
        self.num_workers += 1;
        self.start_time.add(id.start_time as u64);
        self.rand.add(id.rand);
    }

    /// Removes `id`, which must have been added.
    ///
    /// # Panics
    /// If the set is empty.
    pub fn remove(&mut self, id: InstanceId) {
        assert!(
            self.num_workers > 0,
            "removing a worker from an empty SetHash"
        );
        self.num_workers -= 1;
        self.start_time.remove(id.start_time as u64);
        self.rand.remove(id.rand);
    }
}

/// One version of a scheduler's set of non-MUST_DIE workers (Bistro's `WorkerSetID`).
/// It travels in heartbeats: the scheduler sends its current one, the worker echoes
/// the latest it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WorkerSetId {
    /// The scheduler instance that numbered this set.
    pub scheduler: InstanceId,
    /// Bumped on every change of the set; compare with [`earlier_than`].
    pub version: u64,
    /// The members' hash.
    pub hash: SetHash,
}

impl WorkerSetId {
    /// What a worker that never talked to a scheduler sends: scheduler 0/0, version
    /// 0, no workers. It never yields consensus.
    pub fn empty() -> Self {
        WorkerSetId {
            scheduler: InstanceId {
                start_time: 0,
                rand: 0,
            },
            version: 0,
            hash: SetHash::default(),
        }
    }
}

impl Default for WorkerSetId {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Display for WorkerSetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "v{} of scheduler {} ({} workers)",
            self.version, self.scheduler, self.hash.num_workers
        )
    }
}

/// Whether version `a` comes before `b`, allowing the counter to wrap: `a` is earlier
/// iff `a − b`, as a signed 64-bit number, is negative.
///
/// # Panics
/// If the versions are exactly 2^63 apart, which has no order and means a bug.
pub fn earlier_than(a: u64, b: u64) -> bool {
    if a.wrapping_sub(b) as i64 >= 0 {
        false
    } else if b.wrapping_sub(a) as i64 > 0 {
        true
    } else {
        panic!("WorkerSetId versions differ by 2^63, so they cannot be ordered: a = {a}, b = {b}")
    }
}

/// A version ordered by [`earlier_than`], for sorted containers. This is a total order
/// as long as all the versions held lie within 2^63 of each other, which they do:
/// they are a window of a counter that only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version(u64);

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        if self.0 == other.0 {
            Ordering::Equal
        } else if earlier_than(self.0, other.0) {
            Ordering::Less
        } else {
            Ordering::Greater
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One change of the worker set. After pruning, the first step holds everything up to
/// it merged: then `added` lists every member of that version.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistoryStep {
    /// The shard whose worker became MUST_DIE or was replaced at this version. Applied
    /// before `added`.
    pub removed: Option<String>,
    /// Shards whose new worker instance joined at (or, after pruning, by) this version.
    pub added: BTreeSet<String>,
}

/// What the tracker knows about the worker instance associated with one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSetMember {
    /// The worker instance.
    pub instance: InstanceId,
    /// False once it became MUST_DIE (it stays listed until its shard gets a new
    /// instance, since the propagation still reads its indirect set).
    pub live: bool,
    /// The set id of its first heartbeat, usually from the previous scheduler.
    pub initial: WorkerSetId,
    /// The newest set id of this scheduler it has echoed.
    pub echoed: Option<WorkerSetId>,
    /// Its first echoed set id: the first version that contained it.
    pub first_associated: Option<WorkerSetId>,
    /// A lower bound of the newest version required, transitively, by the sets it
    /// requires (set by its echoes and by [`WorkerSetTracker::sweep`]).
    pub indirect: Option<WorkerSetId>,
}

/// What [`WorkerSetTracker::record_echo`] did with an echoed set id. Only `Accepted`
/// changed anything; the caller may log the others (Bistro logs `ForeignScheduler`
/// and `NotLaterThanInitial` as errors, `OutOfOrder` as a warning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoOutcome {
    /// Recorded as the worker's newest set id.
    Accepted,
    /// The worker's current set id again.
    Unchanged,
    /// The worker's own initial id from another scheduler: it has not heard from this
    /// one yet.
    Initial,
    /// From another scheduler, yet not the worker's initial id.
    ForeignScheduler,
    /// From this scheduler but no later than the worker's initial id (which was
    /// already this scheduler's); ignored, as Bistro does.
    NotLaterThanInitial,
    /// Older than the set id already recorded (reordered heartbeats).
    OutOfOrder,
    /// Same version as the recorded one but different content; ignored (Bistro aborts).
    Conflicting,
    /// A version this scheduler never sent, or older than its pruned history; ignored
    /// (Bistro would abort later).
    NotInHistory,
    /// No such live worker instance on this shard (unknown, replaced or MUST_DIE).
    UnknownWorker,
}

/// The scheduler's worker-set bookkeeping (§5.12): the current non-MUST_DIE set id,
/// its history, and each worker's echoed, first and indirect set ids.
///
/// The scheduler's worker pool drives it:
/// - a heartbeat from a new instance on a shard: [`add_worker`](Self::add_worker)
///   (which also retires the shard's previous live instance, if any);
/// - a heartbeat from the current instance: take the
///   [`may_become_healthy`](Self::may_become_healthy) verdict first (Bistro computes it
///   before the echo is recorded), then [`record_echo`](Self::record_echo) the echoed
///   id, then run the health update with that verdict;
/// - a worker that becomes MUST_DIE: [`remove_worker`](Self::remove_worker);
/// - every reply carries [`current`](Self::current), read after all of the above;
/// - each sweep: [`sweep`](Self::sweep) first, then each worker's health update with
///   [`may_become_healthy`](Self::may_become_healthy), then the initial wait with
///   [`has_consensus`](Self::has_consensus).
#[derive(Debug, Clone)]
pub struct WorkerSetTracker {
    current: WorkerSetId,
    history: BTreeMap<Version, HistoryStep>,
    members: BTreeMap<String, WorkerSetMember>,
    /// The indirect versions of live members, sorted (Bistro's
    /// `indirectVersionsOfNonMustDieWorkers_`).
    indirect_versions: BTreeSet<(Version, String)>,
}

impl WorkerSetTracker {
    /// An empty worker set, version 0, numbered by `scheduler`.
    pub fn new(scheduler: InstanceId) -> Self {
        WorkerSetTracker {
            current: WorkerSetId {
                scheduler,
                version: 0,
                hash: SetHash::default(),
            },
            history: BTreeMap::new(),
            members: BTreeMap::new(),
            indirect_versions: BTreeSet::new(),
        }
    }

    /// The current set of non-MUST_DIE workers, to send in every heartbeat reply.
    pub fn current(&self) -> WorkerSetId {
        self.current
    }

    /// What is known about the worker instance associated with `shard`.
    pub fn worker(&self, shard: &str) -> Option<&WorkerSetMember> {
        self.members.get(shard)
    }

    /// The retained history, oldest version first.
    pub fn history(&self) -> impl Iterator<Item = (u64, &HistoryStep)> {
        self.history.iter().map(|(v, step)| (v.0, step))
    }

    /// A new worker instance on `shard` sent its first heartbeat, carrying `initial`
    /// (the set id it last received, usually from another scheduler). A live previous
    /// instance of the shard is removed first (one version), then this one is added
    /// (another). Returns the new current set id, which contains the worker. Adding the
    /// shard's current instance again changes nothing.
    pub fn add_worker(
        &mut self,
        shard: &str,
        instance: InstanceId,
        initial: WorkerSetId,
    ) -> WorkerSetId {
        if let Some(old) = self.members.get(shard) {
            if old.instance == instance {
                return self.current;
            }
            let old_instance = old.instance;
            self.remove_worker(shard, old_instance);
        }
        self.members.insert(
            shard.to_string(),
            WorkerSetMember {
                instance,
                live: true,
                initial,
                echoed: None,
                first_associated: None,
                indirect: None,
            },
        );
        self.current.hash.add(instance);
        self.bump_version(HistoryStep {
            removed: None,
            added: BTreeSet::from([shard.to_string()]),
        });
        self.current
    }

    /// The worker instance on `shard` became MUST_DIE (lost, or replaced): it leaves
    /// the set, making a new version. Returns false, changing nothing, if it is not the
    /// shard's live instance.
    pub fn remove_worker(&mut self, shard: &str, instance: InstanceId) -> bool {
        let Some(member) = self.members.get_mut(shard) else {
            return false;
        };
        if !member.live || member.instance != instance {
            return false;
        }
        member.live = false;
        if let Some(indirect) = member.indirect {
            self.indirect_versions
                .remove(&(Version(indirect.version), shard.to_string()));
        }
        self.current.hash.remove(instance);
        self.bump_version(HistoryStep {
            removed: Some(shard.to_string()),
            added: BTreeSet::new(),
        });
        true
    }

    fn bump_version(&mut self, step: HistoryStep) {
        self.current.version = self.current.version.wrapping_add(1);
        self.history.insert(Version(self.current.version), step);
    }

    /// Records the set id that the live `instance` on `shard` echoed in a heartbeat.
    /// Only a set id of this scheduler, later than the one already recorded, is
    /// accepted; the first accepted one is the worker's first associated set id.
    /// Accepting raises the worker's indirect version to at least this one.
    pub fn record_echo(
        &mut self,
        shard: &str,
        instance: InstanceId,
        echoed: &WorkerSetId,
    ) -> EchoOutcome {
        let scheduler = self.current.scheduler;
        let in_history = self.history.first_key_value().is_some_and(|(first, _)| {
            !earlier_than(echoed.version, first.0)
                && !earlier_than(self.current.version, echoed.version)
        });
        let Some(member) = self.members.get_mut(shard) else {
            return EchoOutcome::UnknownWorker;
        };
        if !member.live || member.instance != instance {
            return EchoOutcome::UnknownWorker;
        }
        if echoed.scheduler != scheduler {
            return if *echoed == member.initial {
                EchoOutcome::Initial
            } else {
                EchoOutcome::ForeignScheduler
            };
        }
        if member.initial.scheduler == scheduler
            && !earlier_than(member.initial.version, echoed.version)
        {
            return EchoOutcome::NotLaterThanInitial;
        }
        match member.echoed {
            Some(old) if old.version == echoed.version => {
                return if old == *echoed {
                    EchoOutcome::Unchanged
                } else {
                    EchoOutcome::Conflicting
                };
            }
            Some(old) if earlier_than(echoed.version, old.version) => {
                return EchoOutcome::OutOfOrder;
            }
            _ => {}
        }
        if !in_history {
            return EchoOutcome::NotInHistory;
        }
        member.first_associated.get_or_insert(*echoed);
        member.echoed = Some(*echoed);
        raise_indirect(&mut self.indirect_versions, shard, member, *echoed);
        EchoOutcome::Accepted
    }

    /// The per-sweep work, run before the sweep's health updates: prunes history
    /// versions that no live worker references any more, then propagates indirect
    /// versions one step. Returns how many live workers have not echoed one of this
    /// scheduler's set ids yet; while there are any, history is not pruned (a set id
    /// in flight to them may reference any retained version).
    pub fn sweep(&mut self) -> usize {
        let waiting = self.members_without_echo();
        if waiting == 0 {
            self.prune_history();
        }
        self.propagate_indirect_versions();
        waiting
    }

    fn members_without_echo(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.live && m.echoed.is_none())
            .count()
    }

    /// Drops the versions before the earliest one echoed by a live worker, merging
    /// their changes into that version's step. Call only when every live worker has
    /// echoed.
    fn prune_history(&mut self) {
        let first_referenced = self
            .members
            .values()
            .filter(|m| m.live)
            .filter_map(|m| m.echoed.map(|id| Version(id.version)))
            .min();
        let Some(first_referenced) = first_referenced else {
            // No live workers at all: nothing can reference any version.
            self.history.clear();
            return;
        };
        let mut added = BTreeSet::new();
        while let Some(entry) = self.history.first_entry() {
            if *entry.key() >= first_referenced {
                break;
            }
            merge_step(entry.remove(), &mut added);
        }
        let step = self
            .history
            .get_mut(&first_referenced)
            .expect("a live worker echoed a WorkerSetId version missing from the history");
        merge_step(std::mem::take(step), &mut added);
        step.added = added;
    }

    /// One pass of label propagation (Bistro's `propagateIndirectWorkerSets`): walking
    /// the history from oldest to newest while keeping the indirect versions of that
    /// version's members, every live worker whose indirect version equals the step's
    /// version takes the highest indirect set id among those members. A raised worker
    /// is met again at its new version, so one pass may raise it several times.
    /// Lost (MUST_DIE) workers are propagated through until their removal step, but
    /// never raised themselves.
    fn propagate_indirect_versions(&mut self) {
        let members = &mut self.members;
        let indirect_versions = &mut self.indirect_versions;
        // The indirect versions of the members of the version being visited.
        let mut in_set: BTreeSet<(Version, String)> = BTreeSet::new();
        // Live workers before this key have been visited.
        let mut next: Bound<(Version, String)> = Bound::Unbounded;
        for (version, step) in &self.history {
            let Some((first_pending, _)) = indirect_versions
                .range((next.clone(), Bound::Unbounded))
                .next()
            else {
                break;
            };
            if first_pending < version {
                // Cannot happen: echoes are checked against the history, and pruning
                // keeps every live worker's echoed (so indirect) version.
                panic!(
                    "indirect WorkerSetId version {} precedes the history at {}",
                    first_pending.0, version.0
                );
            }
            if let Some(shard) = &step.removed {
                if let Some(id) = members.get(shard).and_then(|m| m.indirect) {
                    in_set.remove(&(Version(id.version), shard.clone()));
                }
            }
            for shard in &step.added {
                if let Some(id) = members.get(shard).and_then(|m| m.indirect) {
                    in_set.insert((Version(id.version), shard.clone()));
                }
            }
            while let Some(key) = indirect_versions
                .range((next.clone(), Bound::Unbounded))
                .next()
                .filter(|(v, _)| v == version)
                .cloned()
            {
                next = Bound::Excluded(key.clone());
                let Some(highest) = in_set
                    .last()
                    .and_then(|(_, shard)| members.get(shard))
                    .and_then(|m| m.indirect)
                else {
                    continue;
                };
                let (old, shard) = key;
                if in_set.remove(&(old, shard.clone())) {
                    in_set.insert((Version(highest.version), shard.clone()));
                }
                if let Some(member) = members.get_mut(&shard) {
                    raise_indirect(indirect_versions, &shard, member, highest);
                }
            }
        }
    }

    /// Why the worker on `shard`, if it has never been healthy, may not become healthy
    /// yet; `None` when consensus permits it (§5.12). It must have echoed the current
    /// set id, every live worker must have an indirect version, and the earliest of
    /// those must not precede the first version that contained this worker, i.e. every
    /// live worker (indirectly) requires it.
    pub fn consensus_block(&self, shard: &str) -> Option<String> {
        let Some(member) = self.members.get(shard) else {
            return Some(format!("{shard} is not a known worker"));
        };
        let Some(echoed) = member.echoed else {
            return Some("it has not echoed any WorkerSetId of this scheduler".into());
        };
        if echoed != self.current {
            return Some(format!(
                "it has WorkerSetId {echoed} while the scheduler has {}",
                self.current
            ));
        }
        let with_indirect = self.indirect_versions.len() as u64;
        if with_indirect != self.current.hash.num_workers {
            return Some(format!(
                "only {with_indirect} of the {} non-MUST_DIE workers have an indirect \
                 WorkerSetId version",
                self.current.hash.num_workers
            ));
        }
        let Some(first) = member.first_associated else {
            return Some("it has no first associated WorkerSetId".into());
        };
        let Some((earliest, _)) = self.indirect_versions.first() else {
            return Some("no non-MUST_DIE worker has an indirect WorkerSetId".into());
        };
        if earlier_than(earliest.0, first.version) {
            return Some(format!(
                "it first appeared in WorkerSetId version {}, but some non-MUST_DIE \
                 worker only indirectly requires version {}",
                first.version, earliest.0
            ));
        }
        None
    }

    /// Whether worker-set consensus lets the worker on `shard` become healthy (see
    /// [`consensus_block`](Self::consensus_block)); pass it to the health update as
    /// `allowed_to_become_healthy`.
    pub fn may_become_healthy(&self, shard: &str) -> bool {
        self.consensus_block(shard).is_none()
    }

    /// The startup consensus (§5.11): there is at least one live worker, all live
    /// workers sent the same initial set id, and its hash is the current set's hash,
    /// i.e. exactly the workers known to the previous scheduler have reconnected.
    /// The empty set id of a worker that never had a scheduler never matches.
    pub fn has_consensus(&self) -> bool {
        let mut initials = self.members.values().filter(|m| m.live).map(|m| m.initial);
        let Some(first) = initials.next() else {
            return false;
        };
        first.hash == self.current.hash && initials.all(|id| id == first)
    }
}

/// Applies one history step to a running set of members.
fn merge_step(step: HistoryStep, added: &mut BTreeSet<String>) {
    if let Some(shard) = step.removed {
        added.remove(&shard);
    }
    added.extend(step.added);
}

/// Raises `member`'s indirect set id to `id` if that is later, keeping the sorted
/// index of live members' indirect versions in step.
fn raise_indirect(
    indirect_versions: &mut BTreeSet<(Version, String)>,
    shard: &str,
    member: &mut WorkerSetMember,
    id: WorkerSetId,
) {
    if let Some(old) = member.indirect {
        if !earlier_than(old.version, id.version) {
            return;
        }
        indirect_versions.remove(&(Version(old.version), shard.to_string()));
    }
    indirect_versions.insert((Version(id.version), shard.to_string()));
    member.indirect = Some(id);
}

#[cfg(test)]
mod tests;
