//! What one request reads: the config in force (with its JSON, for the job export and
//! config edits), and, loaded on first use, the nodes and the task statuses. Every
//! sub-query of an envelope runs against one snapshot, as in Bistro.
//!
//! The nodes are only ever the ones the scheduler stored: running node sources here
//! would let any request spawn scripts, and in the daemon would race its child
//! reaper and the moments a task lock fd is inheritable.

use crate::execution::runner::remote::Hub;
use crate::foundation::config::{Config, ConfigLoadError};
use crate::model::nodes::Nodes;
use crate::model::task::RunningTask;
use crate::storage::state::StateDir;
use crate::storage::store::{StatusRow, StatusStore, StoreError};
use crate::usecases::context::{self, keys, NodesNotFetched};
use serde_json::Value;
use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a server's requests read their snapshots from.
pub struct Site {
    /// The state directory.
    pub state: StateDir,
    /// The config file (`--config`, else the one the scheduler last used).
    pub config: Option<PathBuf>,
    /// The scheduler's remote workers, when the server is a scheduler's with workers.
    pub hub: Option<Arc<Hub>>,
}

impl Site {
    /// The state as of now, for one request.
    pub fn snapshot(&self) -> Result<Snapshot, SnapshotError> {
        let mut snap = Snapshot::load(&self.state, self.config.as_deref())?;
        snap.hub = self.hub.clone();
        Ok(snap)
    }
}

/// Why a request cannot be answered at all.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The state directory has no status database.
    #[error(transparent)]
    NoState(crate::storage::state::StateError),
    /// Neither the config file nor a last good config is usable.
    #[error("no usable config at {path}: {message}")]
    NoConfig {
        /// The config file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SnapshotError {
    /// The HTTP status of the refusal: 503 while there is nothing to serve yet, 500
    /// for real failures.
    pub fn status(&self) -> u16 {
        match self {
            Self::NoState(_) | Self::NoConfig { .. } => 503,
            Self::Store(_) => 500,
        }
    }
}

/// Why a request cannot have the nodes.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NodesUnavailable {
    /// None were stored for the config in force.
    #[error(transparent)]
    NotFetched(#[from] NodesNotFetched),
    /// The status database failed.
    #[error("cannot read the stored nodes: {0}")]
    Store(Arc<StoreError>),
}

/// Why a request cannot have the task statuses: the status database failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error(transparent)]
pub struct StatusesUnavailable(Arc<StoreError>);

/// Stored statuses and running tasks.
type Statuses = (Vec<StatusRow>, Vec<RunningTask>);

/// The state one request reads.
pub struct Snapshot {
    /// The state directory.
    pub state: StateDir,
    /// The status database.
    pub store: StatusStore,
    /// The config file (`--config`, else the one the scheduler last used).
    pub config_path: PathBuf,
    /// The config in force (the file's, or the last good one).
    pub config: Config,
    /// The JSON the config in force was parsed from.
    pub raw: Value,
    /// Why the config file itself is unusable, when the last good config stands in.
    pub config_error: Option<ConfigLoadError>,
    /// Epoch seconds when the snapshot was taken.
    pub now: i64,
    /// The scheduler's remote workers, when the server is a scheduler's with workers.
    pub hub: Option<Arc<Hub>>,
    nodes: OnceCell<Result<Nodes, NodesUnavailable>>,
    statuses: OnceCell<Result<Statuses, StatusesUnavailable>>,
}

impl Snapshot {
    /// Reads the config in force of `state` (`explicit` overrides the remembered file).
    pub fn load(state: &StateDir, explicit: Option<&Path>) -> Result<Self, SnapshotError> {
        let db = state
            .existing_statuses_db()
            .map_err(SnapshotError::NoState)?;
        let store = StatusStore::open_for_reading(&db)?;
        let path = context::config_path(state, Some(&store), explicit)?;
        let in_force = context::load_config(Some(&store), path.clone())?;
        let text = match &in_force.text {
            Some(text) => Some(text.clone()),
            None => store.meta(keys::LAST_GOOD_CONFIG)?,
        };
        let raw = text.and_then(|t| serde_json::from_str::<Value>(&t).ok());
        let (Some(config), Some(raw)) = (in_force.config, raw) else {
            return Err(SnapshotError::NoConfig {
                path,
                message: in_force
                    .error
                    .map_or_else(|| "unreadable".to_string(), |e| e.to_string()),
            });
        };
        Ok(Self {
            state: state.clone(),
            store,
            config_path: path,
            config,
            raw,
            config_error: in_force.error,
            now: crate::foundation::time::now(),
            hub: None,
            nodes: OnceCell::new(),
            statuses: OnceCell::new(),
        })
    }

    /// The nodes the scheduler last stored, if it fetched them for the config in
    /// force; never runs a node source.
    pub fn nodes(&self) -> Result<&Nodes, NodesUnavailable> {
        self.nodes
            .get_or_init(|| {
                let store_error = |e: StoreError| NodesUnavailable::Store(Arc::new(e));
                let instance =
                    context::instance_name(Some(&self.store), None).map_err(store_error)?;
                Ok(context::stored_nodes(&self.store, &self.config, &instance)
                    .map_err(store_error)??)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Stored statuses and running tasks, with runs that finished since the last tick
    /// applied (as `bistro status` shows them).
    pub fn statuses(&self) -> Result<(&[StatusRow], &[RunningTask]), StatusesUnavailable> {
        self.statuses
            .get_or_init(|| {
                let unavailable = |e: StoreError| StatusesUnavailable(Arc::new(e));
                let mut rows = self.store.load().map_err(unavailable)?;
                let mut running = self.store.running().map_err(unavailable)?;
                crate::usecases::tick::preview_finished(&self.state, &mut rows, &mut running);
                Ok((rows, running))
            })
            .as_ref()
            .map(|(rows, running)| (rows.as_slice(), running.as_slice()))
            .map_err(Clone::clone)
    }
}
