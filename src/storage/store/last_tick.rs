//! What the last real tick did, kept in meta `last_tick` for monitoring: the HTTP
//! server's metrics, snapshot and errors, and `status`.

use super::{StatusStore, StoreError};

/// What the last real tick did, kept in meta `last_tick` for `serve-http` and metrics.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LastTick {
    /// When it started, epoch seconds.
    pub time: i64,
    /// How long it took.
    pub duration_ms: u64,
    /// Tasks it started.
    pub started: usize,
    /// Finished tasks it recorded.
    pub finished: usize,
    /// Tasks running after it.
    pub running: usize,
    /// Config, job, node-source and start problems it saw.
    pub errors: usize,
    /// Why it could not fetch the nodes, if it could not.
    #[serde(default)]
    pub nodes_error: Option<String>,
}

impl LastTick {
    /// The `meta` key it is stored under.
    const KEY: &'static str = "last_tick";

    /// The last tick's summary stored in the state dir, if any tick ran.
    pub fn load(store: &StatusStore) -> Result<Option<Self>, StoreError> {
        Ok(store
            .meta(Self::KEY)?
            .and_then(|text| serde_json::from_str(&text).ok()))
    }

    /// Stores this summary as the last tick's.
    pub fn save(&self, store: &mut StatusStore) -> Result<(), StoreError> {
        let text = serde_json::to_string(self).expect("serializes");
        store.set_meta(&[(Self::KEY, &text)])
    }
}
