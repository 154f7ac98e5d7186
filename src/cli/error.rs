//! A command's failure on its way to the exit code: the error with its causes, and
//! its [`ErrorKind`], taken from the library error it started as ([`HasKind`]).

use super::ExitCode;
use crate::foundation::error::{ErrorKind, HasKind};

/// A failed command: what to say, and which exit code to end with.
#[derive(Debug)]
pub struct CliError {
    kind: ErrorKind,
    error: anyhow::Error,
}

impl<E: HasKind + std::error::Error + Send + Sync + 'static> From<E> for CliError {
    fn from(error: E) -> Self {
        Self {
            kind: error.kind(),
            error: error.into(),
        }
    }
}

/// An error said in words only (`anyhow`) is a runtime failure.
impl From<anyhow::Error> for CliError {
    fn from(error: anyhow::Error) -> Self {
        Self {
            kind: ErrorKind::Runtime,
            error,
        }
    }
}

impl CliError {
    /// A usage error said in words (exit 2): the user must change the command line.
    pub fn usage(error: anyhow::Error) -> Self {
        Self {
            kind: ErrorKind::Usage,
            error,
        }
    }

    /// The same failure, said after `context`.
    pub fn context(self, context: String) -> Self {
        Self {
            kind: self.kind,
            error: self.error.context(context),
        }
    }

    /// The exit code a script should see.
    pub fn exit_code(&self) -> i32 {
        let code = match self.kind {
            ErrorKind::Usage => ExitCode::Usage,
            ErrorKind::Runtime => ExitCode::Failure,
            ErrorKind::Locked => ExitCode::Locked,
        };
        code as i32
    }

    /// The error and its causes in one line (see [`error_message`]).
    pub fn message(&self) -> String {
        error_message(&self.error)
    }

    /// True when the error is a closed stdout (`bistro status | head -1`): not a
    /// failure.
    pub fn is_broken_pipe(&self) -> bool {
        self.error.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
        })
    }
}

/// The error and its causes in one line, each cause said once: many errors already
/// quote their source in their own message (`creating X: No such file`), so a cause
/// the message so far already ends with is not repeated.
pub fn error_message(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Writing output failed.
impl HasKind for std::io::Error {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Runtime
    }
}

/// Encoding output failed.
impl HasKind for serde_json::Error {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Runtime
    }
}
