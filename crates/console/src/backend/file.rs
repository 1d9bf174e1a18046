use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
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
    pub fn create(path: impl AsRef<Path>) -> Result<Self, BackendError> {
        let path = path.as_ref();
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|source| BackendError::OpenFile {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(FileBackend { file })
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

    #[test]
    fn file_create_in_missing_dir_fails() {
        let err = FileBackend::create("/nonexistent-dir-for-ttyvm/out.log").unwrap_err();
        assert!(matches!(err, BackendError::OpenFile { .. }), "{err}");
        assert!(err
            .to_string()
            .contains("/nonexistent-dir-for-ttyvm/out.log"));
    }
}
