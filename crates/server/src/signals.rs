//! The server's signals, read through a signalfd in its poll loop (see `ttyvm_term::signals`):
//! every signal that would end the process stops the server cleanly, with exit status 0, and
//! SIGTSTP and SIGCONT hand a tty console's terminal back and forth for job control.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use ttyvm_term::signals::SignalFd;
pub use ttyvm_term::signals::{stop_self, SignalName};

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
#[derive(Debug)]
pub struct StopSignals {
    fd: SignalFd,
}

impl StopSignals {
    /// Blocks the handled signals in the calling thread and opens a signalfd for them. Call it
    /// before any other thread starts, so that every thread inherits the blocked mask.
    pub fn install() -> io::Result<Self> {
        Ok(StopSignals {
            fd: SignalFd::new(&[])?,
        })
    }

    /// Reads one pending signal, if any.
    pub fn take(&self) -> io::Result<Option<SignalEvent>> {
        let event = self.fd.read()?.map(|signal| match signal {
            libc::SIGTSTP => SignalEvent::Suspend,
            libc::SIGCONT => SignalEvent::Resume,
            signal => SignalEvent::Stop(signal),
        });
        Ok(event)
    }
}

impl AsFd for StopSignals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_map_to_server_events() {
        let signals = StopSignals::install().unwrap();
        assert_eq!(signals.take().unwrap(), None);
        let cases = [
            (libc::SIGHUP, SignalEvent::Stop(libc::SIGHUP)),
            (libc::SIGQUIT, SignalEvent::Stop(libc::SIGQUIT)),
            (libc::SIGRTMIN(), SignalEvent::Stop(libc::SIGRTMIN())),
            (libc::SIGTSTP, SignalEvent::Suspend),
            (libc::SIGCONT, SignalEvent::Resume),
        ];
        for (signal, expected) in cases {
            // SAFETY: raising a signal that this thread blocks only queues it.
            unsafe { libc::pthread_kill(libc::pthread_self(), signal) };
            let name = SignalName(signal);
            assert_eq!(signals.take().unwrap(), Some(expected), "{name}");
        }
        assert_eq!(signals.take().unwrap(), None);
    }
}
