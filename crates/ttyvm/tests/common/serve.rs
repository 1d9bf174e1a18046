//! What the end-to-end tests of `ttyvm serve` share: the binary, the bounds on every wait, one
//! guest at a time, a server with its socket folder, and the guest's console on the server's pty.

#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use ttyvm_testkit::{
    check, protocol, BootOptions, Captured, Expect, Guest, Run, Server, TempDir, Uml,
};

/// The binary under test.
pub const TTYVM: &str = env!("CARGO_BIN_EXE_ttyvm");
/// The bound on boot to ready marker; a boot measured here takes about 1.5 s.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// The bound on each reply of a booted guest.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(20);
/// The bound on the server's start and on its exit.
pub const SERVER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serializes the guests of one test binary: two cores run them, and other work shares them.
static ONE_GUEST_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Takes the guest lock of this test binary.
pub fn one_guest_at_a_time() -> MutexGuard<'static, ()> {
    // A test that panicked while holding the lock leaves nothing behind that needs repair.
    ONE_GUEST_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Finds the guest that `scripts/build-guest` builds, or panics naming what is missing.
pub fn guest() -> Guest {
    Guest::locate().unwrap_or_else(|error| panic!("{error}"))
}

/// Returns the line that the guest prints on its console when `run` is ready.
pub fn ready_marker(run: Run) -> String {
    let mode = match run {
        Run::Shell => "shell",
        Run::Winch => "winch",
        Run::Emit(_) => "emit",
        Run::Sink(_) => "sink",
    };
    format!("{} {mode}\r\n", protocol::READY)
}

/// A private folder for sockets and logs, with the path of the socket in it.
pub struct SocketDir {
    /// The socket path, `DIR/console.sock`.
    pub socket: PathBuf,
    dir: TempDir,
}

impl SocketDir {
    /// Creates the folder.
    pub fn new() -> Self {
        let dir = TempDir::new("serve-e2e").expect("creating a temporary folder failed");
        Self {
            socket: dir.path().join("console.sock"),
            dir,
        }
    }

    /// Returns the path of `name` in the folder.
    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Returns whether a socket file exists at `path`.
pub fn socket_exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|metadata| metadata.file_type().is_socket())
}

/// Asserts that `server` is still running and its socket file still exists; `context` says
/// what the server has just been through.
pub fn assert_still_serving(server: &mut Server, socket: &Path, context: &str) {
    assert!(
        server.wait_timeout(Duration::ZERO).is_err(),
        "the server exited {context}:\n{}",
        server.stderr()
    );
    assert!(socket_exists(socket), "the socket is gone {context}");
}

/// Runs `ttyvm serve` in pty mode on `socket` with `extra` arguments and waits for its console
/// line.
pub fn pty_server(socket: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["--socket", path_str(socket), "--console", "pty"];
    args.extend_from_slice(extra);
    Server::spawn(Path::new(TTYVM), &args, SERVER_TIMEOUT).unwrap_or_else(|error| panic!("{error}"))
}

/// Runs `ttyvm serve` in a mode without a console line and waits for its socket.
pub fn listening_server(socket: &Path, console: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--socket", path_str(socket), "--console", console];
    args.extend_from_slice(extra);
    Server::spawn_listening(Path::new(TTYVM), &args, socket, SERVER_TIMEOUT)
        .unwrap_or_else(|error| panic!("{error}"))
}

/// Returns `path` as UTF-8, which every path these tests make is.
pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// A client on the server's pty: a descriptor for window sizes and a reader for the console.
pub struct PtyClient {
    /// Reads what the guest writes, writes what the guest reads.
    pub console: Expect,
    /// The same subsidiary side, for TIOCSWINSZ.
    pub tty: OwnedFd,
}

impl PtyClient {
    /// Opens the pty at `path` as a client, as `ttyvm attach` would, without making it the
    /// controlling terminal of the test.
    pub fn open(path: &Path) -> Self {
        let file: File = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(path)
            .unwrap_or_else(|error| {
                panic!("opening the console {} failed: {error}", path.display())
            });
        let tty = OwnedFd::from(file);
        let reader = tty.try_clone().expect("duplicating the console fd failed");
        let console = Expect::new(reader).expect("setting up the console reader failed");
        Self { console, tty }
    }

    /// Sets the pty's window size, as a terminal emulator does on a resize.
    pub fn resize(&self, rows: u16, cols: u16) {
        let size = ttyvm_testkit::WindowSize { rows, cols };
        ttyvm_testkit::set_window_size(self.tty.as_fd(), size)
            .expect("TIOCSWINSZ on the pty failed");
    }
}

/// Boots the guest with `run` on the virtio console served at `socket`; a failure shows the
/// output of `server`.
pub fn boot(socket: &Path, run: Run, server: &dyn Captured) -> Uml {
    let options = BootOptions::virtio(socket, run);
    check(guest().boot(&options), &[server])
}

/// Boots the guest on `socket` and waits for its ready line on `client`.
pub fn boot_ready(socket: &Path, run: Run, server: &Server, client: &mut PtyClient) -> Uml {
    let uml = boot(socket, run, server);
    let marker = ready_marker(run);
    check(
        client.console.expect(&marker, BOOT_TIMEOUT),
        &[server, &uml],
    );
    println!("boot to {marker:?}: {:?}", uml.started().elapsed());
    uml
}

/// The prompt of the guest shell, set by the guest init.
pub const PROMPT: &str = "guest# ";

/// Waits for the guest shell's prompt, sends `command` ended with a carriage return as a
/// terminal's Enter key sends it, and returns the output up to `end`.
///
/// Waiting for the prompt keeps typeahead out: a line that arrives while a command runs is
/// echoed by the guest tty and again by the shell's line editor.
pub fn shell(
    client: &mut PtyClient,
    command: &str,
    end: &str,
    sources: &[&dyn Captured],
) -> String {
    check(client.console.expect(PROMPT, REPLY_TIMEOUT), sources);
    check(
        client.console.send(format!("{command}\r").as_bytes()),
        sources,
    );
    check(client.console.expect(end, REPLY_TIMEOUT), sources)
}

/// Returns the guest's `stty size` as `rows cols`, from one query.
pub fn stty_size(client: &mut PtyClient, sources: &[&dyn Captured]) -> String {
    // The arithmetic keeps the end marker out of the echoed command line.
    let seen = shell(
        client,
        "echo size=[$(stty size)]-$((6*7))",
        "]-42\r\n",
        sources,
    );
    let start = seen
        .rfind("size=[")
        .map_or(0, |start| start + "size=[".len());
    seen[start..].trim_end_matches("]-42\r\n").to_string()
}

/// Runs `stty size` in the guest shell until it prints `rows cols`, since a resize reaches the
/// guest asynchronously. Panics with the last output after [`REPLY_TIMEOUT`].
pub fn await_stty_size(client: &mut PtyClient, rows: u16, cols: u16, sources: &[&dyn Captured]) {
    let expected = format!("{rows} {cols}");
    let deadline = Instant::now() + REPLY_TIMEOUT;
    loop {
        let seen = stty_size(client, sources);
        if seen == expected {
            return;
        }
        if Instant::now() >= deadline {
            let error = format!("the guest never showed the size {expected}; last: {seen:?}");
            check::<(), _>(Err(error), sources);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The exit status and output of a `ttyvm` run that ended by itself.
pub struct Outcome {
    /// Its exit status.
    pub status: ExitStatus,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

impl Outcome {
    /// Returns the stderr lines that carry a message: clap's blank line and its `--help` hint
    /// are left out.
    pub fn message_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|line| !line.trim().is_empty())
            .collect()
    }
}

/// Runs `ttyvm ARGS...` with stdin on /dev/null until it exits, at most [`SERVER_TIMEOUT`].
pub fn run_to_exit(args: &[&str], folder: &SocketDir) -> Outcome {
    let stdout_path = folder.join("run.stdout");
    let stderr_path = folder.join("run.stderr");
    let mut child = Command::new(TTYVM)
        .args(args)
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).expect("creating the stdout file failed"))
        .stderr(File::create(&stderr_path).expect("creating the stderr file failed"))
        .spawn()
        .expect("starting ttyvm failed");
    let deadline = Instant::now() + SERVER_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for ttyvm failed") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ttyvm {args:?} did not exit within {SERVER_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let read = |path: &Path| {
        String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
    };
    Outcome {
        status,
        stdout: read(&stdout_path),
        stderr: read(&stderr_path),
    }
}
