//! The signal dispositions of a supervisor and of the process that starts its host:
//! handlers that only touch atomics, the worker-death watch, and the stop signals held
//! back while a host starts.

use super::constants::{KILL_REQUEST_SIGNAL, STOP_SIGNALS, WORKER_DEATH_SIGNAL};
use nix::sys::signal::{SigAction, SigSet, Signal};

/// Installs `handler` for `signal` (recorded first, so the tasks this process starts
/// get the signal's default back). The handlers given here only touch atomics and
/// write to a pipe.
pub fn handle_signal(signal: Signal, handler: extern "C" fn(i32)) {
    super::spawn::record_handler(signal);
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    let action = SigAction::new(
        SigHandler::Handler(handler),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: every handler passed here only stores to atomics, which is
    // async-signal-safe.
    unsafe {
        let _ = sigaction(signal, &action);
    }
}

/// Arms the worker-death signal with `handler`: true when it is armed and the worker
/// is still our parent (else the worker is gone already, and the caller acts at once).
pub fn watch_worker(worker: i32, handler: extern "C" fn(i32)) -> bool {
    handle_signal(WORKER_DEATH_SIGNAL, handler);
    nix::sys::prctl::set_pdeathsig(WORKER_DEATH_SIGNAL).is_ok()
        && nix::unistd::getppid().as_raw() == worker
}

/// Puts the default dispositions back once the task is over.
pub fn restore_signal_handlers() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    let action = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in STOP_SIGNALS.into_iter().chain([KILL_REQUEST_SIGNAL]) {
        // SAFETY: restoring the default disposition.
        unsafe {
            let _ = sigaction(sig, &action);
        }
    }
}

/// SIGINT, SIGHUP and SIGTERM held back while a supervisor host starts: ignored, which
/// the host keeps across exec until it has left our process group (a Ctrl-C or
/// hang-up meant for us must not reach it), and blocked in this thread, so that one
/// sent to us meanwhile stays pending instead of being lost (Linux never discards a
/// blocked signal, even an ignored one) and reaches our restored handler on drop. The
/// host inherits the mask too (std leaves it), and unblocks them once it handles them
/// (`RunLoop::new`).
pub struct HoldStopSignals {
    previous: Vec<(Signal, SigAction)>,
    mask: SigSet,
}

impl HoldStopSignals {
    /// Holds back the stop signals until dropped.
    pub fn install() -> Self {
        Self::hold(&[Signal::SIGINT, Signal::SIGHUP, Signal::SIGTERM])
    }

    fn hold(signals: &[Signal]) -> Self {
        use nix::sys::signal::{pthread_sigmask, sigaction, SaFlags, SigHandler, SigmaskHow};
        let held: SigSet = signals.iter().copied().collect();
        let mut mask = SigSet::empty();
        let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&held), Some(&mut mask));
        let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        let previous = signals
            .iter()
            // SAFETY: installing SIG_IGN runs no code in signal context.
            .filter_map(|&sig| {
                unsafe { sigaction(sig, &ignore) }
                    .ok()
                    .map(|old| (sig, old))
            })
            .collect();
        Self { previous, mask }
    }
}

impl Drop for HoldStopSignals {
    fn drop(&mut self) {
        for (sig, old) in &self.previous {
            // SAFETY: restores the disposition that was in place before.
            unsafe {
                let _ = nix::sys::signal::sigaction(*sig, old);
            }
        }
        // Only now: a signal that came meanwhile goes to the restored handler.
        let _ = nix::sys::signal::pthread_sigmask(
            nix::sys::signal::SigmaskHow::SIG_SETMASK,
            Some(&self.mask),
            None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_that_comes_while_signals_are_held_reaches_the_handler_once_released() {
        use nix::sys::signal::{raise, sigaction, SaFlags, SigHandler};
        use std::sync::atomic::{AtomicUsize, Ordering};
        static GOT: AtomicUsize = AtomicUsize::new(0);
        extern "C" fn count(_: i32) {
            GOT.fetch_add(1, Ordering::SeqCst);
        }
        // A signal nothing else in this process handles (its default is to ignore).
        let handler = SigAction::new(
            SigHandler::Handler(count),
            SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: the handler only adds to an atomic.
        unsafe { sigaction(Signal::SIGWINCH, &handler) }.unwrap();
        let held = HoldStopSignals::hold(&[Signal::SIGWINCH]);
        raise(Signal::SIGWINCH).unwrap();
        assert_eq!(GOT.load(Ordering::SeqCst), 0, "held back");
        drop(held);
        assert_eq!(GOT.load(Ordering::SeqCst), 1, "delivered once released");
    }
}
