//! Validation of descriptor chains taken from a queue. Everything a chain contains comes from the
//! guest and is checked here before any byte is copied.

use std::ops::Deref;

use virtio_queue::DescriptorChain;
use vm_memory::{GuestAddress, GuestMemory, Permissions};

/// One guest buffer of a validated chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Guest physical address of the buffer.
    pub addr: GuestAddress,
    /// Length of the buffer in bytes.
    pub len: u32,
}

/// A descriptor chain the device rejected.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    /// The head index or the first descriptor could not be read.
    #[error("descriptor chain with head {head} has no readable descriptor")]
    Empty {
        /// Head index of the chain.
        head: u16,
    },
    /// A descriptor of the chain points the wrong way for its queue.
    #[error(
        "descriptor {position} of the chain with head {head} is {found}, but this queue takes \
         only {expected} buffers"
    )]
    WrongDirection {
        /// Head index of the chain.
        head: u16,
        /// Position of the descriptor within the chain, from 0.
        position: usize,
        /// Direction the descriptor has.
        found: &'static str,
        /// Direction the queue needs.
        expected: &'static str,
    },
    /// A buffer lies, in whole or in part, outside guest memory.
    #[error(
        "buffer at guest address {addr:#x} with length {len} of the chain with head {head} is \
         outside guest memory"
    )]
    OutsideMemory {
        /// Head index of the chain.
        head: u16,
        /// Guest address of the buffer.
        addr: u64,
        /// Length of the buffer.
        len: u32,
    },
    /// The chain did not end: it loops, is longer than its table, links to an index outside its
    /// table, has an unreadable descriptor, or totals more than 4 GiB.
    #[error(
        "descriptor chain with head {head} does not end within its descriptor table (a loop, \
         a bad next index, an unreadable descriptor or more than 4 GiB)"
    )]
    Unterminated {
        /// Head index of the chain.
        head: u16,
    },
}

/// Direction of the buffers a queue takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Device-readable buffers (transmitq).
    DeviceReads,
    /// Device-writable buffers (receiveq).
    DeviceWrites,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::DeviceReads => "device-readable",
            Direction::DeviceWrites => "device-writable",
        }
    }

    fn permissions(self) -> Permissions {
        match self {
            Direction::DeviceReads => Permissions::Read,
            Direction::DeviceWrites => Permissions::Write,
        }
    }
}

/// Walks `chain` and returns its buffers, all of direction `direction` and inside `mem`.
///
/// virtio-queue's iterator stops silently on a loop, a bad next index or an unreadable
/// descriptor, so a chain counts as ended only if its last yielded descriptor has no NEXT flag.
pub fn collect_segments<R, M>(
    chain: DescriptorChain<R>,
    mem: &M,
    direction: Direction,
) -> Result<Vec<Segment>, ChainError>
where
    R: Deref<Target = M>,
    M: GuestMemory + ?Sized,
{
    let head = chain.head_index();
    let mut segments = Vec::new();
    let mut ended = false;
    for (position, desc) in chain.enumerate() {
        let writable = desc.is_write_only();
        if writable != (direction == Direction::DeviceWrites) {
            let found = if writable {
                Direction::DeviceWrites.name()
            } else {
                Direction::DeviceReads.name()
            };
            return Err(ChainError::WrongDirection {
                head,
                position,
                found,
                expected: direction.name(),
            });
        }
        check_in_memory(mem, head, desc.addr(), desc.len(), direction)?;
        segments.push(Segment {
            addr: desc.addr(),
            len: desc.len(),
        });
        ended = !desc.has_next();
    }
    if segments.is_empty() {
        return Err(ChainError::Empty { head });
    }
    if !ended {
        return Err(ChainError::Unterminated { head });
    }
    Ok(segments)
}

fn check_in_memory<M: GuestMemory + ?Sized>(
    mem: &M,
    head: u16,
    addr: GuestAddress,
    len: u32,
    direction: Direction,
) -> Result<(), ChainError> {
    let outside = ChainError::OutsideMemory {
        head,
        addr: addr.0,
        len,
    };
    if len == 0 {
        return Ok(());
    }
    let count = usize::try_from(len).map_err(|_| outside.clone())?;
    if !mem.check_range(addr, count, direction.permissions()) {
        return Err(outside);
    }
    Ok(())
}
