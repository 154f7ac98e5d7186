//! `save_job` and `delete_job`: edit the config file the scheduler reads. The new
//! file is validated first (a job with errors is refused with them and the file is
//! left alone), the previous file is kept as `FILE.bak`, and the new one replaces it
//! atomically, so a scheduler never reads a torn config. Edits from this process
//! are serialized so two concurrent requests cannot lose one another's change.

use super::{required_string, Params};
use crate::config::{flatten_json, Config, JOB_PREFIX};
use crate::http::Snapshot;
use crate::state::write_atomic;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

static EDITS: Mutex<()> = Mutex::new(());

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
        let parsed = Config::from_value(&Value::Object(config.clone()))
            .map_err(|e| format!("the config would be invalid: {e}"))?;
        let saved = parsed.job(name).expect("the job was just inserted");
        if let Some(errors) = &saved.errors {
            let mut problems = Vec::new();
            flatten_json(errors, "", &mut problems);
            let problems: Vec<String> = problems
                .into_iter()
                .map(|(key, msg)| {
                    if key.is_empty() {
                        msg
                    } else {
                        format!("{key}: {msg}")
                    }
                })
                .collect();
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

/// The backup of `path`: the same name with `.bak` appended.
fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".bak");
    PathBuf::from(name)
}

/// Reads the config file, applies `change`, and writes the result atomically (keeping
/// the file's permissions) after backing up the previous text. The file must parse as
/// a JSON object.
fn edit(
    path: &Path,
    change: impl FnOnce(&mut Map<String, Value>) -> Result<(), String>,
) -> Result<(), String> {
    let _serialized = EDITS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
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
    write_atomic(&backup_path(path), text.as_bytes()).map_err(|e| e.to_string())?;
    write_atomic(path, new_text.as_bytes()).map_err(|e| e.to_string())?;
    if let Ok(permissions) = permissions {
        std::fs::set_permissions(path, permissions)
            .map_err(|e| format!("cannot restore the permissions of {shown}: {e}"))?;
    }
    Ok(())
}
