//! Task statuses: Bistro's status bits, the status line a task writes, and how a new
//! status replaces the stored one with backoff (bistro-scheduling §5).

pub mod backoff;
mod parse;
mod update;

pub use backoff::{BackoffDuration, BackoffError, BackoffSettings};
pub use parse::{parse_status, read_status_file, StatusFileError, MAX_STATUS_BYTES};
pub use update::{apply_status, configured_backoff, forgive};

use serde_json::{Map, Value};

/// Status bits; the numeric values are part of Bistro's wire format.
pub mod bits {
    /// Monitor only: could run, never ran.
    pub const UNSTARTED: u32 = 1;
    /// Running.
    pub const RUNNING: u32 = 2;
    /// Finished; never re-run.
    pub const DONE: u32 = 4;
    /// Ran, wants to run again, no error.
    pub const INCOMPLETE: u32 = 8;
    /// Permanent failure until forgiven.
    pub const FAILED: u32 = 16;
    /// Ran and failed; may run again.
    pub const ERROR: u32 = 32;
    /// Wait `backoff` seconds after `time` before running again.
    pub const USES_BACKOFF: u32 = 64;
    /// Monitor only: filtered out.
    pub const AVOIDED: u32 = 128;
    /// Monitor only: node or ancestor disabled.
    pub const DISABLED: u32 = 256;
    /// With USES_BACKOFF: reuse the current backoff step.
    pub const DOES_NOT_ADVANCE_BACKOFF: u32 = 512;
    /// A synthetic status that the next real status replaces.
    pub const OVERWRITEABLE: u32 = 1024;
    /// Worker lost: the configured backoff is kept in `data`.
    pub const HAS_SAVED_BACKOFF: u32 = 2048;
    /// Exactly one of these is set in every status.
    pub const MAIN: u32 = RUNNING | DONE | INCOMPLETE | FAILED | ERROR;
}

/// The key in a status's `data` that carries a worker-lost task's configured backoff.
pub const SAVED_BACKOFF_KEY: &str = "__bistro_saved_backoff";

/// A task's status: bits, optional data, when it was set, and its backoff.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskStatus {
    /// Bistro status bits.
    pub bits: u32,
    /// The task's own data (never an empty object), or the `exception` we recorded.
    pub data: Option<Map<String, Value>>,
    /// Epoch seconds when the status was recorded.
    pub time: i64,
    /// Seconds to wait after `time` (only with USES_BACKOFF).
    pub backoff: i64,
}

/// The user-facing name of a task's state, as in `status --json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StatusName {
    /// A supervisor is running the task.
    Running,
    /// Finished for good.
    Done,
    /// Ran and wants to run again.
    Incomplete,
    /// Failed, will retry after its backoff.
    ErrorBackoff,
    /// Failed permanently until forgiven.
    Failed,
    /// Never ran.
    NotStarted,
}

impl StatusName {
    /// All names, in the order reports list them.
    pub const ALL: [StatusName; 6] = [
        StatusName::Done,
        StatusName::Running,
        StatusName::Incomplete,
        StatusName::ErrorBackoff,
        StatusName::Failed,
        StatusName::NotStarted,
    ];

    /// The stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusName::Running => "running",
            StatusName::Done => "done",
            StatusName::Incomplete => "incomplete",
            StatusName::ErrorBackoff => "error_backoff",
            StatusName::Failed => "failed",
            StatusName::NotStarted => "not_started",
        }
    }

    /// Parses a stable name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl TaskStatus {
    /// A status with no data and no backoff.
    pub fn new(bits: u32, time: i64) -> Self {
        Self {
            bits,
            data: None,
            time,
            backoff: 0,
        }
    }

    /// `error_backoff` with `data.exception = message`.
    pub fn error_backoff(message: impl Into<String>, time: i64) -> Self {
        Self::with_exception(bits::ERROR | bits::USES_BACKOFF, message, time)
    }

    /// `incomplete_backoff` with `data.exception = message`.
    pub fn incomplete_backoff(message: impl Into<String>, time: i64) -> Self {
        Self::with_exception(
            bits::INCOMPLETE | bits::USES_BACKOFF | bits::DOES_NOT_ADVANCE_BACKOFF,
            message,
            time,
        )
    }

    /// A status of `bits` with `data.exception = message`.
    pub fn with_exception(bits: u32, message: impl Into<String>, time: i64) -> Self {
        let mut data = Map::new();
        data.insert("exception".into(), Value::String(message.into()));
        Self {
            bits,
            data: Some(data),
            time,
            backoff: 0,
        }
    }

    /// True if the bit (or any of the bits) is set.
    pub fn has(&self, bit: u32) -> bool {
        self.bits & bit != 0
    }

    /// Done: never run again.
    pub fn is_done(&self) -> bool {
        self.has(bits::DONE)
    }

    /// Failed permanently.
    pub fn is_failed(&self) -> bool {
        self.has(bits::FAILED)
    }

    /// Waiting out a backoff at `now`.
    pub fn in_backoff(&self, now: i64) -> bool {
        self.has(bits::USES_BACKOFF)
            && !self.is_failed()
            && self.time.saturating_add(self.backoff) > now
    }

    /// When the backoff ends, if the status uses one.
    pub fn backoff_until(&self) -> Option<i64> {
        (self.has(bits::USES_BACKOFF) && !self.is_failed() && self.backoff > 0)
            .then(|| self.time + self.backoff)
    }

    /// The stable user-facing name. `not_started` comes from the absence of a status,
    /// and a running task is known from the running table, not from its stored status.
    pub fn name(&self) -> StatusName {
        if self.has(bits::DONE) {
            StatusName::Done
        } else if self.has(bits::FAILED) {
            StatusName::Failed
        } else if self.has(bits::ERROR) {
            StatusName::ErrorBackoff
        } else if self.has(bits::RUNNING) {
            StatusName::Running
        } else {
            StatusName::Incomplete
        }
    }

    /// The Bistro JSON export (§5.3), used for `prev_status` and the API.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("result_bits".into(), Value::from(self.bits));
        if let Some(data) = &self.data {
            out.insert("data".into(), Value::Object(data.clone()));
        }
        out.insert("time".into(), Value::from(self.time));
        if self.has(bits::USES_BACKOFF) && self.backoff != 0 {
            out.insert("backoff_duration".into(), Value::from(self.backoff));
        }
        Value::Object(out)
    }

    /// The form lifecycle events carry: `result_bits` and `data` only.
    pub fn to_event_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("result_bits".into(), Value::from(self.bits));
        if let Some(data) = &self.data {
            out.insert("data".into(), Value::Object(data.clone()));
        }
        Value::Object(out)
    }

    /// The `data` object as JSON (`null` when absent).
    pub fn data_json(&self) -> Value {
        self.data.clone().map_or(Value::Null, Value::Object)
    }

    /// The `exception` text, if the status carries one.
    pub fn exception(&self) -> Option<&str> {
        self.data.as_ref()?.get("exception")?.as_str()
    }
}
