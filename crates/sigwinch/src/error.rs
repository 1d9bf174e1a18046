//! Errors of [`ResizeListener::spawn`](crate::ResizeListener::spawn).

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::Duration;

/// A terminal as error messages name it: its fd and, where /proc/self/fd resolves it, its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TtyName {
    /// The caller's fd for the terminal.
    pub fd: RawFd,
    /// The path the fd refers to, such as `/dev/pts/3`.
    pub path: Option<PathBuf>,
}

impl TtyName {
    /// Names the terminal behind `fd`, reading its path from /proc/self/fd.
    pub(crate) fn of(fd: RawFd) -> Self {
        let path = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok();
        TtyName { fd, path }
    }
}

impl fmt::Display for TtyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "terminal {} (fd {})", path.display(), self.fd),
            None => write!(f, "terminal on fd {}", self.fd),
        }
    }
}

/// A setup step of the helper process, reported through the readiness handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum HelperStep {
    /// Resetting every signal disposition to SIG_DFL (the fallback path without clone3).
    ResetSignals = 1,
    /// setsid: a new session and process group for the helper.
    NewSession = 2,
    /// TIOCSCTTY: making the terminal the helper's controlling terminal.
    SetControllingTerminal = 3,
    /// TIOCSPGRP (tcsetpgrp): making the helper's group the terminal's foreground group.
    SetForegroundGroup = 4,
    /// Closing every fd except the pipe's write end.
    CloseFds = 5,
    /// F_SETOWN and O_ASYNC on the write end, so that closing the last read end sends SIGIO.
    WatchPipe = 6,
    /// Blocking SIGWINCH and SIGIO, which the helper waits for with rt_sigtimedwait.
    SetSignalMask = 7,
    /// PR_SET_NO_NEW_PRIVS, which an unprivileged seccomp filter requires.
    NoNewPrivs = 8,
    /// Installing the seccomp filter.
    InstallSeccomp = 9,
    /// Setting SIGINT and SIGQUIT to SIG_IGN, in the caller's foreground group.
    IgnoreTerminalSignals = 10,
}

impl HelperStep {
    /// Decodes a step code from the handshake message.
    pub(crate) fn from_code(code: u32) -> Option<Self> {
        use HelperStep::*;
        [
            ResetSignals,
            NewSession,
            SetControllingTerminal,
            SetForegroundGroup,
            CloseFds,
            WatchPipe,
            SetSignalMask,
            NoNewPrivs,
            InstallSeccomp,
            IgnoreTerminalSignals,
        ]
        .into_iter()
        .find(|step| *step as u32 == code)
    }

    /// Returns what to check when this step fails with `errno`.
    fn hint(self, errno: Option<i32>) -> &'static str {
        match (self, errno) {
            (HelperStep::SetControllingTerminal, Some(libc::EPERM)) => {
                "the terminal is already the controlling terminal of another session (a shell or \
                 program runs on it); spawn the listener from that session's foreground process \
                 group, or use a terminal that no session controls"
            }
            (HelperStep::CloseFds, _) => "close_range failed and /proc/self/fd could not be read",
            (HelperStep::NoNewPrivs | HelperStep::InstallSeccomp, _) => {
                "spawn without the seccomp option if the kernel lacks seccomp filters"
            }
            _ => "see the system call's manual page for this errno",
        }
    }
}

impl fmt::Display for HelperStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            HelperStep::ResetSignals => "resetting signal dispositions",
            HelperStep::NewSession => "setsid",
            HelperStep::SetControllingTerminal => "TIOCSCTTY (make it the controlling terminal)",
            HelperStep::SetForegroundGroup => "TIOCSPGRP (make the helper the foreground group)",
            HelperStep::CloseFds => "closing inherited fds",
            HelperStep::WatchPipe => "F_SETOWN and O_ASYNC on the pipe",
            HelperStep::SetSignalMask => "rt_sigprocmask",
            HelperStep::NoNewPrivs => "PR_SET_NO_NEW_PRIVS",
            HelperStep::InstallSeccomp => "installing the seccomp filter",
            HelperStep::IgnoreTerminalSignals => "ignoring SIGINT and SIGQUIT",
        };
        f.write_str(name)
    }
}

/// A failure of [`ResizeListener::spawn`](crate::ResizeListener::spawn). Every variant names the
/// fd passed in, and those after the fd checks also the step that failed. The caller's process is
/// left as it was.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The fd is not open in the caller (EBADF).
    #[error("listener: fd {fd} is not open; pass an open tty or a pty's subsidiary side")]
    NotOpen {
        /// The fd passed to spawn.
        fd: RawFd,
        /// The error of TCGETS, EBADF.
        #[source]
        source: io::Error,
    },
    /// The fd does not refer to a terminal.
    #[error("listener: {tty} is not a terminal; pass a tty or a pty's subsidiary side")]
    NotATerminal {
        /// The fd passed to spawn.
        tty: TtyName,
        /// The error of TCGETS.
        #[source]
        source: io::Error,
    },
    /// A step in the caller before the helper exists failed.
    #[error("listener: {step} failed while spawning the helper for {tty}")]
    Setup {
        /// The terminal.
        tty: TtyName,
        /// The step, such as "pipe2" or "mmap of the helper's stack".
        step: &'static str,
        /// The system call's error.
        #[source]
        source: io::Error,
    },
    /// The seccomp filter could not be built.
    #[error("listener: building the helper's seccomp filter for {tty} failed")]
    Seccomp {
        /// The terminal.
        tty: TtyName,
        /// The error of seccompiler.
        #[source]
        source: seccompiler::BackendError,
    },
    /// The helper reported that one of its setup steps failed.
    #[error("listener: the helper's step {step} on {tty} failed; {}", .step.hint(.source.raw_os_error()))]
    Helper {
        /// The terminal.
        tty: TtyName,
        /// The step that failed.
        step: HelperStep,
        /// The errno the step returned.
        #[source]
        source: io::Error,
    },
    /// The helper exited or was killed before it reported readiness.
    #[error(
        "listener: the helper for {tty} ended before it was ready ({status}); a seccomp policy \
         or resource limit of the caller may have killed it"
    )]
    HelperDied {
        /// The terminal.
        tty: TtyName,
        /// The helper's exit status or fatal signal, as waitid reported it.
        status: String,
    },
    /// The helper did not report readiness in time, so it was killed.
    #[error("listener: the helper for {tty} sent no readiness message within {timeout:?}")]
    HandshakeTimedOut {
        /// The terminal.
        tty: TtyName,
        /// How long spawn waited.
        timeout: Duration,
    },
    /// The helper's readiness message was malformed.
    #[error("listener: the helper for {tty} sent an invalid readiness message {message:?}")]
    InvalidHandshake {
        /// The terminal.
        tty: TtyName,
        /// The bytes received.
        message: Vec<u8>,
    },
}
