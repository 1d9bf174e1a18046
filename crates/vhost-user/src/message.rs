//! Message framing on a vhost-user stream socket: header, payload and attached fds.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use libc::{c_void, iovec};
use vhost::vhost_user::message::MAX_MSG_SIZE;
use vm_memory::ByteValued;
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

use crate::error::{Error, RequestError};

/// Protocol version in the low two flag bits.
pub(crate) const VERSION: u32 = 0x1;
const VERSION_MASK: u32 = 0x3;
/// Set on every reply.
pub(crate) const FLAG_REPLY: u32 = 0x4;
/// The sender wants a reply (REPLY_ACK).
pub(crate) const FLAG_NEED_REPLY: u32 = 0x8;

/// Size of the fd buffer for one read. Linux passes at most 253 fds per message (SCM_MAX_FD),
/// so the control data is never truncated and every received fd is owned and closed by us.
const MAX_FDS_PER_READ: usize = 253;

/// The 12-byte vhost-user message header, in native byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) request: u32,
    pub(crate) flags: u32,
    pub(crate) size: u32,
}

// SAFETY: Header is three u32 fields with repr(C), so it has no padding and every bit pattern
// is a valid value.
unsafe impl ByteValued for Header {}

impl Header {
    pub(crate) fn need_reply(&self) -> bool {
        self.flags & FLAG_NEED_REPLY != 0
    }

    /// Returns the flag bits a request must not carry: the reply bit and reserved bits.
    pub(crate) fn invalid_request_flags(&self) -> u32 {
        self.flags & !(VERSION_MASK | FLAG_NEED_REPLY)
    }
}

/// One received message. Dropping it closes every fd not taken out of it.
#[derive(Debug)]
pub(crate) struct Message {
    pub(crate) header: Header,
    pub(crate) payload: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
}

impl Message {
    /// Reads the payload as `T`, which must be exactly the payload size.
    pub(crate) fn payload_as<T: ByteValued>(&self) -> Result<T, RequestError> {
        check_size(self.payload.len(), std::mem::size_of::<T>())?;
        T::from_slice(&self.payload)
            .copied()
            .ok_or(RequestError::PayloadSize {
                expected: std::mem::size_of::<T>(),
                actual: self.payload.len(),
            })
    }

    /// Checks that the payload is empty.
    pub(crate) fn expect_empty(&self) -> Result<(), RequestError> {
        check_size(self.payload.len(), 0)
    }

    /// Takes exactly `expected` fds out of the message.
    pub(crate) fn take_fds(&mut self, expected: usize) -> Result<Vec<OwnedFd>, RequestError> {
        if self.fds.len() != expected {
            return Err(RequestError::FdCount {
                expected,
                actual: self.fds.len(),
            });
        }
        Ok(std::mem::take(&mut self.fds))
    }
}

fn check_size(actual: usize, expected: usize) -> Result<(), RequestError> {
    if actual == expected {
        Ok(())
    } else {
        Err(RequestError::PayloadSize { expected, actual })
    }
}

/// Reads one message: the header, then exactly the payload it announces, keeping every fd.
///
/// The whole message must arrive within `timeout` of the call, however the frontend splits it,
/// so a peer that sends a byte now and then cannot hold the caller.
pub(crate) fn read_message(stream: &UnixStream, timeout: Duration) -> Result<Message, Error> {
    let deadline = Deadline {
        end: Instant::now() + timeout,
        timeout,
    };
    let mut fds = Vec::new();
    let mut header = Header::default();
    let first = recv_exact(stream, header.as_mut_slice(), &mut fds, deadline, true)?;
    if !first {
        return Err(Error::Disconnected);
    }
    let version = header.flags & VERSION_MASK;
    if version != VERSION {
        return Err(Error::BadVersion(version));
    }
    if header.size as usize > MAX_MSG_SIZE {
        return Err(Error::OversizedPayload {
            size: header.size,
            max: MAX_MSG_SIZE,
        });
    }
    let mut payload = vec![0u8; header.size as usize];
    recv_exact(stream, &mut payload, &mut fds, deadline, false)?;
    Ok(Message {
        header,
        payload,
        fds,
    })
}

/// The time by which the message being read must be complete.
#[derive(Clone, Copy)]
struct Deadline {
    end: Instant,
    timeout: Duration,
}

impl Deadline {
    /// Waits until the socket is readable, failing once the deadline has passed.
    fn wait_readable(&self, stream: &UnixStream) -> Result<(), Error> {
        loop {
            let left = self.end.saturating_duration_since(Instant::now());
            // Round up, so the last poll does not return just before the deadline.
            let millis = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
            let ready =
                poll_for(stream.as_raw_fd(), libc::POLLIN, millis).map_err(Error::Socket)?;
            if left.is_zero() || !ready {
                if Instant::now() >= self.end {
                    return Err(Error::ReadTimeout {
                        timeout: self.timeout,
                    });
                }
                continue;
            }
            return Ok(());
        }
    }
}

/// Fills `buf` from the socket, collecting attached fds. Returns `false` on a clean EOF before
/// the first byte when `eof_ok` is set.
fn recv_exact(
    stream: &UnixStream,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    deadline: Deadline,
    eof_ok: bool,
) -> Result<bool, Error> {
    let mut filled = 0;
    while filled < buf.len() {
        deadline.wait_readable(stream)?;
        match recv_some(stream, &mut buf[filled..], fds) {
            Ok(0) if filled == 0 && eof_ok => return Ok(false),
            Ok(0) => return Err(Error::Disconnected),
            Ok(count) => filled += count,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) if err.raw_os_error() == Some(libc::ECONNRESET) => {
                return Err(Error::Disconnected)
            }
            Err(err) => return Err(Error::Socket(err)),
        }
    }
    Ok(true)
}

/// One `recvmsg` into `buf`; every fd it delivers is wrapped in an [`OwnedFd`] at once.
fn recv_some(stream: &UnixStream, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
    let mut raw_fds: [RawFd; MAX_FDS_PER_READ] = [-1; MAX_FDS_PER_READ];
    let mut iovecs = [iovec {
        iov_base: buf.as_mut_ptr() as *mut c_void,
        iov_len: buf.len(),
    }];
    // SAFETY: the iovec points into `buf`, which is mutably borrowed for this call and may take
    // arbitrary bytes.
    let result = unsafe { stream.recv_with_fds(&mut iovecs, &mut raw_fds) };
    let (count, fd_count) = result.map_err(|err| io::Error::from_raw_os_error(err.errno()))?;
    for raw in &raw_fds[..fd_count] {
        // SAFETY: recvmsg installed these fds in this process for us; nothing else owns them.
        fds.push(unsafe { OwnedFd::from_raw_fd(*raw) });
    }
    Ok(count)
}

/// Writes a reply: the request code, the REPLY flag and `body` as the payload.
pub(crate) fn write_reply(stream: &UnixStream, request: u32, body: &[u8]) -> Result<(), Error> {
    let header = Header {
        request,
        flags: VERSION | FLAG_REPLY,
        size: body.len() as u32,
    };
    let mut bytes = Vec::with_capacity(std::mem::size_of::<Header>() + body.len());
    bytes.extend_from_slice(header.as_slice());
    bytes.extend_from_slice(body);
    send_all(stream, &bytes).map_err(|err| match err.kind() {
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => Error::Disconnected,
        _ => Error::Socket(err),
    })
}

/// Writes all of `bytes` with MSG_NOSIGNAL, so a closed peer gives EPIPE and no SIGPIPE.
pub(crate) fn send_all(stream: &UnixStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: the pointer and length describe the live `bytes` slice, which send only reads.
        let sent = unsafe {
            libc::send(
                stream.as_raw_fd(),
                bytes.as_ptr() as *const c_void,
                bytes.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if sent < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        bytes = &bytes[sent as usize..];
    }
    Ok(())
}

/// Polls one fd for `events` without waiting. Returns true when any of `events`, or an error
/// or hang-up condition, is pending.
pub(crate) fn poll_now(fd: RawFd, events: libc::c_short) -> io::Result<bool> {
    poll_for(fd, events, 0)
}

/// Polls one fd for `events`, waiting up to `millis`; true when anything is pending.
fn poll_for(fd: RawFd, events: libc::c_short, millis: i32) -> io::Result<bool> {
    Ok(poll_revents(fd, events, millis)? != 0)
}

/// Polls one fd for `events`, waiting up to `millis`, and returns its `revents`.
pub(crate) fn poll_revents(
    fd: RawFd,
    events: libc::c_short,
    millis: i32,
) -> io::Result<libc::c_short> {
    let mut poll_fd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    loop {
        // SAFETY: `poll_fd` is a valid pollfd for the duration of the call and the count is 1.
        let result = unsafe { libc::poll(&mut poll_fd, 1, millis) };
        if result >= 0 {
            return Ok(poll_fd.revents);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}
