//! The user's side: standard input and output, raw mode, and the panic hook that restores it.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use ttyvm_term::{RawMode, Restorer};

use crate::buffer::Blocking;

/// Errors from setting up the user's terminal.
#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    /// Standard input or output could not be duplicated or reopened.
    #[error("failed to open standard {name} for the relay: {source}")]
    Open {
        /// "input" or "output".
        name: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// tcgetattr or tcsetattr failed on standard input.
    #[error("failed to put standard input in raw mode: {0}")]
    RawMode(#[source] io::Error),
}

/// Standard input and output as the relay uses them.
///
/// A terminal is reopened through /proc/self/fd with O_NONBLOCK, which gives a new open file
/// description. Setting O_NONBLOCK on the inherited one would change it for the shell too, and
/// for standard error when it shares that description. Anything else is duplicated and stays
/// blocking, so it is read only after poll reports input and written in small pieces.
#[derive(Debug)]
pub struct UserSide {
    input: OwnedFd,
    output: OwnedFd,
    output_blocking: Blocking,
    input_is_terminal: bool,
}

impl UserSide {
    /// Opens the relay's fds for standard input and output, changing neither.
    pub fn open() -> Result<Self, TerminalError> {
        let stdin = io::stdin();
        let stdout = io::stdout();
        let input_is_terminal = is_terminal(stdin.as_fd());
        let input = reopen(stdin.as_fd(), input_is_terminal, libc::O_RDONLY).map_err(|source| {
            TerminalError::Open {
                name: "input",
                source,
            }
        })?;
        let output_is_terminal = is_terminal(stdout.as_fd());
        let output =
            reopen(stdout.as_fd(), output_is_terminal, libc::O_WRONLY).map_err(|source| {
                TerminalError::Open {
                    name: "output",
                    source,
                }
            })?;
        let output_blocking = if output_is_terminal {
            Blocking::No
        } else {
            Blocking::Yes(libc::PIPE_BUF)
        };
        Ok(UserSide {
            input,
            output,
            output_blocking,
            input_is_terminal,
        })
    }

    /// Returns whether standard input is a terminal, and so gets raw mode and carries a size.
    pub fn input_is_terminal(&self) -> bool {
        self.input_is_terminal
    }

    /// Returns the fd the relay reads the user's keys from.
    pub fn input(&self) -> BorrowedFd<'_> {
        self.input.as_fd()
    }

    /// Returns the fd the relay writes console output to.
    pub fn output(&self) -> BorrowedFd<'_> {
        self.output.as_fd()
    }

    /// Returns how writes to `output` behave.
    pub fn output_blocking(&self) -> Blocking {
        self.output_blocking
    }
}

fn is_terminal(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: isatty only inspects the fd, which the caller's borrow keeps open.
    unsafe { libc::isatty(fd.as_raw_fd()) == 1 }
}

fn reopen(fd: BorrowedFd<'_>, terminal: bool, access: libc::c_int) -> io::Result<OwnedFd> {
    if !terminal {
        return fd.try_clone_to_owned();
    }
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let file = OpenOptions::new()
        .read(access == libc::O_RDONLY)
        .write(access == libc::O_WRONLY)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)?;
    Ok(OwnedFd::from(file))
}

/// Puts standard input in raw mode and installs a panic hook that restores its original
/// settings before the previous hook prints the panic. Dropping the guard restores them too.
///
/// Standard input stays open for the whole process, so the hook's fd stays valid.
pub fn enter_raw_mode() -> Result<RawMode, TerminalError> {
    let guard = RawMode::enable(io::stdin().as_fd()).map_err(TerminalError::RawMode)?;
    install_panic_hook(guard.restorer());
    Ok(guard)
}

/// Gives the terminal back for a job-control stop and takes it again after: restores the
/// original settings, stops the process with SIGTSTP, and once it runs again applies raw mode
/// derived from the settings saved at start, without reading them again. Without `raw_mode`,
/// when standard input is not a terminal, it only stops.
///
/// Raw mode is applied here as well as on the SIGCONT that ends the stop, because the process
/// also runs on at once when the kernel discards the stop. When the shell continues the process
/// in the background, tcsetattr raises SIGTTOU, which stops it again until `fg`.
pub fn suspend(raw_mode: Option<&RawMode>) {
    if let Some(guard) = raw_mode {
        if let Err(err) = guard.restorer().restore() {
            log::warn!("attach: failed to restore the terminal before stopping: {err}");
        }
    }
    crate::signals::stop_self();
    resume(raw_mode);
}

/// Applies raw mode again after the process continued, from the settings saved at start.
pub fn resume(raw_mode: Option<&RawMode>) {
    let Some(guard) = raw_mode else {
        return;
    };
    if let Err(err) = guard.restorer().original().raw().set(io::stdin().as_fd()) {
        log::warn!("attach: failed to put standard input back in raw mode: {err}");
    }
}

/// Chains a hook that calls `restorer` before the hook that was installed, so the panic message
/// appears on a terminal with its line discipline back.
pub fn install_panic_hook(restorer: Restorer) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // Nothing more can be done if the terminal is gone.
        let _ = restorer.restore();
        previous(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttyvm_term::{Pty, Termios};

    #[test]
    fn reopen_gives_nonblocking_description() {
        let pty = Pty::open().unwrap();
        let reopened = reopen(pty.subsidiary.as_fd(), true, libc::O_RDONLY).unwrap();
        // SAFETY: F_GETFL takes no pointer.
        let flags = unsafe { libc::fcntl(reopened.as_raw_fd(), libc::F_GETFL) };
        assert_ne!(flags & libc::O_NONBLOCK, 0);
        // SAFETY: as above.
        let original = unsafe { libc::fcntl(pty.subsidiary.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(original & libc::O_NONBLOCK, 0);
    }

    #[test]
    fn panic_hook_restores_terminal() {
        let pty = Pty::open().unwrap();
        let before = Termios::get(pty.subsidiary.as_fd()).unwrap();
        let guard = RawMode::enable(pty.subsidiary.as_fd()).unwrap();
        let saved = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        install_panic_hook(guard.restorer());
        std::mem::forget(guard);
        let result = std::panic::catch_unwind(|| panic!("test panic"));
        std::panic::set_hook(saved);
        assert!(result.is_err());
        assert_eq!(Termios::get(pty.subsidiary.as_fd()).unwrap(), before);
    }
}
