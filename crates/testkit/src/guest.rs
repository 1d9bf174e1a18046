//! The User-Mode Linux guest that `scripts/build-guest` builds, found in its cache folder.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::diagnostics::tail;

/// The command that builds the guest, relative to the repository root.
const BUILD_COMMAND: &str = "scripts/build-guest";

/// Errors of finding or building the guest.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// A file of the guest is missing from the guest folder.
    #[error(
        "the UML test guest is not built: {file} {path} is missing. Run `{BUILD_COMMAND}` in \
         the repository (it builds into {dir}, or into $TTYVM_GUEST_DIR when that is set)"
    )]
    Missing {
        /// A description of the missing file.
        file: &'static str,
        /// The path that was checked.
        path: PathBuf,
        /// The guest folder.
        dir: PathBuf,
    },
    /// guest/init in the repository differs from the one in the built initramfs.
    #[error(
        "the UML test guest is out of date: {source_init} differs from the init packed into \
         {initramfs}. Run `{BUILD_COMMAND}` to rebuild it"
    )]
    Stale {
        /// The repository's guest/init.
        source_init: PathBuf,
        /// The initramfs that contains an older init.
        initramfs: PathBuf,
    },
    /// Neither TTYVM_GUEST_DIR, XDG_CACHE_HOME nor HOME is set.
    #[error("cannot find the UML test guest folder: set TTYVM_GUEST_DIR, XDG_CACHE_HOME or HOME")]
    NoFolder,
    /// scripts/build-guest could not be started.
    #[error("starting {script} failed")]
    BuildStart {
        /// The script's path.
        script: PathBuf,
        /// The spawn error.
        #[source]
        source: std::io::Error,
    },
    /// scripts/build-guest exited with a failure.
    #[error("{script} failed with {status}; its output ends with:\n{output}")]
    BuildFailed {
        /// The script's path.
        script: PathBuf,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The tail of its stdout and stderr.
        output: String,
    },
}

/// The built guest: the UML kernel binary and the initramfs.
#[derive(Debug, Clone)]
pub struct Guest {
    /// The folder the guest was built in.
    pub dir: PathBuf,
    /// Debian's UML kernel, `linux.uml`.
    pub linux: PathBuf,
    /// The gzip'd newc cpio initramfs.
    pub initramfs: PathBuf,
}

impl Guest {
    /// Returns the guest folder by the rule of `scripts/build-guest`:
    /// `$TTYVM_GUEST_DIR`, else `$XDG_CACHE_HOME/ttyvm/guest`, else `$HOME/.cache/ttyvm/guest`.
    /// Empty variables count as unset, as in the script.
    pub fn dir() -> Result<PathBuf, GuestError> {
        let var = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
        if let Some(dir) = var("TTYVM_GUEST_DIR") {
            return Ok(PathBuf::from(dir));
        }
        if let Some(cache) = var("XDG_CACHE_HOME") {
            return Ok(Path::new(&cache).join("ttyvm/guest"));
        }
        let home = var("HOME").ok_or(GuestError::NoFolder)?;
        Ok(Path::new(&home).join(".cache/ttyvm/guest"))
    }

    /// Finds the built guest, or returns an error that names the missing file and the command
    /// that builds it.
    ///
    /// NOTE: only guest/init is compared with the built copy. A changed ttyvm-responder is not
    /// noticed here; [`Guest::ensure`] rebuilds it.
    pub fn locate() -> Result<Self, GuestError> {
        Self::locate_in(&Self::dir()?)
    }

    /// Finds the built guest in `dir`, like [`Guest::locate`] does in the default folder.
    pub fn locate_in(dir: &Path) -> Result<Self, GuestError> {
        let dir = dir.to_path_buf();
        let linux = dir.join("linux.uml");
        let initramfs = dir.join("initramfs.cpio.gz");
        for (file, path) in [("the UML kernel", &linux), ("the initramfs", &initramfs)] {
            if !path.is_file() {
                return Err(GuestError::Missing {
                    file,
                    path: path.clone(),
                    dir,
                });
            }
        }
        check_init_current(&dir, &initramfs)?;
        Ok(Self {
            dir,
            linux,
            initramfs,
        })
    }

    /// Runs `scripts/build-guest`, which is quick when nothing changed, then locates the guest.
    pub fn ensure() -> Result<Self, GuestError> {
        let script = repository_root().join(BUILD_COMMAND);
        let output = Command::new(&script)
            .output()
            .map_err(|source| GuestError::BuildStart {
                script: script.clone(),
                source,
            })?;
        if !output.status.success() {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            return Err(GuestError::BuildFailed {
                script,
                status: output.status,
                output: tail(&text, 4000),
            });
        }
        Self::locate()
    }
}

/// Returns the repository root, two levels above this crate's manifest.
fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Compares the repository's guest/init with the copy the build script keeps next to the
/// initramfs. A repository without guest/init (an installed crate) skips the comparison.
fn check_init_current(dir: &Path, initramfs: &Path) -> Result<(), GuestError> {
    let source_init = repository_root().join("guest/init");
    let Ok(source) = std::fs::read(&source_init) else {
        return Ok(());
    };
    let built_path = dir.join("init.built");
    let built = std::fs::read(&built_path).map_err(|_| GuestError::Missing {
        file: "the copy of the packed init",
        path: built_path,
        dir: dir.to_path_buf(),
    })?;
    if built != source {
        return Err(GuestError::Stale {
            source_init,
            initramfs: initramfs.to_path_buf(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TempDir;

    #[test]
    fn locate_names_missing_kernel() {
        let dir = TempDir::new("guest").unwrap();
        let error = Guest::locate_in(dir.path()).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, GuestError::Missing { .. }), "{message}");
        assert!(message.contains("linux.uml"), "{message}");
        assert!(message.contains("scripts/build-guest"), "{message}");
    }

    #[test]
    fn locate_names_missing_initramfs() {
        let dir = TempDir::new("guest").unwrap();
        std::fs::write(dir.path().join("linux.uml"), b"").unwrap();
        let message = Guest::locate_in(dir.path()).unwrap_err().to_string();
        assert!(message.contains("initramfs.cpio.gz"), "{message}");
    }

    #[test]
    fn locate_detects_stale_init() {
        let dir = TempDir::new("guest").unwrap();
        std::fs::write(dir.path().join("linux.uml"), b"").unwrap();
        std::fs::write(dir.path().join("initramfs.cpio.gz"), b"").unwrap();
        std::fs::write(dir.path().join("init.built"), b"#!/bin/sh\nan older init\n").unwrap();
        let error = Guest::locate_in(dir.path()).unwrap_err();
        assert!(matches!(error, GuestError::Stale { .. }), "{error}");
    }
}
