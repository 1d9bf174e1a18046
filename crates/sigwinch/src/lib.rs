//! Learns of every resize of a terminal that the calling process does not control.
//!
//! The kernel reports a resize (TIOCSWINSZ) only by sending SIGWINCH to the terminal's foreground
//! process group. A server that holds a pty, or the user's terminal, is usually not that group.
//! [`ResizeListener::spawn`] therefore starts a small helper process that is:
//!
//! - in its own session, with the terminal as its controlling terminal (setsid, TIOCSCTTY) and its
//!   group as the foreground group (tcsetpgrp). Where the caller's group already is the
//!   terminal's foreground group, the helper stays in that group, and both receive SIGWINCH.
//! - writing one byte, non-blocking, to a pipe for each SIGWINCH. A full pipe means a notification
//!   is already pending, so the byte is skipped. [`ResizeListener::drain`] reads every pending
//!   byte at once; the caller then reads the size itself with [`window_size`].
//! - holding no fd but the pipe's write end, so a pty's main side reports POLLHUP as soon as
//!   every client has closed the subsidiary side, and the terminal itself is not held open.
//! - exiting by itself once every read end is closed, so a killed caller leaves nothing behind.
//!
//! # Mechanism and trade-offs
//!
//! **Memory.** The helper is cloned with `CLONE_VM` onto a dedicated 64 KiB stack (mmap'd, with a
//! PROT_NONE guard page) and shares the caller's address space for its whole life. A fork-style
//! copy would mark every private page of the caller copy-on-write while the helper lives, so a
//! VMM's later guest-RAM writes would each fault and copy a page. `MADV_DONTFORK` would avoid that
//! only for regions the caller marks, and a library cannot mark every region of its caller. The
//! price of sharing memory is discipline: the helper code (the private `helper` module) makes
//! only raw system calls through inline assembly, never allocates, takes no lock, and never
//! touches `errno`. The helper runs with the spawning thread's TLS pointer, and glibc's `syscall()`
//! wrapper stores failures in that thread's `errno`. The helper's extra memory is the stack pages
//! it touches (see [`ResizeListener::stack_resident_bytes`]). Its VmRSS in /proc is the caller's,
//! because the two share one mm. Both clone paths, below, share memory this way.
//!
//! **Signals.** clone3 with `CLONE_CLEAR_SIGHAND` resets every caller handler to SIG_DFL in the
//! helper; ignored signals stay ignored, as clone(2) specifies. Where clone3 fails with ENOSYS or
//! EINVAL (kernels before 5.5, or seccomp profiles that return ENOSYS for it), the helper is
//! cloned with the older `clone` and pidfd_open, and it resets every signal from 1 to 64 to
//! SIG_DFL itself. The spawning thread blocks all signals around the clone, so no caller handler
//! can run in the helper before that reset. The helper installs no handler at all. It blocks
//! SIGWINCH and SIGIO, waits for them with rt_sigtimedwait, and leaves every other signal
//! unblocked. A handler would need an `SA_RESTORER` trampoline and would show up in the helper's
//! SigCgt, while a signalfd would be a second fd.
//!
//! Where the helper joins the caller's foreground group, the terminal sends it the caller's
//! SIGINT (Ctrl-C) and SIGQUIT (`Ctrl-\`) too, so the helper sets both to SIG_IGN before any
//! seccomp filter is installed, and its SigIgn in /proc lists them. SIGHUP keeps its default,
//! so a hung-up terminal ends the helper, and so does SIGTSTP, so the helper stops and continues
//! with the group. In its own session the helper changes neither.
//!
//! **Parent death.** The write end has `O_ASYNC` with the helper as owner, so the kernel sends
//! it SIGIO when the last read end closes (or a read frees space). The helper then polls its
//! write end and exits with exit_group on POLLERR. The read end is close-on-exec, and the helper
//! holds none, so only the caller, or a child it forks without exec, keeps the helper alive.
//!
//! **Reaping.** The helper has exit signal 0, so it sends the caller no SIGCHLD and a caller's
//! `waitpid(-1, ..)` does not reap it. Drop sends SIGKILL through the pidfd (which also ends a
//! stopped helper) and reaps with `waitid(P_PIDFD, .., WEXITED | __WALL)`. The caller's SIGCHLD
//! disposition is never touched. Only the process that spawned the listener does this: in a
//! child forked from it, dropping the listener closes that child's fds and leaves the helper
//! running.
//!
//! **Readiness.** Setup failures travel back through the pipe as a step code and an errno, and
//! [`ResizeListener::spawn`] returns only after that message: either the helper is the
//! foreground group, with SIGWINCH already blocked so none after that point is lost, or the
//! call returns a [`SpawnError`] naming the terminal and the failed step.
//!
//! NOTE: on a terminal that is not a pty, the kernel hangs up the terminal when the helper, as
//! its session leader, exits. Ptys, which is what terminal emulators and sshd provide, are
//! unaffected, and so is a caller whose group is already the foreground group.

mod error;
mod filter;
mod helper;
mod listener;
mod process;
mod spawn;
mod stack;
mod sys;

pub use error::{HelperStep, SpawnError, TtyName};
pub use listener::ResizeListener;
pub use ttyvm_term::{window_size, WindowSize};

/// Options for [`ResizeListener::spawn_with`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenerOptions {
    /// Installs a seccomp filter in the helper once it is set up. The filter allows write,
    /// rt_sigtimedwait, ppoll, exit_group and restart_syscall, and any other call kills the
    /// helper.
    pub seccomp: bool,
}

/// The system call that created the helper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloneSyscall {
    /// clone3 with CLONE_CLEAR_SIGHAND and CLONE_PIDFD.
    Clone3,
    /// The older clone, with pidfd_open afterwards and the signal reset done by the helper.
    Clone,
}

/// The method the helper used to close the fds it inherited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdCloseMethod {
    /// close_range(2).
    CloseRange,
    /// Walking /proc/self/fd with getdents64, where close_range is ENOSYS.
    ProcFdWalk,
}
