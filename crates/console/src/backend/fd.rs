//! Small fd operations the pty and tty backends share.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Sets O_NONBLOCK on the open file description behind `fd`. The change applies to every fd
/// that shares that description, so callers apply it only to descriptions they opened.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_GETFL takes no pointer argument and only reads the description's flags.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: F_SETFL takes an int argument; it changes only the status flags of the description.
    let ret = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Returns whether O_NONBLOCK is set on the description behind `fd`.
#[cfg(test)]
pub fn is_nonblocking(fd: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: F_GETFL takes no pointer argument and only reads the description's flags.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(flags & libc::O_NONBLOCK != 0)
}

/// Polls `fd` once without waiting and returns its `revents`.
pub fn poll_now(fd: BorrowedFd<'_>, events: i16) -> io::Result<i16> {
    poll_timeout(fd, events, 0)
}

/// Waits up to `timeout` for `fd` to become readable and returns its `revents`.
pub fn poll_readable(fd: BorrowedFd<'_>, timeout: std::time::Duration) -> io::Result<i16> {
    let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    poll_timeout(fd, libc::POLLIN, millis)
}

fn poll_timeout(fd: BorrowedFd<'_>, events: i16, timeout_ms: i32) -> io::Result<i16> {
    let mut entry = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    loop {
        // SAFETY: poll reads and writes exactly one pollfd, the live local `entry`.
        let ret = unsafe { libc::poll(&mut entry, 1, timeout_ms) };
        if ret >= 0 {
            return Ok(entry.revents);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}
