use super::*;
use crate::{Notify, RECEIVEQ};

fn rx_used(notify: Notify) -> bool {
    notify.used[usize::from(RECEIVEQ)]
}

fn console_with_input(input: &[u8], limits: Limits) -> (Console, Arc<Mutex<Sink>>) {
    let (mut console, sink) = ready_console(Sink::default(), limits);
    lock(&sink).input.extend(input);
    console.handle_ready(Source::Input, libc::POLLIN);
    (console, sink)
}

#[test]
fn receive_fills_posted_buffers_in_order() {
    let mem = memory();
    let vq = MockSplitQueue::new(&mem, 16);
    let input = pattern(30, 7);
    let (mut console, _sink) = console_with_input(&input, Limits::default());
    assert_eq!(console.buffered_input(), 30);
    let first = add_chain(&vq, 0, &[(DATA, 8), (DATA + 0x100, 8)], true);
    let second = add_chain(&vq, 2, &[(DATA + 0x200, 32)], true);
    let mut queue = new_queue(&vq);

    let notify = console.process(&mem, Some(&mut queue), None);

    assert!(rx_used(notify));
    let used = used_entries(&vq);
    assert_eq!(used.len(), 2);
    assert_eq!(used[0].id(), u32::from(first));
    assert_eq!(used[0].len(), 16);
    assert_eq!(used[1].id(), u32::from(second));
    assert_eq!(used[1].len(), 14);
    assert_eq!(read(&mem, DATA, 8), input[0..8]);
    assert_eq!(read(&mem, DATA + 0x100, 8), input[8..16]);
    assert_eq!(read(&mem, DATA + 0x200, 14), input[16..30]);
    assert_eq!(console.buffered_input(), 0);
}

#[test]
fn receive_without_input_leaves_buffers_posted() {
    let mem = memory();
    let vq = MockSplitQueue::new(&mem, 16);
    add_chain(&vq, 0, &[(DATA, 8)], true);
    let mut queue = new_queue(&vq);
    let (mut console, _sink) = ready_console(Sink::default(), Limits::default());
    let notify = console.process(&mem, Some(&mut queue), None);
    assert!(!rx_used(notify));
    assert!(used_entries(&vq).is_empty());
}

#[test]
fn receive_input_waits_for_later_buffers() {
    let mem = memory();
    let vq = MockSplitQueue::new(&mem, 16);
    let input = pattern(20, 3);
    let (mut console, _sink) = console_with_input(&input, Limits::default());
    add_chain(&vq, 0, &[(DATA, 12)], true);
    let mut queue = new_queue(&vq);
    console.process(&mem, Some(&mut queue), None);
    assert_eq!(console.buffered_input(), 8);

    add_chain(&vq, 1, &[(DATA + 0x100, 12)], true);
    let notify = console.process(&mem, Some(&mut queue), None);

    assert!(rx_used(notify));
    let used = used_entries(&vq);
    assert_eq!(used[1].len(), 8);
    assert_eq!(read(&mem, DATA, 12), input[..12]);
    assert_eq!(read(&mem, DATA + 0x100, 8), input[12..]);
}

#[test]
fn receive_full_input_buffer_leaves_poll_set() {
    let mem = memory();
    let vq = MockSplitQueue::new(&mem, 16);
    let limits = Limits {
        input_buffer: 16,
        ..Limits::default()
    };
    let (mut console, sink) = ready_console(Sink::default(), limits);
    let has_input = |console: &Console| {
        console
            .poll_fds()
            .iter()
            .any(|fd| fd.source == Source::Input && fd.events == libc::POLLIN)
    };
    assert!(has_input(&console));

    let input = pattern(40, 5);
    lock(&sink).input.extend(&input);
    console.handle_ready(Source::Input, libc::POLLIN);
    assert_eq!(console.buffered_input(), 16);
    assert!(
        !has_input(&console),
        "input fd polled while the input buffer is full"
    );
    assert_eq!(
        lock(&sink).input.len(),
        24,
        "the device read past its input bound"
    );

    add_chain(&vq, 0, &[(DATA, 10)], true);
    let mut queue = new_queue(&vq);
    console.process(&mem, Some(&mut queue), None);
    assert_eq!(console.buffered_input(), 6);
    assert!(
        has_input(&console),
        "input fd not polled after buffers arrived"
    );

    console.handle_ready(Source::Input, libc::POLLIN);
    add_chain(&vq, 1, &[(DATA + 0x100, 64)], true);
    console.process(&mem, Some(&mut queue), None);
    console.handle_ready(Source::Input, libc::POLLIN);
    add_chain(&vq, 2, &[(DATA + 0x200, 64)], true);
    console.process(&mem, Some(&mut queue), None);
    let used = used_entries(&vq);
    let delivered: Vec<u8> = [
        read(&mem, DATA, used[0].len() as usize),
        read(&mem, DATA + 0x100, used[1].len() as usize),
        read(&mem, DATA + 0x200, used[2].len() as usize),
    ]
    .concat();
    assert_eq!(delivered, input);
}

#[test]
fn reset_keeps_buffered_bytes() {
    let mem = memory();
    let (mut console, sink) = ready_console(
        Sink {
            full: true,
            ..Sink::default()
        },
        Limits::default(),
    );
    let vq = MockSplitQueue::new(&mem, 16);
    fill(&mem, DATA, b"guest output");
    add_chain(&vq, 0, &[(DATA, 12)], false);
    let mut txq = new_queue(&vq);
    console.process(&mem, None, Some(&mut txq));
    lock(&sink).input.extend(b"host input");
    console.handle_ready(Source::Input, libc::POLLIN);
    assert_eq!(console.buffered_output(), 12);
    assert_eq!(console.buffered_input(), 10);

    console.reset();

    assert_eq!(console.acked_features(), 0);
    assert_eq!(console.buffered_output(), 12);
    assert_eq!(console.buffered_input(), 10);

    // A next driver gets the input, and the output reaches the backend once it drains.
    console.ack_features(console.device_features());
    console.driver_ready();
    let rx = MockSplitQueue::create(&mem, GuestAddress(0x8000), 16);
    add_chain(&rx, 0, &[(DATA + 0x1000, 64)], true);
    let mut rxq = new_queue(&rx);
    console.process(&mem, Some(&mut rxq), None);
    assert_eq!(read(&mem, DATA + 0x1000, 10), b"host input");
    lock(&sink).full = false;
    console.handle_ready(Source::Output, libc::POLLOUT);
    assert_eq!(lock(&sink).output, b"guest output");
}
