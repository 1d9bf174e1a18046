//! Waiting for and stopping child processes within bounded time.

use std::io;
use std::process::{Child, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

/// How often a wait polls the child.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Waits up to `timeout` for `child` to exit; returns `None` if it is still running then.
pub(crate) fn wait_timeout(child: &mut Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Sends `signal` to the process group `group`, ignoring a group that is already gone.
pub(crate) fn signal_group(group: u32, signal: libc::c_int) {
    let Ok(group) = libc::pid_t::try_from(group) else {
        return;
    };
    // SAFETY: kill has no memory effects, and a negative pid addresses the group that this
    // crate created for the child with `process_group(0)`.
    unsafe { libc::kill(-group, signal) };
}

/// Stops `child`, which leads its own process group: SIGTERM to the group, then SIGKILL after
/// `grace`, then a reap. Returns the exit status, or `None` if even SIGKILL did not end it
/// within a second.
pub(crate) fn terminate_group(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        // Helpers the leader forked may still run in its group.
        signal_group(child.id(), libc::SIGKILL);
        return Some(status);
    }
    signal_group(child.id(), libc::SIGTERM);
    let status = match wait_timeout(child, grace) {
        Ok(Some(status)) => Some(status),
        _ => {
            let _ = child.kill();
            wait_timeout(child, Duration::from_secs(1)).ok().flatten()
        }
    };
    signal_group(child.id(), libc::SIGKILL);
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    #[test]
    fn wait_timeout_returns_none_while_running() {
        let mut child = Command::new("sleep")
            .arg("5")
            .process_group(0)
            .spawn()
            .unwrap();
        let status = wait_timeout(&mut child, Duration::from_millis(50)).unwrap();
        assert!(status.is_none());
        terminate_group(&mut child, Duration::from_secs(1));
        assert!(child.try_wait().unwrap().is_some());
    }

    #[test]
    fn wait_timeout_returns_exit_status() {
        let mut child = Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
        let status = wait_timeout(&mut child, Duration::from_secs(5)).unwrap();
        assert_eq!(status.and_then(|status| status.code()), Some(3));
    }
}
