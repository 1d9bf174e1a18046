//! The receiveq: host input copied, in order, into the guest's device-writable chains.

use virtio_queue::Queue;
use vm_memory::{Bytes, GuestAddress, GuestMemory};

use crate::chain::{collect_segments, Direction, Segment};
use crate::device::Console;
use crate::queue::{next_chain, Stop};
use crate::ratelimit::warn_limited;
use crate::RECEIVEQ;

impl Console {
    /// Fills receive chains with buffered input until the input or the ring runs out. Returns
    /// whether the driver must be signalled.
    pub(crate) fn process_receiveq<M: GuestMemory>(&mut self, mem: &M, queue: &mut Queue) -> bool {
        if self.input.queue.is_empty() {
            return false;
        }
        let mut added = false;
        let stop = self.fill_receive_chains(mem, queue, &mut added);
        if stop == Stop::Blocked {
            // Input ran out: let the driver kick again for the buffers it posts next.
            let _ = self.reenable_notification(RECEIVEQ, queue, mem);
        }
        self.signal_needed(RECEIVEQ, queue, mem, added)
    }

    fn fill_receive_chains<M: GuestMemory>(
        &mut self,
        mem: &M,
        queue: &mut Queue,
        added: &mut bool,
    ) -> Stop {
        if let Err(stop) = self.suppress_notification(RECEIVEQ, queue, mem) {
            return stop;
        }
        let mut progress_since_enable = true;
        while !self.input.queue.is_empty() {
            let chain = match next_chain(queue, mem) {
                Ok(chain) => chain,
                Err(err) => {
                    self.enter_needs_reset(RECEIVEQ, &err);
                    return Stop::Broken;
                }
            };
            let Some(chain) = chain else {
                match self.reenable_notification(RECEIVEQ, queue, mem) {
                    Ok(true) if progress_since_enable => {
                        progress_since_enable = false;
                        if let Err(stop) = self.suppress_notification(RECEIVEQ, queue, mem) {
                            return stop;
                        }
                        continue;
                    }
                    Ok(_) => return Stop::Empty,
                    Err(stop) => return stop,
                }
            };
            let head = chain.head_index();
            let used = match collect_segments(chain, mem, Direction::DeviceWrites) {
                Ok(segments) => {
                    let written = self.fill_segments(mem, head, &segments);
                    self.add_used(RECEIVEQ, queue, mem, head, written)
                }
                Err(err) => self.reject_chain(RECEIVEQ, queue, mem, err),
            };
            if !used {
                return Stop::Broken;
            }
            *added = true;
            progress_since_enable = true;
        }
        Stop::Blocked
    }

    /// Writes buffered input into `segments` in order and returns the bytes written.
    fn fill_segments<M: GuestMemory>(&mut self, mem: &M, head: u16, segments: &[Segment]) -> u32 {
        let mut written: u32 = 0;
        for segment in segments {
            let mut offset: u32 = 0;
            while offset < segment.len && !self.input.queue.is_empty() {
                let front = self.input.queue.front_slice();
                let len = front.len().min((segment.len - offset) as usize);
                let addr = GuestAddress(segment.addr.0.wrapping_add(u64::from(offset)));
                if let Err(err) = mem.write_slice(&front[..len], addr) {
                    warn_limited!(
                        self.warnings,
                        "console: failed to write receive buffer at {:#x}: {err}; returned the \
                         chain with head {head} with the {written} bytes written so far",
                        addr.0
                    );
                    return written;
                }
                self.input.queue.consume(len);
                offset += len as u32;
                written += len as u32;
            }
        }
        written
    }
}
