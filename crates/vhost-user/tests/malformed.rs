//! Hand-built messages, valid and malformed, handled on the test thread.

mod common;

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use common::*;
use ttyvm_vhost_user::{
    ConfigChangeError, Connection, Error, Event, RequestError, OFFERED_PROTOCOL_FEATURES,
};
use vhost::vhost_user::message::FrontendReq;
use vmm_sys_util::eventfd::EventFd;

const VERSION: u32 = 0x1;
const NEED_REPLY: u32 = 0x8;
const REPLY: u32 = 0x4;

struct Session {
    frontend: UnixStream,
    connection: Connection,
    device: TestDevice,
}

impl Session {
    fn new() -> Session {
        let (frontend, backend) = UnixStream::pair().expect("socket pair");
        frontend
            .set_read_timeout(Some(TIMEOUT))
            .expect("read timeout");
        let device = TestDevice::new();
        let connection = Connection::new(backend, &device).expect("create connection");
        Session {
            frontend,
            connection,
            device,
        }
    }

    /// Creates a session with all offered features, REPLY_ACK included.
    fn negotiated() -> Session {
        let mut session = Session::new();
        let features = DEVICE_FEATURES | PROTOCOL_FEATURES_BIT;
        session.request(FrontendReq::SET_FEATURES, 0, &features.to_ne_bytes(), &[]);
        let protocol = OFFERED_PROTOCOL_FEATURES.bits();
        session.request(
            FrontendReq::SET_PROTOCOL_FEATURES,
            0,
            &protocol.to_ne_bytes(),
            &[],
        );
        session
    }

    fn send(
        &mut self,
        code: u32,
        flags: u32,
        payload: &[u8],
        fds: &[RawFd],
    ) -> Result<Vec<Event>, Error> {
        send_raw(&self.frontend, code, VERSION | flags, payload, fds);
        self.connection.handle_request(&mut self.device)
    }

    fn request(
        &mut self,
        request: FrontendReq,
        flags: u32,
        payload: &[u8],
        fds: &[RawFd],
    ) -> Vec<Event> {
        self.send(request.into(), flags, payload, fds)
            .unwrap_or_else(|err| panic!("{request:?} ended the connection: {err}"))
    }

    /// Sends a request with NEED_REPLY and returns its ack value and events.
    fn acked(&mut self, request: FrontendReq, payload: &[u8], fds: &[RawFd]) -> (u64, Vec<Event>) {
        let events = self.request(request, NEED_REPLY, payload, fds);
        let reply = read_raw(&self.frontend);
        assert_eq!(reply.request, u32::from(request));
        assert_eq!(reply.flags, VERSION | REPLY);
        (reply.u64(), events)
    }

    /// Checks that the connection still serves GET_FEATURES.
    fn assert_serves(&mut self) {
        self.request(FrontendReq::GET_FEATURES, 0, &[], &[]);
        let reply = read_raw(&self.frontend);
        assert_eq!(reply.u64(), DEVICE_FEATURES | PROTOCOL_FEATURES_BIT);
    }
}

fn vring_state(index: u32, num: u32) -> Vec<u8> {
    [index.to_ne_bytes(), num.to_ne_bytes()].concat()
}

fn config_request(offset: u32, size: u32) -> Vec<u8> {
    let mut payload = [offset.to_ne_bytes(), size.to_ne_bytes(), 0u32.to_ne_bytes()].concat();
    payload.resize(12 + size as usize, 0);
    payload
}

fn rejected(events: &[Event]) -> Option<&RequestError> {
    events.iter().find_map(|event| match event {
        Event::Rejected { error, .. } => Some(error),
        _ => None,
    })
}

/// Returns the read end of a pipe and the write end's raw fd, owned by the returned File.
fn pipe() -> (std::fs::File, std::fs::File) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two fds pipe2 writes.
    let result = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(result, 0, "pipe2 failed");
    // SAFETY: pipe2 returned two new fds that nothing else owns.
    unsafe {
        (
            std::os::fd::FromRawFd::from_raw_fd(fds[0]),
            std::os::fd::FromRawFd::from_raw_fd(fds[1]),
        )
    }
}

/// Asserts that the backend closed its copy of the pipe's write end, so the read end reads EOF.
fn assert_write_end_closed(mut read_end: std::fs::File) {
    assert!(
        wait_readable(read_end.as_raw_fd(), TIMEOUT),
        "write end still open"
    );
    let mut byte = [0u8; 1];
    assert_eq!(read_end.read(&mut byte).expect("read pipe"), 0);
}

#[test]
fn unknown_request_rejected() {
    let mut session = Session::negotiated();
    let events = session
        .send(99, NEED_REPLY, &[], &[])
        .expect("connection stays");
    assert!(
        matches!(rejected(&events), Some(RequestError::Unsupported(99))),
        "{events:?}"
    );
    let reply = read_raw(&session.frontend);
    assert_eq!(reply.request, 99);
    assert_eq!(reply.u64(), 1);
    session.assert_serves();
}

#[test]
fn bad_payload_size_rejected() {
    let mut session = Session::negotiated();
    let (ack, events) = session.acked(FrontendReq::SET_VRING_NUM, &[0; 4], &[]);
    assert_eq!(ack, 1);
    assert!(matches!(
        rejected(&events),
        Some(RequestError::PayloadSize {
            expected: 8,
            actual: 4
        })
    ));
    session.assert_serves();
}

#[test]
fn vring_index_out_of_range_rejected() {
    let mut session = Session::negotiated();
    let (ack, events) = session.acked(FrontendReq::SET_VRING_NUM, &vring_state(2, 16), &[]);
    assert_eq!(ack, 1);
    assert!(matches!(
        rejected(&events),
        Some(RequestError::VringIndex { index: 2, .. })
    ));
    let (ack, _) = session.acked(FrontendReq::SET_VRING_NUM, &vring_state(1, 16), &[]);
    assert_eq!(ack, 0);
}

#[test]
fn queue_size_checked() {
    let mut session = Session::negotiated();
    for size in [0, 100, 512] {
        let (ack, events) = session.acked(FrontendReq::SET_VRING_NUM, &vring_state(0, size), &[]);
        assert_eq!(ack, 1, "size {size}");
        assert!(
            matches!(rejected(&events), Some(RequestError::QueueSize { .. })),
            "size {size}"
        );
    }
    let (ack, _) = session.acked(FrontendReq::SET_VRING_NUM, &vring_state(0, 256), &[]);
    assert_eq!(ack, 0);
    assert_eq!(
        session.connection.queue(0).map(virtio_queue::QueueT::size),
        Some(256)
    );
}

fn vring_addr(index: u32, descriptor: u64, used: u64, available: u64) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&index.to_ne_bytes());
    payload.extend_from_slice(&0u32.to_ne_bytes());
    for value in [descriptor, used, available, 0] {
        payload.extend_from_slice(&value.to_ne_bytes());
    }
    payload
}

/// Builds a SET_MEM_TABLE payload with one region at guest 0x10000 and user 0x7000_0000.
fn mem_table(size: u64) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&1u32.to_ne_bytes());
    payload.extend_from_slice(&0u32.to_ne_bytes());
    for value in [0x10000u64, size, 0x7000_0000, 0] {
        payload.extend_from_slice(&value.to_ne_bytes());
    }
    payload
}

#[test]
fn ring_address_must_translate() {
    let mut session = Session::negotiated();
    let (ack, events) = session.acked(
        FrontendReq::SET_VRING_ADDR,
        &vring_addr(0, 0x7000_0000, 0x7000_2000, 0x7000_1000),
        &[],
    );
    assert_eq!(ack, 1);
    assert!(
        matches!(rejected(&events), Some(RequestError::NoMemory)),
        "{events:?}"
    );

    let file = memfd(0x10000);
    let (ack, _) = session.acked(
        FrontendReq::SET_MEM_TABLE,
        &mem_table(0x10000),
        &[file.as_raw_fd()],
    );
    assert_eq!(ack, 0);
    let outside = vring_addr(0, 0x6000_0000, 0x7000_2000, 0x7000_1000);
    let (ack, events) = session.acked(FrontendReq::SET_VRING_ADDR, &outside, &[]);
    assert_eq!(ack, 1);
    assert!(matches!(
        rejected(&events),
        Some(RequestError::RingAddress {
            address: 0x6000_0000,
            ..
        })
    ));
    // The used ring of 256 entries would end past the 64 KiB region.
    let past_end = vring_addr(0, 0x7000_0000, 0x7000_ff00, 0x7000_1000);
    let (ack, _) = session.acked(FrontendReq::SET_VRING_ADDR, &past_end, &[]);
    assert_eq!(ack, 1);
    let inside = vring_addr(0, 0x7000_0000, 0x7000_2000, 0x7000_1000);
    let (ack, _) = session.acked(FrontendReq::SET_VRING_ADDR, &inside, &[]);
    assert_eq!(ack, 0);
}

#[test]
fn memory_region_past_file_end_rejected() {
    let mut session = Session::negotiated();
    let file = memfd(0x1000);
    let (ack, events) = session.acked(
        FrontendReq::SET_MEM_TABLE,
        &mem_table(0x10000),
        &[file.as_raw_fd()],
    );
    assert_eq!(ack, 1);
    assert!(
        matches!(rejected(&events), Some(RequestError::Memory(_))),
        "{events:?}"
    );
    assert!(session.connection.memory().is_none());
    session.assert_serves();
}

#[test]
fn fds_on_request_without_fds_closed() {
    let mut session = Session::negotiated();
    let (read_end, write_end) = pipe();
    let (ack, events) = session.acked(
        FrontendReq::SET_VRING_NUM,
        &vring_state(0, 16),
        &[write_end.as_raw_fd()],
    );
    drop(write_end);
    assert_eq!(ack, 1);
    assert!(matches!(
        rejected(&events),
        Some(RequestError::FdCount {
            expected: 0,
            actual: 1
        })
    ));
    assert_write_end_closed(read_end);
    session.assert_serves();
}

#[test]
fn extra_fds_on_kick_closed() {
    let mut session = Session::negotiated();
    let (read_end, write_end) = pipe();
    let (_other_read, other_write) = pipe();
    let fds = [write_end.as_raw_fd(), other_write.as_raw_fd()];
    let (ack, events) = session.acked(FrontendReq::SET_VRING_KICK, &0u64.to_ne_bytes(), &fds);
    drop(write_end);
    assert_eq!(ack, 1);
    assert!(matches!(
        rejected(&events),
        Some(RequestError::FdCount {
            expected: 1,
            actual: 2
        })
    ));
    assert_write_end_closed(read_end);
    assert!(session.connection.kick_fd(0).is_none());
}

#[test]
fn missing_kick_fd_rejected_and_nofd_accepted() {
    let mut session = Session::negotiated();
    let (ack, _) = session.acked(FrontendReq::SET_VRING_KICK, &0u64.to_ne_bytes(), &[]);
    assert_eq!(ack, 1);
    let (ack, events) = session.acked(FrontendReq::SET_VRING_KICK, &0x100u64.to_ne_bytes(), &[]);
    assert_eq!(ack, 0);
    assert!(events
        .iter()
        .any(|event| matches!(event, Event::KickChanged(0))));
    assert!(session.connection.kick_fd(0).is_none());
}

/// Fds that poll(2) reports ready although no kick ever arrives: a regular file, a pipe
/// without writer, /dev/null and a socket at end of file.
fn never_kicking_fds(folder: &TempFolder) -> Vec<(&'static str, OwnedFd)> {
    let regular = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(folder.0.join("kick"))
        .expect("create regular file");
    let (read_end, write_end) = pipe();
    drop(write_end);
    let (socket, peer) = UnixStream::pair().expect("socket pair");
    drop(peer);
    let null = std::fs::File::open("/dev/null").expect("open /dev/null");
    vec![
        ("regular file", regular.into()),
        ("pipe without writer", read_end.into()),
        ("/dev/null", null.into()),
        ("socket at EOF", socket.into()),
    ]
}

#[test]
fn kick_fd_must_be_an_eventfd() {
    let folder = TempFolder::new("kick");
    let mut session = Session::negotiated();
    for (kind, fd) in never_kicking_fds(&folder) {
        let (ack, events) = session.acked(
            FrontendReq::SET_VRING_KICK,
            &1u64.to_ne_bytes(),
            &[fd.as_raw_fd()],
        );
        assert_eq!(ack, 1, "{kind} accepted as a kick fd");
        let error = rejected(&events).unwrap_or_else(|| panic!("{kind}: {events:?}"));
        println!("{kind}: {error}");
        assert!(
            matches!(error, RequestError::KickNotEventfd { index: 1, .. }),
            "{kind}: {error:?}"
        );
        assert!(error.to_string().contains("vring 1"), "{error}");
        assert!(session.connection.kick_fd(1).is_none(), "{kind} kept");
    }
    let kick = EventFd::new(0).expect("kick eventfd");
    let (ack, _) = session.acked(
        FrontendReq::SET_VRING_KICK,
        &1u64.to_ne_bytes(),
        &[kick.as_raw_fd()],
    );
    assert_eq!(ack, 0);
    assert!(session.connection.kick_fd(1).is_some());
}

#[test]
fn call_fd_may_be_a_socket() {
    let mut session = Session::negotiated();
    let (call, _peer) = UnixStream::pair().expect("socket pair");
    let (ack, events) = session.acked(
        FrontendReq::SET_VRING_CALL,
        &0u64.to_ne_bytes(),
        &[call.as_raw_fd()],
    );
    assert_eq!(ack, 0, "{events:?}");
}

#[test]
fn get_config_outside_config_gets_empty_reply() {
    let mut session = Session::negotiated();
    for (offset, size) in [(10, 4), (12, 1), (0, 13), (0x1000, 1)] {
        let events = session.request(
            FrontendReq::GET_CONFIG,
            0,
            &config_request(offset, size),
            &[],
        );
        assert!(rejected(&events).is_some(), "offset {offset} size {size}");
        let reply = read_raw(&session.frontend);
        assert_eq!(reply.request, u32::from(FrontendReq::GET_CONFIG));
        assert_eq!(reply.flags, VERSION | REPLY);
        assert!(reply.payload.is_empty(), "offset {offset} size {size}");
    }
    session.request(FrontendReq::GET_CONFIG, 0, &config_request(0, 12), &[]);
    let reply = read_raw(&session.frontend);
    assert_eq!(reply.payload[12..], CONFIG);
}

#[test]
fn get_config_without_config_feature_gets_empty_reply() {
    let mut session = Session::new();
    session.request(FrontendReq::GET_CONFIG, 0, &config_request(0, 4), &[]);
    let reply = read_raw(&session.frontend);
    assert!(reply.payload.is_empty());
}

#[test]
fn get_vring_base_bad_index_closes() {
    let mut session = Session::negotiated();
    let result = session.send(
        FrontendReq::GET_VRING_BASE.into(),
        0,
        &vring_state(7, 0),
        &[],
    );
    assert!(
        matches!(result, Err(Error::ReplyImpossible { .. })),
        "{result:?}"
    );
}

#[test]
fn unoffered_protocol_features_close() {
    let mut session = Session::new();
    let features = (1u64 << 1).to_ne_bytes();
    let result = session.send(FrontendReq::SET_PROTOCOL_FEATURES.into(), 0, &features, &[]);
    assert!(
        matches!(result, Err(Error::Incompatible { .. })),
        "{result:?}"
    );
}

#[test]
fn bad_header_closes() {
    let mut session = Session::new();
    let result = session.send(FrontendReq::GET_FEATURES.into(), 0x2, &[], &[]);
    assert!(matches!(result, Err(Error::BadVersion(3))), "{result:?}");

    let mut session = Session::new();
    let oversized = vec![0u8; 0x1001];
    let result = session.send(FrontendReq::SET_CONFIG.into(), 0, &oversized, &[]);
    assert!(
        matches!(result, Err(Error::OversizedPayload { size: 0x1001, .. })),
        "{result:?}"
    );
}

#[test]
fn reply_flag_on_request_rejected() {
    let mut session = Session::negotiated();
    let events = session.request(FrontendReq::SET_OWNER, REPLY, &[], &[]);
    assert!(matches!(
        rejected(&events),
        Some(RequestError::InvalidFlags(REPLY))
    ));
    session.assert_serves();
}

#[test]
fn enable_needs_protocol_features() {
    let mut session = Session::new();
    let events = session.request(FrontendReq::SET_VRING_ENABLE, 0, &vring_state(0, 1), &[]);
    assert!(
        matches!(rejected(&events), Some(RequestError::NotNegotiated(_))),
        "{events:?}"
    );
}

#[test]
fn config_change_needs_features() {
    let mut session = Session::new();
    let result = session.connection.send_config_change();
    assert!(
        matches!(result, Err(ConfigChangeError::NotNegotiated("CONFIG"))),
        "{result:?}"
    );
}

#[test]
fn disconnect_is_error() {
    let mut session = Session::new();
    drop(std::mem::replace(
        &mut session.frontend,
        UnixStream::pair().expect("pair").0,
    ));
    let result = session.connection.handle_request(&mut session.device);
    assert!(matches!(result, Err(Error::Disconnected)), "{result:?}");
}

#[test]
fn uml_mem_table_with_spare_region_accepted() {
    let mut session = Session::negotiated();
    let file = memfd(0x10000);
    // virtio_uml sends room for two regions even when it announces one.
    let mut payload = mem_table(0x10000);
    payload.resize(payload.len() + 32, 0);
    let (ack, events) = session.acked(FrontendReq::SET_MEM_TABLE, &payload, &[file.as_raw_fd()]);
    assert_eq!(ack, 0, "{events:?}");
    assert!(session.connection.memory().is_some());
}

#[test]
fn reset_device_stops_rings() {
    let mut session = Session::negotiated();
    let kick = EventFd::new(0).expect("kick eventfd");
    let (ack, _) = session.acked(
        FrontendReq::SET_VRING_KICK,
        &0u64.to_ne_bytes(),
        &[kick.as_raw_fd()],
    );
    assert_eq!(ack, 0);
    let (ack, events) = session.acked(FrontendReq::RESET_DEVICE, &[], &[]);
    assert_eq!(ack, 0);
    assert!(events.iter().any(|event| matches!(event, Event::Reset)));
    assert!(events
        .iter()
        .any(|event| matches!(event, Event::KickChanged(0))));
    assert!(session.connection.kick_fd(0).is_none());
    assert_eq!(session.connection.acked_features(), 0);
    assert_eq!(session.device.resets, 1);
}

#[test]
fn set_status_reports_driver_ok() {
    let mut session = Session::negotiated();
    let (ack, events) = session.acked(FrontendReq::SET_STATUS, &0x7u64.to_ne_bytes(), &[]);
    assert_eq!(ack, 0);
    assert!(events.iter().any(|event| matches!(event, Event::DriverOk)));
    assert!(session.connection.driver_ok());
    session.request(FrontendReq::GET_STATUS, 0, &[], &[]);
    assert_eq!(read_raw(&session.frontend).u64(), 0x7);
    let (ack, _) = session.acked(FrontendReq::SET_STATUS, &0x100u64.to_ne_bytes(), &[]);
    assert_eq!(ack, 1);
}

fn single_region(guest: u64, size: u64, user: u64) -> Vec<u8> {
    let mut payload = 0u64.to_ne_bytes().to_vec();
    for value in [guest, size, user, 0] {
        payload.extend_from_slice(&value.to_ne_bytes());
    }
    payload
}

#[test]
fn overlapping_regions_rejected() {
    let mut session = Session::negotiated();
    let first = memfd(0x10000);
    let second = memfd(0x10000);
    let mut payload = Vec::new();
    payload.extend_from_slice(&2u32.to_ne_bytes());
    payload.extend_from_slice(&0u32.to_ne_bytes());
    for (guest, user) in [(0x10000u64, 0x7000_0000u64), (0x18000, 0x8000_0000)] {
        for value in [guest, 0x10000, user, 0] {
            payload.extend_from_slice(&value.to_ne_bytes());
        }
    }
    let fds = [first.as_raw_fd(), second.as_raw_fd()];
    let (ack, events) = session.acked(FrontendReq::SET_MEM_TABLE, &payload, &fds);
    assert_eq!(ack, 1);
    assert!(
        matches!(rejected(&events), Some(RequestError::Memory(_))),
        "{events:?}"
    );
    assert!(session.connection.memory().is_none());
}

#[test]
fn add_and_remove_memory_region() {
    let mut session = Session::negotiated();
    let file = memfd(0x10000);
    let region = single_region(0x10000, 0x10000, 0x7000_0000);
    let (ack, events) = session.acked(FrontendReq::ADD_MEM_REG, &region, &[file.as_raw_fd()]);
    assert_eq!(ack, 0, "{events:?}");
    assert!(events
        .iter()
        .any(|event| matches!(event, Event::MemoryChanged)));
    assert!(session.connection.memory().is_some());

    let overlapping = single_region(0x18000, 0x10000, 0x9000_0000);
    let (ack, _) = session.acked(FrontendReq::ADD_MEM_REG, &overlapping, &[file.as_raw_fd()]);
    assert_eq!(ack, 1);
    let unknown = single_region(0x20000, 0x10000, 0x7000_0000);
    let (ack, _) = session.acked(FrontendReq::REM_MEM_REG, &unknown, &[]);
    assert_eq!(ack, 1);

    let (ack, events) = session.acked(FrontendReq::REM_MEM_REG, &region, &[]);
    assert_eq!(ack, 0, "{events:?}");
    assert!(session.connection.memory().is_none());
}

#[test]
fn handle_request_without_input_returns_nothing() {
    let mut session = Session::new();
    let events = session
        .connection
        .handle_request(&mut session.device)
        .expect("no input is no error");
    assert!(events.is_empty());
    session.assert_serves();
}
