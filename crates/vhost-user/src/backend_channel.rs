//! The backend request channel from `SET_BACKEND_REQ_FD`: backend-to-frontend messages.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use vhost::vhost_user::message::BackendReq;
use vm_memory::ByteValued;

use crate::message::{send_all, Header, VERSION};

/// Maximum wait for the frontend to take a backend request.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// The socket the frontend reads backend requests from.
#[derive(Debug)]
pub(crate) struct BackendChannel {
    stream: UnixStream,
}

impl BackendChannel {
    /// Wraps the fd, which must be a stream socket.
    pub(crate) fn new(fd: OwnedFd) -> io::Result<Self> {
        let stream = UnixStream::from(fd);
        // Fails with ENOTSOCK when the frontend passed something other than a socket.
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        Ok(BackendChannel { stream })
    }

    /// Writes `CONFIG_CHANGE_MSG` (code 2) with no payload and no NEED_REPLY.
    pub(crate) fn send_config_change(&self) -> io::Result<()> {
        let header = Header {
            request: BackendReq::CONFIG_CHANGE_MSG.into(),
            flags: VERSION,
            size: 0,
        };
        send_all(&self.stream, header.as_slice())
    }
}
