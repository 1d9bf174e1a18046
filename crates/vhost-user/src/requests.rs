//! Handlers for the session-wide requests: features, reset, memory, config, status and the
//! backend request channel.

use vhost::vhost_user::message::{
    VhostUserConfig, VhostUserConfigFlags, VhostUserMemory, VhostUserMemoryRegion,
    VhostUserProtocolFeatures, VhostUserSingleMemoryRegion, VhostUserU64, VHOST_USER_CONFIG_SIZE,
};
use vm_memory::ByteValued;

use crate::backend_channel::BackendChannel;
use crate::connection::{MAX_MEM_SLOTS, OFFERED_PROTOCOL_FEATURES, STATUS_DRIVER_OK};
use crate::dispatch::Reply;
use crate::error::RequestError;
use crate::memory::RegionSpec;
use crate::message::Message;
use crate::{ConfigAccessError, Connection, Event, VhostUserDevice};

const MEMORY_HEADER_SIZE: usize = std::mem::size_of::<VhostUserMemory>();
const REGION_SIZE: usize = std::mem::size_of::<VhostUserMemoryRegion>();
const CONFIG_HEADER_SIZE: usize = std::mem::size_of::<VhostUserConfig>();

impl Connection {
    pub(crate) fn get_features(&self, message: &Message) -> Result<Reply, RequestError> {
        message.expect_empty()?;
        Ok(Reply::value(VhostUserU64::new(self.offered_features)))
    }

    pub(crate) fn set_features(
        &mut self,
        device: &mut impl VhostUserDevice,
        message: &Message,
    ) -> Result<Reply, RequestError> {
        let features = message.payload_as::<VhostUserU64>()?.value;
        if features & !self.offered_features != 0 {
            return Err(RequestError::FeaturesNotOffered {
                requested: features,
                offered: self.offered_features,
            });
        }
        self.acked_features = features;
        let event_idx =
            features & (1 << virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX) != 0;
        for vring in &mut self.vrings {
            virtio_queue::QueueT::set_event_idx(&mut vring.queue, event_idx);
        }
        let protocol_bit = vhost::vhost_user::VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
        device.ack_features(features & !protocol_bit);
        Ok(Reply::Ack)
    }

    pub(crate) fn get_protocol_features(&self, message: &Message) -> Result<Reply, RequestError> {
        message.expect_empty()?;
        Ok(Reply::value(VhostUserU64::new(
            OFFERED_PROTOCOL_FEATURES.bits(),
        )))
    }

    pub(crate) fn set_protocol_features(
        &mut self,
        message: &Message,
    ) -> Result<Reply, RequestError> {
        let features = message.payload_as::<VhostUserU64>()?.value;
        if features & !OFFERED_PROTOCOL_FEATURES.bits() != 0 {
            return Err(RequestError::FeaturesNotOffered {
                requested: features,
                offered: OFFERED_PROTOCOL_FEATURES.bits(),
            });
        }
        self.protocol_features = VhostUserProtocolFeatures::from_bits_truncate(features);
        Ok(Reply::Ack)
    }

    /// Serves RESET_OWNER (`feature` None) and RESET_DEVICE: stops every ring, clears the
    /// acked features and the status, and resets the device. Memory, protocol features and the
    /// backend channel stay.
    pub(crate) fn reset(
        &mut self,
        device: &mut impl VhostUserDevice,
        message: &Message,
        events: &mut Vec<Event>,
        feature: Option<VhostUserProtocolFeatures>,
    ) -> Result<Reply, RequestError> {
        message.expect_empty()?;
        if let Some(feature) = feature {
            self.require(feature, "RESET_DEVICE")?;
        }
        for (index, vring) in self.vrings.iter_mut().enumerate() {
            if vring.kick.is_some() {
                events.push(Event::KickChanged(index));
            }
            vring.reset();
        }
        self.acked_features = 0;
        self.status = 0;
        device.reset();
        events.push(Event::Reset);
        Ok(Reply::Ack)
    }

    pub(crate) fn set_mem_table(
        &mut self,
        message: &mut Message,
        events: &mut Vec<Event>,
    ) -> Result<Reply, RequestError> {
        let specs = parse_mem_table(&message.payload)?;
        let fds = message.take_fds(specs.len())?;
        self.memory
            .replace(&specs, fds, MAX_MEM_SLOTS)
            .map_err(RequestError::Memory)?;
        self.memory_changed(events);
        Ok(Reply::Ack)
    }

    pub(crate) fn get_max_mem_slots(&self, message: &Message) -> Result<Reply, RequestError> {
        message.expect_empty()?;
        Ok(Reply::value(VhostUserU64::new(MAX_MEM_SLOTS as u64)))
    }

    pub(crate) fn add_mem_reg(
        &mut self,
        message: &mut Message,
        events: &mut Vec<Event>,
    ) -> Result<Reply, RequestError> {
        self.require(
            VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS,
            "CONFIGURE_MEM_SLOTS",
        )?;
        let region = message.payload_as::<VhostUserSingleMemoryRegion>()?;
        let mut fds = message.take_fds(1)?;
        let fd = fds.remove(0);
        self.memory
            .add(region_spec(&region), fd, MAX_MEM_SLOTS)
            .map_err(RequestError::Memory)?;
        self.memory_changed(events);
        Ok(Reply::Ack)
    }

    /// Serves REM_MEM_REG. One attached fd is accepted and closed, as the specification allows
    /// for older frontends.
    pub(crate) fn rem_mem_reg(
        &mut self,
        message: &mut Message,
        events: &mut Vec<Event>,
    ) -> Result<Reply, RequestError> {
        self.require(
            VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS,
            "CONFIGURE_MEM_SLOTS",
        )?;
        let region = message.payload_as::<VhostUserSingleMemoryRegion>()?;
        if message.fds.len() > 1 {
            return Err(RequestError::FdCount {
                expected: 0,
                actual: message.fds.len(),
            });
        }
        self.memory
            .remove(region_spec(&region))
            .map_err(RequestError::Memory)?;
        self.memory_changed(events);
        Ok(Reply::Ack)
    }

    fn memory_changed(&mut self, events: &mut Vec<Event>) {
        for vring in &mut self.vrings {
            vring.retranslate(&self.memory);
        }
        events.push(Event::MemoryChanged);
    }

    pub(crate) fn get_queue_num(&self, message: &Message) -> Result<Reply, RequestError> {
        message.expect_empty()?;
        Ok(Reply::value(VhostUserU64::new(self.vrings.len() as u64)))
    }

    pub(crate) fn get_config(
        &self,
        device: &impl VhostUserDevice,
        message: &Message,
    ) -> Result<Reply, RequestError> {
        self.require(VhostUserProtocolFeatures::CONFIG, "CONFIG")?;
        let (header, _) = parse_config(&message.payload, device.config_size())?;
        let mut data = vec![0u8; header.size as usize];
        device
            .read_config(header.offset, &mut data)
            .map_err(RequestError::Config)?;
        let mut body = header.as_slice().to_vec();
        body.extend_from_slice(&data);
        Ok(Reply::Body(body))
    }

    pub(crate) fn set_config(
        &mut self,
        device: &mut impl VhostUserDevice,
        message: &Message,
    ) -> Result<Reply, RequestError> {
        self.require(VhostUserProtocolFeatures::CONFIG, "CONFIG")?;
        let (header, data) = parse_config(&message.payload, device.config_size())?;
        device
            .write_config(header.offset, data)
            .map_err(RequestError::Config)?;
        Ok(Reply::Ack)
    }

    pub(crate) fn set_backend_req_fd(
        &mut self,
        message: &mut Message,
    ) -> Result<Reply, RequestError> {
        self.require(VhostUserProtocolFeatures::BACKEND_REQ, "BACKEND_REQ")?;
        message.expect_empty()?;
        let mut fds = message.take_fds(1)?;
        let channel = BackendChannel::new(fds.remove(0)).map_err(RequestError::BackendChannel)?;
        self.backend_channel = Some(channel);
        Ok(Reply::Ack)
    }

    pub(crate) fn set_status(
        &mut self,
        message: &Message,
        events: &mut Vec<Event>,
    ) -> Result<Reply, RequestError> {
        self.require(VhostUserProtocolFeatures::STATUS, "STATUS")?;
        let value = message.payload_as::<VhostUserU64>()?.value;
        let status = u8::try_from(value).map_err(|_| RequestError::InvalidValue {
            field: "device status",
            value,
        })?;
        let was_driver_ok = self.status & STATUS_DRIVER_OK != 0;
        self.status = status;
        if !was_driver_ok && status & STATUS_DRIVER_OK != 0 {
            events.push(Event::DriverOk);
        }
        Ok(Reply::Ack)
    }

    pub(crate) fn get_status(&self, message: &Message) -> Result<Reply, RequestError> {
        message.expect_empty()?;
        Ok(Reply::value(VhostUserU64::new(u64::from(self.status))))
    }

    pub(crate) fn require(
        &self,
        feature: VhostUserProtocolFeatures,
        name: &'static str,
    ) -> Result<(), RequestError> {
        if self.protocol_features.contains(feature) {
            Ok(())
        } else {
            Err(RequestError::NotNegotiated(name))
        }
    }
}

/// Parses a SET_MEM_TABLE payload. Trailing bytes after the announced regions are allowed
/// because UML's virtio_uml (Linux 6.1) always sends room for two regions.
fn parse_mem_table(payload: &[u8]) -> Result<Vec<RegionSpec>, RequestError> {
    let header = payload
        .get(..MEMORY_HEADER_SIZE)
        .and_then(VhostUserMemory::from_slice)
        .ok_or(RequestError::PayloadSize {
            expected: MEMORY_HEADER_SIZE + REGION_SIZE,
            actual: payload.len(),
        })?;
    let count = header.num_regions as usize;
    if count == 0 || count > MAX_MEM_SLOTS {
        return Err(RequestError::InvalidValue {
            field: "memory region count",
            value: u64::from(header.num_regions),
        });
    }
    let needed = MEMORY_HEADER_SIZE + count * REGION_SIZE;
    if payload.len() < needed || payload.len() > MEMORY_HEADER_SIZE + MAX_MEM_SLOTS * REGION_SIZE {
        return Err(RequestError::PayloadSize {
            expected: needed,
            actual: payload.len(),
        });
    }
    let regions = payload[MEMORY_HEADER_SIZE..needed]
        .chunks_exact(REGION_SIZE)
        .filter_map(VhostUserMemoryRegion::from_slice)
        .map(|region| RegionSpec {
            guest_phys_addr: region.guest_phys_addr,
            size: region.memory_size,
            user_addr: region.user_addr,
            mmap_offset: region.mmap_offset,
        })
        .collect();
    Ok(regions)
}

fn region_spec(region: &VhostUserSingleMemoryRegion) -> RegionSpec {
    RegionSpec {
        guest_phys_addr: region.guest_phys_addr,
        size: region.memory_size,
        user_addr: region.user_addr,
        mmap_offset: region.mmap_offset,
    }
}

/// Splits a config payload into its header and data and checks the range against the
/// protocol limit and the device config size.
fn parse_config(
    payload: &[u8],
    config_size: u32,
) -> Result<(VhostUserConfig, &[u8]), RequestError> {
    let header = payload
        .get(..CONFIG_HEADER_SIZE)
        .and_then(VhostUserConfig::from_slice)
        .copied()
        .ok_or(RequestError::PayloadSize {
            expected: CONFIG_HEADER_SIZE + 1,
            actual: payload.len(),
        })?;
    let data = &payload[CONFIG_HEADER_SIZE..];
    let (offset, size, flags) = (header.offset, header.size, header.flags);
    let invalid = RequestError::ConfigHeader {
        offset,
        size,
        flags,
    };
    if size as usize != data.len() {
        return Err(RequestError::PayloadSize {
            expected: CONFIG_HEADER_SIZE + size as usize,
            actual: payload.len(),
        });
    }
    let end = u64::from(offset) + u64::from(size);
    if size == 0 || end > u64::from(VHOST_USER_CONFIG_SIZE) {
        return Err(invalid);
    }
    if flags & !VhostUserConfigFlags::all().bits() != 0 {
        return Err(invalid);
    }
    if end > u64::from(config_size) {
        return Err(RequestError::Config(ConfigAccessError::OutOfRange {
            offset,
            len: size as usize,
            size: config_size,
        }));
    }
    Ok((header, data))
}
