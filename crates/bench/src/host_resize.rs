//! Host-side resize latency: from TIOCSWINSZ on the server's pty to the config-change message
//! arriving on the backend request channel of the bench's own frontend, next to the resize
//! listener's own wake latency (TIOCSWINSZ to its fd readable) as the anchor.

use std::fs::OpenOptions;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use ttyvm_sigwinch::ResizeListener;
use ttyvm_testkit::{open_pty, set_window_size, Server, TempDir};

use crate::console::Tools;
use crate::error::BenchError;
use crate::frontend::{poll_readable, MiniFrontend};
use crate::resize::{size_for, ResizeSamples};

/// The bound on the first config change, which the server sends once the rings are up.
const FIRST_CHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `count` resizes against a real `ttyvm serve --console pty` and returns the time from
/// each TIOCSWINSZ to its config-change message.
pub fn measure_server(
    tools: &Tools,
    count: usize,
    timeout: Duration,
) -> Result<ResizeSamples, BenchError> {
    let dir = TempDir::new("bench").map_err(BenchError::io("creating a socket folder"))?;
    let socket = dir.path().join("console.sock");
    let args = [
        "--socket".as_ref(),
        socket.as_os_str(),
        "--console".as_ref(),
        "pty".as_ref(),
    ];
    let server = Server::spawn(&tools.ttyvm, &args, Duration::from_secs(10))?;
    let tty = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(server.console_path())
        .map_err(BenchError::io(format!(
            "opening the console {}",
            server.console_path().display()
        )))?;
    let mut frontend = MiniFrontend::connect(&socket)?;
    // The server announces the size it has once the driver is up; that one is not timed.
    if !frontend.wait_config_change(FIRST_CHANGE_TIMEOUT)? {
        return Err(BenchError::Process(format!(
            "the server sent no config change within {FIRST_CHANGE_TIMEOUT:?} of the rings \
             being enabled\n{}",
            ttyvm_testkit::Captured::captured_output(&server)
        )));
    }

    let mut samples = ResizeSamples::default();
    for index in 0..count {
        let size = size_for(index);
        let started = Instant::now();
        set_window_size(tty.as_fd(), size).map_err(BenchError::io("TIOCSWINSZ on the console"))?;
        if frontend.wait_config_change(timeout)? {
            samples
                .latencies_ms
                .push(started.elapsed().as_secs_f64() * 1e3);
        } else {
            samples.lost += 1;
        }
    }
    Ok(samples)
}

/// Runs `count` resizes on a pty of the bench's own with a [`ResizeListener`] on it and
/// returns the time from each TIOCSWINSZ to the listener's fd becoming readable.
pub fn measure_listener(count: usize, timeout: Duration) -> Result<ResizeSamples, BenchError> {
    let pty = open_pty(24, 80).map_err(BenchError::io("opening a pty"))?;
    let listener = ResizeListener::spawn(pty.subsidiary.as_fd()).map_err(|error| {
        BenchError::Process(format!("spawning the resize listener failed: {error}"))
    })?;
    let mut samples = ResizeSamples::default();
    for index in 0..count {
        let size = size_for(index);
        let started = Instant::now();
        set_window_size(pty.main.as_fd(), size).map_err(BenchError::io("TIOCSWINSZ on a pty"))?;
        let ready = poll_readable(listener.as_raw_fd(), timeout)
            .map_err(BenchError::io("polling the listener"))?;
        let elapsed = started.elapsed();
        listener
            .drain()
            .map_err(BenchError::io("draining the listener"))?;
        if ready {
            samples.latencies_ms.push(elapsed.as_secs_f64() * 1e3);
        } else {
            samples.lost += 1;
        }
    }
    Ok(samples)
}
