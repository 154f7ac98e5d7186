//! Stored statuses as a pass reads them. Every job has statuses on the same nodes, so
//! node names are kept once each, in one buffer, and numbered: loading a million rows
//! allocates little, and a pass maps each name to its node once for all jobs, then
//! reads a job's statuses from a dense array by node instead of looking each name up.

use crate::foundation::status::TaskStatus;
use crate::model::nodes::{NamesToken, Nodes};
use rustc_hash::FxHashMap;
use std::hash::BuildHasher;
use std::sync::OnceLock;

/// No node.
const NO_NODE: u32 = u32::MAX;

fn name_hash(name: &str) -> u64 {
    rustc_hash::FxBuildHasher.hash_one(name)
}

/// Node names, each stored once, numbered in order of arrival.
#[derive(Debug, Clone, Default)]
struct Names {
    /// The names laid end to end.
    text: String,
    /// Where each name ends in `text`.
    ends: Vec<usize>,
    /// Name ids by name.
    ids: hashbrown::HashTable<u32>,
    /// The id after the last one interned: where the next name likely is when the
    /// names of several jobs arrive in the same order (a table sorted by job, then
    /// node), so that most names are found with one comparison and no hashing.
    next: u32,
}

/// The name with id `id` in `text` laid out by `ends`.
fn name_at<'a>(text: &'a str, ends: &[usize], id: u32) -> &'a str {
    let id = id as usize;
    let start = if id == 0 { 0 } else { ends[id - 1] };
    &text[start..ends[id]]
}

impl Names {
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn name(&self, id: u32) -> &str {
        name_at(&self.text, &self.ends, id)
    }

    fn id(&self, name: &str) -> Option<u32> {
        self.ids
            .find(name_hash(name), |&id| self.name(id) == name)
            .copied()
    }

    /// The id of `name`, numbering it if it is new.
    fn intern(&mut self, name: &str) -> u32 {
        let id = self.find_or_add(name);
        self.next = id + 1;
        id
    }

    /// The id of `name`, trying the likely one before hashing, numbering it if new.
    fn find_or_add(&mut self, name: &str) -> u32 {
        if (self.next as usize) < self.len() && self.name(self.next) == name {
            return self.next;
        }
        let hash = name_hash(name);
        if let Some(&id) = self.ids.find(hash, |&id| self.name(id) == name) {
            return id;
        }
        let id = self.ends.len() as u32;
        self.text.push_str(name);
        self.ends.push(self.text.len());
        let (text, ends) = (&self.text, &self.ends);
        self.ids
            .insert_unique(hash, id, |&other| name_hash(name_at(text, ends, other)));
        id
    }
}

/// One job's statuses (and attempt counts): rows in order of arrival, found by name id.
#[derive(Debug, Clone, Default)]
pub(super) struct JobStatuses {
    /// The rows.
    rows: Vec<(TaskStatus, i64)>,
    /// The node name id of each row.
    names: Vec<u32>,
    /// Row by node name id, built at the first lookup: a pass reads the rows in order
    /// and needs none.
    by_name: OnceLock<FxHashMap<u32, u32>>,
}

impl JobStatuses {
    fn index(&self) -> &FxHashMap<u32, u32> {
        self.by_name.get_or_init(|| {
            let rows = self.names.iter().enumerate();
            rows.map(|(row, &name)| (name, row as u32)).collect()
        })
    }

    fn get(&self, name: u32) -> Option<&(TaskStatus, i64)> {
        self.index().get(&name).map(|&row| &self.rows[row as usize])
    }

    /// Adds a row for a task that has none.
    fn push(&mut self, name: u32, status: TaskStatus, attempts: i64) {
        if let Some(index) = self.by_name.get_mut() {
            index.insert(name, self.rows.len() as u32);
        }
        self.rows.push((status, attempts));
        self.names.push(name);
    }
}

/// Stored statuses (and attempt counts) by job, then node name.
#[derive(Debug, Clone, Default)]
pub struct Statuses {
    names: Names,
    by_job: FxHashMap<String, JobStatuses>,
    nodes_of_names: NodesOfNames,
}

/// [`Statuses::nodes_by_name`] kept between passes: a daemon's passes see the same
/// nodes and mostly the same names, and looking every name up again cost more than
/// the rest of a pass over the nodes. Derived data: a clone starts without it.
#[derive(Default)]
struct NodesOfNames(std::sync::Mutex<Vec<(NamesToken, usize, Vec<u32>)>>);

impl Clone for NodesOfNames {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for NodesOfNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodesOfNames")
    }
}

impl Statuses {
    fn job_mut(&mut self, job: &str) -> &mut JobStatuses {
        // The name is copied only for a new job.
        if !self.by_job.contains_key(job) {
            self.by_job.insert(job.to_string(), JobStatuses::default());
        }
        self.by_job.get_mut(job).expect("just inserted")
    }

    /// Records a status and how many times the task was started.
    pub fn insert(&mut self, job: &str, node: &str, status: TaskStatus, attempts: i64) {
        let name = self.names.intern(node);
        let statuses = self.job_mut(job);
        match statuses.index().get(&name) {
            Some(&row) => statuses.rows[row as usize] = (status, attempts),
            None => statuses.push(name, status, attempts),
        }
    }

    /// [`insert`](Self::insert) for a task that has no status yet, as when loading
    /// a table keyed by (job, node): nothing is looked up (a second status for the
    /// same task would hide the first).
    pub fn insert_new(&mut self, job: &str, node: &str, status: TaskStatus, attempts: i64) {
        let name = self.names.intern(node);
        self.job_mut(job).push(name, status, attempts);
    }

    fn row(&self, job: &str, node: &str) -> Option<&(TaskStatus, i64)> {
        self.by_job.get(job)?.get(self.names.id(node)?)
    }

    /// The status of (job, node), if any.
    pub fn get(&self, job: &str, node: &str) -> Option<&TaskStatus> {
        self.row(job, node).map(|(s, _)| s)
    }

    /// How many times (job, node) was started.
    pub fn attempts(&self, job: &str, node: &str) -> i64 {
        self.row(job, node).map_or(0, |(_, a)| *a)
    }

    /// The statuses of one job, if it has any: looked up once per job, not per task.
    pub(super) fn of_job(&self, job: &str) -> Option<&JobStatuses> {
        self.by_job.get(job).filter(|j| !j.rows.is_empty())
    }

    /// For each name id, the first node of that name on `level`, or `NO_NODE`. Only
    /// names new since the last call with the same nodes are looked up.
    fn nodes_by_name(&self, nodes: &Nodes, level: usize) -> Vec<u32> {
        let token = nodes.names_token();
        let mut kept = self
            .nodes_of_names
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.retain(|(other, _, _)| other.same(&token));
        let at = match kept.iter().position(|(_, l, _)| *l == level) {
            Some(at) => at,
            None => {
                kept.push((token, level, Vec::new()));
                kept.len() - 1
            }
        };
        let ids = &mut kept[at].2;
        let known = ids.len() as u32;
        let new = (known..self.names.len() as u32).map(|id| self.names.name(id));
        ids.extend(nodes.first_named(level, new));
        ids.clone()
    }
}

/// Maps the statuses' node names to the nodes of a pass, once per level for every
/// job of that level.
pub(super) struct NodeNames<'a> {
    statuses: &'a Statuses,
    nodes: &'a Nodes,
    /// Per level, once needed: [`Statuses::nodes_by_name`].
    by_level: FxHashMap<usize, Vec<u32>>,
}

impl<'a> NodeNames<'a> {
    pub(super) fn new(statuses: &'a Statuses, nodes: &'a Nodes) -> Self {
        Self {
            statuses,
            nodes,
            by_level: FxHashMap::default(),
        }
    }

    /// The statuses of `job` by node of `level`, if the job has any.
    pub(super) fn job(&mut self, job: &str, level: usize) -> Option<ByNode<'a>> {
        let statuses = self.statuses.of_job(job)?;
        let (all, nodes) = (self.statuses, self.nodes);
        let by_name = self
            .by_level
            .entry(level)
            .or_insert_with(|| all.nodes_by_name(nodes, level));
        // A zeroed array costs nothing to allocate.
        let mut rows = vec![0u32; nodes.list.len()];
        for (row, (&name, (status, _))) in statuses.names.iter().zip(&statuses.rows).enumerate() {
            let node = by_name[name as usize];
            if node != NO_NODE {
                let done = if status.is_done() { DONE } else { 0 };
                rows[node as usize] = (row as u32 + 1) | done;
            }
        }
        let tables = nodes.tables();
        for &replica in &tables.replicas {
            rows[replica as usize] = rows[tables.replica_roots[replica as usize] as usize];
        }
        Some(ByNode { statuses, rows })
    }
}

/// In [`ByNode::rows`], the flag of a done status.
const DONE: u32 = 1 << 31;

/// A stored status as a pass tells them apart.
pub(super) enum Stored<'a> {
    /// Done: found without reading the status.
    Done,
    /// Any other status.
    Other(&'a TaskStatus),
}

/// One job's statuses by node for one pass. Replicas (one name twice on a level)
/// share a task, and so a status.
pub(super) struct ByNode<'a> {
    statuses: &'a JobStatuses,
    /// For each node: 0 for no status, else the row + 1, flagged [`DONE`] when done,
    /// so the many done tasks are told apart without reading their rows.
    rows: Vec<u32>,
}

impl<'a> ByNode<'a> {
    /// The status of the task on `node`.
    #[inline]
    pub(super) fn get(&self, node: usize) -> Option<Stored<'a>> {
        match self.rows[node] {
            0 => None,
            row if row & DONE != 0 => Some(Stored::Done),
            row => Some(Stored::Other(&self.statuses.rows[row as usize - 1].0)),
        }
    }

    /// Is the task on `node` done?
    #[inline]
    pub(super) fn is_done(&self, node: usize) -> bool {
        self.rows[node] & DONE != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundation::status::bits;

    #[test]
    fn statuses_are_found_by_job_and_name_and_replaced_in_place() {
        let mut statuses = Statuses::default();
        statuses.insert("a", "n1", TaskStatus::new(bits::DONE, 1), 1);
        statuses.insert("b", "n1", TaskStatus::new(bits::FAILED, 1), 2);
        statuses.insert("a", "n1", TaskStatus::new(bits::INCOMPLETE, 2), 3);
        assert_eq!(statuses.get("a", "n1").unwrap().bits, bits::INCOMPLETE);
        assert_eq!(statuses.attempts("a", "n1"), 3);
        assert_eq!(statuses.get("b", "n1").unwrap().bits, bits::FAILED);
        assert!(statuses.get("a", "n2").is_none() && statuses.get("c", "n1").is_none());
        assert_eq!(statuses.attempts("b", "n2"), 0);
        assert_eq!(statuses.names.len(), 1, "one name, stored once");
    }

    #[test]
    fn loaded_rows_are_found_once_looked_up_and_after_more_inserts() {
        let mut statuses = Statuses::default();
        for job in ["a", "b"] {
            for node in ["n1", "n2", "n3"] {
                statuses.insert_new(job, node, TaskStatus::new(bits::DONE, 1), 1);
            }
        }
        statuses.insert_new("b", "n0", TaskStatus::new(bits::FAILED, 1), 4);
        assert_eq!(statuses.names.len(), 4);
        assert_eq!(statuses.attempts("b", "n0"), 4);
        statuses.insert_new("b", "n4", TaskStatus::new(bits::FAILED, 1), 5);
        statuses.insert("b", "n1", TaskStatus::new(bits::FAILED, 1), 6);
        assert_eq!(statuses.attempts("b", "n4"), 5);
        assert_eq!(statuses.attempts("b", "n1"), 6);
        assert_eq!(statuses.attempts("a", "n1"), 1);
        assert_eq!(statuses.by_job["b"].rows.len(), 5);
    }

    #[test]
    fn names_found_on_nodes_are_kept_between_passes_and_follow_new_names_and_lists() {
        let mut nodes = Nodes::with_instance("i");
        let h1 = nodes.push("h1".into(), 1, 0, true);
        let h2 = nodes.push("h2".into(), 1, 0, true);
        let mut statuses = Statuses::default();
        statuses.insert("j", "h1", TaskStatus::new(bits::DONE, 1), 1);
        let first = NodeNames::new(&statuses, &nodes).job("j", 1).unwrap();
        assert!(first.is_done(h1) && first.get(h2).is_none());
        // A name first seen after the last pass, on the same nodes.
        statuses.insert("j", "h2", TaskStatus::new(bits::FAILED, 1), 1);
        let second = NodeNames::new(&statuses, &nodes).job("j", 1).unwrap();
        assert!(matches!(second.get(h2), Some(Stored::Other(s)) if s.bits == bits::FAILED));
        // New nodes, where the names sit elsewhere.
        let mut moved = Nodes::with_instance("i");
        let moved_h2 = moved.push("h2".into(), 1, 0, true);
        let moved_h1 = moved.push("h1".into(), 1, 0, true);
        let third = NodeNames::new(&statuses, &moved).job("j", 1).unwrap();
        assert!(third.is_done(moved_h1) && !third.is_done(moved_h2));
        assert!(matches!(third.get(moved_h2), Some(Stored::Other(_))));
    }

    #[test]
    fn a_pass_reads_statuses_by_node_replicas_as_their_first() {
        let mut nodes = Nodes::with_instance("i");
        let h1 = nodes.push("h1".into(), 1, 0, true);
        let h2 = nodes.push("h2".into(), 1, 0, true);
        let a1 = nodes.push("a".into(), 2, h1, true);
        let b = nodes.push("b".into(), 2, h1, true);
        let a2 = nodes.push("a".into(), 2, h2, true);
        let mut statuses = Statuses::default();
        statuses.insert("j", "gone", TaskStatus::new(bits::DONE, 1), 1);
        statuses.insert("j", "a", TaskStatus::new(bits::FAILED, 1), 1);
        statuses.insert("j", "h1", TaskStatus::new(bits::DONE, 1), 1);
        let mut names = NodeNames::new(&statuses, &nodes);
        let by_node = names.job("j", 2).unwrap();
        for a in [a1, a2] {
            let Some(Stored::Other(status)) = by_node.get(a) else {
                panic!("no status on {a}");
            };
            assert_eq!(status.bits, bits::FAILED);
        }
        assert!(by_node.get(b).is_none());
        assert!(by_node.get(h1).is_none(), "h1 is not on the db level");
        assert!(names.job("other", 2).is_none());
        let hosts = names.job("j", 1).unwrap();
        assert!(matches!(hosts.get(h1), Some(Stored::Done)) && hosts.is_done(h1));
    }
}
