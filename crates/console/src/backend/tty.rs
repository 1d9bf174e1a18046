use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;

use ttyvm_sigwinch::ResizeListener;
use ttyvm_term::{window_size, RawMode, Restorer, WindowSize};

use super::fd::set_nonblocking;
use super::{spawn_listener, Backend, BackendError, Source};

/// A console on the user's terminal: input from stdin, output to stdout, the terminal in raw
/// mode while the backend lives.
///
/// The backend reopens both terminals through `/proc/self/fd/0` and `/proc/self/fd/1`, which
/// gives it open file descriptions of its own. O_NONBLOCK goes on those, never on the
/// descriptions stdin and stdout share with the user's shell, so nothing is left to restore on
/// an exit path that skips `Drop`. Raw mode is applied to stdin's terminal; dropping the backend,
/// or calling [`TtyBackend::restorer`]'s `restore`, puts back the exact original termios.
#[derive(Debug)]
pub struct TtyBackend {
    // Field order is drop order: the listener stops before the terminal leaves raw mode.
    listener: ResizeListener,
    raw_mode: RawMode,
    input: File,
    output: File,
}

impl TtyBackend {
    /// Puts the terminal on stdin into raw mode and starts the resize listener on it. Fails if
    /// stdin or stdout is not a terminal.
    pub fn open() -> Result<Self, BackendError> {
        let stdin = io::stdin();
        let stdout = io::stdout();
        require_terminal(stdin.as_fd(), "stdin")?;
        require_terminal(stdout.as_fd(), "stdout")?;
        let input = reopen(0, "stdin")?;
        let output = reopen(1, "stdout")?;
        // Raw mode goes through fd 0, which outlives the backend, so a Restorer copied into a
        // panic hook never touches an fd number that was closed and reused.
        let raw_mode = RawMode::enable(stdin.as_fd()).map_err(|source| BackendError::Terminal {
            action: "enable raw mode",
            what: "stdin".to_string(),
            source,
        })?;
        let listener = spawn_listener(input.as_fd(), "stdin")?;
        Ok(TtyBackend {
            listener,
            raw_mode,
            input,
            output,
        })
    }

    /// Returns what restoring the original termios needs, for a panic hook or a signal path.
    pub fn restorer(&self) -> Restorer {
        self.raw_mode.restorer()
    }
}

fn require_terminal(fd: BorrowedFd<'_>, stream: &'static str) -> Result<(), BackendError> {
    // SAFETY: isatty takes the fd by value and touches no memory of ours.
    if unsafe { libc::isatty(std::os::fd::AsRawFd::as_raw_fd(&fd)) } == 1 {
        Ok(())
    } else {
        Err(BackendError::NotATerminal { stream })
    }
}

/// Opens the terminal behind `fd` again, non-blocking, as a new open file description.
fn reopen(fd: i32, stream: &'static str) -> Result<File, BackendError> {
    let path = format!("/proc/self/fd/{fd}");
    let what = format!("{stream} ({path})");
    let terminal_error = |action: &'static str| {
        let what = what.clone();
        move |source| BackendError::Terminal {
            action,
            what,
            source,
        }
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&path)
        .map_err(terminal_error("reopen the terminal"))?;
    set_nonblocking(file.as_fd()).map_err(terminal_error("set O_NONBLOCK"))?;
    Ok(file)
}

impl Backend for TtyBackend {
    fn has_size(&self) -> bool {
        true
    }

    fn window_size(&self) -> io::Result<WindowSize> {
        window_size(self.output.as_fd())
    }

    fn fd(&self, source: Source) -> Option<BorrowedFd<'_>> {
        match source {
            Source::Input => Some(self.input.as_fd()),
            Source::Output => Some(self.output.as_fd()),
            Source::Resize => Some(self.listener.as_fd()),
            Source::Attach => None,
        }
    }

    fn read_input(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.input).read(buf)
    }

    fn write_output(&mut self, data: &[u8]) -> io::Result<usize> {
        (&self.output).write(data)
    }

    fn drain_resize(&mut self) -> io::Result<bool> {
        self.listener.drain()
    }

    fn suspend(&mut self) -> io::Result<()> {
        self.raw_mode.restorer().restore()
    }

    fn resume(&mut self) -> io::Result<()> {
        // The same fd 0 that raw mode was enabled on, with the settings saved then.
        let raw = self.raw_mode.restorer().original().raw();
        raw.set(io::stdin().as_fd())
    }
}
