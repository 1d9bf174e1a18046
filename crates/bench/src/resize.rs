//! End-to-end resize latency: from TIOCSWINSZ on the host pty to the guest responder's
//! `size ROWS COLS` line arriving back on the host.

use std::time::{Duration, Instant};

use ttyvm_testkit::{set_window_size, ExpectError, Run, WindowSize};

use crate::console::{ConsoleGuest, ConsoleKind, Tools};
use crate::error::BenchError;
use crate::procstat::{self, Sched};

/// The result of one console's resizes.
#[derive(Debug, Clone, Default)]
pub struct ResizeSamples {
    /// The latency of each resize whose report arrived, in milliseconds.
    pub latencies_ms: Vec<f64>,
    /// The resizes whose report did not arrive within the timeout.
    pub lost: usize,
    /// The scheduler's account of each arrived resize, in the order of `latencies_ms`.
    pub sched: Vec<ResizeSched>,
}

impl ResizeSamples {
    /// Adds the samples of `other`.
    pub fn extend(&mut self, other: ResizeSamples) {
        self.latencies_ms.extend(other.latencies_ms);
        self.lost += other.lost;
        self.sched.extend(other.sched);
    }
}

/// The scheduler's account of one resize, from /proc/PID/task/*/schedstat read just before
/// TIOCSWINSZ and just after the size line arrived.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResizeSched {
    /// The server and its helper: CPU time and run-queue wait. Zero for the anchor.
    pub server: Sched,
    /// UML's kernel process, its threads and its children (the guest's processes).
    pub uml: Sched,
    /// The bench's own thread, which resizes and reads the console.
    pub reader: Sched,
}

/// The processes whose schedstat a resize reads.
struct Watched {
    server: Vec<u32>,
    uml: Vec<u32>,
}

impl Watched {
    fn of(guest: &ConsoleGuest) -> Result<Self, BenchError> {
        let server = match guest.server_pid() {
            Some(pid) => vec![pid, procstat::helper_of(pid)?],
            None => Vec::new(),
        };
        let mut uml = vec![guest.uml_pid()];
        uml.extend(procstat::children(guest.uml_pid())?);
        Ok(Watched { server, uml })
    }

    /// Puts UML on CPU 0 and the server on the last CPU, so they never share one.
    fn pin(&self) -> Result<(), BenchError> {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        procstat::pin(&self.uml, 0)?;
        procstat::pin(&self.server, cpus.saturating_sub(1))
    }

    fn read(&self) -> Result<ResizeSched, BenchError> {
        Ok(ResizeSched {
            server: procstat::sched(&self.server)?,
            uml: procstat::sched(&self.uml)?,
            reader: procstat::sched_self()?,
        })
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
/// latencies. A report that takes longer than `timeout` counts as lost. With `pinned`, UML
/// runs on CPU 0 only and the server on the last CPU only.
pub fn measure(
    tools: &Tools,
    kind: ConsoleKind,
    count: usize,
    timeout: Duration,
    pinned: bool,
) -> Result<ResizeSamples, BenchError> {
    let mut guest = ConsoleGuest::boot(tools, kind, Run::Winch)?;
    // The responder prints the size it started with; consume that line first.
    let first = guest.console.expect("\r\n", timeout);
    guest.check("reading the first size line", first)?;

    let watched = Watched::of(&guest)?;
    if pinned {
        watched.pin()?;
    }
    let mut samples = ResizeSamples::default();
    for index in 0..count {
        let size = size_for(index);
        let line = format!("size {} {}\r\n", size.rows, size.cols);
        let before = watched.read()?;
        let started = Instant::now();
        set_window_size(guest.resize_fd(), size).map_err(BenchError::io(format!(
            "TIOCSWINSZ {}x{}",
            size.cols, size.rows
        )))?;
        match guest.console.expect(&line, timeout) {
            Ok(_) => {
                samples
                    .latencies_ms
                    .push(started.elapsed().as_secs_f64() * 1e3);
                let after = watched.read()?;
                samples.sched.push(ResizeSched {
                    server: after.server.since(before.server),
                    uml: after.uml.since(before.uml),
                    reader: after.reader.since(before.reader),
                });
            }
            Err(ExpectError::Timeout { .. }) => samples.lost += 1,
            Err(error) => return Err(guest.check("waiting for a size line", Err(error))?),
        }
    }
    // A `q` line ends the responder; the guest is stopped on drop either way.
    let _ = guest.console.send(b"q\n");
    Ok(samples)
}
