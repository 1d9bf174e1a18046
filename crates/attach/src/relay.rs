//! The relay loop: one poll over the signalfd, the user's side and the pty.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use crate::buffer::{Blocking, Buffer};
use crate::signals::{Signal, SignalFd};

/// Bytes buffered in each direction; reading a side stops while its buffer is full.
const BUFFER_SIZE: usize = 64 * 1024;

/// How long buffered bytes may take to drain when the relay ends.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the relay ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The user typed the escape character.
    Detached,
    /// The pty hung up because the server holding its main side closed it.
    ConsoleClosed,
    /// Standard input is a terminal and it hung up.
    TerminalClosed,
    /// An exit signal arrived, with its number.
    Signaled(libc::c_int),
}

/// Errors that end the relay.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// poll(2) failed.
    #[error("poll failed: {0}")]
    Poll(#[source] io::Error),
    /// Reading the signalfd failed.
    #[error("failed to read the signalfd: {0}")]
    Signals(#[source] io::Error),
    /// Reading standard input failed.
    #[error("failed to read standard input: {0}")]
    ReadInput(#[source] io::Error),
    /// Writing standard output failed.
    #[error("failed to write standard output: {0}")]
    WriteOutput(#[source] io::Error),
    /// Reading or writing the pty failed other than by a hangup.
    #[error("failed to relay to the pty: {0}")]
    Pty(#[source] io::Error),
}

/// The fds the relay moves bytes between.
#[derive(Clone, Copy, Debug)]
pub struct Ends<'a> {
    /// Where the user's keys come from.
    pub input: BorrowedFd<'a>,
    /// Whether `input` is a terminal: its end of file then ends the relay.
    pub input_is_terminal: bool,
    /// Where console output goes.
    pub output: BorrowedFd<'a>,
    /// How writes to `output` behave.
    pub output_blocking: Blocking,
    /// The pty's subsidiary side, non-blocking.
    pub pty: BorrowedFd<'a>,
    /// The signalfd for resizes, job control and exit requests.
    pub signals: &'a SignalFd,
}

/// The state of one relay: a buffer per direction and the escape byte.
#[derive(Debug)]
pub struct Relay {
    to_pty: Buffer,
    to_user: Buffer,
    escape: Option<u8>,
    input_open: bool,
}

/// Indexes into the poll set.
const SIGNALS: usize = 0;
const INPUT: usize = 1;
const PTY: usize = 2;
const OUTPUT: usize = 3;

impl Relay {
    /// Creates a relay that detaches on `escape`, or passes every byte when it is `None`.
    pub fn new(escape: Option<u8>) -> Self {
        Relay {
            to_pty: Buffer::new(BUFFER_SIZE),
            to_user: Buffer::new(BUFFER_SIZE),
            escape,
            input_open: true,
        }
    }

    /// Whether the console output written to the user so far ends a line, so that a message
    /// printed now starts at the left margin. True before any output.
    pub fn output_ends_line(&self) -> bool {
        matches!(self.to_user.last_written(), None | Some(b'\n'))
    }

    /// Relays until detach, hangup or an exit signal, calling `on_signal` with every other
    /// signal: a resize, a stop or a continue. After a detach, or when the console closes, the
    /// bytes already read are written out within a bounded time before it returns.
    pub fn run(
        &mut self,
        ends: Ends<'_>,
        mut on_signal: impl FnMut(Signal),
    ) -> Result<Outcome, RelayError> {
        loop {
            let mut fds = self.poll_set(&ends);
            poll(&mut fds, -1).map_err(RelayError::Poll)?;
            if fds[SIGNALS].revents != 0 {
                while let Some(signal) = ends.signals.read().map_err(RelayError::Signals)? {
                    match signal {
                        Signal::Exit(number) => return Ok(Outcome::Signaled(number)),
                        other => on_signal(other),
                    }
                }
            }
            if fds[OUTPUT].revents != 0 {
                self.to_user
                    .write_to(ends.output, ends.output_blocking)
                    .map_err(RelayError::WriteOutput)?;
            }
            if let Some(outcome) = self.service_pty(&ends, fds[PTY].revents)? {
                return self.finish(&ends, outcome);
            }
            if fds[INPUT].revents != 0 {
                if let Some(outcome) = self.read_input(&ends)? {
                    return self.finish(&ends, outcome);
                }
            }
        }
    }

    fn poll_set(&self, ends: &Ends<'_>) -> [libc::pollfd; 4] {
        let mut pty_events = 0;
        if self.to_user.has_room() {
            pty_events |= libc::POLLIN;
        }
        if !self.to_pty.is_empty() {
            pty_events |= libc::POLLOUT;
        }
        let reading_input = self.input_open && self.to_pty.has_room();
        [
            pollfd(Some(ends.signals.as_fd()), libc::POLLIN),
            pollfd(reading_input.then_some(ends.input), libc::POLLIN),
            pollfd((pty_events != 0).then_some(ends.pty), pty_events),
            pollfd(
                (!self.to_user.is_empty()).then_some(ends.output),
                libc::POLLOUT,
            ),
        ]
    }

    /// Writes to and reads from the pty as `revents` allows, and reports a hangup.
    fn service_pty(
        &mut self,
        ends: &Ends<'_>,
        revents: libc::c_short,
    ) -> Result<Option<Outcome>, RelayError> {
        if revents == 0 {
            return Ok(None);
        }
        if !self.to_pty.is_empty() {
            match self.to_pty.write_to(ends.pty, Blocking::No) {
                Ok(_) => {}
                Err(err) if is_hangup(&err) => return Ok(Some(Outcome::ConsoleClosed)),
                Err(err) => return Err(RelayError::Pty(err)),
            }
        }
        if !self.to_user.has_room() {
            return Ok(None);
        }
        match self.to_user.read_from(ends.pty) {
            Ok(0) => Ok(Some(Outcome::ConsoleClosed)),
            Ok(_) => Ok(None),
            Err(err) if is_hangup(&err) => Ok(Some(Outcome::ConsoleClosed)),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                let hung_up = revents & (libc::POLLHUP | libc::POLLERR) != 0;
                Ok(hung_up.then_some(Outcome::ConsoleClosed))
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(err) => Err(RelayError::Pty(err)),
        }
    }

    /// Reads the user's keys into the pty buffer and looks for the escape byte among them.
    fn read_input(&mut self, ends: &Ends<'_>) -> Result<Option<Outcome>, RelayError> {
        let count = match self.to_pty.read_from(ends.input) {
            Ok(count) => count,
            Err(err) if is_hangup(&err) => 0,
            Err(err) if is_transient(&err) => return Ok(None),
            Err(err) => return Err(RelayError::ReadInput(err)),
        };
        if count == 0 {
            if ends.input_is_terminal {
                return Ok(Some(Outcome::TerminalClosed));
            }
            // A pipe or file has ended, but console output keeps coming until the pty closes.
            log::info!("attach: standard input ended; still relaying console output");
            self.input_open = false;
            return Ok(None);
        }
        match self.escape {
            Some(escape) if self.to_pty.cut_at(count, escape) => Ok(Some(Outcome::Detached)),
            _ => Ok(None),
        }
    }

    /// Drains what the ending relay still has for the side that remains.
    fn finish(&mut self, ends: &Ends<'_>, outcome: Outcome) -> Result<Outcome, RelayError> {
        match outcome {
            Outcome::Detached => {
                if let Err(err) = drain(&mut self.to_pty, ends.pty, Blocking::No) {
                    log::warn!("attach: dropped typed bytes at detach: {err}");
                }
                // The pty has handed these bytes over, so the server no longer keeps them.
                if let Err(err) = drain(&mut self.to_user, ends.output, ends.output_blocking) {
                    log::warn!("attach: dropped console output at detach: {err}");
                }
            }
            Outcome::ConsoleClosed => {
                drain(&mut self.to_user, ends.output, ends.output_blocking)
                    .map_err(RelayError::WriteOutput)?;
            }
            Outcome::TerminalClosed | Outcome::Signaled(_) => {}
        }
        Ok(outcome)
    }
}

/// Writes out `buffer` within DRAIN_TIMEOUT.
fn drain(buffer: &mut Buffer, fd: BorrowedFd<'_>, blocking: Blocking) -> io::Result<()> {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while !buffer.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{} bytes not written within {DRAIN_TIMEOUT:?}",
                    buffer.pending().len()
                ),
            ));
        }
        let mut fds = [pollfd(Some(fd), libc::POLLOUT)];
        poll(&mut fds, left.as_millis().min(i32::MAX as u128) as i32)?;
        if fds[0].revents != 0 {
            buffer.write_to(fd, blocking)?;
        }
    }
    Ok(())
}

/// Whether `err` means the other side of a pty or terminal went away.
fn is_hangup(err: &io::Error) -> bool {
    err.raw_os_error() == Some(libc::EIO)
}

fn is_transient(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// A poll entry for `fd`, or one that poll ignores (a negative fd) when `fd` is `None`.
fn pollfd(fd: Option<BorrowedFd<'_>>, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd: fd.map_or(-1, |fd| fd.as_raw_fd()),
        events,
        revents: 0,
    }
}

fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: poll reads and writes `fds.len()` entries of the live slice.
        let ret = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if ret != -1 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::{FromRawFd, OwnedFd};
    use ttyvm_term::{Pty, Termios};

    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two fds into the local array.
        let ret = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
        assert_eq!(ret, 0);
        // SAFETY: pipe2 succeeded, so both fds are new and owned by nothing else.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    /// A pty whose subsidiary side is raw and non-blocking, as the client opens it.
    fn console() -> (Pty, OwnedFd) {
        let pty = Pty::open().unwrap();
        let path = pty.path.clone();
        let subsidiary = crate::target::open_console(&path).unwrap();
        let termios = Termios::get(subsidiary.as_fd()).unwrap();
        termios.raw().set(subsidiary.as_fd()).unwrap();
        (pty, subsidiary)
    }

    fn pattern(length: usize) -> Vec<u8> {
        // Every byte value but the escape (0x1d), so that no test data detaches.
        (0..length)
            .map(|i| (i % 251) as u8)
            .map(|b| if b == 0x1d { 0 } else { b })
            .collect()
    }

    #[test]
    fn relay_carries_bulk_output_to_slow_reader() {
        let signals = SignalFd::new().unwrap();
        let (pty, subsidiary) = console();
        let (input_read, _input_write) = pipe();
        let (output_read, output_write) = pipe();
        let data = pattern(1 << 20);
        let sent = data.clone();
        let mut main = std::fs::File::from(pty.main);
        drop(pty.subsidiary);
        let writer = std::thread::spawn(move || {
            main.write_all(&sent).unwrap();
            // Closing the main side once the reader has everything ends the relay.
            main
        });
        let reader = std::thread::spawn(move || {
            let mut output = std::fs::File::from(output_read);
            let mut received = Vec::new();
            let mut chunk = [0u8; 1000];
            while received.len() < 1 << 20 {
                let count = output.read(&mut chunk).unwrap();
                assert_ne!(count, 0, "output ended after {} bytes", received.len());
                received.extend_from_slice(&chunk[..count]);
                if received.len() % 100_000 < 1000 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            received
        });
        let ends = Ends {
            input: input_read.as_fd(),
            input_is_terminal: false,
            output: output_write.as_fd(),
            output_blocking: Blocking::Yes(libc::PIPE_BUF),
            pty: subsidiary.as_fd(),
            signals: &signals,
        };
        let main = std::thread::scope(|scope| {
            let closer = scope.spawn(|| {
                let main = writer.join().unwrap();
                let received = reader.join().unwrap();
                drop(main);
                received
            });
            let outcome = Relay::new(Some(0x1d)).run(ends, |_| {}).unwrap();
            (outcome, closer.join().unwrap())
        });
        assert_eq!(main.0, Outcome::ConsoleClosed);
        assert!(
            main.1 == data,
            "output differs from what the main side wrote"
        );
    }

    #[test]
    fn relay_carries_bulk_input_and_detaches() {
        let signals = SignalFd::new().unwrap();
        let (pty, subsidiary) = console();
        let (input_read, input_write) = pipe();
        let (_output_read, output_write) = pipe();
        let data = pattern(1 << 20);
        let sent = data.clone();
        let writer = std::thread::spawn(move || {
            let mut input = std::fs::File::from(input_write);
            input.write_all(&sent).unwrap();
            input.write_all(b"\x1dignored after the escape").unwrap();
        });
        let mut main = std::fs::File::from(pty.main);
        let reader = std::thread::spawn(move || {
            let mut received = vec![0u8; 1 << 20];
            main.read_exact(&mut received).unwrap();
            (main, received)
        });
        let ends = Ends {
            input: input_read.as_fd(),
            input_is_terminal: false,
            output: output_write.as_fd(),
            output_blocking: Blocking::Yes(libc::PIPE_BUF),
            pty: subsidiary.as_fd(),
            signals: &signals,
        };
        let outcome = Relay::new(Some(0x1d)).run(ends, |_| {}).unwrap();
        writer.join().unwrap();
        let (mut main, received) = reader.join().unwrap();
        assert_eq!(outcome, Outcome::Detached);
        assert!(received == data, "input differs from what was typed");
        // Nothing after the escape reached the pty.
        // SAFETY: fcntl takes the flags by value.
        unsafe { libc::fcntl(main.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        let mut rest = [0u8; 64];
        let err = main.read(&mut rest).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    /// Waits until `fd` has bytes to read, so a test knows the pty has delivered them.
    fn wait_readable(fd: BorrowedFd<'_>) {
        let mut fds = [pollfd(Some(fd), libc::POLLIN)];
        poll(&mut fds, 5000).unwrap();
        assert_ne!(
            fds[0].revents & libc::POLLIN,
            0,
            "no bytes arrived within 5 s"
        );
    }

    #[test]
    fn detach_writes_output_already_read() {
        let signals = SignalFd::new().unwrap();
        let (pty, subsidiary) = console();
        let (input_read, input_write) = pipe();
        let (output_read, output_write) = pipe();
        let mut main = std::fs::File::from(pty.main);
        main.write_all(b"guest output without a line end").unwrap();
        wait_readable(subsidiary.as_fd());
        std::fs::File::from(input_write).write_all(b"\x1d").unwrap();
        let ends = Ends {
            input: input_read.as_fd(),
            input_is_terminal: false,
            output: output_write.as_fd(),
            output_blocking: Blocking::Yes(libc::PIPE_BUF),
            pty: subsidiary.as_fd(),
            signals: &signals,
        };
        // The first poll finds the output and the escape ready together, so the relay reads
        // the output and then detaches before it has written any of it.
        let mut relay = Relay::new(Some(0x1d));
        let outcome = relay.run(ends, |_| {}).unwrap();
        assert_eq!(outcome, Outcome::Detached);
        drop(output_write);
        let mut shown = Vec::new();
        std::fs::File::from(output_read)
            .read_to_end(&mut shown)
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&shown),
            "guest output without a line end",
            "what the user's terminal got"
        );
        assert!(!relay.output_ends_line(), "the output ends in mid-line");
    }

    #[test]
    fn relay_without_escape_passes_escape_byte() {
        let signals = SignalFd::new().unwrap();
        let (pty, subsidiary) = console();
        let (input_read, input_write) = pipe();
        let (_output_read, output_write) = pipe();
        std::fs::File::from(input_write)
            .write_all(b"a\x1db")
            .unwrap();
        let mut main = std::fs::File::from(pty.main);
        drop(pty.subsidiary);
        let reader = std::thread::spawn(move || {
            let mut received = [0u8; 3];
            main.read_exact(&mut received).unwrap();
            received
        });
        let ends = Ends {
            input: input_read.as_fd(),
            input_is_terminal: false,
            output: output_write.as_fd(),
            output_blocking: Blocking::Yes(libc::PIPE_BUF),
            pty: subsidiary.as_fd(),
            signals: &signals,
        };
        let outcome = Relay::new(None).run(ends, |_| {}).unwrap();
        assert_eq!(outcome, Outcome::ConsoleClosed);
        assert_eq!(&reader.join().unwrap(), b"a\x1db");
    }
}
