//! The transmitq: guest output copied, in order, from device-readable chains into the output
//! buffer. A chain is copied only as far as the buffer has room, and returned used once
//! copied completely, so a full buffer leaves the guest waiting rather than losing bytes.

use virtio_queue::{DescriptorChain, Queue};
use vm_memory::{Bytes, GuestAddress, GuestMemory};

use crate::chain::{collect_segments, Direction, Segment};
use crate::device::Console;
use crate::queue::{next_chain, Stop};
use crate::ratelimit::warn_limited;
use crate::TRANSMITQ;

/// Bytes copied from guest memory per step.
const COPY_CHUNK: usize = 4096;

/// A transmit chain taken from the queue and not yet copied completely.
///
/// NOTE: the chain is already past the queue's `next_avail`. A transport that stops the ring
/// and restarts it from the saved `next_avail` without a reset never sees this chain used.
#[derive(Debug)]
pub(crate) struct PendingChain {
    head: u16,
    segments: Vec<Segment>,
    /// Index of the segment being copied.
    segment: usize,
    /// Bytes of that segment already copied.
    offset: u32,
}

/// How far a pending chain got.
enum Copied {
    Complete(u16),
    Partial(PendingChain),
}

impl Console {
    /// Takes transmit chains and writes their bytes to the backend until the ring is empty or
    /// the output is full. Returns whether the driver must be signalled.
    pub(crate) fn process_transmitq<M: GuestMemory>(&mut self, mem: &M, queue: &mut Queue) -> bool {
        let mut added = false;
        loop {
            let stop = self.take_transmit_chains(mem, queue, &mut added);
            let buffered = self.output.queue.len();
            self.flush_output();
            let drained_some = self.output.queue.len() < buffered;
            if stop != Stop::Blocked || !drained_some || self.output_room() == 0 {
                break;
            }
        }
        self.signal_needed(TRANSMITQ, queue, mem, added)
    }

    fn take_transmit_chains<M: GuestMemory>(
        &mut self,
        mem: &M,
        queue: &mut Queue,
        added: &mut bool,
    ) -> Stop {
        if let Err(stop) = self.suppress_notification(TRANSMITQ, queue, mem) {
            return stop;
        }
        let mut progress_since_enable = true;
        loop {
            match self.finish_pending_chain(mem, queue) {
                Ok(true) => {
                    *added = true;
                    progress_since_enable = true;
                }
                Ok(false) => {}
                Err(stop) => return stop,
            }
            if self.output_room() == 0 {
                // Notifications stay off: the device resumes when the backend drains.
                return Stop::Blocked;
            }
            match self.take_next_chain(mem, queue, &mut progress_since_enable) {
                Ok(true) => *added = true,
                Ok(false) => {}
                Err(stop) => return stop,
            }
        }
    }

    /// Takes the next chain and makes it the pending one, or returns it used with length 0 when
    /// it is malformed. On an empty ring it re-arms notifications. Returns whether a chain was
    /// returned used, or why taking chains must stop.
    fn take_next_chain<M: GuestMemory>(
        &mut self,
        mem: &M,
        queue: &mut Queue,
        progress_since_enable: &mut bool,
    ) -> Result<bool, Stop> {
        match next_chain(queue, mem) {
            Ok(Some(chain)) => {
                let rejected = self.start_chain(mem, queue, chain)?;
                if rejected {
                    *progress_since_enable = true;
                }
                Ok(rejected)
            }
            Ok(None) => {
                // Look once more for a chain that raced with re-enabling notifications.
                self.rearm_or_stop(queue, mem, *progress_since_enable)?;
                *progress_since_enable = false;
                Ok(false)
            }
            Err(err) => {
                self.enter_needs_reset(TRANSMITQ, &err);
                Err(Stop::Broken)
            }
        }
    }

    /// Copies the pending chain further. Returns whether it completed and was returned used, or
    /// the reason to stop: the output is full, or the used ring is broken.
    fn finish_pending_chain<M: GuestMemory>(
        &mut self,
        mem: &M,
        queue: &mut Queue,
    ) -> Result<bool, Stop> {
        let Some(pending) = self.pending_tx.take() else {
            return Ok(false);
        };
        match self.copy_pending(mem, pending) {
            Copied::Partial(pending) => {
                self.pending_tx = Some(pending);
                Err(Stop::Blocked)
            }
            Copied::Complete(head) => match self.add_used(TRANSMITQ, queue, mem, head, 0) {
                true => Ok(true),
                false => Err(Stop::Broken),
            },
        }
    }

    /// Re-enables notifications on an empty ring. Returns `Ok` when the ring must be looked at
    /// once more because a chain may have arrived since the last progress, and the reason to stop
    /// otherwise.
    fn rearm_or_stop<M: GuestMemory>(
        &mut self,
        queue: &mut Queue,
        mem: &M,
        progress_since_enable: bool,
    ) -> Result<(), Stop> {
        match self.reenable_notification(TRANSMITQ, queue, mem) {
            Ok(true) if progress_since_enable => self.suppress_notification(TRANSMITQ, queue, mem),
            Ok(_) => Err(Stop::Empty),
            Err(stop) => Err(stop),
        }
    }

    /// Makes a fresh chain the pending one, or returns a malformed one used with length 0.
    /// Returns whether a chain was returned used.
    fn start_chain<M: GuestMemory>(
        &mut self,
        mem: &M,
        queue: &mut Queue,
        chain: DescriptorChain<&M>,
    ) -> Result<bool, Stop> {
        let head = chain.head_index();
        match collect_segments(chain, mem, Direction::DeviceReads) {
            Ok(segments) => {
                self.pending_tx = Some(PendingChain {
                    head,
                    segments,
                    segment: 0,
                    offset: 0,
                });
                Ok(false)
            }
            Err(err) => match self.reject_chain(TRANSMITQ, queue, mem, err) {
                true => Ok(true),
                false => Err(Stop::Broken),
            },
        }
    }

    /// Copies as much of `pending` into the output buffer as it has room for.
    fn copy_pending<M: GuestMemory>(&mut self, mem: &M, mut pending: PendingChain) -> Copied {
        let mut chunk = [0u8; COPY_CHUNK];
        while let Some(segment) = pending.segments.get(pending.segment).copied() {
            let left = (segment.len - pending.offset) as usize;
            if left == 0 {
                pending.segment += 1;
                pending.offset = 0;
                continue;
            }
            let len = left.min(COPY_CHUNK).min(self.output_room());
            if len == 0 {
                return Copied::Partial(pending);
            }
            let addr = GuestAddress(segment.addr.0.wrapping_add(u64::from(pending.offset)));
            if let Err(err) = mem.read_slice(&mut chunk[..len], addr) {
                warn_limited!(
                    self.warnings,
                    "console: failed to read transmit buffer at {:#x}: {err}; dropped the rest \
                     of the chain with head {}",
                    addr.0,
                    pending.head
                );
                return Copied::Complete(pending.head);
            }
            self.push_output(&chunk[..len]);
            pending.offset += len as u32;
        }
        Copied::Complete(pending.head)
    }
}
