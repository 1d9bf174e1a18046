//! `winch` mode: prints the console size at start and after every SIGWINCH.
//!
//! SIGWINCH is blocked and read through a signalfd, so each resize is printed as soon as the
//! kernel queues the signal. Input on stdin is read and dropped. End of input, or a line that
//! starts with `q`, ends the mode.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use ttyvm_responder::protocol;

use crate::{fd, tty};

/// Runs `winch` mode until stdin ends or a line starting with `q` arrives.
pub fn run() -> io::Result<()> {
    let signals = block_winch()?;
    let ready = format!("{} winch\n", protocol::READY);
    fd::write_all(libc::STDOUT_FILENO, ready.as_bytes())?;
    print_size()?;
    loop {
        let (signal_ready, input_ready) = wait(&signals)?;
        if signal_ready {
            drain_signals(&signals)?;
            print_size()?;
        }
        if input_ready && !read_input()? {
            return Ok(());
        }
    }
}

/// Blocks SIGWINCH for this single-threaded process and returns a signalfd that reads it.
fn block_winch() -> io::Result<OwnedFd> {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initializes the set that `set` points to.
    unsafe { libc::sigemptyset(set.as_mut_ptr()) };
    // SAFETY: the set was initialized by sigemptyset above.
    let mut set = unsafe { set.assume_init() };
    // SAFETY: `set` is an initialized sigset_t.
    unsafe { libc::sigaddset(&mut set, libc::SIGWINCH) };
    // SAFETY: `set` is initialized, and the old mask is not requested.
    if unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: -1 requests a new signalfd for the initialized `set`.
    let raw = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: signalfd returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Waits for a signal or input and returns which of the two is ready.
fn wait(signals: &OwnedFd) -> io::Result<(bool, bool)> {
    let mut entries = [
        libc::pollfd {
            fd: signals.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: libc::STDIN_FILENO,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: `entries` is an array of two valid pollfds that outlives the call.
        let ready = unsafe { libc::poll(entries.as_mut_ptr(), 2, -1) };
        if ready >= 0 {
            let input_events = libc::POLLIN | libc::POLLHUP | libc::POLLERR;
            return Ok((
                entries[0].revents & libc::POLLIN != 0,
                entries[1].revents & input_events != 0,
            ));
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Reads the queued SIGWINCH. The kernel keeps at most one pending, so one read empties it.
fn drain_signals(signals: &OwnedFd) -> io::Result<()> {
    let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
    fd::read(signals.as_raw_fd(), &mut info)?;
    Ok(())
}

/// Reads pending input and returns false when input ended or a quit line arrived.
fn read_input() -> io::Result<bool> {
    let mut buffer = [0u8; 256];
    let count = fd::read(libc::STDIN_FILENO, &mut buffer)?;
    Ok(count > 0 && buffer[0] != b'q')
}

fn print_size() -> io::Result<()> {
    let (rows, cols) = tty::window_size(libc::STDIN_FILENO)?;
    let line = format!("{} {rows} {cols}\n", protocol::SIZE);
    fd::write_all(libc::STDOUT_FILENO, line.as_bytes())
}
