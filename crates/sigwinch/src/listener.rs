//! The public listener handle: the pipe's read end plus ownership of the helper.

use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::process::HelperProcess;
use crate::spawn::{self, Spawned};
use crate::stack::Stack;
use crate::{CloneSyscall, FdCloseMethod, ListenerOptions, SpawnError};

/// A running resize listener for one terminal.
///
/// Its fd (see [`AsFd`]) is the read end of the notification pipe: non-blocking, close-on-exec,
/// readable while a notification is pending, and fit for poll or epoll. Dropping the listener
/// kills and reaps the helper.
///
/// Only the process that spawned the listener owns the helper. A child it forks without exec
/// holds a copy of the listener; dropping that copy closes the child's own fds (the read end and
/// the pidfd) and nothing else, so the helper keeps serving the spawning process. That path makes
/// only getpid and close, and is safe between fork and `_exit`.
#[derive(Debug)]
pub struct ResizeListener {
    read: OwnedFd,
    process: HelperProcess,
    /// Unmapped in Drop, by the spawning process only, once the helper is reaped.
    stack: ManuallyDrop<Stack>,
    /// The pid of the process that spawned the helper (getpid at spawn).
    owner: libc::pid_t,
    clone_syscall: CloneSyscall,
    fd_close_method: FdCloseMethod,
    joined_caller_group: bool,
}

impl ResizeListener {
    /// Spawns a listener for the terminal `tty` with default options. Returns once the helper is
    /// the terminal's foreground group, or with an error naming the terminal and the failed step.
    /// The caller keeps `tty`; the helper closes its own copy.
    pub fn spawn(tty: BorrowedFd<'_>) -> Result<ResizeListener, SpawnError> {
        Self::spawn_with(tty, &ListenerOptions::default())
    }

    /// Spawns a listener for `tty` with `options`.
    pub fn spawn_with(
        tty: BorrowedFd<'_>,
        options: &ListenerOptions,
    ) -> Result<ResizeListener, SpawnError> {
        let Spawned {
            read,
            process,
            stack,
            clone_syscall,
            fd_close_method,
            joined_caller_group,
        } = spawn::spawn(tty, options)?;
        Ok(ResizeListener {
            read,
            process,
            stack: ManuallyDrop::new(stack),
            owner: current_pid(),
            clone_syscall,
            fd_close_method,
            joined_caller_group,
        })
    }

    /// Reads every pending notification; returns `Ok(true)` if any arrived. Never blocks.
    ///
    /// Fails with [`io::ErrorKind::BrokenPipe`] once the helper has exited (its write end is
    /// closed), for example because something killed it; spawn a new listener then.
    pub fn drain(&self) -> io::Result<bool> {
        Ok(self.drain_count()? > 0)
    }

    /// Reads every pending notification and returns how many bytes were pending. Each byte stands
    /// for at least one SIGWINCH; signals that arrive while one is pending in the helper merge.
    pub fn drain_count(&self) -> io::Result<usize> {
        let mut total = 0;
        let mut buffer = [0u8; 512];
        loop {
            // SAFETY: read writes at most `buffer.len()` bytes into the local buffer.
            let ret = unsafe {
                libc::read(
                    self.read.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                )
            };
            if ret > 0 {
                total += ret as usize;
                continue;
            }
            if ret == 0 {
                return match total {
                    0 => Err(self.helper_exited()),
                    _ => Ok(total),
                };
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::WouldBlock => return Ok(total),
                io::ErrorKind::Interrupted => continue,
                _ => return Err(err),
            }
        }
    }

    fn helper_exited(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::BrokenPipe,
            format!(
                "listener: the resize helper (pid {}) has exited; spawn a new listener",
                self.process.pid
            ),
        )
    }

    /// Returns the helper's process id, for inspection in /proc.
    pub fn helper_pid(&self) -> libc::pid_t {
        self.process.pid
    }

    /// The system call that created the helper.
    pub fn clone_syscall(&self) -> CloneSyscall {
        self.clone_syscall
    }

    /// Returns how the helper closed the fds it inherited.
    pub fn fd_close_method(&self) -> FdCloseMethod {
        self.fd_close_method
    }

    /// Whether the helper stayed in the caller's process group, because that group already was
    /// the terminal's foreground group, instead of starting a session of its own.
    pub fn joined_caller_group(&self) -> bool {
        self.joined_caller_group
    }

    /// Bytes of the helper's private stack that are resident: the memory the helper adds to the
    /// caller's, besides kernel structures, because it shares the caller's address space.
    pub fn stack_resident_bytes(&self) -> io::Result<usize> {
        let page = 4096;
        let mut resident = vec![0u8; self.stack.len().div_ceil(page)];
        // SAFETY: mincore reads the mapping's page table and writes one byte per page into the
        // vector, which has one byte per page of the mapping.
        let ret = unsafe {
            libc::mincore(
                self.stack.base() as *mut libc::c_void,
                self.stack.len(),
                resident.as_mut_ptr(),
            )
        };
        if ret != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(resident.iter().filter(|&&byte| byte & 1 != 0).count() * page)
    }
}

impl AsFd for ResizeListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}

impl AsRawFd for ResizeListener {
    fn as_raw_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }
}

impl Drop for ResizeListener {
    fn drop(&mut self) {
        // Async-signal-safe up to the return below: a forked child may drop its copy right
        // before `_exit`. The fields' own drops then close only this process's fds, and the
        // stack mapping, this process's copy of it, stays mapped until the process ends.
        if current_pid() != self.owner {
            return;
        }
        // SIGKILL ends the helper even while it is stopped, so the wait cannot hang.
        match self.process.kill_and_reap() {
            Ok(_) => {}
            // ECHILD: someone else reaped the helper with __WALL, so nothing is left to do.
            Err(err) if err.raw_os_error() == Some(libc::ECHILD) => {}
            Err(err) => {
                // The helper may still run on its stack, so the mapping is left in place.
                log::warn!(
                    "listener: reaping resize helper {} failed, its stack stays mapped: {err}",
                    self.process.pid
                );
                return;
            }
        }
        // SAFETY: the stack is dropped only here, once, after the helper that ran on it has
        // been reaped, so nothing runs on it any more.
        unsafe { ManuallyDrop::drop(&mut self.stack) };
    }
}

/// The calling process's pid. glibc 2.25 and later do not cache it, so a forked child gets its own.
fn current_pid() -> libc::pid_t {
    // SAFETY: getpid takes no arguments and cannot fail.
    unsafe { libc::getpid() }
}
