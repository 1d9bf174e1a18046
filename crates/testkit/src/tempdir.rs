//! Temporary folders that are removed on drop.

use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// A new, private folder under the system temporary folder, removed with its contents on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a folder named `ttyvm-PREFIX-XXXXXX` with mode 0700 in `std::env::temp_dir()`.
    pub fn new(prefix: &str) -> io::Result<Self> {
        let template = std::env::temp_dir().join(format!("ttyvm-{prefix}-XXXXXX"));
        let template = CString::new(template.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in temp dir path"))?;
        let mut bytes = template.into_bytes_with_nul();
        // SAFETY: `bytes` is a writable, NUL-terminated template that mkdtemp edits in place.
        let result = unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) };
        if result.is_null() {
            return Err(io::Error::last_os_error());
        }
        bytes.pop();
        Ok(Self {
            path: PathBuf::from(OsString::from_vec(bytes)),
        })
    }

    /// Returns the folder's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // A failed removal leaves a folder in /tmp, which is no reason to fail a test.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tempdir_removed_on_drop() {
        let dir = TempDir::new("unit").unwrap();
        let path = dir.path().to_path_buf();
        std::fs::write(path.join("file"), b"x").unwrap();
        assert!(path.is_dir());
        drop(dir);
        assert!(!path.exists());
    }
}
