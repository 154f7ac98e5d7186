//! SIGINT and SIGTERM for the long-running commands (`daemon`, `serve-http`): they
//! set a flag, and the command finishes what it is doing and exits cleanly.

use nix::sys::signal::Signal;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by SIGINT or SIGTERM once [`stop_on_signals`] has been called.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: i32) {
    STOP.store(true, Ordering::SeqCst);
}

/// Routes SIGINT and SIGTERM to the returned flag.
pub(super) fn stop_on_signals() -> &'static AtomicBool {
    stop_on(&[Signal::SIGINT, Signal::SIGTERM])
}

/// Routes `signals` to the returned flag (a worker also stops on SIGHUP and SIGQUIT,
/// as Bistro's does); the handlers are recorded for the tasks this process starts to
/// reset.
pub(super) fn stop_on(signals: &[Signal]) -> &'static AtomicBool {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    let action = SigAction::new(
        SigHandler::Handler(on_stop_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for &signal in signals {
        crate::execution::supervisor::spawn::record_handler(signal);
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            let _ = sigaction(signal, &action);
        }
    }
    &STOP
}
