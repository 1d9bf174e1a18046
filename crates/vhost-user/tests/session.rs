//! Sessions driven by the vhost crate's frontend over a socket pair.

mod common;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use common::*;
use ttyvm_vhost_user::{
    ConfigChangeError, Error, Event, VhostUserProtocolFeatures, MAX_MEM_SLOTS,
    OFFERED_PROTOCOL_FEATURES,
};
use vhost::vhost_user::message::{VhostUserConfigFlags, VhostUserHeaderFlag};
use vhost::vhost_user::HandlerResult;
use vhost::vhost_user::{
    Frontend, FrontendReqHandler, VhostUserFrontend, VhostUserFrontendReqHandlerMut,
};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use virtio_queue::desc::split::Descriptor;
use virtio_queue::QueueT;
use vm_memory::{Bytes, FileOffset, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// Guest physical base of the test memory.
const GUEST_BASE: u64 = 0x10_0000;
/// Frontend user address of the same memory; only the backend's translation uses it.
const USER_BASE: u64 = 0x7f00_0000_0000;
const MEMORY_SIZE: u64 = 0x10_0000;
const DESC_OFFSET: u64 = 0x0;
const AVAIL_OFFSET: u64 = 0x1000;
const USED_OFFSET: u64 = 0x2000;
const BUFFER_OFFSET: u64 = 0x4000;
const QUEUE_SIZE: u16 = 16;

fn connect() -> (Frontend, Server) {
    let (frontend_stream, backend_stream) = UnixStream::pair().expect("socket pair");
    frontend_stream
        .set_read_timeout(Some(TIMEOUT))
        .expect("read timeout");
    (
        Frontend::from_stream(frontend_stream, NUM_QUEUES as u64),
        Server::spawn(backend_stream),
    )
}

/// Negotiates all offered features and turns on NEED_REPLY, so every request is acked and
/// the frontend's calls return only after the server handled them.
fn negotiate(frontend: &mut Frontend) {
    frontend.set_owner().expect("SET_OWNER");
    let features = frontend.get_features().expect("GET_FEATURES");
    frontend.set_features(features).expect("SET_FEATURES");
    let protocol = frontend
        .get_protocol_features()
        .expect("GET_PROTOCOL_FEATURES");
    frontend
        .set_protocol_features(protocol)
        .expect("SET_PROTOCOL_FEATURES");
    frontend.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
}

struct Ring {
    guest: GuestMemoryMmap<()>,
    kick: EventFd,
    call: EventFd,
    _memfd: File,
}

/// Maps a memfd as guest memory and sets up ring 0 on it the way QEMU and UML do.
fn setup_ring(frontend: &mut Frontend) -> Ring {
    let memfd = memfd(MEMORY_SIZE);
    let region = VhostUserMemoryRegionInfo {
        guest_phys_addr: GUEST_BASE,
        memory_size: MEMORY_SIZE,
        userspace_addr: USER_BASE,
        mmap_offset: 0,
        mmap_handle: memfd.as_raw_fd(),
    };
    frontend.set_mem_table(&[region]).expect("SET_MEM_TABLE");
    frontend
        .set_vring_num(0, QUEUE_SIZE)
        .expect("SET_VRING_NUM");
    frontend.set_vring_base(0, 0).expect("SET_VRING_BASE");
    let config = VringConfigData {
        queue_max_size: MAX_QUEUE_SIZE,
        queue_size: QUEUE_SIZE,
        flags: 0,
        desc_table_addr: USER_BASE + DESC_OFFSET,
        used_ring_addr: USER_BASE + USED_OFFSET,
        avail_ring_addr: USER_BASE + AVAIL_OFFSET,
        log_addr: None,
    };
    frontend.set_vring_addr(0, &config).expect("SET_VRING_ADDR");
    let call = EventFd::new(EFD_NONBLOCK).expect("call eventfd");
    let kick = EventFd::new(EFD_NONBLOCK).expect("kick eventfd");
    frontend.set_vring_call(0, &call).expect("SET_VRING_CALL");
    frontend.set_vring_kick(0, &kick).expect("SET_VRING_KICK");
    frontend
        .set_vring_enable(0, true)
        .expect("SET_VRING_ENABLE");
    let file_offset = FileOffset::new(memfd.try_clone().expect("clone memfd"), 0);
    let guest = GuestMemoryMmap::from_ranges_with_files([(
        GuestAddress(GUEST_BASE),
        MEMORY_SIZE as usize,
        Some(file_offset),
    )])
    .expect("frontend view of guest memory");
    Ring {
        guest,
        kick,
        call,
        _memfd: memfd,
    }
}

/// Places one 64-byte device-writable buffer at the head of ring 0 and kicks.
fn post_buffer(ring: &Ring) {
    let descriptor = Descriptor::new(GUEST_BASE + BUFFER_OFFSET, 64, 2, 0);
    ring.guest
        .write_obj(descriptor, GuestAddress(GUEST_BASE + DESC_OFFSET))
        .expect("write descriptor");
    let avail = GUEST_BASE + AVAIL_OFFSET;
    ring.guest
        .write_obj(0u16, GuestAddress(avail + 4))
        .expect("write avail ring[0]");
    ring.guest
        .write_obj(1u16, GuestAddress(avail + 2))
        .expect("write avail idx");
    ring.kick.write(1).expect("kick");
}

#[test]
fn features_negotiate() {
    let (mut frontend, server) = connect();
    frontend.set_owner().expect("SET_OWNER");
    let features = frontend.get_features().expect("GET_FEATURES");
    assert_eq!(features, DEVICE_FEATURES | PROTOCOL_FEATURES_BIT);
    frontend.set_features(features).expect("SET_FEATURES");
    let protocol = frontend
        .get_protocol_features()
        .expect("GET_PROTOCOL_FEATURES");
    assert_eq!(protocol, OFFERED_PROTOCOL_FEATURES);
    let wanted = VhostUserProtocolFeatures::CONFIG
        | VhostUserProtocolFeatures::BACKEND_REQ
        | VhostUserProtocolFeatures::REPLY_ACK
        | VhostUserProtocolFeatures::MQ
        | VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS;
    frontend
        .set_protocol_features(wanted)
        .expect("SET_PROTOCOL_FEATURES");
    frontend.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
    assert_eq!(
        frontend.get_queue_num().expect("GET_QUEUE_NUM"),
        NUM_QUEUES as u64
    );
    assert_eq!(
        frontend.get_max_mem_slots().expect("GET_MAX_MEM_SLOTS"),
        MAX_MEM_SLOTS as u64
    );

    let (acked, acked_protocol, device_acked) = server.with(|state| {
        (
            state.connection.acked_features(),
            state.connection.protocol_features(),
            state.device.acked_features,
        )
    });
    assert_eq!(acked, features);
    assert_eq!(acked_protocol, wanted);
    assert_eq!(device_acked, Some(DEVICE_FEATURES));
}

#[test]
fn ring_setup_makes_queue_usable() {
    let (mut frontend, server) = connect();
    negotiate(&mut frontend);
    let ring = setup_ring(&mut frontend);

    let events = server.take_events();
    assert!(events
        .iter()
        .any(|event| matches!(event, Event::MemoryChanged)));
    assert!(events
        .iter()
        .any(|event| matches!(event, Event::KickChanged(0))));
    assert!(events
        .iter()
        .any(|event| matches!(event, Event::VringReady(0))));
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, Event::Rejected { .. })),
        "{events:?}"
    );
    let (ready, other_ready, size, has_kick) = server.with(|state| {
        let connection = &state.connection;
        (
            connection.vring_ready(0),
            connection.vring_ready(1),
            connection.queue(0).map(|queue| queue.size()),
            connection.kick_fd(0).is_some(),
        )
    });
    assert!(ready);
    assert!(!other_ready);
    assert_eq!(size, Some(QUEUE_SIZE));
    assert!(has_kick);

    post_buffer(&ring);
    let (kicked, head) = server.with(|state| {
        let kicked = state.connection.consume_kick(0).expect("consume kick");
        let (queue, memory) = state.connection.queue_and_memory(0).expect("ring ready");
        let chain = queue
            .pop_descriptor_chain(memory)
            .expect("one descriptor chain");
        let head = chain.head_index();
        let descriptors: Vec<(u64, u32)> = chain
            .map(|descriptor| (descriptor.addr().0, descriptor.len()))
            .collect();
        queue.add_used(memory, head, 10).expect("add used");
        state.connection.signal_used(0).expect("signal used");
        (kicked, (head, descriptors))
    });
    assert!(kicked);
    assert_eq!(head, (0, vec![(GUEST_BASE + BUFFER_OFFSET, 64)]));
    assert_eq!(ring.call.read().expect("call eventfd signalled"), 1);
    let used_idx: u16 = ring
        .guest
        .read_obj(GuestAddress(GUEST_BASE + USED_OFFSET + 2))
        .expect("read used idx");
    assert_eq!(used_idx, 1);
}

#[test]
fn get_config_every_offset_and_length() {
    let (mut frontend, _server) = connect();
    negotiate(&mut frontend);
    for offset in 0..CONFIG.len() {
        for len in 1..=CONFIG.len() - offset {
            let (header, data) = frontend
                .get_config(
                    offset as u32,
                    len as u32,
                    VhostUserConfigFlags::WRITABLE,
                    &vec![0; len],
                )
                .unwrap_or_else(|err| panic!("GET_CONFIG offset {offset} len {len}: {err}"));
            assert_eq!({ header.offset }, offset as u32);
            assert_eq!({ header.size }, len as u32);
            assert_eq!(
                data,
                CONFIG[offset..offset + len],
                "offset {offset} len {len}"
            );
        }
    }
}

#[test]
fn set_config_reaches_device() {
    let (mut frontend, server) = connect();
    negotiate(&mut frontend);
    frontend
        .set_config(8, VhostUserConfigFlags::WRITABLE, &[1, 2, 3, 4])
        .expect("SET_CONFIG of writable bytes");
    let read_only = frontend.set_config(0, VhostUserConfigFlags::WRITABLE, &[9, 9]);
    assert!(
        read_only.is_err(),
        "SET_CONFIG of read-only bytes was acked"
    );
    let config = server.with(|state| state.device.config);
    assert_eq!(config[..8], CONFIG[..8]);
    assert_eq!(config[8..], [1, 2, 3, 4]);
    let (_, data) = frontend
        .get_config(8, 4, VhostUserConfigFlags::WRITABLE, &[0; 4])
        .expect("GET_CONFIG after SET_CONFIG");
    assert_eq!(data, [1, 2, 3, 4]);
}

#[derive(Default)]
struct ConfigChangeCounter {
    changes: usize,
}

impl VhostUserFrontendReqHandlerMut for ConfigChangeCounter {
    fn handle_config_change(&mut self) -> HandlerResult<u64> {
        self.changes += 1;
        Ok(0)
    }
}

#[test]
fn config_change_reaches_frontend() {
    let (mut frontend, server) = connect();
    negotiate(&mut frontend);
    let no_channel = server.with(|state| state.connection.send_config_change());
    assert!(
        matches!(no_channel, Err(ConfigChangeError::NoChannel)),
        "{no_channel:?}"
    );

    let counter = Arc::new(Mutex::new(ConfigChangeCounter::default()));
    let mut handler = FrontendReqHandler::new(Arc::clone(&counter)).expect("request handler");
    frontend
        .set_backend_request_fd(&handler.get_tx_raw_fd())
        .expect("SET_BACKEND_REQ_FD");
    let sent = server.with(|state| state.connection.send_config_change());
    assert!(sent.is_ok(), "{sent:?}");
    assert!(
        wait_readable(handler.as_raw_fd(), TIMEOUT),
        "no backend request arrived"
    );
    handler
        .handle_request()
        .expect("frontend handles the config change");
    assert_eq!(counter.lock().expect("counter lock").changes, 1);
}

#[test]
fn get_vring_base_stops_ring() {
    let (mut frontend, server) = connect();
    negotiate(&mut frontend);
    let ring = setup_ring(&mut frontend);
    post_buffer(&ring);
    server.with(|state| {
        let (queue, memory) = state.connection.queue_and_memory(0).expect("ring ready");
        queue
            .pop_descriptor_chain(memory)
            .expect("one descriptor chain");
    });
    server.take_events();

    assert_eq!(frontend.get_vring_base(0).expect("GET_VRING_BASE"), 1);
    let events = server.take_events();
    assert!(
        events
            .iter()
            .any(|event| matches!(event, Event::VringStopped(0))),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|event| matches!(event, Event::KickChanged(0))),
        "{events:?}"
    );
    let (ready, has_kick) = server.with(|state| {
        (
            state.connection.vring_ready(0),
            state.connection.kick_fd(0).is_some(),
        )
    });
    assert!(!ready);
    assert!(!has_kick);
}

#[test]
fn disconnect_is_reported() {
    let (mut frontend, server) = connect();
    negotiate(&mut frontend);
    drop(frontend);
    let mut disconnected = false;
    for _ in 0..500 {
        disconnected = server.with(|state| matches!(state.end, Some(Error::Disconnected)));
        if disconnected {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(disconnected);
}
