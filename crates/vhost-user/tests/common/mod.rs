//! Test support: a small device, memfd-backed memory, a server thread, and raw messages.

#![allow(dead_code)]

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use ttyvm_vhost_user::{ConfigAccessError, Connection, Error, Event, VhostUserDevice};
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

/// Every wait in the tests ends after this.
pub const TIMEOUT: Duration = Duration::from_secs(5);

pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
pub const PROTOCOL_FEATURES_BIT: u64 = 1 << 30;
pub const DEVICE_FEATURES: u64 = VIRTIO_F_VERSION_1 | 1;
pub const NUM_QUEUES: usize = 2;
pub const MAX_QUEUE_SIZE: u16 = 256;
pub const CONFIG: [u8; 12] = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21];
/// Config bytes below this offset are read-only.
pub const CONFIG_WRITABLE_FROM: u32 = 8;

/// A two-queue device with a 12-byte config whose last four bytes are writable.
#[derive(Debug)]
pub struct TestDevice {
    pub config: [u8; 12],
    pub acked_features: Option<u64>,
    pub resets: usize,
}

impl TestDevice {
    pub fn new() -> Self {
        TestDevice {
            config: CONFIG,
            acked_features: None,
            resets: 0,
        }
    }
}

impl VhostUserDevice for TestDevice {
    fn num_queues(&self) -> usize {
        NUM_QUEUES
    }

    fn max_queue_size(&self) -> u16 {
        MAX_QUEUE_SIZE
    }

    fn device_features(&self) -> u64 {
        DEVICE_FEATURES
    }

    fn ack_features(&mut self, features: u64) {
        self.acked_features = Some(features);
    }

    fn config_size(&self) -> u32 {
        self.config.len() as u32
    }

    fn read_config(&self, offset: u32, data: &mut [u8]) -> Result<(), ConfigAccessError> {
        let start = offset as usize;
        data.copy_from_slice(&self.config[start..start + data.len()]);
        Ok(())
    }

    fn write_config(&mut self, offset: u32, data: &[u8]) -> Result<(), ConfigAccessError> {
        if offset < CONFIG_WRITABLE_FROM {
            return Err(ConfigAccessError::ReadOnly {
                offset,
                len: data.len(),
            });
        }
        let start = offset as usize;
        self.config[start..start + data.len()].copy_from_slice(data);
        Ok(())
    }

    fn reset(&mut self) {
        self.resets += 1;
    }
}

/// Creates a memfd of `size` bytes.
pub fn memfd(size: u64) -> File {
    let name = c"ttyvm-vhost-user-test";
    // SAFETY: `name` is a valid NUL-terminated string and the flags are valid.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    assert!(
        fd >= 0,
        "memfd_create failed: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: memfd_create returned a new fd that nothing else owns.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(size).expect("set memfd size");
    file
}

/// Returns whether `fd` becomes readable within `timeout`.
pub fn wait_readable(fd: RawFd, timeout: Duration) -> bool {
    let mut poll_fd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `poll_fd` is valid for the call and the count is 1.
    let result = unsafe { libc::poll(&mut poll_fd, 1, timeout.as_millis() as i32) };
    result > 0
}

/// State owned by the server thread.
pub struct ServerState {
    pub connection: Connection,
    pub device: TestDevice,
    pub events: Vec<Event>,
    pub end: Option<Error>,
}

type Command = Box<dyn FnOnce(&mut ServerState) + Send>;

/// A connection served on its own thread, because `vhost::vhost_user::Frontend` blocks on
/// replies. Commands run on that thread after every request already sent has been handled.
pub struct Server {
    commands: Option<mpsc::Sender<Command>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    pub fn spawn(stream: UnixStream) -> Server {
        let device = TestDevice::new();
        let connection = Connection::new(stream, &device).expect("create connection");
        let (commands, receiver) = mpsc::channel::<Command>();
        let thread = thread::spawn(move || {
            let mut state = ServerState {
                connection,
                device,
                events: Vec::new(),
                end: None,
            };
            serve(&mut state, &receiver);
        });
        Server {
            commands: Some(commands),
            thread: Some(thread),
        }
    }

    /// Runs `f` on the server thread once all pending requests were handled.
    pub fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut ServerState) -> R + Send + 'static,
    ) -> R {
        let (sender, receiver) = mpsc::channel();
        let command: Command = Box::new(move |state| {
            let _ = sender.send(f(state));
        });
        self.commands
            .as_ref()
            .expect("server running")
            .send(command)
            .expect("server thread alive");
        receiver
            .recv_timeout(TIMEOUT)
            .expect("server command result")
    }

    /// Takes the events recorded so far.
    pub fn take_events(&self) -> Vec<Event> {
        self.with(|state| std::mem::take(&mut state.events))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.commands = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(state: &mut ServerState, receiver: &mpsc::Receiver<Command>) {
    loop {
        handle_pending(state, Duration::from_millis(10));
        match receiver.try_recv() {
            Ok(command) => {
                handle_pending(state, Duration::ZERO);
                command(state);
            }
            Err(mpsc::TryRecvError::Empty) => {}
            Err(mpsc::TryRecvError::Disconnected) => return,
        }
    }
}

/// Handles requests while the socket is readable within `wait`.
fn handle_pending(state: &mut ServerState, wait: Duration) {
    while state.end.is_none() && wait_readable(state.connection.as_raw_fd(), wait) {
        match state.connection.handle_request(&mut state.device) {
            Ok(events) => state.events.extend(events),
            Err(error) => state.end = Some(error),
        }
    }
}

/// Sends a raw message with `fds` attached.
pub fn send_raw(stream: &UnixStream, request: u32, flags: u32, payload: &[u8], fds: &[RawFd]) {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&request.to_ne_bytes());
    bytes.extend_from_slice(&flags.to_ne_bytes());
    bytes.extend_from_slice(&(payload.len() as u32).to_ne_bytes());
    bytes.extend_from_slice(payload);
    let sent = stream
        .send_with_fds(&[bytes.as_slice()], fds)
        .expect("send raw message");
    assert_eq!(sent, bytes.len());
}

/// A reply read from the socket.
#[derive(Debug)]
pub struct RawReply {
    pub request: u32,
    pub flags: u32,
    pub payload: Vec<u8>,
}

impl RawReply {
    pub fn u64(&self) -> u64 {
        assert_eq!(self.payload.len(), 8, "reply payload is not a u64");
        u64::from_ne_bytes(self.payload[..8].try_into().expect("8 bytes"))
    }
}

/// Reads one reply; the stream must have a read timeout.
pub fn read_raw(mut stream: &UnixStream) -> RawReply {
    let mut header = [0u8; 12];
    stream.read_exact(&mut header).expect("read reply header");
    let word = |index: usize| {
        u32::from_ne_bytes(
            header[index * 4..index * 4 + 4]
                .try_into()
                .expect("4 bytes"),
        )
    };
    let mut payload = vec![0u8; word(2) as usize];
    stream.read_exact(&mut payload).expect("read reply payload");
    RawReply {
        request: word(0),
        flags: word(1),
        payload,
    }
}

/// A folder under the system temp folder, removed on drop.
pub struct TempFolder(pub PathBuf);

impl TempFolder {
    pub fn new(name: &str) -> TempFolder {
        let path =
            std::env::temp_dir().join(format!("ttyvm-vhost-user-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp folder");
        TempFolder(path)
    }
}

impl Drop for TempFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
