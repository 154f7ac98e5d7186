//! How signals reach the loop: the handlers only count what came in atomics and write
//! a byte to the wake pipe, which the loop's `epoll` set watches.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The last stop signal the process got, and how many.
pub(super) static STOP_SIGNAL: AtomicI32 = AtomicI32::new(0);
pub(super) static STOPS: AtomicUsize = AtomicUsize::new(0);
/// How many kill requests the process was told of.
pub(super) static KILL_REQUESTS: AtomicUsize = AtomicUsize::new(0);
/// The remote worker that started this process is gone.
pub(super) static WORKER_GONE: AtomicBool = AtomicBool::new(false);

/// The write end of the wake pipe, for the signal handlers (-1 before it exists).
pub(super) static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

/// The wake pipe (read end, write end): made once, kept for the life of the process,
/// so a handler never writes to a descriptor that was closed and reused.
pub(super) static WAKE_PIPE: OnceLock<(OwnedFd, OwnedFd)> = OnceLock::new();

/// Makes a waiting turn return: the handlers' only way to reach the loop.
pub(super) fn wake() {
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; errno is put back for the code the
        // signal interrupted.
        unsafe {
            let errno = *nix::libc::__errno_location();
            nix::libc::write(fd, [1u8].as_ptr().cast(), 1);
            *nix::libc::__errno_location() = errno;
        }
    }
}

pub(super) extern "C" fn on_stop(signal: i32) {
    STOP_SIGNAL.store(signal, Ordering::SeqCst);
    STOPS.fetch_add(1, Ordering::SeqCst);
    wake();
}

pub(super) extern "C" fn on_kill_request(_: i32) {
    KILL_REQUESTS.fetch_add(1, Ordering::SeqCst);
    wake();
}

pub(super) extern "C" fn on_worker_gone(_: i32) {
    WORKER_GONE.store(true, Ordering::SeqCst);
    wake();
}

pub(super) fn drain_wake_pipe() {
    if let Some((read, _)) = WAKE_PIPE.get() {
        let mut buf = [0u8; 64];
        while nix::unistd::read(read.as_raw_fd(), &mut buf).is_ok_and(|n| n > 0) {}
    }
}
