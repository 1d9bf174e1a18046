//! Per-ring state: the virtio queue, its fds, and the started/enabled flags.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;

use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddress, GuestMemory, GuestMemoryMmap, Permissions};

use crate::memory::MemoryMap;
use crate::message::poll_now;

/// Ring addresses as the frontend sent them (frontend user addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RingAddresses {
    pub(crate) descriptor: u64,
    pub(crate) available: u64,
    pub(crate) used: u64,
}

/// One vring. A ring is started by `SET_VRING_KICK` and stopped by `GET_VRING_BASE`; it is
/// enabled by `SET_VRING_ENABLE`, or at start when `VHOST_USER_F_PROTOCOL_FEATURES` was not
/// negotiated.
#[derive(Debug)]
pub(crate) struct Vring {
    pub(crate) queue: Queue,
    pub(crate) kick: Option<File>,
    pub(crate) call: Option<File>,
    pub(crate) err: Option<File>,
    pub(crate) started: bool,
    pub(crate) enabled: bool,
    /// User addresses from `SET_VRING_ADDR`, kept to re-translate after a memory change.
    pub(crate) addresses: Option<RingAddresses>,
    /// Whether `addresses` translate in the current memory map.
    pub(crate) translated: bool,
}

impl Vring {
    pub(crate) fn new(queue: Queue) -> Self {
        Vring {
            queue,
            kick: None,
            call: None,
            err: None,
            started: false,
            enabled: false,
            addresses: None,
            translated: false,
        }
    }

    /// Stops and disables the ring, closes its fds and resets the queue.
    pub(crate) fn reset(&mut self) {
        self.queue.reset();
        self.kick = None;
        self.call = None;
        self.err = None;
        self.started = false;
        self.enabled = false;
        self.addresses = None;
        self.translated = false;
    }

    /// Returns whether the caller may process the ring now.
    pub(crate) fn is_ready(&self, memory: Option<&GuestMemoryMmap<()>>) -> bool {
        let Some(memory) = memory else {
            return false;
        };
        self.started && self.enabled && self.translated && RingAreas::of(&self.queue).fit(memory)
    }

    /// Translates `addresses` into the queue's guest physical addresses. With `require_fit`
    /// the three ring areas must also lie inside guest memory at the current queue size.
    /// On failure the ring keeps its previous addresses.
    pub(crate) fn apply_addresses(
        &mut self,
        addresses: RingAddresses,
        memory: &MemoryMap,
        require_fit: bool,
    ) -> Result<(), (&'static str, u64)> {
        let descriptor = translate(memory, "descriptor table", addresses.descriptor)?;
        let available = translate(memory, "available ring", addresses.available)?;
        let used = translate(memory, "used ring", addresses.used)?;
        let areas = RingAreas {
            size: self.queue.size(),
            descriptor,
            available,
            used,
        };
        let fits = memory.guest().is_some_and(|guest| areas.fit(guest));
        if require_fit && !fits {
            return Err(("ring extent", addresses.descriptor));
        }
        // The setters check alignment and leave the address unchanged on failure, so the three
        // calls go through a check first to keep the ring consistent.
        if descriptor.0 % 16 != 0 {
            return Err(("descriptor table", addresses.descriptor));
        }
        if available.0 % 2 != 0 {
            return Err(("available ring", addresses.available));
        }
        if used.0 % 4 != 0 {
            return Err(("used ring", addresses.used));
        }
        let _ = self.queue.try_set_desc_table_address(descriptor);
        let _ = self.queue.try_set_avail_ring_address(available);
        let _ = self.queue.try_set_used_ring_address(used);
        self.addresses = Some(addresses);
        self.translated = true;
        Ok(())
    }

    /// Re-translates the stored addresses after a memory map change.
    pub(crate) fn retranslate(&mut self, memory: &MemoryMap) {
        if let Some(addresses) = self.addresses {
            self.translated = self.apply_addresses(addresses, memory, false).is_ok();
        }
    }

    /// Writes the call fd once if it can take the write without blocking.
    pub(crate) fn signal_call(&self) -> io::Result<bool> {
        let Some(call) = &self.call else {
            return Ok(false);
        };
        if !writable_now(call)? {
            // The frontend has not drained the previous notifications; one is pending already.
            return Ok(true);
        }
        match (&*call).write(&1u64.to_ne_bytes()) {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(true),
            Err(err) => Err(err),
        }
    }

    /// Reads the kick fd if it is readable. Returns whether a kick was pending.
    pub(crate) fn consume_kick(&self) -> io::Result<bool> {
        let Some(kick) = &self.kick else {
            return Ok(false);
        };
        if !poll_now(kick.as_raw_fd(), libc::POLLIN)? {
            return Ok(false);
        }
        let mut value = [0u8; 8];
        match io::Read::read(&mut &*kick, &mut value) {
            Ok(count) => Ok(count > 0),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(err) => Err(err),
        }
    }
}

fn translate(
    memory: &MemoryMap,
    ring: &'static str,
    address: u64,
) -> Result<GuestAddress, (&'static str, u64)> {
    memory.translate(address).ok_or((ring, address))
}

/// Guest physical placement of a split ring.
pub(crate) struct RingAreas {
    pub(crate) size: u16,
    pub(crate) descriptor: GuestAddress,
    pub(crate) available: GuestAddress,
    pub(crate) used: GuestAddress,
}

impl RingAreas {
    fn of(queue: &Queue) -> Self {
        RingAreas {
            size: queue.size(),
            descriptor: GuestAddress(queue.desc_table()),
            available: GuestAddress(queue.avail_ring()),
            used: GuestAddress(queue.used_ring()),
        }
    }

    /// Checks that the descriptor table, available ring and used ring lie inside guest memory.
    pub(crate) fn fit(&self, memory: &GuestMemoryMmap<()>) -> bool {
        let size = usize::from(self.size);
        let descriptor_len = std::mem::size_of::<Descriptor>() * size;
        // flags, idx, ring[size] and used_event, 2 bytes each.
        let available_len = 2 * size + 6;
        // flags and idx (2 bytes each), ring[size] of 8-byte elements, avail_event (2 bytes).
        let used_len = 8 * size + 6;
        GuestMemory::check_range(memory, self.descriptor, descriptor_len, Permissions::Read)
            && GuestMemory::check_range(memory, self.available, available_len, Permissions::Read)
            && GuestMemory::check_range(memory, self.used, used_len, Permissions::Write)
    }
}

fn writable_now(file: &File) -> io::Result<bool> {
    poll_now(file.as_raw_fd(), libc::POLLOUT)
}
