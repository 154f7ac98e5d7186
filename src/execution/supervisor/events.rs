//! A run's lifecycle events as task-log lines (`{"event": NAME, "invocation_...",
//! "worker_host", ...}` in the `statuses` stream): one format, whichever host or
//! runner writes them.

use crate::execution::supervisor::Launch;
use crate::storage::store::{LogKind, LogLine};
use serde_json::{json, Value};

/// The event `name` of the run `launch`, with the fields of `extra` (an object) added.
pub fn event_line(launch: &Launch, name: &str, extra: Value) -> LogLine {
    let mut e = json!({
        "event": name,
        "invocation_start_time": launch.invocation.start_time,
        "invocation_rand": launch.invocation.rand,
        "worker_host": launch.worker_host,
    });
    if let (Some(e), Value::Object(extra)) = (e.as_object_mut(), extra) {
        e.extend(extra);
    }
    LogLine {
        kind: LogKind::Statuses,
        job: launch.job.clone(),
        node: launch.node.clone(),
        time: crate::foundation::time::now(),
        line: e.to_string(),
    }
}
