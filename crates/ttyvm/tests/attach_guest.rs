//! End-to-end tests of `ttyvm attach` against `ttyvm serve --console pty` and the UML test
//! guest, driven as a person would drive them: the client runs in a tmux pane and the test types
//! with send-keys, reads the screen with capture-pane and resizes with resize-window.
//!
//! Each test boots its own guest with an interactive busybox shell on the virtio console, whose
//! pty the server creates. The pane runs a host shell that starts the client as
//! `sh -c 'echo $$ >PIDFILE && exec ttyvm attach PTY'; echo "exit=$?"`, so the test reads the
//! client's pid and exit status, and compares `stty -g` of the pane before and after each client.
//!
//! They need tmux and the guest that `scripts/build-guest` builds, and fail naming what is
//! missing when either is not there.

use std::fmt::Display;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use ttyvm_testkit::{Captured, Guest, Run, Server, TempDir, Tmux, Uml, WindowSize};

const BINARY: &str = env!("CARGO_BIN_EXE_ttyvm");
/// The bound on starting the server and on guest boot. UML reached the guest prompt in 1.3 to
/// 1.5 s in runs of this file on a 2-core machine.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// The bound on every other wait: a reply of the guest, a file the pane's shell writes, an exit.
const REPLY_TIMEOUT: Duration = Duration::from_secs(20);
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// The size the server gives its pty, which no pane in these tests has.
const SERVER_PTY_SIZE: &str = "80x24";
/// The pane size each test starts with.
const PANE: WindowSize = WindowSize {
    rows: 30,
    cols: 100,
};
/// The tmux session, and so the pane, that the tests drive.
const TARGET: &str = "attach";
/// The guest shell's prompt as capture-pane shows it, trailing space trimmed.
const GUEST_PROMPT: &str = "guest#";
/// Guest output that `ttyvm serve` keeps while no client is attached: the default of
/// `ttyvm_console::Limits::kept_output`.
const KEPT_OUTPUT: usize = 64 * 1024;

/// Serializes the guests of this file: the machine's cores are shared with other test binaries
/// that boot guests too.
static ONE_GUEST_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A server, its guest and a tmux pane with a host shell. Fields drop in order: tmux first,
/// which ends any client, then UML, then the server, then the folder and the lock.
struct Fixture {
    tmux: Tmux,
    uml: Uml,
    server: Server,
    console: PathBuf,
    dir: TempDir,
    _serial: MutexGuard<'static, ()>,
}

/// A client started in the pane.
struct Client {
    pid: libc::pid_t,
    /// A number that names the client's files in the fixture's folder.
    serial: usize,
    stty_before: String,
    /// How many `exit=STATUS` lines the pane showed before the client started.
    exits_before: usize,
}

impl Fixture {
    /// Starts `ttyvm serve --console pty`, boots the guest shell on it and opens a pane of
    /// [`PANE`] size with a host shell, all before any client is attached.
    fn start() -> Self {
        // A test that panicked while holding the lock leaves nothing behind that needs repair.
        let serial = ONE_GUEST_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let guest = Guest::locate().unwrap_or_else(|error| panic!("{error}"));
        let dir = TempDir::new("attach-guest")
            .unwrap_or_else(|error| panic!("creating a temporary folder failed: {error}"));
        let socket = dir.path().join("console.sock");
        let socket_arg = socket.display().to_string();
        let args = [
            "--socket",
            &socket_arg,
            "--console",
            "pty",
            "--pty-size",
            SERVER_PTY_SIZE,
        ];
        let server = Server::spawn(BINARY.as_ref(), &args, BOOT_TIMEOUT)
            .unwrap_or_else(|error| panic!("{error}"));
        let console = server.console_path().to_path_buf();

        let uml =
            server.check(guest.boot(&ttyvm_testkit::BootOptions::virtio(&socket, Run::Shell)));
        let tmux = Tmux::new().unwrap_or_else(|error| panic!("{error}"));
        let fixture = Fixture {
            tmux,
            uml,
            server,
            console,
            dir,
            _serial: serial,
        };
        fixture.open_pane();
        fixture
    }

    /// Opens the pane with a history long enough for [`KEPT_OUTPUT`] of short lines, and no
    /// status line, so the pane has the window's size.
    fn open_pane(&self) {
        let shell = format!(
            "env -i PATH=/usr/bin:/bin TERM=screen HOME={} PS1='$ ' /bin/sh",
            self.dir.path().display()
        );
        let (cols, rows) = (PANE.cols.to_string(), PANE.rows.to_string());
        let result = self.tmux.run(&[
            "set-option",
            "-g",
            "history-limit",
            "100000",
            ";",
            "new-session",
            "-d",
            "-s",
            TARGET,
            "-x",
            &cols,
            "-y",
            &rows,
            &shell,
            ";",
            "set-option",
            "-g",
            "status",
            "off",
        ]);
        self.check(result);
        self.wait_for_line("$", 1);
        assert_eq!(self.pane_size(), PANE, "the pane's size after it opened");
    }

    /// Returns the value of `result`, or panics with its error, the pane's history and what
    /// the server and UML printed.
    #[track_caller]
    fn check<T, E: Display>(&self, result: Result<T, E>) -> T {
        ttyvm_testkit::check(result, &[self, &self.uml, &self.server])
    }

    /// Panics with `message` and everything [`Fixture::check`] shows.
    #[track_caller]
    fn fail(&self, message: String) -> ! {
        self.check::<(), _>(Err(message));
        unreachable!("check panics on an error");
    }

    /// Returns the pane's whole history and screen, one line per line of output: wrapped lines
    /// are joined and trailing spaces, which `-J` keeps, are cut.
    fn history(&self) -> String {
        let result = self
            .tmux
            .run(&["capture-pane", "-p", "-J", "-S", "-", "-t", TARGET]);
        match result {
            Ok(text) => text
                .lines()
                .map(|line| format!("{}\n", line.trim_end()))
                .collect(),
            Err(error) => panic!("{error}"),
        }
    }

    /// Returns how many lines of the pane are exactly `line`.
    fn count_lines(&self, line: &str) -> usize {
        self.history().lines().filter(|seen| *seen == line).count()
    }

    /// Returns the `exit=STATUS` lines that the pane's shell printed after each client.
    fn exit_lines(&self) -> Vec<String> {
        self.history()
            .lines()
            .filter(|line| line.starts_with("exit="))
            .map(str::to_string)
            .collect()
    }

    /// Waits until at least `count` lines of the pane are exactly `line`.
    #[track_caller]
    fn wait_for_line(&self, line: &str, count: usize) {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        while self.count_lines(line) < count {
            if Instant::now() >= deadline {
                self.fail(format!(
                    "timed out after {REPLY_TIMEOUT:?} waiting for line {count} that reads \
                     {line:?} in the pane"
                ));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Types `line` and Enter into the pane.
    fn type_line(&self, line: &str) {
        self.check(self.tmux.send_text(TARGET, line));
        self.check(self.tmux.send_keys(TARGET, &["Enter"]));
    }

    /// Sends Ctrl-], the default escape character, as a raw byte.
    fn send_escape(&self) {
        self.check(self.tmux.send_keys(TARGET, &["-H", "1d"]));
    }

    /// Types `command` and waits for `output`, a line that only the command's output contains
    /// and not its echo, to appear once more than before.
    #[track_caller]
    fn run_in_guest(&self, command: &str, output: &str) {
        let before = self.count_lines(output);
        self.type_line(command);
        self.wait_for_line(output, before + 1);
    }

    fn resize(&self, size: WindowSize) {
        self.check(self.tmux.resize_window(TARGET, size));
        assert_eq!(
            self.pane_size(),
            size,
            "the pane's size after resize-window"
        );
    }

    fn pane_size(&self) -> WindowSize {
        let format = "#{pane_height} #{pane_width}";
        let text = self.check(
            self.tmux
                .run(&["display-message", "-p", "-t", TARGET, format]),
        );
        let numbers: Vec<u16> = text
            .split_whitespace()
            .filter_map(|part| part.parse().ok())
            .collect();
        match numbers[..] {
            [rows, cols] => WindowSize { rows, cols },
            _ => self.fail(format!("tmux printed no pane size: {text:?}")),
        }
    }

    /// Returns whether the pane's terminal has canonical mode off, as raw mode leaves it.
    fn pane_is_raw(&self) -> bool {
        let format = "#{pane_tty}";
        let tty = self.check(
            self.tmux
                .run(&["display-message", "-p", "-t", TARGET, format]),
        );
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
            .open(tty.trim());
        let file = self.check(file.map_err(|error| format!("opening {tty:?} failed: {error}")));
        // SAFETY: termios is plain data for which all zero bytes is a valid value.
        let mut termios: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: tcgetattr writes one termios into the live local and reads the open fd.
        let result = unsafe { libc::tcgetattr(file.as_raw_fd(), &mut termios) };
        assert_eq!(result, 0, "tcgetattr on the pane's terminal {tty:?} failed");
        termios.c_lflag & libc::ICANON == 0
    }

    /// Returns `stty -g` of the pane, which its host shell writes to a file.
    fn pane_stty(&self, name: &str) -> String {
        let file = self.dir.path().join(name);
        self.type_line(&format!(
            "stty -g > {0}.tmp && mv {0}.tmp {0}",
            file.display()
        ));
        self.wait_until(
            &format!("the pane's shell wrote {}", file.display()),
            || file.exists(),
        );
        self.check(fs::read_to_string(&file).map_err(|error| format!("reading {file:?}: {error}")))
    }

    #[track_caller]
    fn wait_until(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        while !done() {
            if Instant::now() >= deadline {
                self.fail(format!(
                    "timed out after {REPLY_TIMEOUT:?} waiting until {what}"
                ));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Starts `ttyvm attach` on the server's pty from the pane's host shell, and waits until it
    /// is connected and the pane is in raw mode.
    fn attach(&self, serial: usize) -> Client {
        let exits_before = self.exit_lines().len();
        let stty_before = self.pane_stty(&format!("stty-before-{serial}"));
        let pid_file = self.dir.path().join(format!("client-{serial}.pid"));
        let connected = self.connected_line();
        let before = self.count_lines(&connected);
        self.type_line(&format!(
            "sh -c 'echo $$ > {pid}.tmp && mv {pid}.tmp {pid} && exec {BINARY} attach {pty}'; \
             echo \"exit=$?\"",
            pid = pid_file.display(),
            pty = self.console.display()
        ));
        self.wait_for_line(&connected, before + 1);
        self.wait_until("the pane is in raw mode", || self.pane_is_raw());
        let text = self.check(fs::read_to_string(&pid_file).map_err(|e| e.to_string()));
        let pid = self.check(
            text.trim()
                .parse()
                .map_err(|e| format!("pid {text:?}: {e}")),
        );
        Client {
            pid,
            serial,
            stty_before,
            exits_before,
        }
    }

    fn connected_line(&self) -> String {
        format!(
            "Connected to {}. Escape character is ^]",
            self.console.display()
        )
    }

    /// Waits for the client's `exit=STATUS` line, checks the status, then checks that
    /// `stty -g` of the pane is what it was before the client started.
    #[track_caller]
    fn assert_ended(&self, client: &Client, status: u8) {
        let what = format!("client {} printed its exit status", client.serial);
        self.wait_until(&what, || self.exit_lines().len() > client.exits_before);
        let exits = self.exit_lines();
        assert_eq!(
            exits[client.exits_before],
            format!("exit={status}"),
            "exit status of client {}",
            client.serial
        );
        assert!(
            process_is_gone(client.pid),
            "client {} (pid {}) still runs",
            client.serial,
            client.pid
        );
        let after = self.pane_stty(&format!("stty-after-{}", client.serial));
        assert_eq!(
            after, client.stty_before,
            "stty -g of the pane differs after client {} ended",
            client.serial
        );
    }

    /// Waits until the pane shows `line` and the cursor is at the start of a later line, so the
    /// guest has echoed all of a typed line and the Enter after it.
    #[track_caller]
    fn wait_for_echo(&self, line: &str) {
        let format = "#{cursor_x}";
        self.wait_until(&format!("the pane shows {line:?} and a line end"), || {
            let cursor =
                self.check(
                    self.tmux
                        .run(&["display-message", "-p", "-t", TARGET, format]),
                );
            self.count_lines(line) > 0 && cursor.trim() == "0"
        });
    }

    /// Waits until UML's own console, whose output goes to UML's log, shows `marker`.
    fn wait_for_uml_log(&self, marker: &str) {
        self.wait_until(&format!("UML's log shows {marker:?}"), || {
            self.uml.log().contains(marker)
        });
    }

    /// Attaches and waits for the guest shell's first prompt.
    fn attach_first(&self) -> Client {
        let client = self.attach(0);
        self.wait_for_line(GUEST_PROMPT, 1);
        println!(
            "guest prompt in the pane {:?} after UML started",
            self.uml.started().elapsed()
        );
        client
    }

    /// Detaches `client` with Ctrl-] and checks its exit and the pane's settings.
    fn detach(&self, client: &Client) {
        let detached = format!("ttyvm attach: detached from {}", self.console.display());
        let before = self.count_lines(&detached);
        self.send_escape();
        self.wait_for_line(&detached, before + 1);
        self.assert_ended(client, 0);
    }
}

impl Captured for Fixture {
    fn captured_output(&self) -> String {
        let history = match self
            .tmux
            .run(&["capture-pane", "-p", "-J", "-S", "-", "-t", TARGET])
        {
            Ok(text) => text,
            Err(error) => format!("(capture-pane failed: {error})"),
        };
        let lines: Vec<&str> = history.lines().collect();
        let start = lines.len().saturating_sub(80);
        format!(
            "--- tmux pane, last {} lines of {} ---\n{}",
            lines.len() - start,
            lines.len(),
            lines[start..].join("\n")
        )
    }
}

/// Returns whether no process `pid` exists any more. The client's parent, the pane's shell,
/// reaps it, so this turns true once the client is gone.
fn process_is_gone(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks whether the process exists; nothing is delivered.
    let result = unsafe { libc::kill(pid, 0) };
    result != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// Returns the guest output of `seq 1 LAST; echo end-of-detached` with the guest tty's CRLF.
fn seq_output(last: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    for number in 1..=last {
        bytes.extend_from_slice(format!("{number}\r\n").as_bytes());
    }
    bytes.extend_from_slice(b"end-of-detached\r\n");
    bytes
}

/// Returns `bytes` as the pane shows plain text and CRLF line ends: one string per line, the
/// last one the line the cursor is on.
fn screen_lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .replace('\r', "")
        .split('\n')
        .map(str::to_string)
        .collect()
}

#[test]
fn typed_commands_run_at_pane_size() {
    let fixture = Fixture::start();
    let first = fixture.attach_first();
    // The server's pty started at 80x24; the client set the pane's size before relaying.
    fixture.run_in_guest("stty size", &format!("{} {}", PANE.rows, PANE.cols));
    fixture.run_in_guest("echo sum=$((6 * 7))", "sum=42");
    fixture.detach(&first);

    // A size set while no client is attached reaches the guest with the next client.
    let detached_size = WindowSize {
        rows: 35,
        cols: 110,
    };
    fixture.resize(detached_size);
    let second = fixture.attach(1);
    let expected = format!("{} {}", detached_size.rows, detached_size.cols);
    fixture.run_in_guest("stty size", &expected);
    fixture.detach(&second);
}

#[test]
fn resize_fires_guest_winch_trap() {
    let fixture = Fixture::start();
    let client = fixture.attach_first();
    // The subshell is a job of its own, so it is in the terminal's foreground process group
    // and gets SIGWINCH; its trap runs each time a `sleep` returns.
    fixture.run_in_guest(
        "(trap 'echo WINCH $(stty size)' WINCH; echo trap-set; while :; do sleep 0.1; done)",
        "trap-set",
    );
    for size in [
        WindowSize {
            rows: 40,
            cols: 120,
        },
        WindowSize { rows: 17, cols: 61 },
        WindowSize {
            rows: 30,
            cols: 100,
        },
    ] {
        let line = format!("WINCH {} {}", size.rows, size.cols);
        let before = fixture.count_lines(&line);
        fixture.resize(size);
        fixture.wait_for_line(&line, before + 1);
    }
    fixture.check(fixture.tmux.send_keys(TARGET, &["C-c"]));
    fixture.run_in_guest("stty size; echo size-checked", "size-checked");
    fixture.detach(&client);
}

#[test]
fn reattach_shows_kept_output_first() {
    const LAST: u32 = 20_000;
    let fixture = Fixture::start();
    let first = fixture.attach_first();
    fixture.run_in_guest(
        "x=same-shell; mark() { echo TTYVM-SEQ-DONE >/dev/console; }; echo defined",
        "defined",
    );
    // The guest echoes the line as it arrives. Detaching only once the echo has ended, with the
    // cursor on the next line, leaves no echo in the pty's buffer for the next client to read.
    // The shell sleeps first, so the client is gone before the output starts. `read` holds back
    // the next prompt, so the output while detached is exactly seq_output(LAST). The marker on
    // UML's own console shows when it is complete.
    let command = format!(
        "sleep 2; seq 1 {LAST}; echo end-of-detached; sleep 0.5; mark; read r; echo reply=$x-$r"
    );
    fixture.type_line(&command);
    fixture.wait_for_echo(&format!("{GUEST_PROMPT} {command}"));
    fixture.detach(&first);
    fixture.wait_for_uml_log("TTYVM-SEQ-DONE");

    let second = fixture.attach(1);
    fixture.wait_for_line("end-of-detached", 1);
    let output = seq_output(LAST);
    assert!(
        output.len() > KEPT_OUTPUT,
        "seq writes too little to test the bound"
    );
    let expected = screen_lines(&output[output.len() - KEPT_OUTPUT..]);
    let history = fixture.history();
    let lines: Vec<&str> = history.lines().collect();
    let connected = fixture.connected_line();
    let Some(start) = lines.iter().rposition(|line| *line == connected) else {
        fixture.fail(format!("the pane shows no line {connected:?}"));
    };
    let shown = &lines[start + 1..];
    // The last expected line is the cursor's line, which the typed reply goes into next.
    let complete = &expected[..expected.len() - 1];
    if shown.len() < complete.len() || shown[..complete.len()] != complete[..] {
        let first_difference =
            (0..complete.len()).find(|&index| shown.get(index) != Some(&complete[index].as_str()));
        fixture.fail(format!(
            "after re-attach the pane does not show the last {KEPT_OUTPUT} bytes of the \
             output first: line {first_difference:?} of {} differs; expected starts with {:?}, \
             shown starts with {:?}",
            complete.len(),
            &complete[..3],
            &shown[..shown.len().min(3)]
        ));
    }
    // The same shell still runs: it reads the reply and still has its variable.
    fixture.run_in_guest("again", "reply=same-shell-again");
    fixture.detach(&second);
}

#[test]
fn client_sigterm_restores_terminal() {
    let fixture = Fixture::start();
    let first = fixture.attach_first();
    // SAFETY: kill has no memory effects. The pid is the running client's, which put the pane
    // in raw mode, and the pane's shell has not reaped it, so no other process has that pid.
    assert_eq!(unsafe { libc::kill(first.pid, libc::SIGTERM) }, 0);
    fixture.assert_ended(&first, 128 + libc::SIGTERM as u8);

    let second = fixture.attach(1);
    fixture.run_in_guest("echo alive=$((1 + 1))", "alive=2");
    fixture.detach(&second);
}

/// Attaches, stops the server with `signal`, and checks the client's single closing line, its
/// exit status 0 and the restored terminal.
fn server_stop_ends_client(signal: libc::c_int) {
    let fixture = Fixture::start();
    let client = fixture.attach_first();
    fixture.check(fixture.server.signal(signal));
    fixture.assert_ended(&client, 0);
    let message = format!(
        "ttyvm attach: the console on {} closed",
        fixture.console.display()
    );
    let history = fixture.history();
    let closing: Vec<&str> = history
        .lines()
        .filter(|line| line.contains("closed"))
        .collect();
    assert_eq!(
        closing,
        [message.as_str()],
        "lines that mention the console closing"
    );
}

#[test]
fn server_sigterm_closes_console() {
    server_stop_ends_client(libc::SIGTERM);
}

#[test]
fn server_sigkill_closes_console() {
    server_stop_ends_client(libc::SIGKILL);
}
