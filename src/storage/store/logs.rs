//! The task-log database (bistro-runtime §3): tables `stdout`, `stderr` and `statuses`
//! (lifecycle events), each `(job_id, node_id, time_and_count, line)`.
//!
//! A line's id is `(unix_seconds << 32) | count`. Bistro counts per writer and so can
//! collide when several processes write one file; we allocate ids inside the write
//! transaction from the largest id in all three tables, so ids never collide, whatever
//! the number of writers, and order lines across the three tables.

use super::{open, sql_err, StoreError};
use rusqlite::{params_from_iter, Connection, TransactionBehavior};
use std::path::{Path, PathBuf};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS stdout (job_id TEXT, node_id TEXT, time_and_count INTEGER PRIMARY KEY, line TEXT);
CREATE INDEX IF NOT EXISTS stdout_job_node_idx ON stdout (job_id, node_id);
CREATE TABLE IF NOT EXISTS stderr (job_id TEXT, node_id TEXT, time_and_count INTEGER PRIMARY KEY, line TEXT);
CREATE INDEX IF NOT EXISTS stderr_job_node_idx ON stderr (job_id, node_id);
CREATE TABLE IF NOT EXISTS statuses (job_id TEXT, node_id TEXT, time_and_count INTEGER PRIMARY KEY, line TEXT);
CREATE INDEX IF NOT EXISTS statuses_job_node_idx ON statuses (job_id, node_id);
";

/// Which log a line belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogKind {
    /// The task's standard output.
    Stdout,
    /// The task's standard error.
    Stderr,
    /// Lifecycle events (JSON objects).
    Statuses,
}

impl LogKind {
    /// All kinds.
    pub const ALL: [LogKind; 3] = [LogKind::Stdout, LogKind::Stderr, LogKind::Statuses];

    /// The table (and stream) name.
    pub fn table(self) -> &'static str {
        match self {
            LogKind::Stdout => "stdout",
            LogKind::Stderr => "stderr",
            LogKind::Statuses => "statuses",
        }
    }

    /// Parses a table name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.table() == name)
    }
}

/// A line to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Its log.
    pub kind: LogKind,
    /// Job name.
    pub job: String,
    /// Node name.
    pub node: String,
    /// Epoch seconds when it was read.
    pub time: i64,
    /// The text as the task wrote it: a task's output line keeps its newline (a last
    /// line without one, or a piece of an over-long line, has none); an event is a
    /// JSON object. Lines stored before newlines were kept have none.
    pub line: String,
}

/// A stored line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRow {
    /// Its log.
    pub kind: LogKind,
    /// Job name.
    pub job: String,
    /// Node name.
    pub node: String,
    /// `(time << 32) | count`, unique across the three tables.
    pub id: i64,
    /// The text.
    pub line: String,
}

impl LogRow {
    /// Epoch seconds of the line.
    pub fn time(&self) -> i64 {
        self.id >> 32
    }
}

/// A log query: lines after an id, newest or oldest first.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Logs to read (empty: all).
    pub kinds: Vec<LogKind>,
    /// Only these jobs (empty: all).
    pub jobs: Vec<String>,
    /// Only these nodes (empty: all).
    pub nodes: Vec<String>,
    /// Only ids greater than this.
    pub after_id: Option<i64>,
    /// At most this many lines (the newest ones when `newest`).
    pub limit: Option<usize>,
    /// Take the newest lines (still returned oldest first).
    pub newest: bool,
}

/// A page request over one log (see [`LogStore::page`]).
#[derive(Debug, Clone)]
pub struct PageQuery {
    /// The log.
    pub kind: LogKind,
    /// Only these jobs (empty: all).
    pub jobs: Vec<String>,
    /// Only these nodes (empty: all).
    pub nodes: Vec<String>,
    /// The first id to include (`>=` ascending, `<=` descending); None: from the end.
    pub from: Option<i64>,
    /// Oldest first.
    pub ascending: bool,
    /// At most this many rows.
    pub limit: usize,
}

/// Which lines of one log a query reads, in which order.
struct Filter<'a> {
    kind: LogKind,
    jobs: &'a [String],
    nodes: &'a [String],
    /// An SQL comparison (`>`, `>=`, `<=`) of line ids against an id.
    bound: Option<(&'static str, i64)>,
    descending: bool,
    limit: Option<usize>,
}

/// The task-log database.
pub struct LogStore {
    conn: Connection,
    path: PathBuf,
}

impl LogStore {
    /// Opens the database for a supervisor, which must not block on it: a write
    /// waits at most `busy` for another writer (then fails busy, to be tried again),
    /// and closing it does not checkpoint the WAL, which would cost every supervisor
    /// an fsync-heavy checkpoint; long-lived connections and SQLite's auto-checkpoint
    /// do that work.
    pub fn open_appender(path: &Path, busy: std::time::Duration) -> Result<Self, StoreError> {
        let store = Self::open(path)?;
        store
            .conn
            .set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            )
            .and_then(|_| store.conn.busy_timeout(busy))
            .map_err(sql_err(path, "configuring the connection"))?;
        Ok(store)
    }

    /// Opens the database at `path` to read it; on a full file system, read-only
    /// (see [`open_for_reading`](super::open_for_reading)).
    pub fn open_for_reading(path: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            conn: super::open_for_reading(path, SCHEMA, 1)?,
            path: path.to_path_buf(),
        })
    }

    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            conn: open(path, SCHEMA, 1)?,
            path: path.to_path_buf(),
        })
    }

    /// Appends lines in one transaction; returns their ids.
    pub fn append(&mut self, lines: &[LogLine]) -> Result<Vec<i64>, StoreError> {
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        let err = || sql_err(&self.path, "writing task logs");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err())?;
        let mut next: i64 = tx
            .prepare_cached(
                "SELECT MAX(IFNULL((SELECT MAX(time_and_count) FROM stdout), -1),
                            IFNULL((SELECT MAX(time_and_count) FROM stderr), -1),
                            IFNULL((SELECT MAX(time_and_count) FROM statuses), -1)) + 1",
            )
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(err())?;
        let mut ids = Vec::with_capacity(lines.len());
        for line in lines {
            let id = next.max(line.time << 32);
            next = id + 1;
            let sql = match line.kind {
                LogKind::Stdout => "INSERT INTO stdout (job_id, node_id, time_and_count, line) VALUES (?1, ?2, ?3, ?4)",
                LogKind::Stderr => "INSERT INTO stderr (job_id, node_id, time_and_count, line) VALUES (?1, ?2, ?3, ?4)",
                LogKind::Statuses => "INSERT INTO statuses (job_id, node_id, time_and_count, line) VALUES (?1, ?2, ?3, ?4)",
            };
            tx.prepare_cached(sql)
                .and_then(|mut s| s.execute(rusqlite::params![line.job, line.node, id, line.line]))
                .map_err(err())?;
            ids.push(id);
        }
        tx.commit().map_err(err())?;
        Ok(ids)
    }

    /// Reads lines, merged across the requested logs, oldest first.
    pub fn query(&self, q: &LogQuery) -> Result<Vec<LogRow>, StoreError> {
        let kinds = if q.kinds.is_empty() {
            LogKind::ALL.to_vec()
        } else {
            q.kinds.clone()
        };
        let mut rows = Vec::new();
        for kind in kinds {
            let filter = Filter {
                kind,
                jobs: &q.jobs,
                nodes: &q.nodes,
                bound: q.after_id.map(|id| (">", id)),
                descending: q.newest,
                limit: q.limit,
            };
            rows.extend(self.select(&filter)?);
        }
        rows.sort_by_key(|r| r.id);
        if let Some(limit) = q.limit {
            if q.newest && rows.len() > limit {
                rows.drain(..rows.len() - limit);
            } else {
                rows.truncate(limit);
            }
        }
        Ok(rows)
    }

    /// One page of one log in id order (ascending or descending) starting at `from`
    /// inclusive, at most `limit` rows: the primitive of Bistro's `getJobLogs`.
    pub fn page(&self, q: &PageQuery) -> Result<Vec<LogRow>, StoreError> {
        let mut rows = Vec::new();
        self.page_each(q, |row| {
            rows.push(row);
            true
        })?;
        Ok(rows)
    }

    /// The rows of [`page`](Self::page), handed to `each` one at a time as SQLite
    /// reads them, until it returns false: a large page is never held whole.
    pub fn page_each(
        &self,
        q: &PageQuery,
        each: impl FnMut(LogRow) -> bool,
    ) -> Result<(), StoreError> {
        self.select_each(
            &Filter {
                kind: q.kind,
                jobs: &q.jobs,
                nodes: &q.nodes,
                bound: q.from.map(|id| (if q.ascending { ">=" } else { "<=" }, id)),
                descending: !q.ascending,
                limit: Some(q.limit),
            },
            each,
        )
    }

    /// The lines of one log that pass `f`, in its order.
    fn select(&self, f: &Filter) -> Result<Vec<LogRow>, StoreError> {
        let mut rows = Vec::new();
        self.select_each(f, |row| {
            rows.push(row);
            true
        })?;
        Ok(rows)
    }

    /// Hands the lines of one log that pass `f`, in its order, to `each` until it
    /// returns false.
    fn select_each(
        &self,
        f: &Filter,
        mut each: impl FnMut(LogRow) -> bool,
    ) -> Result<(), StoreError> {
        let mut sql = format!(
            "SELECT job_id, node_id, time_and_count, line FROM {} WHERE 1",
            f.kind.table()
        );
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        for (column, values) in [("job_id", f.jobs), ("node_id", f.nodes)] {
            if !values.is_empty() {
                sql.push_str(&format!(
                    " AND {column} IN ({})",
                    vec!["?"; values.len()].join(",")
                ));
                args.extend(values.iter().cloned().map(rusqlite::types::Value::Text));
            }
        }
        if let Some((op, id)) = f.bound {
            sql.push_str(&format!(" AND time_and_count {op} ?"));
            args.push(rusqlite::types::Value::Integer(id));
        }
        sql.push_str(if f.descending {
            " ORDER BY time_and_count DESC"
        } else {
            " ORDER BY time_and_count ASC"
        });
        if let Some(limit) = f.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let err = || sql_err(&self.path, "reading task logs");
        let mut stmt = self.conn.prepare(&sql).map_err(err())?;
        let mut rows = stmt.query(params_from_iter(args)).map_err(err())?;
        while let Some(r) = rows.next().map_err(err())? {
            let row = LogRow {
                kind: f.kind,
                job: r
                    .get::<_, Option<String>>(0)
                    .map_err(err())?
                    .unwrap_or_default(),
                node: r
                    .get::<_, Option<String>>(1)
                    .map_err(err())?
                    .unwrap_or_default(),
                id: r.get(2).map_err(err())?,
                line: r
                    .get::<_, Option<String>>(3)
                    .map_err(err())?
                    .unwrap_or_default(),
            };
            if !each(row) {
                break;
            }
        }
        Ok(())
    }

    /// Deletes lines older than `before` (epoch seconds); returns how many. Works in
    /// small transactions so supervisors writing logs meanwhile are never starved.
    pub fn prune(&mut self, before: i64) -> Result<usize, StoreError> {
        const CHUNK: usize = 5000;
        let mut removed = 0;
        for kind in LogKind::ALL {
            let sql = format!(
                "DELETE FROM {t} WHERE time_and_count IN
                   (SELECT time_and_count FROM {t} WHERE time_and_count < ?1 LIMIT {CHUNK})",
                t = kind.table()
            );
            loop {
                let n = self
                    .conn
                    .execute(&sql, [before << 32])
                    .map_err(sql_err(&self.path, "pruning task logs"))?;
                removed += n;
                if n < CHUNK {
                    break;
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(kind: LogKind, node: &str, time: i64, text: &str) -> LogLine {
        LogLine {
            kind,
            job: "j".into(),
            node: node.into(),
            time,
            line: text.into(),
        }
    }

    #[test]
    fn two_writers_never_collide_and_lines_merge_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("task_logs.sql3");
        let mut a = LogStore::open(&path).unwrap();
        let mut b = LogStore::open(&path).unwrap();
        let ids_a = a
            .append(&[
                line(LogKind::Stdout, "n1", 100, "a1"),
                line(LogKind::Stderr, "n1", 100, "a2"),
            ])
            .unwrap();
        let ids_b = b.append(&[line(LogKind::Stdout, "n2", 100, "b1")]).unwrap();
        assert_eq!(ids_a, vec![100 << 32, (100 << 32) + 1]);
        assert_eq!(ids_b, vec![(100 << 32) + 2]);
        let all = a.query(&LogQuery::default()).unwrap();
        assert_eq!(
            all.iter().map(|r| r.line.as_str()).collect::<Vec<_>>(),
            vec!["a1", "a2", "b1"]
        );
        assert_eq!(all[0].time(), 100);
        let n2 = a
            .query(&LogQuery {
                nodes: vec!["n2".into()],
                ..Default::default()
            })
            .unwrap();
        assert_eq!(n2.len(), 1);
        let last = a
            .query(&LogQuery {
                limit: Some(1),
                newest: true,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(last[0].line, "b1");
        let after = a
            .query(&LogQuery {
                after_id: Some(ids_a[0]),
                kinds: vec![LogKind::Stdout],
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            after.iter().map(|r| r.line.as_str()).collect::<Vec<_>>(),
            vec!["b1"]
        );
    }

    #[test]
    fn pages_start_inclusive_in_either_direction() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LogStore::open(&dir.path().join("l.sql3")).unwrap();
        let ids = s
            .append(&[
                line(LogKind::Stdout, "n1", 10, "a"),
                line(LogKind::Stderr, "n1", 10, "other log"),
                line(LogKind::Stdout, "n2", 11, "b"),
                line(LogKind::Stdout, "n1", 12, "c"),
            ])
            .unwrap();
        let page = |from, ascending, nodes: &[&str]| -> Vec<String> {
            s.page(&PageQuery {
                kind: LogKind::Stdout,
                jobs: vec!["j".into()],
                nodes: nodes.iter().map(|n| n.to_string()).collect(),
                from,
                ascending,
                limit: 2,
            })
            .unwrap()
            .into_iter()
            .map(|r| r.line)
            .collect()
        };
        assert_eq!(page(None, true, &[]), vec!["a", "b"]);
        assert_eq!(page(None, false, &[]), vec!["c", "b"]);
        assert_eq!(page(Some(ids[2]), true, &[]), vec!["b", "c"]);
        assert_eq!(page(Some(ids[2]), false, &[]), vec!["b", "a"]);
        assert_eq!(page(None, true, &["n1"]), vec!["a", "c"]);
    }

    #[test]
    fn pruning_removes_old_lines_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LogStore::open(&dir.path().join("l.sql3")).unwrap();
        s.append(&[
            line(LogKind::Stdout, "n", 10, "old"),
            line(LogKind::Statuses, "n", 50, "new"),
        ])
        .unwrap();
        assert_eq!(s.prune(20).unwrap(), 1);
        assert_eq!(s.query(&LogQuery::default()).unwrap()[0].line, "new");
    }
}
