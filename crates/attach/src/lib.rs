//! The `ttyvm attach` command: a terminal client for a pty console that carries the user's
//! window size to the pty, which screen, picocom and `virsh console` do not.
//!
//! It relays bytes both ways between standard input and output and the pty's subsidiary side,
//! with standard input in raw mode, and sets the pty's size at start and on every SIGWINCH. The
//! escape character (Ctrl-] unless changed) detaches. Every exit path restores the terminal's
//! original settings: detach, the pty closing, SIGTERM, SIGHUP, SIGINT, SIGQUIT and every other
//! signal whose default action ends the process (SIGIO and the fault signals aside), an I/O
//! error and a panic. On SIGTSTP the client restores the terminal and stops; on SIGCONT it
//! applies raw mode again and sets the pty's size anew.

mod buffer;
mod escape;
mod holders;
mod relay;
mod signals;
mod target;
mod terminal;

use std::io::{self, IsTerminal, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub use escape::{EscapeChar, EscapeError, DEFAULT_ESCAPE};
pub use holders::{other_holders, Holder};
pub use relay::{Outcome, RelayError};
pub use signals::SignalError;
pub use target::{open_console, OpenError};
pub use terminal::TerminalError;

use relay::{Ends, Relay};
use signals::{Signal, SignalFd};
use terminal::UserSide;
use ttyvm_term::{set_window_size, window_size, RawMode, Termios};

/// Command-line arguments of `ttyvm attach`.
#[derive(clap::Args, Debug)]
pub struct AttachArgs {
    /// Path of the pty to attach to, as `ttyvm serve --console pty` prints it (`console:
    /// /dev/pts/N`).
    ///
    /// The end of standard input does not end the client: with input from a pipe or a file it
    /// sends that input and then goes on relaying the console's output until the console closes,
    /// the escape character arrives or a signal such as SIGTERM stops it.
    pub pty: PathBuf,
    /// Key that detaches, in caret notation: ^] (the default), ^A, ^@, ^? and so on. ^[ (ESC)
    /// and ^M (Enter) are rejected, because the terminal sends them in ordinary use.
    #[arg(
        short = 'e',
        long = "escape",
        value_name = "CHAR",
        conflicts_with = "no_escape"
    )]
    pub escape: Option<String>,
    /// Pass every byte to the console, the escape character too. End the client with SIGTERM or
    /// by closing the console.
    #[arg(long)]
    pub no_escape: bool,
}

/// Errors that end `ttyvm attach` with exit status 1.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The `-e` argument is invalid.
    #[error(transparent)]
    Escape(#[from] EscapeError),
    /// The pty could not be opened or is not a terminal.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Signal delivery could not be set up.
    #[error(transparent)]
    Signals(#[from] SignalError),
    /// Standard input or output could not be set up.
    #[error(transparent)]
    Terminal(#[from] TerminalError),
    /// The pty's settings could not be read or changed to raw mode.
    #[error("failed to put {} in raw mode: {source}", .path.display())]
    PtyRawMode {
        /// The pty path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The relay failed.
    #[error("relay to {} stopped: {source}", .path.display())]
    Relay {
        /// The pty path.
        path: PathBuf,
        /// The underlying error.
        source: RelayError,
    },
}

/// Runs `ttyvm attach` and returns the process exit status: 0 after detach or when the console
/// closes, 1 on an error. An exit signal ends the process by that signal once the terminal is
/// restored.
pub fn run(args: AttachArgs) -> ExitCode {
    let (outcome, ends_line) = match attach(&args) {
        Ok(ended) => ended,
        Err(err) => {
            eprintln!("ttyvm attach: {err}");
            return ExitCode::FAILURE;
        }
    };
    if !ends_line && io::stdout().is_terminal() {
        // Start the closing message on a line of its own after the console's last output.
        let _ = io::stdout()
            .write_all(b"\n")
            .and_then(|()| io::stdout().flush());
    }
    let path = args.pty.display();
    match outcome {
        Outcome::Detached => {
            eprintln!("ttyvm attach: detached from {path}");
            ExitCode::SUCCESS
        }
        Outcome::ConsoleClosed => {
            eprintln!("ttyvm attach: the console on {path} closed");
            ExitCode::SUCCESS
        }
        Outcome::TerminalClosed => {
            eprintln!("ttyvm attach: standard input hung up, so the client detached from {path}");
            ExitCode::FAILURE
        }
        Outcome::Signaled(number) => {
            signals::die_by(number);
            ExitCode::from(128u8.saturating_add(number as u8))
        }
    }
}

/// Checks everything that can fail before the terminal is touched, then relays. Returns why the
/// relay ended and whether the console output ended a line. The terminal's settings are back
/// when this returns, whatever the result.
fn attach(args: &AttachArgs) -> Result<(Outcome, bool), AttachError> {
    let escape = match (&args.escape, args.no_escape) {
        (_, true) => None,
        (Some(text), false) => Some(EscapeChar::parse(text)?),
        (None, false) => Some(DEFAULT_ESCAPE),
    };
    let pty = open_console(&args.pty)?;
    warn_other_clients(&args.pty);
    let signals = SignalFd::new()?;
    let user = UserSide::open()?;
    if !user.input_is_terminal() {
        eprintln!(
            "ttyvm attach: standard input is not a terminal, so the relay runs without raw mode \
             and does not resize {}",
            args.pty.display()
        );
    }
    print_hint(&args.pty, escape);
    make_pty_raw(&pty, &args.pty)?;

    let raw_mode = if user.input_is_terminal() {
        Some(terminal::enter_raw_mode()?)
    } else {
        None
    };
    relay(args, &pty, &user, &signals, escape, raw_mode.as_ref())
}

/// Relays between the user's side and the pty until the relay ends, and keeps the pty's size
/// and the terminal's mode right across resizes and job-control stops.
fn relay(
    args: &AttachArgs,
    pty: &OwnedFd,
    user: &UserSide,
    signals: &SignalFd,
    escape: Option<EscapeChar>,
    raw_mode: Option<&RawMode>,
) -> Result<(Outcome, bool), AttachError> {
    let resize = || {
        if user.input_is_terminal() {
            copy_size(user, pty, &args.pty);
        }
    };
    resize();
    let ends = Ends {
        input: user.input(),
        input_is_terminal: user.input_is_terminal(),
        output: user.output(),
        output_blocking: user.output_blocking(),
        pty: pty.as_fd(),
        signals,
    };
    let mut relay = Relay::new(escape.map(EscapeChar::byte));
    let outcome = relay
        .run(ends, |signal| on_signal(signal, raw_mode, &resize))
        .map_err(|source| AttachError::Relay {
            path: args.pty.clone(),
            source,
        })?;
    Ok((outcome, relay.output_ends_line()))
}

/// Acts on a signal other than an exit request. After a stop the window may have changed size,
/// so the pty gets the terminal's size again.
fn on_signal(signal: Signal, raw_mode: Option<&RawMode>, resize: &impl Fn()) {
    match signal {
        Signal::WindowChange => resize(),
        Signal::Stop => {
            terminal::suspend(raw_mode);
            resize();
        }
        Signal::Continue => {
            terminal::resume(raw_mode);
            resize();
        }
        Signal::Exit(_) => {}
    }
}

fn warn_other_clients(path: &Path) {
    for holder in other_holders(path) {
        eprintln!(
            "ttyvm attach: warning: {} is already open in process {} ({}), so both clients' \
             keys reach the console and its output is split between them",
            path.display(),
            holder.pid,
            holder.command
        );
    }
}

fn print_hint(path: &Path, escape: Option<EscapeChar>) {
    let mut stderr = io::stderr().lock();
    let _ = match escape {
        Some(escape) => writeln!(
            stderr,
            "Connected to {}. Escape character is {escape}",
            path.display()
        ),
        None => writeln!(
            stderr,
            "Connected to {}. No escape character: end with SIGTERM or by closing the console",
            path.display()
        ),
    };
}

/// Switches the pty's own line discipline to raw, so bytes pass unchanged in both directions.
///
/// NOTE: the pty keeps raw mode after the client ends, because another client may still be
/// attached and a console pty has no use for echo or line editing.
fn make_pty_raw(pty: &OwnedFd, path: &Path) -> Result<(), AttachError> {
    let raw_mode = |source| AttachError::PtyRawMode {
        path: path.to_owned(),
        source,
    };
    let termios = Termios::get(pty.as_fd()).map_err(raw_mode)?;
    termios.raw().set(pty.as_fd()).map_err(raw_mode)
}

/// Sets the pty's size to the size of the user's terminal, unless that is unknown (0x0).
fn copy_size(user: &UserSide, pty: &OwnedFd, path: &Path) {
    match window_size(user.input()) {
        Ok(size) if size.is_unknown() => {
            log::debug!(
                "attach: standard input reports no size; {} keeps its own",
                path.display()
            );
        }
        Ok(size) => {
            if let Err(err) = set_window_size(pty.as_fd(), size) {
                log::warn!(
                    "attach: failed to set the size of {} to {size:?}: {err}",
                    path.display()
                );
            }
        }
        Err(err) => log::warn!("attach: failed to read the terminal size: {err}"),
    }
}
