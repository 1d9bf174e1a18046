//! The helper process: everything here runs in the cloned child.
//!
//! Async-signal-safe: the child shares the caller's memory (CLONE_VM) and the TLS pointer of the
//! spawning thread, and another caller thread may hold the allocator's lock at any moment. This
//! code therefore only makes raw system calls through [`crate::sys`], never allocates, takes no
//! lock, never touches `errno`, and has no path that panics. Arithmetic is checked or wrapping and
//! slices are accessed with `get`.

use std::ffi::c_void;
use std::os::fd::RawFd;
use std::ptr;

use crate::error::HelperStep;
use crate::sys::{exit_group, syscall3, syscall6};

/// Identifies a handshake message: the bytes "TTYL" read as a little-endian u32.
pub(crate) const HANDSHAKE_MAGIC: u32 = u32::from_le_bytes(*b"TTYL");
/// Length of the handshake message: magic, step code (0 when ready), errno, flags.
pub(crate) const HANDSHAKE_LEN: usize = 16;
/// Handshake flag: close_range was unavailable, so the helper closed fds by walking /proc/self/fd.
pub(crate) const FLAG_CLOSED_VIA_PROC: u32 = 1;

/// Exit status of a helper whose setup step failed.
const EXIT_SETUP_FAILED: i32 = 1;
/// Exit status of a helper whose rt_sigtimedwait failed with something other than EINTR.
const EXIT_WAIT_FAILED: i32 = 2;

/// Everything the helper needs, written by the caller before the clone. The caller keeps it alive
/// and unchanged until it has read the handshake message or reaped the helper, and the helper
/// reads it only before sending that message.
#[repr(C)]
pub(crate) struct HelperArgs {
    /// The terminal, as the caller's fd number (the helper's fd table is a copy).
    pub tty: RawFd,
    /// The write end of the notification pipe.
    pub pipe: RawFd,
    /// Whether to call setsid, TIOCSCTTY and TIOCSPGRP. False when the caller's own group is
    /// already the terminal's foreground group, so that the helper stays in it.
    pub new_session: bool,
    /// Whether to reset every signal to SIG_DFL (the fallback path, without CLONE_CLEAR_SIGHAND).
    pub reset_signals: bool,
    /// Whether to ignore SIGINT and SIGQUIT, which the terminal sends to the foreground group
    /// that the helper shares with the caller when `new_session` is false.
    pub ignore_terminal_signals: bool,
    /// The seccomp program to install, or null.
    pub filter: *const seccompiler::sock_filter,
    /// Number of instructions at `filter`.
    pub filter_len: u16,
}

/// Kernel `struct sigaction` for rt_sigaction on x86_64.
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// The signals the helper waits for: SIGWINCH (a resize) and SIGIO (the last read end closed, or a
/// read freed pipe space).
static WAIT_SET: u64 = signal_bit(libc::SIGWINCH) | signal_bit(libc::SIGIO);

const fn signal_bit(signal: i32) -> u64 {
    1 << (signal - 1)
}

type StepResult<T> = Result<T, (HelperStep, i32)>;

/// Converts a raw system call result into the failed step and its errno.
fn check(ret: isize, step: HelperStep) -> StepResult<isize> {
    if ret < 0 {
        Err((step, ret.wrapping_neg() as i32))
    } else {
        Ok(ret)
    }
}

/// Entry point of the helper on its own stack. Never returns.
pub(crate) extern "C" fn helper_main(arg: *mut c_void) -> ! {
    // SAFETY: spawn passes a pointer to a HelperArgs that it keeps alive and unchanged until it
    // has read the handshake message, which is sent below only after the last use of `args`.
    let args = unsafe { &*(arg as *const HelperArgs) };
    let pipe = args.pipe;
    match set_up(args) {
        Ok(flags) => {
            send_handshake(pipe, 0, 0, flags);
            wait_for_signals(pipe)
        }
        Err((step, errno)) => {
            send_handshake(pipe, step as u32, errno, 0);
            exit_group(EXIT_SETUP_FAILED)
        }
    }
}

/// Runs every setup step in order and returns the handshake flags.
fn set_up(args: &HelperArgs) -> StepResult<u32> {
    if args.reset_signals {
        reset_signal_dispositions()?;
    }
    if args.ignore_terminal_signals {
        ignore_terminal_signals()?;
    }
    if args.new_session {
        become_foreground(args.tty)?;
    }
    let flags = close_other_fds(args.pipe)?;
    watch_pipe(args.pipe)?;
    // SAFETY: the new mask is read from a static, and the old mask is not requested.
    let ret = unsafe {
        syscall6(
            libc::SYS_rt_sigprocmask,
            [
                libc::SIG_SETMASK as usize,
                ptr::addr_of!(WAIT_SET) as usize,
                0,
                8,
                0,
                0,
            ],
        )
    };
    check(ret, HelperStep::SetSignalMask)?;
    if !args.filter.is_null() {
        install_seccomp(args.filter, args.filter_len)?;
    }
    Ok(flags)
}

/// Resets every signal from 1 to 64 (SIGRTMAX) to SIG_DFL. SIGKILL and SIGSTOP cannot be changed.
fn reset_signal_dispositions() -> StepResult<()> {
    let action = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for signal in 1..=64usize {
        if signal == libc::SIGKILL as usize || signal == libc::SIGSTOP as usize {
            continue;
        }
        // SAFETY: `action` is a live local of the kernel's layout, and no old action is requested.
        let ret = unsafe {
            syscall6(
                libc::SYS_rt_sigaction,
                [signal, ptr::addr_of!(action) as usize, 0, 8, 0, 0],
            )
        };
        check(ret, HelperStep::ResetSignals)?;
    }
    Ok(())
}

/// Sets SIGINT and SIGQUIT to SIG_IGN, so that a Ctrl-C or `Ctrl-\` meant for the caller's
/// group leaves the helper running. SIG_IGN runs no handler, so it needs no restorer.
fn ignore_terminal_signals() -> StepResult<()> {
    let action = KernelSigaction {
        handler: libc::SIG_IGN,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for signal in [libc::SIGINT, libc::SIGQUIT] {
        // SAFETY: `action` is a live local of the kernel's layout, and no old action is requested.
        let ret = unsafe {
            syscall6(
                libc::SYS_rt_sigaction,
                [signal as usize, ptr::addr_of!(action) as usize, 0, 8, 0, 0],
            )
        };
        check(ret, HelperStep::IgnoreTerminalSignals)?;
    }
    Ok(())
}

/// Makes the helper a session leader whose controlling terminal is `tty`, in the foreground.
fn become_foreground(tty: RawFd) -> StepResult<()> {
    // SAFETY: setsid takes no arguments.
    let ret = unsafe { syscall3(libc::SYS_setsid, 0, 0, 0) };
    check(ret, HelperStep::NewSession)?;
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal the terminal), no pointer.
    let ret = unsafe { syscall3(libc::SYS_ioctl, tty as usize, libc::TIOCSCTTY as usize, 0) };
    check(ret, HelperStep::SetControllingTerminal)?;
    // TIOCSCTTY already made the new group the foreground group. TIOCSPGRP states it explicitly
    // and fails loudly should a kernel behave otherwise.
    // SAFETY: getpid takes no arguments.
    let group = unsafe { syscall3(libc::SYS_getpid, 0, 0, 0) } as libc::pid_t;
    // SAFETY: TIOCSPGRP reads one pid_t through the pointer, which refers to a live local.
    let ret = unsafe {
        syscall3(
            libc::SYS_ioctl,
            tty as usize,
            libc::TIOCSPGRP as usize,
            ptr::addr_of!(group) as usize,
        )
    };
    check(ret, HelperStep::SetForegroundGroup)?;
    Ok(())
}

/// Closes every fd except `keep`, with close_range or, where that is ENOSYS, by walking
/// /proc/self/fd. Returns the handshake flags. The fd table is the helper's own copy.
fn close_other_fds(keep: RawFd) -> StepResult<u32> {
    let keep = keep as u32;
    if keep > 0 {
        // SAFETY: close_range takes no pointers and closes only fds of this process.
        let ret = unsafe { syscall3(libc::SYS_close_range, 0, keep as usize - 1, 0) };
        if ret == -(libc::ENOSYS as isize) {
            close_fds_via_proc(keep as RawFd)?;
            return Ok(FLAG_CLOSED_VIA_PROC);
        }
        check(ret, HelperStep::CloseFds)?;
    }
    let first = keep.wrapping_add(1) as usize;
    // SAFETY: as above.
    let ret = unsafe { syscall3(libc::SYS_close_range, first, u32::MAX as usize, 0) };
    if ret == -(libc::ENOSYS as isize) {
        close_fds_via_proc(keep as RawFd)?;
        return Ok(FLAG_CLOSED_VIA_PROC);
    }
    check(ret, HelperStep::CloseFds)?;
    Ok(0)
}

/// A getdents64 buffer, aligned for `struct linux_dirent64`.
#[repr(C, align(8))]
struct DirentBuffer([u8; 2048]);

/// Closes every fd listed in /proc/self/fd except `keep`. /proc positions its fd directory by fd
/// number, so closing entries while reading it skips none.
fn close_fds_via_proc(keep: RawFd) -> StepResult<()> {
    let path = b"/proc/self/fd\0";
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    // SAFETY: the path is a NUL-terminated static string.
    let ret = unsafe {
        syscall6(
            libc::SYS_openat,
            [
                libc::AT_FDCWD as usize,
                path.as_ptr() as usize,
                flags as usize,
                0,
                0,
                0,
            ],
        )
    };
    let dir = check(ret, HelperStep::CloseFds)? as RawFd;
    let mut buffer = DirentBuffer([0; 2048]);
    loop {
        // SAFETY: getdents64 writes at most `buffer.0.len()` bytes into the local buffer.
        let ret = unsafe {
            syscall3(
                libc::SYS_getdents64,
                dir as usize,
                buffer.0.as_mut_ptr() as usize,
                buffer.0.len(),
            )
        };
        let filled = check(ret, HelperStep::CloseFds)? as usize;
        if filled == 0 {
            break;
        }
        close_listed_fds(buffer.0.get(..filled).unwrap_or(&[]), keep, dir);
    }
    // SAFETY: close takes no pointers, and `dir` is this function's own fd.
    unsafe { syscall3(libc::SYS_close, dir as usize, 0, 0) };
    Ok(())
}

/// Closes the fd named by each `linux_dirent64` record in `records`, except `keep` and `dir`.
fn close_listed_fds(records: &[u8], keep: RawFd, dir: RawFd) {
    // Layout of linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, then d_name.
    const RECLEN_OFFSET: usize = 16;
    const NAME_OFFSET: usize = 19;
    let mut offset = 0usize;
    while let Some(record) = records.get(offset..) {
        let Some(reclen) = record.get(RECLEN_OFFSET..RECLEN_OFFSET + 2) else {
            return;
        };
        let reclen = u16::from_ne_bytes([reclen[0], reclen[1]]) as usize;
        if reclen == 0 {
            return;
        }
        let name = record.get(NAME_OFFSET..reclen).unwrap_or(&[]);
        if let Some(fd) = parse_fd(name) {
            if fd != keep && fd != dir {
                // SAFETY: close takes no pointers, and every fd of the helper's own table except
                // the pipe end is to be closed.
                unsafe { syscall3(libc::SYS_close, fd as usize, 0, 0) };
            }
        }
        offset = offset.wrapping_add(reclen);
    }
}

/// Parses a NUL-terminated decimal fd number; `.` and `..` and anything else yield None.
fn parse_fd(name: &[u8]) -> Option<RawFd> {
    let mut value: RawFd = 0;
    let mut digits = 0;
    for &byte in name.iter().take_while(|&&byte| byte != 0) {
        if !byte.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add((byte - b'0') as RawFd)?;
        digits += 1;
    }
    (digits > 0).then_some(value)
}

/// Makes the kernel send SIGIO to the helper when the pipe's last read end closes.
fn watch_pipe(pipe: RawFd) -> StepResult<()> {
    // SAFETY: getpid takes no arguments.
    let pid = unsafe { syscall3(libc::SYS_getpid, 0, 0, 0) } as usize;
    // SAFETY: F_SETOWN, F_GETFL and F_SETFL take integer arguments, no pointers.
    let ret = unsafe { syscall3(libc::SYS_fcntl, pipe as usize, libc::F_SETOWN as usize, pid) };
    check(ret, HelperStep::WatchPipe)?;
    // SAFETY: as above.
    let ret = unsafe { syscall3(libc::SYS_fcntl, pipe as usize, libc::F_GETFL as usize, 0) };
    let flags = check(ret, HelperStep::WatchPipe)? as usize | libc::O_ASYNC as usize;
    // SAFETY: as above.
    let ret = unsafe {
        syscall3(
            libc::SYS_fcntl,
            pipe as usize,
            libc::F_SETFL as usize,
            flags,
        )
    };
    check(ret, HelperStep::WatchPipe)?;
    Ok(())
}

/// Sets NO_NEW_PRIVS and installs the seccomp program at `filter`.
fn install_seccomp(filter: *const seccompiler::sock_filter, len: u16) -> StepResult<()> {
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
    let ret = unsafe {
        syscall6(
            libc::SYS_prctl,
            [libc::PR_SET_NO_NEW_PRIVS as usize, 1, 0, 0, 0, 0],
        )
    };
    check(ret, HelperStep::NoNewPrivs)?;
    let program = libc::sock_fprog {
        len,
        filter: filter as *mut libc::sock_filter,
    };
    // SAFETY: `program` is a live local pointing to `len` instructions that the caller keeps
    // alive during setup. The kernel copies them, and seccompiler's sock_filter has libc's layout.
    let mut ret = unsafe {
        syscall3(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as usize,
            0,
            ptr::addr_of!(program) as usize,
        )
    };
    if ret == -(libc::ENOSYS as isize) {
        // SAFETY: as above, through the older prctl interface.
        ret = unsafe {
            syscall3(
                libc::SYS_prctl,
                libc::PR_SET_SECCOMP as usize,
                libc::SECCOMP_MODE_FILTER as usize,
                ptr::addr_of!(program) as usize,
            )
        };
    }
    check(ret, HelperStep::InstallSeccomp)?;
    Ok(())
}

/// Writes the handshake message. Step 0 means ready. A failed write leaves the caller to see
/// end-of-file or its timeout, so the result is not checked.
fn send_handshake(pipe: RawFd, step: u32, errno: i32, flags: u32) {
    let mut message = [0u8; HANDSHAKE_LEN];
    let words = [HANDSHAKE_MAGIC, step, errno as u32, flags];
    for (chunk, word) in message.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    // SAFETY: write reads HANDSHAKE_LEN bytes from the live local array.
    unsafe {
        syscall3(
            libc::SYS_write,
            pipe as usize,
            message.as_ptr() as usize,
            HANDSHAKE_LEN,
        )
    };
}

/// The helper's loop: one byte per SIGWINCH, exit once no read end is left. Never returns.
fn wait_for_signals(pipe: RawFd) -> ! {
    loop {
        // SAFETY: rt_sigtimedwait reads the signal set from a static, writes no siginfo (null)
        // and waits without a timeout (null).
        let ret = unsafe {
            syscall6(
                libc::SYS_rt_sigtimedwait,
                [ptr::addr_of!(WAIT_SET) as usize, 0, 0, 8, 0, 0],
            )
        };
        if ret == libc::SIGWINCH as isize {
            notify(pipe);
        } else if ret < 0 && ret != -(libc::EINTR as isize) {
            exit_group(EXIT_WAIT_FAILED);
        } else if read_end_closed(pipe) {
            // SIGIO, or EINTR after SIGSTOP and SIGCONT.
            exit_group(0);
        }
    }
}

/// Writes one byte, never blocking. EAGAIN means the pipe is full, so a notification is already
/// pending and none is lost by skipping this one. EPIPE means no reader is left.
fn notify(pipe: RawFd) {
    let byte = 1u8;
    // SAFETY: write reads one byte from the live local.
    let ret = unsafe {
        syscall3(
            libc::SYS_write,
            pipe as usize,
            ptr::addr_of!(byte) as usize,
            1,
        )
    };
    if ret == -(libc::EPIPE as isize) {
        exit_group(0);
    }
}

/// Whether poll reports POLLERR on the write end, which it does once every read end is closed.
fn read_end_closed(pipe: RawFd) -> bool {
    let mut pollfd = libc::pollfd {
        fd: pipe,
        events: 0,
        revents: 0,
    };
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ppoll writes `revents` of the one live local pollfd and reads the zero timeout; no
    // signal mask is passed.
    let ret = unsafe {
        syscall6(
            libc::SYS_ppoll,
            [
                ptr::addr_of_mut!(pollfd) as usize,
                1,
                ptr::addr_of!(zero) as usize,
                0,
                8,
                0,
            ],
        )
    };
    ret > 0 && pollfd.revents & libc::POLLERR != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_fd_accepts_decimal_names() {
        assert_eq!(parse_fd(b"0\0"), Some(0));
        assert_eq!(parse_fd(b"1234\0\0\0"), Some(1234));
    }

    #[test]
    fn parse_fd_rejects_dot_entries() {
        assert_eq!(parse_fd(b".\0"), None);
        assert_eq!(parse_fd(b"..\0"), None);
        assert_eq!(parse_fd(b"\0"), None);
        assert_eq!(parse_fd(b"99999999999\0"), None);
    }
}
