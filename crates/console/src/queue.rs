//! Queue operations shared by the transmitq and the receiveq, with every failure mapped to
//! NEEDS_RESET or a rejected chain.

use virtio_queue::{DescriptorChain, Error as QueueError, Queue, QueueOwnedT, QueueT};
use vm_memory::GuestMemory;

use crate::chain::ChainError;
use crate::device::Console;
use crate::ratelimit::warn_limited;

/// Why a pass over a queue stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The driver has no more chains available.
    Empty,
    /// The device cannot take more now: output buffer full, or no input to deliver.
    Blocked,
    /// The device entered NEEDS_RESET.
    Broken,
}

/// Takes the next available chain. `Ok(None)` means none is available or the queue is not ready.
pub(crate) fn next_chain<'m, M: GuestMemory>(
    queue: &mut Queue,
    mem: &'m M,
) -> Result<Option<DescriptorChain<&'m M>>, QueueError> {
    match queue.iter(mem) {
        Ok(mut chains) => Ok(chains.next()),
        Err(QueueError::QueueNotReady) => Ok(None),
        Err(err) => Err(err),
    }
}

impl Console {
    /// Puts `head` on the used ring with `len` bytes written. Returns false after entering
    /// NEEDS_RESET because the used ring could not be written.
    pub(crate) fn add_used<M: GuestMemory>(
        &mut self,
        queue_index: u16,
        queue: &mut Queue,
        mem: &M,
        head: u16,
        len: u32,
    ) -> bool {
        match queue.add_used(mem, head, len) {
            Ok(()) => true,
            Err(err) => {
                self.enter_needs_reset(queue_index, &err);
                false
            }
        }
    }

    /// Returns a rejected chain used with length 0 and logs why.
    pub(crate) fn reject_chain<M: GuestMemory>(
        &mut self,
        queue_index: u16,
        queue: &mut Queue,
        mem: &M,
        err: ChainError,
    ) -> bool {
        warn_limited!(
            self.warnings,
            "console: queue {queue_index}: rejected {err}; returned it used with length 0"
        );
        let head = match err {
            ChainError::Empty { head }
            | ChainError::WrongDirection { head, .. }
            | ChainError::OutsideMemory { head, .. }
            | ChainError::Unterminated { head } => head,
        };
        self.add_used(queue_index, queue, mem, head, 0)
    }

    /// Re-enables driver notifications after a pass found the ring empty. Returns whether chains
    /// arrived meanwhile, so the pass must go on; a queue fault enters NEEDS_RESET.
    pub(crate) fn reenable_notification<M: GuestMemory>(
        &mut self,
        queue_index: u16,
        queue: &mut Queue,
        mem: &M,
    ) -> Result<bool, Stop> {
        queue.enable_notification(mem).map_err(|err| {
            self.enter_needs_reset(queue_index, &err);
            Stop::Broken
        })
    }

    /// Disables driver notifications for the length of a pass.
    pub(crate) fn suppress_notification<M: GuestMemory>(
        &mut self,
        queue_index: u16,
        queue: &mut Queue,
        mem: &M,
    ) -> Result<(), Stop> {
        queue.disable_notification(mem).map_err(|err| {
            self.enter_needs_reset(queue_index, &err);
            Stop::Broken
        })
    }

    /// Whether the driver must be signalled after chains were added to the used ring, under
    /// EVENT_IDX suppression if the transport enabled it.
    pub(crate) fn signal_needed<M: GuestMemory>(
        &mut self,
        queue_index: u16,
        queue: &mut Queue,
        mem: &M,
        added: bool,
    ) -> bool {
        if !added {
            return false;
        }
        match queue.needs_notification(mem) {
            Ok(needed) => needed,
            Err(err) => {
                self.enter_needs_reset(queue_index, &err);
                true
            }
        }
    }
}
