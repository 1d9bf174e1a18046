//! Opening and checking the pty that the client attaches to.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The advice every open error ends with.
const WHERE_TO_LOOK: &str = "Give the pty path that `ttyvm serve --console pty` printed after \
                             `console:`, such as /dev/pts/3";

/// Errors from opening the console pty. Each message names the path and what to do.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Nothing exists at the path, or the server that owned the pty has exited.
    #[error("{} does not exist. {WHERE_TO_LOOK}.", .0.display())]
    Missing(PathBuf),
    /// The path exists but is not a terminal device.
    #[error("{} is not a terminal. {WHERE_TO_LOOK}.", .0.display())]
    NotTerminal(PathBuf),
    /// The caller may not open the path for reading and writing.
    #[error(
        "permission denied opening {} for reading and writing. Run as its owner or as root, or \
         grant this user read and write access to it.",
        .0.display()
    )]
    PermissionDenied(PathBuf),
    /// Any other failure of open(2).
    #[error("failed to open {}: {source}. {WHERE_TO_LOOK}.", .path.display())]
    Open {
        /// The path given.
        path: PathBuf,
        /// The error open(2) returned.
        source: io::Error,
    },
}

/// Opens `path` for reading and writing, non-blocking and without making it the controlling
/// terminal, and checks that it is a terminal. Neither this nor any check changes the pty.
pub fn open_console(path: &Path) -> Result<OwnedFd, OpenError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| classify(path, source))?;
    // SAFETY: isatty only inspects the fd, which `file` keeps open for the call.
    if unsafe { libc::isatty(file.as_raw_fd()) } != 1 {
        return Err(OpenError::NotTerminal(path.to_owned()));
    }
    Ok(OwnedFd::from(file))
}

fn classify(path: &Path, source: io::Error) -> OpenError {
    let path = path.to_owned();
    match source.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => OpenError::Missing(path),
        Some(libc::EACCES) | Some(libc::EPERM) => OpenError::PermissionDenied(path),
        // A directory, or a device node with no driver behind it, is no terminal either.
        Some(libc::EISDIR) | Some(libc::ENXIO) | Some(libc::ENODEV) => OpenError::NotTerminal(path),
        _ => OpenError::Open { path, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttyvm_term::Pty;

    #[test]
    fn open_console_accepts_pty() {
        let pty = Pty::open().unwrap();
        assert!(open_console(&pty.path).is_ok());
    }

    #[test]
    fn open_console_rejects_missing_path() {
        let err = open_console(Path::new("/dev/pts/does-not-exist")).unwrap_err();
        assert!(matches!(err, OpenError::Missing(_)), "{err:?}");
    }

    #[test]
    fn open_console_rejects_dev_null() {
        let err = open_console(Path::new("/dev/null")).unwrap_err();
        assert!(matches!(err, OpenError::NotTerminal(_)), "{err:?}");
    }

    #[test]
    fn open_console_rejects_directory() {
        let err = open_console(Path::new("/dev/pts")).unwrap_err();
        assert!(matches!(err, OpenError::NotTerminal(_)), "{err:?}");
    }

    #[test]
    fn missing_message_names_path_and_advice() {
        let message = OpenError::Missing(PathBuf::from("/dev/pts/77")).to_string();
        assert_eq!(
            message,
            "/dev/pts/77 does not exist. Give the pty path that `ttyvm serve --console pty` \
             printed after `console:`, such as /dev/pts/3."
        );
    }
}
