//! Error types of the connection.

use std::io;
use std::time::Duration;

use crate::memory::MemoryError;
use crate::ConfigAccessError;

/// A failure that ends the connection: the caller drops the [`crate::Connection`] and may
/// accept the next one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The frontend closed the socket.
    #[error("vhost-user frontend disconnected")]
    Disconnected,
    /// Reading or writing the frontend socket failed.
    #[error("vhost-user socket I/O failed")]
    Socket(#[source] io::Error),
    /// The frontend began a message and did not send all of it within the message timeout.
    #[error(
        "vhost-user message timed out: the frontend did not send all of it within {timeout:?}, \
         so the connection is closed"
    )]
    ReadTimeout {
        /// The limit for one whole message.
        timeout: Duration,
    },
    /// The header carries a protocol version other than 1.
    #[error("vhost-user message has version {0}, expected 1")]
    BadVersion(u32),
    /// The header announces a payload larger than the protocol maximum.
    #[error("vhost-user message payload of {size} bytes exceeds the maximum of {max}")]
    OversizedPayload {
        /// Announced payload size.
        size: u32,
        /// Maximum payload size.
        max: usize,
    },
    /// A request whose reply carries a body failed, so no valid reply exists.
    #[error("vhost-user request {request} failed and its reply cannot be sent")]
    ReplyImpossible {
        /// Request code.
        request: u32,
        /// Reason for the failure.
        #[source]
        source: RequestError,
    },
    /// The frontend requested something the specification lets the backend close on.
    #[error("vhost-user request {request} is incompatible with this backend")]
    Incompatible {
        /// Request code.
        request: u32,
        /// The incompatible part of the request.
        #[source]
        source: RequestError,
    },
    /// The device reported an unusable queue layout.
    #[error(
        "device reports {num_queues} queues of max size {max_queue_size}: expected 1 to 256 \
         queues and a power-of-two size up to 32768"
    )]
    InvalidDevice {
        /// Number of queues the device reported.
        num_queues: usize,
        /// Maximum queue size the device reported.
        max_queue_size: u16,
    },
}

/// Reason a request was rejected. The connection replies per the specification and goes on.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The request code is not one this backend serves.
    #[error("unsupported request code {0}")]
    Unsupported(u32),
    /// The header has the reply bit or reserved bits set.
    #[error("invalid header flags {0:#x}")]
    InvalidFlags(u32),
    /// The payload size does not match the request.
    #[error("payload is {actual} bytes, expected {expected}")]
    PayloadSize {
        /// Expected payload size, or its minimum for variable payloads.
        expected: usize,
        /// Received payload size.
        actual: usize,
    },
    /// The number of attached fds does not match the request.
    #[error("{actual} file descriptors attached, expected {expected}")]
    FdCount {
        /// Expected number of fds.
        expected: usize,
        /// Received number of fds.
        actual: usize,
    },
    /// The vring index is not below the device's queue count.
    #[error("vring index {index} out of range: the device has {num_queues} queues")]
    VringIndex {
        /// Requested index.
        index: u64,
        /// Number of queues.
        num_queues: usize,
    },
    /// The queue size is zero, not a power of two, or above the maximum.
    #[error("queue size {size} is invalid: expected a power of two from 1 to {max}")]
    QueueSize {
        /// Requested size.
        size: u32,
        /// Device maximum.
        max: u16,
    },
    /// A value in the payload is out of its allowed range.
    #[error("invalid {field} value {value:#x}")]
    InvalidValue {
        /// Which field.
        field: &'static str,
        /// Received value.
        value: u64,
    },
    /// A ring address is not inside any memory region, or the ring does not fit in memory.
    #[error("ring address {address:#x} ({ring}) does not translate to guest memory")]
    RingAddress {
        /// Which ring area.
        ring: &'static str,
        /// Frontend (user) address.
        address: u64,
    },
    /// `SET_VRING_ADDR` arrived before any memory table.
    #[error("ring addresses set before any memory table")]
    NoMemory,
    /// The memory table could not be applied.
    #[error("memory table rejected")]
    Memory(#[source] MemoryError),
    /// The config range is invalid for the protocol or the device.
    #[error("config access rejected")]
    Config(#[source] ConfigAccessError),
    /// The config payload header is inconsistent.
    #[error("config access of {size} bytes at offset {offset} with flags {flags:#x} is invalid")]
    ConfigHeader {
        /// Offset.
        offset: u32,
        /// Size.
        size: u32,
        /// Flags.
        flags: u32,
    },
    /// The request needs a feature the frontend did not negotiate.
    #[error("request needs the {0} feature, which was not negotiated")]
    NotNegotiated(&'static str),
    /// The frontend acknowledged features this backend did not offer.
    #[error("features {requested:#x} include bits not offered ({offered:#x})")]
    FeaturesNotOffered {
        /// Requested features.
        requested: u64,
        /// Offered features.
        offered: u64,
    },
    /// The kick fd is not an eventfd, so it cannot be polled for kicks.
    #[error(
        "kick fd of vring {index} is {target}, not an eventfd; the frontend must pass an \
         eventfd or set the no-fd bit"
    )]
    KickNotEventfd {
        /// Ring index.
        index: usize,
        /// What the fd refers to, as /proc/self/fd names it.
        target: String,
    },
    /// The backend request channel fd is not a usable socket.
    #[error("backend request fd is not a usable socket")]
    BackendChannel(#[source] io::Error),
}

impl RequestError {
    /// Returns whether the specification lets the backend close the connection on this error.
    pub(crate) fn closes_connection(&self) -> bool {
        matches!(self, RequestError::FeaturesNotOffered { .. })
    }
}

/// Failure of [`crate::Connection::consume_kick`]. Every variant but `VringIndex` means the
/// kick fd can never deliver a kick again: drop the connection rather than poll it.
#[derive(Debug, thiserror::Error)]
pub enum KickError {
    /// The ring index is not below the queue count.
    #[error("vring index {index} out of range: the device has {num_queues} queues")]
    VringIndex {
        /// Requested index.
        index: usize,
        /// Number of queues.
        num_queues: usize,
    },
    /// poll(2) reported a hang-up, an error or an invalid fd.
    #[error("kick fd of vring {queue} hung up or failed (poll revents {revents:#x})")]
    HungUp {
        /// Ring index.
        queue: usize,
        /// The poll(2) `revents` bits.
        revents: i16,
    },
    /// The kick fd was readable but read 0 bytes: end of file.
    #[error("kick fd of vring {queue} read end of file, so it is not an eventfd")]
    EndOfFile {
        /// Ring index.
        queue: usize,
    },
    /// Reading the kick fd failed.
    #[error("reading the kick fd of vring {queue} failed")]
    Read {
        /// Ring index.
        queue: usize,
        /// The failure.
        #[source]
        source: io::Error,
    },
}

impl KickError {
    /// Bits of poll(2) `revents` that mean a kick fd is broken.
    pub const BROKEN: i16 = libc::POLLHUP | libc::POLLERR | libc::POLLNVAL;
}

/// Failure of [`crate::Connection::send_config_change`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigChangeError {
    /// The frontend never sent `SET_BACKEND_REQ_FD`.
    #[error("the frontend has not set up a backend request channel")]
    NoChannel,
    /// A protocol feature the message needs was not negotiated.
    #[error("protocol feature {0} was not negotiated, so the frontend cannot take config changes")]
    NotNegotiated(&'static str),
    /// Writing to the channel failed; the channel is dropped.
    #[error("writing the config change message to the backend channel failed")]
    Send(#[source] io::Error),
}
