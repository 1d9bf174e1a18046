//! A child forked after spawn holds a copy of the listener; dropping it leaves the helper alone.

mod common;

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use common::*;
use ttyvm_sigwinch::{ResizeListener, WindowSize};
use ttyvm_term::{set_window_size, Pty};

/// Waits for the child `pid` to exit, for at most `timeout`, and returns its wait status.
fn wait_child(pid: libc::pid_t, timeout: Duration) -> Option<libc::c_int> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let mut status = 0;
        // SAFETY: waitpid writes the status into the local.
        let ret = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(ret >= 0, "waitpid({pid}) failed");
        if ret == pid {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

#[test]
fn forked_child_drop_keeps_parent_helper() {
    let pty = Pty::open().unwrap();
    let listener = ResizeListener::spawn(pty.subsidiary.as_fd()).unwrap();
    let helper = listener.helper_pid();

    // SAFETY: the child only drops its copy of the listener, which in a process other than the
    // spawning one makes getpid and close alone, and then calls _exit.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork failed");
    if child == 0 {
        drop(listener);
        // SAFETY: _exit ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(0) };
    }
    let status = wait_child(child, Duration::from_secs(5)).expect("the forked child never exited");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child status {status:#x}"
    );

    set_window_size(pty.main.as_fd(), WindowSize::new(17, 53)).unwrap();
    assert!(
        wait_for_wake(&listener),
        "no wake after the child dropped its copy"
    );
    assert!(is_running(helper), "the child's drop ended the helper");

    drop(listener);
    assert!(
        !is_running(helper),
        "the parent's drop left the helper running"
    );
}
