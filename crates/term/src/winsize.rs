use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::check;

/// A terminal's size in character cells, as TIOCGWINSZ reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct WindowSize {
    /// Number of rows (lines).
    pub rows: u16,
    /// Number of columns.
    pub cols: u16,
}

impl WindowSize {
    /// Creates a size of `rows` lines by `cols` columns.
    pub const fn new(rows: u16, cols: u16) -> Self {
        WindowSize { rows, cols }
    }

    /// Whether the size is unknown: the kernel reports 0x0 for a terminal nobody has sized.
    pub const fn is_unknown(self) -> bool {
        self.rows == 0 || self.cols == 0
    }
}

/// Reads the window size of the terminal behind `fd` with TIOCGWINSZ.
pub fn window_size(fd: BorrowedFd<'_>) -> io::Result<WindowSize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer, which points to a live local.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) })?;
    Ok(WindowSize::new(ws.ws_row, ws.ws_col))
}

/// Sets the window size of the terminal behind `fd` with TIOCSWINSZ. The kernel then sends
/// SIGWINCH to the terminal's foreground process group if the size changed.
pub fn set_window_size(fd: BorrowedFd<'_>, size: WindowSize) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ only reads one `winsize` through the pointer, which points to a live local.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Pty;
    use std::os::fd::AsFd;

    #[test]
    fn window_size_round_trip() {
        let pty = Pty::open().unwrap();
        let size = WindowSize::new(37, 121);
        set_window_size(pty.main.as_fd(), size).unwrap();
        assert_eq!(window_size(pty.subsidiary.as_fd()).unwrap(), size);
        assert_eq!(window_size(pty.main.as_fd()).unwrap(), size);
    }

    #[test]
    fn window_size_rejects_non_terminal() {
        let file = std::fs::File::open("/dev/null").unwrap();
        let err = window_size(file.as_fd()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTTY));
    }

    #[test]
    fn unknown_size_is_zero_dimension() {
        assert!(WindowSize::new(0, 0).is_unknown());
        assert!(WindowSize::new(0, 80).is_unknown());
        assert!(!WindowSize::new(24, 80).is_unknown());
    }
}
