//! Diagnostics of the library (`tracing`) on stderr for the long-running commands
//! (`daemon`, `worker`): timestamped and levelled. The others print one line per
//! warning ([`crate::execution::supervisor::diagnostics`]).

use std::io::IsTerminal;

/// Logs to stderr through `tracing`: warnings by default, more with `-v`.
pub(super) fn init(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BISTRO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false)
        // Its complaint about a closed stderr goes through `eprintln!`, which panics.
        .log_internal_errors(false)
        .try_init();
}
