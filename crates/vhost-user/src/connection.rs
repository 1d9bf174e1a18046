//! One frontend connection: its socket, negotiated features, memory, vrings and backend
//! request channel.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use log::debug;
use vhost::vhost_user::message::VhostUserProtocolFeatures;
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;

use crate::backend_channel::BackendChannel;
use crate::error::{ConfigChangeError, Error, KickError};
use crate::memory::MemoryMap;
use crate::message::{poll_now, read_message};
use crate::vring::Vring;
use crate::{Event, VhostUserDevice};

/// Protocol features this backend offers in `GET_PROTOCOL_FEATURES`.
pub const OFFERED_PROTOCOL_FEATURES: VhostUserProtocolFeatures = VhostUserProtocolFeatures::MQ
    .union(VhostUserProtocolFeatures::REPLY_ACK)
    .union(VhostUserProtocolFeatures::BACKEND_REQ)
    .union(VhostUserProtocolFeatures::CONFIG)
    .union(VhostUserProtocolFeatures::RESET_DEVICE)
    .union(VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS)
    .union(VhostUserProtocolFeatures::STATUS);

/// Memory slots reported by `GET_MAX_MEM_SLOTS`, and the region limit of every memory table.
pub const MAX_MEM_SLOTS: usize = 32;

/// Default limit for reading one whole message once its first byte arrived, and for a reply
/// write.
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(5);

/// Virtio device status bit `DRIVER_OK`.
pub(crate) const STATUS_DRIVER_OK: u8 = 4;

/// The backend side of one vhost-user connection.
///
/// Call [`Connection::handle_request`] whenever the socket ([`AsFd`]) is readable.
#[derive(Debug)]
pub struct Connection {
    pub(crate) stream: UnixStream,
    pub(crate) offered_features: u64,
    pub(crate) acked_features: u64,
    pub(crate) protocol_features: VhostUserProtocolFeatures,
    pub(crate) status: u8,
    pub(crate) memory: MemoryMap,
    pub(crate) vrings: Vec<Vring>,
    pub(crate) max_queue_size: u16,
    pub(crate) backend_channel: Option<BackendChannel>,
    pub(crate) message_timeout: Duration,
}

impl Connection {
    /// Wraps an accepted (or paired) stream for `device`, whose queue count and maximum queue
    /// size fix the vrings of this connection.
    pub fn new(stream: UnixStream, device: &impl VhostUserDevice) -> Result<Self, Error> {
        let num_queues = device.num_queues();
        let max_queue_size = device.max_queue_size();
        let invalid = Error::InvalidDevice {
            num_queues,
            max_queue_size,
        };
        if num_queues == 0 || num_queues > 256 {
            return Err(invalid);
        }
        let mut vrings = Vec::with_capacity(num_queues);
        for _ in 0..num_queues {
            let queue = Queue::new(max_queue_size).map_err(|_| Error::InvalidDevice {
                num_queues,
                max_queue_size,
            })?;
            vrings.push(Vring::new(queue));
        }
        stream
            .set_read_timeout(Some(MESSAGE_TIMEOUT))
            .map_err(Error::Socket)?;
        stream
            .set_write_timeout(Some(MESSAGE_TIMEOUT))
            .map_err(Error::Socket)?;
        Ok(Connection {
            stream,
            offered_features: device.device_features()
                | vhost::vhost_user::VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits(),
            acked_features: 0,
            protocol_features: VhostUserProtocolFeatures::empty(),
            status: 0,
            memory: MemoryMap::default(),
            vrings,
            max_queue_size,
            backend_channel: None,
            message_timeout: MESSAGE_TIMEOUT,
        })
    }

    /// Reads and serves exactly one request, and returns the events the caller must act on.
    ///
    /// Call it when the socket is readable. With nothing pending it returns no events at once;
    /// once a message has begun, all of it (header, payload and fds) must arrive within the
    /// message timeout ([`MESSAGE_TIMEOUT`] unless [`Connection::set_message_timeout`] changed
    /// it), or this returns [`Error::ReadTimeout`].
    /// A rejected request is answered per the specification and returned as
    /// [`Event::Rejected`]. An `Err` means the connection is over ([`Error::Disconnected`] when
    /// the frontend closed it); drop the connection then.
    pub fn handle_request(
        &mut self,
        device: &mut impl VhostUserDevice,
    ) -> Result<Vec<Event>, Error> {
        if !poll_now(self.stream.as_raw_fd(), libc::POLLIN).map_err(Error::Socket)? {
            return Ok(Vec::new());
        }
        let message = read_message(&self.stream, self.message_timeout)?;
        let ready_before = self.ready_flags();
        let mut events = Vec::new();
        self.dispatch(device, message, &mut events)?;
        for (index, (before, after)) in ready_before.into_iter().zip(self.ready_flags()).enumerate()
        {
            match (before, after) {
                (false, true) => events.push(Event::VringReady(index)),
                (true, false) => events.push(Event::VringStopped(index)),
                _ => {}
            }
        }
        Ok(events)
    }

    /// Sets the limit for reading one whole message and for writing one reply.
    pub fn set_message_timeout(&mut self, timeout: Duration) -> Result<(), Error> {
        self.stream
            .set_read_timeout(Some(timeout))
            .map_err(Error::Socket)?;
        self.stream
            .set_write_timeout(Some(timeout))
            .map_err(Error::Socket)?;
        self.message_timeout = timeout;
        Ok(())
    }

    /// Shuts the socket down in both directions, so the frontend reads the connection's end and the
    /// next [`Connection::handle_request`] returns [`Error::Disconnected`].
    pub fn shutdown(&self) {
        // A socket the peer already closed has nothing left to shut down.
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    /// Sends `VHOST_USER_BACKEND_CONFIG_CHANGE_MSG` on the backend request channel, so the
    /// driver re-reads the device config.
    ///
    /// The message goes without NEED_REPLY, so this waits for no reply. A frontend that stops
    /// reading its end can still hold the write up to the channel's write timeout, and a failed
    /// write drops the channel.
    pub fn send_config_change(&mut self) -> Result<(), ConfigChangeError> {
        if !self
            .protocol_features
            .contains(VhostUserProtocolFeatures::CONFIG)
        {
            return Err(ConfigChangeError::NotNegotiated("CONFIG"));
        }
        if !self
            .protocol_features
            .contains(VhostUserProtocolFeatures::BACKEND_REQ)
        {
            return Err(ConfigChangeError::NotNegotiated("BACKEND_REQ"));
        }
        let channel = self
            .backend_channel
            .as_ref()
            .ok_or(ConfigChangeError::NoChannel)?;
        let result = channel.send_config_change();
        if result.is_err() {
            self.backend_channel = None;
        }
        result.map_err(ConfigChangeError::Send)
    }

    /// Signals the ring's call fd so the driver looks at the used ring.
    ///
    /// Without a call fd this only logs at debug level. A call fd that cannot take a write
    /// without blocking already has a notification pending, so this returns `Ok` then too.
    pub fn signal_used(&self, queue: usize) -> io::Result<()> {
        let vring = self.vring(queue)?;
        if !vring.signal_call()? {
            debug!("vhost-user: vring {queue} has no call fd; used buffers not signalled");
        }
        Ok(())
    }

    /// Reads a pending kick from the ring's kick fd without blocking; returns whether one was
    /// pending.
    ///
    /// An error other than [`KickError::VringIndex`] means the kick fd is broken: it hung up or
    /// reads end of file, so polling it again would report it ready at once, forever. Drop the
    /// connection then.
    pub fn consume_kick(&self, queue: usize) -> Result<bool, KickError> {
        let vring = self.vrings.get(queue).ok_or(KickError::VringIndex {
            index: queue,
            num_queues: self.vrings.len(),
        })?;
        vring.consume_kick(queue)
    }

    /// Guest memory from the last memory table, if any.
    pub fn memory(&self) -> Option<&GuestMemoryMmap<()>> {
        self.memory.guest()
    }

    /// Returns the ring's queue.
    pub fn queue(&self, queue: usize) -> Option<&Queue> {
        self.vrings.get(queue).map(|vring| &vring.queue)
    }

    /// Returns the ring's queue, mutable.
    pub fn queue_mut(&mut self, queue: usize) -> Option<&mut Queue> {
        self.vrings.get_mut(queue).map(|vring| &mut vring.queue)
    }

    /// Returns the ring's queue and the guest memory together, when the ring is ready to
    /// process.
    pub fn queue_and_memory(&mut self, queue: usize) -> Option<(&mut Queue, &GuestMemoryMmap<()>)> {
        let memory = self.memory.guest()?;
        let vring = self.vrings.get_mut(queue)?;
        vring
            .is_ready(Some(memory))
            .then_some((&mut vring.queue, memory))
    }

    /// Returns the guest memory and every ring's queue at once, for devices that move data
    /// between rings. A queue is `Some` only while its ring is ready to process, and the whole
    /// result is `None` while no memory table has been set.
    pub fn ready_queues_mut(&mut self) -> Option<(&GuestMemoryMmap<()>, Vec<Option<&mut Queue>>)> {
        let memory = self.memory.guest()?;
        let queues = self
            .vrings
            .iter_mut()
            .map(|vring| {
                let ready = vring.is_ready(Some(memory));
                ready.then_some(&mut vring.queue)
            })
            .collect();
        Some((memory, queues))
    }

    /// Returns the ring's kick fd to poll, if the frontend set one.
    pub fn kick_fd(&self, queue: usize) -> Option<BorrowedFd<'_>> {
        self.vrings
            .get(queue)?
            .kick
            .as_ref()
            .map(|kick| kick.as_fd())
    }

    /// Returns whether the ring is started, enabled, and its rings lie in mapped memory.
    pub fn vring_ready(&self, queue: usize) -> bool {
        self.vrings
            .get(queue)
            .is_some_and(|vring| vring.is_ready(self.memory.guest()))
    }

    /// Number of vrings.
    pub fn num_queues(&self) -> usize {
        self.vrings.len()
    }

    /// Returns whether the last `SET_STATUS` had `DRIVER_OK` set.
    pub fn driver_ok(&self) -> bool {
        self.status & STATUS_DRIVER_OK != 0
    }

    /// Device status from the last `SET_STATUS` (0 if none came).
    pub fn status(&self) -> u8 {
        self.status
    }

    /// Virtio features from `SET_FEATURES`, including bit 30 when the frontend set it.
    pub fn acked_features(&self) -> u64 {
        self.acked_features
    }

    /// Protocol features from `SET_PROTOCOL_FEATURES`.
    pub fn protocol_features(&self) -> VhostUserProtocolFeatures {
        self.protocol_features
    }

    /// Returns whether the frontend handed over a backend request channel.
    pub fn has_backend_channel(&self) -> bool {
        self.backend_channel.is_some()
    }

    fn vring(&self, queue: usize) -> io::Result<&Vring> {
        self.vrings.get(queue).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "vring index {queue} out of range: {} queues",
                    self.vrings.len()
                ),
            )
        })
    }

    pub(crate) fn ready_flags(&self) -> Vec<bool> {
        let memory = self.memory.guest();
        self.vrings
            .iter()
            .map(|vring| vring.is_ready(memory))
            .collect()
    }
}

impl AsFd for Connection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

impl AsRawFd for Connection {
    fn as_raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }
}
