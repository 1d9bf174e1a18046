//! Stop and job-control signals as readable events: they are blocked in every thread and read
//! through a signalfd in the server's poll loop, so that shutdown runs ordinary code (and ordinary
//! destructors, which restore the terminal) instead of a signal handler.
//!
//! Every stop signal ends the server the same way, with a clean stop and exit status 0.

use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// The signals that stop the server: each one whose default action ends the process and that
/// `kill` sends to a running program, with its name for log lines. The real-time signals
/// SIGRTMIN to SIGRTMAX stop it too; [`handled_set`] adds them.
///
/// Left out: SIGPIPE, which the Rust runtime ignores, so a closed peer shows up as EPIPE.
/// SIGIO, which an fd with O_ASYNC sends on readiness, so it must not read as a stop request.
/// The fault signals (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS), which the kernel delivers
/// to the faulting thread even while blocked, and SIGABRT, which abort(3) unblocks.
// NOTE: `kill -IO` therefore still ends the server without restoring the terminal.
const STOP_SIGNALS: [(libc::c_int, &str); 13] = [
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

/// A signal the server acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalEvent {
    /// A request to stop serving and exit, with the signal's number.
    Stop(libc::c_int),
    /// SIGTSTP: a request to stop the process for job control, from `kill -TSTP` or the shell.
    Suspend,
    /// SIGCONT: the process runs again after a stop, or was sent SIGCONT while running.
    Resume,
}

/// A signalfd for the stop and job-control signals, which stay blocked while it lives.
///
/// SIGTTIN and SIGTTOU keep their default action: a server that the shell continued in the
/// background then stops at its first terminal access instead of taking the terminal from the
/// shell, because the kernel lets tcsetattr through from a background group that blocks SIGTTOU.
#[derive(Debug)]
pub struct StopSignals {
    fd: OwnedFd,
}

fn empty_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initializes the set that the pointer refers to, a local.
    unsafe { libc::sigemptyset(set.as_mut_ptr()) };
    // SAFETY: sigemptyset above initialized the set.
    unsafe { set.assume_init() }
}

/// Builds the set read through the signalfd: job control and every stop signal.
fn handled_set() -> libc::sigset_t {
    let mut set = empty_set();
    let job_control = [libc::SIGTSTP, libc::SIGCONT];
    let stop = STOP_SIGNALS.iter().map(|&(signal, _)| signal);
    let real_time = libc::SIGRTMIN()..=libc::SIGRTMAX();
    for signal in job_control.into_iter().chain(stop).chain(real_time) {
        // SAFETY: the set is initialized and `signal` is a valid signal number.
        unsafe { libc::sigaddset(&mut set, signal) };
    }
    set
}

impl StopSignals {
    /// Blocks the handled signals in the calling thread and opens a signalfd for them. Call it
    /// before any other thread starts, so that every thread inherits the blocked mask.
    pub fn install() -> io::Result<Self> {
        let set = handled_set();
        // SAFETY: pthread_sigmask reads the local set and writes no old set.
        let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if ret != 0 {
            return Err(io::Error::from_raw_os_error(ret));
        }
        // SAFETY: signalfd reads the local set; -1 asks for a new fd.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: signalfd returned a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(StopSignals { fd })
    }

    /// Reads one pending signal, if any.
    pub fn take(&self) -> io::Result<Option<SignalEvent>> {
        let mut info = MaybeUninit::<libc::signalfd_siginfo>::uninit();
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: read writes at most `size` bytes into the local struct of that size.
        let ret = unsafe { libc::read(self.fd.as_raw_fd(), info.as_mut_ptr().cast(), size) };
        if ret < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock => Ok(None),
                _ => Err(err),
            };
        }
        if ret as usize != size {
            return Ok(None);
        }
        // SAFETY: the kernel wrote a whole signalfd_siginfo.
        let info = unsafe { info.assume_init() };
        Ok(Some(match info.ssi_signo as libc::c_int {
            libc::SIGTSTP => SignalEvent::Suspend,
            libc::SIGCONT => SignalEvent::Resume,
            signal => SignalEvent::Stop(signal),
        }))
    }
}

impl AsFd for StopSignals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for StopSignals {
    fn drop(&mut self) {
        let set = handled_set();
        // SAFETY: pthread_sigmask reads the local set and writes no old set.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
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

/// The conventional name of a signal, such as `SIGTERM` or `SIGRTMIN+3`, for log lines.
#[derive(Debug, Clone, Copy)]
pub struct SignalName(pub libc::c_int);

impl fmt::Display for SignalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let signal = self.0;
        if let Some((_, name)) = STOP_SIGNALS.iter().find(|&&(number, _)| number == signal) {
            return f.write_str(name);
        }
        match signal {
            libc::SIGTSTP => f.write_str("SIGTSTP"),
            libc::SIGCONT => f.write_str("SIGCONT"),
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
    fn stop_signal_arrives_on_signalfd() {
        let signals = StopSignals::install().unwrap();
        assert_eq!(signals.take().unwrap(), None);
        // SAFETY: raising a signal that this thread blocks only queues it.
        unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGHUP) };
        assert_eq!(
            signals.take().unwrap(),
            Some(SignalEvent::Stop(libc::SIGHUP))
        );
        assert_eq!(signals.take().unwrap(), None);
    }

    #[test]
    fn every_handled_signal_arrives_on_signalfd() {
        let signals = StopSignals::install().unwrap();
        let mut cases: Vec<(libc::c_int, SignalEvent)> = STOP_SIGNALS
            .iter()
            .chain(&[(libc::SIGRTMIN(), ""), (libc::SIGRTMAX(), "")])
            .map(|&(signal, _)| (signal, SignalEvent::Stop(signal)))
            .collect();
        cases.push((libc::SIGTSTP, SignalEvent::Suspend));
        cases.push((libc::SIGCONT, SignalEvent::Resume));
        for (signal, expected) in cases {
            // SAFETY: raising a signal that this thread blocks only queues it.
            unsafe { libc::pthread_kill(libc::pthread_self(), signal) };
            let name = SignalName(signal);
            assert_eq!(signals.take().unwrap(), Some(expected), "{name}");
        }
        assert_eq!(signals.take().unwrap(), None);
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
        let Ok(signals) = StopSignals::install() else {
            return 1;
        };
        stop_self();
        match signals.take() {
            Ok(Some(SignalEvent::Resume)) => 0,
            _ => 2,
        }
    }
}
