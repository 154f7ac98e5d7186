//! Where a config comes from. Bistro's config loader is a plugin point; ours reads a
//! JSON file and detects changes by content, not by whole-second mtime.

use super::{Config, ConfigError, PrefsCheck};
use std::path::PathBuf;

/// A config read from its source, with the exact text it was parsed from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The validated config.
    pub config: Config,
    /// The text it was parsed from (stored as the last good config).
    pub text: String,
}

/// Why the config could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigLoadError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// The file's content is not a usable config.
    #[error("config file {path}: {error}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        error: ConfigError,
    },
}

impl ConfigLoadError {
    /// One `(where, message)` per problem, `where` starting with the file name.
    pub fn problems(&self) -> Vec<(String, String)> {
        match self {
            ConfigLoadError::Read { path, message } => vec![(
                path.display().to_string(),
                format!("cannot read: {message}"),
            )],
            ConfigLoadError::Invalid {
                path,
                error:
                    ConfigError::Json {
                        line,
                        column,
                        message,
                    },
            } => {
                vec![(
                    format!("{}:{line}:{column}", path.display()),
                    format!("invalid JSON: {message}"),
                )]
            }
            ConfigLoadError::Invalid { path, error } => error
                .problems()
                .into_iter()
                .map(|(key, msg)| {
                    (
                        if key.is_empty() {
                            path.display().to_string()
                        } else {
                            format!("{}: {key}", path.display())
                        },
                        msg,
                    )
                })
                .collect(),
        }
    }
}

/// Reads a JSON config file, re-read every iteration.
#[derive(Debug, Clone)]
pub struct FileConfigLoader {
    path: PathBuf,
}

impl FileConfigLoader {
    /// A loader for `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Reads and validates the current config, checking node source prefs with `check`.
    pub fn load(&self, check: PrefsCheck) -> Result<LoadedConfig, ConfigLoadError> {
        let text = read_bounded(&self.path).map_err(|message| ConfigLoadError::Read {
            path: self.path.clone(),
            message,
        })?;
        let config =
            Config::parse_with(&text, check).map_err(|error| ConfigLoadError::Invalid {
                path: self.path.clone(),
                error,
            })?;
        Ok(LoadedConfig { config, text })
    }
}

/// The largest config file read, in bytes: a config of a million jobs is far less.
pub const MAX_CONFIG_BYTES: u64 = 64 << 20;

/// Reads a file of at most [`MAX_CONFIG_BYTES`] as text; the error says why not.
fn read_bounded(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(format!(
            "larger than {} MiB, the most a config may be",
            MAX_CONFIG_BYTES >> 20
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bistro's test_file_config_loader HandleValidConfig, with the legacy node source.
    #[test]
    fn a_valid_config_file_loads_with_its_settings_and_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let text = r#"{
            "bistro_settings": {
                "enabled": true,
                "working_wait": 0.5,
                "nodes": {"levels": ["level1", "level2"], "node_source": "range_label",
                          "node_source_prefs": {"parent_level": "instance", "start": 1, "end": 2}},
                "resources": {},
                "scheduler": "ranked_priority"
            },
            "bistro_job->job1": {"owner": "test"}
        }"#;
        std::fs::write(&path, text).unwrap();
        let loaded = FileConfigLoader::new(&path)
            .load(crate::foundation::config::no_prefs_check)
            .unwrap();
        assert!(loaded.config.settings.enabled);
        assert_eq!(loaded.config.settings.working_wait_ms, 500);
        assert_eq!(loaded.config.jobs.len(), 1);
        assert_eq!(loaded.config.jobs[0].errors, None);
        assert_eq!(loaded.text, text);
    }
}
