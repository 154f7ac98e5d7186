//! `randomized_priority`: jobs are drawn at random, weighted by priority; each draw
//! starts at most one task.

use super::{JobCandidates, Policy, TryStart};
use rand::Rng;

/// Weighted random job choice. Priorities are positive (the config rejects others), so
/// the loop always ends: every draw removes a node or a job.
pub(super) struct RandomizedPriority;

impl Policy for RandomizedPriority {
    fn schedule(
        &self,
        mut jobs: Vec<JobCandidates>,
        rng: &mut dyn rand::RngCore,
        try_start: &mut dyn FnMut(usize, usize) -> TryStart,
    ) {
        while !jobs.is_empty() {
            let total: f64 = jobs.iter().map(|e| e.priority).sum();
            let mut pick = rng.gen_range(0.0..total);
            let mut chosen = jobs.len() - 1;
            for (i, e) in jobs.iter().enumerate() {
                if pick < e.priority {
                    chosen = i;
                    break;
                }
                pick -= e.priority;
            }
            let entry = &mut jobs[chosen];
            if entry.nodes.is_empty() {
                jobs.swap_remove(chosen);
                continue;
            }
            while let Some(node) = entry.nodes.pop() {
                match try_start(entry.job, node) {
                    TryStart::Started => break,
                    TryStart::DidNotRun => {}
                }
            }
        }
    }
}
