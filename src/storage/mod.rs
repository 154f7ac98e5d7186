//! Storage: the state directory (its lock and every file name in it) and the SQLite
//! status and task-log databases.
//!
//! - [`state`]: the state directory, its lock, and the name of every file and folder in it;
//! - [`store`]: the SQLite status and task-log databases.

pub mod state;
pub mod store;
