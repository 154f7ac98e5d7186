//! Why a server cannot start.

use crate::foundation::error::{ErrorKind, HasKind};
use crate::storage::state::StateError;
use std::net::SocketAddr;

/// Why the server cannot start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The listen address does not parse.
    #[error("cannot listen on {0:?}: expected IP:PORT (e.g. 127.0.0.1:6790, [::1]:6790) or localhost:PORT")]
    BadAddress(String),
    /// An `allow_hosts` entry that is not `NAME` or `NAME:PORT`.
    #[error("--allow-host {0:?}: expected NAME or NAME:PORT (e.g. bistro.example.com, bistro.example.com:6790, [2001:db8::1]:6790)")]
    BadAllowedHost(String),
    /// A non-loopback address without `allow_remote`.
    #[error("refusing to listen on {0}: it is not a loopback address, so other machines could reach the API; pass --allow-remote to do it anyway")]
    NotLoopback(SocketAddr),
    /// The port is taken or not ours to use.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The state directory has no state yet.
    #[error(transparent)]
    NoState(StateError),
    /// The runtime that serves the connections could not start.
    #[error("cannot start the HTTP server's threads: {0}")]
    Runtime(std::io::Error),
    /// The token file could not be created or read.
    #[error(transparent)]
    Token(#[from] StateError),
}

/// A bad address or a state dir without state is the user's to fix (exit 2); a port
/// taken or an unreadable token file is a runtime failure.
impl HasKind for HttpError {
    fn kind(&self) -> ErrorKind {
        match self {
            HttpError::BadAddress(_)
            | HttpError::BadAllowedHost(_)
            | HttpError::NotLoopback(_)
            | HttpError::NoState(_) => ErrorKind::Usage,
            HttpError::Bind { .. } | HttpError::Runtime(_) | HttpError::Token(_) => {
                ErrorKind::Runtime
            }
        }
    }
}
