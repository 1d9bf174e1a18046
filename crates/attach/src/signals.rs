//! The signals the client handles, blocked and read through a signalfd in the relay loop, so no
//! work happens in a signal handler.

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// The signals whose default action ends the process and that `kill` sends to a running program,
/// each read as a request to exit once the terminal is restored.
///
/// Left out: SIGPIPE, which the Rust runtime ignores, so a closed output shows up as EPIPE.
/// SIGIO, which an fd with O_ASYNC sends on readiness, so it must not read as an exit request.
/// The fault signals (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS), which the kernel delivers
/// to the faulting thread even while blocked, and SIGABRT, which abort(3) unblocks. The real-time signals
/// SIGRTMIN to SIGRTMAX are added by [`handled_set`].
// NOTE: `kill -IO` therefore still ends the client without restoring the terminal.
const EXIT_SIGNALS: [libc::c_int; 13] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGTERM,
    libc::SIGSTKFLT,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGPWR,
];

/// A signal the relay loop acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// The user's terminal changed size.
    WindowChange,
    /// SIGTSTP: a request to stop for job control, from `kill -TSTP` or the shell.
    Stop,
    /// SIGCONT: the process runs again after a stop, or was sent SIGCONT while running.
    Continue,
    /// A request to exit, with its number: one of [`EXIT_SIGNALS`] or a real-time signal.
    Exit(libc::c_int),
}

/// Errors from setting up signal delivery.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// pthread_sigmask failed.
    #[error("failed to block SIGWINCH, SIGTSTP, SIGCONT and the exit signals: {0}")]
    Block(#[source] io::Error),
    /// signalfd failed.
    #[error("failed to create a signalfd for SIGWINCH and the exit signals: {0}")]
    Create(#[source] io::Error),
}

/// A non-blocking signalfd for the handled signals, which stay blocked for the whole process.
#[derive(Debug)]
pub struct SignalFd {
    fd: OwnedFd,
}

impl SignalFd {
    /// Blocks the handled signals in the calling thread and opens a signalfd for them.
    ///
    /// Call this before any other thread starts, so every thread inherits the mask and no
    /// signal is delivered the default way.
    pub fn new() -> Result<Self, SignalError> {
        let set = handled_set();
        // SAFETY: pthread_sigmask reads the set, a live local, and the old-set pointer is null.
        let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if ret != 0 {
            return Err(SignalError::Block(io::Error::from_raw_os_error(ret)));
        }
        let flags = libc::SFD_NONBLOCK | libc::SFD_CLOEXEC;
        // SAFETY: signalfd reads the set, a live local; -1 asks for a new fd.
        let fd = unsafe { libc::signalfd(-1, &set, flags) };
        if fd == -1 {
            return Err(SignalError::Create(io::Error::last_os_error()));
        }
        // SAFETY: signalfd returned a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(SignalFd { fd })
    }

    /// Reads one pending signal, or returns `None` when none is pending.
    pub fn read(&self) -> io::Result<Option<Signal>> {
        let mut info = MaybeUninit::<libc::signalfd_siginfo>::uninit();
        let size = size_of::<libc::signalfd_siginfo>();
        // SAFETY: read writes at most `size` bytes into `info`, which is that large.
        let ret = unsafe { libc::read(self.fd.as_raw_fd(), info.as_mut_ptr().cast(), size) };
        if ret == -1 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(err),
            };
        }
        if ret as usize != size {
            return Err(io::Error::other("short read from signalfd"));
        }
        // SAFETY: the kernel filled the whole struct, as the length check above confirms.
        let info = unsafe { info.assume_init() };
        Ok(Some(classify(info.ssi_signo as libc::c_int)))
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Builds the set read through the signalfd: resizes, job control and every exit request.
fn handled_set() -> libc::sigset_t {
    let mut set = empty_set();
    let job_control = [libc::SIGWINCH, libc::SIGTSTP, libc::SIGCONT];
    let real_time = libc::SIGRTMIN()..=libc::SIGRTMAX();
    for signal in job_control.into_iter().chain(EXIT_SIGNALS).chain(real_time) {
        // SAFETY: sigaddset edits the initialized local set; every number added is valid.
        unsafe { libc::sigaddset(&mut set, signal) };
    }
    set
}

fn empty_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initializes the whole set through the pointer.
    unsafe { libc::sigemptyset(set.as_mut_ptr()) };
    // SAFETY: sigemptyset above initialized the set.
    unsafe { set.assume_init() }
}

fn classify(number: libc::c_int) -> Signal {
    match number {
        libc::SIGWINCH => Signal::WindowChange,
        libc::SIGTSTP => Signal::Stop,
        libc::SIGCONT => Signal::Continue,
        _ => Signal::Exit(number),
    }
}

/// Stops the process the way SIGTSTP does by default: raises it, unblocks it so that the kernel
/// stops every thread, and blocks it again once the process continues.
///
/// Returns after SIGCONT, which stays pending for the signalfd. It returns at once when the
/// kernel discards the stop, as it does in an orphaned process group, where no shell could
/// continue the process, or when SIGTSTP is ignored.
pub fn stop_self() {
    let mut set = empty_set();
    // SAFETY: sigaddset edits the initialized local set with a valid signal number.
    unsafe { libc::sigaddset(&mut set, libc::SIGTSTP) };
    // SAFETY: raise takes the number by value; the signal stays pending while it is blocked.
    unsafe { libc::raise(libc::SIGTSTP) };
    // SAFETY: pthread_sigmask reads the live local set. The pending SIGTSTP is delivered, with its
    // default action, before the call returns.
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    // SAFETY: as above; blocking it again sends the next SIGTSTP to the signalfd.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// Ends the process the way `signal` would have without the signalfd, so that the parent sees
/// the signal in the wait status. Returns only if the signal did not end the process.
pub fn die_by(signal: libc::c_int) {
    let mut set = empty_set();
    // SAFETY: sigaddset edits the initialized local set with a signal number the kernel sent.
    unsafe { libc::sigaddset(&mut set, signal) };
    // SAFETY: resetting the disposition to the default touches no memory of ours.
    unsafe { libc::signal(signal, libc::SIG_DFL) };
    // SAFETY: raise takes the number by value.
    unsafe { libc::raise(signal) };
    // SAFETY: pthread_sigmask reads the live local set; the signal, pending since raise, is
    // delivered as soon as it is unblocked.
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signalfd_reads_raised_signals() {
        let signals = SignalFd::new().unwrap();
        assert_eq!(signals.read().unwrap(), None);
        // SAFETY: pthread_kill takes its arguments by value; the signal is blocked in this
        // thread, so it stays pending for the signalfd.
        unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGWINCH) };
        assert_eq!(signals.read().unwrap(), Some(Signal::WindowChange));
        // SAFETY: as above.
        unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGHUP) };
        assert_eq!(signals.read().unwrap(), Some(Signal::Exit(libc::SIGHUP)));
        assert_eq!(signals.read().unwrap(), None);
    }

    #[test]
    fn signalfd_reads_job_control_and_exit_signals() {
        let signals = SignalFd::new().unwrap();
        let cases = [
            (libc::SIGTSTP, Signal::Stop),
            (libc::SIGCONT, Signal::Continue),
            (libc::SIGQUIT, Signal::Exit(libc::SIGQUIT)),
            (libc::SIGUSR1, Signal::Exit(libc::SIGUSR1)),
            (libc::SIGALRM, Signal::Exit(libc::SIGALRM)),
            (libc::SIGPWR, Signal::Exit(libc::SIGPWR)),
            (libc::SIGRTMIN() + 1, Signal::Exit(libc::SIGRTMIN() + 1)),
            (libc::SIGRTMAX(), Signal::Exit(libc::SIGRTMAX())),
        ];
        for (number, expected) in cases {
            // SAFETY: pthread_kill takes its arguments by value; the signal is blocked in this
            // thread, so it stays pending for the signalfd.
            unsafe { libc::pthread_kill(libc::pthread_self(), number) };
            assert_eq!(signals.read().unwrap(), Some(expected), "signal {number}");
        }
        assert_eq!(signals.read().unwrap(), None);
    }

    #[test]
    fn stop_self_stops_until_continued() {
        // SAFETY: the child only makes system calls that allocate nothing and take no lock, so
        // it is safe to run after fork in a multithreaded test process, and it ends in _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let status = stopped_child_status();
            // SAFETY: _exit ends the child without running the parent's destructors.
            unsafe { libc::_exit(status) };
        }

        let mut status = 0;
        // SAFETY: waitpid writes the status into the live local.
        let waited = unsafe { libc::waitpid(pid, &mut status, libc::WUNTRACED) };
        assert_eq!(waited, pid);
        assert!(
            libc::WIFSTOPPED(status),
            "child not stopped: status {status:#x}"
        );
        assert_eq!(libc::WSTOPSIG(status), libc::SIGTSTP);
        // SAFETY: kill takes its arguments by value; the pid is the stopped child.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
        // SAFETY: as above.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(waited, pid);
        assert!(
            libc::WIFEXITED(status),
            "child not exited: status {status:#x}"
        );
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "0: it read SIGCONT after the stop"
        );
    }

    /// Runs in the forked child: stops itself and returns 0 if it then reads the SIGCONT that
    /// ended the stop. Async-signal-safe: raw system calls, no allocation, no unwinding.
    fn stopped_child_status() -> libc::c_int {
        // SAFETY: setpgid takes its arguments by value. A group of its own whose parent is in
        // another group of the same session is not orphaned, so SIGTSTP stops it.
        unsafe { libc::setpgid(0, 0) };
        let Ok(signals) = SignalFd::new() else {
            return 1;
        };
        stop_self();
        match signals.read() {
            Ok(Some(Signal::Continue)) => 0,
            _ => 2,
        }
    }
}
