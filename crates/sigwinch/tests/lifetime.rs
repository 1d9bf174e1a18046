//! The helper's life: it ends with its caller, and survives being stopped and continued.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use ttyvm_sigwinch::{window_size, ListenerOptions, ResizeListener, WindowSize};
use ttyvm_term::{set_window_size, Pty};

fn options_for(role: &str) -> ListenerOptions {
    ListenerOptions {
        seccomp: role.ends_with("seccomp"),
    }
}

/// Role: spawn a listener, print its helper's pid and the pty's path, then print every size it
/// is woken for, for at most 30 s.
fn run_listening_caller(role: &str) {
    let pty = Pty::open().unwrap();
    let listener = ResizeListener::spawn_with(pty.subsidiary.as_fd(), &options_for(role)).unwrap();
    let mut stdout = std::io::stdout();
    writeln!(
        stdout,
        "ready {} {}",
        listener.helper_pid(),
        pty.path.display()
    )
    .unwrap();
    stdout.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if wait_readable(listener.as_fd(), Duration::from_millis(500)) && listener.drain().unwrap()
        {
            let size = window_size(pty.subsidiary.as_fd()).unwrap();
            writeln!(stdout, "size {} {}", size.rows, size.cols).unwrap();
            stdout.flush().unwrap();
        }
    }
}

/// A caller subprocess and the lines it prints.
struct Caller {
    child: Child,
    lines: mpsc::Receiver<String>,
    helper: libc::pid_t,
    path: String,
}

impl Caller {
    fn start(test: &str, role: &str) -> Caller {
        let mut child = role_command(test, role)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        let mut caller = Caller {
            child,
            lines,
            helper: 0,
            path: String::new(),
        };
        let ready = caller.next_line_starting("ready ");
        let mut words = ready.split_whitespace().skip(1);
        caller.helper = words.next().unwrap().parse().unwrap();
        caller.path = words.next().unwrap().to_string();
        caller
    }

    fn next_line_starting(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no line starting with {prefix:?} from the caller"));
            // The harness prints "test NAME ... " without a newline before the role's output.
            if let Some(start) = line.find(prefix) {
                return line[start..].to_string();
            }
        }
    }

    fn expect_size(&self, size: WindowSize) {
        let expected = format!("size {} {}", size.rows, size.cols);
        let line = self.next_line_starting("size ");
        assert_eq!(line, expected);
    }
}

impl Drop for Caller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens a pidfd for `pid`, which becomes readable once the process has exited.
fn pidfd_open(pid: libc::pid_t) -> OwnedFd {
    // SAFETY: pidfd_open takes the pid and flags by value.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    assert!(fd >= 0, "pidfd_open({pid}) failed");
    // SAFETY: pidfd_open returned a new fd that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

fn check_parent_death(test: &str, role: &str) {
    let mut caller = Caller::start(test, role);
    let helper = pidfd_open(caller.helper);
    assert!(is_running(caller.helper));

    caller.child.kill().unwrap();
    let killed = Instant::now();
    let exited = wait_readable(helper.as_fd(), Duration::from_secs(5));
    let elapsed = killed.elapsed();
    eprintln!(
        "parent death ({role}): helper {} exited {elapsed:?} after SIGKILL",
        caller.helper
    );
    assert!(
        exited,
        "helper {} still running 5 s after its caller died",
        caller.helper
    );
    assert!(
        elapsed < Duration::from_secs(1),
        "helper took {elapsed:?} to exit"
    );
    assert!(!is_running(caller.helper));
}

#[test]
fn parent_death_ends_helper() {
    if let Some(role) = role() {
        return run_listening_caller(&role);
    }
    check_parent_death("parent_death_ends_helper", "caller");
    check_parent_death("parent_death_ends_helper", "caller-seccomp");
}

fn open_path(path: &str) -> OwnedFd {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(path)
        .unwrap();
    OwnedFd::from(file)
}

use std::os::unix::fs::OpenOptionsExt;

fn check_stop_and_continue(test: &str, role: &str) {
    let caller = Caller::start(test, role);
    let tty = open_path(&caller.path);
    let caller_pid = caller.child.id() as libc::pid_t;

    let size = WindowSize::new(11, 22);
    set_window_size(tty.as_fd(), size).unwrap();
    caller.expect_size(size);

    send_signal(caller_pid, libc::SIGSTOP);
    assert!(wait_for_state(caller_pid, "T", Duration::from_secs(5)));
    let size = WindowSize::new(12, 23);
    set_window_size(tty.as_fd(), size).unwrap();
    send_signal(caller_pid, libc::SIGCONT);
    caller.expect_size(size);

    send_signal(caller.helper, libc::SIGSTOP);
    assert!(wait_for_state(caller.helper, "T", Duration::from_secs(5)));
    let size = WindowSize::new(13, 24);
    set_window_size(tty.as_fd(), size).unwrap();
    send_signal(caller.helper, libc::SIGCONT);
    caller.expect_size(size);

    let size = WindowSize::new(14, 25);
    set_window_size(tty.as_fd(), size).unwrap();
    caller.expect_size(size);
    assert!(
        is_running(caller.helper),
        "helper died after SIGSTOP and SIGCONT"
    );
}

#[test]
fn stop_and_continue_keep_notifying() {
    if let Some(role) = role() {
        return run_listening_caller(&role);
    }
    check_stop_and_continue("stop_and_continue_keep_notifying", "caller");
    check_stop_and_continue("stop_and_continue_keep_notifying", "caller-seccomp");
}

#[test]
fn stopped_helper_resumes_in_process() {
    for seccomp in [false, true] {
        let pty = Pty::open().unwrap();
        let options = ListenerOptions { seccomp };
        let listener = ResizeListener::spawn_with(pty.subsidiary.as_fd(), &options).unwrap();
        let helper = listener.helper_pid();
        for round in 0..3u16 {
            send_signal(helper, libc::SIGSTOP);
            assert!(wait_for_state(helper, "T", Duration::from_secs(5)));
            let size = WindowSize::new(30 + round, 90 + round);
            set_window_size(pty.main.as_fd(), size).unwrap();
            send_signal(helper, libc::SIGCONT);
            assert!(
                wait_for_wake(&listener),
                "seccomp {seccomp}, round {round}: no wake"
            );
            assert_eq!(window_size(pty.subsidiary.as_fd()).unwrap(), size);
        }
        assert!(is_running(helper), "seccomp {seccomp}: helper died");
        // The helper goes back to sleep in rt_sigtimedwait instead of spinning or staying stopped.
        assert!(wait_for_state(helper, "S", Duration::from_secs(5)));
        drop(listener);
        assert!(
            !is_running(helper),
            "seccomp {seccomp}: drop left the helper running"
        );
    }
}

#[test]
fn drop_reaps_stopped_helper() {
    let pty = Pty::open().unwrap();
    let listener = ResizeListener::spawn(pty.subsidiary.as_fd()).unwrap();
    let helper = listener.helper_pid();
    send_signal(helper, libc::SIGSTOP);
    assert!(wait_for_state(helper, "T", Duration::from_secs(5)));
    let started = Instant::now();
    drop(listener);
    eprintln!("drop of a stopped helper took {:?}", started.elapsed());
    assert!(!std::path::Path::new(&format!("/proc/{helper}")).exists() || !is_running(helper));
    assert!(
        !child_pids().contains(&helper),
        "helper {helper} left as a zombie"
    );
    let _ = pty.main.as_raw_fd();
}
