//! `ttyvm serve` against a frontend of the test's own, for what no real guest does on purpose:
//! a frontend that truncates the guest memory file it handed over.

#[path = "common/serve.rs"]
mod serve_common;

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serve_common::{listening_server, SocketDir};
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const MEMORY_SIZE: u64 = 0x10_0000;
const GUEST_BASE: u64 = 0x10_0000;
const USER_BASE: u64 = 0x7f00_0000_0000;
const QUEUE_SIZE: u16 = 16;
/// Each ring's descriptors, then its available ring at 4 KiB and its used ring at 8 KiB.
const RING_STRIDE: u64 = 0x4000;

fn memfd(size: u64) -> File {
    // SAFETY: the name is a NUL-terminated literal and memfd_create takes no other pointers.
    let fd = unsafe { libc::memfd_create(c"guest".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: memfd_create returned a new fd that nothing else owns.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(size).unwrap();
    file
}

/// Brings both rings up in `memory` and returns their kick and call eventfds.
fn setup_rings(frontend: &mut Frontend, memory: &File) -> Vec<(EventFd, EventFd)> {
    let region = VhostUserMemoryRegionInfo {
        guest_phys_addr: GUEST_BASE,
        memory_size: MEMORY_SIZE,
        userspace_addr: USER_BASE,
        mmap_offset: 0,
        mmap_handle: memory.as_raw_fd(),
    };
    frontend.set_mem_table(&[region]).unwrap();
    let mut eventfds = Vec::new();
    for queue in 0..2 {
        let base = USER_BASE + queue as u64 * RING_STRIDE;
        let config = VringConfigData {
            queue_max_size: QUEUE_SIZE,
            queue_size: QUEUE_SIZE,
            flags: 0,
            desc_table_addr: base,
            avail_ring_addr: base + 0x1000,
            used_ring_addr: base + 0x2000,
            log_addr: None,
        };
        let kick = EventFd::new(EFD_NONBLOCK).unwrap();
        let call = EventFd::new(EFD_NONBLOCK).unwrap();
        frontend.set_vring_num(queue, QUEUE_SIZE).unwrap();
        frontend.set_vring_base(queue, 0).unwrap();
        frontend.set_vring_addr(queue, &config).unwrap();
        frontend.set_vring_call(queue, &call).unwrap();
        frontend.set_vring_kick(queue, &kick).unwrap();
        frontend.set_vring_enable(queue, true).unwrap();
        eventfds.push((kick, call));
    }
    eventfds
}

/// Returns whether the server closed `stream` within `timeout`.
fn closed_within(stream: &UnixStream, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 64];
    while Instant::now() < deadline {
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        if let Ok(0) = (&*stream).read(&mut buf) {
            return true;
        }
    }
    false
}

#[test]
fn truncated_guest_memory_drops_connection() {
    let dir = SocketDir::new();
    let socket = dir.join("console.sock");
    let mut server = listening_server(&socket, "null", &["-vv"]);
    let stream = UnixStream::connect(&socket).unwrap();
    let mut frontend = Frontend::from_stream(stream.try_clone().unwrap(), 2);
    frontend.set_owner().unwrap();
    let features = frontend.get_features().unwrap();
    frontend.set_features(features).unwrap();
    let memory = memfd(MEMORY_SIZE);
    let eventfds = setup_rings(&mut frontend, &memory);
    // The setup requests take no reply. The server serves requests in order, so the reply to
    // this one comes after it has mapped the memory and set up the rings.
    frontend.get_features().unwrap();

    // The rings now lie in pages the file no longer has; the kick makes the server read them.
    memory.set_len(0).unwrap();
    eventfds[1].0.write(1).unwrap();

    assert!(
        closed_within(&stream, Duration::from_secs(5)),
        "the server kept the connection whose memory was truncated; its log:\n{}",
        server.stderr()
    );
    assert!(
        server.wait_timeout(Duration::from_millis(300)).is_err(),
        "the server exited instead of dropping only the connection"
    );
    assert!(
        server.stderr().contains("guest memory vanished"),
        "the log does not name the fault:\n{}",
        server.stderr()
    );
    // A new frontend is still served.
    let next = Frontend::connect(&socket, 2).unwrap();
    assert!(next.get_features().is_ok());
}
