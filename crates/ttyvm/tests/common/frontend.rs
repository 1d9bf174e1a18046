//! A raw vhost-user frontend for the tests: just enough requests to set up a ring whose fds the
//! test chooses, sent with SCM_RIGHTS by hand.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

const SET_FEATURES: u32 = 2;
const SET_MEM_TABLE: u32 = 5;
const SET_VRING_NUM: u32 = 8;
const SET_VRING_ADDR: u32 = 9;
const SET_VRING_KICK: u32 = 12;
const VERSION: u32 = 1;
const VIRTIO_F_VERSION_1: u64 = 1 << 32;
/// Size of the guest memory the frontend shares.
const MEMORY_SIZE: u64 = 1 << 20;

/// A connected frontend; dropping it closes the connection.
pub struct RawFrontend {
    stream: UnixStream,
    _memory: OwnedFd,
}

impl RawFrontend {
    /// Connects to `socket`, negotiates VERSION_1 only (so a ring starts enabled) and shares
    /// 1 MiB of guest memory.
    pub fn connect(socket: &Path) -> RawFrontend {
        let stream = UnixStream::connect(socket).expect("connect to the server");
        let memory = memfd(MEMORY_SIZE);
        let frontend = RawFrontend {
            stream,
            _memory: memory,
        };
        frontend.send(SET_FEATURES, &VIRTIO_F_VERSION_1.to_ne_bytes(), &[]);
        let mut table = Vec::new();
        table.extend_from_slice(&1u32.to_ne_bytes());
        table.extend_from_slice(&0u32.to_ne_bytes());
        for value in [0, MEMORY_SIZE, 0, 0u64] {
            table.extend_from_slice(&value.to_ne_bytes());
        }
        frontend.send(SET_MEM_TABLE, &table, &[frontend._memory.as_raw_fd()]);
        frontend
    }

    /// Sets up ring `index` with 8 entries in guest memory and `kick` as its kick fd.
    pub fn start_ring(&self, index: u32, kick: RawFd) {
        let state = [index.to_ne_bytes(), 8u32.to_ne_bytes()].concat();
        self.send(SET_VRING_NUM, &state, &[]);
        let mut addr = Vec::new();
        addr.extend_from_slice(&index.to_ne_bytes());
        addr.extend_from_slice(&0u32.to_ne_bytes());
        // Descriptor table, used ring, available ring, log address.
        for value in [0u64, 0x1000, 0x800, 0] {
            addr.extend_from_slice(&value.to_ne_bytes());
        }
        self.send(SET_VRING_ADDR, &addr, &[]);
        self.send(SET_VRING_KICK, &u64::from(index).to_ne_bytes(), &[kick]);
    }

    /// Returns whether the server still has the connection open.
    pub fn connected(&self) -> bool {
        let mut poll_fd = libc::pollfd {
            fd: self.stream.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `poll_fd` is valid for the call and the count is 1.
        let ready = unsafe { libc::poll(&mut poll_fd, 1, 0) };
        ready == 0
    }

    fn send(&self, request: u32, payload: &[u8], fds: &[RawFd]) {
        let mut bytes = Vec::new();
        for word in [request, VERSION, payload.len() as u32] {
            bytes.extend_from_slice(&word.to_ne_bytes());
        }
        bytes.extend_from_slice(payload);
        if fds.is_empty() {
            (&self.stream).write_all(&bytes).expect("send request");
        } else {
            send_with_fds(&self.stream, &bytes, fds);
        }
    }
}

/// Sends `bytes` in one sendmsg with `fds` attached.
fn send_with_fds(stream: &UnixStream, bytes: &[u8], fds: &[RawFd]) {
    let fds_len = std::mem::size_of_val(fds) as u32;
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(fds_len) } as usize;
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = &mut iov;
    header.msg_iovlen = 1;
    header.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    header.msg_controllen = space as _;
    // SAFETY: the control buffer holds CMSG_SPACE(fds_len) bytes, so the first header and its
    // data fit; the data copy writes exactly `fds_len` bytes into it.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&header);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(fds_len) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg) as *mut RawFd, fds.len());
    }
    // SAFETY: `header` points at live buffers (`iov`, `bytes`, `control`) for the call.
    let sent = unsafe { libc::sendmsg(stream.as_raw_fd(), &header, libc::MSG_NOSIGNAL) };
    assert_eq!(sent, bytes.len() as isize, "sendmsg failed");
}

fn memfd(size: u64) -> OwnedFd {
    // SAFETY: the name is a valid NUL-terminated string and the flags are valid.
    let fd = unsafe { libc::memfd_create(c"ttyvm-test-memory".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create failed");
    // SAFETY: memfd_create returned a new fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ftruncate on an fd we own, to a size that fits in off_t.
    assert_eq!(unsafe { libc::ftruncate(fd.as_raw_fd(), size as i64) }, 0);
    fd
}
