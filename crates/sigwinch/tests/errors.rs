//! Spawn failures come back as errors naming the terminal and the step; the caller goes on.

mod common;

use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use ttyvm_sigwinch::{HelperStep, ResizeListener, SpawnError, WindowSize};
use ttyvm_term::{set_window_size, Pty};

/// Starts `sleep 30` in a new session whose controlling terminal is the pty's subsidiary side.
fn start_session_on(pty: &Pty) -> std::process::Child {
    let mut command = Command::new("sleep");
    command
        .arg("30")
        .stdin(Stdio::from(pty.reopen_subsidiary().unwrap()));
    // SAFETY: setsid and ioctl are async-signal-safe, as code between fork and exec must be.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn().unwrap()
}

#[test]
fn controlled_terminal_returns_error() {
    let pty = Pty::open().unwrap();
    let mut session = start_session_on(&pty);
    let children_before = child_pids();

    let err = ResizeListener::spawn(pty.subsidiary.as_fd()).unwrap_err();
    let message = err.to_string();
    eprintln!("spawn on a controlled terminal: {message}");
    match &err {
        SpawnError::Helper { tty, step, source } => {
            assert_eq!(*step, HelperStep::SetControllingTerminal);
            assert_eq!(source.raw_os_error(), Some(libc::EPERM));
            assert_eq!(tty.path.as_deref(), Some(pty.path.as_path()));
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(
        message.contains(&pty.path.display().to_string()),
        "{message}"
    );
    assert!(message.contains("TIOCSCTTY"), "{message}");
    assert_eq!(
        child_pids(),
        children_before,
        "the failed helper was not reaped"
    );

    // The caller goes on: a listener on a free terminal works.
    let free = Pty::open().unwrap();
    let listener = ResizeListener::spawn(free.subsidiary.as_fd()).unwrap();
    set_window_size(free.main.as_fd(), WindowSize::new(8, 9)).unwrap();
    assert!(wait_for_wake(&listener));

    session.kill().unwrap();
    session.wait().unwrap();
}

#[test]
fn non_terminal_returns_error() {
    let file = std::fs::File::open("/dev/null").unwrap();
    let err = ResizeListener::spawn(file.as_fd()).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, SpawnError::NotATerminal { .. }), "{err:?}");
    assert!(message.contains("/dev/null"), "{message}");
}

#[test]
fn closed_fd_returns_not_open() {
    // An fd number far above what this test process opens, checked to be closed.
    let fd = 4000;
    // SAFETY: F_GETFD takes no pointer and only reports whether the fd is open.
    let ret = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    assert_eq!(ret, -1, "fd {fd} is open in the test process");
    // SAFETY: spawn only passes the number to tcgetattr, which fails with EBADF on it, and
    // returns before any other use of it.
    let closed = unsafe { BorrowedFd::borrow_raw(fd) };
    let err = ResizeListener::spawn(closed).unwrap_err();
    let message = err.to_string();
    eprintln!("spawn on a closed fd: {message}");
    match &err {
        SpawnError::NotOpen {
            fd: reported,
            source,
        } => {
            assert_eq!(*reported, fd);
            assert_eq!(source.raw_os_error(), Some(libc::EBADF));
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(message.contains("fd 4000 is not open"), "{message}");
}

#[test]
fn drain_reports_killed_helper() {
    let pty = Pty::open().unwrap();
    let listener = ResizeListener::spawn(pty.subsidiary.as_fd()).unwrap();
    send_signal(listener.helper_pid(), libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    let err = loop {
        match listener.drain() {
            Err(err) => break err,
            Ok(_) => assert!(Instant::now() < deadline, "drain never saw the helper exit"),
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
    assert!(err.to_string().contains(&listener.helper_pid().to_string()));
}
