//! The `ttyvm serve` command: a vhost-user virtio-console server whose console sits on a pty, on
//! the user's terminal, in a file or nowhere, and whose guest follows the terminal's size.
//!
//! [`run`] binds the socket, opens the console backend, and then serves one frontend at a time
//! from a single poll(2) loop. The console outlives each frontend: when a guest halts or reboots
//! the same pty, with its buffered output, waits for the next connection.

mod device;
mod fatal;
mod mode;
mod poll;
mod server;
mod session;
mod signals;

pub use mode::{ConsoleMode, ModeError};

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use log::info;
use ttyvm_console::TtyBackend;
use ttyvm_console::{Backend, BackendError, Console, FileBackend, Limits, NullBackend, PtyBackend};
use ttyvm_term::WindowSize;
use ttyvm_vhost_user::{install_fault_handler, Listener, ListenerError};

use crate::server::{Server, Stop};
use crate::signals::StopSignals;

/// Command-line arguments of `ttyvm serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Path of the vhost-user socket to listen on. A stale socket file left by a dead server is
    /// replaced; a socket a live server listens on is an error.
    #[arg(long, value_name = "PATH")]
    pub socket: PathBuf,
    /// Where the console goes: pty (a new pty, its path printed on stdout), tty (this terminal),
    /// file=PATH (guest output appended to PATH) or null.
    #[arg(long, value_name = "MODE")]
    pub console: ConsoleMode,
    /// Size a new pty starts with, as COLSxROWS, until a client sets its own.
    #[arg(long, value_name = "COLSxROWS", default_value = "80x24", value_parser = parse_size)]
    pub pty_size: WindowSize,
    /// Exit after the first frontend disconnects instead of waiting for the next one.
    #[arg(long)]
    pub once: bool,
}

/// Failures that stop `ttyvm serve` before or while it serves.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The socket could not be bound.
    #[error(transparent)]
    Listen(#[from] ListenerError),
    /// The console backend could not be set up.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The stop signals could not be routed to a signalfd.
    #[error("failed to set up signal handling")]
    Signals(#[source] std::io::Error),
    /// The SIGBUS handler that guards guest memory could not be installed.
    #[error("failed to install the SIGBUS handler that guards guest memory")]
    FaultHandler(#[source] std::io::Error),
    /// The poll loop failed.
    #[error("the server's poll loop failed")]
    Poll(#[source] std::io::Error),
}

fn parse_size(value: &str) -> Result<WindowSize, String> {
    let invalid = || format!("invalid size {value:?}: expected COLSxROWS such as 80x24");
    let (cols, rows) = value.split_once('x').ok_or_else(invalid)?;
    let cols: u16 = cols.parse().map_err(|_| invalid())?;
    let rows: u16 = rows.parse().map_err(|_| invalid())?;
    if cols == 0 || rows == 0 {
        return Err(invalid());
    }
    Ok(WindowSize::new(rows, cols))
}

/// Runs `ttyvm serve` and returns the process exit status: 0 after a stop signal or, with
/// `--once`, after the frontend disconnects; 1 after an error, which is printed as one line.
pub fn run(args: ServeArgs) -> ExitCode {
    match serve(&args) {
        Ok(stop) => {
            info!("server: stopped ({stop:?})");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("ttyvm serve: {}", error_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// Joins an error and its sources into one line.
pub(crate) fn error_line(err: &dyn std::error::Error) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

fn serve(args: &ServeArgs) -> Result<Stop, ServeError> {
    let signals = StopSignals::install().map_err(ServeError::Signals)?;
    let listener = Listener::bind(&args.socket)?;
    let backend = open_backend(&args.console, args.pty_size)?;
    // After the terminal's crash handlers, so that faults outside guest memory still reach them.
    install_fault_handler().map_err(ServeError::FaultHandler)?;
    info!(
        "server: serving a {} console on {}",
        args.console,
        args.socket.display()
    );
    let console = Console::new(backend, Limits::default());
    let mut server = Server::new(listener, console, signals, args.once);
    let stop = server.run().map_err(ServeError::Poll)?;
    log_dropped_output(server.console().dropped_output());
    Ok(stop)
}

fn open_backend(mode: &ConsoleMode, pty_size: WindowSize) -> Result<Box<dyn Backend>, ServeError> {
    Ok(match mode {
        ConsoleMode::Pty => {
            let pty = PtyBackend::open(Some(pty_size))?;
            announce_pty(&pty);
            Box::new(pty)
        }
        ConsoleMode::Tty => {
            let tty = TtyBackend::open()?;
            fatal::restore_terminal_on_crash(tty.restorer());
            Box::new(tty)
        }
        ConsoleMode::File(path) => Box::new(FileBackend::create(path)?),
        ConsoleMode::Null => Box::new(NullBackend::new()),
    })
}

/// Prints the pty's path as the single line `console: /dev/pts/N`, which scripts read.
fn announce_pty(pty: &PtyBackend) {
    let path = pty.path().display();
    info!("server: console on {path}");
    let mut stdout = std::io::stdout().lock();
    // A closed stdout is no reason to stop serving: the path is in the log too.
    let _ = writeln!(stdout, "console: {path}");
    let _ = stdout.flush();
}

fn log_dropped_output(dropped: u64) {
    if dropped > 0 {
        info!("server: {dropped} bytes of guest output were dropped while no client was attached");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_parses_cols_by_rows() {
        assert_eq!(parse_size("80x24"), Ok(WindowSize::new(24, 80)));
        assert_eq!(parse_size("200x50"), Ok(WindowSize::new(50, 200)));
    }

    #[test]
    fn size_rejects_malformed_values() {
        for value in [
            "80", "x24", "80x", "0x24", "80x0", "80x24x1", "-1x24", "80X24",
        ] {
            assert!(parse_size(value).is_err(), "{value} should be rejected");
        }
    }
}
