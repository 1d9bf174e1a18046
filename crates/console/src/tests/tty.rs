//! The tty backend, run in a child process whose stdin, stdout and controlling terminal are the
//! subsidiary side of a pty that this test holds, as a user's shell would run the server.

use super::*;
use crate::backend::fd::is_nonblocking;
use crate::TtyBackend;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use ttyvm_term::{set_window_size, Pty, Termios};

const CHILD_ENV: &str = "TTYVM_CONSOLE_TTY_CHILD_REPORT";
const WAIT: Duration = Duration::from_secs(10);

#[test]
fn tty_open_rejects_non_terminal_stdin() {
    // The test harness's stdin is not a terminal in CI; where it is, this check does not apply,
    // and the child test below covers the terminal case.
    // SAFETY: isatty takes fd 0 by value and touches no memory.
    if unsafe { libc::isatty(0) } == 1 {
        return;
    }
    let err = TtyBackend::open().unwrap_err();
    assert!(
        matches!(err, crate::BackendError::NotATerminal { stream: "stdin" }),
        "{err}"
    );
    assert!(err.to_string().contains("stdin is not a terminal"), "{err}");
}

#[test]
fn tty_backend_in_terminal_child() {
    let pty = Pty::open().unwrap();
    set_window_size(pty.main.as_fd(), WindowSize::new(30, 100)).unwrap();
    let report = std::env::temp_dir().join(format!("ttyvm-console-tty-{}", std::process::id()));
    let _ = std::fs::remove_file(&report);
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "tests::tty::tty_child_entry",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_ENV, &report)
        .stdin(Stdio::from(pty.reopen_subsidiary().unwrap()))
        .stdout(Stdio::from(pty.reopen_subsidiary().unwrap()))
        .stderr(Stdio::null());
    // SAFETY: the closure runs in the forked child before exec and calls only setsid and ioctl,
    // which are async-signal-safe; it allocates nothing.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 || libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    drop(pty.subsidiary);
    let mut main = File::from(pty.main);
    crate::backend::fd::set_nonblocking(main.as_fd()).unwrap();

    let mut seen = wait_for_line(&report, "ready", &mut main, &mut child);
    main.write_all(b"keys\r").unwrap();
    set_window_size(main.as_fd(), WindowSize::new(40, 120)).unwrap();
    seen.extend(wait_for_line(&report, "done", &mut main, &mut child));
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(&report).unwrap();
    let _ = std::fs::remove_file(&report);

    assert!(status.success(), "child failed: {text}");
    for line in [
        "raw=true",
        "shared_nonblocking=false",
        "own_nonblocking=true",
        "initial=30x100",
        r#"input="keys\r""#,
        "resized=40x120",
        "restored=true",
        "restorer=true",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in {text:?}"
        );
    }
    assert!(
        seen.windows(5).any(|w| w == b"hello"),
        "guest output not on the terminal: {seen:?}"
    );
}

/// Reads the terminal while waiting for `line` in the report; returns what the terminal showed.
fn wait_for_line(
    report: &std::path::Path,
    line: &str,
    main: &mut File,
    child: &mut std::process::Child,
) -> Vec<u8> {
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        if let Ok(read) = main.read(&mut buf) {
            seen.extend_from_slice(&buf[..read]);
        }
        let text = std::fs::read_to_string(report).unwrap_or_default();
        if text.lines().any(|l| l == line) {
            return seen;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("child exited with {status} before reporting {line:?}: {text:?}");
        }
        assert!(
            start.elapsed() < WAIT,
            "child never reported {line:?}: {text:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Child side of [`tty_backend_in_terminal_child`]; does nothing unless that test started it.
#[test]
#[ignore = "entry point of a child process started by tty_backend_in_terminal_child"]
fn tty_child_entry() {
    let Some(report) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let mut out = std::fs::File::create(report).unwrap();
    let mut say = |line: String| {
        writeln!(out, "{line}").unwrap();
        out.flush().unwrap();
    };
    let stdin = io::stdin();
    let original = Termios::get(stdin.as_fd()).unwrap();
    let backend = TtyBackend::open().unwrap();
    let now = Termios::get(stdin.as_fd()).unwrap();
    say(format!(
        "raw={}",
        now.as_libc().c_lflag & (libc::ICANON | libc::ECHO) == 0
    ));
    say(format!(
        "shared_nonblocking={}",
        is_nonblocking(stdin.as_fd()).unwrap()
    ));
    let own = backend.fd(Source::Input).unwrap();
    say(format!("own_nonblocking={}", is_nonblocking(own).unwrap()));

    let mut console = Console::new(Box::new(backend), Limits::default());
    console.ack_features(console.device_features());
    console.driver_ready();
    let mem = memory();
    assert!(console.process(&mem, None, None).config_changed);
    say(format!(
        "initial={}x{}",
        console.size().rows,
        console.size().cols
    ));
    let vq = MockSplitQueue::new(&mem, 16);
    fill(&mem, DATA, b"hello");
    add_chain(&vq, 0, &[(DATA, 5)], false);
    let mut txq = new_queue(&vq);
    console.process(&mem, None, Some(&mut txq));
    say("ready".to_string());

    let start = Instant::now();
    while console.buffered_input() < 5 || console.size() != WindowSize::new(40, 120) {
        assert!(start.elapsed() < WAIT, "no input or resize");
        for fd in console.poll_fds() {
            // SAFETY: the fd is the console's own, alive while `console` is.
            let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd.fd) };
            let revents = crate::backend::fd::poll_now(borrowed, fd.events).unwrap();
            if revents != 0 {
                console.handle_ready(fd.source, revents);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let rx = MockSplitQueue::create(&mem, GuestAddress(0x8000), 16);
    add_chain(&rx, 0, &[(DATA + 0x1000, 64)], true);
    let mut rxq = new_queue(&rx);
    let notify = console.process(&mem, Some(&mut rxq), None);
    let input = String::from_utf8(read(&mem, DATA + 0x1000, 5)).unwrap();
    say(format!("input={input:?}"));
    assert!(notify.config_changed);
    say(format!(
        "resized={}x{}",
        console.size().rows,
        console.size().cols
    ));

    drop(console);
    say(format!(
        "restored={}",
        Termios::get(stdin.as_fd()).unwrap() == original
    ));
    let backend = TtyBackend::open().unwrap();
    backend.restorer().restore().unwrap();
    say(format!(
        "restorer={}",
        Termios::get(stdin.as_fd()).unwrap() == original
    ));
    drop(backend);
    say("done".to_string());
}
