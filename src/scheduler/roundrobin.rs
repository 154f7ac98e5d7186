//! `roundrobin` (the default): rounds over the jobs; each job starts at most one task
//! per round.

use super::{JobCandidates, Policy, TryStart};

/// Bistro's round-robin policy; priorities are ignored.
pub(super) struct RoundRobin;

impl Policy for RoundRobin {
    fn schedule(
        &self,
        mut jobs: Vec<JobCandidates>,
        _: &mut dyn rand::RngCore,
        try_start: &mut dyn FnMut(usize, usize) -> TryStart,
    ) {
        while !jobs.is_empty() {
            for entry in &mut jobs {
                while let Some(node) = entry.nodes.pop() {
                    match try_start(entry.job, node as usize) {
                        TryStart::Started => break,
                        TryStart::DidNotRun => {}
                        TryStart::JobIsFull => entry.nodes.clear(),
                    }
                }
            }
            jobs.retain(|e| !e.nodes.is_empty());
        }
    }
}
