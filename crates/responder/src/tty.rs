//! Raw mode and window size of the console tty.

use std::io;

/// Raw mode on a tty, restored to the saved settings when dropped.
///
/// On a descriptor that is not a tty (a pipe in a host test) it changes nothing.
pub struct RawMode {
    fd: i32,
    saved: Option<libc::termios>,
}

impl RawMode {
    /// Switches `fd` to raw mode: no echo, no line editing, no signals, no output processing,
    /// and reads that return as soon as one byte is there.
    pub fn enable(fd: i32) -> io::Result<Self> {
        // SAFETY: isatty only inspects the descriptor number.
        if unsafe { libc::isatty(fd) } != 1 {
            return Ok(Self { fd, saved: None });
        }
        // SAFETY: termios is plain data, so all-zero is a valid value that tcgetattr overwrites.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `saved` is a valid, writable termios.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut raw = saved;
        // SAFETY: `raw` is a valid termios that cfmakeraw edits in place.
        unsafe { libc::cfmakeraw(&mut raw) };
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        // SAFETY: `raw` is a valid termios that outlives the call.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            fd,
            saved: Some(saved),
        })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            // TCSADRAIN lets output written in raw mode leave before ONLCR returns.
            // SAFETY: `saved` is the termios that tcgetattr filled for this descriptor.
            unsafe { libc::tcsetattr(self.fd, libc::TCSADRAIN, saved) };
        }
    }
}

/// Returns the window size of the tty `fd` as (rows, columns).
pub fn window_size(fd: i32) -> io::Result<(u16, u16)> {
    // SAFETY: winsize is plain data, so all-zero is a valid value for TIOCGWINSZ to overwrite.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize through the pointer, which points at `size`.
    if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((size.ws_row, size.ws_col))
}
