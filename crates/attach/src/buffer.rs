//! A fixed-size byte buffer between one fd that is read and another that is written.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Bytes read from one side and not yet written to the other. Reading stops while it is full,
/// which is how a slow side slows the other down without losing bytes.
#[derive(Debug)]
pub struct Buffer {
    data: Box<[u8]>,
    start: usize,
    end: usize,
    last_written: Option<u8>,
}

impl Buffer {
    /// Creates an empty buffer of `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Buffer {
            data: vec![0; capacity].into_boxed_slice(),
            start: 0,
            end: 0,
            last_written: None,
        }
    }

    /// Returns whether no bytes are waiting to be written.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Returns whether a read has room to store at least one byte.
    pub fn has_room(&self) -> bool {
        self.end - self.start < self.data.len()
    }

    /// Returns the bytes waiting to be written.
    pub fn pending(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// Returns the last byte that [`Buffer::write_to`] wrote, or `None` before the first write.
    pub fn last_written(&self) -> Option<u8> {
        self.last_written
    }

    /// Reads once from `fd` into the free space and returns the number of bytes read, 0 at end
    /// of file. The caller checks `has_room` first, because a full buffer reads nothing.
    pub fn read_from(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        if self.end == self.data.len() {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let free = &mut self.data[self.end..];
        // SAFETY: read writes at most `free.len()` bytes into `free`, a live slice of ours.
        let ret = unsafe { libc::read(fd.as_raw_fd(), free.as_mut_ptr().cast(), free.len()) };
        if ret == -1 {
            return Err(io::Error::last_os_error());
        }
        let count = ret as usize;
        self.end += count;
        Ok(count)
    }

    /// Drops the last `count` bytes read, from the first `byte` among them on, and returns
    /// whether `byte` was there. The bytes before it stay pending.
    pub fn cut_at(&mut self, count: usize, byte: u8) -> bool {
        let fresh = self.end - count;
        match self.data[fresh..self.end].iter().position(|&b| b == byte) {
            Some(offset) => {
                self.end = fresh + offset;
                true
            }
            None => false,
        }
    }

    /// Writes pending bytes to `fd` and returns the number written. EAGAIN is not an error.
    ///
    /// With `Blocking::No` it writes until the buffer is empty or the fd would block. With
    /// `Blocking::Yes(max)` the fd is a blocking one that poll reported writable, so it writes
    /// once and at most `max` bytes, an amount such a report promises to take without blocking.
    pub fn write_to(&mut self, fd: BorrowedFd<'_>, blocking: Blocking) -> io::Result<usize> {
        let mut written = 0;
        while !self.is_empty() {
            let pending = self.pending();
            let length = match blocking {
                Blocking::No => pending.len(),
                Blocking::Yes(max) => pending.len().min(max),
            };
            // SAFETY: write reads `length` bytes from `pending`, a live slice at least as long.
            let ret = unsafe { libc::write(fd.as_raw_fd(), pending.as_ptr().cast(), length) };
            if ret == -1 {
                let err = io::Error::last_os_error();
                match err.kind() {
                    io::ErrorKind::WouldBlock => break,
                    io::ErrorKind::Interrupted => continue,
                    _ => return Err(err),
                }
            }
            if ret > 0 {
                self.last_written = Some(pending[ret as usize - 1]);
            }
            self.start += ret as usize;
            written += ret as usize;
            if self.is_empty() {
                self.start = 0;
                self.end = 0;
            }
            if let Blocking::Yes(_) = blocking {
                break;
            }
        }
        Ok(written)
    }
}

/// Whether an fd blocks on write, and so how much one write may send to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocking {
    /// The fd has O_NONBLOCK set.
    No,
    /// The fd blocks, and one write after a POLLOUT report may send at most this many bytes.
    Yes(usize),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};

    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two fds into the local array.
        let ret = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        assert_eq!(ret, 0);
        // SAFETY: pipe2 succeeded, so both fds are new and owned by nothing else.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    fn write_all(fd: &OwnedFd, bytes: &[u8]) {
        let mut file = std::fs::File::from(fd.try_clone().unwrap());
        std::io::Write::write_all(&mut file, bytes).unwrap();
    }

    #[test]
    fn read_then_write_moves_bytes() {
        let (source_read, source_write) = pipe();
        let (sink_read, sink_write) = pipe();
        let mut buffer = Buffer::new(16);
        write_all(&source_write, b"hello");
        assert_eq!(buffer.read_from(source_read.as_fd()).unwrap(), 5);
        assert_eq!(buffer.pending(), b"hello");
        assert_eq!(
            buffer.write_to(sink_write.as_fd(), Blocking::No).unwrap(),
            5
        );
        assert!(buffer.is_empty());
        let mut out = Buffer::new(16);
        out.read_from(sink_read.as_fd()).unwrap();
        assert_eq!(out.pending(), b"hello");
    }

    #[test]
    fn full_buffer_has_no_room_and_compacts() {
        let (source_read, source_write) = pipe();
        let (_sink_read, sink_write) = pipe();
        let mut buffer = Buffer::new(4);
        write_all(&source_write, b"abcdef");
        assert_eq!(buffer.read_from(source_read.as_fd()).unwrap(), 4);
        assert!(!buffer.has_room());
        assert_eq!(
            buffer
                .write_to(sink_write.as_fd(), Blocking::Yes(2))
                .unwrap(),
            2
        );
        assert!(buffer.has_room());
        assert_eq!(buffer.read_from(source_read.as_fd()).unwrap(), 2);
        assert_eq!(buffer.pending(), b"cdef");
    }

    #[test]
    fn write_to_stops_at_eagain_and_keeps_rest() {
        let (sink_read, sink_write) = pipe();
        let (source_read, source_write) = pipe();
        // SAFETY: F_SETPIPE_SZ takes an int by value; 4096 is the smallest pipe size.
        unsafe { libc::fcntl(sink_write.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
        let mut buffer = Buffer::new(10_000);
        write_all(&source_write, &[7u8; 10_000]);
        assert_eq!(buffer.read_from(source_read.as_fd()).unwrap(), 10_000);
        let first = buffer.write_to(sink_write.as_fd(), Blocking::No).unwrap();
        assert!(first < 10_000, "wrote {first}");
        assert_eq!(buffer.pending().len(), 10_000 - first);
        let mut drained = Buffer::new(10_000);
        drained.read_from(sink_read.as_fd()).unwrap();
        let second = buffer.write_to(sink_write.as_fd(), Blocking::No).unwrap();
        assert!(second > 0);
        assert_eq!(buffer.pending().len(), 10_000 - first - second);
    }

    #[test]
    fn cut_at_drops_escape_and_rest() {
        let (source_read, source_write) = pipe();
        let mut buffer = Buffer::new(16);
        write_all(&source_write, b"ab");
        buffer.read_from(source_read.as_fd()).unwrap();
        write_all(&source_write, b"cd\x1def");
        let count = buffer.read_from(source_read.as_fd()).unwrap();
        assert!(buffer.cut_at(count, 0x1d));
        assert_eq!(buffer.pending(), b"abcd");
        assert!(!buffer.cut_at(0, 0x1d));
    }

    #[test]
    fn last_written_follows_writes_not_reads() {
        let (source_read, source_write) = pipe();
        let (_sink_read, sink_write) = pipe();
        let mut buffer = Buffer::new(16);
        write_all(&source_write, b"ab\n");
        buffer.read_from(source_read.as_fd()).unwrap();
        assert_eq!(buffer.last_written(), None);
        buffer
            .write_to(sink_write.as_fd(), Blocking::Yes(2))
            .unwrap();
        assert_eq!(buffer.last_written(), Some(b'b'));
        buffer.write_to(sink_write.as_fd(), Blocking::No).unwrap();
        assert_eq!(buffer.last_written(), Some(b'\n'));
    }

    #[test]
    fn cut_at_ignores_older_bytes() {
        let (source_read, source_write) = pipe();
        let mut buffer = Buffer::new(16);
        write_all(&source_write, b"\x1d");
        buffer.read_from(source_read.as_fd()).unwrap();
        write_all(&source_write, b"xy");
        let count = buffer.read_from(source_read.as_fd()).unwrap();
        assert!(!buffer.cut_at(count, 0x1d));
        assert_eq!(buffer.pending(), b"\x1dxy");
    }
}
