//! The single-run entry point: `bistro run-task` supervises its one run in its own
//! process, through the same event loop as the supervisor host.

use super::diagnostics::RUN_TASK;
use super::run_loop::RunLoop;
use super::{Launch, TaskResult};
use crate::foundation::status::TaskStatus;
use crate::storage::state::run_dir;
use std::path::Path;
use std::time::Duration;

/// Supervises this process's one run (`bistro run-task`) to completion and writes
/// `result.json` into `dir`; the stop signals and kill requests sent to this process
/// are its kill requests.
///
/// With `echo`, the task's output is also copied to our stdout and stderr (for
/// `run-task` in a terminal).
pub fn supervise(launch: &Launch, dir: &Path, echo: bool) -> TaskResult {
    let mut runs = match RunLoop::new(echo) {
        Ok(runs) => runs,
        Err(e) => {
            let why = format!("cannot supervise {}/{}: {e}", launch.job, launch.node);
            let result = TaskResult {
                status: TaskStatus::error_backoff(why.clone(), crate::foundation::time::now()),
                exit: why,
                killed: false,
                stop_signal: None,
                end_time: crate::foundation::time::now(),
            };
            // Recorded like any result, so the run is not taken for never started.
            let path = dir.join(run_dir::RESULT);
            let json = serde_json::to_vec(&result).expect("results serialize");
            if let Err(e) = super::run_dirs::write_in_place(&path, &json) {
                tracing::error!(target: RUN_TASK, "writing {}: {e}", path.display());
            }
            return result;
        }
    };
    runs.start(launch.clone(), dir.to_path_buf(), None);
    loop {
        if let Some((_, result)) = runs.turn(Duration::from_secs(1)).finished.pop() {
            return result;
        }
    }
}
