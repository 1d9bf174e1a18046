//! The console queue fuzz harness, shared by the cargo-fuzz target and by the plain test that
//! replays the corpus (crates/console/tests/fuzz_corpus.rs).
//!
//! Input layout, every field little-endian and every missing byte read as zero:
//!
//! | bytes  | meaning                                                                 |
//! |--------|-------------------------------------------------------------------------|
//! | 0      | control bits: 0 rx present, 1 tx present, 2 EVENT_IDX, 3 driver ready, |
//! |        | 4 sink blocks on odd writes, 5 emerg_wr write, 6 negotiate features     |
//! | 1      | bytes the sink takes per write (0 means all)                            |
//! | 2..4   | receiveq size                                                           |
//! | 4..10  | receiveq descriptor table, avail ring, used ring, each in 16-byte units |
//! | 10..12 | transmitq size                                                          |
//! | 12..18 | transmitq descriptor table, avail ring, used ring, in 16-byte units     |
//! | 18     | host input length                                                       |
//! | 19     | number of rounds (at most 8)                                            |
//! | 20..   | host input, then per round 8 bytes: four (offset u16) writes of a byte  |
//! |        | value taken from the next round byte, then guest memory contents        |

use std::collections::VecDeque;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ttyvm_console::{Backend, Console, Limits, Source};
use ttyvm_term::WindowSize;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Size of the main guest memory region; a second small region sits after a gap.
const MAIN_REGION: usize = 0x1_0000;
const GAP_REGION_START: u64 = 0x2_0000;
const GAP_REGION: usize = 0x1000;
const MAX_ROUNDS: usize = 8;
const HEADER: usize = 20;

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        let value = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        value
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    fn bytes(&mut self, len: usize) -> &[u8] {
        let start = self.pos.min(self.data.len());
        let end = (self.pos + len).min(self.data.len());
        self.pos += len;
        &self.data[start..end]
    }
}

/// A backend whose input comes from the fuzz input and whose output side can be slow.
struct FuzzBackend {
    input: VecDeque<u8>,
    per_call: usize,
    block_odd: bool,
    writes: usize,
    written: Arc<AtomicUsize>,
    read: Arc<AtomicUsize>,
}

/// The effects of one run, which the corpus test checks to see that each seed reaches its path.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Guest output bytes the backend accepted.
    pub output: usize,
    /// Host input bytes still buffered or unread at the end.
    pub input_left: usize,
}

impl Backend for FuzzBackend {
    fn has_size(&self) -> bool {
        true
    }

    fn window_size(&self) -> io::Result<WindowSize> {
        Ok(WindowSize::new(24, 80))
    }

    fn fd(&self, _source: Source) -> Option<BorrowedFd<'_>> {
        None
    }

    fn read_input(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let len = buf.len().min(self.input.len());
        for (slot, byte) in buf.iter_mut().zip(self.input.drain(..len)) {
            *slot = byte;
        }
        self.read.fetch_add(len, Ordering::Relaxed);
        Ok(len)
    }

    fn write_output(&mut self, data: &[u8]) -> io::Result<usize> {
        self.writes += 1;
        if self.block_odd && self.writes % 2 == 1 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let len = if self.per_call == 0 {
            data.len()
        } else {
            self.per_call.min(data.len())
        };
        self.written.fetch_add(len, Ordering::Relaxed);
        Ok(len)
    }
}

fn queue(reader: &mut Reader<'_>) -> Queue {
    let size = reader.u16();
    let desc = u64::from(reader.u16()) * 16;
    let avail = u64::from(reader.u16()) * 16;
    let used = u64::from(reader.u16()) * 16;
    // Queue::new(256) cannot fail: 256 is a power of two within the virtio maximum.
    let mut queue = Queue::new(256).expect("valid max size");
    // Invalid values are rejected by the setters and leave the defaults, as a transport would.
    let _ = queue.try_set_size(size);
    let _ = queue.try_set_desc_table_address(GuestAddress(desc));
    let _ = queue.try_set_avail_ring_address(GuestAddress(avail));
    let _ = queue.try_set_used_ring_address(GuestAddress(used));
    queue.set_ready(true);
    queue
}

/// Runs one fuzz input: builds guest memory and queues from it and processes them for a few
/// rounds, with the guest changing memory between rounds.
pub fn run(data: &[u8]) -> Summary {
    let mut reader = Reader { data, pos: 0 };
    let control = reader.byte();
    let per_call = usize::from(reader.byte());
    let mut receiveq = queue(&mut reader);
    let mut transmitq = queue(&mut reader);
    receiveq.set_event_idx(control & 4 != 0);
    transmitq.set_event_idx(control & 4 != 0);
    let input_len = usize::from(reader.byte());
    let rounds = usize::from(reader.byte()) % (MAX_ROUNDS + 1);
    debug_assert_eq!(reader.pos, HEADER);
    let input: VecDeque<u8> = reader.bytes(input_len).iter().copied().collect();
    let round_writes: Vec<u8> = reader.bytes(rounds * 8).to_vec();
    let contents = reader.bytes(MAIN_REGION + GAP_REGION);

    let mem = GuestMemoryMmap::<()>::from_ranges(&[
        (GuestAddress(0), MAIN_REGION),
        (GuestAddress(GAP_REGION_START), GAP_REGION),
    ])
    .expect("fixed, non-overlapping regions");
    let main_len = contents.len().min(MAIN_REGION);
    mem.write_slice(&contents[..main_len], GuestAddress(0))
        .expect("inside the main region");
    mem.write_slice(&contents[main_len..], GuestAddress(GAP_REGION_START))
        .expect("inside the second region");

    let written = Arc::new(AtomicUsize::new(0));
    let read = Arc::new(AtomicUsize::new(0));
    let input_total = input.len();
    let backend = FuzzBackend {
        input,
        per_call,
        block_odd: control & 16 != 0,
        writes: 0,
        written: written.clone(),
        read: read.clone(),
    };
    let limits = Limits {
        output_buffer: 512,
        kept_output: 512,
        input_buffer: 256,
    };
    let mut console = Console::new(Box::new(backend), limits);
    if control & 64 != 0 {
        console.ack_features(console.device_features());
    }
    if control & 8 != 0 {
        console.driver_ready();
    }
    if control & 32 != 0 {
        let _ = console.write_config(8, &[b'!', 0, 0, 0]);
    }

    for round in 0..=rounds {
        console.handle_ready(Source::Input, libc_pollin());
        let rx = (control & 1 != 0).then_some(&mut receiveq);
        let tx = (control & 2 != 0).then_some(&mut transmitq);
        let notify = console.process(&mem, rx, tx);
        assert!(console.buffered_input() <= limits.input_buffer);
        if notify.needs_reset {
            console.reset();
        }
        console.handle_ready(Source::Output, libc_pollout());
        if let Some(writes) = round_writes.get(round * 8..round * 8 + 8) {
            for pair in writes.chunks(4) {
                let offset = u64::from(u16::from_le_bytes([pair[0], pair[1]]));
                let _ = mem.write_slice(&pair[2..4], GuestAddress(offset));
            }
        }
    }
    Summary {
        output: written.load(Ordering::Relaxed),
        input_left: input_total - read.load(Ordering::Relaxed) + console.buffered_input(),
    }
}

fn libc_pollin() -> i16 {
    0x001
}

fn libc_pollout() -> i16 {
    0x004
}
