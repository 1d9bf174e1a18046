//! Shared support for the listener's integration tests.
#![allow(dead_code)]

pub mod checks;

use std::os::fd::{AsRawFd, BorrowedFd};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ttyvm_sigwinch::ResizeListener;

/// How long any test waits for a wake-up before it fails.
pub const WAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Environment variable that turns a re-executed test binary into a role of one test.
pub const ROLE_VAR: &str = "TTYVM_SIGWINCH_TEST_ROLE";

/// Polls `fd` for input for at most `timeout`; returns whether it became readable.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pollfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: poll writes `revents` of the one local pollfd.
        let ret = unsafe { libc::poll(&mut pollfd, 1, millis) };
        if ret > 0 {
            return true;
        }
        if ret == 0 || left.is_zero() {
            return false;
        }
    }
}

/// Waits for the listener to become readable and drains it; returns whether a notification came.
pub fn wait_for_wake(listener: &ResizeListener) -> bool {
    use std::os::fd::AsFd;
    wait_readable(listener.as_fd(), WAKE_TIMEOUT) && listener.drain().unwrap()
}

/// Returns the role this process was re-executed for, if any.
pub fn role() -> Option<String> {
    std::env::var(ROLE_VAR).ok()
}

/// Re-executes this test binary to run only `test` with `role` set, and returns its output.
pub fn run_role(test: &str, role: &str) -> Output {
    role_command(test, role).output().unwrap()
}

/// The command that re-executes this test binary for `test` with `role` set.
pub fn role_command(test: &str, role: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role);
    command
}

/// Asserts that a role subprocess succeeded, showing its output otherwise.
pub fn assert_role_passed(output: &Output) {
    assert!(
        output.status.success(),
        "role subprocess failed: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Returns the value of `field` in /proc/`pid`/status, such as "SigCgt".
pub fn status_field(pid: libc::pid_t, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name == field).then(|| value.trim().to_string())
    })
}

/// Returns the hexadecimal signal mask in field `field` of /proc/`pid`/status as a number.
pub fn signal_mask(pid: libc::pid_t, field: &str) -> u64 {
    let value = status_field(pid, field).unwrap();
    u64::from_str_radix(&value, 16).unwrap()
}

/// The bit of `signal` in a /proc signal mask.
pub fn signal_bit(signal: i32) -> u64 {
    1 << (signal - 1)
}

/// Returns the fds listed in /proc/`pid`/fd with their link targets.
pub fn open_fds(pid: libc::pid_t) -> Vec<(String, String)> {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let entry = entry.unwrap();
        let target = std::fs::read_link(entry.path()).unwrap();
        fds.push((
            entry.file_name().to_string_lossy().into_owned(),
            target.to_string_lossy().into_owned(),
        ));
    }
    fds
}

/// Whether the process `pid` exists and has not exited (a zombie counts as exited).
pub fn is_running(pid: libc::pid_t) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            !matches!(
                state.and_then(|rest| rest.chars().next()),
                Some('Z' | 'X') | None
            )
        }
        Err(_) => false,
    }
}

/// Waits until `pid` is no longer running, for at most `timeout`; returns whether it ended.
pub fn wait_until_gone(pid: libc::pid_t, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !is_running(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    !is_running(pid)
}

/// Returns the pids of every process whose parent is this process, by scanning /proc.
pub fn child_pids() -> Vec<libc::pid_t> {
    let own = std::process::id() as libc::pid_t;
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<libc::pid_t>() else {
            continue;
        };
        if stat_field(pid, 4) == Some(own.to_string()) {
            children.push(pid);
        }
    }
    children
}

/// Returns field `index` (1-based, as proc(5) numbers them) of /proc/`pid`/stat.
pub fn stat_field(pid: libc::pid_t, index: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // Fields 1 and 2 (pid and comm) precede the closing parenthesis.
    rest.split_whitespace()
        .nth(index.checked_sub(3)?)
        .map(str::to_string)
}

/// Waits until /proc/`pid`/stat shows state `state`, for at most `timeout`.
pub fn wait_for_state(pid: libc::pid_t, state: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if stat_field(pid, 3).as_deref() == Some(state) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// Sends `signal` to `pid`, asserting success.
pub fn send_signal(pid: libc::pid_t, signal: i32) {
    // SAFETY: kill takes no pointers.
    let ret = unsafe { libc::kill(pid, signal) };
    assert_eq!(ret, 0, "kill({pid}, {signal}) failed");
}
