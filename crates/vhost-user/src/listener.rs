//! The Unix socket listener that frontends connect to.

use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::{Connection, VhostUserDevice};

/// Longest socket path, in bytes, that fits `sockaddr_un.sun_path` with its terminating NUL.
pub const MAX_SOCKET_PATH: usize = 107;

/// Failure to set up the listener or to accept a connection.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// The path does not fit in a Unix socket address.
    #[error("socket path {path} is {length} bytes, longer than the {max} bytes a Unix socket path can have; choose a shorter path", path = .path.display(), max = MAX_SOCKET_PATH)]
    PathTooLong {
        /// Socket path.
        path: PathBuf,
        /// Its length in bytes.
        length: usize,
    },
    /// The socket's folder does not exist.
    #[error("cannot create socket {path}: folder {folder} does not exist; create it or choose another path", path = .path.display(), folder = .folder.display())]
    MissingFolder {
        /// Socket path.
        path: PathBuf,
        /// Its parent folder.
        folder: PathBuf,
    },
    /// A live server already accepts connections on the socket.
    #[error("socket {path} is in use by a running server; stop it or choose another path", path = .0.display())]
    InUse(PathBuf),
    /// Something other than a socket exists at the path.
    #[error("{path} exists and is not a socket; remove it or choose another path", path = .0.display())]
    NotASocket(PathBuf),
    /// Inspecting, probing or removing an existing socket file failed.
    #[error("cannot replace existing socket {path}", path = .path.display())]
    Existing {
        /// Socket path.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// `bind` or `listen` failed.
    #[error("cannot listen on socket {path}", path = .path.display())]
    Bind {
        /// Socket path.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// `accept` failed.
    #[error("accepting a vhost-user connection failed: {0}")]
    Accept(io::Error),
    /// The accepted connection could not be set up.
    #[error("setting up the accepted vhost-user connection failed")]
    Connection(#[source] Error),
}

/// A listening vhost-user socket. Dropping it removes the socket file, unless another process
/// replaced the file meanwhile.
#[derive(Debug)]
pub struct Listener {
    listener: UnixListener,
    path: PathBuf,
    /// Device and inode of the socket file this listener created.
    identity: Option<(u64, u64)>,
}

impl Listener {
    /// Binds a socket at `path`. A stale socket file (one that refuses connections) is
    /// replaced; a live socket or a non-socket file is left alone and reported.
    pub fn bind(path: impl AsRef<Path>) -> Result<Self, ListenerError> {
        let path = path.as_ref().to_path_buf();
        check_length(&path)?;
        check_folder(&path)?;
        remove_stale(&path)?;
        let listener = UnixListener::bind(&path).map_err(|source| match source.kind() {
            io::ErrorKind::AddrInUse => ListenerError::InUse(path.clone()),
            _ => ListenerError::Bind {
                path: path.clone(),
                source,
            },
        })?;
        let identity = fs::symlink_metadata(&path)
            .ok()
            .map(|metadata| (metadata.dev(), metadata.ino()));
        Ok(Listener {
            listener,
            path,
            identity,
        })
    }

    /// Waits for the next frontend and sets up its connection for `device`.
    pub fn accept(&self, device: &impl VhostUserDevice) -> Result<Connection, ListenerError> {
        let (stream, _) = self.listener.accept().map_err(ListenerError::Accept)?;
        Connection::new(stream, device).map_err(ListenerError::Connection)
    }

    /// Path of the socket file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let current = fs::symlink_metadata(&self.path)
            .ok()
            .map(|metadata| (metadata.dev(), metadata.ino()));
        if current.is_some() && current == self.identity {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }
}

fn check_length(path: &Path) -> Result<(), ListenerError> {
    let length = path.as_os_str().len();
    if length <= MAX_SOCKET_PATH {
        return Ok(());
    }
    Err(ListenerError::PathTooLong {
        path: path.to_path_buf(),
        length,
    })
}

fn check_folder(path: &Path) -> Result<(), ListenerError> {
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => return Ok(()),
    };
    if folder.is_dir() {
        return Ok(());
    }
    Err(ListenerError::MissingFolder {
        path: path.to_path_buf(),
        folder: folder.to_path_buf(),
    })
}

/// Removes a socket file nobody listens on. Leaves a live socket and any other file alone.
fn remove_stale(path: &Path) -> Result<(), ListenerError> {
    let existing = |source| ListenerError::Existing {
        path: path.to_path_buf(),
        source,
    };
    let metadata = match fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(existing(err)),
    };
    if !metadata.file_type().is_socket() {
        return Err(ListenerError::NotASocket(path.to_path_buf()));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(ListenerError::InUse(path.to_path_buf())),
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
            fs::remove_file(path).map_err(existing)
        }
        Err(err) => Err(existing(err)),
    }
}
