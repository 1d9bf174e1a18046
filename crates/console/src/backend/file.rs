use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::{Backend, BackendError, Source};

/// A console that appends all output to a file and has no input and no size.
///
/// The file is created if it is missing. Existing contents are kept: output is appended, so
/// several runs can share one log.
#[derive(Debug)]
pub struct FileBackend {
    file: File,
}

impl FileBackend {
    /// Opens `path` for appending, creating it with mode 0644 (less the umask) if it is missing.
    ///
    /// The file is opened with `O_NONBLOCK`, so opening never waits: a FIFO that no process
    /// has open for reading fails at once (ENXIO) instead of blocking the caller, and writes to
    /// a FIFO or a terminal return `WouldBlock` while they are full, which the console handles.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, BackendError> {
        let path = path.as_ref();
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|source| BackendError::OpenFile {
                path: path.to_path_buf(),
                source: explain_open_error(source),
            })?;
        Ok(FileBackend { file })
    }
}

/// Replaces the bare ENXIO of a FIFO without a reader with what it means and what to do.
fn explain_open_error(source: io::Error) -> io::Error {
    if source.raw_os_error() == Some(libc::ENXIO) {
        io::Error::new(
            source.kind(),
            "no process has the FIFO open for reading; start the reader first",
        )
    } else {
        source
    }
}

impl Backend for FileBackend {
    fn has_size(&self) -> bool {
        false
    }

    fn fd(&self, source: Source) -> Option<BorrowedFd<'_>> {
        match source {
            Source::Output => Some(self.file.as_fd()),
            _ => None,
        }
    }

    fn write_output(&mut self, data: &[u8]) -> io::Result<usize> {
        self.file.write(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_appends_to_existing_contents() {
        let dir = std::env::temp_dir().join(format!("ttyvm-console-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.log");
        std::fs::write(&path, b"before\n").unwrap();
        let mut backend = FileBackend::create(&path).unwrap();
        assert_eq!(backend.write_output(b"after\n").unwrap(), 6);
        drop(backend);
        assert_eq!(std::fs::read(&path).unwrap(), b"before\nafter\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn file_has_no_size_and_no_input() {
        let dir = std::env::temp_dir().join(format!("ttyvm-console-nosize-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut backend = FileBackend::create(dir.join("out.log")).unwrap();
        assert!(!backend.has_size());
        assert!(backend.fd(Source::Input).is_none());
        assert!(backend.fd(Source::Resize).is_none());
        let mut buf = [0u8; 4];
        assert_eq!(backend.read_input(&mut buf).unwrap(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn fifo(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("ttyvm-console-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("fifo");
        let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: `c_path` is a valid NUL-terminated path for the call.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        (dir, path)
    }

    #[test]
    fn fifo_without_reader_fails_at_once() {
        let (dir, path) = fifo("fifo-noreader");
        let (sender, receiver) = std::sync::mpsc::channel();
        let opener = path.clone();
        std::thread::spawn(move || {
            let _ = sender.send(FileBackend::create(&opener).map(|_| ()));
        });
        // A blocking open would never return; the thread is then left behind.
        let result = receiver
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("opening a FIFO without a reader must not block");
        let err = result.expect_err("a FIFO without a reader must be rejected");
        let message = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        println!("{message}");
        assert!(message.contains("start the reader first"), "{message}");
        assert!(message.contains(path.to_str().unwrap()), "{message}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fifo_with_reader_takes_output() {
        let (dir, path) = fifo("fifo-reader");
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .unwrap();
        let mut backend = FileBackend::create(&path).expect("open a FIFO with a reader");
        assert_eq!(backend.write_output(b"hello").unwrap(), 5);
        let mut buf = [0u8; 16];
        assert_eq!(io::Read::read(&mut &reader, &mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
        // A full FIFO gives WouldBlock rather than blocking the server.
        let chunk = [b'x'; 4096];
        let full = (0..1024).find_map(|_| backend.write_output(&chunk).err());
        let err = full.expect("the FIFO never filled up");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dev_null_and_terminal_still_open() {
        let mut backend = FileBackend::create("/dev/null").expect("open /dev/null");
        assert_eq!(backend.write_output(b"gone").unwrap(), 4);
        let pty = ttyvm_term::Pty::open().expect("open a pty pair");
        let mut backend = FileBackend::create(&pty.path).expect("open a terminal");
        assert_eq!(backend.write_output(b"tty\n").unwrap(), 4);
    }

    #[test]
    fn file_create_in_missing_dir_fails() {
        let err = FileBackend::create("/nonexistent-dir-for-ttyvm/out.log").unwrap_err();
        assert!(matches!(err, BackendError::OpenFile { .. }), "{err}");
        assert!(err
            .to_string()
            .contains("/nonexistent-dir-for-ttyvm/out.log"));
    }
}
