//! Termination signals as readable events: SIGTERM, SIGINT and SIGHUP are blocked in every thread
//! and read through a signalfd in the server's poll loop, so that shutdown runs ordinary code (and
//! ordinary destructors, which restore the terminal) instead of a signal handler.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// The signals that stop the server.
const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// A signalfd for the stop signals, which stay blocked while it lives.
#[derive(Debug)]
pub struct StopSignals {
    fd: OwnedFd,
}

fn stop_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initializes the set that the pointer refers to, a local.
    unsafe { libc::sigemptyset(set.as_mut_ptr()) };
    // SAFETY: sigemptyset above initialized the set.
    let mut set = unsafe { set.assume_init() };
    for signal in STOP_SIGNALS {
        // SAFETY: the set is initialized and `signal` is a valid signal number.
        unsafe { libc::sigaddset(&mut set, signal) };
    }
    set
}

impl StopSignals {
    /// Blocks the stop signals in the calling thread and opens a signalfd for them. Call it before
    /// any other thread starts, so that every thread inherits the blocked mask.
    pub fn install() -> io::Result<Self> {
        let set = stop_set();
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

    /// Reads one pending stop signal, if any, and returns its number.
    pub fn take(&self) -> io::Result<Option<libc::c_int>> {
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
        Ok(Some(info.ssi_signo as libc::c_int))
    }
}

impl AsFd for StopSignals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for StopSignals {
    fn drop(&mut self) {
        let set = stop_set();
        // SAFETY: pthread_sigmask reads the local set and writes no old set.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    }
}

/// Returns the conventional name of a stop signal, for log lines.
pub fn signal_name(signal: libc::c_int) -> &'static str {
    match signal {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        _ => "signal",
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
        assert_eq!(signals.take().unwrap(), Some(libc::SIGHUP));
        assert_eq!(signals.take().unwrap(), None);
    }

    #[test]
    fn signal_names_are_conventional() {
        assert_eq!(signal_name(libc::SIGTERM), "SIGTERM");
        assert_eq!(signal_name(libc::SIGINT), "SIGINT");
        assert_eq!(signal_name(libc::SIGHUP), "SIGHUP");
    }
}
