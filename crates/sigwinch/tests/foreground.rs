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

/// Role: as the foreground group, with handlers for SIGINT and SIGQUIT, the caller sends both
/// to its own group, as Ctrl-C and `Ctrl-\` would; the helper ignores them and keeps notifying.
fn run_terminal_signals_caller() {
    // SAFETY: fd 0 stays open for the whole process.
    let tty = unsafe { BorrowedFd::borrow_raw(0) };
    checks::install_handlers();
    // SAFETY: an all-zero sigaction is valid; the handler does nothing, which is async-signal-safe.
    let ret = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = ignore_signal as extern "C" fn(libc::c_int) as usize;
        libc::sigaction(libc::SIGQUIT, &action, std::ptr::null_mut())
    };
    assert_eq!(ret, 0, "sigaction(SIGQUIT) failed");

    let listener = ResizeListener::spawn(tty).unwrap();
    assert!(listener.joined_caller_group());
    let helper = listener.helper_pid();
    checks::check_no_inherited_handlers(&listener);
    let ignored = signal_mask(helper, "SigIgn");
    eprintln!("helper SigIgn {ignored:016x}");
    let terminal_signals = signal_bit(libc::SIGINT) | signal_bit(libc::SIGQUIT);
    assert_eq!(ignored & terminal_signals, terminal_signals);

    // SAFETY: getpgrp takes no arguments.
    let group = unsafe { libc::getpgrp() };
    send_signal(-group, libc::SIGINT);
    send_signal(-group, libc::SIGQUIT);
    let size = WindowSize::new(19, 67);
    set_window_size(tty, size).unwrap();
    assert!(wait_for_wake(&listener), "no wake after SIGINT and SIGQUIT");
    assert!(
        is_running(helper),
        "the terminal's signals ended the helper"
    );
    assert_eq!(window_size(tty).unwrap(), size);
}

extern "C" fn ignore_signal(_: libc::c_int) {}

/// Runs `role` of `test` in a new session whose controlling terminal is a new pty, so that the
/// role's group is the terminal's foreground group.
fn run_as_foreground(test: &str, role: &str) {
    let pty = Pty::open().unwrap();
    let stdin = pty.reopen_subsidiary().unwrap();
    let mut command = role_command(test, role);
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

#[test]
fn foreground_caller_shares_group() {
    if role().is_some() {
        return run_foreground_caller();
    }
    run_as_foreground("foreground_caller_shares_group", "foreground");
}

#[test]
fn helper_in_caller_group_ignores_terminal_signals() {
    if role().is_some() {
        return run_terminal_signals_caller();
    }
    run_as_foreground("helper_in_caller_group_ignores_terminal_signals", "signals");
}
