//! End-to-end resize latency: from TIOCSWINSZ on the host pty to the guest responder's
//! `size ROWS COLS` line arriving back on the host.

use std::time::{Duration, Instant};

use ttyvm_testkit::{set_window_size, ExpectError, Run, WindowSize};

use crate::console::{ConsoleGuest, ConsoleKind, Tools};
use crate::error::BenchError;

/// The result of one console's resizes.
#[derive(Debug, Clone, Default)]
pub struct ResizeSamples {
    /// The latency of each resize whose report arrived, in milliseconds.
    pub latencies_ms: Vec<f64>,
    /// The resizes whose report did not arrive within the timeout.
    pub lost: usize,
}

impl ResizeSamples {
    /// Adds the samples of `other`.
    pub fn extend(&mut self, other: ResizeSamples) {
        self.latencies_ms.extend(other.latencies_ms);
        self.lost += other.lost;
    }
}

/// Returns the size of resize number `index`. Consecutive sizes always differ in rows, and the
/// columns alternate, so every resize changes the size.
pub fn size_for(index: usize) -> WindowSize {
    let rows = 20 + (index % 41) as u16;
    let cols = 70 + (index % 2) as u16 * 50 + (index % 13) as u16;
    WindowSize::new(rows, cols)
}

/// Boots a `winch` guest on `kind`, resizes its console `count` times, and returns the
/// latencies. A report that takes longer than `timeout` counts as lost.
pub fn measure(
    tools: &Tools,
    kind: ConsoleKind,
    count: usize,
    timeout: Duration,
) -> Result<ResizeSamples, BenchError> {
    let mut guest = ConsoleGuest::boot(tools, kind, Run::Winch)?;
    // The responder prints the size it started with; consume that line first.
    let first = guest.console.expect("\r\n", timeout);
    guest.check("reading the first size line", first)?;

    let mut samples = ResizeSamples::default();
    for index in 0..count {
        let size = size_for(index);
        let line = format!("size {} {}\r\n", size.rows, size.cols);
        let started = Instant::now();
        set_window_size(guest.resize_fd(), size).map_err(BenchError::io(format!(
            "TIOCSWINSZ {}x{}",
            size.cols, size.rows
        )))?;
        match guest.console.expect(&line, timeout) {
            Ok(_) => samples
                .latencies_ms
                .push(started.elapsed().as_secs_f64() * 1e3),
            Err(ExpectError::Timeout { .. }) => samples.lost += 1,
            Err(error) => return Err(guest.check("waiting for a size line", Err(error))?),
        }
    }
    // A `q` line ends the responder; the guest is stopped on drop either way.
    let _ = guest.console.send(b"q\n");
    Ok(samples)
}
