//! The message sequence of UML's virtio_uml driver (Linux 6.1, arch/um/drivers/virtio_uml.c)
//! for a two-queue device, with its exact flags, payload sizes and fd kinds.

mod common;

use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;

use common::*;
use ttyvm_vhost_user::{Connection, Event};
use vhost::vhost_user::message::FrontendReq;
use vmm_sys_util::eventfd::EventFd;

const VERSION: u32 = 0x1;
const REPLY: u32 = 0x4;
const NEED_REPLY: u32 = 0x8;
/// REPLY_ACK | SLAVE_REQ | CONFIG | INBAND_NOTIFICATIONS: what virtio_uml supports.
const UML_PROTOCOL_FEATURES: u64 = (1 << 3) | (1 << 5) | (1 << 9) | (1 << 14);
const REGION_BASE: u64 = 0x10_0000;
const REGION_SIZE: u64 = 0x10_0000;
const REGION_FILE_OFFSET: u64 = 0x10_0000;
const UML_QUEUE_SIZE: u32 = 256;

struct Uml {
    socket: UnixStream,
    connection: Connection,
    device: TestDevice,
    events: Vec<Event>,
    /// Whether requests without a reply body carry NEED_REPLY (once REPLY_ACK is negotiated).
    request_ack: bool,
}

impl Uml {
    /// Sends like virtio_uml's vhost_user_send: NEED_REPLY on requests without a reply body
    /// once REPLY_ACK is on, then reads the ack, which must be exactly REPLY | VERSION and 0.
    fn send(&mut self, request: FrontendReq, payload: &[u8], fds: &[RawFd], need_response: bool) {
        let request_ack = self.request_ack && !need_response;
        let flags = if request_ack {
            VERSION | NEED_REPLY
        } else {
            VERSION
        };
        send_raw(&self.socket, request.into(), flags, payload, fds);
        let events = self
            .connection
            .handle_request(&mut self.device)
            .unwrap_or_else(|err| panic!("{request:?} ended the connection: {err}"));
        assert!(
            !events
                .iter()
                .any(|event| matches!(event, Event::Rejected { .. })),
            "{request:?}: {events:?}"
        );
        self.events.extend(events);
        if request_ack {
            let reply = read_raw(&self.socket);
            assert_eq!(reply.flags, REPLY | VERSION, "{request:?}");
            assert_eq!(reply.u64(), 0, "{request:?} acked with an error");
        }
    }

    fn receive_u64(&mut self) -> u64 {
        let reply = read_raw(&self.socket);
        assert_eq!(reply.flags, REPLY | VERSION);
        reply.u64()
    }
}

fn u64_payload(value: u64) -> Vec<u8> {
    value.to_ne_bytes().to_vec()
}

fn vring_state(index: u32, num: u32) -> Vec<u8> {
    [index.to_ne_bytes(), num.to_ne_bytes()].concat()
}

/// virtio_uml's struct vhost_user_mem_regions: room for two regions, one announced.
fn uml_mem_regions() -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&1u32.to_ne_bytes());
    payload.extend_from_slice(&0u32.to_ne_bytes());
    for value in [REGION_BASE, REGION_SIZE, REGION_BASE, REGION_FILE_OFFSET] {
        payload.extend_from_slice(&value.to_ne_bytes());
    }
    payload.resize(8 + 2 * 32, 0);
    payload
}

/// Ring layout of vring_create_virtqueue with 4 KiB alignment, at guest = user address.
fn uml_vring_addr(index: u32) -> Vec<u8> {
    let descriptor = REGION_BASE + u64::from(index) * 0x4000;
    let available = descriptor + 16 * u64::from(UML_QUEUE_SIZE);
    let used = descriptor + 0x2000;
    let mut payload = Vec::new();
    payload.extend_from_slice(&index.to_ne_bytes());
    payload.extend_from_slice(&0u32.to_ne_bytes());
    for value in [descriptor, used, available, u64::MAX] {
        payload.extend_from_slice(&value.to_ne_bytes());
    }
    payload
}

#[test]
fn uml_sequence_is_served() {
    let (socket, backend) = UnixStream::pair().expect("socket pair");
    socket
        .set_read_timeout(Some(TIMEOUT))
        .expect("read timeout");
    let device = TestDevice::new();
    let connection = Connection::new(backend, &device).expect("create connection");
    let mut uml = Uml {
        socket,
        connection,
        device,
        events: Vec::new(),
        request_ack: false,
    };

    // vhost_user_init
    uml.send(FrontendReq::SET_OWNER, &[], &[], false);
    uml.send(FrontendReq::GET_FEATURES, &[], &[], true);
    let features = uml.receive_u64();
    assert_ne!(features & PROTOCOL_FEATURES_BIT, 0);
    uml.send(FrontendReq::GET_PROTOCOL_FEATURES, &[], &[], true);
    let protocol = uml.receive_u64() & UML_PROTOCOL_FEATURES;
    assert_eq!(
        protocol,
        UML_PROTOCOL_FEATURES & !(1 << 14),
        "INBAND_NOTIFICATIONS is not offered"
    );
    uml.request_ack = true;
    uml.send(
        FrontendReq::SET_PROTOCOL_FEATURES,
        &u64_payload(protocol),
        &[],
        false,
    );
    let (request_channel, uml_request_end) = UnixStream::pair().expect("request socket pair");
    uml.send(
        FrontendReq::SET_BACKEND_REQ_FD,
        &[],
        &[request_channel.as_raw_fd()],
        false,
    );
    drop(request_channel);

    // virtio_dev_probe: finalize_features, then the driver's first config read.
    uml.send(
        FrontendReq::SET_FEATURES,
        &u64_payload(features),
        &[],
        false,
    );
    let mut config = vec![0u8; 12 + 4];
    config[4..8].copy_from_slice(&4u32.to_ne_bytes());
    uml.send(FrontendReq::GET_CONFIG, &config, &[], true);
    let reply = read_raw(&uml.socket);
    assert_eq!(reply.flags, REPLY | VERSION);
    assert_eq!(reply.payload.len(), 12 + 4);
    assert_eq!(reply.payload[12..], CONFIG[..4]);

    // vu_find_vqs
    let memory = memfd(REGION_FILE_OFFSET + REGION_SIZE);
    uml.send(
        FrontendReq::SET_MEM_TABLE,
        &uml_mem_regions(),
        &[memory.as_raw_fd()],
        false,
    );
    let mut call_ends = Vec::new();
    for index in 0..NUM_QUEUES as u32 {
        let (call_backend, call_uml) = UnixStream::pair().expect("call socket pair");
        call_uml
            .set_nonblocking(true)
            .expect("nonblocking call end");
        uml.send(
            FrontendReq::SET_VRING_CALL,
            &u64_payload(index.into()),
            &[call_backend.as_raw_fd()],
            false,
        );
        call_ends.push(call_uml);
        uml.send(
            FrontendReq::SET_VRING_NUM,
            &vring_state(index, UML_QUEUE_SIZE),
            &[],
            false,
        );
        uml.send(
            FrontendReq::SET_VRING_BASE,
            &vring_state(index, 0),
            &[],
            false,
        );
        uml.send(
            FrontendReq::SET_VRING_ADDR,
            &uml_vring_addr(index),
            &[],
            false,
        );
    }
    let mut kicks = Vec::new();
    for index in 0..NUM_QUEUES as u32 {
        let kick = EventFd::new(0).expect("kick eventfd");
        uml.send(
            FrontendReq::SET_VRING_KICK,
            &u64_payload(index.into()),
            &[kick.as_raw_fd()],
            false,
        );
        kicks.push(kick);
        uml.send(
            FrontendReq::SET_VRING_ENABLE,
            &vring_state(index, 1),
            &[],
            false,
        );
    }
    for index in 0..NUM_QUEUES {
        assert!(uml.connection.vring_ready(index), "vring {index} not ready");
        assert!(uml
            .events
            .iter()
            .any(|event| matches!(event, Event::VringReady(i) if *i == index)));
    }

    // A used-buffer signal reaches the socketpair call fd as an 8-byte value.
    uml.connection.signal_used(1).expect("signal used");
    let mut value = [0u8; 8];
    (&call_ends[1]).read_exact(&mut value).expect("call value");
    assert_eq!(u64::from_ne_bytes(value), 1);

    // A config change arrives as virtio_uml's vu_req_interrupt expects it.
    uml.connection
        .send_config_change()
        .expect("send config change");
    uml_request_end
        .set_read_timeout(Some(TIMEOUT))
        .expect("read timeout");
    let request = read_raw(&uml_request_end);
    assert_eq!(request.request, 2);
    assert_eq!(request.flags & !NEED_REPLY, VERSION);
    assert!(request.payload.is_empty());

    // vu_del_vqs
    for index in (0..NUM_QUEUES as u32).rev() {
        uml.send(
            FrontendReq::SET_VRING_ENABLE,
            &vring_state(index, 0),
            &[],
            false,
        );
    }
    uml.send(FrontendReq::GET_FEATURES, &[], &[], true);
    assert_eq!(uml.receive_u64(), features);
    for index in 0..NUM_QUEUES {
        assert!(!uml.connection.vring_ready(index));
    }
}

#[test]
fn signal_used_never_blocks_on_full_call_socket() {
    let (socket, backend) = UnixStream::pair().expect("socket pair");
    socket
        .set_read_timeout(Some(TIMEOUT))
        .expect("read timeout");
    let mut device = TestDevice::new();
    let mut connection = Connection::new(backend, &device).expect("create connection");
    let (call_backend, _call_uml) = UnixStream::pair().expect("call socket pair");
    send_raw(
        &socket,
        FrontendReq::SET_VRING_CALL.into(),
        VERSION,
        &0u64.to_ne_bytes(),
        &[call_backend.as_raw_fd()],
    );
    connection
        .handle_request(&mut device)
        .expect("SET_VRING_CALL");
    // Far more writes than a socket buffer takes, and the other end is never read.
    for _ in 0..200_000 {
        connection.signal_used(0).expect("signal used");
    }
}
