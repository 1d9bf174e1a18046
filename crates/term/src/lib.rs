//! Terminal primitives shared by the resize listener, the console backends and the attach client:
//! the window size (TIOCGWINSZ and TIOCSWINSZ), raw mode that restores the exact original termios,
//! pty pairs, and the signals of programs that take over a terminal ([`signals`]).
//!
//! Everything here is a thin, checked wrapper over one or two libc calls on a caller's fd.

mod pty;
pub mod signals;
mod termios;
mod winsize;

pub use pty::Pty;
pub use termios::{RawMode, Restorer, Termios};
pub use winsize::{set_window_size, window_size, WindowSize};

use std::io;

/// Converts a libc return value of -1 into the calling thread's `errno`.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}
