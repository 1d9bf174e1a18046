//! Running `ttyvm serve` for a test and reading the console path it prints.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::diagnostics::{tail, Captured};
use crate::process::{terminate_group, wait_timeout};
use crate::TempDir;

/// The prefix of the stdout line that names the console pty.
const CONSOLE_PREFIX: &str = "console: ";
/// How long a dropped [`Server`] gets to exit after SIGTERM before SIGKILL.
const TERMINATE_GRACE: Duration = Duration::from_secs(2);
/// How many characters of each output a failure message shows.
const OUTPUT_TAIL_CHARS: usize = 6000;

/// Errors of running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The temporary folder or the stderr file could not be created.
    #[error("preparing the server's output files failed")]
    Setup(#[source] io::Error),
    /// The binary could not be started.
    #[error("starting {binary} failed")]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// The spawn error.
        #[source]
        source: io::Error,
    },
    /// The server printed no `console: PATH` line in time.
    #[error("the server printed no `console: PATH` line within {timeout:?}\n{output}")]
    NoConsoleLine {
        /// The time waited.
        timeout: Duration,
        /// Its captured stdout and stderr.
        output: String,
    },
    /// The server created no socket file in time.
    #[error("the server created no socket at {socket} within {timeout:?}\n{output}", socket = .socket.display())]
    NoSocket {
        /// The socket path waited for.
        socket: PathBuf,
        /// The time waited.
        timeout: Duration,
        /// Its captured stdout and stderr.
        output: String,
    },
    /// The server exited before it was ready.
    #[error("the server exited with {status} before it was ready\n{output}")]
    ExitedEarly {
        /// Its exit status.
        status: ExitStatus,
        /// Its captured stdout and stderr.
        output: String,
    },
    /// The server did not exit in time.
    #[error("the server did not exit within {timeout:?}")]
    ExitTimeout {
        /// The time waited.
        timeout: Duration,
    },
    /// Waiting for the server failed.
    #[error("waiting for the server failed")]
    Wait(#[source] io::Error),
}

/// A running `ttyvm serve`, stopped (SIGTERM, then SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct Server {
    child: Child,
    status: Option<ExitStatus>,
    console: PathBuf,
    stdout: Arc<Mutex<String>>,
    stderr_path: PathBuf,
    args: Vec<String>,
    /// The folder of the stderr file. Dropped after `child` is reaped.
    _dir: TempDir,
}

impl Server {
    /// Runs `BINARY serve ARGS...` and waits up to `timeout` for its `console: PATH` line.
    ///
    /// The caller passes the binary, e.g. `env!("CARGO_BIN_EXE_ttyvm")` in crates/ttyvm tests.
    pub fn spawn<S: AsRef<OsStr>>(
        binary: &Path,
        args: &[S],
        timeout: Duration,
    ) -> Result<Self, ServerError> {
        let mut command = Command::new(binary);
        command.arg("serve").args(args);
        Self::spawn_command(command, timeout)
    }

    /// Runs `BINARY serve ARGS...` and waits up to `timeout` for the socket file at `socket`,
    /// for the consoles that print no `console: PATH` line (`file=PATH`, `null`). The server
    /// is not probed with a connection: it would count as a frontend. [`Server::console_path`]
    /// is empty then.
    pub fn spawn_listening<S: AsRef<OsStr>>(
        binary: &Path,
        args: &[S],
        socket: &Path,
        timeout: Duration,
    ) -> Result<Self, ServerError> {
        let mut command = Command::new(binary);
        command.arg("serve").args(args);
        let (mut server, _console) = Self::start(command)?;
        server.wait_for_socket(socket, timeout)?;
        Ok(server)
    }

    /// Runs a prepared `command` (program, arguments and environment set by the caller) with
    /// stdout and stderr captured, and waits up to `timeout` for its `console: PATH` line.
    pub fn spawn_command(command: Command, timeout: Duration) -> Result<Self, ServerError> {
        let (mut server, console) = Self::start(command)?;
        server.console = server.receive_console(&console, timeout)?;
        Ok(server)
    }

    /// Starts `command` with stdin on /dev/null and its output captured. Returns the server and
    /// the channel that carries the path of its first `console: PATH` line.
    fn start(mut command: Command) -> Result<(Self, mpsc::Receiver<PathBuf>), ServerError> {
        let dir = TempDir::new("server").map_err(ServerError::Setup)?;
        let stderr_path = dir.path().join("stderr.log");
        let stderr = File::create(&stderr_path).map_err(ServerError::Setup)?;
        let binary = PathBuf::from(command.get_program());
        let args = command
            .get_args()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .map_err(|source| ServerError::Spawn { binary, source })?;

        let stdout = Arc::new(Mutex::new(String::new()));
        let (console_sender, console_receiver) = mpsc::channel();
        if let Some(pipe) = child.stdout.take() {
            let collected = Arc::clone(&stdout);
            thread::spawn(move || collect_stdout(pipe, &collected, &console_sender));
        }
        let server = Self {
            child,
            status: None,
            console: PathBuf::new(),
            stdout,
            stderr_path,
            args,
            _dir: dir,
        };
        Ok((server, console_receiver))
    }

    /// Polls until a socket file exists at `socket`, the server exits, or `timeout` passes.
    fn wait_for_socket(&mut self, socket: &Path, timeout: Duration) -> Result<(), ServerError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let is_socket = std::fs::symlink_metadata(socket)
                .is_ok_and(|metadata| metadata.file_type().is_socket());
            if is_socket {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait().map_err(ServerError::Wait)? {
                self.status = Some(status);
                let output = self.captured_output();
                return Err(ServerError::ExitedEarly { status, output });
            }
            if std::time::Instant::now() >= deadline {
                return Err(ServerError::NoSocket {
                    socket: socket.to_path_buf(),
                    timeout,
                    output: self.captured_output(),
                });
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn receive_console(
        &mut self,
        receiver: &mpsc::Receiver<PathBuf>,
        timeout: Duration,
    ) -> Result<PathBuf, ServerError> {
        match receiver.recv_timeout(timeout) {
            Ok(path) => Ok(path),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(ServerError::NoConsoleLine {
                timeout,
                output: self.captured_output(),
            }),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // stdout closed, so the process is exiting: give it a moment to be reaped.
                let status = wait_timeout(&mut self.child, Duration::from_secs(2))
                    .map_err(ServerError::Wait)?;
                match status {
                    Some(status) => {
                        self.status = Some(status);
                        Err(ServerError::ExitedEarly {
                            status,
                            output: self.captured_output(),
                        })
                    }
                    None => Err(ServerError::NoConsoleLine {
                        timeout,
                        output: self.captured_output(),
                    }),
                }
            }
        }
    }

    /// Returns the console pty path from the `console: PATH` line.
    pub fn console_path(&self) -> &Path {
        &self.console
    }

    /// Returns the server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Returns everything the server printed on stdout so far.
    pub fn stdout(&self) -> String {
        match self.stdout.lock() {
            Ok(text) => text.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Returns everything the server printed on stderr so far.
    pub fn stderr(&self) -> String {
        match std::fs::read(&self.stderr_path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(error) => format!("(reading {} failed: {error})", self.stderr_path.display()),
        }
    }

    /// Waits up to `timeout` for the server to exit and returns its exit status.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<ExitStatus, ServerError> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        match wait_timeout(&mut self.child, timeout).map_err(ServerError::Wait)? {
            Some(status) => {
                self.status = Some(status);
                Ok(status)
            }
            None => Err(ServerError::ExitTimeout { timeout }),
        }
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the server process.
    pub fn signal(&self, signal: libc::c_int) -> io::Result<()> {
        let pid = libc::pid_t::try_from(self.child.id())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: kill has no memory effects, and `pid` is our unreaped child, so the id
        // cannot have been reused by another process.
        if unsafe { libc::kill(pid, signal) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Returns the value of `result`, or panics with its error and the server's output.
    #[track_caller]
    pub fn check<T, E: std::fmt::Display>(&self, result: Result<T, E>) -> T {
        crate::check(result, &[self])
    }
}

/// Appends stdout lines to `collected`, sending the path of the first console line.
fn collect_stdout(pipe: ChildStdout, collected: &Mutex<String>, console: &mpsc::Sender<PathBuf>) {
    let mut sent = false;
    for line in BufReader::new(pipe).lines() {
        let Ok(line) = line else {
            break;
        };
        if !sent {
            if let Some(path) = line.strip_prefix(CONSOLE_PREFIX) {
                // The receiver may have timed out already, which needs no handling.
                let _ = console.send(PathBuf::from(path.trim()));
                sent = true;
            }
        }
        let mut text = match collected.lock() {
            Ok(text) => text,
            Err(poisoned) => poisoned.into_inner(),
        };
        text.push_str(&line);
        text.push('\n');
    }
}

impl Captured for Server {
    fn captured_output(&self) -> String {
        format!(
            "--- server stdout (command line: {}) ---\n{}\n--- server stderr ({}) ---\n{}",
            self.args.join(" "),
            tail(&self.stdout(), OUTPUT_TAIL_CHARS),
            self.stderr_path.display(),
            tail(&self.stderr(), OUTPUT_TAIL_CHARS)
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        terminate_group(&mut self.child, TERMINATE_GRACE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn server_reads_console_line() {
        let command = shell("echo starting; echo 'console: /dev/pts/77'; echo err >&2; sleep 30");
        let server = Server::spawn_command(command, Duration::from_secs(5)).unwrap();
        assert_eq!(server.console_path(), Path::new("/dev/pts/77"));
        assert!(server.stdout().contains("starting"), "{}", server.stdout());
    }

    #[test]
    fn server_exit_before_console_line_fails() {
        let command = shell("echo broken >&2; exit 4");
        let error = Server::spawn_command(command, Duration::from_secs(5)).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, ServerError::ExitedEarly { .. }),
            "{message}"
        );
        assert!(message.contains("broken"), "{message}");
    }

    #[test]
    fn server_listening_waits_for_socket() {
        let dir = TempDir::new("unit").unwrap();
        let socket = dir.path().join("s.sock");
        let (mut server, _console) = Server::start(shell("sleep 30")).unwrap();
        let path = socket.clone();
        let binder = thread::spawn(move || {
            thread::sleep(Duration::from_millis(100));
            std::os::unix::net::UnixListener::bind(path).unwrap()
        });
        server
            .wait_for_socket(&socket, Duration::from_secs(10))
            .unwrap();
        drop(binder.join().unwrap());
    }

    #[test]
    fn server_listening_reports_early_exit() {
        let dir = TempDir::new("unit").unwrap();
        let socket = dir.path().join("s.sock");
        let (mut server, _console) = Server::start(shell("echo nope >&2; exit 3")).unwrap();
        let error = server
            .wait_for_socket(&socket, Duration::from_secs(5))
            .unwrap_err();
        assert!(matches!(error, ServerError::ExitedEarly { .. }), "{error}");
        assert!(error.to_string().contains("nope"), "{error}");
    }

    #[test]
    fn server_silence_times_out() {
        let command = shell("sleep 30");
        let error = Server::spawn_command(command, Duration::from_millis(200)).unwrap_err();
        assert!(
            matches!(error, ServerError::NoConsoleLine { .. }),
            "{error}"
        );
    }
}
