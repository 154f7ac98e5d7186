//! `long_tail`: jobs with the fewest eligible tasks in this pass go first, so nearly
//! finished jobs finish.

use super::ranked_priority::exhaust_in_order;
use super::{JobCandidates, Policy, TryStart};

/// Tries every task of each job, jobs with fewer candidates first.
pub(super) struct LongTail;

impl Policy for LongTail {
    fn schedule(
        &self,
        mut jobs: Vec<JobCandidates>,
        _: &mut dyn rand::RngCore,
        try_start: &mut dyn FnMut(usize, usize) -> TryStart,
    ) {
        jobs.sort_by_key(|e| e.nodes.len());
        exhaust_in_order(jobs, try_start);
    }
}
