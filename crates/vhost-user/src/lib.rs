//! Backend side of the vhost-user protocol: a Unix socket listener, the request loop for one
//! frontend connection, guest memory from `SET_MEM_TABLE`, the vrings, and the backend request
//! channel that carries `VHOST_USER_BACKEND_CONFIG_CHANGE_MSG`.
//!
//! The crate contains no device-specific code. A device implements [`VhostUserDevice`];
//! the caller owns the event loop, polls [`Connection`]'s socket and kick fds, calls
//! [`Connection::handle_request`] when the socket is readable, and acts on the returned
//! [`Event`]s.
//!
//! Message layouts and reply rules follow the vhost-user specification (QEMU
//! `docs/interop/vhost-user.rst`); the request codes and payload structs come from
//! [`vhost::vhost_user::message`].

mod backend_channel;
mod connection;
mod dispatch;
mod error;
mod fault;
mod listener;
mod memory;
mod message;
mod requests;
mod vring;
mod vring_requests;

pub use connection::{Connection, MAX_MEM_SLOTS, MESSAGE_TIMEOUT, OFFERED_PROTOCOL_FEATURES};
pub use error::{ConfigChangeError, Error, KickError, RequestError};
pub use fault::{install_fault_handler, take_memory_faults};
pub use listener::{Listener, ListenerError, MAX_SOCKET_PATH};
pub use memory::MemoryError;

pub use vhost::vhost_user::message::VhostUserProtocolFeatures;
pub use virtio_queue::Queue;
pub use vm_memory::GuestMemoryMmap;

/// A virtio device served over vhost-user.
///
/// The connection calls these methods while it handles frontend requests. Config offsets are
/// relative to the start of the device-specific configuration space.
pub trait VhostUserDevice {
    /// Number of virtqueues the device has. The connection accepts ring indexes below this.
    fn num_queues(&self) -> usize;

    /// Maximum size of every virtqueue: a power of two, at most 32768.
    fn max_queue_size(&self) -> u16;

    /// Virtio feature bits the device offers (`VIRTIO_F_VERSION_1` and device bits).
    ///
    /// The connection adds `VHOST_USER_F_PROTOCOL_FEATURES` (bit 30) itself. The device must not
    /// offer `VIRTIO_F_ACCESS_PLATFORM` or `VIRTIO_F_RING_PACKED`: this crate has no IOTLB and
    /// serves split rings only.
    fn device_features(&self) -> u64;

    /// Records the virtio features the frontend acknowledged with `SET_FEATURES`, without bit 30.
    fn ack_features(&mut self, features: u64);

    /// Size in bytes of the device-specific configuration space.
    fn config_size(&self) -> u32;

    /// Fills `data` with the config bytes at `offset..offset + data.len()`.
    ///
    /// The connection calls this only for ranges inside [`Self::config_size`].
    fn read_config(&self, offset: u32, data: &mut [u8]) -> Result<(), ConfigAccessError>;

    /// Writes `data` to the config bytes at `offset`; returns an error for read-only fields.
    ///
    /// The connection calls this only for ranges inside [`Self::config_size`].
    fn write_config(&mut self, offset: u32, data: &[u8]) -> Result<(), ConfigAccessError>;

    /// Returns the device to its initial state after `RESET_DEVICE` or `RESET_OWNER`.
    fn reset(&mut self) {}
}

/// Reason a device rejected a config space access.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigAccessError {
    /// The range lies outside the device's config space.
    #[error("config range {offset}..{end} is outside the {size}-byte device config", end = u64::from(*offset) + *len as u64)]
    OutOfRange {
        /// Offset of the access.
        offset: u32,
        /// Length of the access in bytes.
        len: usize,
        /// Size of the device config space in bytes.
        size: u32,
    },
    /// The range covers a field the driver may not write.
    #[error("config range at offset {offset}, {len} bytes, covers a read-only field")]
    ReadOnly {
        /// Offset of the access.
        offset: u32,
        /// Length of the access in bytes.
        len: usize,
    },
}

/// Returns the specification's name of a frontend request code, such as `GET_CONFIG`, for log
/// lines; `None` for a code the protocol does not define.
pub fn request_name(code: u32) -> Option<String> {
    vhost::vhost_user::message::FrontendReq::try_from(code)
        .ok()
        .map(|request| format!("{request:?}"))
}

/// Something the caller must act on after [`Connection::handle_request`].
#[derive(Debug)]
pub enum Event {
    /// The ring became ready to process: started, enabled, memory mapped, rings inside memory.
    VringReady(usize),
    /// The ring must no longer be processed (stopped, disabled, reset or its memory went away).
    VringStopped(usize),
    /// The ring's kick fd was replaced or removed: re-register it with the poller.
    KickChanged(usize),
    /// `SET_STATUS` set `DRIVER_OK` (only frontends that negotiate the STATUS feature send it).
    DriverOk,
    /// `RESET_DEVICE` or `RESET_OWNER` reset the device and all rings.
    Reset,
    /// The guest memory map changed (`SET_MEM_TABLE`, `ADD_MEM_REG` or `REM_MEM_REG`).
    MemoryChanged,
    /// A request was rejected and got the reply the specification prescribes. The connection
    /// goes on. The crate does not log it: the caller does, with its own ids and rate limit.
    Rejected {
        /// Request code from the message header.
        request: u32,
        /// Reason for the rejection.
        error: RequestError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_name_uses_spec_names() {
        assert_eq!(request_name(24).as_deref(), Some("GET_CONFIG"));
        assert_eq!(request_name(1).as_deref(), Some("GET_FEATURES"));
        assert_eq!(request_name(9999), None);
    }
}
