//! Starting a task's process the way `posix_spawn` does (`clone` with `CLONE_VM |
//! CLONE_VFORK`: the child borrows the supervisor's memory until it execs), with
//! Bistro's parent-death signal armed in the child, which `posix_spawn` cannot do.
//!
//! `std::process::Command` forks as soon as a `pre_exec` hook is set, and a fork of a
//! supervisor host (dozens of threads, all their memory write-protected for
//! copy-on-write after every fork) cost more CPU than the task it started. Between
//! `clone` and `exec` the child only makes system calls on data prepared before it,
//! with every signal blocked.

use nix::libc::{self, c_char, c_int, c_void, pid_t};
use nix::sys::signal::Signal;
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The signals this process installed handlers for, bit `n - 1` for signal `n`: the
/// ones a task's child resets before exec (see [`child`]). Bits are never cleared: a
/// reset of a signal whose handler is gone is only a wasted system call.
static HANDLED: AtomicU64 = AtomicU64::new(0);

/// Reset in every child whatever the registry says: std's own SIGSEGV and SIGBUS
/// handlers (stack overflow detection), and SIGPIPE, which std ignores.
const ALWAYS_RESET: u64 = bit(libc::SIGSEGV) | bit(libc::SIGBUS) | bit(libc::SIGPIPE);

const fn bit(signal: c_int) -> u64 {
    1 << (signal - 1)
}

/// Records that this process installs a handler for `signal`, so that the tasks it
/// starts get the signal's default disposition back. Every place that installs a
/// handler calls this first: a task started while the handler is being installed
/// then resets it too.
pub fn record_handler(signal: Signal) {
    HANDLED.fetch_or(bit(signal as c_int), Ordering::SeqCst);
}

/// What to start.
pub struct SpawnSpec<'a> {
    /// Program and arguments; a program without `/` is looked up in `PATH`.
    pub argv: &'a [String],
    /// The working directory.
    pub cwd: &'a Path,
    /// Lead a new process group.
    pub process_group: bool,
    /// The signal the task gets when the thread that started it dies (0: none).
    pub death_signal: i32,
}

/// A started task: its pid, the read ends of its stdout and stderr, and its exit.
pub struct TaskProcess {
    pid: pid_t,
    /// The task's stdout.
    pub stdout: Option<File>,
    /// The task's stderr.
    pub stderr: Option<File>,
}

impl TaskProcess {
    /// The task's pid.
    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    /// The task's exit, once it exited (it is then reaped).
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        let mut status: c_int = 0;
        loop {
            // SAFETY: waitpid on our own child with a valid status pointer.
            let reaped = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            match reaped {
                0 => return Ok(None),
                p if p == self.pid => return Ok(Some(ExitStatus::from_raw(status))),
                _ => {
                    let e = std::io::Error::last_os_error();
                    if e.kind() != std::io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
    }
}

/// Everything the child reads, prepared by the parent: the child allocates nothing.
#[repr(C)]
struct ChildArgs {
    program: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    cwd: *const c_char,
    stdin: c_int,
    stdout: c_int,
    stderr: c_int,
    process_group: bool,
    death_signal: c_int,
    parent: pid_t,
    mask: libc::sigset_t,
    /// Set by the child when it fails before `exec`.
    error: c_int,
    /// Set by the child before it enters `cwd`, and cleared once in it.
    in_chdir: bool,
}

/// The child's side: system calls only, then `exec`.
extern "C" fn child(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` points to the parent's ChildArgs, alive while the parent waits
    // (CLONE_VFORK). Only async-signal-safe calls follow.
    unsafe {
        let a = &mut *(arg as *mut ChildArgs);
        let fail = |a: &mut ChildArgs| -> c_int {
            a.error = *libc::__errno_location();
            libc::_exit(127)
        };
        // A handler of ours, run by the child between unmasking and `execve`, would
        // work on the parent's memory (CLONE_VM): the signals we handle go back to
        // their default. `execve` itself resets handled signals, so that window is the
        // only danger, and only the signals we installed handlers for need the reset:
        // those recorded by [`record_handler`] (read now, not when the parent cloned)
        // and std's own. Ignored signals stay ignored across exec, but SIGPIPE, which
        // Rust ignores, is restored as std does.
        let mut signals = HANDLED.load(Ordering::SeqCst) | ALWAYS_RESET;
        while signals != 0 {
            let sig = signals.trailing_zeros() as c_int + 1;
            signals &= signals - 1;
            let mut old: libc::sigaction = std::mem::zeroed();
            if sig == libc::SIGPIPE
                || (libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                    && old.sa_sigaction != libc::SIG_DFL
                    && old.sa_sigaction != libc::SIG_IGN)
            {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        if a.process_group && libc::setpgid(0, 0) != 0 {
            return fail(a);
        }
        if a.death_signal > 0 {
            if libc::prctl(libc::PR_SET_PDEATHSIG, a.death_signal as libc::c_ulong) != 0 {
                return fail(a);
            }
            // The supervisor may have died before the signal was armed.
            if libc::getppid() != a.parent {
                libc::_exit(1);
            }
        }
        if libc::dup2(a.stdin, 0) < 0 || libc::dup2(a.stdout, 1) < 0 || libc::dup2(a.stderr, 2) < 0
        {
            return fail(a);
        }
        // Every other descriptor is close-on-exec, but tasks start side by side (see
        // `spawner`): until this child execs, its copies of another start's pipes
        // would hold that task's output open past its end. A kernel without
        // close_range leaves them to exec.
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            0 as libc::c_uint,
        );
        a.in_chdir = true;
        if libc::chdir(a.cwd) != 0 {
            return fail(a);
        }
        a.in_chdir = false;
        libc::pthread_sigmask(libc::SIG_SETMASK, &a.mask, std::ptr::null_mut());
        libc::execve(a.program, a.argv, a.envp);
        fail(a)
    }
}

/// `fd`, or a close-on-exec copy of it numbered 3 or more when it is 0, 1 or 2.
fn above_stdio(fd: OwnedFd) -> Result<OwnedFd, SpawnError> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    let copy = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))
        .map_err(SpawnError::AboveStdio)?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that we own.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(copy) })
}

/// `/dev/null`, every task's stdin: opened once for the life of the process (above
/// stdio, close-on-exec), rather than opened and closed for each task.
fn dev_null() -> Result<BorrowedFd<'static>, SpawnError> {
    static DEV_NULL: OnceLock<OwnedFd> = OnceLock::new();
    if let Some(null) = DEV_NULL.get() {
        return Ok(null.as_fd());
    }
    let null: OwnedFd = File::open("/dev/null").map_err(SpawnError::DevNull)?.into();
    let null = above_stdio(null)?;
    // A thread that lost the race drops its copy.
    Ok(DEV_NULL.get_or_init(|| null).as_fd())
}

/// The environment every task gets: this process's, as `NAME=value` strings made at
/// the first start and kept, rather than made again for each task. Bistro never
/// changes its own environment after startup (nothing calls `std::env::set_var`), so
/// the copy stays true.
fn environment() -> Result<&'static [CString], SpawnError> {
    static ENVIRONMENT: OnceLock<Vec<CString>> = OnceLock::new();
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    let env = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            cstring(&kv, "the environment")
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ENVIRONMENT.get_or_init(|| env))
}

/// This process's pid, asked of the kernel once (Bistro never forks without exec, so
/// it never changes under us).
fn our_pid() -> pid_t {
    static PID: OnceLock<pid_t> = OnceLock::new();
    *PID.get_or_init(|| std::process::id() as pid_t)
}

fn cstring(bytes: &[u8], what: &'static str) -> Result<CString, SpawnError> {
    CString::new(bytes).map_err(|_| SpawnError::Nul(what))
}

/// The program to exec: `program` itself when it names a path, else the first
/// executable of that name in `PATH`.
fn resolve(program: &str) -> Result<PathBuf, SpawnError> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            CString::new(candidate.as_os_str().as_bytes())
                // SAFETY: access on a NUL-terminated path.
                .is_ok_and(|c| unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0)
                && candidate.is_file()
        })
        .ok_or(SpawnError::NotInPath)
}

/// The size of the stack the child runs on until it execs.
const CHILD_STACK: usize = 64 * 1024;

/// Why a task did not start.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The command has no program.
    #[error("empty command")]
    EmptyCommand,
    /// The program is not in `PATH`.
    #[error("No such file or directory (not found in PATH)")]
    NotInPath,
    /// A string handed to the task cannot be one (it says what).
    #[error("{0} contains a NUL byte")]
    Nul(&'static str),
    /// Moving a descriptor above 0, 1 and 2 failed.
    #[error("moving a descriptor above stdio: {0}")]
    AboveStdio(nix::Error),
    /// `/dev/null` could not be opened.
    #[error("/dev/null: {0}")]
    DevNull(std::io::Error),
    /// The task's pipes could not be made.
    #[error("{0}")]
    Pipe(nix::Error),
    /// The child process could not be made.
    #[error("cannot start {program:?}: {source}")]
    Clone {
        /// The program.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The child could not enter the task's working directory.
    #[error("cannot enter the working directory {}: {source}", cwd.display())]
    Cwd {
        /// The working directory.
        cwd: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The working directory was missing and could not be made.
    #[error("cannot create working directory {}: {source}", cwd.display())]
    CreateCwd {
        /// The working directory.
        cwd: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The child could not exec the program.
    #[error("cannot run {program:?}: {source}")]
    Exec {
        /// The program.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl SpawnError {
    /// The working directory (or a directory above it) does not exist: the start may
    /// succeed once it is made.
    pub fn missing_cwd(&self) -> bool {
        matches!(self, Self::Cwd { source, .. } if source.raw_os_error() == Some(libc::ENOENT))
    }
}

/// Starts the task with stdin from `/dev/null`, stdout and stderr piped to us, and
/// this process's environment (as it was at the first start).
pub fn spawn(spec: &SpawnSpec) -> Result<TaskProcess, SpawnError> {
    let (program, _) = spec.argv.split_first().ok_or(SpawnError::EmptyCommand)?;
    let path = resolve(program)?;
    let program_c = cstring(path.as_os_str().as_bytes(), "the command")?;
    let argv_c = spec
        .argv
        .iter()
        .map(|a| cstring(a.as_bytes(), "an argument"))
        .collect::<Result<Vec<_>, _>>()?;
    let cwd_c = cstring(
        OsStr::as_bytes(spec.cwd.as_os_str()),
        "the working directory",
    )?;
    let mut argv: Vec<*const c_char> = argv_c.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const c_char> = environment()?.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());

    let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(SpawnError::Pipe);
    let (out_r, out_w): (OwnedFd, OwnedFd) = pipe()?;
    let (err_r, err_w): (OwnedFd, OwnedFd) = pipe()?;
    // With one of our own 0, 1, 2 closed, a new descriptor can take its number, and the
    // child's dup2 onto it would then keep its close-on-exec flag: move them above 2.
    let (null, out_w, err_w) = (dev_null()?, above_stdio(out_w)?, above_stdio(err_w)?);

    let mut args = ChildArgs {
        program: program_c.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: cwd_c.as_ptr(),
        stdin: null.as_raw_fd(),
        stdout: out_w.as_raw_fd(),
        stderr: err_w.as_raw_fd(),
        process_group: spec.process_group,
        death_signal: spec.death_signal,
        parent: our_pid(),
        // SAFETY: a zeroed sigset_t is a valid value, filled by pthread_sigmask below.
        mask: unsafe { std::mem::zeroed() },
        error: 0,
        in_chdir: false,
    };
    // The child's stack: only the child writes it, so it is not zeroed first.
    let mut stack: Vec<u8> = Vec::with_capacity(CHILD_STACK);
    // SAFETY: the stack grows down from its 16-byte aligned top; the child runs
    // `child` on it with every signal blocked while this thread waits (CLONE_VFORK);
    // ChildArgs and the strings it points to outlive the child's use of them.
    let pid = unsafe {
        let top = stack.as_mut_ptr().add(CHILD_STACK) as usize & !15;
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut args.mask);
        let pid = libc::clone(
            child,
            top as *mut c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &mut args as *mut ChildArgs as *mut c_void,
        );
        let clone_error = std::io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &args.mask, std::ptr::null_mut());
        if pid < 0 {
            return Err(SpawnError::Clone {
                program: program.clone(),
                source: clone_error,
            });
        }
        pid
    };
    drop(stack);
    // SAFETY: the child is gone or exec'd: nothing writes `error` or `in_chdir` any
    // more.
    let (error, in_chdir) = unsafe {
        (
            std::ptr::read_volatile(&args.error),
            std::ptr::read_volatile(&args.in_chdir),
        )
    };
    let mut task = TaskProcess {
        pid,
        stdout: Some(File::from(out_r)),
        stderr: Some(File::from(err_r)),
    };
    if error != 0 {
        // The child exited with 127 before exec: reap it.
        while matches!(task.try_wait(), Ok(None)) {
            std::thread::yield_now();
        }
        let why = std::io::Error::from_raw_os_error(error);
        if in_chdir {
            return Err(SpawnError::Cwd {
                cwd: spec.cwd.to_path_buf(),
                source: why,
            });
        }
        return Err(SpawnError::Exec {
            program: program.clone(),
            source: why,
        });
    }
    Ok(task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn run(argv: &[&str], cwd: &Path) -> Result<(String, String, ExitStatus), SpawnError> {
        let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
        let mut task = spawn(&SpawnSpec {
            argv: &argv,
            cwd,
            process_group: true,
            death_signal: 9,
        })?;
        let (mut out, mut err) = (String::new(), String::new());
        task.stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        task.stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        loop {
            if let Some(status) = task.try_wait().unwrap() {
                return Ok((out, err, status));
            }
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_task_gets_its_arguments_cwd_environment_and_own_group_and_pipes() {
        let dir = tempfile::tempdir().unwrap();
        let (out, err, status) = run(
            &[
                "sh",
                "-c",
                "pwd; echo \"$1\"; test -n \"$PATH\" && echo env; ps -o pgid= -p $$ | tr -d ' '; echo $$; echo oops >&2; exit 3",
                "sh",
                "a b",
            ],
            dir.path(),
        )
        .unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            Path::new(lines[0]).canonicalize().unwrap(),
            dir.path().canonicalize().unwrap()
        );
        assert_eq!(lines[1], "a b");
        assert_eq!(lines[2], "env");
        assert_eq!(lines[3], lines[4], "the task leads its own process group");
        assert_eq!(err, "oops\n");
        assert_eq!(status.code(), Some(3));
    }

    #[test]
    fn every_task_reads_an_empty_stdin_from_a_dev_null_it_does_not_inherit() {
        let dir = tempfile::tempdir().unwrap();
        let script = "read line; echo $?; for f in /proc/$$/fd/*; do echo ${f##*/}; done";
        for _ in 0..2 {
            let (out, _, status) = run(&["sh", "-c", script], dir.path()).unwrap();
            let mut lines = out.lines();
            assert_eq!(lines.next(), Some("1"), "stdin is at its end: {out}");
            let ours = dev_null().unwrap().as_raw_fd().to_string();
            assert!(lines.all(|fd| fd != ours), "our /dev/null leaked: {out}");
            assert_eq!(status.code(), Some(0));
        }
    }

    #[test]
    fn a_missing_program_or_directory_is_an_error_not_a_task() {
        let dir = tempfile::tempdir().unwrap();
        let missing = run(&["no-such-program-here"], dir.path()).unwrap_err();
        assert!(missing.to_string().contains("No such file"), "{missing}");
        assert!(!missing.missing_cwd());
        let gone = dir.path().join("gone");
        let no_cwd = run(&["true"], &gone).unwrap_err();
        assert!(no_cwd.missing_cwd());
        let message = no_cwd.to_string();
        assert!(message.contains("working directory"), "{message}");
        assert!(message.contains(&gone.display().to_string()), "{message}");
    }

    extern "C" fn no_op(_: i32) {}

    #[test]
    fn a_task_gets_the_default_disposition_of_a_signal_we_handle() {
        super::super::signals::handle_signal(Signal::SIGUSR1, no_op);
        assert_ne!(HANDLED.load(Ordering::SeqCst) & bit(libc::SIGUSR1), 0);
        let dir = tempfile::tempdir().unwrap();
        let (out, _, status) =
            run(&["sh", "-c", "kill -USR1 $$; echo survived"], dir.path()).unwrap();
        assert_eq!(out, "");
        assert_eq!(status.signal(), Some(libc::SIGUSR1));
    }

    #[test]
    fn a_task_inherits_an_ignored_signal_even_one_once_handled() {
        use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
        super::super::signals::handle_signal(Signal::SIGVTALRM, no_op);
        let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        // SAFETY: installing SIG_IGN runs no code in signal context.
        unsafe { sigaction(Signal::SIGVTALRM, &ignore) }.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (out, _, status) =
            run(&["sh", "-c", "kill -VTALRM $$; echo survived"], dir.path()).unwrap();
        assert_eq!(out, "survived\n");
        assert_eq!(status.code(), Some(0));
    }

    #[test]
    fn a_task_dies_with_the_thread_that_started_it() {
        let dir = tempfile::tempdir().unwrap();
        let argv = vec!["sleep".to_string(), "1000".to_string()];
        let cwd = dir.path().to_path_buf();
        let pid = std::thread::spawn(move || {
            let task = spawn(&SpawnSpec {
                argv: &argv,
                cwd: &cwd,
                process_group: true,
                death_signal: 9,
            })
            .unwrap();
            task.id() as pid_t
        })
        .join()
        .unwrap();
        // Its parent thread is gone: the task got SIGKILL; reap it.
        let mut status = 0;
        // SAFETY: waitpid on our own child.
        let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(reaped, pid);
        assert_eq!(ExitStatus::from_raw(status).signal(), Some(9));
    }
}
