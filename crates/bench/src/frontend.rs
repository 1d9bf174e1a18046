//! A minimal vhost-user frontend: just enough of a driver to bring `ttyvm serve` to the point
//! where it sends config-change messages, with the backend request channel read directly.
//!
//! It negotiates VIRTIO_F_VERSION_1 and VIRTIO_CONSOLE_F_SIZE, the CONFIG, BACKEND_REQ and
//! (when offered) REPLY_ACK protocol features, maps a memfd as guest memory, and enables both
//! rings with empty available rings, so the server moves no data.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use vhost::vhost_user::message::{BackendReq, VhostUserHeaderFlag, VhostUserProtocolFeatures};
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// VIRTIO_F_VERSION_1.
const VIRTIO_F_VERSION_1: u64 = 1 << 32;
/// VHOST_USER_F_PROTOCOL_FEATURES.
const VHOST_USER_F_PROTOCOL_FEATURES: u64 = 1 << 30;
/// VIRTIO_CONSOLE_F_SIZE: the device reports cols and rows in its config space.
const VIRTIO_CONSOLE_F_SIZE: u64 = 1 << 0;
/// The console's two queues: receiveq and transmitq.
const NUM_QUEUES: usize = 2;
const QUEUE_SIZE: u16 = 16;
/// The guest memory: one memfd region with both rings in it.
const MEMORY_SIZE: u64 = 0x10_0000;
const GUEST_BASE: u64 = 0x10_0000;
/// The frontend user address of the region; only the backend's address translation uses it.
const USER_BASE: u64 = 0x7f00_0000_0000;
/// The space each ring takes: descriptors, then the available ring at 4 KiB, the used at 8 KiB.
const RING_STRIDE: u64 = 0x4000;
/// The size of a vhost-user message header: request, flags and payload size, each a u32.
const HEADER_SIZE: usize = 12;

/// Failures of the frontend.
#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    /// A vhost-user request failed.
    #[error("vhost-user {request} to the server failed: {source}")]
    Request {
        /// The request.
        request: &'static str,
        /// The error.
        #[source]
        source: vhost::Error,
    },
    /// The server does not offer a feature the measurement needs.
    #[error("the server does not offer {0}, which config-change messages need")]
    MissingFeature(&'static str),
    /// A system call on the frontend's own descriptors failed.
    #[error("{action} failed")]
    Io {
        /// What failed.
        action: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The backend request channel carried something other than a config change.
    #[error("the server sent backend request {request} (flags {flags:#x}) where a config change (2) was expected")]
    UnexpectedRequest {
        /// The request code.
        request: u32,
        /// The header flags.
        flags: u32,
    },
}

fn request_error(request: &'static str) -> impl FnOnce(vhost::Error) -> FrontendError {
    move |source| FrontendError::Request { request, source }
}

fn io_error(action: &'static str) -> impl FnOnce(std::io::Error) -> FrontendError {
    move |source| FrontendError::Io { action, source }
}

/// A connected frontend with both rings enabled.
pub struct MiniFrontend {
    /// Kept so the connection stays open.
    _frontend: Frontend,
    /// The frontend's end of the backend request channel.
    requests: UnixStream,
    _memory: File,
    _eventfds: Vec<EventFd>,
}

impl MiniFrontend {
    /// Connects to the server listening on `socket` and brings the device up.
    pub fn connect(socket: &Path) -> Result<Self, FrontendError> {
        let mut frontend =
            Frontend::connect(socket, NUM_QUEUES as u64).map_err(request_error("connect"))?;
        negotiate(&mut frontend)?;
        let (backend_end, requests) = UnixStream::pair().map_err(io_error("socketpair"))?;
        frontend
            .set_backend_request_fd(&backend_end)
            .map_err(request_error("SET_BACKEND_REQ_FD"))?;
        drop(backend_end);
        let memory = memfd(MEMORY_SIZE)?;
        let eventfds = setup_rings(&mut frontend, &memory)?;
        Ok(MiniFrontend {
            _frontend: frontend,
            requests,
            _memory: memory,
            _eventfds: eventfds,
        })
    }

    /// Waits up to `timeout` for a backend request and returns whether a config change
    /// arrived in time; any other request is an error.
    pub fn wait_config_change(&mut self, timeout: Duration) -> Result<bool, FrontendError> {
        if !poll_readable(self.requests.as_raw_fd(), timeout).map_err(io_error("poll"))? {
            return Ok(false);
        }
        let mut header = [0u8; HEADER_SIZE];
        self.requests
            .read_exact(&mut header)
            .map_err(io_error("reading a backend request header"))?;
        let word = |index: usize| {
            let bytes = [0, 1, 2, 3].map(|offset| header[index * 4 + offset]);
            u32::from_ne_bytes(bytes)
        };
        let (request, flags, size) = (word(0), word(1), word(2));
        let mut payload = vec![0u8; size as usize];
        self.requests
            .read_exact(&mut payload)
            .map_err(io_error("reading a backend request payload"))?;
        if request != u32::from(BackendReq::CONFIG_CHANGE_MSG) {
            return Err(FrontendError::UnexpectedRequest { request, flags });
        }
        Ok(true)
    }
}

fn negotiate(frontend: &mut Frontend) -> Result<(), FrontendError> {
    frontend.set_owner().map_err(request_error("SET_OWNER"))?;
    let offered = frontend
        .get_features()
        .map_err(request_error("GET_FEATURES"))?;
    let wanted = VIRTIO_F_VERSION_1 | VHOST_USER_F_PROTOCOL_FEATURES | VIRTIO_CONSOLE_F_SIZE;
    for (bit, name) in [
        (
            VHOST_USER_F_PROTOCOL_FEATURES,
            "VHOST_USER_F_PROTOCOL_FEATURES",
        ),
        (VIRTIO_CONSOLE_F_SIZE, "VIRTIO_CONSOLE_F_SIZE"),
    ] {
        if offered & bit == 0 {
            return Err(FrontendError::MissingFeature(name));
        }
    }
    frontend
        .set_features(offered & wanted)
        .map_err(request_error("SET_FEATURES"))?;
    let protocol = frontend
        .get_protocol_features()
        .map_err(request_error("GET_PROTOCOL_FEATURES"))?;
    for (feature, name) in [
        (
            VhostUserProtocolFeatures::CONFIG,
            "the CONFIG protocol feature",
        ),
        (
            VhostUserProtocolFeatures::BACKEND_REQ,
            "the BACKEND_REQ protocol feature",
        ),
    ] {
        if !protocol.contains(feature) {
            return Err(FrontendError::MissingFeature(name));
        }
    }
    let acked = protocol
        & (VhostUserProtocolFeatures::CONFIG
            | VhostUserProtocolFeatures::BACKEND_REQ
            | VhostUserProtocolFeatures::REPLY_ACK);
    frontend
        .set_protocol_features(acked)
        .map_err(request_error("SET_PROTOCOL_FEATURES"))?;
    if acked.contains(VhostUserProtocolFeatures::REPLY_ACK) {
        // Every request is then acked, so setup has finished when connect returns.
        frontend.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
    }
    Ok(())
}

/// Announces the memory and enables both rings; returns their kick and call eventfds.
fn setup_rings(frontend: &mut Frontend, memory: &File) -> Result<Vec<EventFd>, FrontendError> {
    let region = VhostUserMemoryRegionInfo {
        guest_phys_addr: GUEST_BASE,
        memory_size: MEMORY_SIZE,
        userspace_addr: USER_BASE,
        mmap_offset: 0,
        mmap_handle: memory.as_raw_fd(),
    };
    frontend
        .set_mem_table(&[region])
        .map_err(request_error("SET_MEM_TABLE"))?;
    let mut eventfds = Vec::new();
    for queue in 0..NUM_QUEUES {
        let base = USER_BASE + queue as u64 * RING_STRIDE;
        let config = VringConfigData {
            queue_max_size: QUEUE_SIZE,
            queue_size: QUEUE_SIZE,
            flags: 0,
            desc_table_addr: base,
            avail_ring_addr: base + 0x1000,
            used_ring_addr: base + 0x2000,
            log_addr: None,
        };
        let call = EventFd::new(EFD_NONBLOCK).map_err(io_error("creating a call eventfd"))?;
        let kick = EventFd::new(EFD_NONBLOCK).map_err(io_error("creating a kick eventfd"))?;
        frontend
            .set_vring_num(queue, QUEUE_SIZE)
            .map_err(request_error("SET_VRING_NUM"))?;
        frontend
            .set_vring_base(queue, 0)
            .map_err(request_error("SET_VRING_BASE"))?;
        frontend
            .set_vring_addr(queue, &config)
            .map_err(request_error("SET_VRING_ADDR"))?;
        frontend
            .set_vring_call(queue, &call)
            .map_err(request_error("SET_VRING_CALL"))?;
        frontend
            .set_vring_kick(queue, &kick)
            .map_err(request_error("SET_VRING_KICK"))?;
        frontend
            .set_vring_enable(queue, true)
            .map_err(request_error("SET_VRING_ENABLE"))?;
        eventfds.extend([call, kick]);
    }
    Ok(eventfds)
}

fn memfd(size: u64) -> Result<File, FrontendError> {
    // SAFETY: the name is a NUL-terminated literal and the flags are valid.
    let fd = unsafe { libc::memfd_create(c"ttyvm-bench-memory".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io_error("memfd_create")(std::io::Error::last_os_error()));
    }
    // SAFETY: memfd_create returned a new descriptor that nothing else owns.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(size).map_err(io_error("sizing the memfd"))?;
    Ok(file)
}

/// Waits up to `timeout` for `fd` to be readable and returns whether it became readable.
pub fn poll_readable(fd: i32, timeout: Duration) -> std::io::Result<bool> {
    let mut entry = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    loop {
        // SAFETY: `entry` is one valid pollfd that outlives the call, and the count is 1.
        let ready = unsafe { libc::poll(&mut entry, 1, millis) };
        if ready >= 0 {
            return Ok(ready > 0);
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}
