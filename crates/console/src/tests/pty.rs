//! The pty backend with a real pty pair; the test plays the client by opening the subsidiary
//! path.

use super::*;
use crate::backend::PollFd;
use crate::PtyBackend;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use ttyvm_term::{set_window_size, Termios};

const WAIT: Duration = Duration::from_secs(5);

fn open_console(limits: Limits) -> (Console, PathBuf) {
    let backend = PtyBackend::open(Some(WindowSize::new(24, 80))).unwrap();
    let path = backend.path().to_path_buf();
    (Console::new(Box::new(backend), limits), path)
}

fn attach(path: &PathBuf) -> File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
        .unwrap()
}

/// Polls the console's fds once for up to `timeout` and handles each ready one. Returns how
/// many were ready.
fn poll_and_handle(console: &mut Console, timeout: Duration) -> usize {
    let fds: Vec<PollFd> = console.poll_fds();
    let mut entries: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.fd,
            events: fd.events,
            revents: 0,
        })
        .collect();
    // SAFETY: poll reads and writes `entries.len()` pollfds in the live vector.
    let ready = unsafe {
        libc::poll(
            entries.as_mut_ptr(),
            entries.len() as libc::nfds_t,
            timeout.as_millis() as i32,
        )
    };
    assert!(ready >= 0, "poll failed: {}", io::Error::last_os_error());
    for (fd, entry) in fds.iter().zip(&entries) {
        if entry.revents != 0 {
            console.handle_ready(fd.source, entry.revents);
        }
    }
    ready as usize
}

/// Handles the console's fds until `done` holds, failing after [`WAIT`].
fn handle_until(console: &mut Console, mut done: impl FnMut(&mut Console) -> bool) {
    let start = Instant::now();
    while !done(console) {
        assert!(
            start.elapsed() < WAIT,
            "condition not reached within {WAIT:?}"
        );
        poll_and_handle(console, Duration::from_millis(50));
    }
}

/// Reads from the client until `len` bytes arrived, failing after [`WAIT`].
fn read_client(client: &mut File, len: usize) -> Vec<u8> {
    let mut data = Vec::new();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while data.len() < len {
        assert!(
            start.elapsed() < WAIT,
            "client got {} of {len} bytes",
            data.len()
        );
        match client.read(&mut buf) {
            Ok(read) => data.extend_from_slice(&buf[..read]),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(err) => panic!("client read failed: {err}"),
        }
    }
    data
}

fn main_fd_polled(console: &Console) -> bool {
    console
        .poll_fds()
        .iter()
        .any(|fd| matches!(fd.source, Source::Input | Source::Output))
}

fn transmit(console: &mut Console, mem: &GuestMemoryMmap, data: &[u8]) -> usize {
    let vq = MockSplitQueue::create(mem, GuestAddress(0x8000), 64);
    let chunk = 16;
    for (i, part) in data.chunks(chunk).enumerate() {
        let addr = DATA + (i * 0x100) as u64;
        fill(mem, addr, part);
        add_chain(&vq, i as u16, &[(addr, part.len() as u32)], false);
    }
    let mut queue = new_queue(&vq);
    console.process(mem, None, Some(&mut queue));
    used_entries(&vq).len()
}

#[test]
fn pty_subsidiary_is_raw() {
    let (_console, path) = open_console(Limits::default());
    let client = attach(&path);
    let termios = Termios::get(client.as_fd()).unwrap();
    assert_eq!(termios.as_libc().c_iflag & libc::ICRNL, 0);
    assert_eq!(termios.as_libc().c_lflag & libc::ECHO, 0);
    assert_eq!(termios.as_libc().c_lflag & libc::ICANON, 0);
}

#[test]
fn pty_attach_detach_cycle() {
    let mem = memory();
    let limits = Limits {
        kept_output: 16,
        ..Limits::default()
    };
    let (mut console, path) = open_console(limits);

    // Detached: the main side is not polled, and the guest is never blocked.
    assert!(!main_fd_polled(&console), "main fd polled while detached");
    // The backend's and the listener's own closes of the subsidiary side may still be queued
    // as inotify events; after those nothing may stay ready.
    poll_and_handle(&mut console, Duration::from_millis(100));
    assert_eq!(poll_and_handle(&mut console, Duration::from_millis(100)), 0);
    let early = pattern(40, 1);
    assert_eq!(
        transmit(&mut console, &mem, &early),
        3,
        "a chain was held while detached"
    );
    assert_eq!(console.dropped_output(), 24);
    assert_eq!(console.buffered_output(), 16);

    // Attach: the kept output arrives first, then new output.
    let mut client = attach(&path);
    handle_until(&mut console, |console| console.buffered_output() == 0);
    assert_eq!(read_client(&mut client, 16), early[24..]);
    assert!(
        main_fd_polled(&console),
        "main fd not polled while attached"
    );
    transmit(&mut console, &mem, b"after attach");
    assert_eq!(read_client(&mut client, 12), b"after attach");

    // Detach: the main side leaves the poll set and nothing stays ready.
    drop(client);
    handle_until(&mut console, |console| !main_fd_polled(console));
    poll_and_handle(&mut console, Duration::from_millis(100));
    assert_eq!(poll_and_handle(&mut console, Duration::from_millis(100)), 0);
    let late = pattern(20, 9);
    transmit(&mut console, &mem, &late);
    assert_eq!(console.dropped_output(), 28);

    // Attach again: the output kept meanwhile comes first.
    let mut client = attach(&path);
    handle_until(&mut console, |console| console.buffered_output() == 0);
    assert_eq!(read_client(&mut client, 16), late[4..]);
}

#[test]
fn pty_client_input_reaches_guest() {
    let mem = memory();
    let (mut console, path) = open_console(Limits::default());
    let mut client = attach(&path);
    handle_until(&mut console, |console| main_fd_polled(console));
    client.write_all(b"typed\r").unwrap();
    handle_until(&mut console, |console| console.buffered_input() == 6);

    let vq = MockSplitQueue::new(&mem, 16);
    add_chain(&vq, 0, &[(DATA, 64)], true);
    let mut queue = new_queue(&vq);
    console.process(&mem, Some(&mut queue), None);
    assert_eq!(used_entries(&vq)[0].len(), 6);
    // Raw mode: the carriage return is not turned into a newline.
    assert_eq!(read(&mem, DATA, 6), b"typed\r");
}

#[test]
fn pty_input_backpressure() {
    let mem = memory();
    let limits = Limits {
        input_buffer: 8,
        ..Limits::default()
    };
    let (mut console, path) = open_console(limits);
    let mut client = attach(&path);
    handle_until(&mut console, |console| main_fd_polled(console));
    let input = pattern(20, 4);
    client.write_all(&input).unwrap();
    handle_until(&mut console, |console| console.buffered_input() == 8);
    let input_polled = |console: &Console| {
        console
            .poll_fds()
            .iter()
            .any(|fd| fd.source == Source::Input)
    };
    assert!(
        !input_polled(&console),
        "input fd polled while the buffer is full"
    );

    let vq = MockSplitQueue::new(&mem, 16);
    let mut queue = new_queue(&vq);
    let mut delivered = Vec::new();
    for i in 0..3u16 {
        let addr = DATA + u64::from(i) * 0x100;
        add_chain(&vq, i, &[(addr, 8)], true);
        console.process(&mem, Some(&mut queue), None);
        let used = used_entries(&vq);
        delivered.extend(read(&mem, addr, used[usize::from(i)].len() as usize));
        assert!(
            input_polled(&console),
            "input fd not polled after buffers arrived"
        );
        handle_until(&mut console, |console| {
            console.buffered_input() == (20 - delivered.len()).min(8)
        });
    }
    assert_eq!(delivered.len(), 20);
    assert_eq!(delivered, input);
}

#[test]
fn pty_slow_client_blocks_guest() {
    let mem = memory();
    let limits = Limits {
        output_buffer: 1024,
        ..Limits::default()
    };
    let (mut console, path) = open_console(limits);
    let mut client = attach(&path);
    handle_until(&mut console, |console| main_fd_polled(console));

    // More than the pty and the output buffer hold together, while the client reads nothing.
    const CHAINS: usize = 64;
    const CHAIN_LEN: usize = 8192;
    let data = pattern(CHAINS * CHAIN_LEN, 3);
    fill(&mem, DATA, &data);
    let vq = MockSplitQueue::create(&mem, GuestAddress(0x8000), CHAINS as u16);
    for i in 0..CHAINS {
        let addr = DATA + (i * CHAIN_LEN) as u64;
        add_chain(&vq, i as u16, &[(addr, CHAIN_LEN as u32)], false);
    }
    let mut queue = new_queue(&vq);
    console.process(&mem, None, Some(&mut queue));
    let used_before = used_entries(&vq).len();
    assert!(
        used_before < CHAINS,
        "the device took every chain from a stalled client"
    );
    assert!(console
        .poll_fds()
        .iter()
        .any(|fd| fd.source == Source::Output && fd.events == libc::POLLOUT));
    println!("chains taken before the client read anything: {used_before} of {CHAINS}");

    let mut received = Vec::new();
    let start = Instant::now();
    let mut buf = vec![0u8; 65536];
    while received.len() < data.len() {
        assert!(
            start.elapsed() < WAIT,
            "client got {} bytes",
            received.len()
        );
        match client.read(&mut buf) {
            Ok(read) => received.extend_from_slice(&buf[..read]),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                poll_and_handle(&mut console, Duration::from_millis(10));
                console.process(&mem, None, Some(&mut queue));
            }
            Err(err) => panic!("client read failed: {err}"),
        }
    }
    assert_eq!(received.len(), data.len());
    assert!(
        received == data,
        "client output differs from the guest's bytes"
    );
    assert_eq!(used_entries(&vq).len(), CHAINS);
    assert_eq!(console.dropped_output(), 0);
}

#[test]
fn pty_resize_raises_config_change() {
    let (mut console, path) = open_console(Limits::default());
    console.ack_features(console.device_features());
    console.driver_ready();
    let mem = memory();
    assert!(console.process(&mem, None, None).config_changed);
    assert_eq!(console.size(), WindowSize::new(24, 80));

    let client = attach(&path);
    set_window_size(client.as_fd(), WindowSize::new(50, 132)).unwrap();
    handle_until(&mut console, |console| {
        console.size() == WindowSize::new(50, 132)
    });
    assert!(console.process(&mem, None, None).config_changed);
    assert!(!console.process(&mem, None, None).config_changed);
    drop(client);
}
