//! A supervisor's own diagnostics (a run it cannot start, a result it cannot write)
//! go through `tracing` with one of the targets here, which names the program that
//! speaks. [`init`] is for the processes that supervise (`bistro supervise`, whose
//! stderr is `STATE/supervisors.log`, and `bistro run-task`): each such event becomes
//! one line `TARGET: message` on stderr, written at once so that hosts sharing the log
//! never interleave their lines. Warnings of the rest of the library (a node script's
//! stderr, fetched by `run-task`) become `bistro: warning: message` lines.

use std::fmt;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// The target of what a supervisor (a host, or the event loop in any process) says.
pub const SUPERVISE: &str = "bistro supervise";

/// The target of what `bistro run-task` says of its one run.
pub const RUN_TASK: &str = "bistro run-task";

/// Sends the events of [`SUPERVISE`] and [`RUN_TASK`] to stderr, one line each, as
/// `TARGET: message`, and other warnings and errors as `bistro: warning: message`;
/// other events are dropped. Does nothing if this process already has a subscriber.
pub fn init() {
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        // Its complaint about a closed stderr goes through `eprintln!`, which panics.
        .log_internal_errors(false)
        .event_format(Prefixed)
        .with_filter(filter_fn(|meta| {
            matches!(meta.target(), SUPERVISE | RUN_TASK) || *meta.level() <= Level::WARN
        }));
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

/// Formats an event as `TARGET: message` for a supervisor's own, else as
/// `bistro: warning: message` (or `error:`).
struct Prefixed;

impl<S, N> FormatEvent<S, N> for Prefixed
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        match event.metadata().target() {
            target @ (SUPERVISE | RUN_TASK) => write!(writer, "{target}: ")?,
            _ if *event.metadata().level() == Level::ERROR => write!(writer, "bistro: error: ")?,
            _ => write!(writer, "bistro: warning: ")?,
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
