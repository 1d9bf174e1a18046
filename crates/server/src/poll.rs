//! A poll(2) set rebuilt on every turn of the loop. The server waits on a handful of fds whose
//! interest changes with the console's buffers and the rings' state, so rebuilding a short array
//! is simpler and as cheap as keeping an epoll set in step.

use std::io;
use std::os::fd::RawFd;

/// A set of fds to wait on, each tagged with what it is for.
pub struct PollSet<T> {
    fds: Vec<libc::pollfd>,
    tokens: Vec<T>,
}

impl<T: Copy> PollSet<T> {
    /// Creates an empty set.
    pub fn new() -> Self {
        PollSet {
            fds: Vec::with_capacity(8),
            tokens: Vec::with_capacity(8),
        }
    }

    /// Adds `fd`, polled for `events` and reported as `token`.
    pub fn add(&mut self, fd: RawFd, events: i16, token: T) {
        self.fds.push(libc::pollfd {
            fd,
            events,
            revents: 0,
        });
        self.tokens.push(token);
    }

    /// Waits until at least one fd is ready, retrying on EINTR.
    pub fn wait(&mut self) -> io::Result<()> {
        loop {
            // SAFETY: the pointer and length describe the set's own initialized pollfd array,
            // which poll only reads and updates in place.
            let ret =
                unsafe { libc::poll(self.fds.as_mut_ptr(), self.fds.len() as libc::nfds_t, -1) };
            if ret >= 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    /// Returns the ready entries as (token, revents), in the order they were added.
    pub fn ready(&self) -> Vec<(T, i16)> {
        self.fds
            .iter()
            .zip(&self.tokens)
            .filter(|(fd, _)| fd.revents != 0)
            .map(|(fd, token)| (*token, fd.revents))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn poll_set_reports_ready_token() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let (_c, d) = UnixStream::pair().unwrap();
        a.write_all(b"x").unwrap();
        let mut set = PollSet::new();
        set.add(d.as_raw_fd(), libc::POLLIN, 1);
        set.add(b.as_raw_fd(), libc::POLLIN, 2);
        set.wait().unwrap();
        assert_eq!(set.ready(), vec![(2, libc::POLLIN)]);
    }
}
