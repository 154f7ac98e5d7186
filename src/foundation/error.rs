//! What kind of failure an error is, so the command line can choose its exit code
//! without knowing every error type of the crate: each error type that can reach it
//! says its [`ErrorKind`] through [`HasKind`], delegating to the errors it wraps.

/// The kinds of failure a command can end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A bad command line or configuration: the user must change something.
    Usage,
    /// Something failed while running: it may work another time.
    Runtime,
    /// The state directory is locked by another scheduling command: try again later.
    Locked,
}

/// An error that knows its [`ErrorKind`].
pub trait HasKind {
    /// What kind of failure this is.
    fn kind(&self) -> ErrorKind;
}
