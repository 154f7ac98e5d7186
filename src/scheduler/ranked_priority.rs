//! `ranked_priority`: the highest-priority job tries all its tasks first.

use super::{JobCandidates, Policy, TryStart};

/// Tries every task of each job in priority order, highest first.
pub(super) struct RankedPriority;

/// Tries all nodes of each job in the given order.
pub(super) fn exhaust_in_order(
    jobs: Vec<JobCandidates>,
    try_start: &mut dyn FnMut(usize, usize) -> TryStart,
) {
    for mut entry in jobs {
        while let Some(node) = entry.nodes.pop() {
            if try_start(entry.job, node as usize) == TryStart::JobIsFull {
                break;
            }
        }
    }
}

impl Policy for RankedPriority {
    fn schedule(
        &self,
        mut jobs: Vec<JobCandidates>,
        _: &mut dyn rand::RngCore,
        try_start: &mut dyn FnMut(usize, usize) -> TryStart,
    ) {
        jobs.sort_by(|a, b| b.priority.total_cmp(&a.priority));
        exhaust_in_order(jobs, try_start);
    }
}
