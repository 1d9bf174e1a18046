//! Signals for programs that take over the user's terminal. Every signal that would end the
//! process, and the job-control signals, are blocked and read through a signalfd. The program
//! then restores the terminal in ordinary code and destructors, not in a signal handler.
//!
//! SIGTTIN and SIGTTOU keep their default action: a program that the shell continued in the
//! background then stops at its first terminal access instead of taking the terminal from the
//! shell, because the kernel lets tcsetattr through from a background group that blocks SIGTTOU.

use std::fmt;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// The signals whose default action ends the process and that `kill` sends to a running program,
/// with their names. The real-time signals SIGRTMIN to SIGRTMAX end it too, and [`SignalFd`]
/// takes them as well.
///
/// Left out: SIGPIPE, which the Rust runtime ignores, so a closed peer shows up as EPIPE.
/// SIGIO, which an fd with O_ASYNC sends on readiness, so it must not read as an exit request.
/// The fault signals (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS), which the kernel delivers
/// to the faulting thread even while blocked, and SIGABRT, which abort(3) unblocks.
// NOTE: `kill -IO` therefore still ends the program without restoring the terminal.
pub const EXIT_SIGNALS: [(libc::c_int, &str); 13] = [
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGUSR1, "SIGUSR1"),
    (libc::SIGUSR2, "SIGUSR2"),
    (libc::SIGALRM, "SIGALRM"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGSTKFLT, "SIGSTKFLT"),
    (libc::SIGXCPU, "SIGXCPU"),
    (libc::SIGXFSZ, "SIGXFSZ"),
    (libc::SIGVTALRM, "SIGVTALRM"),
    (libc::SIGPROF, "SIGPROF"),
    (libc::SIGPWR, "SIGPWR"),
];

/// A non-blocking signalfd for the exit signals, SIGTSTP, SIGCONT and any extra signals the
/// caller names. They stay blocked in the calling thread while it lives.
#[derive(Debug)]
pub struct SignalFd {
    fd: OwnedFd,
    set: libc::sigset_t,
}

impl SignalFd {
    /// Blocks the handled signals in the calling thread and opens a signalfd for them. Call it
    /// before any other thread starts, so that every thread inherits the blocked mask.
    pub fn new(extra: &[libc::c_int]) -> io::Result<Self> {
        let set = handled_set(extra);
        // SAFETY: pthread_sigmask reads the set, a live local, and the old-set pointer is null.
        let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if ret != 0 {
            return Err(io::Error::from_raw_os_error(ret));
        }
        let flags = libc::SFD_NONBLOCK | libc::SFD_CLOEXEC;
        // SAFETY: signalfd reads the set, a live local; -1 requests a new fd.
        let fd = unsafe { libc::signalfd(-1, &set, flags) };
        if fd == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: signalfd returned a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(SignalFd { fd, set })
    }

    /// Reads one pending signal and returns its number, or `None` when none is pending.
    pub fn read(&self) -> io::Result<Option<libc::c_int>> {
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
        Ok(Some(info.ssi_signo as libc::c_int))
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for SignalFd {
    fn drop(&mut self) {
        // SAFETY: pthread_sigmask reads the saved set and writes no old set.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &self.set, std::ptr::null_mut()) };
    }
}

/// Builds the set read through the signalfd: job control, every exit signal and `extra`.
fn handled_set(extra: &[libc::c_int]) -> libc::sigset_t {
    let mut set = empty_set();
    let job_control = [libc::SIGTSTP, libc::SIGCONT];
    let exit = EXIT_SIGNALS.iter().map(|&(signal, _)| signal);
    let real_time = libc::SIGRTMIN()..=libc::SIGRTMAX();
    let all = job_control.into_iter().chain(exit).chain(real_time);
    for signal in all.chain(extra.iter().copied()) {
        // SAFETY: sigaddset edits the initialized local set, and rejects an invalid number
        // with an error instead of writing outside it.
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

fn single_set(signal: libc::c_int) -> libc::sigset_t {
    let mut set = empty_set();
    // SAFETY: sigaddset edits the initialized local set.
    unsafe { libc::sigaddset(&mut set, signal) };
    set
}

/// Stops the process the way SIGTSTP does by default: raises it, unblocks it so that the kernel
/// stops every thread, and blocks it again once the process continues.
///
/// Returns after SIGCONT, which stays pending for the signalfd. It returns at once when the
/// kernel discards the stop, as it does in an orphaned process group, where no shell could
/// continue the process, or when SIGTSTP is ignored.
pub fn stop_self() {
    let set = single_set(libc::SIGTSTP);
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
    let set = single_set(signal);
    // SAFETY: resetting the disposition to the default touches no memory of ours.
    unsafe { libc::signal(signal, libc::SIG_DFL) };
    // SAFETY: raise takes the number by value.
    unsafe { libc::raise(signal) };
    // SAFETY: pthread_sigmask reads the live local set; the signal, pending since raise, is
    // delivered as soon as it is unblocked.
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
}

/// The conventional name of a signal, such as `SIGTERM` or `SIGRTMIN+3`, for messages.
#[derive(Debug, Clone, Copy)]
pub struct SignalName(pub libc::c_int);

impl fmt::Display for SignalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let signal = self.0;
        if let Some((_, name)) = EXIT_SIGNALS.iter().find(|&&(number, _)| number == signal) {
            return f.write_str(name);
        }
        match signal {
            libc::SIGTSTP => f.write_str("SIGTSTP"),
            libc::SIGCONT => f.write_str("SIGCONT"),
            libc::SIGWINCH => f.write_str("SIGWINCH"),
            _ if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&signal) => {
                write!(f, "SIGRTMIN+{}", signal - libc::SIGRTMIN())
            }
            _ => write!(f, "signal {signal}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_handled_signal_arrives() {
        let signals = SignalFd::new(&[libc::SIGWINCH]).unwrap();
        assert_eq!(signals.read().unwrap(), None);
        let exit = EXIT_SIGNALS.iter().map(|&(signal, _)| signal);
        let others = [
            libc::SIGRTMIN(),
            libc::SIGRTMAX(),
            libc::SIGTSTP,
            libc::SIGCONT,
            libc::SIGWINCH,
        ];
        for signal in exit.chain(others) {
            // SAFETY: raising a signal that this thread blocks only queues it.
            unsafe { libc::pthread_kill(libc::pthread_self(), signal) };
            let name = SignalName(signal);
            assert_eq!(signals.read().unwrap(), Some(signal), "{name}");
        }
        assert_eq!(signals.read().unwrap(), None);
    }

    #[test]
    fn signal_names_are_conventional() {
        let cases = [
            (libc::SIGTERM, "SIGTERM"),
            (libc::SIGINT, "SIGINT"),
            (libc::SIGHUP, "SIGHUP"),
            (libc::SIGQUIT, "SIGQUIT"),
            (libc::SIGUSR1, "SIGUSR1"),
            (libc::SIGALRM, "SIGALRM"),
            (libc::SIGTSTP, "SIGTSTP"),
            (libc::SIGWINCH, "SIGWINCH"),
            (libc::SIGRTMIN(), "SIGRTMIN+0"),
            (libc::SIGRTMIN() + 2, "SIGRTMIN+2"),
            (libc::SIGSEGV, "signal 11"),
        ];
        for (signal, name) in cases {
            assert_eq!(SignalName(signal).to_string(), name);
        }
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
        assert!(libc::WIFSTOPPED(status), "child not stopped: {status:#x}");
        assert_eq!(libc::WSTOPSIG(status), libc::SIGTSTP);
        // SAFETY: kill takes its arguments by value; the pid is the stopped child.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
        // SAFETY: as above.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(waited, pid);
        assert!(libc::WIFEXITED(status), "child not exited: {status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), 0, "the child missed SIGCONT");
    }

    /// Runs in the forked child: stops itself and returns 0 if it then reads the SIGCONT that
    /// ended the stop. It makes system calls only and returns without unwinding.
    fn stopped_child_status() -> libc::c_int {
        // SAFETY: setpgid takes its arguments by value. A group of its own whose parent is in
        // another group of the same session is not orphaned, so SIGTSTP stops it.
        unsafe { libc::setpgid(0, 0) };
        let Ok(signals) = SignalFd::new(&[]) else {
            return 1;
        };
        stop_self();
        match signals.read() {
            Ok(Some(libc::SIGCONT)) => 0,
            _ => 2,
        }
    }
}
