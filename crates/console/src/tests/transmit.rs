use super::*;
use crate::{Notify, TRANSMITQ};

fn tx_used(notify: Notify) -> bool {
    notify.used[usize::from(TRANSMITQ)]
}

#[test]
fn transmit_in_order_across_chained_descriptors() {
    let mem = memory();
    let vq = MockSplitQueue::new(&mem, 16);
    let parts = [
        pattern(7, 1),
        pattern(300, 2),
        pattern(1, 3),
        pattern(4096, 4),
        pattern(50, 5),
    ];
    let mut addr = DATA;
    let mut buffers = Vec::new();
    for part in &parts {
        fill(&mem, addr, part);
        buffers.push((addr, part.len() as u32));
        addr += 0x2000;
    }
    let heads = [
        add_chain(&vq, 0, &buffers[0..2], false),
        add_chain(&vq, 2, &buffers[2..5], false),
    ];
    let mut queue = new_queue(&vq);
    let (mut console, sink) = ready_console(Sink::default(), Limits::default());

    let notify = console.process(&mem, None, Some(&mut queue));

    assert!(tx_used(notify));
    assert_eq!(lock(&sink).output, parts.concat());
    let used = used_entries(&vq);
    assert_eq!(used.len(), 2);
    for (entry, head) in used.iter().zip(heads) {
        assert_eq!(entry.id(), u32::from(head));
        assert_eq!(entry.len(), 0);
    }
}

#[test]
fn transmit_empty_ring_signals_nothing() {
    let mem = memory();
    let vq = MockSplitQueue::new(&mem, 16);
    let mut queue = new_queue(&vq);
    let (mut console, sink) = ready_console(Sink::default(), Limits::default());
    let notify = console.process(&mem, None, Some(&mut queue));
    assert!(!tx_used(notify));
    assert!(lock(&sink).output.is_empty());
}

#[test]
fn transmit_one_byte_sink_delivers_1mib_in_order() {
    const TOTAL: usize = 1 << 20;
    const CHAIN_BUFFERS: usize = 2;
    const BUFFER: usize = 4096;
    let mem = memory();
    let vq = MockSplitQueue::new(&mem, 256);
    let data = pattern(TOTAL, 9);
    fill(&mem, DATA, &data);
    for chain in 0..TOTAL / (CHAIN_BUFFERS * BUFFER) {
        let base = DATA + (chain * CHAIN_BUFFERS * BUFFER) as u64;
        let buffers = [(base, BUFFER as u32), (base + BUFFER as u64, BUFFER as u32)];
        add_chain(&vq, (chain * CHAIN_BUFFERS) as u16, &buffers, false);
    }
    let mut queue = new_queue(&vq);
    let sink_config = Sink {
        per_call: Some(1),
        block_alternate: true,
        ..Sink::default()
    };
    let (mut console, sink) = ready_console(sink_config, Limits::default());

    let mut rounds = 0;
    let mut saw_output_fd = false;
    while lock(&sink).output.len() < TOTAL {
        rounds += 1;
        assert!(rounds < 10 * TOTAL, "no progress after {rounds} rounds");
        console.process(&mem, None, Some(&mut queue));
        assert!(console.buffered_output() <= Limits::default().output_buffer);
        let output_fd = console
            .poll_fds()
            .into_iter()
            .find(|fd| fd.source == Source::Output);
        if let Some(fd) = output_fd {
            assert_eq!(fd.events, libc::POLLOUT);
            saw_output_fd = true;
            console.handle_ready(Source::Output, libc::POLLOUT);
        }
    }
    console.process(&mem, None, Some(&mut queue));

    assert!(
        saw_output_fd,
        "a blocked write never put the output fd in poll_fds"
    );
    assert_eq!(lock(&sink).output.len(), TOTAL);
    assert!(
        lock(&sink).output == data,
        "output differs from the guest's bytes"
    );
    assert_eq!(used_entries(&vq).len(), TOTAL / (CHAIN_BUFFERS * BUFFER));
    println!("1 MiB through a 1-byte sink in {rounds} process rounds");
}

#[test]
fn transmit_full_buffer_stops_taking_descriptors() {
    let mem = memory();
    let vq = MockSplitQueue::new(&mem, 16);
    let limits = Limits {
        output_buffer: 100,
        ..Limits::default()
    };
    fill(&mem, DATA, &pattern(60, 1));
    fill(&mem, DATA + 0x1000, &pattern(60, 2));
    fill(&mem, DATA + 0x2000, &pattern(60, 3));
    for (i, addr) in [DATA, DATA + 0x1000, DATA + 0x2000].into_iter().enumerate() {
        add_chain(&vq, i as u16, &[(addr, 60)], false);
    }
    let mut queue = new_queue(&vq);
    let (mut console, sink) = ready_console(
        Sink {
            full: true,
            ..Sink::default()
        },
        limits,
    );

    console.process(&mem, None, Some(&mut queue));

    // The first chain fits; 40 bytes of the second fit and it stays unused.
    assert_eq!(used_entries(&vq).len(), 1);
    assert_eq!(console.buffered_output(), 100);
    assert!(console
        .poll_fds()
        .iter()
        .any(|fd| fd.source == Source::Output && fd.events == libc::POLLOUT));

    lock(&sink).full = false;
    console.handle_ready(Source::Output, libc::POLLOUT);
    console.process(&mem, None, Some(&mut queue));

    assert_eq!(used_entries(&vq).len(), 3);
    let expected = [pattern(60, 1), pattern(60, 2), pattern(60, 3)].concat();
    assert_eq!(lock(&sink).output, expected);
    assert!(!console
        .poll_fds()
        .iter()
        .any(|fd| fd.source == Source::Output));
}

#[test]
fn transmit_event_idx_suppresses_signal() {
    let mem = memory();
    let vq = MockSplitQueue::new(&mem, 16);
    fill(&mem, DATA, b"ab");
    add_chain(&vq, 0, &[(DATA, 1)], false);
    let mut queue = new_queue(&vq);
    virtio_queue::QueueT::set_event_idx(&mut queue, true);
    let (mut console, sink) = ready_console(Sink::default(), Limits::default());

    // used_event is 0: the first used entry crosses it.
    assert!(tx_used(console.process(&mem, None, Some(&mut queue))));

    // The driver asks to be signalled only after used index 10.
    let used_event = vq.avail().end().0 - 2;
    mem.write_obj(10u16.to_le(), GuestAddress(used_event))
        .unwrap();
    add_chain(&vq, 1, &[(DATA + 1, 1)], false);
    assert!(!tx_used(console.process(&mem, None, Some(&mut queue))));
    assert_eq!(lock(&sink).output, b"ab");
    assert_eq!(used_entries(&vq).len(), 2);
}

#[test]
fn emerg_write_emits_byte_when_negotiated() {
    let (mut console, sink) = ready_console(Sink::default(), Limits::default());
    console.write_config(8, &[b'!', 0, 0, 0]).unwrap();
    assert_eq!(lock(&sink).output, b"!");

    let (backend, sink) = TestBackend::new(Sink::default());
    let mut console = Console::new(Box::new(backend), Limits::default());
    console.ack_features(VIRTIO_F_VERSION_1);
    let err = console.write_config(8, &[b'!', 0, 0, 0]).unwrap_err();
    assert_eq!(err, crate::ConfigError::EmergWriteNotNegotiated);
    assert!(lock(&sink).output.is_empty());
}

#[test]
fn emerg_write_follows_buffered_output() {
    let mem = memory();
    let vq = MockSplitQueue::new(&mem, 16);
    fill(&mem, DATA, b"before");
    add_chain(&vq, 0, &[(DATA, 6)], false);
    let mut queue = new_queue(&vq);
    let (mut console, sink) = ready_console(
        Sink {
            full: true,
            ..Sink::default()
        },
        Limits::default(),
    );
    console.process(&mem, None, Some(&mut queue));
    console.write_config(8, b"!").unwrap();
    lock(&sink).full = false;
    console.handle_ready(Source::Output, libc::POLLOUT);
    assert_eq!(lock(&sink).output, b"before!");
}
