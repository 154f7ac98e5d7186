//! The SQLite databases of a state directory: task statuses (with the running table and
//! a small key/value `meta` table, where [`LastTick`] is kept) and task logs.
//!
//! Every connection is opened the same way: WAL, `synchronous=NORMAL` (a committed
//! status survives any crash of ours; only a power cut may lose the last commits), a
//! busy timeout, `recursive_triggers` (so the row an `INSERT OR REPLACE` replaces
//! fires its delete trigger, which the status tallies need), and `BEGIN IMMEDIATE`
//! for writes so a writer never fails upgrading a read lock.

mod last_tick;
mod logs;
mod statuses;

pub use last_tick::LastTick;
pub use logs::{LogKind, LogLine, LogQuery, LogRow, LogStore, PageQuery};
pub use statuses::{StatusRow, StatusSnapshot, StatusStore, Tallies};

use crate::foundation::error::{ErrorKind, HasKind};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a connection waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A database problem, naming the file and what we were doing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("{path}: {op}: {source}{hint}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What we were doing.
        op: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
        /// What the user can do about it.
        hint: &'static str,
    },
    /// The file was written by a newer bistro.
    #[error("{path}: schema version {found} is newer than this bistro understands ({supported}); upgrade bistro")]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// Ours.
        supported: i64,
    },
    /// A stored value could not be decoded.
    #[error("{path}: corrupt row in {table}: {message}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// The table.
        table: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl HasKind for StoreError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Runtime
    }
}

impl StoreError {
    /// Another connection held the database for longer than this one waits.
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Sqlite { source, .. } if matches!(
            source.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        ))
    }
}

fn hint_for(e: &rusqlite::Error) -> &'static str {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => {
            " (the file is corrupt or not a SQLite database: move it aside to start fresh)"
        }
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            " (another process holds the database; try again)"
        }
        Some(rusqlite::ErrorCode::DiskFull) => {
            " (the disk is full: free space and try again; nothing was lost)"
        }
        Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen) => {
            " (check that the state directory is writable)"
        }
        _ => "",
    }
}

/// Wraps a SQLite error with the file and operation.
pub(crate) fn sql_err<'a>(
    path: &'a Path,
    op: &'static str,
) -> impl FnOnce(rusqlite::Error) -> StoreError + 'a {
    move |source| {
        let hint = hint_for(&source);
        StoreError::Sqlite {
            path: path.to_path_buf(),
            op,
            source,
            hint,
        }
    }
}

/// Opens a database with our pragmas and creates its schema (version `version`).
pub(crate) fn open(path: &Path, schema: &str, version: i64) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path).map_err(sql_err(path, "opening the database"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(sql_err(path, "setting the busy timeout"))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sql_err(path, "enabling WAL"))?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sql_err(path, "setting synchronous"))?;
    conn.pragma_update(None, "recursive_triggers", "ON")
        .map_err(sql_err(path, "enabling recursive triggers"))?;
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sql_err(path, "reading the schema version"))?;
    if found > version {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported: version,
        });
    }
    if found < version {
        // Asked again under the write lock: another process may have made the
        // schema meanwhile (making it twice is harmless, but recounts every tally).
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql_err(path, "creating the schema"))?;
        let found: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sql_err(path, "reading the schema version"))?;
        if found < version {
            tx.execute_batch(&format!("{schema} PRAGMA user_version = {version};"))
                .map_err(sql_err(path, "creating the schema"))?;
        }
        tx.commit().map_err(sql_err(path, "creating the schema"))?;
    }
    Ok(conn)
}
