//! A consistent read of the status database that need not read every row: the
//! tallies its triggers keep, and the stored status of chosen tasks.

use super::{StatusRow, StatusStore};
use crate::storage::store::{sql_err, StoreError};
use rusqlite::OptionalExtension;
use rustc_hash::FxHashMap;

/// The tallies of the stored statuses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tallies {
    /// Per job, each distinct `bits` with how many stored statuses have it.
    pub jobs: FxHashMap<String, Vec<(u32, usize)>>,
    /// The nodes that some stored status names (each once) that the caller kept.
    pub nodes: Vec<String>,
}

/// A read transaction on the status database: until it is dropped, every read through
/// it (it derefs to the store) sees the same commit, though a tick may commit
/// meanwhile.
pub struct StatusSnapshot<'a> {
    store: &'a StatusStore,
    _read: rusqlite::Transaction<'a>,
}

impl StatusStore {
    /// Starts a read transaction (see [`StatusSnapshot`]).
    pub fn snapshot(&self) -> Result<StatusSnapshot<'_>, StoreError> {
        let read = self
            .conn
            .unchecked_transaction()
            .map_err(sql_err(&self.path, "starting a read"))?;
        Ok(StatusSnapshot {
            store: self,
            _read: read,
        })
    }
}

impl std::ops::Deref for StatusSnapshot<'_> {
    type Target = StatusStore;

    fn deref(&self) -> &StatusStore {
        self.store
    }
}

impl StatusSnapshot<'_> {
    /// The tallies, with the nodes of stored statuses that `keep` returns true for
    /// (there may be millions, and callers want few); or None when the tallies
    /// disagree with the rows: a writer that replaced a row without
    /// `recursive_triggers` (a script, or a bistro older than the tallies that had the
    /// database open when it was upgraded) left the replaced row counted. The caller
    /// then has to read the rows.
    pub fn tallies(
        &self,
        mut keep: impl FnMut(&str) -> bool,
    ) -> Result<Option<Tallies>, StoreError> {
        let err = || sql_err(&self.path, "reading the status tallies");
        let rows: i64 = self
            .conn
            .query_row("SELECT count(*) FROM task_statuses", [], |r| r.get(0))
            .map_err(err())?;
        let mut tallies = Tallies::default();
        let mut counted = 0;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT job, bits, tasks FROM status_counts WHERE tasks != 0")
            .map_err(err())?;
        let mut found = stmt.query([]).map_err(err())?;
        while let Some(r) = found.next().map_err(err())? {
            let tasks: i64 = r.get(2).map_err(err())?;
            counted += tasks;
            tallies
                .jobs
                .entry(r.get(0).map_err(err())?)
                .or_default()
                .push((r.get(1).map_err(err())?, tasks.max(0) as usize));
        }
        let mut named = 0;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT node, tasks FROM status_nodes WHERE tasks != 0")
            .map_err(err())?;
        let mut found = stmt.query([]).map_err(err())?;
        while let Some(r) = found.next().map_err(err())? {
            named += r.get::<_, i64>(1).map_err(err())?;
            let node = r.get_ref(0).and_then(|v| Ok(v.as_str()?)).map_err(err())?;
            if keep(node) {
                tallies.nodes.push(node.to_string());
            }
        }
        Ok((counted == rows && named == rows).then_some(tallies))
    }

    /// The bits of the stored status of (job, node), if it has one.
    pub fn bits(&self, job: &str, node: &str) -> Result<Option<u32>, StoreError> {
        let err = || sql_err(&self.path, "reading a task status");
        self.conn
            .prepare_cached("SELECT bits FROM task_statuses WHERE job = ?1 AND node = ?2")
            .map_err(err())?
            .query_row([job, node], |r| r.get(0))
            .optional()
            .map_err(err())
    }

    /// Hands the node and bits of each stored status of `job` to `each`.
    pub fn each_of_job(
        &self,
        job: &str,
        mut each: impl FnMut(&str, u32),
    ) -> Result<(), StoreError> {
        let err = |e| sql_err(&self.path, "reading task statuses")(e);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT node, bits FROM task_statuses WHERE job = ?1")
            .map_err(err)?;
        let mut rows = stmt.query([job]).map_err(err)?;
        while let Some(r) = rows.next().map_err(err)? {
            let node = r.get_ref(0).and_then(|v| Ok(v.as_str()?)).map_err(err)?;
            each(node, r.get(1).map_err(err)?);
        }
        Ok(())
    }

    /// The stored status of (job, node), if it has one.
    pub fn row(&self, job: &str, node: &str) -> Result<Option<StatusRow>, StoreError> {
        let err = || sql_err(&self.path, "reading a task status");
        let columns = self
            .conn
            .prepare_cached(
                "SELECT bits, time, backoff, data, attempts FROM task_statuses
                 WHERE job = ?1 AND node = ?2",
            )
            .map_err(err())?
            .query_row([job, node], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()
            .map_err(err())?;
        columns
            .map(|(bits, time, backoff, data, attempts)| {
                self.decode_row(job.into(), node.into(), bits, time, backoff, data, attempts)
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundation::status::{bits, TaskStatus};
    use crate::storage::store::statuses::tests::task;
    use rusqlite::{params, Connection};

    /// Stores `status` for (job, node) as a finished run does.
    fn finish(store: &mut StatusStore, job: &str, node: &str, status: TaskStatus) {
        let run = task(job, node, 1);
        store.claim(std::slice::from_ref(&run)).unwrap();
        store.finish(&[(run, Some(status))]).unwrap();
    }

    /// The tallies counted from the rows.
    fn counted(store: &StatusStore) -> Tallies {
        let mut expected = Tallies::default();
        for row in store.load().unwrap() {
            let tally = expected.jobs.entry(row.job).or_default();
            match tally.iter_mut().find(|(b, _)| *b == row.status.bits) {
                Some((_, n)) => *n += 1,
                None => tally.push((row.status.bits, 1)),
            }
            if !expected.nodes.contains(&row.node) {
                expected.nodes.push(row.node);
            }
        }
        sorted(expected)
    }

    fn sorted(mut tallies: Tallies) -> Tallies {
        tallies.jobs.values_mut().for_each(|t| t.sort_unstable());
        tallies.nodes.sort_unstable();
        tallies
    }

    fn tallies(store: &StatusStore) -> Option<Tallies> {
        store
            .snapshot()
            .unwrap()
            .tallies(|_| true)
            .unwrap()
            .map(sorted)
    }

    fn assert_tallied(store: &StatusStore, after: &str) {
        assert_eq!(tallies(store), Some(counted(store)), "after {after}");
    }

    #[test]
    fn the_tallies_follow_every_kind_of_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StatusStore::open(&dir.path().join("statuses.sql3")).unwrap();
        assert_tallied(&store, "opening");
        let mut backoff = TaskStatus::error_backoff("boom", 20);
        backoff.backoff = 15;
        finish(&mut store, "a", "n1", backoff.clone());
        finish(&mut store, "a", "n2", TaskStatus::new(bits::FAILED, 20));
        finish(&mut store, "b", "n1", TaskStatus::new(bits::DONE, 20));
        assert_tallied(&store, "new statuses");
        finish(&mut store, "a", "n1", TaskStatus::new(bits::DONE, 30));
        assert_tallied(&store, "a status replacing another");
        let lost = TaskStatus::new(bits::ERROR | bits::OVERWRITEABLE, 30);
        finish(&mut store, "b", "n2", lost);
        let late = StatusRow {
            job: "b".into(),
            node: "n2".into(),
            status: TaskStatus::new(bits::DONE, 31),
            attempts: 1,
        };
        assert_eq!(store.replace_overwriteable(&[late]).unwrap().len(), 1);
        assert_tallied(&store, "a late status");
        assert_eq!(store.forgive(&["a".into()], &[]).unwrap(), 1);
        assert_tallied(&store, "forgiveness");
        store
            .conn
            .execute(
                "INSERT OR REPLACE INTO task_statuses (job, node, bits, time) VALUES ('b', 'n1', 8, 40)",
                [],
            )
            .unwrap();
        store
            .conn
            .execute(
                "UPDATE task_statuses SET node = 'n3' WHERE job = 'a' AND node = 'n2'",
                [],
            )
            .unwrap();
        assert_tallied(&store, "writes of our own SQL");
        store
            .conn
            .execute("DELETE FROM task_statuses WHERE node = 'n3'", [])
            .unwrap();
        assert_tallied(&store, "a deletion");
        assert_eq!(store.clear_statuses().unwrap(), 3);
        assert_eq!(tallies(&store), Some(Tallies::default()));
        finish(&mut store, "a", "n1", TaskStatus::new(bits::DONE, 50));
        finish(&mut store, "a", "n2", TaskStatus::new(bits::DONE, 50));
        store
            .conn
            .execute("DELETE FROM task_statuses WHERE node = 'n2'", [])
            .unwrap();
        assert_tallied(&store, "a deletion after clearing");
    }

    #[test]
    fn a_write_that_never_commits_leaves_the_tallies_as_they_were() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("statuses.sql3");
        let mut store = StatusStore::open(&path).unwrap();
        finish(&mut store, "a", "n1", TaskStatus::new(bits::DONE, 20));
        let writer = Connection::open(&path).unwrap();
        writer.execute_batch("BEGIN IMMEDIATE").unwrap();
        writer
            .execute(
                "INSERT INTO task_statuses (job, node, bits, time) VALUES ('a', 'n2', 4, 20)",
                [],
            )
            .unwrap();
        // The writer dies mid-transaction, as under kill -9.
        drop(writer);
        assert_tallied(&store, "an uncommitted write");
        assert_eq!(store.load().unwrap().len(), 1);
    }

    #[test]
    fn tallies_that_a_replace_without_recursive_triggers_left_off_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("statuses.sql3");
        let mut store = StatusStore::open(&path).unwrap();
        finish(&mut store, "a", "n1", TaskStatus::new(bits::INCOMPLETE, 20));
        Connection::open(&path)
            .unwrap()
            .execute(
                "INSERT OR REPLACE INTO task_statuses (job, node, bits, time) VALUES ('a', 'n1', 4, 30)",
                [],
            )
            .unwrap();
        assert_eq!(tallies(&store), None);
    }

    #[test]
    fn a_version_1_database_gets_its_tallies_from_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("statuses.sql3");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE task_statuses (
                job TEXT NOT NULL, node TEXT NOT NULL, bits INTEGER NOT NULL, time INTEGER NOT NULL,
                backoff INTEGER NOT NULL DEFAULT 0, data TEXT, attempts INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (job, node)) WITHOUT ROWID;
             CREATE TABLE running_tasks (
                job TEXT NOT NULL, node TEXT NOT NULL, invocation TEXT NOT NULL UNIQUE, task TEXT NOT NULL,
                PRIMARY KEY (job, node)) WITHOUT ROWID;
             CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
             PRAGMA user_version = 1;",
        )
        .unwrap();
        for (job, node, bits) in [
            ("a", "n1", 4),
            ("a", "n2", 4),
            ("a", "n3", 16),
            ("b", "n1", 8),
        ] {
            old.execute(
                "INSERT INTO task_statuses (job, node, bits, time) VALUES (?1, ?2, ?3, 20)",
                params![job, node, bits],
            )
            .unwrap();
        }
        drop(old);
        let mut store = StatusStore::open(&path).unwrap();
        let version: i64 = store
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, super::super::VERSION);
        assert_eq!(
            tallies(&store),
            Some(sorted(Tallies {
                jobs: [
                    ("a".to_string(), vec![(4, 2), (16, 1)]),
                    ("b".to_string(), vec![(8, 1)])
                ]
                .into_iter()
                .collect(),
                nodes: vec!["n1".into(), "n2".into(), "n3".into()],
            }))
        );
        finish(&mut store, "b", "n1", TaskStatus::new(bits::DONE, 30));
        assert_tallied(&store, "a write after the upgrade");
    }

    #[test]
    fn a_meta_table_without_rowids_gets_rowids_and_keeps_its_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("statuses.sql3");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
             INSERT INTO meta (key, value) VALUES ('nodes', 'the node list'), ('last_tick', '{}');
             PRAGMA user_version = 2;",
        )
        .unwrap();
        drop(old);
        let mut store = StatusStore::open(&path).unwrap();
        assert_eq!(
            store.meta("nodes").unwrap().as_deref(),
            Some("the node list")
        );
        assert_eq!(store.meta("last_tick").unwrap().as_deref(), Some("{}"));
        let sql: String = store
            .conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'meta'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!sql.contains("WITHOUT ROWID"), "{sql}");
        store.set_meta(&[("last_tick", "{\"at\": 1}")]).unwrap();
        drop(store);
        let store = StatusStore::open(&path).unwrap();
        assert_eq!(
            store.meta("last_tick").unwrap().as_deref(),
            Some("{\"at\": 1}")
        );
        assert_eq!(
            store.meta("nodes").unwrap().as_deref(),
            Some("the node list")
        );
    }

    #[test]
    fn the_tallies_give_only_the_nodes_asked_for_and_lookups_find_single_statuses() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StatusStore::open(&dir.path().join("statuses.sql3")).unwrap();
        finish(&mut store, "a", "n1", TaskStatus::new(bits::DONE, 20));
        finish(&mut store, "a", "gone", TaskStatus::new(bits::FAILED, 20));
        finish(&mut store, "b", "n1", TaskStatus::new(bits::INCOMPLETE, 20));
        let read = store.snapshot().unwrap();
        let kept = read.tallies(|node| node != "n1").unwrap().unwrap();
        assert_eq!(kept.nodes, vec!["gone".to_string()]);
        assert_eq!(read.bits("a", "gone").unwrap(), Some(bits::FAILED));
        assert_eq!(read.bits("b", "gone").unwrap(), None);
        let mut seen = Vec::new();
        read.each_of_job("a", |node, bits| seen.push((node.to_string(), bits)))
            .unwrap();
        seen.sort();
        assert_eq!(
            seen,
            vec![("gone".into(), bits::FAILED), ("n1".into(), bits::DONE)]
        );
        assert_eq!(
            read.row("b", "n1").unwrap().map(|r| r.status.bits),
            Some(bits::INCOMPLETE)
        );
        assert_eq!(read.row("b", "n2").unwrap(), None);
    }
}
