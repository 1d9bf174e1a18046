//! An inotify watch for opens and closes of a pty's subsidiary side, so the device learns of a
//! client attaching or leaving without waking while nothing happens.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Events that can change whether a client has the subsidiary side open.
const ATTACH_EVENTS: u32 = libc::IN_OPEN | libc::IN_CLOSE_WRITE | libc::IN_CLOSE_NOWRITE;

/// A non-blocking inotify fd watching one path for opens and closes.
#[derive(Debug)]
pub struct AttachWatch {
    inotify: File,
}

impl AttachWatch {
    /// Starts watching `path`.
    pub fn new(path: &Path) -> io::Result<Self> {
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
        // SAFETY: inotify_init1 takes only flags and returns a new fd or -1.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new fd that nothing else owns.
        let inotify = File::from(unsafe { OwnedFd::from_raw_fd(raw) });
        // SAFETY: the path pointer refers to `c_path`, a NUL-terminated string alive for the call.
        let wd = unsafe {
            libc::inotify_add_watch(
                std::os::fd::AsRawFd::as_raw_fd(&inotify),
                c_path.as_ptr(),
                ATTACH_EVENTS,
            )
        };
        if wd == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(AttachWatch { inotify })
    }

    /// Reads and discards every pending event; returns how many bytes of events there were.
    pub fn drain(&self) -> io::Result<usize> {
        let mut buffer = [0u8; 1024];
        let mut total = 0;
        loop {
            match (&self.inotify).read(&mut buffer) {
                Ok(0) => return Ok(total),
                Ok(read) => total += read,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(total),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
    }
}

impl AsFd for AttachWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttyvm_term::Pty;

    #[test]
    fn watch_reports_subsidiary_open_and_close() {
        let pty = Pty::open().unwrap();
        let watch = AttachWatch::new(&pty.path).unwrap();
        assert_eq!(watch.drain().unwrap(), 0);
        let client = pty.reopen_subsidiary().unwrap();
        assert!(watch.drain().unwrap() > 0, "no event for an open");
        assert_eq!(watch.drain().unwrap(), 0);
        drop(client);
        assert!(watch.drain().unwrap() > 0, "no event for a close");
    }

    #[test]
    fn watch_missing_path_fails() {
        let err = AttachWatch::new(Path::new("/dev/pts/does-not-exist")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    }
}
