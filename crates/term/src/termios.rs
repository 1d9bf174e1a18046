use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use crate::check;

/// A terminal's complete termios settings.
#[derive(Clone, Copy)]
pub struct Termios(libc::termios);

impl Termios {
    /// Reads the settings of the terminal behind `fd` with tcgetattr.
    pub fn get(fd: BorrowedFd<'_>) -> io::Result<Self> {
        let mut termios = MaybeUninit::<libc::termios>::uninit();
        // SAFETY: tcgetattr fills the whole struct through the pointer or fails and leaves it
        // unread, because `assume_init` runs only after success.
        check(unsafe { libc::tcgetattr(fd.as_raw_fd(), termios.as_mut_ptr()) })?;
        // SAFETY: tcgetattr succeeded, so it initialized every field.
        Ok(Termios(unsafe { termios.assume_init() }))
    }

    /// Applies these settings to the terminal behind `fd` once its pending output has drained.
    pub fn set(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        set_raw_fd(fd.as_raw_fd(), &self.0)
    }

    /// Returns these settings changed as cfmakeraw(3) changes them: no input translation (no
    /// ICRNL), no echo, no signals from keys, no output processing, 8-bit characters.
    pub fn raw(&self) -> Self {
        let mut raw = self.0;
        // SAFETY: cfmakeraw only edits the flags of the struct the pointer refers to, a local copy.
        unsafe { libc::cfmakeraw(&mut raw) };
        Termios(raw)
    }

    /// Returns the underlying libc struct.
    pub fn as_libc(&self) -> &libc::termios {
        &self.0
    }
}

impl PartialEq for Termios {
    fn eq(&self, other: &Self) -> bool {
        // Field by field: the struct has padding bytes whose values mean nothing.
        let (a, b) = (&self.0, &other.0);
        a.c_iflag == b.c_iflag
            && a.c_oflag == b.c_oflag
            && a.c_cflag == b.c_cflag
            && a.c_lflag == b.c_lflag
            && a.c_line == b.c_line
            && a.c_cc == b.c_cc
            && a.c_ispeed == b.c_ispeed
            && a.c_ospeed == b.c_ospeed
    }
}

impl Eq for Termios {}

impl fmt::Debug for Termios {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Termios")
            .field("iflag", &format_args!("{:#o}", self.0.c_iflag))
            .field("oflag", &format_args!("{:#o}", self.0.c_oflag))
            .field("cflag", &format_args!("{:#o}", self.0.c_cflag))
            .field("lflag", &format_args!("{:#o}", self.0.c_lflag))
            .finish_non_exhaustive()
    }
}

fn set_raw_fd(fd: RawFd, termios: &libc::termios) -> io::Result<()> {
    // SAFETY: tcsetattr only reads the struct, which the reference keeps alive for the call.
    check(unsafe { libc::tcsetattr(fd, libc::TCSADRAIN, termios) })?;
    Ok(())
}

/// The original settings of a terminal and the fd to put them back on, copyable into a panic hook
/// or a signal path. `restore` calls only tcsetattr, which is async-signal-safe.
#[derive(Clone, Copy, Debug)]
pub struct Restorer {
    fd: RawFd,
    original: Termios,
}

impl Restorer {
    /// Puts the original settings back.
    ///
    /// The fd must still refer to the terminal, so the owner of the fd must outlive every call.
    pub fn restore(&self) -> io::Result<()> {
        set_raw_fd(self.fd, &self.original.0)
    }

    /// Returns the settings that `restore` applies.
    pub fn original(&self) -> Termios {
        self.original
    }
}

/// A terminal in raw mode. Dropping it restores the exact settings it found.
#[derive(Debug)]
pub struct RawMode {
    restorer: Restorer,
}

impl RawMode {
    /// Saves the settings of the terminal behind `fd` and switches it to raw mode. The caller
    /// keeps `fd` open for as long as the returned guard lives.
    pub fn enable(fd: BorrowedFd<'_>) -> io::Result<Self> {
        let original = Termios::get(fd)?;
        original.raw().set(fd)?;
        Ok(RawMode {
            restorer: Restorer {
                fd: fd.as_raw_fd(),
                original,
            },
        })
    }

    /// Returns a copy of what restoring needs, for exit paths that do not run destructors.
    pub fn restorer(&self) -> Restorer {
        self.restorer
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // Nothing can be done here about a terminal that has gone away.
        let _ = self.restorer.restore();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Pty;
    use std::os::fd::AsFd;

    #[test]
    fn raw_mode_clears_icrnl_and_echo() {
        let pty = Pty::open().unwrap();
        let guard = RawMode::enable(pty.subsidiary.as_fd()).unwrap();
        let now = Termios::get(pty.subsidiary.as_fd()).unwrap();
        assert_eq!(now.as_libc().c_iflag & libc::ICRNL, 0);
        assert_eq!(now.as_libc().c_lflag & libc::ECHO, 0);
        assert_eq!(now.as_libc().c_lflag & libc::ICANON, 0);
        drop(guard);
    }

    #[test]
    fn raw_mode_drop_restores_exactly() {
        let pty = Pty::open().unwrap();
        let before = Termios::get(pty.subsidiary.as_fd()).unwrap();
        let guard = RawMode::enable(pty.subsidiary.as_fd()).unwrap();
        assert_ne!(Termios::get(pty.subsidiary.as_fd()).unwrap(), before);
        drop(guard);
        assert_eq!(Termios::get(pty.subsidiary.as_fd()).unwrap(), before);
    }

    #[test]
    fn restorer_restores_without_drop() {
        let pty = Pty::open().unwrap();
        let before = Termios::get(pty.subsidiary.as_fd()).unwrap();
        let guard = RawMode::enable(pty.subsidiary.as_fd()).unwrap();
        let restorer = guard.restorer();
        std::mem::forget(guard);
        restorer.restore().unwrap();
        assert_eq!(Termios::get(pty.subsidiary.as_fd()).unwrap(), before);
        assert_eq!(restorer.original(), before);
    }
}
