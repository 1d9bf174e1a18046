use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::check;

/// A pseudoterminal pair. Both fds are close-on-exec and neither is anyone's controlling terminal.
#[derive(Debug)]
pub struct Pty {
    /// The main side (the "master" of older documents), the end a server reads and writes.
    pub main: OwnedFd,
    /// The subsidiary side (the "slave"), the end a program uses as its terminal.
    pub subsidiary: OwnedFd,
    /// Path of the subsidiary side, such as `/dev/pts/3`.
    pub path: PathBuf,
}

impl Pty {
    /// Opens a new pty pair with posix_openpt, grantpt and unlockpt.
    pub fn open() -> io::Result<Self> {
        let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
        // SAFETY: posix_openpt takes no pointers; on success it returns a new fd that nothing
        // else owns, which `OwnedFd` then takes over.
        let main = unsafe { OwnedFd::from_raw_fd(check(libc::posix_openpt(flags))?) };
        // SAFETY: grantpt and unlockpt take the fd by value and touch no memory of ours.
        check(unsafe { libc::grantpt(main.as_raw_fd()) })?;
        // SAFETY: as above.
        check(unsafe { libc::unlockpt(main.as_raw_fd()) })?;
        let path = subsidiary_path(&main)?;
        let subsidiary = open_subsidiary(&path)?;
        Ok(Pty {
            main,
            subsidiary,
            path,
        })
    }

    /// Opens another fd on the subsidiary side, as a client would.
    pub fn reopen_subsidiary(&self) -> io::Result<OwnedFd> {
        open_subsidiary(&self.path)
    }
}

fn subsidiary_path(main: &OwnedFd) -> io::Result<PathBuf> {
    let mut buf = [0 as libc::c_char; 128];
    // SAFETY: ptsname_r writes at most `buf.len()` bytes, NUL included, into the local buffer.
    let ret = unsafe { libc::ptsname_r(main.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    // SAFETY: ptsname_r succeeded, so the buffer holds a NUL-terminated string.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) };
    Ok(PathBuf::from(std::ffi::OsStr::from_bytes(name.to_bytes())))
}

fn open_subsidiary(path: &Path) -> io::Result<OwnedFd> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(path)?;
    Ok(OwnedFd::from(file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn pty_open_names_a_pts_device() {
        let pty = Pty::open().unwrap();
        assert!(pty.path.starts_with("/dev/pts/"), "{:?}", pty.path);
    }

    #[test]
    fn pty_carries_bytes_to_main() {
        let pty = Pty::open().unwrap();
        let mut sub = std::fs::File::from(pty.reopen_subsidiary().unwrap());
        crate::RawMode::enable(std::os::fd::AsFd::as_fd(&sub))
            .map(std::mem::forget)
            .unwrap();
        sub.write_all(b"ping").unwrap();
        let mut main = std::fs::File::from(pty.main);
        let mut buf = [0u8; 4];
        main.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
    }
}
