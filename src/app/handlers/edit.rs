//! `save_job` and `delete_job`: edit the config file the scheduler reads. The new
//! file is validated first (a job with errors is refused with them and the file is
//! left alone), the previous file is kept as `FILE.bak`, and the new one replaces it
//! atomically, so a scheduler never reads a torn config. A symlinked config is
//! edited through to its target (the symlink stays, and `FILE` is the target). Edits
//! are serialized by an flock on `FILE.lock`, so two requests, or a `daemon --http`
//! and a `serve-http`, cannot lose one another's change.

use super::{required_string, HandlerError, ParamError, Params};
use crate::app::snapshot::Snapshot;
use crate::foundation::config::{Config, ConfigError, JOB_PREFIX};
use crate::model::nodes::check_prefs;
use crate::storage::state::{write_atomic, StateError};
use serde_json::{json, Map, Value};
use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long an edit waits for another one of the same config file to finish.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Why a config edit was refused or failed; the file is then left as it was.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The edited config does not parse.
    #[error("the config would be invalid: {0}")]
    Invalid(ConfigError),
    /// The saved job has errors.
    #[error("job {name} was not saved, it has errors: {}", .problems.join("; "))]
    JobHasErrors {
        /// The job.
        name: String,
        /// Its problems.
        problems: Vec<String>,
    },
    /// The job to delete is not in the file.
    #[error("Unknown job {0}")]
    UnknownJob(String),
    /// The edit lock cannot be opened.
    #[error("cannot open the config's edit lock {}: {source}", .path.display())]
    OpenLock {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another edit held the lock for too long.
    #[error("another edit of the config holds {} for over {} s; try again", .path.display(), LOCK_WAIT.as_secs())]
    LockBusy {
        /// The lock file.
        path: PathBuf,
    },
    /// The edit lock cannot be taken.
    #[error("cannot lock the config's edit lock {}: {source}", .path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The config file cannot be found.
    #[error("cannot find config file {}: {source}", .path.display())]
    Find {
        /// The config file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The config file cannot be read.
    #[error("cannot read config file {}: {source}", .path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The config file is JSON, but not an object.
    #[error("config file {} is not a JSON object; fix it first", .path.display())]
    NotAnObject {
        /// The config file.
        path: PathBuf,
    },
    /// The config file is not JSON.
    #[error("config file {} is not valid JSON ({source}); fix it first", .path.display())]
    NotJson {
        /// The config file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The backup or the new file cannot be written.
    #[error(transparent)]
    Write(#[from] StateError),
    /// The new file's permissions cannot be set to the old one's.
    #[error("cannot restore the permissions of {}: {source}", .path.display())]
    Permissions {
        /// The config file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

pub(super) fn save_job(params: &Params, snap: &Snapshot) -> Result<Value, HandlerError> {
    let name = required_string(params, "job_id")?;
    let job = match params.get("job") {
        Some(v @ Value::Object(_)) => v.clone(),
        Some(other) => {
            return Err(ParamError::NotAnObject {
                key: "job".into(),
                got: other.clone(),
            }
            .into())
        }
        None => return Err(ParamError::MissingObject { key: "job".into() }.into()),
    };
    if name.is_empty() {
        return Err(ParamError::Empty {
            key: "job_id".into(),
        }
        .into());
    }
    edit(&snap.config_path, |config| {
        config.insert(format!("{JOB_PREFIX}{name}"), job);
        let parsed = Config::from_value_with(&Value::Object(config.clone()), check_prefs)
            .map_err(EditError::Invalid)?;
        let saved = parsed.job(name).expect("the job was just inserted");
        let problems = saved.problem_lines();
        if !problems.is_empty() {
            return Err(EditError::JobHasErrors {
                name: name.to_string(),
                problems,
            });
        }
        Ok(())
    })?;
    Ok(json!("saved"))
}

pub(super) fn delete_job(params: &Params, snap: &Snapshot) -> Result<Value, HandlerError> {
    let name = required_string(params, "job_id")?;
    edit(&snap.config_path, |config| {
        config
            .shift_remove(&format!("{JOB_PREFIX}{name}"))
            .map(drop)
            .ok_or_else(|| EditError::UnknownJob(name.to_string()))
    })?;
    Ok(json!("deleted"))
}

/// `path` with `suffix` appended to its name: the backup (`.bak`) and the edit lock
/// (`.lock`) live beside the config file.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Takes the edit lock of the config file at `path` (an flock on `FILE.lock`, created
/// if missing), waiting up to [`LOCK_WAIT`]. It is per open file, so it serializes
/// the threads of one server as well as separate processes; released on drop.
fn lock_edits(path: &Path) -> Result<File, EditError> {
    let lock_path = beside(path, ".lock");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|source| EditError::OpenLock {
            path: lock_path.clone(),
            source,
        })?;
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(EditError::LockBusy { path: lock_path })
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(EditError::Lock {
                    path: lock_path,
                    source,
                })
            }
        }
    }
}

/// Reads the config file (through any symlinks to the real file), applies `change`,
/// and writes the result atomically beside the real file (keeping its permissions)
/// after backing up the previous text, all under the edit lock. The file must parse
/// as a JSON object.
fn edit(
    path: &Path,
    change: impl FnOnce(&mut Map<String, Value>) -> Result<(), EditError>,
) -> Result<(), EditError> {
    let path = &std::fs::canonicalize(path).map_err(|source| EditError::Find {
        path: path.to_path_buf(),
        source,
    })?;
    let _locked = lock_edits(path)?;
    let text = std::fs::read_to_string(path).map_err(|source| EditError::Read {
        path: path.clone(),
        source,
    })?;
    let mut config = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(EditError::NotAnObject { path: path.clone() }),
        Err(source) => {
            return Err(EditError::NotJson {
                path: path.clone(),
                source,
            })
        }
    };
    change(&mut config)?;
    let mut new_text = serde_json::to_string_pretty(&Value::Object(config)).expect("serializes");
    new_text.push('\n');
    let permissions = std::fs::metadata(path).map(|m| m.permissions());
    write_atomic(&beside(path, ".bak"), text.as_bytes())?;
    write_atomic(path, new_text.as_bytes())?;
    if let Ok(permissions) = permissions {
        std::fs::set_permissions(path, permissions).map_err(|source| EditError::Permissions {
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_waits_for_the_lock_another_process_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, "{}").unwrap();
        let held = lock_edits(&path).unwrap();
        let path_again = path.clone();
        let editing = std::thread::spawn(move || {
            edit(&path_again, |config| {
                config.insert("k".into(), json!(1));
                Ok(())
            })
        });
        // Nothing to await: the edit must not happen while the lock is held.
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}");
        drop(held);
        editing.join().unwrap().unwrap();
        let edited: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(edited, json!({"k": 1}));
        assert_eq!(
            std::fs::read_to_string(beside(&path, ".bak")).unwrap(),
            "{}"
        );
    }
}
