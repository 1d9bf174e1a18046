//! Booting the guest as a User-Mode Linux process.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::diagnostics::{tail, Captured};
use crate::process::{terminate_group, wait_timeout};
use crate::{Guest, TempDir};

/// The descriptor number that UML's con0 gets in the child for [`GuestConsole::UmlConsole`].
const CON0_FD: i32 = 3;
/// How long a dropped [`Uml`] gets to exit after SIGTERM before SIGKILL.
const TERMINATE_GRACE: Duration = Duration::from_secs(2);
/// How many characters of UML's output a failure message shows.
const LOG_TAIL_CHARS: usize = 6000;

/// Errors of booting and waiting for UML.
#[derive(Debug, thiserror::Error)]
pub enum UmlError {
    /// The temporary folder or the log file could not be created.
    #[error("preparing the UML run folder failed")]
    Setup(#[source] io::Error),
    /// linux.uml could not be started.
    #[error("starting {linux} failed")]
    Spawn {
        /// The kernel binary.
        linux: PathBuf,
        /// The spawn error.
        #[source]
        source: io::Error,
    },
    /// UML did not exit in time.
    #[error("UML did not exit within {timeout:?}")]
    ExitTimeout {
        /// The time waited.
        timeout: Duration,
    },
    /// Waiting for UML failed.
    #[error("waiting for UML failed")]
    Wait(#[source] io::Error),
}

/// The console that the guest programs run on.
#[derive(Debug, Clone, Copy)]
pub enum GuestConsole<'a> {
    /// The virtio console `hvc0`, served by a vhost-user backend listening on this socket.
    /// UML's own console output (kernel log, init messages) goes to UML's captured output.
    Virtio(&'a Path),
    /// UML's own console `tty0` (con0) on this descriptor, normally a pty subsidiary side.
    UmlConsole(BorrowedFd<'a>),
}

/// The program that the guest init runs on the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// An interactive busybox shell.
    Shell,
    /// `ttyvm-responder winch`.
    Winch,
    /// `ttyvm-responder emit COUNT`.
    Emit(u64),
    /// `ttyvm-responder sink COUNT`.
    Sink(u64),
}

/// How to boot the guest.
#[derive(Debug, Clone)]
pub struct BootOptions<'a> {
    /// The console the guest program runs on.
    pub console: GuestConsole<'a>,
    /// The program the guest init runs.
    pub run: Run,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Whether to pass `quiet`, which keeps kernel messages below warnings off the console.
    pub quiet: bool,
    /// Further kernel command-line words.
    pub extra_args: Vec<String>,
}

impl<'a> BootOptions<'a> {
    /// Options for the virtio console served on `socket`, with 128 MiB and `quiet`.
    pub fn virtio(socket: &'a Path, run: Run) -> Self {
        Self::new(GuestConsole::Virtio(socket), run)
    }

    /// Options for UML's own console on `subsidiary`, with 128 MiB and `quiet`.
    pub fn uml_console(subsidiary: BorrowedFd<'a>, run: Run) -> Self {
        Self::new(GuestConsole::UmlConsole(subsidiary), run)
    }

    fn new(console: GuestConsole<'a>, run: Run) -> Self {
        Self {
            console,
            run,
            memory_mib: 128,
            quiet: true,
            extra_args: Vec::new(),
        }
    }

    /// Returns the kernel command line for these options, without `umid` and `uml_dir`.
    pub fn kernel_args(&self, initramfs: &Path) -> Vec<String> {
        let mut args = vec![
            format!("mem={}M", self.memory_mib),
            format!("initrd={}", initramfs.display()),
            "con=null".to_string(),
        ];
        match self.console {
            GuestConsole::Virtio(socket) => {
                // Device id 3 is the virtio console.
                args.push(format!("virtio_uml.device={}:3", socket.display()));
                args.push("con0=null,fd:2".to_string());
                args.push("ttyvm.console=hvc0".to_string());
            }
            GuestConsole::UmlConsole(_) => {
                args.push(format!("con0=fd:{CON0_FD},fd:{CON0_FD}"));
                args.push("ttyvm.console=tty0".to_string());
            }
        }
        args.extend(run_args(self.run));
        if self.quiet {
            args.push("quiet".to_string());
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

fn run_args(run: Run) -> Vec<String> {
    match run {
        Run::Shell => vec!["ttyvm.run=shell".to_string()],
        Run::Winch => vec!["ttyvm.run=winch".to_string()],
        Run::Emit(count) => vec!["ttyvm.run=emit".to_string(), format!("ttyvm.count={count}")],
        Run::Sink(count) => vec!["ttyvm.run=sink".to_string(), format!("ttyvm.count={count}")],
    }
}

/// A running UML guest. Dropping it stops UML (SIGTERM, then SIGKILL to its process group),
/// reaps it and removes its run folder.
#[derive(Debug)]
pub struct Uml {
    child: Child,
    status: Option<ExitStatus>,
    log_path: PathBuf,
    args: Vec<String>,
    started: Instant,
    /// The run folder: `uml_dir` and the log. Dropped after `child` is reaped.
    run_dir: TempDir,
}

impl Guest {
    /// Boots the guest with `options`. UML's stdout and stderr go to a log file that
    /// [`Uml::log`] reads.
    ///
    /// UML gets SIGKILL when the thread that called this exits (PR_SET_PDEATHSIG), so a
    /// test process that dies leaves no guest behind. Keep the [`Uml`] on that thread.
    pub fn boot(&self, options: &BootOptions<'_>) -> Result<Uml, UmlError> {
        let run_dir = TempDir::new("uml").map_err(UmlError::Setup)?;
        let log_path = run_dir.path().join("uml.log");
        let log = File::create(&log_path).map_err(UmlError::Setup)?;
        let log_err = log.try_clone().map_err(UmlError::Setup)?;

        let mut args = options.kernel_args(&self.initramfs);
        args.push(format!("umid={}", unique_umid()));
        args.push(format!("uml_dir={}", run_dir.path().display()));

        let mut command = Command::new(&self.linux);
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0);
        let con0 = match options.console {
            GuestConsole::UmlConsole(fd) => Some(fd.as_raw_fd()),
            GuestConsole::Virtio(_) => None,
        };
        // SAFETY: the closure only calls async-signal-safe functions, as pre_exec requires.
        unsafe { command.pre_exec(move || prepare_child(con0)) };
        let child = command.spawn().map_err(|source| UmlError::Spawn {
            linux: self.linux.clone(),
            source,
        })?;
        Ok(Uml {
            child,
            status: None,
            log_path,
            args,
            started: Instant::now(),
            run_dir,
        })
    }
}

/// Runs in the forked child before exec, so it is async-signal-safe: no allocation, no locks,
/// no panics. Sets the parent-death signal and places con0's descriptor at [`CON0_FD`].
fn prepare_child(con0: Option<i32>) -> io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag of the calling process.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let Some(fd) = con0 else {
        return Ok(());
    };
    if fd == CON0_FD {
        // dup2 onto itself keeps FD_CLOEXEC, so clear it instead.
        // SAFETY: F_SETFD changes only the descriptor flags of a descriptor the child owns.
        let result = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        return if result < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        };
    }
    // SAFETY: dup2 onto CON0_FD replaces whatever the child had there. std opens its own
    // descriptors with FD_CLOEXEC, so nothing the child execs relies on that number.
    if unsafe { libc::dup2(fd, CON0_FD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Returns a umid unique within this machine: the process id and a per-process counter.
fn unique_umid() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let serial = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("ttyvm-{}-{serial}", std::process::id())
}

impl Uml {
    /// Waits up to `timeout` for UML to exit and returns its exit status.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<ExitStatus, UmlError> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        match wait_timeout(&mut self.child, timeout).map_err(UmlError::Wait)? {
            Some(status) => {
                self.status = Some(status);
                Ok(status)
            }
            None => Err(UmlError::ExitTimeout { timeout }),
        }
    }

    /// Returns everything UML printed on its stdout and stderr so far.
    pub fn log(&self) -> String {
        match std::fs::read(&self.log_path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(error) => format!("(reading {} failed: {error})", self.log_path.display()),
        }
    }

    /// Returns the kernel command line UML was started with.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Returns the time at which UML was spawned.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Returns UML's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Returns the folder given to UML as `uml_dir`.
    pub fn uml_dir(&self) -> &Path {
        self.run_dir.path()
    }

    /// Returns the value of `result`, or panics with its error and UML's output.
    #[track_caller]
    pub fn check<T, E: std::fmt::Display>(&self, result: Result<T, E>) -> T {
        crate::check(result, &[self])
    }
}

impl Captured for Uml {
    fn captured_output(&self) -> String {
        format!(
            "--- UML output ({}; command line: {}) ---\n{}",
            self.log_path.display(),
            self.args.join(" "),
            tail(&self.log(), LOG_TAIL_CHARS)
        )
    }
}

impl Drop for Uml {
    fn drop(&mut self) {
        terminate_group(&mut self.child, TERMINATE_GRACE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtio_args_name_socket_and_hvc0() {
        let options = BootOptions::virtio(Path::new("/tmp/s.sock"), Run::Emit(10));
        let args = options.kernel_args(Path::new("/tmp/i.gz"));
        assert!(
            args.contains(&"virtio_uml.device=/tmp/s.sock:3".to_string()),
            "{args:?}"
        );
        assert!(args.contains(&"ttyvm.console=hvc0".to_string()), "{args:?}");
        assert!(args.contains(&"ttyvm.run=emit".to_string()), "{args:?}");
        assert!(args.contains(&"ttyvm.count=10".to_string()), "{args:?}");
        assert!(args.contains(&"initrd=/tmp/i.gz".to_string()), "{args:?}");
    }

    #[test]
    fn uml_console_args_use_con0_fd() {
        let pty = crate::open_pty(24, 80).unwrap();
        let options =
            BootOptions::uml_console(std::os::fd::AsFd::as_fd(&pty.subsidiary), Run::Shell);
        let args = options.kernel_args(Path::new("/tmp/i.gz"));
        assert!(args.contains(&"con0=fd:3,fd:3".to_string()), "{args:?}");
        assert!(args.contains(&"ttyvm.console=tty0".to_string()), "{args:?}");
        assert!(args.contains(&"ttyvm.run=shell".to_string()), "{args:?}");
    }
}
