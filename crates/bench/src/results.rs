//! The collected figures of one run, which the report renders.

use std::time::Duration;

use crate::idle::IdleResult;
use crate::machine::Machine;
use crate::resize::ResizeSamples;
use crate::throughput::Direction;

/// End-to-end resize latency of both consoles.
#[derive(Debug, Clone)]
pub struct ResizeResult {
    /// Ours: the guest on `ttyvm serve --console pty`.
    pub ours: ResizeSamples,
    /// The anchor: UML's own console.
    pub anchor: ResizeSamples,
    /// The bound after which a resize counts as lost.
    pub timeout: Duration,
    /// The number of guests each console was booted as; the resizes are split among them.
    pub rounds: usize,
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

/// Throughput runs of one direction.
#[derive(Debug, Clone)]
pub struct ThroughputResult {
    /// The direction.
    pub direction: Direction,
    /// The bytes moved per run.
    pub bytes: u64,
    /// MiB/s of each successful run of ours.
    pub ours: Vec<f64>,
    /// MiB/s of each successful run of the anchor.
    pub anchor: Vec<f64>,
    /// The failure of each failed run of ours, as one line.
    pub ours_failures: Vec<String>,
    /// The failure of each failed run of the anchor, as one line.
    pub anchor_failures: Vec<String>,
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
    /// Measurement 1.
    pub resize: Option<ResizeResult>,
    /// Measurement 2.
    pub host_resize: Option<HostResizeResult>,
    /// Measurement 3, one entry per direction.
    pub throughput: Vec<ThroughputResult>,
    /// Measurements 4 and 5.
    pub idle: Option<IdleResults>,
    /// The output of `cargo bench -p ttyvm-sigwinch`, when it was run.
    pub listener_bench: Option<String>,
}
