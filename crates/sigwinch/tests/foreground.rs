//! A caller that already is the terminal's foreground group: the helper joins its group.

mod common;

use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::process::Stdio;

use common::*;
use ttyvm_sigwinch::{window_size, ResizeListener, WindowSize};
use ttyvm_term::{set_window_size, Pty};

/// Role: stdin is the controlling terminal and this process's group the foreground group.
fn run_foreground_caller() {
    // SAFETY: fd 0 stays open for the whole process.
    let tty = unsafe { BorrowedFd::borrow_raw(0) };
    // SAFETY: tcgetpgrp and getpgrp take no pointers.
    let (foreground, own) = unsafe { (libc::tcgetpgrp(0), libc::getpgrp()) };
    assert_eq!(foreground, own, "the role must run as the foreground group");

    let listener = ResizeListener::spawn(tty).unwrap();
    assert!(listener.joined_caller_group());
    let helper = listener.helper_pid();
    let own_pid = std::process::id() as libc::pid_t;
    assert_eq!(
        stat_field(helper, 5),
        stat_field(own_pid, 5),
        "process group differs"
    );
    assert_eq!(
        stat_field(helper, 6),
        stat_field(own_pid, 6),
        "session differs"
    );
    check_fds_closed(&listener);

    let size = WindowSize::new(21, 71);
    set_window_size(tty, size).unwrap();
    assert!(wait_for_wake(&listener), "no wake in the caller's group");
    assert_eq!(window_size(tty).unwrap(), size);
    // SAFETY: tcgetpgrp takes no pointers.
    let foreground = unsafe { libc::tcgetpgrp(0) };
    assert_eq!(foreground, own, "the helper moved the foreground group");
}

fn check_fds_closed(listener: &ResizeListener) {
    let fds = open_fds(listener.helper_pid());
    assert_eq!(fds.len(), 1, "helper holds more than its pipe end: {fds:?}");
}

#[test]
fn foreground_caller_shares_group() {
    if role().is_some() {
        return run_foreground_caller();
    }
    let pty = Pty::open().unwrap();
    let stdin = pty.reopen_subsidiary().unwrap();
    let mut command = role_command("foreground_caller_shares_group", "foreground");
    command.stdin(Stdio::from(stdin));
    // SAFETY: setsid and ioctl are async-signal-safe, as code between fork and exec must be.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = command.output().unwrap();
    assert_role_passed(&output);
    let _ = pty.main.as_raw_fd();
}
