//! `save_job` and `delete_job`: edit the config file the scheduler reads. The new
//! file is validated first (a job with errors is refused with them and the file is
//! left alone), the previous file is kept as `FILE.bak`, and the new one replaces it
//! atomically, so a scheduler never reads a torn config. A symlinked config is
//! edited through to its target (the symlink stays, and `FILE` is the target). Edits
//! are serialized by an flock on `FILE.lock`, so two requests, or a `daemon --http`
//! and a `serve-http`, cannot lose one another's change.

use super::{required_string, Params};
use crate::config::{Config, JOB_PREFIX};
use crate::http::Snapshot;
use crate::nodes::check_prefs;
use crate::state::write_atomic;
use serde_json::{json, Map, Value};
use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long an edit waits for another one of the same config file to finish.
const LOCK_WAIT: Duration = Duration::from_secs(5);

pub(super) fn save_job(params: &Params, snap: &Snapshot) -> Result<Value, String> {
    let name = required_string(params, "job_id")?;
    let job = match params.get("job") {
        Some(v @ Value::Object(_)) => v.clone(),
        Some(other) => return Err(format!("job must be a JSON object, got {other}")),
        None => return Err("missing parameter job (a JSON object)".into()),
    };
    if name.is_empty() {
        return Err("job_id must not be empty".into());
    }
    edit(&snap.config_path, |config| {
        config.insert(format!("{JOB_PREFIX}{name}"), job);
        let parsed = Config::from_value_with(&Value::Object(config.clone()), check_prefs)
            .map_err(|e| format!("the config would be invalid: {e}"))?;
        let saved = parsed.job(name).expect("the job was just inserted");
        let problems = saved.problem_lines();
        if !problems.is_empty() {
            return Err(format!(
                "job {name} was not saved, it has errors: {}",
                problems.join("; ")
            ));
        }
        Ok(())
    })?;
    Ok(json!("saved"))
}

pub(super) fn delete_job(params: &Params, snap: &Snapshot) -> Result<Value, String> {
    let name = required_string(params, "job_id")?;
    edit(&snap.config_path, |config| {
        config
            .shift_remove(&format!("{JOB_PREFIX}{name}"))
            .map(drop)
            .ok_or_else(|| format!("Unknown job {name}"))
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
fn lock_edits(path: &Path) -> Result<File, String> {
    let lock_path = beside(path, ".lock");
    let shown = lock_path.display();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| format!("cannot open the config's edit lock {shown}: {e}"))?;
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(format!(
                    "another edit of the config holds {shown} for over {} s; try again",
                    LOCK_WAIT.as_secs()
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(format!("cannot lock the config's edit lock {shown}: {e}"))
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
    change: impl FnOnce(&mut Map<String, Value>) -> Result<(), String>,
) -> Result<(), String> {
    let path = &std::fs::canonicalize(path)
        .map_err(|e| format!("cannot find config file {}: {e}", path.display()))?;
    let _locked = lock_edits(path)?;
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {shown}: {e}"))?;
    let mut config = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => map,
        Ok(_) => {
            return Err(format!(
                "config file {shown} is not a JSON object; fix it first"
            ))
        }
        Err(e) => {
            return Err(format!(
                "config file {shown} is not valid JSON ({e}); fix it first"
            ))
        }
    };
    change(&mut config)?;
    let mut new_text = serde_json::to_string_pretty(&Value::Object(config)).expect("serializes");
    new_text.push('\n');
    let permissions = std::fs::metadata(path).map(|m| m.permissions());
    write_atomic(&beside(path, ".bak"), text.as_bytes()).map_err(|e| e.to_string())?;
    write_atomic(path, new_text.as_bytes()).map_err(|e| e.to_string())?;
    if let Ok(permissions) = permissions {
        std::fs::set_permissions(path, permissions)
            .map_err(|e| format!("cannot restore the permissions of {shown}: {e}"))?;
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
