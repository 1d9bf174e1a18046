//! The collected figures of one run, which the report renders.

use std::time::Duration;

use crate::console::ConsoleKind;
use crate::idle::IdleResult;
use crate::machine::Machine;
use crate::resize::ResizeSamples;
use crate::throughput::Direction;

/// The conditions of one end-to-end resize measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResizeVariant {
    /// The busy threads of the bench's own that ran throughout: 0 for none.
    pub spinners: usize,
    /// Whether UML was bound to CPU 0 and the server to the last CPU.
    pub pinned: bool,
}

/// End-to-end resize latency of both consoles.
#[derive(Debug, Clone)]
pub struct ResizeResult {
    /// The conditions of the measurement.
    pub variant: ResizeVariant,
    /// Ours: the guest on `ttyvm serve --console pty`.
    pub ours: ResizeSamples,
    /// The anchor: UML's own console.
    pub anchor: ResizeSamples,
    /// The bound after which a resize counts as lost.
    pub timeout: Duration,
    /// The number of guests each console was booted as; the resizes are split among them.
    pub rounds: usize,
    /// /proc/loadavg before the first boot.
    pub load_before: String,
    /// /proc/loadavg after the last resize.
    pub load_after: String,
}

/// Host-side resize latency of the server and of the listener alone.
#[derive(Debug, Clone)]
pub struct HostResizeResult {
    /// TIOCSWINSZ to the config-change message.
    pub server: ResizeSamples,
    /// TIOCSWINSZ to the listener's fd readable.
    pub listener: ResizeSamples,
    /// The bound after which a resize counts as lost.
    pub timeout: Duration,
}

/// The throughput runs of one console in one direction.
#[derive(Debug, Clone)]
pub struct ConsoleRuns {
    /// The console.
    pub kind: ConsoleKind,
    /// MiB/s of each successful run.
    pub rates: Vec<f64>,
    /// The failure of each failed run, as one line.
    pub failures: Vec<String>,
}

impl ConsoleRuns {
    /// Returns an empty record for `kind`.
    pub fn new(kind: ConsoleKind) -> Self {
        ConsoleRuns {
            kind,
            rates: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// Returns the number of runs, successful or not.
    pub fn runs(&self) -> usize {
        self.rates.len() + self.failures.len()
    }
}

/// Throughput runs of one direction.
#[derive(Debug, Clone)]
pub struct ThroughputResult {
    /// The direction.
    pub direction: Direction,
    /// The bytes moved per run.
    pub bytes: u64,
    /// Ours.
    pub ours: ConsoleRuns,
    /// The anchors, one per medium.
    pub anchors: Vec<ConsoleRuns>,
}

/// Idle cost with and without a guest.
#[derive(Debug, Clone, Copy)]
pub struct IdleResults {
    /// A `winch` guest connected and idle.
    pub with_guest: IdleResult,
    /// No frontend connected.
    pub without_guest: IdleResult,
    /// The length of each idle interval.
    pub interval: Duration,
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct Results {
    /// The machine and the date.
    pub machine: Machine,
    /// The command that produced these figures.
    pub command: String,
    /// Whether this was a shortened development run.
    pub quick: bool,
    /// Measurement 1: quiet, then under a load of the bench's own.
    pub resize: Vec<ResizeResult>,
    /// Measurement 2.
    pub host_resize: Option<HostResizeResult>,
    /// Measurement 3, one entry per direction.
    pub throughput: Vec<ThroughputResult>,
    /// Measurements 4 and 5.
    pub idle: Option<IdleResults>,
    /// The output of `cargo bench -p ttyvm-sigwinch`, when it was run.
    pub listener_bench: Option<String>,
}
