//! Checks shared by several test binaries.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use super::*;
use ttyvm_sigwinch::{window_size, ResizeListener, WindowSize};
use ttyvm_term::{set_window_size, Pty};

extern "C" fn ignore_signal(_: libc::c_int) {}

/// The signals the caller installs handlers for.
pub const HANDLED: [i32; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGWINCH, libc::SIGSYS];

/// Installs a handler for each signal in HANDLED in this process.
pub fn install_handlers() {
    for signal in HANDLED {
        // SAFETY: an all-zero sigaction is valid; the handler is a function that does nothing,
        // which is async-signal-safe.
        let ret = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = ignore_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        assert_eq!(ret, 0, "sigaction({signal}) failed");
    }
}

/// Checks that the caller catches every signal in HANDLED and the helper catches none.
pub fn check_no_inherited_handlers(listener: &ResizeListener) {
    let own = std::process::id() as libc::pid_t;
    let caller_caught = signal_mask(own, "SigCgt");
    let helper_caught = signal_mask(listener.helper_pid(), "SigCgt");
    eprintln!("SigCgt: caller {caller_caught:016x}, helper {helper_caught:016x}");
    for signal in HANDLED {
        assert_ne!(
            caller_caught & signal_bit(signal),
            0,
            "caller lacks handler {signal}"
        );
        assert_eq!(
            helper_caught & signal_bit(signal),
            0,
            "helper inherited handler {signal}"
        );
    }
    assert_eq!(
        helper_caught, 0,
        "the helper installs no handler of its own"
    );
    // At most the two signals the helper waits for are blocked, and rt_sigtimedwait unblocks
    // even those while it waits, so SigBlk reads either both or neither.
    let blocked = signal_mask(listener.helper_pid(), "SigBlk");
    let waited = signal_bit(libc::SIGWINCH) | signal_bit(libc::SIGIO);
    assert_eq!(blocked & !waited, 0, "helper blocks {blocked:016x}");
}

/// Opens `count` fds on /dev/null without close-on-exec.
pub fn open_extra_fds(count: usize) -> Vec<OwnedFd> {
    (0..count)
        .map(|_| {
            let file = std::fs::File::open("/dev/null").unwrap();
            let fd = OwnedFd::from(file);
            // SAFETY: F_SETFD takes an integer; the fd is live.
            let ret = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) };
            assert_eq!(ret, 0);
            fd
        })
        .collect()
}

/// Checks that the helper's only fd is the pipe whose read end the listener owns.
pub fn check_only_pipe_end(listener: &ResizeListener) {
    let fds = open_fds(listener.helper_pid());
    eprintln!("helper fds: {fds:?}");
    assert_eq!(fds.len(), 1, "helper holds more than its pipe end: {fds:?}");
    // SAFETY: an all-zero stat is valid, and fstat fills it for the listener's live fd.
    let inode = unsafe {
        let mut stat: libc::stat = std::mem::zeroed();
        assert_eq!(libc::fstat(listener.as_raw_fd(), &mut stat), 0);
        stat.st_ino
    };
    assert_eq!(fds[0].1, format!("pipe:[{inode}]"));
}

/// Returns the poll events of `fd` for POLLIN, without waiting.
fn poll_events(fd: std::os::fd::BorrowedFd<'_>) -> i16 {
    let mut pollfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll writes `revents` of the one local pollfd.
    let ret = unsafe { libc::poll(&mut pollfd, 1, 0) };
    assert!(ret >= 0);
    pollfd.revents
}

fn wait_for_hangup(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if poll_events(fd) & libc::POLLHUP != 0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Checks that the pty's main side hangs up once the caller closes the subsidiary side, and that
/// the listener keeps working, also once a client opens the subsidiary side again.
pub fn check_hangup_after_close(pty: Pty, listener: &ResizeListener) {
    let Pty {
        main,
        subsidiary,
        path,
    } = pty;
    assert_eq!(
        poll_events(main.as_fd()) & libc::POLLHUP,
        0,
        "hangup while open"
    );
    drop(subsidiary);
    assert!(
        wait_for_hangup(main.as_fd()),
        "no POLLHUP after closing the subsidiary side"
    );

    let size = WindowSize::new(33, 99);
    set_window_size(main.as_fd(), size).unwrap();
    assert!(
        wait_for_wake(listener),
        "no wake while no client holds the subsidiary side"
    );

    let client = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&path)
        .unwrap();
    assert_eq!(
        poll_events(main.as_fd()) & libc::POLLHUP,
        0,
        "hangup after reopen"
    );
    let size = WindowSize::new(34, 98);
    set_window_size(main.as_fd(), size).unwrap();
    assert!(
        wait_for_wake(listener),
        "no wake after a client reopened the subsidiary side"
    );
    assert_eq!(window_size(client.as_fd()).unwrap(), size);
}

/// Role body: a caller with handlers spawns a listener that still wakes on a resize.
pub fn run_caller_with_handlers() -> ResizeListener {
    install_handlers();
    let pty = Pty::open().unwrap();
    let listener = ResizeListener::spawn(pty.subsidiary.as_fd()).unwrap();
    check_no_inherited_handlers(&listener);
    let size = WindowSize::new(19, 77);
    set_window_size(pty.main.as_fd(), size).unwrap();
    assert!(wait_for_wake(&listener));
    assert_eq!(window_size(pty.subsidiary.as_fd()).unwrap(), size);
    listener
}
