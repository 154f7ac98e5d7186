//! What a run's supervision adds to its task-log database: the task's output, cut into
//! lines (and echoed by `run-task`), and the run's lifecycle events.

use crate::execution::supervisor::lines::LineCutter;
use crate::execution::supervisor::Launch;
use crate::storage::store::{LogKind, LogLine};
use nix::sys::epoll::Epoll;
use serde_json::Value;
use std::fs::File;
use std::io::Write;

/// One of a task's output pipes.
pub(super) struct Pipe {
    pub(super) file: File,
    pub(super) kind: LogKind,
    pub(super) lines: LineCutter,
    pub(super) echo: Option<Echo>,
}

impl Pipe {
    /// Takes bytes read from the pipe: its complete lines go to `batch`.
    pub(super) fn feed(&mut self, bytes: &[u8], launch: &Launch, batch: &mut Vec<LogLine>) {
        let (kind, echo) = (self.kind, &mut self.echo);
        self.lines.feed(bytes, |text, newline| {
            store_line(kind, echo, launch, batch, text, newline)
        });
    }

    /// Stops reading the pipe: what is left of a line goes to `batch`.
    pub(super) fn close(mut self, launch: &Launch, batch: &mut Vec<LogLine>, epoll: &Epoll) {
        let (kind, echo) = (self.kind, &mut self.echo);
        self.lines
            .finish(|text, newline| store_line(kind, echo, launch, batch, text, newline));
        let _ = epoll.delete(&self.file);
    }
}

/// Adds a line of a task's output to `batch` as the task wrote it, its newline
/// included (as Bistro stores it: `echo x` and `echo -n x` differ), copying it to
/// `echo` if there is one.
pub(super) fn store_line(
    kind: LogKind,
    echo: &mut Option<Echo>,
    launch: &Launch,
    batch: &mut Vec<LogLine>,
    bytes: &[u8],
    newline: bool,
) {
    let mut text = String::from_utf8_lossy(bytes).into_owned();
    if let Some(echo) = echo.as_mut() {
        echo.write_line(&text, newline);
    }
    if newline {
        text.push('\n');
    }
    batch.push(LogLine {
        kind,
        job: launch.job.clone(),
        node: launch.node.clone(),
        time: crate::foundation::time::now(),
        line: text,
    });
}

/// Where `run-task` copies a task's output: our stdout or stderr, with terminal
/// controls escaped when it is a terminal.
pub(super) struct Echo {
    out: Box<dyn Write>,
    terminal: bool,
}

impl Echo {
    pub(super) fn new(kind: LogKind) -> Self {
        use std::io::IsTerminal;
        match kind {
            LogKind::Stderr => Self {
                terminal: std::io::stderr().is_terminal(),
                out: Box::new(std::io::stderr()),
            },
            _ => Self {
                terminal: std::io::stdout().is_terminal(),
                out: Box::new(std::io::stdout()),
            },
        }
    }

    pub(super) fn write_line(&mut self, text: &str, newline: bool) {
        let text = if self.terminal {
            crate::foundation::sanitize::for_terminal(text)
        } else {
            text.into()
        };
        let end = if newline { "\n" } else { "" };
        let _ = write!(self.out, "{text}{end}").and_then(|()| self.out.flush());
    }
}

/// Logs a lifecycle event of a run (bistro-runtime §2.7).
pub(super) fn event(batch: &mut Vec<LogLine>, launch: &Launch, name: &str, extra: Value) {
    batch.push(crate::execution::supervisor::events::event_line(
        launch, name, extra,
    ));
}
