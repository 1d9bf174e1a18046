//! The caller's handle on the helper process: killing and reaping it without SIGCHLD.
//!
//! The helper is cloned with exit signal 0, so its exit sends the caller no SIGCHLD, a
//! `waitpid(-1, ..)` loop of the caller (which lacks `__WALL`) never reaps it, and the caller's
//! SIGCHLD disposition stays untouched. Reaping therefore passes `__WALL`.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd};

/// The helper's pid and, where the kernel has pidfds, a pidfd for it.
#[derive(Debug)]
pub(crate) struct HelperProcess {
    pub pid: libc::pid_t,
    pub pidfd: Option<OwnedFd>,
}

impl HelperProcess {
    /// Sends SIGKILL, which also ends a stopped helper. Through the pidfd no reused pid can be hit.
    pub(crate) fn kill(&self) {
        match &self.pidfd {
            Some(pidfd) => {
                // SAFETY: pidfd_send_signal takes the pidfd by value; the siginfo pointer is null.
                unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        pidfd.as_raw_fd(),
                        libc::SIGKILL,
                        std::ptr::null::<libc::siginfo_t>(),
                        0,
                    )
                };
            }
            None => {
                // SAFETY: kill takes no pointers. The pid cannot have been reused, because the
                // helper is this process's child and has not been reaped.
                unsafe { libc::kill(self.pid, libc::SIGKILL) };
            }
        }
    }

    /// Waits for the helper to exit and reaps it. Returns how it ended, as text.
    pub(crate) fn reap(&self) -> io::Result<String> {
        let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
        let (idtype, id) = match &self.pidfd {
            Some(pidfd) => (libc::P_PIDFD, pidfd.as_raw_fd() as libc::id_t),
            None => (libc::P_PID, self.pid as libc::id_t),
        };
        loop {
            // SAFETY: waitid writes one siginfo_t into the zeroed local.
            let ret = unsafe {
                libc::waitid(idtype, id, info.as_mut_ptr(), libc::WEXITED | libc::__WALL)
            };
            if ret == 0 {
                break;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
        // SAFETY: waitid succeeded, so it filled the struct, which started zeroed.
        let info = unsafe { info.assume_init() };
        Ok(describe_exit(&info))
    }

    /// Kills and reaps the helper, for paths where it must not outlive the call.
    pub(crate) fn kill_and_reap(&self) -> io::Result<String> {
        self.kill();
        self.reap()
    }
}

fn describe_exit(info: &libc::siginfo_t) -> String {
    // SAFETY: after a successful waitid for WEXITED the status field is the valid union member.
    let status = unsafe { info.si_status() };
    match info.si_code {
        libc::CLD_EXITED => format!("exited with status {status}"),
        libc::CLD_KILLED | libc::CLD_DUMPED => format!("killed by signal {status}"),
        code => format!("ended with si_code {code} and status {status}"),
    }
}
