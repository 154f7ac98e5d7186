//! What Slurm says of bistro's jobs: `squeue` rows parsed into a snapshot indexed by
//! array job and index (and by job name, for a run whose `sbatch` answer was lost),
//! and which job states are final.

use std::collections::HashMap;

/// `squeue --format`: job id, array job id, array index, state, reason, name.
pub const SQUEUE_FORMAT: &str = "%A|%F|%K|%T|%r|%j";

/// One array task (or job) as `squeue` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    /// Its own job id.
    pub job_id: u64,
    /// The array's job id (its own id for a job that is not an array).
    pub array_id: u64,
    /// Its index in the array.
    pub index: Option<u32>,
    /// `PENDING`, `RUNNING`, `COMPLETED`, ...
    pub state: String,
    /// Why it is pending or how it ended (`None` when there is nothing to say).
    pub reason: String,
    /// The job name.
    pub name: String,
}

impl JobRow {
    /// The id users know it by: `ARRAY_INDEX` for an array task, else the job id.
    pub fn display_id(&self) -> String {
        match self.index {
            Some(i) => format!("{}_{i}", self.array_id),
            None => self.job_id.to_string(),
        }
    }

    /// It ended (Slurm runs nothing of it any more).
    pub fn is_final(&self) -> bool {
        is_final_state(&self.state)
    }

    /// `STATE` or `STATE (Reason)`.
    pub fn describe(&self) -> String {
        if self.reason.is_empty() || self.reason == "None" {
            self.state.clone()
        } else {
            format!("{} ({})", self.state, self.reason)
        }
    }
}

/// Slurm's final job states (`man squeue`, JOB STATE CODES).
pub fn is_final_state(state: &str) -> bool {
    matches!(
        state,
        "COMPLETED"
            | "FAILED"
            | "CANCELLED"
            | "TIMEOUT"
            | "OUT_OF_MEMORY"
            | "NODE_FAIL"
            | "PREEMPTED"
            | "BOOT_FAIL"
            | "DEADLINE"
            | "SPECIAL_EXIT"
            | "REVOKED"
    )
}

/// Parses `squeue` output in [`SQUEUE_FORMAT`]; lines that do not parse are skipped.
pub fn parse_squeue(text: &str) -> Vec<JobRow> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.trim().splitn(6, '|');
            let job_id = f.next()?.trim().parse().ok()?;
            let array_id = f.next()?.trim().parse().ok()?;
            let index = f.next()?.trim().parse().ok();
            let state = f.next()?.trim().to_string();
            let reason = f.next()?.trim().to_string();
            let name = f.next()?.trim().to_string();
            Some(JobRow {
                job_id,
                array_id,
                index,
                state,
                reason,
                name,
            })
        })
        .collect()
}

/// The id `sbatch --parsable` printed: `ID` or `ID;CLUSTER`.
pub fn parse_sbatch_id(stdout: &str) -> Option<u64> {
    stdout.trim().split(';').next()?.trim().parse().ok()
}

/// Every job Slurm knows, indexed.
#[derive(Debug, Default)]
pub struct Snapshot {
    by_array: HashMap<(u64, u32), JobRow>,
    by_name: HashMap<(String, u32), (u64, u32)>,
}

impl Snapshot {
    /// Indexes `rows`.
    pub fn new(rows: Vec<JobRow>) -> Self {
        let mut out = Self::default();
        for row in rows {
            let index = row.index.unwrap_or(0);
            out.by_name
                .insert((row.name.clone(), index), (row.array_id, index));
            out.by_array.insert((row.array_id, index), row);
        }
        out
    }

    /// The array task `index` of array job `array_id`.
    pub fn get(&self, array_id: u64, index: u32) -> Option<&JobRow> {
        self.by_array.get(&(array_id, index))
    }

    /// The array task `index` of the job named `name`.
    pub fn find(&self, name: &str, index: u32) -> Option<&JobRow> {
        let key = self.by_name.get(&(name.to_string(), index))?;
        self.by_array.get(key)
    }

    /// How many of bistro's jobs (named with `prefix`) wait in the queue.
    pub fn pending_with_prefix(&self, prefix: &str) -> usize {
        self.by_array
            .values()
            .filter(|r| r.state == "PENDING" && r.name.starts_with(prefix))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_rows_parse_and_are_found_by_id_and_by_name() {
        let text = "2|1|0|FAILED|NonZeroExitCode|bistro-a\n\
                    4|4|1|PENDING|Resources|bistro-b\n\
                    7|7|N/A|RUNNING|None|other\n\
                    garbage\n";
        let rows = parse_squeue(text);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2].index, None);
        let snap = Snapshot::new(rows);
        let failed = snap.get(1, 0).unwrap();
        assert!(failed.is_final());
        assert_eq!(failed.describe(), "FAILED (NonZeroExitCode)");
        assert_eq!(failed.display_id(), "1_0");
        let pending = snap.find("bistro-b", 1).unwrap();
        assert!(!pending.is_final());
        assert_eq!(pending.describe(), "PENDING (Resources)");
        assert_eq!(snap.get(7, 0).unwrap().describe(), "RUNNING");
        assert_eq!(snap.pending_with_prefix("bistro-"), 1);
        assert!(snap.find("bistro-b", 0).is_none());
    }

    #[test]
    fn sbatch_ids_parse_with_or_without_a_cluster() {
        assert_eq!(parse_sbatch_id("123\n"), Some(123));
        assert_eq!(parse_sbatch_id("45;cluster\n"), Some(45));
        assert_eq!(parse_sbatch_id("Submitted batch job 4"), None);
    }
}
