//! Console throughput in both directions: `emit N` (guest to host) and `sink N` (host to
//! guest), each checksummed with FNV-1a 64 against the responder's sum line.

use std::time::{Duration, Instant};

use ttyvm_testkit::checksum::Fnv1a64;
use ttyvm_testkit::protocol;
use ttyvm_testkit::stream::PseudoRandomStream;
use ttyvm_testkit::{ExpectError, Run};

use crate::console::{ConsoleGuest, ConsoleKind, Tools};
use crate::error::BenchError;

/// The size of each read and write of the host side.
const CHUNK: usize = 1 << 20;
/// The size of each read of the emitted stream, small so a stall is located closely.
const READ_CHUNK: usize = 64 << 10;
/// The bound on each chunk and on the sum line. A stall longer than this fails the run.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the bench watches the stream after sending SIGIO to a stalled UML.
const KICK_WATCH: Duration = Duration::from_secs(5);

/// The direction of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `emit`: the guest writes, the host reads.
    GuestToHost,
    /// `sink`: the host writes, the guest reads.
    HostToGuest,
}

impl Direction {
    /// Returns the name used in tables.
    pub fn name(self) -> &'static str {
        match self {
            Direction::GuestToHost => "guest to host (emit)",
            Direction::HostToGuest => "host to guest (sink)",
        }
    }
}

/// Returns the FNV-1a 64 hash of the first `count` bytes of the responder's stream.
pub fn expected_hash(count: u64) -> u64 {
    let mut stream = PseudoRandomStream::new();
    let mut hasher = Fnv1a64::new();
    let mut buffer = vec![0u8; CHUNK];
    let mut left = count;
    while left > 0 {
        let size = usize::try_from(left).map_or(CHUNK, |left| left.min(CHUNK));
        stream.fill(&mut buffer[..size]);
        hasher.update(&buffer[..size]);
        left -= size as u64;
    }
    hasher.value()
}

/// Boots a guest on `kind`, moves `count` bytes in `direction`, checks the checksum, and
/// returns the throughput in MiB/s.
pub fn measure(
    tools: &Tools,
    kind: ConsoleKind,
    direction: Direction,
    count: u64,
    hash: u64,
) -> Result<f64, BenchError> {
    let run = match direction {
        Direction::GuestToHost => Run::Emit(count),
        Direction::HostToGuest => Run::Sink(count),
    };
    let mut guest = ConsoleGuest::boot(tools, kind, run)?;
    let started = Instant::now();
    let (received, elapsed) = match direction {
        Direction::GuestToHost => {
            let received = receive(&mut guest, count)?;
            (received, started.elapsed())
        }
        Direction::HostToGuest => {
            send(&mut guest, count)?;
            (hash, Duration::ZERO)
        }
    };
    let sum_line = read_sum_line(&mut guest, direction)?;
    // The sink has read every byte only once it prints the sum line.
    let elapsed = match direction {
        Direction::GuestToHost => elapsed,
        Direction::HostToGuest => started.elapsed(),
    };
    verify(&guest, direction, count, hash, received, &sum_line)?;
    Ok(mib_per_second(count, elapsed))
}

/// Reads `count` bytes of stream from the guest and returns their hash, or
/// [`BenchError::Stalled`] with the byte count that arrived before a stall.
fn receive(guest: &mut ConsoleGuest, count: u64) -> Result<u64, BenchError> {
    let mut hasher = Fnv1a64::new();
    let mut left = count;
    while left > 0 {
        let size = usize::try_from(left).map_or(READ_CHUNK, |left| left.min(READ_CHUNK));
        let bytes = match guest.console.read_exact(size, CHUNK_TIMEOUT) {
            Ok(bytes) => bytes,
            Err(ExpectError::Timeout { .. }) => {
                let moved = count - left;
                let kick = kick_receive(guest);
                return Err(stalled(guest, "emit", moved, count, kick));
            }
            Err(error) => return Err(guest.check("reading the emitted stream", Err(error))?),
        };
        hasher.update(&bytes);
        left -= size as u64;
    }
    Ok(hasher.value())
}

fn stalled(
    guest: &ConsoleGuest,
    direction: &'static str,
    moved: u64,
    count: u64,
    kick: String,
) -> BenchError {
    BenchError::Stalled {
        direction,
        console: guest.kind.name(),
        moved,
        count,
        timeout: CHUNK_TIMEOUT,
        kick,
    }
}

/// Sends SIGIO to a stalled anchor's UML, which makes it look at its descriptors again, and
/// returns whether the signal was sent. Ours gets none, because its UML has no con0.
fn send_sigio(guest: &ConsoleGuest) -> bool {
    if guest.kind == ConsoleKind::Ours {
        return false;
    }
    let Ok(pid) = libc::pid_t::try_from(guest.uml_pid()) else {
        return false;
    };
    // SAFETY: kill sends a signal to the UML process this bench started; it touches no memory.
    unsafe { libc::kill(pid, libc::SIGIO) == 0 }
}

/// After an emit stall: sends SIGIO and counts the bytes that arrive within [`KICK_WATCH`].
fn kick_receive(guest: &mut ConsoleGuest) -> String {
    if !send_sigio(guest) {
        return String::new();
    }
    let deadline = Instant::now() + KICK_WATCH;
    let mut arrived = 0;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let wanted = guest.console.pending().len() + 1;
        match guest.console.read_exact(wanted, left) {
            Ok(bytes) => arrived += bytes.len(),
            Err(_) => break,
        }
    }
    arrived += guest.console.pending().len();
    format!("; a SIGIO sent to UML by hand then brought {arrived} more bytes within {KICK_WATCH:?}")
}

/// After a sink stall: sends SIGIO and writes the rest of `chunk` for [`KICK_WATCH`].
fn kick_send(guest: &mut ConsoleGuest, chunk: &[u8]) -> String {
    if !send_sigio(guest) {
        return String::new();
    }
    let written = match guest.console.send_timeout(chunk, KICK_WATCH) {
        Ok(()) => chunk.len(),
        Err(ExpectError::SendTimeout { written, .. }) => written,
        Err(_) => 0,
    };
    format!("; a SIGIO sent to UML by hand then let {written} more bytes in within {KICK_WATCH:?}")
}

fn mib_per_second(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / elapsed.as_secs_f64()
}

/// Writes `count` bytes of stream to the guest.
fn send(guest: &mut ConsoleGuest, count: u64) -> Result<(), BenchError> {
    let mut stream = PseudoRandomStream::new();
    let mut buffer = vec![0u8; CHUNK];
    let mut left = count;
    while left > 0 {
        let size = usize::try_from(left).map_or(CHUNK, |left| left.min(CHUNK));
        stream.fill(&mut buffer[..size]);
        match guest.console.send_timeout(&buffer[..size], CHUNK_TIMEOUT) {
            Ok(()) => {}
            Err(ExpectError::SendTimeout { written, .. }) => {
                let moved = count - left + written as u64;
                let kick = kick_send(guest, &buffer[written..size]);
                return Err(stalled(guest, "sink", moved, count, kick));
            }
            Err(error) => {
                let step = format!(
                    "writing to the sink after {} of {count} bytes",
                    count - left
                );
                return Err(guest.check(&step, Err(error))?);
            }
        }
        left -= size as u64;
    }
    Ok(())
}

/// Reads the line that starts with the sum prefix, after the stream's own `\r\n` for emit.
fn read_sum_line(guest: &mut ConsoleGuest, direction: Direction) -> Result<String, BenchError> {
    let result = guest.console.expect(protocol::SUM, CHUNK_TIMEOUT);
    let before = guest.check("waiting for the sum line", result)?;
    if direction == Direction::GuestToHost && before != format!("\r\n{}", protocol::SUM) {
        return Err(BenchError::Corrupt {
            what: "the bytes after the stream",
            console: guest.kind.name(),
            detail: format!("expected \\r\\n before the sum line, got {before:?}"),
        });
    }
    let result = guest.console.expect("\r\n", CHUNK_TIMEOUT);
    let rest = guest.check("reading the sum line", result)?;
    Ok(format!("{}{rest}", protocol::SUM))
}

fn verify(
    guest: &ConsoleGuest,
    direction: Direction,
    count: u64,
    hash: u64,
    received: u64,
    sum_line: &str,
) -> Result<(), BenchError> {
    let corrupt = |detail: String| BenchError::Corrupt {
        what: direction.name(),
        console: guest.kind.name(),
        detail,
    };
    let sum = protocol::parse_sum(sum_line)
        .ok_or_else(|| corrupt(format!("invalid sum line {sum_line:?}")))?;
    if sum.count != count || sum.hash != hash {
        return Err(corrupt(format!(
            "the guest reported count={} fnv1a64={:016x}, expected count={count} \
             fnv1a64={hash:016x}",
            sum.count, sum.hash
        )));
    }
    if received != hash {
        return Err(corrupt(format!(
            "the host received bytes hashing to {received:016x}, expected {hash:016x}"
        )));
    }
    Ok(())
}
