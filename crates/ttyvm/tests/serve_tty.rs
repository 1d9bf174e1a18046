//! End-to-end tests of `ttyvm serve --console tty`, driven through a private tmux server: the
//! server runs in a tmux pane with that pane as its console, and a User-Mode Linux guest runs in
//! the background. They need the guest that `scripts/build-guest` builds and fail, naming that
//! command, when it is missing.

#[path = "common/serve.rs"]
mod serve_common;

use std::fs::OpenOptions;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serve_common::{
    boot, one_guest_at_a_time, path_str, socket_exists, SocketDir, BOOT_TIMEOUT, REPLY_TIMEOUT,
    SERVER_TIMEOUT, TTYVM,
};
use ttyvm_term::Termios;
use ttyvm_testkit::{check, Captured, Run, Tmux, WindowSize};

/// The tmux session, and the pane the server runs in.
const PANE: &str = "serve";

/// A server in a tmux pane, with the files the pane's shell writes around it.
struct PaneServer {
    tmux: Tmux,
    dir: SocketDir,
    /// `stty -g` of the pane before the server started.
    before: PathBuf,
    /// `stty -g` of the pane after the server exited.
    after: PathBuf,
    /// The server's exit status.
    status: PathBuf,
    /// The server's stderr.
    stderr: PathBuf,
    /// The server's process id, written by the shell that execs it.
    pid: PathBuf,
}

impl PaneServer {
    /// Starts a shell in a tmux pane of `size` that records `stty -g`, runs
    /// `ttyvm serve --console tty --once -v` in the foreground, and records `stty -g` and the exit
    /// status after it. Returns once the server's socket exists.
    fn start(size: WindowSize) -> Self {
        let dir = SocketDir::new();
        let server = Self {
            tmux: Tmux::new().unwrap_or_else(|error| panic!("{error}")),
            before: dir.join("stty-before"),
            after: dir.join("stty-after"),
            status: dir.join("status"),
            stderr: dir.join("serve.stderr"),
            pid: dir.join("serve.pid"),
            dir,
        };
        let serve = format!(
            "sh -c 'echo $$ > {pid}; exec {ttyvm} serve --socket {socket} --console tty --once -v'",
            pid = path_str(&server.pid),
            ttyvm = TTYVM,
            socket = path_str(&server.dir.socket),
        );
        let script = format!(
            "stty -g > {before}; {serve} 2> {stderr}; echo $? > {status}; stty -g > {after}; \
             echo pane-done-$((1+1))",
            before = path_str(&server.before),
            stderr = path_str(&server.stderr),
            status = path_str(&server.status),
            after = path_str(&server.after),
        );
        let tmux = &server.tmux;
        check(tmux.new_session(PANE, size, "sh"), &[&server]);
        check(tmux.send_text(PANE, &script), &[&server]);
        check(tmux.send_keys(PANE, &["Enter"]), &[&server]);
        server.await_socket();
        server
    }

    fn await_socket(&self) {
        let deadline = Instant::now() + SERVER_TIMEOUT;
        while !socket_exists(&self.dir.socket) {
            if Instant::now() >= deadline {
                let error = format!(
                    "no socket at {} within {SERVER_TIMEOUT:?}",
                    self.dir.socket.display()
                );
                check::<(), _>(Err(error), &[self]);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Types `text` and Enter into the pane.
    fn type_line(&self, text: &str, sources: &[&dyn Captured]) {
        check(self.tmux.send_text(PANE, text), sources);
        check(self.tmux.send_keys(PANE, &["Enter"]), sources);
    }

    /// Returns the pane's size as `rows cols`.
    fn pane_size(&self) -> String {
        let size = self.tmux.run(&[
            "display-message",
            "-p",
            "-t",
            PANE,
            "#{pane_height} #{pane_width}",
        ]);
        check(size, &[self]).trim().to_string()
    }

    /// Types `stty size` queries into the guest shell until one shows the pane's size.
    fn await_guest_size(&self, sources: &[&dyn Captured]) {
        let expected = format!("size=[{}]-42", self.pane_size());
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            self.type_line("clear; echo size=[$(stty size)]-$((6*7))", sources);
            let waited = self
                .tmux
                .wait_for_text(PANE, &expected, Duration::from_secs(2));
            if waited.is_ok() {
                return;
            }
            if Instant::now() >= deadline {
                check(waited, sources);
            }
        }
    }

    /// Waits for the pane's shell to finish after the server, and returns the exit status.
    fn await_exit(&self, sources: &[&dyn Captured]) -> String {
        self.await_status("pane-done-2", sources)
    }

    /// Waits until the pane shows `marker`, which the shell prints after it has written the
    /// status and `stty -g` files, and returns the status.
    fn await_status(&self, marker: &str, sources: &[&dyn Captured]) -> String {
        check(
            self.tmux.wait_for_text(PANE, marker, SERVER_TIMEOUT),
            sources,
        );
        read(&self.status).trim().to_string()
    }

    /// Reads the termios of the pane's terminal, as any process on that terminal sees it.
    fn pane_termios(&self) -> Termios {
        let tty = self
            .tmux
            .run(&["display-message", "-p", "-t", PANE, "#{pane_tty}"]);
        let tty = check(tty, &[self]);
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
            .open(tty.trim())
            .unwrap_or_else(|error| panic!("opening the pane's tty {tty:?} failed: {error}"));
        Termios::get(file.as_fd()).expect("tcgetattr on the pane's tty failed")
    }

    /// Waits until the pane's termios is `expected`.
    fn await_termios(&self, expected: Termios, what: &str) {
        let deadline = Instant::now() + SERVER_TIMEOUT;
        while self.pane_termios() != expected {
            if Instant::now() >= deadline {
                let error = format!(
                    "the pane's termios is not {what} within {SERVER_TIMEOUT:?}: {:?}",
                    self.pane_termios()
                );
                check::<(), _>(Err(error), &[self]);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Asserts that `stty -g` after the server equals `stty -g` before it.
    fn assert_termios_restored(&self) {
        let before = read(&self.before);
        assert!(!before.trim().is_empty(), "no stty -g before the server");
        assert_eq!(read(&self.after), before, "stty -g after the server");
    }

    /// Sends `signal` to the server process.
    fn signal(&self, signal: libc::c_int) {
        let pid: libc::pid_t = read(&self.pid)
            .trim()
            .parse()
            .expect("the pid file holds no pid");
        // SAFETY: kill has no memory effects. The pid is the server's, which runs until it
        // sees a stop signal, and the pane's shell reaps it only after that.
        let result = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            result,
            0,
            "kill {pid} failed: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

impl Captured for PaneServer {
    fn captured_output(&self) -> String {
        let screen = self
            .tmux
            .capture_pane(PANE)
            .unwrap_or_else(|error| error.to_string());
        format!(
            "--- tmux pane ---\n{screen}\n--- server stderr ({}) ---\n{}",
            self.stderr.display(),
            read(&self.stderr)
        )
    }
}

#[test]
fn tty_follows_tmux_window_size() {
    let _serial = one_guest_at_a_time();
    let pane = PaneServer::start(WindowSize { rows: 24, cols: 80 });
    let mut uml = boot(&pane.dir.socket, Run::Shell, &pane);
    let sources: [&dyn Captured; 2] = [&pane, &uml];
    check(
        pane.tmux
            .wait_for_text(PANE, "TTYVM-READY shell", BOOT_TIMEOUT),
        &sources,
    );
    check(
        pane.tmux.wait_for_text(PANE, "guest#", REPLY_TIMEOUT),
        &sources,
    );

    // Typed into the pane, through the server, to the guest shell; its size is the pane's.
    pane.await_guest_size(&sources);
    check(
        pane.tmux.resize_window(
            PANE,
            WindowSize {
                rows: 40,
                cols: 100,
            },
        ),
        &sources,
    );
    pane.await_guest_size(&sources);
    check(
        pane.tmux
            .resize_window(PANE, WindowSize { rows: 15, cols: 60 }),
        &sources,
    );
    pane.await_guest_size(&sources);

    pane.type_line("poweroff -f", &sources);
    let status = uml.wait_timeout(BOOT_TIMEOUT);
    let status = check(status, &[&pane, &uml]);
    assert_eq!(status.code(), Some(0), "UML exit status after poweroff -f");
    assert_eq!(
        pane.await_exit(&[&pane, &uml]),
        "0",
        "the server's exit status"
    );
    pane.assert_termios_restored();
}

/// Starts the tty server in a pane, stops it with `signal`, and checks its exit and the pane's
/// termios.
fn tty_server_stops_on(signal: libc::c_int, name: &str) {
    let pane = PaneServer::start(WindowSize { rows: 24, cols: 80 });
    pane.signal(signal);
    assert_eq!(
        pane.await_exit(&[&pane]),
        "0",
        "the server's exit status after {name}"
    );
    pane.assert_termios_restored();
    let log = read(&pane.stderr);
    assert!(
        log.contains(&format!("stopping on {name}")),
        "the log after {name}:\n{log}"
    );
}

#[test]
fn tty_console_restores_termios_on_sigterm() {
    tty_server_stops_on(libc::SIGTERM, "SIGTERM");
}

#[test]
fn tty_console_restores_termios_on_sigint() {
    tty_server_stops_on(libc::SIGINT, "SIGINT");
}

#[test]
fn tty_console_restores_termios_on_sighup() {
    tty_server_stops_on(libc::SIGHUP, "SIGHUP");
}

#[test]
fn tty_console_restores_termios_on_other_exit_signals() {
    for (signal, name) in [
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGALRM, "SIGALRM"),
    ] {
        tty_server_stops_on(signal, name);
    }
}

#[test]
fn tty_console_hands_terminal_back_on_sigtstp() {
    let _serial = one_guest_at_a_time();
    let pane = PaneServer::start(WindowSize { rows: 24, cols: 80 });
    let mut uml = boot(&pane.dir.socket, Run::Shell, &pane);
    let sources: [&dyn Captured; 2] = [&pane, &uml];
    check(
        pane.tmux
            .wait_for_text(PANE, "TTYVM-READY shell", BOOT_TIMEOUT),
        &sources,
    );
    check(
        pane.tmux.wait_for_text(PANE, "guest#", REPLY_TIMEOUT),
        &sources,
    );
    pane.await_guest_size(&sources);
    let raw = pane.pane_termios();
    assert_eq!(raw.as_libc().c_lflag & libc::ICANON, 0, "the pane is raw");

    // The pane's shell goes on with its line once the server stops, so it writes the stopped
    // status and `stty -g` of the terminal while the server is stopped.
    pane.signal(libc::SIGTSTP);
    assert_eq!(
        pane.await_status("pane-done-2", &sources),
        "148",
        "the shell's status for the stopped server"
    );
    pane.assert_termios_restored();
    let stopped = read(&pane.after);

    // A resize while the server is stopped reaches only the shell, the foreground group then.
    let resized = WindowSize { rows: 30, cols: 90 };
    check(pane.tmux.resize_window(PANE, resized), &sources);
    pane.type_line(
        &format!(
            "fg; echo $? > {status}; stty -g > {after}; echo fg-done-$((1+1))",
            status = path_str(&pane.status),
            after = path_str(&pane.after),
        ),
        &sources,
    );
    pane.await_termios(raw, "raw again after fg");
    // Typed into the pane and echoed back by the guest, at the size the window has now.
    pane.await_guest_size(&sources);

    pane.type_line("poweroff -f", &sources);
    let status = check(uml.wait_timeout(BOOT_TIMEOUT), &[&pane, &uml]);
    assert_eq!(status.code(), Some(0), "UML exit status after poweroff -f");
    assert_eq!(
        pane.await_status("fg-done-2", &[&pane, &uml]),
        "0",
        "the server's exit status after fg"
    );
    pane.assert_termios_restored();
    assert_eq!(read(&pane.after), stopped, "stty -g after the server");
}
