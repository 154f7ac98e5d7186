//! `randomized_priority`: jobs are drawn at random, weighted by priority; each draw
//! starts at most one task.

use super::{JobCandidates, Policy, TryStart};
use rand::Rng;

/// Weighted random job choice. Every draw removes a node or a job, so the loop ends.
/// Weights are priorities scaled by the largest one (so huge priorities cannot
/// overflow the sum); a job with priority <= 0 is drawn only once no positive one is
/// left, and then uniformly (Bistro's weights are undefined there).
pub(super) struct RandomizedPriority;

impl Policy for RandomizedPriority {
    fn schedule(
        &self,
        mut jobs: Vec<JobCandidates>,
        rng: &mut dyn rand::RngCore,
        try_start: &mut dyn FnMut(usize, usize) -> TryStart,
    ) {
        while !jobs.is_empty() {
            let max = jobs.iter().map(|e| e.priority).fold(0.0, f64::max);
            let weight = |p: f64| if max > 0.0 { (p / max).max(0.0) } else { 1.0 };
            let total: f64 = jobs.iter().map(|e| weight(e.priority)).sum();
            let mut pick = rng.gen_range(0.0..total);
            let mut chosen = jobs.len() - 1;
            for (i, e) in jobs.iter().enumerate() {
                let w = weight(e.priority);
                if pick < w {
                    chosen = i;
                    break;
                }
                pick -= w;
            }
            let entry = &mut jobs[chosen];
            if entry.nodes.is_empty() {
                jobs.swap_remove(chosen);
                continue;
            }
            while let Some(node) = entry.nodes.pop() {
                match try_start(entry.job, node as usize) {
                    TryStart::Started => break,
                    TryStart::DidNotRun => {}
                    TryStart::JobIsFull => entry.nodes.clear(),
                }
            }
        }
    }
}
