//! The signals the client handles, blocked and read through a signalfd in the relay loop, so no
//! work happens in a signal handler.

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// The signals read through the signalfd: resizes and every request to exit.
const HANDLED: [libc::c_int; 5] = [
    libc::SIGWINCH,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
];

/// A signal the relay loop acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// The user's terminal changed size.
    WindowChange,
    /// A request to exit: SIGTERM, SIGHUP, SIGINT or SIGQUIT, with its number.
    Exit(libc::c_int),
}

/// Errors from setting up signal delivery.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// pthread_sigmask failed.
    #[error("failed to block SIGWINCH, SIGTERM, SIGHUP, SIGINT and SIGQUIT: {0}")]
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
        let number = info.ssi_signo as libc::c_int;
        if number == libc::SIGWINCH {
            Ok(Some(Signal::WindowChange))
        } else {
            Ok(Some(Signal::Exit(number)))
        }
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn handled_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initializes the whole set through the pointer.
    unsafe { libc::sigemptyset(set.as_mut_ptr()) };
    // SAFETY: sigemptyset above initialized the set.
    let mut set = unsafe { set.assume_init() };
    for signal in HANDLED {
        // SAFETY: sigaddset edits the initialized local set; every number in HANDLED is valid.
        unsafe { libc::sigaddset(&mut set, signal) };
    }
    set
}

/// Ends the process the way `signal` would have without the signalfd, so that the parent sees
/// the signal in the wait status. Returns only if the signal did not end the process.
pub fn die_by(signal: libc::c_int) {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initializes the whole set through the pointer.
    unsafe { libc::sigemptyset(set.as_mut_ptr()) };
    // SAFETY: sigemptyset above initialized the set.
    let mut set = unsafe { set.assume_init() };
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
}
