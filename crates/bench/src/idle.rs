//! Idle cost and memory: context switches of the server and of its resize helper over an idle
//! interval, with and without a guest, and their resident memory with a guest connected.

use std::thread;
use std::time::Duration;

use ttyvm_testkit::{Run, Server, TempDir};

use crate::console::{ConsoleGuest, ConsoleKind, Tools};
use crate::error::BenchError;
use crate::procstat::{self, Memory, Switches};

/// The time a fresh server or guest gets to finish starting before the interval begins.
const SETTLE: Duration = Duration::from_secs(2);

/// What one idle interval measured.
#[derive(Debug, Clone, Copy)]
pub struct IdleResult {
    /// Context switches of the server over the interval.
    pub server: Switches,
    /// Context switches of the helper over the interval.
    pub helper: Switches,
    /// The server's memory at the end of the interval.
    pub server_memory: Memory,
    /// The helper's memory at the end of the interval.
    pub helper_memory: Memory,
}

/// Measures an idle server with a `winch` guest connected.
pub fn with_guest(tools: &Tools, interval: Duration) -> Result<IdleResult, BenchError> {
    let guest = ConsoleGuest::boot(tools, ConsoleKind::Ours, Run::Winch)?;
    let pid = guest
        .server_pid()
        .ok_or_else(|| BenchError::Process("the guest on ours has no server".to_string()))?;
    measure(pid, interval)
}

/// Measures an idle server that no frontend ever connected to.
pub fn without_guest(tools: &Tools, interval: Duration) -> Result<IdleResult, BenchError> {
    let dir = TempDir::new("bench").map_err(BenchError::io("creating a socket folder"))?;
    let socket = dir.path().join("console.sock");
    let args = [
        "--socket".as_ref(),
        socket.as_os_str(),
        "--console".as_ref(),
        "pty".as_ref(),
    ];
    let server = Server::spawn(&tools.ttyvm, &args, Duration::from_secs(10))?;
    measure(server.pid(), interval)
}

fn measure(server: u32, interval: Duration) -> Result<IdleResult, BenchError> {
    thread::sleep(SETTLE);
    let helper = procstat::helper_of(server)?;
    let server_before = procstat::switches(server)?;
    let helper_before = procstat::switches(helper)?;
    thread::sleep(interval);
    let server_after = procstat::switches(server)?;
    let helper_after = procstat::switches(helper)?;
    Ok(IdleResult {
        server: server_after.since(server_before),
        helper: helper_after.since(helper_before),
        server_memory: procstat::memory(server)?,
        helper_memory: procstat::memory(helper)?,
    })
}
