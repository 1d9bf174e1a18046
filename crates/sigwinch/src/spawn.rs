//! The caller's side of spawning: the pipe, the stack, the clone and the readiness handshake.

use std::ffi::c_void;
use std::io;
use std::mem::{self, MaybeUninit};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::error::{HelperStep, SpawnError, TtyName};
use crate::helper::{self, HelperArgs, FLAG_CLOSED_VIA_PROC, HANDSHAKE_LEN, HANDSHAKE_MAGIC};
use crate::process::HelperProcess;
use crate::stack::Stack;
use crate::sys::clone_on_new_stack;
use crate::{CloneSyscall, FdCloseMethod, ListenerOptions};

/// How long spawn waits for the helper's readiness message. Setup is a dozen system calls, so
/// only a stopped or starved helper takes this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Clone flags from linux/sched.h, as the u64 that clone3 takes.
const CLONE_VM: u64 = 0x100;
const CLONE_PIDFD: u64 = 0x1000;
const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;

/// `struct clone_args` of clone3, the first version (CLONE_ARGS_SIZE_VER0, 64 bytes).
#[repr(C)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// A helper that completed its handshake.
pub(crate) struct Spawned {
    pub read: OwnedFd,
    pub process: HelperProcess,
    pub stack: Stack,
    pub clone_syscall: CloneSyscall,
    pub fd_close_method: FdCloseMethod,
    pub joined_caller_group: bool,
}

/// Spawns the helper for `tty` and waits for its readiness message.
pub(crate) fn spawn(tty: BorrowedFd<'_>, options: &ListenerOptions) -> Result<Spawned, SpawnError> {
    let fd = tty.as_raw_fd();
    let setup = |step: &'static str| {
        move |source| SpawnError::Setup {
            tty: TtyName::of(fd),
            step,
            source,
        }
    };
    if let Err(source) = ttyvm_term::Termios::get(tty) {
        if source.raw_os_error() == Some(libc::EBADF) {
            return Err(SpawnError::NotOpen { fd, source });
        }
        let tty = TtyName::of(fd);
        return Err(SpawnError::NotATerminal { tty, source });
    }
    let joined_caller_group = caller_is_foreground(tty);
    let filter = build_filter(options, fd)?;
    let (read, write) = pipe().map_err(setup("pipe2 for the notification pipe"))?;
    let stack = Stack::new().map_err(setup("mmap of the helper's stack"))?;
    let mut args = Box::new(HelperArgs {
        tty: fd,
        pipe: write.as_raw_fd(),
        new_session: !joined_caller_group,
        reset_signals: false,
        ignore_terminal_signals: joined_caller_group,
        filter: filter
            .as_ref()
            .map_or(std::ptr::null(), |program| program.as_ptr()),
        filter_len: filter.as_ref().map_or(0, |program| program.len() as u16),
    });
    let (process, clone_syscall) = clone_helper(&mut args, &stack).map_err(setup("clone"))?;
    drop(write);
    let flags = handshake(read.as_fd(), &process, fd);
    // The helper reads `args` and the filter only before its handshake message, and on every
    // failure `handshake` has reaped it, so both may go now.
    drop(args);
    drop(filter);
    let flags = flags?;
    let fd_close_method = match flags & FLAG_CLOSED_VIA_PROC {
        0 => FdCloseMethod::CloseRange,
        _ => FdCloseMethod::ProcFdWalk,
    };
    Ok(Spawned {
        read,
        process,
        stack,
        clone_syscall,
        fd_close_method,
        joined_caller_group,
    })
}

/// Builds the helper's seccomp program if `options` ask for one.
fn build_filter(
    options: &ListenerOptions,
    fd: RawFd,
) -> Result<Option<seccompiler::BpfProgram>, SpawnError> {
    if !options.seccomp {
        return Ok(None);
    }
    let program = crate::filter::helper_filter().map_err(|source| SpawnError::Seccomp {
        tty: TtyName::of(fd),
        source,
    })?;
    Ok(Some(program))
}

/// Whether the caller's process group is the terminal's foreground group. tcgetpgrp fails with
/// ENOTTY unless the terminal is the caller's controlling terminal, which also means "no".
fn caller_is_foreground(tty: BorrowedFd<'_>) -> bool {
    // SAFETY: tcgetpgrp and getpgrp take no pointers.
    let (foreground, own) = unsafe { (libc::tcgetpgrp(tty.as_raw_fd()), libc::getpgrp()) };
    foreground > 0 && foreground == own
}

/// Creates the notification pipe, both ends non-blocking and close-on-exec.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as RawFd; 2];
    // SAFETY: pipe2 writes two fds into the local array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both fds are new and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Blocks every signal in the calling thread until dropped, so that the child starts with all
/// signals blocked and no caller handler can run in it before it has reset them.
struct AllSignalsBlocked(libc::sigset_t);

impl AllSignalsBlocked {
    fn new() -> io::Result<Self> {
        let mut all = MaybeUninit::<libc::sigset_t>::uninit();
        let mut old = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigfillset initializes the local set, and pthread_sigmask reads it and writes
        // the previous mask into the other local.
        let ret = unsafe {
            libc::sigfillset(all.as_mut_ptr());
            libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), old.as_mut_ptr())
        };
        if ret != 0 {
            return Err(io::Error::from_raw_os_error(ret));
        }
        // SAFETY: pthread_sigmask succeeded, so it wrote the old mask.
        Ok(AllSignalsBlocked(unsafe { old.assume_init() }))
    }
}

impl Drop for AllSignalsBlocked {
    fn drop(&mut self) {
        // SAFETY: the saved mask is a valid sigset_t; no old mask is requested.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}

/// Clones the helper with clone3, or with clone and pidfd_open where clone3 or
/// CLONE_CLEAR_SIGHAND is missing (ENOSYS or EINVAL).
fn clone_helper(args: &mut HelperArgs, stack: &Stack) -> io::Result<(HelperProcess, CloneSyscall)> {
    let _blocked = AllSignalsBlocked::new()?;
    match clone3(args, stack) {
        Err(err) if matches!(err.raw_os_error(), Some(libc::ENOSYS | libc::EINVAL)) => {}
        result => return result.map(|process| (process, CloneSyscall::Clone3)),
    }
    args.reset_signals = true;
    clone_fallback(args, stack).map(|process| (process, CloneSyscall::Clone))
}

fn clone3(args: &mut HelperArgs, stack: &Stack) -> io::Result<HelperProcess> {
    let mut pidfd: RawFd = -1;
    let clone_args = CloneArgs {
        flags: CLONE_VM | CLONE_PIDFD | CLONE_CLEAR_SIGHAND,
        pidfd: std::ptr::addr_of_mut!(pidfd) as u64,
        child_tid: 0,
        parent_tid: 0,
        // No SIGCHLD: see the process module.
        exit_signal: 0,
        stack: (stack.top() - stack.usable_len()) as u64,
        stack_size: stack.usable_len() as u64,
        tls: 0,
    };
    let raw = [
        std::ptr::addr_of!(clone_args) as usize,
        mem::size_of::<CloneArgs>(),
        0,
        0,
        0,
    ];
    let arg = args as *mut HelperArgs as *mut c_void;
    // SAFETY: clone_args names the stack, which the caller keeps mapped until the helper is
    // reaped. helper_main is async-signal-safe and never returns, and `arg` points to the
    // HelperArgs that outlives the helper's reads.
    let ret = unsafe { clone_on_new_stack(libc::SYS_clone3, raw, helper::helper_main, arg) };
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(ret.wrapping_neg() as i32));
    }
    // SAFETY: clone3 with CLONE_PIDFD succeeded, so the kernel stored a new pidfd that nobody
    // else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    Ok(HelperProcess {
        pid: ret as libc::pid_t,
        pidfd: Some(pidfd),
    })
}

fn clone_fallback(args: &mut HelperArgs, stack: &Stack) -> io::Result<HelperProcess> {
    // Exit signal 0 in the low byte: no SIGCHLD.
    let raw = [CLONE_VM as usize, stack.top(), 0, 0, 0];
    let arg = args as *mut HelperArgs as *mut c_void;
    // SAFETY: as for clone3, with the stack's top passed as the new stack pointer.
    let ret = unsafe { clone_on_new_stack(libc::SYS_clone, raw, helper::helper_main, arg) };
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(ret.wrapping_neg() as i32));
    }
    let pid = ret as libc::pid_t;
    // SAFETY: pidfd_open takes the pid and flags by value.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd >= 0 {
        // SAFETY: pidfd_open returned a new fd that nobody else owns.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
        return Ok(HelperProcess {
            pid,
            pidfd: Some(pidfd),
        });
    }
    let err = io::Error::last_os_error();
    let process = HelperProcess { pid, pidfd: None };
    if err.raw_os_error() == Some(libc::ENOSYS) {
        // Kernels before 5.3: the helper is kept by pid, which cannot be reused while unreaped.
        return Ok(process);
    }
    let _ = process.kill_and_reap();
    Err(err)
}

/// Reads and checks the helper's readiness message, and returns its flags. On every error the
/// helper has been reaped before this returns.
fn handshake(read: BorrowedFd<'_>, process: &HelperProcess, fd: RawFd) -> Result<u32, SpawnError> {
    let message = match read_message(read, HANDSHAKE_TIMEOUT) {
        Ok(message) => message,
        Err(err) => {
            let _ = process.kill_and_reap();
            return Err(match err.kind() {
                io::ErrorKind::TimedOut => SpawnError::HandshakeTimedOut {
                    tty: TtyName::of(fd),
                    timeout: HANDSHAKE_TIMEOUT,
                },
                _ => SpawnError::Setup {
                    tty: TtyName::of(fd),
                    step: "reading the helper's readiness message",
                    source: err,
                },
            });
        }
    };
    if message.is_empty() {
        // End of file: the helper ended without writing.
        let status = process
            .kill_and_reap()
            .unwrap_or_else(|err| err.to_string());
        return Err(SpawnError::HelperDied {
            tty: TtyName::of(fd),
            status,
        });
    }
    let result = parse_message(&message, fd);
    if result.is_err() {
        let _ = process.kill_and_reap();
    }
    result
}

/// Decodes a readiness message into its flags, or into the step the helper reported failed.
fn parse_message(message: &[u8], fd: RawFd) -> Result<u32, SpawnError> {
    let invalid = || SpawnError::InvalidHandshake {
        tty: TtyName::of(fd),
        message: message.to_vec(),
    };
    if message.len() != HANDSHAKE_LEN {
        return Err(invalid());
    }
    let mut words = message
        .chunks_exact(4)
        .map(|chunk| u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]));
    let mut next = || words.next().unwrap_or_default();
    let (magic, step, errno, flags) = (next(), next(), next(), next());
    if magic != HANDSHAKE_MAGIC {
        return Err(invalid());
    }
    if step == 0 {
        return Ok(flags);
    }
    let step = HelperStep::from_code(step).ok_or_else(invalid)?;
    Err(SpawnError::Helper {
        tty: TtyName::of(fd),
        step,
        source: io::Error::from_raw_os_error(errno as i32),
    })
}

/// Reads up to HANDSHAKE_LEN bytes, stopping at end of file. An empty result means end of file
/// before any byte.
fn read_message(read: BorrowedFd<'_>, timeout: Duration) -> io::Result<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut message = [0u8; HANDSHAKE_LEN];
    let mut filled = 0;
    while filled < HANDSHAKE_LEN {
        wait_readable(read, deadline)?;
        let rest = &mut message[filled..];
        // SAFETY: read writes at most `rest.len()` bytes into the local buffer.
        let ret = unsafe { libc::read(read.as_raw_fd(), rest.as_mut_ptr().cast(), rest.len()) };
        match ret {
            0 => break,
            n if n > 0 => filled += n as usize,
            _ => {
                let err = io::Error::last_os_error();
                if !matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) {
                    return Err(err);
                }
            }
        }
    }
    Ok(message[..filled].to_vec())
}

/// Polls `fd` for input until `deadline`, failing with TimedOut after it.
fn wait_readable(fd: BorrowedFd<'_>, deadline: Instant) -> io::Result<()> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::from(io::ErrorKind::TimedOut));
        }
        let mut pollfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: poll writes `revents` of the one local pollfd.
        let ret = unsafe { libc::poll(&mut pollfd, 1, millis) };
        if ret > 0 {
            return Ok(());
        }
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}
