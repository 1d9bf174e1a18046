//! The signals the client handles, blocked and read through a signalfd in the relay loop (see
//! `ttyvm_term::signals`), so no work happens in a signal handler: resizes of the user's
//! terminal, job control, and every signal that would end the process.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

pub use ttyvm_term::signals::{die_by, stop_self};

/// A signal the relay loop acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// The user's terminal changed size.
    WindowChange,
    /// SIGTSTP: a request to stop for job control, from `kill -TSTP` or the shell.
    Stop,
    /// SIGCONT: the process runs again after a stop, or was sent SIGCONT while running.
    Continue,
    /// A request to exit, with its number: one of `ttyvm_term::signals::EXIT_SIGNALS` or a
    /// real-time signal.
    Exit(libc::c_int),
}

/// Errors from setting up signal delivery.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// Blocking the signals or creating the signalfd failed.
    #[error("failed to route SIGWINCH, SIGTSTP, SIGCONT and the exit signals to a signalfd")]
    Setup(#[source] io::Error),
}

/// A non-blocking signalfd for the handled signals, which stay blocked while it lives.
#[derive(Debug)]
pub struct SignalFd {
    fd: ttyvm_term::signals::SignalFd,
}

impl SignalFd {
    /// Blocks the handled signals in the calling thread and opens a signalfd for them.
    ///
    /// Call this before any other thread starts, so every thread inherits the mask and no
    /// signal is delivered the default way.
    pub fn new() -> Result<Self, SignalError> {
        let fd =
            ttyvm_term::signals::SignalFd::new(&[libc::SIGWINCH]).map_err(SignalError::Setup)?;
        Ok(SignalFd { fd })
    }

    /// Reads one pending signal, or returns `None` when none is pending.
    pub fn read(&self) -> io::Result<Option<Signal>> {
        let signal = self.fd.read()?.map(|number| match number {
            libc::SIGWINCH => Signal::WindowChange,
            libc::SIGTSTP => Signal::Stop,
            libc::SIGCONT => Signal::Continue,
            _ => Signal::Exit(number),
        });
        Ok(signal)
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_map_to_relay_events() {
        let signals = SignalFd::new().unwrap();
        assert_eq!(signals.read().unwrap(), None);
        let cases = [
            (libc::SIGWINCH, Signal::WindowChange),
            (libc::SIGTSTP, Signal::Stop),
            (libc::SIGCONT, Signal::Continue),
            (libc::SIGTERM, Signal::Exit(libc::SIGTERM)),
            (libc::SIGQUIT, Signal::Exit(libc::SIGQUIT)),
            (libc::SIGRTMAX(), Signal::Exit(libc::SIGRTMAX())),
        ];
        for (signal, expected) in cases {
            // SAFETY: raising a signal that this thread blocks only queues it.
            unsafe { libc::pthread_kill(libc::pthread_self(), signal) };
            assert_eq!(signals.read().unwrap(), Some(expected), "signal {signal}");
        }
        assert_eq!(signals.read().unwrap(), None);
    }
}
