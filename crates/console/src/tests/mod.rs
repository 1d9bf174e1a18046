//! Device tests over virtio-queue's mock split queue, with an in-memory backend whose output
//! side can be made slow.

mod config_size;
mod malformed;
mod pty;
mod receive;
mod transmit;
mod tty;

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use ttyvm_term::WindowSize;
use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::desc::split::{Descriptor as SplitDescriptor, VirtqUsedElem};
use virtio_queue::desc::RawDescriptor;
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::Queue;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::backend::{Backend, Source};
use crate::features::*;
use crate::{Console, Limits};

/// Guest memory size for the tests.
pub const MEM_SIZE: u64 = 0x40_0000;
/// Where test buffers start, past the rings.
pub const DATA: u64 = 0x10_0000;

/// State shared between a [`TestBackend`] and the test that inspects it.
#[derive(Debug, Default)]
pub struct Sink {
    pub output: Vec<u8>,
    pub input: VecDeque<u8>,
    /// Bytes accepted per write call; `None` accepts everything.
    pub per_call: Option<usize>,
    /// Return WouldBlock on every other write call.
    pub block_alternate: bool,
    /// Return WouldBlock on every write call.
    pub full: bool,
    pub write_calls: usize,
    pub size: WindowSize,
    pub has_size: bool,
    pub resize_pending: bool,
}

/// A backend kept in memory. Its fds are /dev/null, only so that `poll_fds` has something to
/// list.
pub struct TestBackend {
    sink: Arc<Mutex<Sink>>,
    fd: File,
}

impl TestBackend {
    pub fn new(sink: Sink) -> (Self, Arc<Mutex<Sink>>) {
        let sink = Arc::new(Mutex::new(sink));
        let fd = File::open("/dev/null").unwrap();
        (
            TestBackend {
                sink: sink.clone(),
                fd,
            },
            sink,
        )
    }
}

fn lock(sink: &Arc<Mutex<Sink>>) -> MutexGuard<'_, Sink> {
    sink.lock().unwrap()
}

impl Backend for TestBackend {
    fn has_size(&self) -> bool {
        lock(&self.sink).has_size
    }

    fn window_size(&self) -> io::Result<WindowSize> {
        Ok(lock(&self.sink).size)
    }

    fn fd(&self, source: Source) -> Option<BorrowedFd<'_>> {
        match source {
            Source::Input | Source::Output | Source::Resize => Some(self.fd.as_fd()),
            Source::Attach => None,
        }
    }

    fn read_input(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut sink = lock(&self.sink);
        if sink.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let len = buf.len().min(sink.input.len());
        for (slot, byte) in buf.iter_mut().zip(sink.input.drain(..len)) {
            *slot = byte;
        }
        Ok(len)
    }

    fn write_output(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut sink = lock(&self.sink);
        sink.write_calls += 1;
        if sink.full || (sink.block_alternate && sink.write_calls % 2 == 0) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let len = sink.per_call.map_or(data.len(), |n| n.min(data.len()));
        sink.output.extend_from_slice(&data[..len]);
        Ok(len)
    }

    fn drain_resize(&mut self) -> io::Result<bool> {
        Ok(std::mem::take(&mut lock(&self.sink).resize_pending))
    }
}

pub fn memory() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE as usize)]).unwrap()
}

/// A console over a fresh [`TestBackend`], with features negotiated and the driver ready.
pub fn ready_console(sink: Sink, limits: Limits) -> (Console, Arc<Mutex<Sink>>) {
    let (backend, sink) = TestBackend::new(sink);
    let mut console = Console::new(Box::new(backend), limits);
    console.ack_features(console.device_features());
    console.driver_ready();
    (console, sink)
}

/// Descriptor flags for a buffer the device reads (transmitq) or writes (receiveq).
pub fn flags(device_writes: bool) -> u16 {
    if device_writes {
        VRING_DESC_F_WRITE as u16
    } else {
        0
    }
}

/// Writes one chain of `(addr, len)` buffers at descriptor index `first` and makes it
/// available. Returns the head index.
pub fn add_chain(
    vq: &MockSplitQueue<'_, GuestMemoryMmap>,
    first: u16,
    buffers: &[(u64, u32)],
    device_writes: bool,
) -> u16 {
    let descs: Vec<RawDescriptor> = buffers
        .iter()
        .enumerate()
        .map(|(i, &(addr, len))| {
            let last = i + 1 == buffers.len();
            let mut f = flags(device_writes);
            if !last {
                f |= VRING_DESC_F_NEXT as u16;
            }
            let next = if last { 0 } else { first + i as u16 + 1 };
            RawDescriptor::from(SplitDescriptor::new(addr, len, f, next))
        })
        .collect();
    vq.add_desc_chains(&descs, first).unwrap();
    first
}

/// Writes raw descriptors at index `first` as they are, and makes the one at `first` available.
pub fn add_raw(vq: &MockSplitQueue<'_, GuestMemoryMmap>, first: u16, descs: &[SplitDescriptor]) {
    for (i, desc) in descs.iter().enumerate() {
        vq.desc_table()
            .store(first + i as u16, RawDescriptor::from(*desc))
            .unwrap();
    }
    let avail = vq.avail();
    let idx = avail.idx().load();
    avail.ring().ref_at(idx as usize).unwrap().store(first);
    avail.idx().store(idx.wrapping_add(1));
}

pub fn used_entries(vq: &MockSplitQueue<'_, GuestMemoryMmap>) -> Vec<VirtqUsedElem> {
    let used = vq.used();
    (0..used.idx().load())
        .map(|i| used.ring().ref_at(i as usize).unwrap().load())
        .collect()
}

pub fn new_queue(vq: &MockSplitQueue<'_, GuestMemoryMmap>) -> Queue {
    vq.create_queue::<Queue>().unwrap()
}

pub fn fill(mem: &GuestMemoryMmap, addr: u64, data: &[u8]) {
    mem.write_slice(data, GuestAddress(addr)).unwrap();
}

pub fn read(mem: &GuestMemoryMmap, addr: u64, len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    mem.read_slice(&mut data, GuestAddress(addr)).unwrap();
    data
}

/// A byte pattern that makes misordering visible.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn features_offered_follow_backend_size() {
    let (backend, _) = TestBackend::new(Sink {
        has_size: true,
        ..Sink::default()
    });
    let console = Console::new(Box::new(backend), Limits::default());
    assert_eq!(
        console.device_features(),
        VIRTIO_F_VERSION_1 | VIRTIO_CONSOLE_F_SIZE | VIRTIO_CONSOLE_F_EMERG_WRITE
    );
    let console = Console::new(Box::new(crate::NullBackend::new()), Limits::default());
    assert_eq!(
        console.device_features(),
        VIRTIO_F_VERSION_1 | VIRTIO_CONSOLE_F_EMERG_WRITE
    );
}

#[test]
fn ack_features_drops_unoffered_bits() {
    let console_backend = crate::NullBackend::new();
    let mut console = Console::new(Box::new(console_backend), Limits::default());
    console.ack_features(u64::MAX);
    assert_eq!(console.acked_features(), console.device_features());
    assert_eq!(console.acked_features() & VIRTIO_CONSOLE_F_MULTIPORT, 0);
    assert_eq!(console.acked_features() & VIRTIO_CONSOLE_F_SIZE, 0);
}
