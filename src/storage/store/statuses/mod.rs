//! The status database: one row per task that ever ran, one per running task, and
//! `meta` (the config in force, the last node list, remembered flags).
//!
//! Unlike Bistro, which keeps only done/failed, every status is stored with its data,
//! backoff and attempt count, so `prev_status` and backoff survive restarts.
//!
//! Triggers keep two tallies of `task_statuses` in the transaction of every write
//! (so they hold after a crash at any instant, whoever writes): `status_counts`,
//! rows per (job, bits), and `status_nodes`, rows per node. `status` reads them
//! instead of every row (see [`StatusSnapshot`]).

mod summary;

pub use summary::{StatusSnapshot, Tallies};

use super::{open, sql_err, StoreError};
use crate::foundation::status::TaskStatus;
use crate::model::task::{InvocationId, RunningTask};
use crate::scheduler::Statuses;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};

/// The tables; `status_counts` and `status_nodes` are the tallies.
const TABLES: &str = "
CREATE TABLE IF NOT EXISTS task_statuses (
    job TEXT NOT NULL, node TEXT NOT NULL, bits INTEGER NOT NULL, time INTEGER NOT NULL,
    backoff INTEGER NOT NULL DEFAULT 0, data TEXT, attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job, node)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS running_tasks (
    job TEXT NOT NULL, node TEXT NOT NULL, invocation TEXT NOT NULL UNIQUE, task TEXT NOT NULL,
    PRIMARY KEY (job, node)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS status_counts (
    job TEXT NOT NULL, bits INTEGER NOT NULL, tasks INTEGER NOT NULL,
    PRIMARY KEY (job, bits)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS status_nodes (
    node TEXT NOT NULL PRIMARY KEY, tasks INTEGER NOT NULL) WITHOUT ROWID;
";

/// Keeps the tallies as rows are deleted (apart, so that clearing every status can do
/// without it: a trigger per row would make that many times slower). A tally that
/// falls to 0 stays, as the same task's next status would bring it back at once.
const UNCOUNTED_TRIGGER: &str = "
CREATE TRIGGER IF NOT EXISTS task_statuses_uncounted AFTER DELETE ON task_statuses BEGIN
    UPDATE status_counts SET tasks = tasks - 1 WHERE job = OLD.job AND bits = OLD.bits;
    UPDATE status_nodes SET tasks = tasks - 1 WHERE node = OLD.node;
END;
";

/// The other tally triggers, then the tallies filled from the rows (for a database
/// that had none). An update that keeps the job, bits and node touches no tally.
const TALLIES: &str = "
CREATE TRIGGER IF NOT EXISTS task_statuses_counted AFTER INSERT ON task_statuses BEGIN
    INSERT INTO status_counts (job, bits, tasks) VALUES (NEW.job, NEW.bits, 1)
        ON CONFLICT (job, bits) DO UPDATE SET tasks = tasks + 1;
    INSERT INTO status_nodes (node, tasks) VALUES (NEW.node, 1)
        ON CONFLICT (node) DO UPDATE SET tasks = tasks + 1;
END;
CREATE TRIGGER IF NOT EXISTS task_statuses_recounted AFTER UPDATE OF job, bits ON task_statuses
WHEN OLD.job IS NOT NEW.job OR OLD.bits IS NOT NEW.bits BEGIN
    UPDATE status_counts SET tasks = tasks - 1 WHERE job = OLD.job AND bits = OLD.bits;
    INSERT INTO status_counts (job, bits, tasks) VALUES (NEW.job, NEW.bits, 1)
        ON CONFLICT (job, bits) DO UPDATE SET tasks = tasks + 1;
END;
CREATE TRIGGER IF NOT EXISTS task_statuses_renoded AFTER UPDATE OF node ON task_statuses
WHEN OLD.node IS NOT NEW.node BEGIN
    UPDATE status_nodes SET tasks = tasks - 1 WHERE node = OLD.node;
    INSERT INTO status_nodes (node, tasks) VALUES (NEW.node, 1)
        ON CONFLICT (node) DO UPDATE SET tasks = tasks + 1;
END;
DELETE FROM status_counts;
INSERT INTO status_counts (job, bits, tasks)
    SELECT job, bits, count(*) FROM task_statuses GROUP BY job, bits;
DELETE FROM status_nodes;
INSERT INTO status_nodes (node, tasks) SELECT node, count(*) FROM task_statuses GROUP BY node;
";

/// Makes a `meta` table made `WITHOUT ROWID` (before 2026-11-28) one with rowids, its
/// values stored apart from its keys. In a `WITHOUT ROWID` table each key sits with its
/// value, and finding any key read the whole node list stored beside it (hundreds of
/// kilobytes, twice per daemon iteration). The same queries work on both, so this is
/// no new schema version: an older bistro still opens the database.
const META_WITH_ROWIDS: &str = "
CREATE TABLE meta_with_rowids (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta_with_rowids (key, value) SELECT key, value FROM meta;
DROP TABLE meta;
ALTER TABLE meta_with_rowids RENAME TO meta;
";

/// The schema's version: 2 added the tallies (filled from the rows when a version 1
/// database is opened).
const VERSION: i64 = 2;

/// A stored status with its attempt count.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusRow {
    /// Job name.
    pub job: String,
    /// Node name.
    pub node: String,
    /// The status.
    pub status: TaskStatus,
    /// How many times the task was started.
    pub attempts: i64,
}

/// The status database.
pub struct StatusStore {
    conn: Connection,
    path: PathBuf,
}

impl StatusStore {
    /// Opens the database at `path` to read it; on a full file system, read-only
    /// (see [`open_for_reading`](super::open_for_reading)).
    pub fn open_for_reading(path: &Path) -> Result<Self, StoreError> {
        Self {
            conn: super::open_for_reading(
                path,
                &format!("{TABLES}{UNCOUNTED_TRIGGER}{TALLIES}"),
                VERSION,
            )?,
            path: path.to_path_buf(),
        }
        .with_meta_rowids()
    }

    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self {
            conn: open(
                path,
                &format!("{TABLES}{UNCOUNTED_TRIGGER}{TALLIES}"),
                VERSION,
            )?,
            path: path.to_path_buf(),
        }
        .with_meta_rowids()
    }

    /// Converts a `meta` table without rowids (see [`META_WITH_ROWIDS`]), once: the
    /// check is made again inside the write transaction, as two processes may open
    /// the database at once.
    fn with_meta_rowids(mut self) -> Result<Self, StoreError> {
        let path = self.path.clone();
        let err = |e| sql_err(&path, "giving the meta table rowids")(e);
        let without_rowids = |conn: &Connection| -> rusqlite::Result<bool> {
            let sql: Option<String> = conn
                .query_row(
                    "SELECT sql FROM sqlite_master WHERE name = 'meta'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(sql.is_some_and(|sql| sql.to_ascii_uppercase().contains("WITHOUT ROWID")))
        };
        if !without_rowids(&self.conn).map_err(err)? {
            return Ok(self);
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        if without_rowids(&tx).map_err(err)? {
            tx.execute_batch(META_WITH_ROWIDS).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(self)
    }

    fn corrupt(&self, table: &'static str, message: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            table,
            message,
        }
    }

    /// SQLite's `data_version` of this connection: it changes when another
    /// connection commits a write, so what this one read before is still current
    /// while it does not change.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        self.conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)))
            .map_err(sql_err(&self.path, "reading the database's version"))
    }

    /// Every stored status.
    pub fn load(&self) -> Result<Vec<StatusRow>, StoreError> {
        let err = sql_err(&self.path, "reading task statuses");
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT job, node, bits, time, backoff, data, attempts FROM task_statuses",
            )
            .map_err(sql_err(&self.path, "reading task statuses"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, u32>(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get(6)?,
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(err)?;
        rows.into_iter()
            .map(|(job, node, bits, time, backoff, data, attempts)| {
                self.decode_row(job, node, bits, time, backoff, data, attempts)
            })
            .collect()
    }

    /// A stored status from its columns.
    #[allow(clippy::too_many_arguments)]
    fn decode_row(
        &self,
        job: String,
        node: String,
        bits: u32,
        time: i64,
        backoff: i64,
        data: Option<String>,
        attempts: i64,
    ) -> Result<StatusRow, StoreError> {
        let data = match data {
            None => None,
            Some(text) => Some(
                serde_json::from_str(&text)
                    .map_err(|e| self.corrupt("task_statuses", format!("{job}/{node}: {e}")))?,
            ),
        };
        Ok(StatusRow {
            job,
            node,
            status: TaskStatus {
                bits,
                data,
                time,
                backoff,
            },
            attempts,
        })
    }

    /// Every stored status, as the scheduler looks them up. Rows go straight into
    /// the lookup, read in place: nothing is allocated per row but its status.
    pub fn load_statuses(&self) -> Result<Statuses, StoreError> {
        let err = |e| sql_err(&self.path, "reading task statuses")(e);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT job, node, bits, time, backoff, data, attempts FROM task_statuses",
            )
            .map_err(err)?;
        let mut rows = stmt.query([]).map_err(err)?;
        let mut statuses = Statuses::default();
        while let Some(r) = rows.next().map_err(err)? {
            let job = r.get_ref(0).and_then(|v| Ok(v.as_str()?)).map_err(err)?;
            let node = r.get_ref(1).and_then(|v| Ok(v.as_str()?)).map_err(err)?;
            let data = match r
                .get_ref(5)
                .map_err(err)?
                .as_str_or_null()
                .map_err(|e| err(e.into()))?
            {
                None => None,
                Some(text) => Some(
                    serde_json::from_str(text)
                        .map_err(|e| self.corrupt("task_statuses", format!("{job}/{node}: {e}")))?,
                ),
            };
            let status = TaskStatus {
                bits: r.get(2).map_err(err)?,
                data,
                time: r.get(3).map_err(err)?,
                backoff: r.get(4).map_err(err)?,
            };
            // The key is (job, node): each row is a task's only one.
            statuses.insert_new(job, node, status, r.get(6).map_err(err)?);
        }
        Ok(statuses)
    }

    /// Every running task.
    pub fn running(&self) -> Result<Vec<RunningTask>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT job, node, invocation, task FROM running_tasks ORDER BY invocation",
            )
            .map_err(sql_err(&self.path, "reading running tasks"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sql_err(&self.path, "reading running tasks"))?;
        rows.iter()
            .map(|(job, node, invocation, text)| self.decode_running(job, node, invocation, text))
            .collect()
    }

    fn decode_running(
        &self,
        job: &str,
        node: &str,
        invocation: &str,
        text: &str,
    ) -> Result<RunningTask, StoreError> {
        serde_json::from_str(text).map_err(|e| {
            self.corrupt(
                "running_tasks",
                format!("{job}/{node} (invocation {invocation}): {e}; delete that row to let the task run again"),
            )
        })
    }

    /// Records tasks as running, all or none. Fails if any of them already runs.
    /// None to record writes nothing (a scheduler's iteration often starts nothing).
    pub fn claim(&mut self, tasks: &[RunningTask]) -> Result<(), StoreError> {
        if tasks.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err(&self.path, "recording running tasks"))?;
        {
            let mut stmt = tx
                .prepare_cached("INSERT INTO running_tasks (job, node, invocation, task) VALUES (?1, ?2, ?3, ?4)")
                .map_err(sql_err(&self.path, "recording running tasks"))?;
            for t in tasks {
                let json = serde_json::to_string(t).expect("running tasks serialize");
                stmt.execute(params![t.job, t.node, t.invocation.to_string(), json])
                    .map_err(sql_err(&self.path, "recording running tasks"))?;
            }
        }
        tx.commit()
            .map_err(sql_err(&self.path, "recording running tasks"))
    }

    /// Stores final statuses and removes the tasks from the running table, in one
    /// transaction. `None` releases a run that never started, leaving its stored status
    /// alone. A task whose running row has another invocation is left alone. None to
    /// record writes nothing (a scheduler's iteration often has none).
    pub fn finish(
        &mut self,
        results: &[(RunningTask, Option<TaskStatus>)],
    ) -> Result<(), StoreError> {
        if results.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err(&self.path, "recording statuses"))?;
        {
            let mut delete = tx
                .prepare_cached(
                    "DELETE FROM running_tasks WHERE job = ?1 AND node = ?2 AND invocation = ?3",
                )
                .map_err(sql_err(&self.path, "recording statuses"))?;
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO task_statuses (job, node, bits, time, backoff, data, attempts)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (job, node) DO UPDATE SET bits = excluded.bits,
                        time = excluded.time, backoff = excluded.backoff,
                        data = excluded.data, attempts = excluded.attempts",
                )
                .map_err(sql_err(&self.path, "recording statuses"))?;
            for (task, status) in results {
                let removed = delete
                    .execute(params![task.job, task.node, task.invocation.to_string()])
                    .map_err(sql_err(&self.path, "recording statuses"))?;
                if let (1, Some(status)) = (removed, status) {
                    let data = status
                        .data
                        .as_ref()
                        .map(|d| serde_json::to_string(d).expect("JSON serializes"));
                    upsert
                        .execute(params![
                            task.job,
                            task.node,
                            status.bits,
                            status.time,
                            status.backoff,
                            data,
                            task.attempts
                        ])
                        .map_err(sql_err(&self.path, "recording statuses"))?;
                }
            }
        }
        tx.commit()
            .map_err(sql_err(&self.path, "recording statuses"))
    }

    /// Stores statuses that arrived for runs already ended here, each only where the
    /// stored status is a stand-in (OVERWRITEABLE, e.g. `worker lost`) and no run of
    /// the task is recorded as running. Returns the rows that were stored.
    pub fn replace_overwriteable<'a>(
        &mut self,
        rows: &'a [StatusRow],
    ) -> Result<Vec<&'a StatusRow>, StoreError> {
        let err = || sql_err(&self.path, "recording late statuses");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err())?;
        let mut stored = Vec::new();
        {
            let mut update = tx
                .prepare_cached(
                    "UPDATE task_statuses SET bits = ?3, time = ?4, backoff = ?5, data = ?6
                     WHERE job = ?1 AND node = ?2 AND (bits & ?7) != 0
                       AND NOT EXISTS (SELECT 1 FROM running_tasks WHERE job = ?1 AND node = ?2)",
                )
                .map_err(err())?;
            for row in rows {
                let status = &row.status;
                let data = status
                    .data
                    .as_ref()
                    .map(|d| serde_json::to_string(d).expect("JSON serializes"));
                let changed = update
                    .execute(params![
                        row.job,
                        row.node,
                        status.bits,
                        status.time,
                        status.backoff,
                        data,
                        crate::foundation::status::bits::OVERWRITEABLE
                    ])
                    .map_err(err())?;
                if changed == 1 {
                    stored.push(row);
                }
            }
        }
        tx.commit().map_err(err())?;
        Ok(stored)
    }

    /// The running task with this invocation id, if it is still recorded.
    pub fn running_invocation(
        &self,
        invocation: InvocationId,
    ) -> Result<Option<RunningTask>, StoreError> {
        let row: Option<(String, String, String)> = self
            .conn
            .query_row(
                "SELECT job, node, task FROM running_tasks WHERE invocation = ?1",
                [invocation.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(sql_err(&self.path, "reading running tasks"))?;
        row.map(|(job, node, text)| {
            self.decode_running(&job, &node, &invocation.to_string(), &text)
        })
        .transpose()
    }

    /// Reads a `meta` value.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")
            .and_then(|mut stmt| stmt.query_row([key], |r| r.get(0)).optional())
            .map_err(sql_err(&self.path, "reading state metadata"))
    }

    /// Writes `meta` values in one transaction.
    pub fn set_meta(&mut self, pairs: &[(&str, &str)]) -> Result<(), StoreError> {
        if pairs.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err(&self.path, "writing state metadata"))?;
        {
            let mut upsert = tx
                .prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")
                .map_err(sql_err(&self.path, "writing state metadata"))?;
            for (key, value) in pairs {
                upsert
                    .execute(params![key, value])
                    .map_err(sql_err(&self.path, "writing state metadata"))?;
            }
        }
        tx.commit()
            .map_err(sql_err(&self.path, "writing state metadata"))
    }

    /// Deletes every stored status (running tasks stay recorded), so every task is
    /// eligible again: `daemon --clean-statuses`. Returns how many were deleted.
    /// The tallies are emptied with the rows, in the same transaction.
    pub fn clear_statuses(&mut self) -> Result<usize, StoreError> {
        let err = || sql_err(&self.path, "clearing task statuses");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err())?;
        tx.execute_batch("DROP TRIGGER task_statuses_uncounted")
            .map_err(err())?;
        let cleared = tx.execute("DELETE FROM task_statuses", []).map_err(err())?;
        tx.execute_batch("DELETE FROM status_counts; DELETE FROM status_nodes;")
            .map_err(err())?;
        tx.execute_batch(UNCOUNTED_TRIGGER).map_err(err())?;
        tx.commit().map_err(err())?;
        Ok(cleared)
    }

    /// Releases the stored statuses of `jobs` (on `nodes` only, unless it is empty)
    /// from permanent failure and backoff, in one transaction. Returns how many changed.
    pub fn forgive(&mut self, jobs: &[String], nodes: &[String]) -> Result<usize, StoreError> {
        let err = || sql_err(&self.path, "forgiving task statuses");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err())?;
        let mut changed = 0;
        {
            let mut select = tx
                .prepare_cached(
                    "SELECT node, bits, time, backoff, data FROM task_statuses WHERE job = ?1",
                )
                .map_err(err())?;
            let mut update = tx
                .prepare_cached(
                    "UPDATE task_statuses SET bits = ?3, backoff = ?4, data = ?5
                     WHERE job = ?1 AND node = ?2",
                )
                .map_err(err())?;
            for job in jobs {
                let rows = select
                    .query_map([job], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, u32>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, Option<String>>(4)?,
                        ))
                    })
                    .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                    .map_err(err())?;
                for (node, bits, time, backoff, data) in rows {
                    if !nodes.is_empty() && !nodes.contains(&node) {
                        continue;
                    }
                    let data = data
                        .map(|text| serde_json::from_str(&text))
                        .transpose()
                        .map_err(|e| StoreError::Corrupt {
                            path: self.path.clone(),
                            table: "task_statuses",
                            message: format!("{job}/{node}: {e}"),
                        })?;
                    let before = TaskStatus {
                        bits,
                        data,
                        time,
                        backoff,
                    };
                    let mut after = before.clone();
                    crate::foundation::status::forgive(&mut after);
                    if after != before {
                        let data = after
                            .data
                            .as_ref()
                            .map(|d| serde_json::to_string(d).expect("JSON serializes"));
                        update
                            .execute(params![job, node, after.bits, after.backoff, data])
                            .map_err(err())?;
                        changed += 1;
                    }
                }
            }
        }
        tx.commit().map_err(err())?;
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundation::status::{bits, BackoffDuration};

    /// A running task of (job, node) for the store's tests.
    pub(super) fn task(job: &str, node: &str, rand: u64) -> RunningTask {
        RunningTask {
            job: job.into(),
            node: node.into(),
            invocation: InvocationId {
                start_time: 10,
                rand,
            },
            charges: Vec::new(),
            next_backoff: BackoffDuration::new(15),
            attempts: 1,
            worker_shard: "local".into(),
            timeout_sec: None,
        }
    }

    #[test]
    fn statuses_and_running_tasks_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("statuses.sql3");
        let mut store = StatusStore::open(&path).unwrap();
        store
            .claim(&[task("a", "n1", 1), task("a", "n2", 2)])
            .unwrap();
        assert!(
            store.claim(&[task("a", "n1", 3)]).is_err(),
            "a running task cannot be claimed twice"
        );
        let mut s = TaskStatus::error_backoff("boom", 20);
        s.backoff = 15;
        store
            .finish(&[(task("a", "n1", 1), Some(s.clone()))])
            .unwrap();
        store
            .finish(&[(task("a", "n2", 99), Some(TaskStatus::new(bits::DONE, 20)))])
            .unwrap();
        drop(store);
        let store = StatusStore::open(&path).unwrap();
        let rows = store.load().unwrap();
        assert_eq!(
            rows,
            vec![StatusRow {
                job: "a".into(),
                node: "n1".into(),
                status: s,
                attempts: 1
            }]
        );
        assert_eq!(
            store.running().unwrap(),
            vec![task("a", "n2", 2)],
            "a stale invocation does not finish a task"
        );
    }

    #[test]
    fn forgiveness_releases_failures_and_backoff_durably_and_only_where_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("statuses.sql3");
        let mut store = StatusStore::open(&path).unwrap();
        let mut backoff = TaskStatus::error_backoff("boom", 20);
        backoff.backoff = 15;
        let failed = TaskStatus::new(bits::FAILED, 20);
        store
            .claim(&[task("a", "n1", 1), task("a", "n2", 2), task("b", "n1", 3)])
            .unwrap();
        store
            .finish(&[
                (task("a", "n1", 1), Some(backoff.clone())),
                (task("a", "n2", 2), Some(failed.clone())),
                (task("b", "n1", 3), Some(failed.clone())),
            ])
            .unwrap();
        assert_eq!(store.forgive(&["a".into()], &["n2".into()]).unwrap(), 1);
        assert_eq!(store.forgive(&["a".into()], &[]).unwrap(), 1);
        assert_eq!(
            store.forgive(&["a".into()], &[]).unwrap(),
            0,
            "nothing left"
        );
        drop(store);
        let statuses = StatusStore::open(&path).unwrap().load_statuses().unwrap();
        let a1 = statuses.get("a", "n1").unwrap();
        assert!(!a1.in_backoff(21) && !a1.is_failed(), "{a1:?}");
        let a2 = statuses.get("a", "n2").unwrap();
        assert!(!a2.is_failed() && a2.has(bits::ERROR), "{a2:?}");
        assert!(
            statuses.get("b", "n1").unwrap().is_failed(),
            "job b untouched"
        );
    }

    /// Bistro's test_sqlite_task_store HandleAll.
    #[test]
    fn an_empty_store_has_no_rows_and_then_returns_what_was_stored() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StatusStore::open(&dir.path().join("statuses.sql3")).unwrap();
        assert!(store.load().unwrap().is_empty());
        store
            .claim(&[task("a", "node1", 1), task("a", "node2", 2)])
            .unwrap();
        store
            .finish(&[
                (task("a", "node1", 1), Some(TaskStatus::new(bits::DONE, 20))),
                (
                    task("a", "node2", 2),
                    Some(TaskStatus::new(bits::FAILED, 20)),
                ),
            ])
            .unwrap();
        let rows: Vec<(String, String, u32)> = store
            .load()
            .unwrap()
            .into_iter()
            .map(|r| (r.job, r.node, r.status.bits))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("a".into(), "node1".into(), bits::DONE),
                ("a".into(), "node2".into(), bits::FAILED)
            ]
        );
    }

    #[test]
    fn nothing_to_claim_or_finish_writes_nothing_and_waits_for_no_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("statuses.sql3");
        let mut store = StatusStore::open(&path).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let began = std::time::Instant::now();
        store.claim(&[]).unwrap();
        store.finish(&[]).unwrap();
        assert!(began.elapsed() < super::super::BUSY_TIMEOUT / 2);
        other.execute_batch("COMMIT").unwrap();
    }

    #[test]
    fn a_file_that_is_not_a_database_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("statuses.sql3");
        std::fs::write(&path, vec![b'x'; 4096]).unwrap();
        let err = StatusStore::open(&path).err().unwrap().to_string();
        assert!(
            err.contains("statuses.sql3") && err.contains("move it aside"),
            "{err}"
        );
    }
}
