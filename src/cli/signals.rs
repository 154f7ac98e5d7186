//! SIGINT and SIGTERM for the long-running commands (`daemon`, `serve-http`): they
//! set a flag, and the command finishes what it is doing and exits cleanly.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by SIGINT or SIGTERM once [`stop_on_signals`] has been called.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: i32) {
    STOP.store(true, Ordering::SeqCst);
}

/// Routes SIGINT and SIGTERM to the returned flag.
pub(super) fn stop_on_signals() -> &'static AtomicBool {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_stop_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            let _ = sigaction(signal, &action);
        }
    }
    &STOP
}
