//! End-to-end tests of `ttyvm attach` against ptys that each test opens and drives itself.
//!
//! Two kinds of user terminal appear here. Tests that only need a terminal on standard input use
//! a pty of their own as the client's stdin, and type by writing to its main side. Tests of what
//! a person sees run the client in a private tmux server (`tmux -S DIR/sock`, killed on drop)
//! with a fixed window size, and type with send-keys. In both, the console is a pty whose main
//! side the test reads and writes in place of `ttyvm serve --console pty`.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_ttyvm");
const TIMEOUT: Duration = Duration::from_secs(10);
const NOBODY: u32 = 65534;

// ---------------------------------------------------------------------------------------------
// Helpers: temporary folders, ptys, termios and sizes through libc.

/// A folder under the system temporary folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "ttyvm-attach-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        fs::create_dir_all(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(path)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A pty of the test's own: the main side and the subsidiary path, with no subsidiary fd held.
struct TestPty {
    main: File,
    path: PathBuf,
    received: Vec<u8>,
}

impl TestPty {
    fn open() -> Self {
        let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
        // SAFETY: posix_openpt takes no pointers and returns a new fd or -1.
        let fd = unsafe { libc::posix_openpt(flags) };
        assert!(fd >= 0, "posix_openpt failed");
        // SAFETY: the fd is new and owned by nothing else.
        let main = unsafe { File::from_raw_fd(fd) };
        // SAFETY: grantpt and unlockpt take the fd by value.
        assert_eq!(unsafe { libc::grantpt(fd) }, 0);
        // SAFETY: as above.
        assert_eq!(unsafe { libc::unlockpt(fd) }, 0);
        let mut name = [0 as libc::c_char; 128];
        // SAFETY: ptsname_r writes at most `name.len()` bytes into the local buffer.
        let ret = unsafe { libc::ptsname_r(fd, name.as_mut_ptr(), name.len()) };
        assert_eq!(ret, 0);
        // SAFETY: ptsname_r succeeded, so the buffer holds a NUL-terminated string.
        let name = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
        let path = PathBuf::from(name.to_str().unwrap());
        // SAFETY: fcntl takes the flags by value.
        unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) };
        TestPty {
            main,
            path,
            received: Vec::new(),
        }
    }

    /// Opens a new fd on the subsidiary side, blocking, as a program's terminal.
    fn subsidiary(&self) -> File {
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&self.path)
            .unwrap()
    }

    fn write(&mut self, bytes: &[u8]) {
        let deadline = Instant::now() + TIMEOUT;
        let mut rest = bytes;
        while !rest.is_empty() {
            match self.main.write(rest) {
                Ok(count) => rest = &rest[count..],
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(
                        Instant::now() < deadline,
                        "timed out writing to {:?}",
                        self.path
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(err) => panic!("write to the main side of {:?} failed: {err}", self.path),
            }
        }
    }

    /// Reads what is there without waiting and adds it to `received`.
    fn read_available(&mut self) {
        let mut chunk = [0u8; 4096];
        loop {
            match self.main.read(&mut chunk) {
                Ok(0) => return,
                Ok(count) => self.received.extend_from_slice(&chunk[..count]),
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return,
                // EIO: no subsidiary fd is open at the moment.
                Err(err) if err.raw_os_error() == Some(libc::EIO) => return,
                Err(err) => panic!("read from the main side of {:?} failed: {err}", self.path),
            }
        }
    }

    /// Waits until the bytes read from the main side contain `expected`.
    fn wait_for(&mut self, expected: &[u8]) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            self.read_available();
            if contains(&self.received, expected) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {:?} on the main side; received {:?}",
                String::from_utf8_lossy(expected),
                String::from_utf8_lossy(&self.received)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn size(&self) -> (u16, u16) {
        window_size(self.main.as_raw_fd())
    }

    fn set_size(&self, rows: u16, cols: u16) {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from the live local.
        let ret = unsafe { libc::ioctl(self.main.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        assert_eq!(ret, 0);
    }

    fn termios(&self) -> Termios {
        let subsidiary = self.subsidiary();
        termios_of(subsidiary.as_raw_fd())
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

fn window_size(fd: RawFd) -> (u16, u16) {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the live local.
    assert_eq!(unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) }, 0);
    (ws.ws_row, ws.ws_col)
}

/// The termios fields that raw mode and its restore change, compared as a whole.
#[derive(Debug, PartialEq, Eq)]
struct Termios {
    iflag: libc::tcflag_t,
    oflag: libc::tcflag_t,
    cflag: libc::tcflag_t,
    lflag: libc::tcflag_t,
    cc: [libc::cc_t; libc::NCCS],
}

impl Termios {
    fn is_raw(&self) -> bool {
        self.lflag & (libc::ICANON | libc::ECHO | libc::ISIG) == 0
    }
}

fn termios_of(fd: RawFd) -> Termios {
    // SAFETY: an all-zero termios is a valid value for tcgetattr to overwrite.
    let mut termios: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: tcgetattr writes one termios into the live local.
    assert_eq!(unsafe { libc::tcgetattr(fd, &mut termios) }, 0);
    Termios {
        iflag: termios.c_iflag,
        oflag: termios.c_oflag,
        cflag: termios.c_cflag,
        lflag: termios.c_lflag,
        cc: termios.c_cc,
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("timed out waiting for ttyvm attach to exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn send_signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill takes its arguments by value; the pid is a child this test started.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, signal) }, 0);
}

// ---------------------------------------------------------------------------------------------
// Helpers: the client started directly, with its output in files.

/// A client process whose stderr, and unless a test gives another stdout, its stdout go to
/// files in `dir`.
struct Client {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Client {
    fn spawn(dir: &TempDir, stdin: Stdio, args: &[&str], uid: Option<u32>) -> Self {
        Self::spawn_with_output(dir, stdin, None, args, uid)
    }

    /// Starts a client whose stdout is `output`, or the file `dir/stdout` when it is `None`.
    fn spawn_with_output(
        dir: &TempDir,
        stdin: Stdio,
        output: Option<Stdio>,
        args: &[&str],
        uid: Option<u32>,
    ) -> Self {
        let stdout = dir.path("stdout");
        let stderr = dir.path("stderr");
        let output = output.unwrap_or_else(|| File::create(&stdout).unwrap().into());
        let mut command = Command::new(BINARY);
        command
            .arg("attach")
            .args(args)
            .stdin(stdin)
            .stdout(output)
            .stderr(File::create(&stderr).unwrap())
            .env_remove("RUST_LOG");
        if let Some(uid) = uid {
            command.uid(uid).gid(uid);
        }
        Client {
            child: command.spawn().unwrap(),
            stdout,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap()
    }

    fn stdout(&self) -> Vec<u8> {
        fs::read(&self.stdout).unwrap()
    }

    fn wait_stderr(&self, expected: &str) {
        wait_until(&format!("stderr contains {expected:?}"), || {
            self.stderr().contains(expected)
        });
    }
}

/// Runs a client that must fail before it touches its terminal, a pty of the test's own, and
/// returns its stderr.
fn run_failing(dir: &TempDir, args: &[&str], uid: Option<u32>) -> String {
    let user = TestPty::open();
    user.set_size(24, 80);
    let before = user.termios();
    let stdin = Stdio::from(user.subsidiary());
    let mut client = Client::spawn(dir, stdin, args, uid);
    let status = wait_exit(&mut client.child);
    assert_eq!(status.code(), Some(1), "stderr: {}", client.stderr());
    assert_eq!(user.termios(), before, "the terminal's settings changed");
    assert_eq!(user.size(), (24, 80), "the terminal's size changed");
    assert_eq!(client.stdout(), b"", "stdout is not empty");
    client.stderr()
}

/// Copies the binary to a folder that anyone may read, for runs as nobody.
fn public_binary(dir: &TempDir) -> PathBuf {
    let path = dir.path("ttyvm");
    fs::copy(BINARY, &path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Runs a command whose binary was just written. Another test thread that forks while the copy's
/// write fd is open holds that fd until its exec, and exec of the copy meanwhile fails with
/// ETXTBSY, so that error alone is retried.
fn output_of_fresh_binary(command: &mut Command) -> std::process::Output {
    for _ in 0..50 {
        match command.output() {
            Err(err) if err.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            result => return result.unwrap(),
        }
    }
    panic!("the copied binary stayed busy (ETXTBSY) for a second");
}

const ADVICE: &str = "Give the pty path that `ttyvm serve --console pty` printed after \
                      `console:`, such as /dev/pts/3.";

// ---------------------------------------------------------------------------------------------
// Errors: one line, exit status 1, terminal untouched.

#[test]
fn missing_path_fails_cleanly() {
    let dir = TempDir::new();
    let missing = dir.path("no-such-pty");
    let stderr = run_failing(&dir, &[missing.to_str().unwrap()], None);
    let expected = format!(
        "ttyvm attach: {} does not exist. {ADVICE}\n",
        missing.display()
    );
    assert_eq!(stderr, expected);
}

#[test]
fn dev_null_is_not_a_terminal() {
    let dir = TempDir::new();
    let stderr = run_failing(&dir, &["/dev/null"], None);
    assert_eq!(
        stderr,
        format!("ttyvm attach: /dev/null is not a terminal. {ADVICE}\n")
    );
}

#[test]
fn regular_file_is_not_a_terminal() {
    let dir = TempDir::new();
    let file = dir.path("plain-file");
    fs::write(&file, b"not a tty").unwrap();
    let stderr = run_failing(&dir, &[file.to_str().unwrap()], None);
    let expected = format!(
        "ttyvm attach: {} is not a terminal. {ADVICE}\n",
        file.display()
    );
    assert_eq!(stderr, expected);
}

fn permission_message(path: &Path) -> String {
    format!(
        "ttyvm attach: permission denied opening {} for reading and writing. Run as its owner or \
         as root, or grant this user read and write access to it.\n",
        path.display()
    )
}

/// Runs `BINARY attach path` as nobody through a public copy of the binary.
fn run_failing_as_nobody(dir: &TempDir, path: &Path) -> String {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    assert_eq!(
        uid, 0,
        "this test runs the client as user nobody to provoke a permission error, so it must run \
         as root"
    );
    let user = TestPty::open();
    let before = user.termios();
    let mut command = Command::new(public_binary(dir));
    command
        .arg("attach")
        .arg(path)
        .stdin(Stdio::from(user.subsidiary()))
        .uid(NOBODY)
        .gid(NOBODY);
    let output = output_of_fresh_binary(&mut command);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(output.stdout, b"");
    assert_eq!(user.termios(), before, "the terminal's settings changed");
    String::from_utf8(output.stderr).unwrap()
}

#[test]
fn pty_with_mode_000_is_denied() {
    let dir = TempDir::new();
    let console = TestPty::open();
    fs::set_permissions(&console.path, fs::Permissions::from_mode(0o000)).unwrap();
    console.set_size(11, 22);
    let stderr = run_failing_as_nobody(&dir, &console.path);
    assert_eq!(stderr, permission_message(&console.path));
    assert_eq!(console.size(), (11, 22), "the console's size changed");
}

#[test]
fn file_with_mode_000_is_denied() {
    let dir = TempDir::new();
    let file = dir.path("locked");
    fs::write(&file, b"").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o000)).unwrap();
    let stderr = run_failing_as_nobody(&dir, &file);
    assert_eq!(stderr, permission_message(&file));
}

#[test]
fn path_under_private_folder_is_denied() {
    let dir = TempDir::new();
    let private = dir.path("private");
    fs::create_dir(&private).unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
    let inner = private.join("pty");
    fs::write(&inner, b"").unwrap();
    let stderr = run_failing_as_nobody(&dir, &inner);
    assert_eq!(stderr, permission_message(&inner));
}

#[test]
fn invalid_escape_fails_cleanly() {
    let dir = TempDir::new();
    let console = TestPty::open();
    let path = console.path.to_str().unwrap();
    for bad in ["x", "^", "^1", "^]]", "C-]"] {
        let before = console.termios();
        let stderr = run_failing(&dir, &["-e", bad, path], None);
        let expected = format!(
            "ttyvm attach: invalid escape character {bad:?}: write it in caret notation, `^` \
             followed by one of @ A-Z \\ ] ^ _ ?, such as ^] or ^A\n"
        );
        assert_eq!(stderr, expected);
        assert_eq!(console.termios(), before, "the console's settings changed");
    }
}

#[test]
fn escape_the_terminal_sends_is_rejected() {
    let dir = TempDir::new();
    let console = TestPty::open();
    let path = console.path.to_str().unwrap();
    let cases = [
        (
            "^[",
            "^[ is ESC, which begins every arrow key and terminal reply",
        ),
        ("^M", "^M is CR, which the Enter key sends"),
    ];
    for (key, reason) in cases {
        let stderr = run_failing(&dir, &["-e", key, path], None);
        let expected = format!(
            "ttyvm attach: escape character {key} cannot be used: {reason}, so it would detach \
             at once; choose another, such as ^]\n"
        );
        assert_eq!(stderr, expected);
    }
}

// ---------------------------------------------------------------------------------------------
// A terminal of the test's own on stdin: escape choice, signals, I/O errors.

/// A client attached to `console` with a test pty as its terminal on stdin and, unless a test
/// gives another, on stdout.
struct Attached {
    user: TestPty,
    before: Termios,
    client: Client,
}

fn attach_with_terminal(dir: &TempDir, console: &TestPty, extra: &[&str]) -> Attached {
    attach_with_output(dir, console, extra, None)
}

fn attach_with_output(
    dir: &TempDir,
    console: &TestPty,
    extra: &[&str],
    stdout: Option<OwnedFd>,
) -> Attached {
    let user = TestPty::open();
    user.set_size(33, 99);
    let before = user.termios();
    let mut args: Vec<&str> = extra.to_vec();
    args.push(console.path.to_str().unwrap());
    let stdin = Stdio::from(user.subsidiary());
    let stdout = stdout.map_or_else(|| Stdio::from(user.subsidiary()), Stdio::from);
    let client = Client::spawn_with_output(dir, stdin, Some(stdout), &args, None);
    wait_until("the client's terminal is in raw mode", || {
        user.termios().is_raw()
    });
    wait_until("the console has the terminal's size", || {
        console.size() == (33, 99)
    });
    Attached {
        user,
        before,
        client,
    }
}

#[test]
fn hint_names_default_escape() {
    let dir = TempDir::new();
    let console = TestPty::open();
    let mut attached = attach_with_terminal(&dir, &console, &[]);
    let hint = format!(
        "Connected to {}. Escape character is ^]\n",
        console.path.display()
    );
    attached.client.wait_stderr(&hint);
    attached.user.write(b"\x1d");
    let status = wait_exit(&mut attached.client.child);
    assert_eq!(status.code(), Some(0));
    assert_eq!(attached.user.termios(), attached.before);
    let detached = format!("ttyvm attach: detached from {}\n", console.path.display());
    assert_eq!(attached.client.stderr(), format!("{hint}{detached}"));
}

#[test]
fn custom_escape_detaches() {
    let dir = TempDir::new();
    let mut console = TestPty::open();
    let mut attached = attach_with_terminal(&dir, &console, &["-e", "^a"]);
    let hint = format!(
        "Connected to {}. Escape character is ^A\n",
        console.path.display()
    );
    attached.client.wait_stderr(&hint);
    // Ctrl-] is an ordinary byte now.
    attached.user.write(b"one\x1dtwo");
    console.wait_for(b"one\x1dtwo");
    attached.user.write(b"\x01");
    let status = wait_exit(&mut attached.client.child);
    assert_eq!(status.code(), Some(0));
    assert_eq!(attached.user.termios(), attached.before);
}

#[test]
fn no_escape_passes_every_byte() {
    let dir = TempDir::new();
    let mut console = TestPty::open();
    let mut attached = attach_with_terminal(&dir, &console, &["--no-escape"]);
    attached.client.wait_stderr("No escape character");
    let all: Vec<u8> = (0u8..=255).collect();
    attached.user.write(&all);
    console.wait_for(&all);
    assert_eq!(
        attached.client.child.try_wait().unwrap(),
        None,
        "client exited"
    );
    send_signal(attached.client.child.id(), libc::SIGTERM);
    let status = wait_exit(&mut attached.client.child);
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    assert_eq!(attached.user.termios(), attached.before);
}

#[test]
fn sighup_restores_terminal() {
    let dir = TempDir::new();
    let console = TestPty::open();
    let mut attached = attach_with_terminal(&dir, &console, &[]);
    send_signal(attached.client.child.id(), libc::SIGHUP);
    let status = wait_exit(&mut attached.client.child);
    assert_eq!(status.signal(), Some(libc::SIGHUP));
    assert_eq!(attached.user.termios(), attached.before);
}

#[test]
fn exit_signals_restore_terminal() {
    for signal in [libc::SIGQUIT, libc::SIGUSR1, libc::SIGALRM] {
        let dir = TempDir::new();
        let console = TestPty::open();
        let mut attached = attach_with_terminal(&dir, &console, &[]);
        send_signal(attached.client.child.id(), signal);
        let status = wait_exit(&mut attached.client.child);
        assert_eq!(
            status.signal(),
            Some(signal),
            "the client's end on {signal}"
        );
        assert_eq!(
            attached.user.termios(),
            attached.before,
            "the terminal after signal {signal}"
        );
    }
}

#[test]
fn resize_follows_sigwinch() {
    let dir = TempDir::new();
    let console = TestPty::open();
    let mut attached = attach_with_terminal(&dir, &console, &[]);
    // Setting the size on the main side of the client's terminal sends SIGWINCH only to a
    // foreground process group, which the client is not here, so send it as well.
    for (rows, cols) in [(40, 120), (25, 81), (1, 1), (200, 300)] {
        attached.user.set_size(rows, cols);
        send_signal(attached.client.child.id(), libc::SIGWINCH);
        wait_until(&format!("the console is {rows}x{cols}"), || {
            console.size() == (rows, cols)
        });
    }
    attached.user.write(b"\x1d");
    assert_eq!(wait_exit(&mut attached.client.child).code(), Some(0));
}

#[test]
fn output_error_restores_terminal() {
    let dir = TempDir::new();
    let mut console = TestPty::open();
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new fds into the local array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds are new and owned by nothing else.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut attached = attach_with_output(&dir, &console, &[], Some(write_end));
    drop(read_end);
    console.write(b"output nobody reads\r\n");
    let status = wait_exit(&mut attached.client.child);
    assert_eq!(status.code(), Some(1));
    assert_eq!(attached.user.termios(), attached.before);
    let stderr = attached.client.stderr();
    let expected = format!(
        "ttyvm attach: relay to {} stopped: failed to write standard output: Broken pipe (os \
         error 32)\n",
        console.path.display()
    );
    assert!(stderr.ends_with(&expected), "stderr: {stderr}");
}

#[test]
fn bulk_output_arrives_intact() {
    let dir = TempDir::new();
    let mut console = TestPty::open();
    let mut attached = attach_with_terminal(&dir, &console, &[]);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut received = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut sent = 0;
    let deadline = Instant::now() + TIMEOUT;
    while received.len() < data.len() {
        assert!(
            Instant::now() < deadline,
            "timed out after {} bytes",
            received.len()
        );
        if sent < data.len() {
            match console.main.write(&data[sent..]) {
                Ok(count) => sent += count,
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(err) => panic!("write failed: {err}"),
            }
        }
        match attached.user.main.read(&mut chunk) {
            Ok(count) => received.extend_from_slice(&chunk[..count]),
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(err) => panic!("read failed: {err}"),
        }
    }
    assert!(
        received == data,
        "the output differs from what the console sent"
    );
    attached.user.write(b"\x1d");
    assert_eq!(wait_exit(&mut attached.client.child).code(), Some(0));
}

// ---------------------------------------------------------------------------------------------
// Standard input that is not a terminal.

#[test]
fn pipe_stdin_relays_without_raw_mode() {
    let dir = TempDir::new();
    let mut console = TestPty::open();
    console.set_size(5, 7);
    let path = console.path.to_str().unwrap().to_owned();
    let mut client = Client::spawn(&dir, Stdio::piped(), &[&path], None);
    let notice = format!(
        "ttyvm attach: standard input is not a terminal, so the relay runs without raw mode and \
         does not resize {path}\n"
    );
    client.wait_stderr(&notice);
    let mut stdin = client.child.stdin.take().unwrap();
    stdin.write_all(b"piped input\n").unwrap();
    console.wait_for(b"piped input\n");
    console.write(b"console output\n");
    wait_until("stdout has the console output", || {
        contains(&client.stdout(), b"console output\n")
    });
    // The end of a piped input leaves the relay running for the console's output.
    drop(stdin);
    console.write(b"after end of input\n");
    wait_until("stdout has the output after end of input", || {
        contains(&client.stdout(), b"after end of input\n")
    });
    assert_eq!(console.size(), (5, 7), "the console was resized");
    drop(console);
    let status = wait_exit(&mut client.child);
    assert_eq!(status.code(), Some(0));
    let stderr = client.stderr();
    assert_eq!(
        stderr.matches("not a terminal").count(),
        1,
        "stderr: {stderr}"
    );
    assert!(stderr.ends_with(&format!("ttyvm attach: the console on {path} closed\n")));
}

#[test]
fn sigint_ends_unraw_client() {
    let dir = TempDir::new();
    let console = TestPty::open();
    let path = console.path.to_str().unwrap().to_owned();
    let mut client = Client::spawn(&dir, Stdio::piped(), &[&path], None);
    client.wait_stderr("Connected to");
    send_signal(client.child.id(), libc::SIGINT);
    let status = wait_exit(&mut client.child);
    assert_eq!(status.signal(), Some(libc::SIGINT));
}

// ---------------------------------------------------------------------------------------------
// Through tmux: what a person at a terminal sees.

/// A private tmux server with one session, `attach`, whose window has a fixed size.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn start(dir: &TempDir, cols: u16, rows: u16) -> Self {
        let tmux = Tmux {
            socket: dir.path("tmux.sock"),
        };
        tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "attach",
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
            "env",
            "-i",
            "PATH=/usr/bin:/bin",
            "TERM=screen",
            "PS1=$ ",
            "/bin/sh",
        ]);
        tmux.run(&["set-option", "-g", "status", "off"]);
        tmux
    }

    fn run(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Types `line` and Enter into `target`'s shell.
    fn type_line(&self, target: &str, line: &str) {
        self.run(&["send-keys", "-t", target, "-l", line]);
        self.run(&["send-keys", "-t", target, "Enter"]);
    }

    fn capture(&self, target: &str) -> String {
        self.run(&["capture-pane", "-p", "-J", "-t", target, "-S", "-"])
    }

    fn wait_pane(&self, target: &str, expected: &str) -> String {
        let mut screen = String::new();
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            screen = self.capture(target);
            if screen.contains(expected) {
                return screen;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("timed out waiting for {expected:?} in pane {target}; it shows:\n{screen}");
    }

    /// The pane's size as (rows, columns).
    fn pane_size(&self, target: &str) -> (u16, u16) {
        let text = self.run(&[
            "display-message",
            "-p",
            "-t",
            target,
            "#{pane_height} #{pane_width}",
        ]);
        let mut parts = text
            .split_whitespace()
            .map(|part| part.parse::<u16>().unwrap());
        (parts.next().unwrap(), parts.next().unwrap())
    }

    fn pane_termios(&self, target: &str) -> Termios {
        let tty = self.run(&["display-message", "-p", "-t", target, "#{pane_tty}"]);
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
            .open(tty.trim())
            .unwrap();
        termios_of(file.as_raw_fd())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

/// The pane's `stty -g` output, written to `file` by the pane's shell.
fn pane_stty(tmux: &Tmux, target: &str, file: &Path) -> String {
    let _ = fs::remove_file(file);
    tmux.type_line(
        target,
        &format!("stty -g > {}.tmp && mv {0}.tmp {0}", file.display()),
    );
    wait_until("stty -g has written its file", || file.exists());
    fs::read_to_string(file).unwrap()
}

/// A client running in a tmux pane, attached to a test pty.
struct PaneClient {
    target: String,
    pid: u32,
    stty_before: String,
    termios_before: Termios,
}

/// Starts `ttyvm attach` in `target`'s shell, followed by an echo of its exit status, and waits
/// until it is connected.
fn start_in_pane(tmux: &Tmux, dir: &TempDir, target: &str, command: &str) -> PaneClient {
    let name = target.replace(':', "-");
    let stty_before = pane_stty(tmux, target, &dir.path(&format!("{name}.stty-before")));
    let termios_before = tmux.pane_termios(target);
    let pid_file = dir.path(&format!("{name}.pid"));
    let line = format!(
        "sh -c 'echo $$ > {pid}.tmp && mv {pid}.tmp {pid} && exec {command}'; echo \"exit=$?\"",
        pid = pid_file.display()
    );
    tmux.type_line(target, &line);
    wait_until("the client wrote its pid", || pid_file.exists());
    let pid = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    tmux.wait_pane(target, "Connected to");
    PaneClient {
        target: target.to_owned(),
        pid,
        stty_before,
        termios_before,
    }
}

fn attach_command(console: &TestPty) -> String {
    format!("{BINARY} attach {}", console.path.display())
}

/// Checks that the client ended with `exit=STATUS` and left the pane's settings as it found them.
fn assert_restored(tmux: &Tmux, dir: &TempDir, client: &PaneClient, status: &str) {
    tmux.wait_pane(&client.target, &format!("exit={status}"));
    assert_eq!(tmux.pane_termios(&client.target), client.termios_before);
    let name = client.target.replace(':', "-");
    let after = pane_stty(
        tmux,
        &client.target,
        &dir.path(&format!("{name}.stty-after")),
    );
    assert_eq!(
        after, client.stty_before,
        "stty -g differs after the client ended"
    );
}

#[test]
fn tmux_typed_text_reaches_console() {
    let dir = TempDir::new();
    let tmux = Tmux::start(&dir, 100, 30);
    let mut console = TestPty::open();
    let client = start_in_pane(&tmux, &dir, "attach", &attach_command(&console));
    wait_until("the pane is in raw mode", || {
        tmux.pane_termios("attach").is_raw()
    });
    tmux.type_line("attach", "uname -a");
    console.wait_for(b"uname -a\r");
    tmux.run(&["send-keys", "-t", "attach", "C-c"]);
    console.wait_for(b"\x03");
    tmux.run(&["send-keys", "-t", "attach", "-H", "1d"]);
    assert_restored(&tmux, &dir, &client, "0");
    let screen = tmux.capture("attach");
    assert!(screen.contains(&format!(
        "ttyvm attach: detached from {}",
        console.path.display()
    )));
}

#[test]
fn tmux_console_output_reaches_pane() {
    let dir = TempDir::new();
    let tmux = Tmux::start(&dir, 100, 30);
    let mut console = TestPty::open();
    let client = start_in_pane(&tmux, &dir, "attach", &attach_command(&console));
    console.write(b"guest says hello\r\nsecond line\r\n");
    let screen = tmux.wait_pane("attach", "second line");
    assert!(screen.contains("guest says hello\nsecond line"), "{screen}");
    tmux.run(&["send-keys", "-t", "attach", "-H", "1d"]);
    assert_restored(&tmux, &dir, &client, "0");
}

#[test]
fn tmux_resize_follows_window() {
    let dir = TempDir::new();
    let tmux = Tmux::start(&dir, 100, 30);
    let console = TestPty::open();
    console.set_size(3, 4);
    let client = start_in_pane(&tmux, &dir, "attach", &attach_command(&console));
    let start = tmux.pane_size("attach");
    assert_eq!(start, (30, 100));
    wait_until("the console has the pane's size", || {
        console.size() == start
    });
    for (cols, rows) in [(120, 40), (61, 17), (200, 50)] {
        tmux.run(&[
            "resize-window",
            "-t",
            "attach",
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
        ]);
        let pane = tmux.pane_size("attach");
        assert_eq!(pane, (rows, cols));
        wait_until(&format!("the console is {rows}x{cols}"), || {
            console.size() == pane
        });
    }
    tmux.run(&["send-keys", "-t", "attach", "-H", "1d"]);
    assert_restored(&tmux, &dir, &client, "0");
}

#[test]
fn tmux_sigterm_restores_terminal() {
    let dir = TempDir::new();
    let tmux = Tmux::start(&dir, 100, 30);
    let console = TestPty::open();
    let client = start_in_pane(&tmux, &dir, "attach", &attach_command(&console));
    wait_until("the pane is in raw mode", || {
        tmux.pane_termios("attach").is_raw()
    });
    send_signal(client.pid, libc::SIGTERM);
    assert_restored(&tmux, &dir, &client, "143");
}

#[test]
fn tmux_console_close_ends_client() {
    let dir = TempDir::new();
    let tmux = Tmux::start(&dir, 100, 30);
    let mut console = TestPty::open();
    let path = console.path.display().to_string();
    let client = start_in_pane(&tmux, &dir, "attach", &attach_command(&console));
    console.write(b"last words without a newline");
    tmux.wait_pane("attach", "last words");
    drop(console);
    assert_restored(&tmux, &dir, &client, "0");
    let screen = tmux.capture("attach");
    let message = format!("ttyvm attach: the console on {path} closed");
    let lines: Vec<&str> = screen
        .lines()
        .filter(|line| line.contains("closed"))
        .collect();
    assert_eq!(lines, vec![message.as_str()], "{screen}");
    assert!(
        screen.contains("last words without a newline\n"),
        "{screen}"
    );
}

#[test]
fn tmux_second_client_is_warned() {
    let dir = TempDir::new();
    let tmux = Tmux::start(&dir, 100, 30);
    let mut console = TestPty::open();
    let first = start_in_pane(&tmux, &dir, "attach", &attach_command(&console));
    tmux.run(&[
        "new-window",
        "-d",
        "-t",
        "attach:1",
        "env",
        "-i",
        "PATH=/usr/bin:/bin",
        "TERM=screen",
        "PS1=$ ",
        "/bin/sh",
    ]);
    let second = start_in_pane(&tmux, &dir, "attach:1", &attach_command(&console));
    let warning = format!(
        "ttyvm attach: warning: {} is already open in process {} (ttyvm), so both clients' keys \
         reach the console and its output is split between them",
        console.path.display(),
        first.pid
    );
    tmux.wait_pane("attach:1", &warning);
    // The first client saw no other client when it started.
    assert!(!tmux.capture("attach").contains("warning"));
    // The second client is attached: its keys arrive.
    tmux.type_line("attach:1", "from second");
    console.wait_for(b"from second\r");
    tmux.run(&["send-keys", "-t", "attach:1", "-H", "1d"]);
    assert_restored(&tmux, &dir, &second, "0");
    tmux.run(&["send-keys", "-t", "attach", "-H", "1d"]);
    assert_restored(&tmux, &dir, &first, "0");
}

#[test]
fn tmux_piped_stdin_stays_cooked() {
    let dir = TempDir::new();
    let tmux = Tmux::start(&dir, 100, 30);
    let mut console = TestPty::open();
    console.set_size(5, 7);
    let path = console.path.display().to_string();
    let command = format!("cat | {}", attach_command(&console));
    // The pid is that of `sh -c`, which runs the pipeline here instead of exec'ing one client.
    let client = start_in_pane(&tmux, &dir, "attach", &command);
    tmux.wait_pane("attach", "standard input is not a terminal");
    tmux.type_line("attach", "typed through cat");
    console.wait_for(b"typed through cat\n");
    assert!(
        !tmux.pane_termios("attach").is_raw(),
        "the pane is in raw mode"
    );
    assert_eq!(tmux.pane_termios("attach"), client.termios_before);
    tmux.run(&["resize-window", "-t", "attach", "-x", "90", "-y", "20"]);
    console.write(b"shown in the pane\r\n");
    tmux.wait_pane("attach", "shown in the pane");
    assert_eq!(console.size(), (5, 7), "the console was resized");
    drop(console);
    tmux.wait_pane(
        "attach",
        &format!("ttyvm attach: the console on {path} closed"),
    );
    // cat ends at the end of file that Ctrl-D gives in the cooked pane.
    tmux.run(&["send-keys", "-t", "attach", "C-d"]);
    assert_restored(&tmux, &dir, &client, "0");
    let screen = tmux.capture("attach");
    assert_eq!(
        screen.matches("standard input is not a terminal").count(),
        1,
        "{screen}"
    );
}

#[test]
fn tmux_exit_signals_restore_terminal() {
    for signal in [libc::SIGQUIT, libc::SIGUSR1, libc::SIGALRM] {
        let dir = TempDir::new();
        let tmux = Tmux::start(&dir, 100, 30);
        let console = TestPty::open();
        let client = start_in_pane(&tmux, &dir, "attach", &attach_command(&console));
        wait_until("the pane is in raw mode", || {
            tmux.pane_termios("attach").is_raw()
        });
        send_signal(client.pid, signal);
        // A shell reports a process ended by signal N as status 128 + N.
        assert_restored(&tmux, &dir, &client, &(128 + signal).to_string());
    }
}

#[test]
fn tmux_stop_and_continue_restore_raw_mode() {
    let dir = TempDir::new();
    let tmux = Tmux::start(&dir, 100, 30);
    let mut console = TestPty::open();
    let client = start_in_pane(&tmux, &dir, "attach", &attach_command(&console));
    wait_until("the pane is in raw mode", || {
        tmux.pane_termios("attach").is_raw()
    });
    let raw = tmux.pane_termios("attach");

    // The pane's shell goes on with its line once the client stops, and prints the stopped
    // status (128 + SIGTSTP).
    send_signal(client.pid, libc::SIGTSTP);
    tmux.wait_pane("attach", "exit=148");
    assert_eq!(
        tmux.pane_termios("attach"),
        client.termios_before,
        "the pane's termios while the client is stopped"
    );
    let stopped = pane_stty(&tmux, "attach", &dir.path("stty-stopped"));
    assert_eq!(
        stopped, client.stty_before,
        "stty -g while the client is stopped"
    );

    // A resize while the client is stopped reaches only the shell, the foreground group then.
    tmux.run(&["resize-window", "-t", "attach", "-x", "90", "-y", "20"]);
    tmux.type_line("attach", "fg; echo \"exit=$?\"");
    wait_until("the pane is raw again after fg", || {
        tmux.pane_termios("attach") == raw
    });
    wait_until(
        "the console has the size the window got while stopped",
        || console.size() == (20, 90),
    );
    tmux.type_line("attach", "typed after fg");
    console.wait_for(b"typed after fg\r");
    console.write(b"shown after fg\r\n");
    tmux.wait_pane("attach", "shown after fg");
    tmux.run(&["send-keys", "-t", "attach", "-H", "1d"]);
    assert_restored(&tmux, &dir, &client, "0");
}
