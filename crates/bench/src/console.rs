//! Guests booted on one of the consoles the bench compares: ours (`ttyvm serve --console pty`,
//! with the guest on the virtio console `hvc0`) and the anchor, UML's own console con0 (`tty0`
//! in the guest), on a pty or on a socketpair.

use std::fs::OpenOptions;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use ttyvm_testkit::{
    open_pty, protocol, BootOptions, Captured, Expect, ExpectError, Guest, Pty, Run, Server,
    TempDir, Uml,
};

use crate::error::BenchError;

/// The bound on a boot, from spawning UML to the responder's ready line.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// The bound on `ttyvm serve` printing its console line.
const SERVER_TIMEOUT: Duration = Duration::from_secs(10);

/// The console a guest runs its program on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleKind {
    /// `ttyvm serve --console pty`: the guest's virtio console, read on the server's pty.
    Ours,
    /// UML's own console con0 on a pty of the bench (`con0=fd:3,fd:3`).
    Anchor,
    /// UML's own console con0 on one end of a Unix socketpair of the bench (`con0=fd:3,fd:3`).
    /// A socket sends SIGIO for write space whenever its reader reads.
    AnchorSocket,
}

impl ConsoleKind {
    /// Returns the name used in tables and messages.
    pub fn name(self) -> &'static str {
        match self {
            ConsoleKind::Ours => "ttyvm (virtio console)",
            ConsoleKind::Anchor => "UML con0 on a pty (anchor)",
            ConsoleKind::AnchorSocket => "UML con0 on a socketpair (anchor)",
        }
    }
}

/// The tools a boot needs: the built guest and the `ttyvm` binary.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The UML guest.
    pub guest: Guest,
    /// The release `ttyvm` binary.
    pub ttyvm: std::path::PathBuf,
}

/// A booted guest whose responder printed its ready line. Fields drop in order, so UML stops
/// before the server and the pty go away.
pub struct ConsoleGuest {
    /// The host end of the console: the server's pty (ours) or the pty main side (anchor).
    pub console: Expect,
    /// A descriptor of the same pty, for TIOCSWINSZ.
    resize: OwnedFd,
    /// The console kind.
    pub kind: ConsoleKind,
    uml: Uml,
    server: Option<Server>,
    _pty: Option<Pty>,
    _socket_dir: Option<TempDir>,
}

impl ConsoleGuest {
    /// Boots the guest with `run` on the `kind` console and waits for the responder's ready line.
    pub fn boot(tools: &Tools, kind: ConsoleKind, run: Run) -> Result<Self, BenchError> {
        match kind {
            ConsoleKind::Ours => Self::boot_ours(tools, run),
            ConsoleKind::Anchor => Self::boot_anchor(tools, run),
            ConsoleKind::AnchorSocket => Self::boot_anchor_socket(tools, run),
        }
    }

    fn boot_ours(tools: &Tools, run: Run) -> Result<Self, BenchError> {
        let socket_dir =
            TempDir::new("bench").map_err(BenchError::io("creating a socket folder"))?;
        let socket = socket_dir.path().join("console.sock");
        let args = [
            "--socket".as_ref(),
            socket.as_os_str(),
            "--console".as_ref(),
            "pty".as_ref(),
            "--once".as_ref(),
        ];
        let server = Server::spawn(&tools.ttyvm, &args, SERVER_TIMEOUT)?;
        // The client opens the pty before the guest boots: the server drops guest output while
        // no client has the pty open.
        let console_fd = open_tty(server.console_path())?;
        let resize = dup(&console_fd)?;
        let console =
            Expect::new(console_fd).map_err(BenchError::io("setting up the console reader"))?;
        let uml = tools.guest.boot(&BootOptions::virtio(&socket, run))?;
        let mut guest = ConsoleGuest {
            console,
            resize,
            kind: ConsoleKind::Ours,
            uml,
            server: Some(server),
            _pty: None,
            _socket_dir: Some(socket_dir),
        };
        guest.wait_ready(run)?;
        Ok(guest)
    }

    fn boot_anchor(tools: &Tools, run: Run) -> Result<Self, BenchError> {
        let pty = open_pty(24, 80).map_err(BenchError::io("opening a pty"))?;
        let resize = dup(&pty.main)?;
        let console = Expect::new(dup(&pty.main)?)
            .map_err(BenchError::io("setting up the console reader"))?;
        let uml = tools
            .guest
            .boot(&BootOptions::uml_console(pty.subsidiary.as_fd(), run))?;
        let mut guest = ConsoleGuest {
            console,
            resize,
            kind: ConsoleKind::Anchor,
            uml,
            server: None,
            _pty: Some(pty),
            _socket_dir: None,
        };
        guest.wait_ready(run)?;
        Ok(guest)
    }

    /// Boots the anchor on a socketpair: UML gets one end as con0, the bench keeps the other.
    /// There is no window size on a socket, so this console is for throughput only.
    fn boot_anchor_socket(tools: &Tools, run: Run) -> Result<Self, BenchError> {
        let (host, guest_end) =
            UnixStream::pair().map_err(BenchError::io("creating a socketpair"))?;
        let host = OwnedFd::from(host);
        let guest_end = OwnedFd::from(guest_end);
        let resize = dup(&host)?;
        let console = Expect::new(host).map_err(BenchError::io("setting up the console reader"))?;
        let uml = tools
            .guest
            .boot(&BootOptions::uml_console(guest_end.as_fd(), run))?;
        // UML has its own copy now; the bench's copy would keep the socket open past UML.
        drop(guest_end);
        let mut guest = ConsoleGuest {
            console,
            resize,
            kind: ConsoleKind::AnchorSocket,
            uml,
            server: None,
            _pty: None,
            _socket_dir: None,
        };
        guest.wait_ready(run)?;
        Ok(guest)
    }

    fn wait_ready(&mut self, run: Run) -> Result<(), BenchError> {
        let mode = match run {
            Run::Shell => "shell",
            Run::Winch => "winch",
            Run::Emit(_) => "emit",
            Run::Sink(_) => "sink",
        };
        let marker = format!("{} {mode}\r\n", protocol::READY);
        let result = self.console.expect(&marker, BOOT_TIMEOUT);
        self.check("waiting for the ready line", result).map(drop)
    }

    /// Returns the pty descriptor to resize.
    pub fn resize_fd(&self) -> BorrowedFd<'_> {
        self.resize.as_fd()
    }

    /// Returns the process id of UML's kernel process.
    pub fn uml_pid(&self) -> u32 {
        self.uml.pid()
    }

    /// Returns the process id of the server, for ours.
    pub fn server_pid(&self) -> Option<u32> {
        self.server.as_ref().map(Server::pid)
    }

    /// Turns a failed console step into a [`BenchError`] that carries the processes' output.
    pub fn check<T>(&self, step: &str, result: Result<T, ExpectError>) -> Result<T, BenchError> {
        result.map_err(|source| BenchError::Console {
            step: step.to_string(),
            console: self.kind.name(),
            source: Box::new(source),
            output: self.captured(),
        })
    }

    /// Returns what UML and the server printed.
    pub fn captured(&self) -> String {
        let mut output = self.uml.captured_output();
        if let Some(server) = &self.server {
            output.push('\n');
            output.push_str(&server.captured_output());
        }
        output
    }
}

/// Opens a pty subsidiary side by path, read-write and without making it our controlling tty.
fn open_tty(path: &Path) -> Result<OwnedFd, BenchError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(path)
        .map_err(BenchError::io(format!(
            "opening the console {}",
            path.display()
        )))?;
    Ok(OwnedFd::from(file))
}

fn dup(fd: &OwnedFd) -> Result<OwnedFd, BenchError> {
    fd.try_clone()
        .map_err(BenchError::io("duplicating a pty descriptor"))
}
