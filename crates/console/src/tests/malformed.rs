//! Each malformed chain is returned used with length 0 (or, where no used entry can be written,
//! the device enters NEEDS_RESET), nothing panics, and the next good chain is still processed.

use super::*;
use virtio_bindings::bindings::virtio_ring::VRING_DESC_F_INDIRECT;

const NEXT: u16 = VRING_DESC_F_NEXT as u16;
const WRITE: u16 = VRING_DESC_F_WRITE as u16;
const INDIRECT: u16 = VRING_DESC_F_INDIRECT as u16;
const QUEUE_SIZE: u16 = 16;
const INDIRECT_TABLE: u64 = DATA + 0x8000;

fn desc(addr: u64, len: u32, flags: u16, next: u16) -> SplitDescriptor {
    SplitDescriptor::new(addr, len, flags, next)
}

/// Malformed chains, placed at descriptor index 0, for a queue the device `device_writes` to.
fn malformed_cases(
    mem: &GuestMemoryMmap,
    device_writes: bool,
) -> Vec<(&'static str, Vec<SplitDescriptor>)> {
    let ok = flags(device_writes);
    let wrong = flags(!device_writes);
    let indirect_table = |descs: &[SplitDescriptor]| {
        for (i, d) in descs.iter().enumerate() {
            mem.write_obj(
                RawDescriptor::from(*d),
                GuestAddress(INDIRECT_TABLE + 16 * i as u64),
            )
            .unwrap();
        }
    };
    let mut cases = vec![
        ("wrong direction", vec![desc(DATA, 8, wrong, 0)]),
        (
            "wrong direction in second descriptor",
            vec![desc(DATA, 8, ok | NEXT, 1), desc(DATA + 8, 8, wrong, 0)],
        ),
        (
            "address past end of memory",
            vec![desc(MEM_SIZE - 4, 16, ok, 0)],
        ),
        ("address at u64 max", vec![desc(u64::MAX - 1, 16, ok, 0)]),
        (
            "loop",
            vec![desc(DATA, 8, ok | NEXT, 1), desc(DATA + 8, 8, ok | NEXT, 0)],
        ),
        ("self loop", vec![desc(DATA, 8, ok | NEXT, 0)]),
        (
            "next index outside table",
            vec![desc(DATA, 8, ok | NEXT, 200)],
        ),
        (
            "longer than the queue",
            // Every descriptor but the good chain's, linked in a ring, so the walk runs out of
            // its queue-size budget.
            (0..QUEUE_SIZE - 1)
                .map(|i| desc(DATA, 1, ok | NEXT, (i + 1) % (QUEUE_SIZE - 1)))
                .collect(),
        ),
        (
            "indirect table outside memory",
            vec![desc(MEM_SIZE + 0x1000, 64, INDIRECT, 0)],
        ),
        (
            "indirect table of odd length",
            vec![desc(INDIRECT_TABLE, 17, INDIRECT, 0)],
        ),
    ];
    // Not every case can own the one indirect table, so the table-content cases are separate.
    if device_writes {
        indirect_table(&[
            desc(DATA, 8, WRITE | NEXT, 1),
            desc(DATA, 8, WRITE | NEXT, 0),
        ]);
        cases.push((
            "loop inside indirect table",
            vec![desc(INDIRECT_TABLE, 32, INDIRECT, 0)],
        ));
    } else {
        indirect_table(&[
            desc(DATA, 8, NEXT, 1),
            desc(INDIRECT_TABLE, 16, INDIRECT, 0),
        ]);
        cases.push((
            "nested indirect",
            vec![desc(INDIRECT_TABLE, 32, INDIRECT, 0)],
        ));
    }
    cases
}

#[test]
fn transmit_malformed_chains_skipped() {
    let mem = memory();
    for (name, bad) in malformed_cases(&mem, false) {
        let vq = MockSplitQueue::new(&mem, QUEUE_SIZE);
        add_raw(&vq, 0, &bad);
        let good = QUEUE_SIZE - 1;
        fill(&mem, DATA + 0x1000, b"good");
        add_raw(&vq, good, &[desc(DATA + 0x1000, 4, 0, 0)]);
        let mut queue = new_queue(&vq);
        let (mut console, sink) = ready_console(Sink::default(), Limits::default());

        let notify = console.process(&mem, None, Some(&mut queue));

        assert!(!notify.needs_reset, "{name}: entered NEEDS_RESET");
        let used = used_entries(&vq);
        assert_eq!(used.len(), 2, "{name}: used entries");
        assert_eq!((used[0].id(), used[0].len()), (0, 0), "{name}: bad chain");
        assert_eq!(used[1].id(), u32::from(good), "{name}: good chain");
        assert_eq!(lock(&sink).output, b"good", "{name}: output");
    }
}

#[test]
fn receive_malformed_chains_skipped() {
    let mem = memory();
    for (name, bad) in malformed_cases(&mem, true) {
        let vq = MockSplitQueue::new(&mem, QUEUE_SIZE);
        add_raw(&vq, 0, &bad);
        let good = QUEUE_SIZE - 1;
        add_raw(&vq, good, &[desc(DATA + 0x1000, 16, WRITE, 0)]);
        let mut queue = new_queue(&vq);
        let (mut console, sink) = ready_console(Sink::default(), Limits::default());
        lock(&sink).input.extend(b"input");
        console.handle_ready(Source::Input, libc::POLLIN);

        let notify = console.process(&mem, Some(&mut queue), None);

        assert!(!notify.needs_reset, "{name}: entered NEEDS_RESET");
        let used = used_entries(&vq);
        assert_eq!(used.len(), 2, "{name}: used entries");
        assert_eq!((used[0].id(), used[0].len()), (0, 0), "{name}: bad chain");
        assert_eq!(
            (used[1].id(), used[1].len()),
            (u32::from(good), 5),
            "{name}: good"
        );
        assert_eq!(read(&mem, DATA + 0x1000, 5), b"input", "{name}: delivered");
    }
}

#[test]
fn valid_indirect_chain_transmitted() {
    let mem = memory();
    let vq = MockSplitQueue::new(&mem, QUEUE_SIZE);
    fill(&mem, DATA, b"indirect!");
    for (i, d) in [desc(DATA, 4, NEXT, 1), desc(DATA + 4, 5, 0, 0)]
        .iter()
        .enumerate()
    {
        mem.write_obj(
            RawDescriptor::from(*d),
            GuestAddress(INDIRECT_TABLE + 16 * i as u64),
        )
        .unwrap();
    }
    add_raw(&vq, 0, &[desc(INDIRECT_TABLE, 32, INDIRECT, 0)]);
    let mut queue = new_queue(&vq);
    let (mut console, sink) = ready_console(Sink::default(), Limits::default());
    console.process(&mem, None, Some(&mut queue));
    assert_eq!(lock(&sink).output, b"indirect!");
}

#[test]
fn head_index_outside_queue_needs_reset() {
    let mem = memory();
    let vq = MockSplitQueue::new(&mem, QUEUE_SIZE);
    let avail = vq.avail();
    avail.ring().ref_at(0).unwrap().store(QUEUE_SIZE + 3);
    avail.idx().store(1);
    let mut queue = new_queue(&vq);
    let (mut console, _sink) = ready_console(Sink::default(), Limits::default());

    let notify = console.process(&mem, None, Some(&mut queue));
    assert!(notify.needs_reset);
    assert!(
        console.process(&mem, None, Some(&mut queue)).needs_reset,
        "left NEEDS_RESET"
    );

    console.reset();
    console.ack_features(console.device_features());
    console.driver_ready();
    let vq = MockSplitQueue::create(&mem, GuestAddress(0x8000), QUEUE_SIZE);
    fill(&mem, DATA, b"after reset");
    add_chain(&vq, 0, &[(DATA, 11)], false);
    let mut queue = new_queue(&vq);
    let notify = console.process(&mem, None, Some(&mut queue));
    assert!(!notify.needs_reset);
    assert_eq!(used_entries(&vq).len(), 1);
}

#[test]
fn avail_index_past_queue_size_needs_reset() {
    let mem = memory();
    let vq = MockSplitQueue::new(&mem, QUEUE_SIZE);
    vq.avail().idx().store(QUEUE_SIZE + 1);
    let mut queue = new_queue(&vq);
    let (mut console, sink) = ready_console(Sink::default(), Limits::default());
    lock(&sink).input.extend(b"x");
    console.handle_ready(Source::Input, libc::POLLIN);

    let notify = console.process(&mem, Some(&mut queue), None);

    assert!(notify.needs_reset);
    assert!(used_entries(&vq).is_empty());
}

#[test]
fn used_ring_outside_memory_needs_reset() {
    let mem = memory();
    let vq = MockSplitQueue::new(&mem, QUEUE_SIZE);
    fill(&mem, DATA, b"x");
    add_chain(&vq, 0, &[(DATA, 1)], false);
    let mut queue = new_queue(&vq);
    virtio_queue::QueueT::set_used_ring_address(&mut queue, Some(0), Some(1));
    let (mut console, _sink) = ready_console(Sink::default(), Limits::default());
    let notify = console.process(&mem, None, Some(&mut queue));
    assert!(notify.needs_reset);
}

#[test]
fn queue_not_ready_is_skipped() {
    let mem = memory();
    let vq = MockSplitQueue::new(&mem, QUEUE_SIZE);
    fill(&mem, DATA, b"x");
    add_chain(&vq, 0, &[(DATA, 1)], false);
    let mut queue = new_queue(&vq);
    virtio_queue::QueueT::set_ready(&mut queue, false);
    let (mut console, sink) = ready_console(Sink::default(), Limits::default());
    let notify = console.process(&mem, None, Some(&mut queue));
    assert!(!notify.needs_reset);
    assert!(lock(&sink).output.is_empty());
}
