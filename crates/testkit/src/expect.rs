//! An expect-style reader over a nonblocking descriptor, such as the main side of a pty.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::diagnostics::escape_bytes;

/// How many of the last received bytes an error shows.
const TAIL_BYTES: usize = 2048;
/// How many received bytes are kept for error messages.
const HISTORY_BYTES: usize = 64 * 1024;
/// The bound on [`Expect::send`] and [`Expect::send_line`] while the descriptor stays full.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors of [`Expect`].
#[derive(Debug, thiserror::Error)]
pub enum ExpectError {
    /// The expected text did not arrive in time.
    #[error(
        "timed out after {timeout:?} waiting for {needle:?}; the last bytes received were:\n{tail}"
    )]
    Timeout {
        /// The text that was expected, escaped.
        needle: String,
        /// The time waited.
        timeout: Duration,
        /// The escaped tail of what arrived.
        tail: String,
    },
    /// The descriptor stayed full, so not all bytes could be written in time.
    #[error("timed out after {timeout:?} writing: {written} of {total} bytes were written")]
    SendTimeout {
        /// The time waited.
        timeout: Duration,
        /// The bytes written.
        written: usize,
        /// The bytes that were to be written.
        total: usize,
    },
    /// The other side closed before the expected text arrived.
    #[error("end of input while waiting for {needle:?}; the last bytes received were:\n{tail}")]
    Eof {
        /// The text that was expected, escaped.
        needle: String,
        /// The escaped tail of what arrived.
        tail: String,
    },
    /// Reading, writing or polling the descriptor failed.
    #[error("{operation} on the expect descriptor failed")]
    Io {
        /// The failed operation.
        operation: &'static str,
        /// The error of the system call.
        #[source]
        source: io::Error,
    },
}

/// A reader that collects bytes from a descriptor until an expected string arrives.
///
/// Bytes that arrived after a match stay buffered for the next call.
#[derive(Debug)]
pub struct Expect {
    fd: OwnedFd,
    /// Received bytes that no call has consumed yet.
    pending: Vec<u8>,
    /// The last [`HISTORY_BYTES`] received, consumed or not, for error messages.
    history: Vec<u8>,
}

impl Expect {
    /// Takes `fd` and sets it nonblocking, which affects every descriptor that shares its open
    /// file description.
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        set_nonblocking(fd.as_fd())?;
        Ok(Self {
            fd,
            pending: Vec::new(),
            history: Vec::new(),
        })
    }

    /// Reads until `needle` arrives and returns everything up to and including it, consuming
    /// that text.
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> Result<String, ExpectError> {
        let end = self.read_until(timeout, needle, |pending| {
            find(pending, needle.as_bytes()).map(|start| start + needle.len())
        })?;
        let consumed: Vec<u8> = self.pending.drain(..end).collect();
        Ok(String::from_utf8_lossy(&consumed).into_owned())
    }

    /// Reads exactly `count` bytes and returns them.
    pub fn read_exact(&mut self, count: usize, timeout: Duration) -> Result<Vec<u8>, ExpectError> {
        let description = format!("{count} bytes");
        let end = self.read_until(timeout, &description, |pending| {
            (pending.len() >= count).then_some(count)
        })?;
        Ok(self.pending.drain(..end).collect())
    }

    /// Writes all of `bytes`, waiting up to [`SEND_TIMEOUT`] while the descriptor is full.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), ExpectError> {
        self.send_timeout(bytes, SEND_TIMEOUT)
    }

    /// Writes all of `bytes`, waiting up to `timeout` in total while the descriptor is full.
    pub fn send_timeout(&mut self, bytes: &[u8], timeout: Duration) -> Result<(), ExpectError> {
        let deadline = Instant::now() + timeout;
        let mut rest = bytes;
        while !rest.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                return Err(ExpectError::SendTimeout {
                    timeout,
                    written: bytes.len() - rest.len(),
                    total: bytes.len(),
                });
            }
            // SAFETY: the pointer and length describe the live slice `rest`.
            let written =
                unsafe { libc::write(self.fd.as_raw_fd(), rest.as_ptr().cast(), rest.len()) };
            if written >= 0 {
                // `written` is at most `rest.len()`, so the cast and the slice are in range.
                rest = &rest[written as usize..];
                continue;
            }
            let error = io::Error::last_os_error();
            match error.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => self.poll(libc::POLLOUT, deadline - now)?,
                _ => return Err(io_error("write", error)),
            }
        }
        Ok(())
    }

    /// Writes `line` followed by a newline.
    pub fn send_line(&mut self, line: &str) -> Result<(), ExpectError> {
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        self.send(&bytes)
    }

    /// Returns the received bytes that no call has consumed yet.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    /// Returns the escaped tail of everything received, for failure messages.
    pub fn tail(&self) -> String {
        let start = self.history.len().saturating_sub(TAIL_BYTES);
        escape_bytes(&self.history[start..])
    }

    /// Reads until `done` returns the end of the wanted prefix of the pending bytes.
    fn read_until(
        &mut self,
        timeout: Duration,
        description: &str,
        done: impl Fn(&[u8]) -> Option<usize>,
    ) -> Result<usize, ExpectError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(end) = done(&self.pending) {
                return Ok(end);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ExpectError::Timeout {
                    needle: description.escape_default().to_string(),
                    timeout,
                    tail: self.tail(),
                });
            }
            self.poll(libc::POLLIN, deadline - now)?;
            if !self.read_available()? {
                return Err(ExpectError::Eof {
                    needle: description.escape_default().to_string(),
                    tail: self.tail(),
                });
            }
        }
    }

    /// Reads what is available now; returns false at end of input.
    fn read_available(&mut self) -> Result<bool, ExpectError> {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            // SAFETY: the pointer and length describe the live, writable `buffer`.
            let count = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                )
            };
            if count > 0 {
                // `count` is positive and at most `buffer.len()`.
                self.record(&buffer[..count as usize]);
                continue;
            }
            if count == 0 {
                return Ok(false);
            }
            let error = io::Error::last_os_error();
            match error.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => return Ok(true),
                // A pty main side returns EIO once no subsidiary descriptor is open.
                _ if error.raw_os_error() == Some(libc::EIO) => return Ok(false),
                _ => return Err(io_error("read", error)),
            }
        }
    }

    fn record(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        self.history.extend_from_slice(bytes);
        if self.history.len() > 2 * HISTORY_BYTES {
            let excess = self.history.len() - HISTORY_BYTES;
            self.history.drain(..excess);
        }
    }

    fn poll(&self, events: libc::c_short, timeout: Duration) -> Result<(), ExpectError> {
        let mut entry = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events,
            revents: 0,
        };
        // Round up so a short remaining time still waits instead of spinning.
        let millis = timeout.as_millis().saturating_add(1).min(i32::MAX as u128) as i32;
        // SAFETY: `entry` is one valid pollfd that outlives the call, and the count is 1.
        let ready = unsafe { libc::poll(&mut entry, 1, millis) };
        if ready < 0 {
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(io_error("poll", error));
            }
        }
        Ok(())
    }
}

fn io_error(operation: &'static str, source: io::Error) -> ExpectError {
    ExpectError::Io { operation, source }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_GETFL only reads the descriptor's status flags.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: F_SETFL only changes the status flags of a descriptor this process owns.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pty::open_pty;

    fn pty_expect() -> (crate::Pty, Expect) {
        let pty = open_pty(24, 80).unwrap();
        let main = pty.main.try_clone().unwrap();
        (pty, Expect::new(main).unwrap())
    }

    #[test]
    fn expect_finds_text_and_keeps_rest() {
        let (pty, mut expect) = pty_expect();
        let raw = ttyvm_term::RawMode::enable(pty.subsidiary.as_fd()).unwrap();
        let mut subsidiary = std::fs::File::from(pty.subsidiary.try_clone().unwrap());
        std::io::Write::write_all(&mut subsidiary, b"one two three").unwrap();
        let seen = expect.expect("two", Duration::from_secs(5)).unwrap();
        assert_eq!(seen, "one two");
        let rest = expect.read_exact(6, Duration::from_secs(5)).unwrap();
        assert_eq!(rest, b" three");
        drop(raw);
    }

    #[test]
    fn expect_timeout_shows_tail() {
        let (pty, mut expect) = pty_expect();
        let mut subsidiary = std::fs::File::from(pty.subsidiary.try_clone().unwrap());
        std::io::Write::write_all(&mut subsidiary, b"something else\n").unwrap();
        let error = expect
            .expect("never", Duration::from_millis(200))
            .unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, ExpectError::Timeout { .. }), "{message}");
        assert!(message.contains("something else"), "{message}");
    }

    #[test]
    fn expect_reports_end_of_input() {
        let (pty, mut expect) = pty_expect();
        drop(pty.subsidiary);
        let error = expect.expect("never", Duration::from_secs(5)).unwrap_err();
        assert!(matches!(error, ExpectError::Eof { .. }), "{error}");
    }

    #[test]
    fn send_times_out_when_nobody_reads() {
        let (pty, mut expect) = pty_expect();
        // In canonical mode the line discipline drops input past a full line instead of
        // blocking the writer, so only raw mode fills up.
        let _raw = ttyvm_term::RawMode::enable(pty.subsidiary.as_fd()).unwrap();
        let data = vec![b'x'; 1024 * 1024];
        let error = expect
            .send_timeout(&data, Duration::from_millis(200))
            .unwrap_err();
        assert!(matches!(error, ExpectError::SendTimeout { .. }), "{error}");
    }

    #[test]
    fn send_line_reaches_subsidiary() {
        let (pty, mut expect) = pty_expect();
        expect.send_line("hello").unwrap();
        let mut reader = Expect::new(pty.subsidiary.try_clone().unwrap()).unwrap();
        let seen = reader.expect("hello\n", Duration::from_secs(5)).unwrap();
        assert_eq!(seen, "hello\n");
    }
}
