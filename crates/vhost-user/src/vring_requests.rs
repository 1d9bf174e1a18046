//! Handlers for the per-ring requests.

use std::fs::File;

use vhost::vhost_user::message::{VhostUserU64, VhostUserVringAddr, VhostUserVringState};
use vhost::vhost_user::VhostUserVirtioFeatures;
use virtio_queue::QueueT;

use crate::dispatch::Reply;
use crate::error::RequestError;
use crate::message::Message;
use crate::vring::{check_eventfd, RingAddresses, Vring};
use crate::{Connection, Event};

/// Bits 0-7 of a SET_VRING_KICK/CALL/ERR payload: the ring index.
const VRING_INDEX_MASK: u64 = 0xff;
/// Bit 8: no fd attached; the frontend polls (call, err) or wants polling (kick).
const VRING_NOFD: u64 = 0x100;

impl Connection {
    pub(crate) fn set_vring_num(&mut self, message: &Message) -> Result<Reply, RequestError> {
        let state = message.payload_as::<VhostUserVringState>()?;
        let max = self.max_queue_size;
        let size = state.num;
        let vring = self.vring_mut(u64::from(state.index))?;
        let valid = size != 0 && size.is_power_of_two() && size <= u32::from(max);
        if !valid {
            return Err(RequestError::QueueSize { size, max });
        }
        vring.queue.set_size(size as u16);
        Ok(Reply::Ack)
    }

    pub(crate) fn set_vring_addr(&mut self, message: &Message) -> Result<Reply, RequestError> {
        let request = message.payload_as::<VhostUserVringAddr>()?;
        let flags = request.flags;
        if flags != 0 {
            // VHOST_VRING_F_LOG requests dirty logging, which needs LOG_SHMFD (not offered).
            return Err(RequestError::InvalidValue {
                field: "vring address flags",
                value: u64::from(flags),
            });
        }
        let addresses = RingAddresses {
            descriptor: request.descriptor,
            available: request.available,
            used: request.used,
        };
        let index = u64::from(request.index);
        self.vring_mut(index)?;
        if self.memory.guest().is_none() {
            return Err(RequestError::NoMemory);
        }
        let Connection { vrings, memory, .. } = self;
        vrings[index as usize]
            .apply_addresses(addresses, memory, true)
            .map_err(|(ring, address)| RequestError::RingAddress { ring, address })?;
        Ok(Reply::Ack)
    }

    pub(crate) fn set_vring_base(&mut self, message: &Message) -> Result<Reply, RequestError> {
        let state = message.payload_as::<VhostUserVringState>()?;
        let base = u16::try_from(state.num).map_err(|_| RequestError::InvalidValue {
            field: "vring base",
            value: u64::from(state.num),
        })?;
        let vring = self.vring_mut(u64::from(state.index))?;
        vring.queue.set_next_avail(base);
        vring.queue.set_next_used(base);
        Ok(Reply::Ack)
    }

    /// Stops the ring and returns its next available index. The kick fd is closed, so the
    /// caller stops polling it; the frontend sends a new one to restart the ring.
    pub(crate) fn get_vring_base(
        &mut self,
        message: &Message,
        events: &mut Vec<Event>,
    ) -> Result<Reply, RequestError> {
        let state = message.payload_as::<VhostUserVringState>()?;
        let index = state.index;
        let vring = self.vring_mut(u64::from(index))?;
        vring.started = false;
        vring.queue.set_ready(false);
        if vring.kick.take().is_some() {
            events.push(Event::KickChanged(index as usize));
        }
        let next_avail = u32::from(vring.queue.next_avail());
        Ok(Reply::value(VhostUserVringState::new(index, next_avail)))
    }

    pub(crate) fn set_vring_kick(
        &mut self,
        message: &mut Message,
        events: &mut Vec<Event>,
    ) -> Result<Reply, RequestError> {
        let (index, file) = self.vring_fd(message)?;
        if let Some(file) = &file {
            check_eventfd(file).map_err(|target| RequestError::KickNotEventfd { index, target })?;
        }
        let protocol_features = VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
        let enable_at_start = self.acked_features & protocol_features == 0;
        let vring = &mut self.vrings[index];
        vring.kick = file;
        vring.started = true;
        if enable_at_start {
            vring.enabled = true;
        }
        events.push(Event::KickChanged(index));
        self.sync_queue_ready(index);
        Ok(Reply::Ack)
    }

    pub(crate) fn set_vring_call(&mut self, message: &mut Message) -> Result<Reply, RequestError> {
        let (index, file) = self.vring_fd(message)?;
        self.vrings[index].call = file;
        Ok(Reply::Ack)
    }

    pub(crate) fn set_vring_err(&mut self, message: &mut Message) -> Result<Reply, RequestError> {
        let (index, file) = self.vring_fd(message)?;
        self.vrings[index].err = file;
        Ok(Reply::Ack)
    }

    pub(crate) fn set_vring_enable(&mut self, message: &Message) -> Result<Reply, RequestError> {
        let protocol_features = VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
        if self.acked_features & protocol_features == 0 {
            return Err(RequestError::NotNegotiated(
                "VHOST_USER_F_PROTOCOL_FEATURES",
            ));
        }
        let state = message.payload_as::<VhostUserVringState>()?;
        let enable = match state.num {
            0 => false,
            1 => true,
            other => {
                return Err(RequestError::InvalidValue {
                    field: "vring enable",
                    value: u64::from(other),
                })
            }
        };
        let index = state.index as usize;
        self.vring_mut(u64::from(state.index))?.enabled = enable;
        self.sync_queue_ready(index);
        Ok(Reply::Ack)
    }

    /// Parses the u64 payload of SET_VRING_KICK/CALL/ERR and takes its fd unless NOFD is set.
    fn vring_fd(&mut self, message: &mut Message) -> Result<(usize, Option<File>), RequestError> {
        let value = message.payload_as::<VhostUserU64>()?.value;
        if value & !(VRING_INDEX_MASK | VRING_NOFD) != 0 {
            return Err(RequestError::InvalidValue {
                field: "vring fd payload",
                value,
            });
        }
        let index = value & VRING_INDEX_MASK;
        self.vring_mut(index)?;
        let expected = if value & VRING_NOFD != 0 { 0 } else { 1 };
        let file = message.take_fds(expected)?.pop().map(File::from);
        Ok((index as usize, file))
    }

    /// Marks the queue ready for virtio-queue when the ring is ready to process.
    fn sync_queue_ready(&mut self, index: usize) {
        let vring = &mut self.vrings[index];
        let ready = vring.started && vring.enabled;
        vring.queue.set_ready(ready);
    }

    fn vring_mut(&mut self, index: u64) -> Result<&mut Vring, RequestError> {
        let num_queues = self.vrings.len();
        usize::try_from(index)
            .ok()
            .and_then(|index| self.vrings.get_mut(index))
            .ok_or(RequestError::VringIndex { index, num_queues })
    }
}
