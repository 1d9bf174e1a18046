//! Blocking reads and writes on raw file descriptors, retried on EINTR and EAGAIN.

use std::io;

/// Waits until `fd` is ready for `events` (POLLIN or POLLOUT), retrying on EINTR.
fn wait_ready(fd: i32, events: libc::c_short) -> io::Result<()> {
    let mut entry = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    loop {
        // SAFETY: `entry` is one valid pollfd that outlives the call, and the count is 1.
        let ready = unsafe { libc::poll(&mut entry, 1, -1) };
        if ready >= 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Writes all of `bytes` to `fd`, waiting whenever a nonblocking `fd` is full.
pub fn write_all(fd: i32, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: the pointer and length describe the live slice `bytes`.
        let written = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if written >= 0 {
            // `written` is at most `bytes.len()`, so the cast and the slice are in range.
            bytes = &bytes[written as usize..];
            continue;
        }
        let error = io::Error::last_os_error();
        match error.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => wait_ready(fd, libc::POLLOUT)?,
            _ => return Err(error),
        }
    }
    Ok(())
}

/// Reads up to `buffer.len()` bytes from `fd` and returns the count, which is 0 at end of input.
pub fn read(fd: i32, buffer: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: the pointer and length describe the live, writable slice `buffer`.
        let count = unsafe { libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len()) };
        if count >= 0 {
            // `count` is non-negative and at most `buffer.len()`.
            return Ok(count as usize);
        }
        let error = io::Error::last_os_error();
        match error.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => wait_ready(fd, libc::POLLIN)?,
            // A tty whose other side hung up returns EIO, which ends its input.
            _ if error.raw_os_error() == Some(libc::EIO) => return Ok(0),
            _ => return Err(error),
        }
    }
}
