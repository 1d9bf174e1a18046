//! The transmitq: guest output copied, in order, from device-readable chains into the output
//! buffer. A chain is copied only as far as the buffer has room, and returned used once
//! copied completely, so a full buffer leaves the guest waiting rather than losing bytes.

use virtio_queue::Queue;
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
            if let Some(pending) = self.pending_tx.take() {
                match self.copy_pending(mem, pending) {
                    Copied::Partial(pending) => {
                        self.pending_tx = Some(pending);
                        return Stop::Blocked;
                    }
                    Copied::Complete(head) => {
                        if !self.add_used(TRANSMITQ, queue, mem, head, 0) {
                            return Stop::Broken;
                        }
                        *added = true;
                        progress_since_enable = true;
                    }
                }
            }
            if self.output_room() == 0 {
                // Notifications stay off: the device resumes when the backend drains.
                return Stop::Blocked;
            }
            let chain = match next_chain(queue, mem) {
                Ok(chain) => chain,
                Err(err) => {
                    self.enter_needs_reset(TRANSMITQ, &err);
                    return Stop::Broken;
                }
            };
            let Some(chain) = chain else {
                match self.reenable_notification(TRANSMITQ, queue, mem) {
                    Ok(true) if progress_since_enable => {
                        progress_since_enable = false;
                        if let Err(stop) = self.suppress_notification(TRANSMITQ, queue, mem) {
                            return stop;
                        }
                        continue;
                    }
                    Ok(_) => return Stop::Empty,
                    Err(stop) => return stop,
                }
            };
            let head = chain.head_index();
            match collect_segments(chain, mem, Direction::DeviceReads) {
                Ok(segments) => {
                    self.pending_tx = Some(PendingChain {
                        head,
                        segments,
                        segment: 0,
                        offset: 0,
                    });
                }
                Err(err) => {
                    if !self.reject_chain(TRANSMITQ, queue, mem, err) {
                        return Stop::Broken;
                    }
                    *added = true;
                    progress_since_enable = true;
                }
            }
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
