//! The host side of the console: where guest output goes, where host input comes from, and how
//! the terminal size and its changes are learned.

pub(crate) mod fd;
mod file;
mod null;
mod pty;
mod tty;
mod watch;

pub use file::FileBackend;
pub use null::NullBackend;
pub use pty::PtyBackend;
pub use tty::TtyBackend;

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::path::PathBuf;

use ttyvm_sigwinch::{ListenerOptions, ResizeListener};
use ttyvm_term::WindowSize;

/// An fd the transport loop waits on, as one `struct pollfd` entry plus the source to report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollFd {
    /// The fd to poll.
    pub fd: RawFd,
    /// The events wanted, `libc::POLLIN` or `libc::POLLOUT`.
    pub events: i16,
    /// The fd's purpose; pass it back to [`crate::Console::handle_ready`].
    pub source: Source,
}

/// The purpose of a polled fd. One fd may appear under two sources, such as a pty's main side
/// polled for input and for output; `poll(2)` accepts the same fd twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// Host input is ready to read.
    Input,
    /// The output fd can take more bytes.
    Output,
    /// The resize listener has notifications.
    Resize,
    /// Someone opened or closed the pty's subsidiary side.
    Attach,
}

/// The host side of a console.
///
/// All fds a backend returns are non-blocking. `read_input` and `write_output` return
/// `ErrorKind::WouldBlock` when the fd has nothing to give or no room.
pub trait Backend: Send {
    /// Returns whether the backend has a terminal size, which decides whether the device offers
    /// VIRTIO_CONSOLE_F_SIZE.
    fn has_size(&self) -> bool;

    /// Reads the current terminal size. 0x0 means unknown. Backends without a size return 0x0.
    fn window_size(&self) -> io::Result<WindowSize> {
        Ok(WindowSize::default())
    }

    /// Returns the fd to poll for `source`, if the backend has one.
    fn fd(&self, source: Source) -> Option<BorrowedFd<'_>>;

    /// Reads host input into `buf`. `Ok(0)` means the input has ended.
    fn read_input(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let _ = buf;
        Ok(0)
    }

    /// Writes guest output, returning how many bytes the backend took.
    fn write_output(&mut self, data: &[u8]) -> io::Result<usize>;

    /// Reads all pending resize notifications; true if there were any.
    fn drain_resize(&mut self) -> io::Result<bool> {
        Ok(false)
    }

    /// Reads all pending attach events.
    fn drain_attach(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Gives the terminal back before the process stops for job control: a backend on the
    /// user's terminal puts back its original settings. The default does nothing.
    fn suspend(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Takes the terminal again after the process continues: a backend on the user's terminal
    /// applies raw mode again, from the settings it saved at start. The default does nothing.
    fn resume(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Returns whether a reader is attached to the output. Only a pty without a client returns false;
    /// the device then keeps the most recent output and drops older bytes.
    fn is_attached(&mut self) -> bool {
        true
    }
}

/// Starts the resize listener on `tty`, with the helper confined by its seccomp filter: it only
/// ever writes, waits for signals, polls its pipe and exits, so nothing else should be open to it.
/// `what` names the terminal in the error.
pub(crate) fn spawn_listener(
    tty: BorrowedFd<'_>,
    what: &str,
) -> Result<ResizeListener, BackendError> {
    let options = ListenerOptions { seccomp: true };
    ResizeListener::spawn_with(tty, &options).map_err(|source| BackendError::Listener {
        tty: what.to_string(),
        source: Box::new(source),
    })
}

/// A backend that could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Opening a new pty pair failed.
    #[error("failed to open a new pty pair; check that /dev/ptmx and /dev/pts are available")]
    OpenPty(#[source] io::Error),
    /// A standard stream is not a terminal.
    #[error(
        "{stream} is not a terminal; the tty console needs stdin and stdout on a terminal, so \
         run it in one or choose the pty, file or null console"
    )]
    NotATerminal {
        /// `stdin` or `stdout`.
        stream: &'static str,
    },
    /// A terminal operation (termios, window size, reopening the terminal) failed.
    #[error("failed to {action} on {what}")]
    Terminal {
        /// The attempted action, such as "enable raw mode".
        action: &'static str,
        /// The terminal or fd involved.
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Starting the resize listener failed.
    #[error("failed to start the resize listener for {tty}")]
    Listener {
        /// The terminal the listener was started for.
        tty: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Watching the pty's subsidiary side for opens and closes failed.
    #[error("failed to watch {path} for opens and closes with inotify")]
    Watch {
        /// Path of the subsidiary side.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Opening the output file failed.
    #[error("failed to open console output file {path} for appending")]
    OpenFile {
        /// The file's path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}
