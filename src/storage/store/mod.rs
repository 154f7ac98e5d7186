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
        hint: Box<str>,
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
    /// The file system of the database is full (of bytes or of inodes).
    pub fn is_no_space(&self) -> bool {
        matches!(self, Self::Sqlite { source, .. } if matches!(
            source.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DiskFull)
        ))
    }

    /// Another connection held the database for longer than this one waits.
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Sqlite { source, .. } if matches!(
            source.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        ))
    }
}

/// What the user can do about `e`, a failure on the database at `path`. A failure to
/// open or write is probed: a file is created beside the database, and if that fails
/// too its OS error is the true cause (SQLite only says "unable to open").
fn hint_for(e: &rusqlite::Error, path: &Path) -> String {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => {
            " (the file is corrupt or not a SQLite database: move it aside to start fresh)".into()
        }
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            " (another process holds the database; try again)".into()
        }
        Some(
            rusqlite::ErrorCode::DiskFull
            | rusqlite::ErrorCode::ReadOnly
            | rusqlite::ErrorCode::CannotOpen
            | rusqlite::ErrorCode::SystemIoFailure,
        ) => match cannot_create_beside(path) {
            Some(cause) => format!(" ({})", say_io_cause(&cause, path)),
            None => {
                " (check that the state directory is writable and its file system has free space)"
                    .into()
            }
        },
        _ => String::new(),
    }
}

/// The error of creating a new file of one page in `path`'s directory, if it fails
/// (a file needs an inode, a page needs free bytes).
pub(crate) fn cannot_create_beside(path: &Path) -> Option<std::io::Error> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let probe = dir.join(format!(".bistro-probe-{:016x}", rand::random::<u64>()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|mut file| {
            let written = file.write_all(&[0; 4096]).and_then(|()| file.sync_all());
            let _ = std::fs::remove_file(&probe);
            written
        });
    written.err()
}

/// True when `e` says the file system is full (of bytes or of inodes) or over quota.
pub fn is_no_space(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == nix::libc::ENOSPC || code == nix::libc::EDQUOT
    )
}

/// `cause` of a failure to create files beside `path`, said with what to do.
fn say_io_cause(cause: &std::io::Error, path: &Path) -> String {
    let dir = path.parent().unwrap_or(Path::new(".")).display();
    if is_no_space(cause) {
        format!("no space left on device for new files in {dir}: {cause}; its file system is out of bytes or inodes (see `df -h {dir}` and `df -i {dir}`): free some and run again; nothing stored was lost")
    } else if cause.kind() == std::io::ErrorKind::PermissionDenied {
        format!("permission denied creating files in {dir}: {cause}; run as the state dir's owner")
    } else {
        format!("cannot create files in {dir}: {cause}")
    }
}

/// Opens a database only to read it, for the commands that only read (`status`,
/// `logs`, `why`, `check`, the HTTP API). When the database cannot be opened as
/// usual because its directory is full (WAL mode needs new `-wal` and `-shm` files
/// once no connection holds them), and no `-wal` file with content is left (so the
/// main file holds every commit), it is read as an immutable file instead: the
/// answer is complete, and nothing is written.
pub(crate) fn open_for_reading(
    path: &Path,
    schema: &str,
    version: i64,
) -> Result<Connection, StoreError> {
    let error = match open(path, schema, version) {
        Ok(conn) => return Ok(conn),
        Err(e) => e,
    };
    let full = cannot_create_beside(path).is_some_and(|e| is_no_space(&e));
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal_empty = std::fs::metadata(&wal).map_or(true, |m| m.len() == 0);
    if !full || !wal_empty || !path.exists() {
        return Err(error);
    }
    tracing::warn!(
        "{}: the file system is full, so the database is read as it is on disk, read-only",
        path.display()
    );
    let uri = format!("file:{}?immutable=1", uri_path(path));
    Connection::open_with_flags(
        uri,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(sql_err(path, "opening the database read-only"))
}

/// `path` as the path of a SQLite `file:` URI: every byte but the unreserved ones
/// and `/` percent-encoded, so a state dir named with `?`, `#` or `%` opens itself.
fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str()
        .as_bytes()
        .iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Wraps a SQLite error with the file and operation.
pub(crate) fn sql_err<'a>(
    path: &'a Path,
    op: &'static str,
) -> impl FnOnce(rusqlite::Error) -> StoreError + 'a {
    move |source| {
        let hint = hint_for(&source, path);
        StoreError::Sqlite {
            path: path.to_path_buf(),
            op,
            source,
            hint: hint.into(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_only_uri_opens_a_path_with_uri_characters() {
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("state ?x=1#frag%20");
        std::fs::create_dir(&odd).unwrap();
        let db = odd.join("statuses.sql3");
        Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (7);")
            .unwrap();
        let conn = Connection::open_with_flags(
            format!("file:{}?immutable=1", uri_path(&db)),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
        )
        .unwrap();
        let x: i64 = conn.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(x, 7);
    }
}
