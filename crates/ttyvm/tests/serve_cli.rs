//! End-to-end tests of what a user of `ttyvm serve` meets around the console itself: the errors
//! of a wrong command line or a taken socket, the file and null consoles, the log, and the stop
//! signals. The tests that need a guest boot User-Mode Linux and fail, naming
//! `scripts/build-guest`, when it is not built.

#[path = "common/frontend.rs"]
mod frontend;
#[path = "common/serve.rs"]
mod serve_common;

use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::{Duration, Instant};

use frontend::RawFrontend;
use serve_common::{
    assert_still_serving, boot, listening_server, one_guest_at_a_time, path_str, pty_server,
    ready_marker, run_to_exit, shell, socket_exists, PtyClient, SocketDir, BOOT_TIMEOUT,
    SERVER_TIMEOUT,
};
use ttyvm_testkit::{check, Run, Server, Uml};

/// Asserts that a run failed with a non-zero status and exactly one message line that contains
/// each of `words`.
fn assert_one_line_error(outcome: &serve_common::Outcome, words: &[&str]) {
    assert!(
        !outcome.status.success(),
        "exit status {:?}; stderr:\n{}",
        outcome.status,
        outcome.stderr
    );
    let lines = outcome.message_lines();
    assert_eq!(
        lines.len(),
        1,
        "stderr should carry one message line:\n{}",
        outcome.stderr
    );
    for word in words {
        assert!(
            lines[0].contains(word),
            "{word:?} missing from {:?}",
            lines[0]
        );
    }
}

#[test]
fn missing_folder_is_one_line_error() {
    let dir = SocketDir::new();
    let socket = dir.join("missing/console.sock");
    let outcome = run_to_exit(
        &["serve", "--socket", path_str(&socket), "--console", "null"],
        &dir,
    );
    assert_one_line_error(
        &outcome,
        &["does not exist", path_str(&dir.join("missing"))],
    );
}

#[test]
fn live_socket_error_spares_server() {
    let _serial = one_guest_at_a_time();
    let dir = SocketDir::new();
    let mut first = pty_server(&dir.socket, &["--once"]);
    let args = [
        "serve",
        "--socket",
        path_str(&dir.socket),
        "--console",
        "null",
    ];
    let outcome = run_to_exit(&args, &dir);
    assert_one_line_error(&outcome, &["in use", path_str(&dir.socket)]);

    // The refused server must leave the live one serving its first guest.
    std::thread::sleep(Duration::from_millis(300));
    assert_still_serving(&mut first, &dir.socket, "after the refused second server");
    let mut client = PtyClient::open(first.console_path());
    let mut uml = boot(&dir.socket, Run::Shell, &first);
    check(
        client
            .console
            .expect(&ready_marker(Run::Shell), BOOT_TIMEOUT),
        &[&first, &uml],
    );

    // A second refusal while the guest is connected must leave that guest's session alone.
    let outcome = run_to_exit(&args, &dir);
    assert_one_line_error(&outcome, &["in use"]);
    let sources: [&dyn ttyvm_testkit::Captured; 2] = [&first, &uml];
    shell(&mut client, "echo alive-$((3*3))", "alive-9\r\n", &sources);
    check(client.console.send(b"poweroff -f\r"), &sources);
    check(uml.wait_timeout(BOOT_TIMEOUT), &[&first, &uml]);
    let status = check(first.wait_timeout(SERVER_TIMEOUT), &[&first, &uml]);
    assert_eq!(status.code(), Some(0), "the --once server's exit status");
}

#[test]
fn stale_socket_is_replaced() {
    let _serial = one_guest_at_a_time();
    let dir = SocketDir::new();
    let mut killed = listening_server(&dir.socket, "null", &[]);
    check(killed.signal(libc::SIGKILL), &[&killed]);
    check(killed.wait_timeout(SERVER_TIMEOUT), &[&killed]);
    assert!(
        socket_exists(&dir.socket),
        "SIGKILL should leave the socket file behind"
    );

    let server = pty_server(&dir.socket, &[]);
    let mut client = PtyClient::open(server.console_path());
    let uml = boot(&dir.socket, Run::Shell, &server);
    check(
        client
            .console
            .expect(&ready_marker(Run::Shell), BOOT_TIMEOUT),
        &[&server, &uml],
    );
}

#[test]
fn non_socket_file_is_left_alone() {
    let dir = SocketDir::new();
    std::fs::write(&dir.socket, b"keep me").expect("writing the file failed");
    let outcome = run_to_exit(
        &[
            "serve",
            "--socket",
            path_str(&dir.socket),
            "--console",
            "null",
        ],
        &dir,
    );
    assert_one_line_error(&outcome, &["not a socket"]);
    assert_eq!(
        std::fs::read(&dir.socket).ok().as_deref(),
        Some(&b"keep me"[..])
    );
}

#[test]
fn tty_without_terminal_fails() {
    let dir = SocketDir::new();
    let outcome = run_to_exit(
        &[
            "serve",
            "--socket",
            path_str(&dir.socket),
            "--console",
            "tty",
        ],
        &dir,
    );
    assert_one_line_error(&outcome, &["stdin is not a terminal"]);
    assert!(
        !socket_exists(&dir.socket),
        "the failed server left its socket behind"
    );
}

#[test]
fn unknown_mode_is_one_line_error() {
    let dir = SocketDir::new();
    let outcome = run_to_exit(
        &[
            "serve",
            "--socket",
            path_str(&dir.socket),
            "--console",
            "serial",
        ],
        &dir,
    );
    assert_one_line_error(&outcome, &["unknown console mode", "serial"]);
    assert!(
        !socket_exists(&dir.socket),
        "the failed server created its socket"
    );
}

#[test]
fn file_mode_without_path_fails() {
    let dir = SocketDir::new();
    let outcome = run_to_exit(
        &[
            "serve",
            "--socket",
            path_str(&dir.socket),
            "--console",
            "file=",
        ],
        &dir,
    );
    assert_one_line_error(&outcome, &["file=", "needs a path"]);
}

/// Waits up to [`BOOT_TIMEOUT`] for `path` to contain `needle`, and returns its text.
fn await_file_text(path: &Path, needle: &str, sources: &[&dyn ttyvm_testkit::Captured]) -> String {
    let deadline = Instant::now() + BOOT_TIMEOUT;
    loop {
        let text = String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned();
        if text.contains(needle) {
            return text;
        }
        if Instant::now() >= deadline {
            let error = format!(
                "{} never showed {needle:?}; it holds {text:?}",
                path.display()
            );
            return check(Err(error), sources);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn file_mode_writes_guest_output_to_file() {
    const COUNT: usize = 4096;
    let _serial = one_guest_at_a_time();
    let dir = SocketDir::new();
    let log = dir.join("console.log");
    let console = format!("file={}", log.display());
    let mut server = listening_server(&dir.socket, &console, &["--once"]);
    let mut uml = boot(&dir.socket, Run::Emit(COUNT as u64), &server);
    // The responder's exit line follows the stream and its sum, so the whole run is in.
    let exit_line = format!("{} 0", ttyvm_testkit::protocol::EXIT);
    let text = await_file_text(&log, &exit_line, &[&server, &uml]);
    check(uml.wait_timeout(BOOT_TIMEOUT), &[&server, &uml]);
    check(server.wait_timeout(SERVER_TIMEOUT), &[&server, &uml]);

    let bytes = std::fs::read(&log).expect("reading the console file failed");
    let marker = ready_marker(Run::Emit(COUNT as u64));
    let start = text.find(&marker).map(|at| at + marker.len());
    let start = start.unwrap_or_else(|| panic!("no ready line in {text:?}"));
    let expected = ttyvm_testkit::stream::stream_bytes(COUNT);
    assert_eq!(
        bytes.get(start..start + COUNT),
        Some(&expected[..]),
        "the stream in the file"
    );
    let sum = ttyvm_testkit::protocol::parse_sum(&text).unwrap_or_else(|| panic!("no sum line"));
    assert_eq!(sum.hash, ttyvm_testkit::checksum::fnv1a64(&expected));
}

#[test]
fn null_mode_serves_a_guest_to_the_end() {
    let _serial = one_guest_at_a_time();
    let dir = SocketDir::new();
    let mut server = listening_server(&dir.socket, "null", &["--once"]);
    // No one reads the output, and the guest must still get through 256 KiB and power off.
    let mut uml = boot(&dir.socket, Run::Emit(256 * 1024), &server);
    let status = check(uml.wait_timeout(BOOT_TIMEOUT), &[&server, &uml]);
    assert_eq!(status.code(), Some(0), "UML exit status");
    let status = check(server.wait_timeout(SERVER_TIMEOUT), &[&server, &uml]);
    assert_eq!(status.code(), Some(0), "the server's exit status");
    assert!(
        !uml.log().contains("TTYVM-ERROR"),
        "the guest failed:\n{}",
        uml.log()
    );
}

/// Runs a guest that emits a little and powers off, on a `--once` pty server with `extra`
/// arguments, and returns the server after it exited with status 0.
fn serve_one_guest(dir: &SocketDir, extra: &[&str]) -> (Server, Uml) {
    let mut args = vec!["--once"];
    args.extend_from_slice(extra);
    let mut server = pty_server(&dir.socket, &args);
    let mut client = PtyClient::open(server.console_path());
    let mut uml = boot(&dir.socket, Run::Emit(1024), &server);
    check(
        client.console.expect("TTYVM-EXIT 0", BOOT_TIMEOUT),
        &[&server, &uml],
    );
    check(uml.wait_timeout(BOOT_TIMEOUT), &[&server, &uml]);
    let status = check(server.wait_timeout(SERVER_TIMEOUT), &[&server, &uml]);
    assert_eq!(
        status.code(),
        Some(0),
        "the server's exit status:\n{}",
        server.stderr()
    );
    (server, uml)
}

#[test]
fn verbose_log_names_connection_ids() {
    let _serial = one_guest_at_a_time();
    let dir = SocketDir::new();
    let (server, _uml) = serve_one_guest(&dir, &["-v"]);
    let log = server.stderr();
    let console = server.console_path().display().to_string();
    for expected in [
        format!("serving a pty console on {}", dir.socket.display()),
        format!("console on {console}"),
        "connection 1 accepted".to_string(),
        "connection 1: frontend disconnected".to_string(),
        "stopped".to_string(),
    ] {
        assert!(
            log.contains(&expected),
            "{expected:?} missing from the log:\n{log}"
        );
    }
}

#[test]
fn default_level_is_silent_when_clean() {
    let _serial = one_guest_at_a_time();
    let dir = SocketDir::new();
    let (server, _uml) = serve_one_guest(&dir, &[]);
    assert_eq!(server.stderr(), "", "stderr of a clean run");
    assert_eq!(
        server.stdout(),
        format!("console: {}\n", server.console_path().display())
    );
}

/// Starts a pty server, sends it `signal`, and checks that it exits 0 without its socket.
fn stops_on(signal: libc::c_int, name: &str) {
    let dir = SocketDir::new();
    let mut server = pty_server(&dir.socket, &["-v"]);
    check(server.signal(signal), &[&server]);
    let status = check(server.wait_timeout(SERVER_TIMEOUT), &[&server]);
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after {name}:\n{}",
        server.stderr()
    );
    assert!(
        !socket_exists(&dir.socket),
        "the socket is left behind after {name}"
    );
    assert!(
        server.stderr().contains(&format!("stopping on {name}")),
        "{}",
        server.stderr()
    );
}

#[test]
fn sigterm_stops_with_status_zero() {
    stops_on(libc::SIGTERM, "SIGTERM");
}

#[test]
fn sigint_stops_with_status_zero() {
    stops_on(libc::SIGINT, "SIGINT");
}

#[test]
fn sighup_stops_with_status_zero() {
    stops_on(libc::SIGHUP, "SIGHUP");
}

#[test]
fn sigterm_stops_with_guest_connected() {
    let _serial = one_guest_at_a_time();
    let dir = SocketDir::new();
    let mut server = pty_server(&dir.socket, &["-v"]);
    let mut client = PtyClient::open(server.console_path());
    let uml = boot(&dir.socket, Run::Shell, &server);
    check(
        client
            .console
            .expect(&ready_marker(Run::Shell), BOOT_TIMEOUT),
        &[&server, &uml],
    );
    check(server.signal(libc::SIGTERM), &[&server, &uml]);
    let status = check(server.wait_timeout(SERVER_TIMEOUT), &[&server, &uml]);
    assert_eq!(status.code(), Some(0), "exit status:\n{}", server.stderr());
    assert!(!socket_exists(&dir.socket), "the socket is left behind");
}

#[test]
fn replaced_socket_is_not_removed() {
    let dir = SocketDir::new();
    let mut server = pty_server(&dir.socket, &[]);
    // Someone moves the socket away and binds a new one at the same path.
    std::fs::remove_file(&dir.socket).expect("removing the socket failed");
    let other = UnixListener::bind(&dir.socket).expect("binding the other socket failed");
    check(server.signal(libc::SIGTERM), &[&server]);
    check(server.wait_timeout(SERVER_TIMEOUT), &[&server]);
    assert!(
        socket_exists(&dir.socket),
        "the server removed a socket it did not create"
    );
    drop(other);
}

/// Returns the pids of the children of every thread of `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    let mut children = Vec::new();
    for task in tasks {
        let path = task.unwrap().path().join("children");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        children.extend(
            text.split_whitespace()
                .map(|pid| pid.parse::<u32>().unwrap()),
        );
    }
    children
}

/// Returns the value of `field` in /proc/PID/status.
fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

#[test]
fn resize_helper_runs_under_seccomp() {
    let dir = SocketDir::new();
    let server = pty_server(&dir.join("console.sock"), &[]);
    let helpers = children_of(server.pid());
    assert_eq!(
        helpers.len(),
        1,
        "the server should have one child, its resize helper"
    );
    // Mode 2 is a seccomp filter; 0 would mean the helper runs unconfined.
    assert_eq!(status_field(helpers[0], "Seccomp"), "2");
    assert_eq!(status_field(helpers[0], "NoNewPrivs"), "1");
}

/// Sends GET_FEATURES on a new connection and returns whether a reply came back, which a
/// rejected connection, closed at once by the server, never gives.
fn get_features(socket: &Path) -> bool {
    use std::io::{Read, Write};
    const GET_FEATURES: u32 = 1;
    const VERSION_1: u32 = 0x1;
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut header = Vec::new();
    for word in [GET_FEATURES, VERSION_1, 0] {
        header.extend_from_slice(&word.to_le_bytes());
    }
    stream.write_all(&header).unwrap();
    // A reply is a 12-byte header and the 8-byte feature mask.
    let mut reply = [0u8; 20];
    let replied = stream.read_exact(&mut reply).is_ok();
    // Shut down rather than only close: a child that another test thread forks at this moment
    // holds a copy of the fd until its exec, and the connection would outlive the close.
    let _ = stream.shutdown(std::net::Shutdown::Both);
    replied
}

#[test]
fn quick_reconnect_is_served() {
    let dir = SocketDir::new();
    let socket = dir.join("console.sock");
    let _server = listening_server(&socket, "null", &[]);
    for round in 0..30 {
        // The first connection ends right after its request; the second comes at once.
        assert!(
            get_features(&socket),
            "round {round}: first connection got no reply"
        );
        assert!(
            get_features(&socket),
            "round {round}: the reconnect was rejected as a second frontend"
        );
    }
}

/// CPU time of `pid` so far, in clock ticks (user plus system).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm end") + 2..]
        .split(' ')
        .collect();
    // utime and stime are fields 14 and 15 of stat; after comm they are at 11 and 12.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

#[test]
fn kick_pipe_rejected_not_spun_on() {
    let dir = SocketDir::new();
    let server = listening_server(&dir.socket, "null", &["-v"]);
    let frontend = RawFrontend::connect(&dir.socket);
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two fds pipe2 writes.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 returned two fds that nothing else owns. The write end is closed at once.
    let read_end = unsafe {
        libc::close(fds[1]);
        std::os::fd::OwnedFd::from_raw_fd(fds[0])
    };
    frontend.start_ring(1, read_end.as_raw_fd());
    let deadline = Instant::now() + SERVER_TIMEOUT;
    while !server.stderr().contains("not an eventfd") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = server.stderr();
    assert!(log.contains("kick fd of vring 1 is pipe:"), "{log}");
    let before = cpu_ticks(server.pid());
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(server.pid()) - before;
    println!("server CPU in 1 s after the rejected kick fd: {used} ticks");
    // A server that polls the hung-up pipe spins a whole core: about 100 ticks a second.
    assert!(used < 30, "the server used {used} ticks in 1 s:\n{log}");
    assert!(frontend.connected(), "the rejection dropped the connection");
}
