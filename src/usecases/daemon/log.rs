//! A daemon's log of its iterations, through `tracing`.

use crate::foundation::sanitize::for_terminal;
use crate::usecases::tick::TickReport;
use std::collections::BTreeSet;

/// Logs each iteration: lasting problems once each while they last, events (failed
/// starts and kills, killed orphans, failed tasks) as warnings, starts and finishes
/// at info level, a summary at debug level; every name escaped for a terminal.
#[derive(Default)]
pub(super) struct IterationLog {
    problems: BTreeSet<String>,
    /// Tasks running after the last iteration.
    pub running: usize,
}

impl IterationLog {
    /// Logs one iteration's report.
    pub fn record(&mut self, r: &TickReport) {
        let mut lasting = BTreeSet::new();
        for d in r.diagnostics() {
            if d.lasting {
                lasting.insert(d.message);
            } else {
                tracing::warn!("{}", for_terminal(&d.message));
            }
        }
        if r.config_errors.is_empty() && !r.scheduler_enabled {
            lasting
                .insert("bistro_settings.enabled is not true: the scheduler starts nothing".into());
        }
        for problem in lasting.difference(&self.problems) {
            tracing::warn!("{}", for_terminal(problem));
        }
        self.problems = lasting;
        for f in &r.finished {
            let message = f
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            let line = format!("finished {}/{}: {}{message}", f.job, f.node, f.status);
            let line = for_terminal(&line);
            match f.status {
                "error_backoff" | "failed" => tracing::warn!("{line}"),
                _ => tracing::info!("{line}"),
            }
        }
        for s in &r.started {
            tracing::info!("{}", for_terminal(&format!("started {}/{}", s.job, s.node)));
        }
        for change in &r.config_changes {
            tracing::info!("{}", for_terminal(&format!("config: {change}")));
        }
        tracing::debug!(
            "iteration: {} started, {} finished, {} running; next in {} ms",
            r.started.len(),
            r.finished.len(),
            r.running,
            r.wait_ms
        );
        self.running = r.running;
    }
}
