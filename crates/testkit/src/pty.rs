//! Pty pairs and window sizes, from `ttyvm-term`, with a helper that sets the first size.

use std::io;
use std::os::fd::AsFd;

pub use ttyvm_term::{set_window_size, window_size, Pty, WindowSize};

/// Opens a pty pair and sets its window size to `rows` x `cols`.
pub fn open_pty(rows: u16, cols: u16) -> io::Result<Pty> {
    let pty = Pty::open()?;
    set_window_size(pty.main.as_fd(), WindowSize { rows, cols })?;
    Ok(pty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_pty_sets_size() {
        let pty = open_pty(37, 113).unwrap();
        let size = window_size(pty.subsidiary.as_fd()).unwrap();
        assert_eq!(
            size,
            WindowSize {
                rows: 37,
                cols: 113
            }
        );
    }
}
