//! `emit` and `sink` modes: checksummed byte streams through the console in raw mode.

use std::io;

use ttyvm_responder::checksum::Fnv1a64;
use ttyvm_responder::protocol;
use ttyvm_responder::stream::PseudoRandomStream;

use crate::{fd, tty};

/// The size of each write and read.
const CHUNK: usize = 4096;

/// Writes `count` bytes of the pseudo-random stream to stdout, then the sum line.
pub fn emit(count: u64) -> io::Result<()> {
    let _raw = tty::RawMode::enable(libc::STDOUT_FILENO)?;
    let ready = format!("{} emit\r\n", protocol::READY);
    fd::write_all(libc::STDOUT_FILENO, ready.as_bytes())?;

    let mut stream = PseudoRandomStream::new();
    let mut hasher = Fnv1a64::new();
    let mut buffer = [0u8; CHUNK];
    let mut remaining = count;
    while remaining > 0 {
        let size = usize::try_from(remaining).map_or(CHUNK, |left| left.min(CHUNK));
        let chunk = &mut buffer[..size];
        stream.fill(chunk);
        hasher.update(chunk);
        fd::write_all(libc::STDOUT_FILENO, chunk)?;
        remaining -= size as u64;
    }

    let trailer = format!("\r\n{}\r\n", protocol::sum_line(count, hasher.value()));
    fd::write_all(libc::STDOUT_FILENO, trailer.as_bytes())
}

/// Reads exactly `count` bytes from stdin, then prints their sum line.
pub fn sink(count: u64) -> io::Result<()> {
    let _raw = tty::RawMode::enable(libc::STDIN_FILENO)?;
    let ready = format!("{} sink\r\n", protocol::READY);
    fd::write_all(libc::STDOUT_FILENO, ready.as_bytes())?;

    let mut hasher = Fnv1a64::new();
    let mut buffer = [0u8; CHUNK];
    let mut received = 0u64;
    while received < count {
        let size = usize::try_from(count - received).map_or(CHUNK, |left| left.min(CHUNK));
        let got = fd::read(libc::STDIN_FILENO, &mut buffer[..size])?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("sink: input ended after {received} of {count} bytes"),
            ));
        }
        hasher.update(&buffer[..got]);
        received += got as u64;
    }

    let line = format!("{}\r\n", protocol::sum_line(count, hasher.value()));
    fd::write_all(libc::STDOUT_FILENO, line.as_bytes())
}
