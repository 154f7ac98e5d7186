//! `GET /metrics`: the state in Prometheus text exposition format 0.0.4, for alerting
//! on stuck or failing jobs without parsing `status --json`.

use super::api_status::snapshot_report;
use super::snapshot::Site;
use crate::execution::http::Reply;
use crate::storage::store::LastTick;
use crate::usecases::report::{ReportFilter, StatusReport};
use std::fmt::Write;

/// Answers `GET /metrics`, with the same refusals as `GET /api/status`.
pub fn reply(site: &Site) -> Reply {
    let (snap, report) = match snapshot_report(site, &ReportFilter::default()) {
        Ok(loaded) => loaded,
        Err(refusal) => return refusal,
    };
    match LastTick::load(&snap.store) {
        Ok(last_tick) => Reply::text(
            "text/plain; version=0.0.4; charset=utf-8",
            render(&MetricsInput {
                report: &report,
                last_tick: last_tick.as_ref(),
                config_errors: snap.config_error.as_ref().map_or(0, |e| e.problems().len()),
                job_errors: snap.config.job_problems().len(),
            }),
        ),
        Err(e) => Reply::error(500, &e.to_string()),
    }
}

/// What the metrics are computed from.
pub struct MetricsInput<'a> {
    /// The status document (per-job counts).
    pub report: &'a StatusReport,
    /// The last tick's summary, if a tick ever ran.
    pub last_tick: Option<&'a LastTick>,
    /// Problems with the config file.
    pub config_errors: usize,
    /// Problems inside jobs.
    pub job_errors: usize,
}

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The `# HELP` and `# TYPE` lines of a gauge.
fn header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

/// Renders every metric.
pub fn render(input: &MetricsInput) -> String {
    let mut out = String::new();
    header(&mut out, "bistro_tasks", "Tasks by job and status.");
    for job in &input.report.jobs {
        // Statuses only: `total` is their sum, `excluded` a part of `not_started`.
        for (status, n) in job
            .counts
            .iter()
            .filter(|(s, _)| !matches!(**s, "total" | "excluded"))
        {
            let _ = writeln!(
                out,
                "bistro_tasks{{job=\"{}\",status=\"{status}\"}} {n}",
                escape_label(&job.name)
            );
        }
    }
    let running: usize = input
        .report
        .jobs
        .iter()
        .map(|j| j.counts.get("running").copied().unwrap_or(0))
        .sum();
    let mut gauge = |name: &str, help: &str, value: String| {
        header(&mut out, name, help);
        let _ = writeln!(out, "{name} {value}");
    };
    gauge(
        "bistro_running_tasks",
        "Tasks running now.",
        running.to_string(),
    );
    gauge(
        "bistro_scheduler_enabled",
        "1 when bistro_settings.enabled is true.",
        u8::from(input.report.scheduler.enabled).to_string(),
    );
    gauge(
        "bistro_config_errors",
        "Problems with the config file (the last good config is then in force).",
        input.config_errors.to_string(),
    );
    gauge(
        "bistro_job_errors",
        "Problems inside jobs (those jobs do not run).",
        input.job_errors.to_string(),
    );
    if let Some(tick) = input.last_tick {
        gauge(
            "bistro_last_tick_timestamp_seconds",
            "When the last scheduling iteration started, epoch seconds.",
            tick.time.to_string(),
        );
        gauge(
            "bistro_last_tick_duration_seconds",
            "How long the last scheduling iteration took.",
            format!("{}", tick.duration_ms as f64 / 1000.0),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usecases::report::{JobReport, SchedulerState};
    use std::collections::BTreeMap;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("line\nbreak"), "line\\nbreak");
        assert_eq!(escape_label("plain_job"), "plain_job");
    }

    #[test]
    fn every_job_and_status_is_a_sample() {
        let counts: BTreeMap<&'static str, usize> = [("done", 3), ("running", 1), ("total", 4)]
            .into_iter()
            .collect();
        let report = StatusReport {
            schema_version: 1,
            now: 0,
            scheduler: SchedulerState {
                enabled: true,
                config_error: None,
            },
            jobs: vec![JobReport {
                name: "we\"ird".into(),
                owner: "o".into(),
                enabled: true,
                errors: None,
                level_for_tasks: "l".into(),
                counts,
            }],
            tasks: None,
            orphans: Vec::new(),
            workers: None,
        };
        let tick = LastTick {
            time: 1700000000,
            duration_ms: 1500,
            started: 0,
            finished: 0,
            running: 1,
            errors: 0,
            nodes_error: None,
        };
        let text = render(&MetricsInput {
            report: &report,
            last_tick: Some(&tick),
            config_errors: 0,
            job_errors: 2,
        });
        assert!(text.contains("# TYPE bistro_tasks gauge\n"), "{text}");
        assert!(text.contains("bistro_tasks{job=\"we\\\"ird\",status=\"done\"} 3\n"));
        assert!(!text.contains("status=\"total\""));
        assert!(text.contains("\nbistro_running_tasks 1\n"));
        assert!(text.contains("\nbistro_job_errors 2\n"));
        assert!(text.contains("\nbistro_last_tick_duration_seconds 1.5\n"));
        assert!(text.contains("\nbistro_last_tick_timestamp_seconds 1700000000\n"));
    }
}
