use std::io;
use std::os::fd::BorrowedFd;

use super::{Backend, Source};

/// A console that discards all output and has no input and no size.
#[derive(Debug, Default)]
pub struct NullBackend;

impl NullBackend {
    /// Creates the backend.
    pub fn new() -> Self {
        NullBackend
    }
}

impl Backend for NullBackend {
    fn has_size(&self) -> bool {
        false
    }

    fn fd(&self, _source: Source) -> Option<BorrowedFd<'_>> {
        None
    }

    fn write_output(&mut self, data: &[u8]) -> io::Result<usize> {
        Ok(data.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_takes_everything_and_reads_nothing() {
        let mut backend = NullBackend::new();
        assert_eq!(backend.write_output(&[7u8; 10_000]).unwrap(), 10_000);
        let mut buf = [0u8; 8];
        assert_eq!(backend.read_input(&mut buf).unwrap(), 0);
        assert!(!backend.has_size());
        assert!(backend.is_attached());
        for source in [
            Source::Input,
            Source::Output,
            Source::Resize,
            Source::Attach,
        ] {
            assert!(backend.fd(source).is_none());
        }
    }
}
