//! End-to-end tests of `ttyvm serve --console pty` with a real Linux guest: User-Mode Linux,
//! whose virtio_uml driver attaches the server as the guest's virtio console `hvc0`.
//!
//! The test opens the server's pty as a client would, before the guest boots, and talks to the
//! guest's shell or to `ttyvm-responder` through it. They need the guest that
//! `scripts/build-guest` builds and fail, naming that command, when it is missing.

#[path = "common/serve.rs"]
mod serve_common;

use std::time::{Duration, Instant};

use serve_common::{
    assert_still_serving, await_stty_size, boot_ready, one_guest_at_a_time, pty_server, shell,
    socket_exists, stty_size, PtyClient, SocketDir, BOOT_TIMEOUT, PROMPT, REPLY_TIMEOUT,
    SERVER_TIMEOUT,
};
use ttyvm_testkit::{check, checksum, protocol, stream, Run};

#[test]
fn hvc0_carries_text_both_ways_once() {
    let _serial = one_guest_at_a_time();
    let dir = SocketDir::new();
    let server = pty_server(&dir.socket, &[]);
    let mut client = PtyClient::open(server.console_path());
    // The ready line is text the guest writes on hvc0; it must reach the pty.
    let uml = boot_ready(&dir.socket, Run::Shell, &server, &mut client);
    let sources: [&dyn ttyvm_testkit::Captured; 2] = [&server, &uml];

    let seen = shell(&mut client, "tty", "\r\n/dev/hvc0\r\n", &sources);
    assert!(!seen.contains("not a tty"), "tty printed {seen:?}");

    // One typed line: its echo shows once (the pty does not echo it too), it runs once, and
    // the shell prompts once after it (a doubled carriage return would add an empty command).
    let command = "echo first-$((20+1))";
    // busybox's line editor requests the cursor position (ESC [ 6 n) before it echoes.
    let first = shell(&mut client, command, "first-21\r\n", &sources).replace("\u{1b}[6n", "");
    assert_eq!(
        first,
        format!("{command}\r\nfirst-21\r\n"),
        "the first command's echo and output"
    );
    let second = shell(
        &mut client,
        "echo second-$((40+2))",
        "second-42\r\n",
        &sources,
    );
    assert!(
        !second.contains("first-21"),
        "the first line ran twice: {second:?}"
    );
    assert!(
        !second.contains(PROMPT),
        "a second prompt followed the first line: {second:?}"
    );
}

#[test]
fn guest_sees_pty_size_at_boot() {
    let _serial = one_guest_at_a_time();
    let dir = SocketDir::new();
    let server = pty_server(&dir.socket, &["--pty-size", "113x37"]);
    let mut client = PtyClient::open(server.console_path());
    let uml = boot_ready(&dir.socket, Run::Shell, &server, &mut client);
    let sources: [&dyn ttyvm_testkit::Captured; 2] = [&server, &uml];
    // Only the first query counts: no resize and no retry come before it.
    let size = stty_size(&mut client, &sources);
    assert_eq!(size, "37 113", "the guest's first stty size");
}

#[test]
fn winch_trap_prints_each_new_size() {
    let _serial = one_guest_at_a_time();
    let dir = SocketDir::new();
    let server = pty_server(&dir.socket, &[]);
    let mut client = PtyClient::open(server.console_path());
    let uml = boot_ready(&dir.socket, Run::Shell, &server, &mut client);
    let sources: [&dyn ttyvm_testkit::Captured; 2] = [&server, &uml];
    // busybox stty reports a size of 1 as its default 24 or 80, so the smallest size here is 2.
    // `set +m` keeps `sleep` in the shell's process group: with job control it runs in a
    // foreground group of its own, and the tty sends SIGWINCH to that group only.
    // The loop prints `go-2` once the shell runs it, after the line editor has let go of
    // SIGWINCH; a resize before that could reach the editor instead of the trap.
    shell(
        &mut client,
        "set +m; trap 'echo WINCH $(stty size)' WINCH",
        "WINCH\r\n",
        &sources,
    );
    let wait = "echo go-$((1+1)); while :; do sleep .1; done";
    shell(&mut client, wait, "\r\ngo-2\r\n", &sources);

    for (rows, cols) in [(50, 132), (25, 81), (2, 3), (60, 200)] {
        let started = Instant::now();
        client.resize(rows, cols);
        let line = format!("WINCH {rows} {cols}\r\n");
        check(client.console.expect(&line, REPLY_TIMEOUT), &sources);
        println!(
            "resize to {rows}x{cols} printed by the trap after {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn responder_sees_boot_size_and_every_resize() {
    let _serial = one_guest_at_a_time();
    let dir = SocketDir::new();
    let server = pty_server(&dir.socket, &["--pty-size", "100x40"]);
    let mut client = PtyClient::open(server.console_path());
    let uml = boot_ready(&dir.socket, Run::Winch, &server, &mut client);
    let sources: [&dyn ttyvm_testkit::Captured; 2] = [&server, &uml];
    check(
        client.console.expect("size 40 100\r\n", REPLY_TIMEOUT),
        &sources,
    );

    // A compiled responder reads TIOCGWINSZ itself, so sizes the shell cannot show count too.
    for (rows, cols) in [(1, 1), (24, 80), (500, 1000), (24, 81)] {
        let started = Instant::now();
        client.resize(rows, cols);
        let line = format!("size {rows} {cols}\r\n");
        check(client.console.expect(&line, REPLY_TIMEOUT), &sources);
        println!(
            "resize to {rows}x{cols} reported after {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn mebibyte_of_guest_output_arrives_intact() {
    const COUNT: usize = 1024 * 1024;
    let _serial = one_guest_at_a_time();
    let dir = SocketDir::new();
    let server = pty_server(&dir.socket, &[]);
    let mut client = PtyClient::open(server.console_path());
    let uml = boot_ready(&dir.socket, Run::Emit(COUNT as u64), &server, &mut client);
    let sources: [&dyn ttyvm_testkit::Captured; 2] = [&server, &uml];

    let started = Instant::now();
    let received = check(
        client.console.read_exact(COUNT, Duration::from_secs(60)),
        &sources,
    );
    let elapsed = started.elapsed();
    println!(
        "1 MiB of guest output took {elapsed:?} ({:.1} MiB/s)",
        1.0 / elapsed.as_secs_f64()
    );
    let expected = stream::stream_bytes(COUNT);
    let first_difference = received.iter().zip(&expected).position(|(a, b)| a != b);
    assert_eq!(
        first_difference, None,
        "first byte that differs from the stream"
    );

    let trailer = check(client.console.expect("\r\n", REPLY_TIMEOUT), &sources);
    assert_eq!(trailer, "\r\n", "bytes between the stream and its sum line");
    let sum_line = check(client.console.expect("\r\n", REPLY_TIMEOUT), &sources);
    let sum = protocol::parse_sum(&sum_line).unwrap_or_else(|| panic!("no sum line: {sum_line:?}"));
    assert_eq!(sum.count, COUNT as u64, "the guest's count");
    assert_eq!(
        sum.hash,
        checksum::fnv1a64(&received),
        "the guest's checksum of what it sent"
    );
}

#[test]
fn host_input_of_64_kib_arrives_intact() {
    const COUNT: usize = 64 * 1024;
    let _serial = one_guest_at_a_time();
    let dir = SocketDir::new();
    let server = pty_server(&dir.socket, &[]);
    let mut client = PtyClient::open(server.console_path());
    let uml = boot_ready(&dir.socket, Run::Sink(COUNT as u64), &server, &mut client);
    let sources: [&dyn ttyvm_testkit::Captured; 2] = [&server, &uml];

    // Every byte value, control characters included, must pass both raw ttys unchanged.
    let data = stream::stream_bytes(COUNT);
    let started = Instant::now();
    check(client.console.send(&data), &sources);
    let sum_line = check(
        client.console.expect("\r\n", Duration::from_secs(60)),
        &sources,
    );
    println!("64 KiB of host input took {:?}", started.elapsed());
    let sum = protocol::parse_sum(&sum_line).unwrap_or_else(|| panic!("no sum line: {sum_line:?}"));
    assert_eq!(sum.count, COUNT as u64, "the guest's count");
    assert_eq!(
        sum.hash,
        checksum::fnv1a64(&data),
        "the guest's checksum of what it read"
    );
}

/// Powers the guest shell off and waits for UML to exit with status 0.
fn power_off(client: &mut PtyClient, uml: &mut ttyvm_testkit::Uml, server: &ttyvm_testkit::Server) {
    check(client.console.send(b"poweroff -f\r"), &[server, &*uml]);
    let status = uml.wait_timeout(BOOT_TIMEOUT);
    let status = check(status, &[server, &*uml]);
    assert_eq!(status.code(), Some(0), "UML exit status after poweroff -f");
}

#[test]
fn second_guest_gets_same_pty_and_resizes() {
    let _serial = one_guest_at_a_time();
    let dir = SocketDir::new();
    let mut server = pty_server(&dir.socket, &["--pty-size", "90x30"]);
    let mut client = PtyClient::open(server.console_path());

    let mut first = boot_ready(&dir.socket, Run::Shell, &server, &mut client);
    await_stty_size(&mut client, 30, 90, &[&server, &first]);
    power_off(&mut client, &mut first, &server);
    drop(first);

    // A resize while no guest is connected: the next guest must see it from boot.
    client.resize(33, 101);
    std::thread::sleep(Duration::from_millis(200));
    assert_still_serving(&mut server, &dir.socket, "after the first guest");

    // The client keeps its fd on the same pty; the server prints no second console line.
    let second = boot_ready(&dir.socket, Run::Shell, &server, &mut client);
    let sources: [&dyn ttyvm_testkit::Captured; 2] = [&server, &second];
    let size = stty_size(&mut client, &sources);
    assert_eq!(size, "33 101", "the second guest's first stty size");
    client.resize(44, 120);
    await_stty_size(&mut client, 44, 120, &sources);
    assert_eq!(
        server.stdout().matches("console: ").count(),
        1,
        "the server announced a console twice:\n{}",
        server.stdout()
    );
}

#[test]
fn once_exits_after_first_disconnect() {
    let _serial = one_guest_at_a_time();
    let dir = SocketDir::new();
    let mut server = pty_server(&dir.socket, &["--once"]);
    let mut client = PtyClient::open(server.console_path());
    let mut uml = boot_ready(&dir.socket, Run::Shell, &server, &mut client);
    // Still serving while the guest runs.
    assert!(
        server.wait_timeout(Duration::ZERO).is_err(),
        "the server exited early"
    );
    power_off(&mut client, &mut uml, &server);
    let status = check(server.wait_timeout(SERVER_TIMEOUT), &[&server, &uml]);
    assert_eq!(
        status.code(),
        Some(0),
        "the server's exit status:\n{}",
        server.stderr()
    );
    assert!(
        !socket_exists(&dir.socket),
        "the socket file is left behind"
    );
}
