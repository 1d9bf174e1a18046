//! Notifications: a resize wakes the listener, and bursts drain at once.

mod common;

use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use common::{wait_for_wake, wait_readable, WAKE_TIMEOUT};
use ttyvm_sigwinch::{window_size, CloneSyscall, FdCloseMethod, ResizeListener, WindowSize};
use ttyvm_term::{set_window_size, Pty};

#[test]
fn resize_wakes_listener() {
    let pty = Pty::open().unwrap();
    let listener = ResizeListener::spawn(pty.subsidiary.as_fd()).unwrap();
    assert_eq!(listener.clone_syscall(), CloneSyscall::Clone3);
    assert_eq!(listener.fd_close_method(), FdCloseMethod::CloseRange);
    assert!(!listener.joined_caller_group());
    assert!(!listener.drain().unwrap(), "no resize happened yet");

    let size = WindowSize::new(30, 100);
    set_window_size(pty.main.as_fd(), size).unwrap();
    assert!(
        wait_for_wake(&listener),
        "no notification within {WAKE_TIMEOUT:?}"
    );
    assert_eq!(window_size(pty.subsidiary.as_fd()).unwrap(), size);

    let size = WindowSize::new(41, 132);
    set_window_size(pty.main.as_fd(), size).unwrap();
    assert!(wait_for_wake(&listener), "no second notification");
    assert_eq!(window_size(pty.subsidiary.as_fd()).unwrap(), size);
}

fn burst_size(i: u16) -> WindowSize {
    // Consecutive sizes differ, because the kernel sends no SIGWINCH for an unchanged size.
    WindowSize::new(20 + i % 50, 80 + i % 7)
}

#[test]
fn burst_of_resizes_drains_once() {
    let pty = Pty::open().unwrap();
    let listener = ResizeListener::spawn(pty.subsidiary.as_fd()).unwrap();
    for i in 0..1000 {
        set_window_size(pty.main.as_fd(), burst_size(i)).unwrap();
    }
    assert!(wait_readable(listener.as_fd(), WAKE_TIMEOUT));
    // Give the helper time to finish its last writes, then drain everything at once.
    std::thread::sleep(Duration::from_millis(100));
    let drained = listener.drain_count().unwrap();
    eprintln!("burst: 1000 resizes left {drained} pending bytes");
    assert!(drained >= 1);
    assert!(drained <= 1000);
    assert!(
        !listener.drain().unwrap(),
        "one drain must take every pending byte"
    );
    assert_eq!(
        window_size(pty.subsidiary.as_fd()).unwrap(),
        burst_size(999)
    );

    set_window_size(pty.main.as_fd(), WindowSize::new(5, 5)).unwrap();
    assert!(
        wait_for_wake(&listener),
        "helper stopped answering after the burst"
    );
}

/// Returns the number of bytes pending in the pipe behind `fd`.
fn pending_bytes(fd: std::os::fd::BorrowedFd<'_>) -> usize {
    let mut pending: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int into the local.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut pending) };
    assert_eq!(ret, 0);
    pending as usize
}

#[test]
fn full_pipe_skips_without_blocking() {
    let pty = Pty::open().unwrap();
    let listener = ResizeListener::spawn(pty.subsidiary.as_fd()).unwrap();
    // SAFETY: F_SETPIPE_SZ takes an integer; the fd is the listener's live read end.
    let capacity = unsafe { libc::fcntl(listener.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    assert_eq!(capacity, 4096);

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut resizes: u32 = 0;
    while pending_bytes(listener.as_fd()) < 4096 {
        assert!(
            Instant::now() < deadline,
            "pipe not full after {resizes} resizes"
        );
        set_window_size(pty.main.as_fd(), burst_size((resizes % 1000) as u16)).unwrap();
        resizes += 1;
    }
    for i in 0..1000 {
        set_window_size(pty.main.as_fd(), burst_size(i)).unwrap();
    }
    eprintln!("full pipe: filled after {resizes} resizes, then 1000 more");
    assert_eq!(listener.drain_count().unwrap(), 4096);

    // A helper blocked in write would complete that write as soon as space appeared.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !listener.drain().unwrap(),
        "a write was left blocked on the full pipe"
    );
    set_window_size(pty.main.as_fd(), WindowSize::new(3, 3)).unwrap();
    assert!(
        wait_for_wake(&listener),
        "helper stopped answering after a full pipe"
    );
}

#[test]
fn listener_and_error_are_send_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ResizeListener>();
    assert_send_sync::<ttyvm_sigwinch::SpawnError>();
}
