//! Spawning while other threads allocate: no deadlock, and nothing left behind.

mod common;

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::*;
use ttyvm_sigwinch::{window_size, ResizeListener, WindowSize};
use ttyvm_term::{set_window_size, Pty};

/// Allocates and frees vectors of varying sizes until `stop` is set; returns the bytes touched.
fn allocate_until(stop: &AtomicBool) -> usize {
    let mut touched = 0usize;
    let mut size = 1usize;
    while !stop.load(Ordering::Relaxed) {
        let mut data = Vec::with_capacity(size);
        data.resize(size, 7u8);
        touched += data.len();
        size = size * 7 % 100_003 + 1;
    }
    touched
}

/// Spawns, checks and drops 100 listeners; returns their helper pids.
fn spawn_and_drop_many() -> Vec<libc::pid_t> {
    let pty = Pty::open().unwrap();
    let mut helpers = Vec::new();
    for i in 0..100u16 {
        let listener = ResizeListener::spawn(pty.subsidiary.as_fd()).unwrap();
        helpers.push(listener.helper_pid());
        if i % 10 == 0 {
            let size = WindowSize::new(10 + i, 50 + i);
            set_window_size(pty.main.as_fd(), size).unwrap();
            assert!(wait_for_wake(&listener), "listener {i} missed a resize");
            assert_eq!(window_size(pty.subsidiary.as_fd()).unwrap(), size);
        }
    }
    helpers
}

#[test]
fn spawn_while_threads_allocate() {
    let stop = Arc::new(AtomicBool::new(false));
    let allocators: Vec<_> = (0..8)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || allocate_until(&stop))
        })
        .collect();

    let (sender, receiver) = mpsc::channel();
    let started = Instant::now();
    std::thread::spawn(move || sender.send(spawn_and_drop_many()));
    let helpers = receiver
        .recv_timeout(Duration::from_secs(120))
        .expect("spawning 100 listeners deadlocked or failed");
    eprintln!(
        "100 spawns and drops beside 8 allocating threads took {:?}",
        started.elapsed()
    );

    stop.store(true, Ordering::Relaxed);
    for allocator in allocators {
        assert!(allocator.join().unwrap() > 0);
    }
    assert_eq!(helpers.len(), 100);
    for helper in &helpers {
        assert!(!is_running(*helper), "helper {helper} still running");
    }
    assert_eq!(
        child_pids(),
        Vec::<libc::pid_t>::new(),
        "a helper or zombie remains"
    );
    // No child of any kind is left for waitid, zombies included.
    // SAFETY: an all-zero siginfo_t is valid, and waitid writes into the local.
    let ret = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT | libc::__WALL;
        libc::waitid(libc::P_ALL, 0, &mut info, flags)
    };
    assert_eq!(ret, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::ECHILD)
    );
}
