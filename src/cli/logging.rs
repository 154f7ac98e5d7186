//! Diagnostics of the library (`tracing`) on stderr for the long-running commands
//! (`daemon`, `worker`): timestamped and levelled. The others print one line per
//! warning ([`crate::execution::supervisor::diagnostics`]).

use std::io::IsTerminal;

/// The level logged without `BISTRO_LOG`: warnings, more with each `-v`; a command
/// watched on a terminal (`info_on_terminal`) also shows what Bistro's getting-started
/// text promises to be logged (task starts and finishes) without `-v`, while under
/// systemd or a pipe it stays quiet.
fn default_level(verbose: u8, info_on_terminal: bool, terminal: bool) -> &'static str {
    match verbose {
        0 if info_on_terminal && terminal => "info",
        0 => "warn",
        1 => "info",
        _ => "debug",
    }
}

/// Logs to stderr through `tracing` at [`default_level`], or as `BISTRO_LOG` says.
pub(super) fn init(verbose: u8, info_on_terminal: bool) {
    let terminal = std::io::stderr().is_terminal();
    let default = default_level(verbose, info_on_terminal, terminal);
    let filter = tracing_subscriber::EnvFilter::try_from_env("BISTRO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let colour = terminal && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false)
        // Its complaint about a closed stderr goes through `eprintln!`, which panics.
        .log_internal_errors(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::default_level;

    #[test]
    fn starts_and_finishes_show_on_a_terminal_and_v_adds_more_anywhere() {
        assert_eq!(default_level(0, true, true), "info");
        assert_eq!(default_level(0, true, false), "warn");
        assert_eq!(default_level(0, false, true), "warn");
        assert_eq!(default_level(1, false, false), "info");
        assert_eq!(default_level(2, true, true), "debug");
    }
}
