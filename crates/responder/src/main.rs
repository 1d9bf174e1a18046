//! `ttyvm-responder`: the test guest's program for measurements on its console.
//!
//! Usage: `ttyvm-responder winch | emit COUNT | sink COUNT`. It works on its stdin and stdout,
//! which the guest init points at the console. The printed lines are described in
//! [`ttyvm_responder::protocol`]. Exit status: 0 on success, 1 on a failure (after a
//! `TTYVM-ERROR` line), 2 on invalid arguments.

mod fd;
mod transfer;
mod tty;
mod winch;

use std::process::ExitCode;

use ttyvm_responder::protocol;

const USAGE: &str = "usage: ttyvm-responder winch | emit COUNT | sink COUNT";

/// The mode chosen on the command line.
enum Mode {
    Winch,
    Emit(u64),
    Sink(u64),
}

fn parse_args(args: &[String]) -> Result<Mode, String> {
    let count = |value: Option<&String>| -> Result<u64, String> {
        let value = value.ok_or_else(|| format!("missing COUNT\n{USAGE}"))?;
        value
            .parse()
            .map_err(|_| format!("invalid COUNT {value:?}: expected a byte count\n{USAGE}"))
    };
    match args.first().map(String::as_str) {
        Some("winch") if args.len() == 1 => Ok(Mode::Winch),
        Some("emit") if args.len() == 2 => Ok(Mode::Emit(count(args.get(1))?)),
        Some("sink") if args.len() == 2 => Ok(Mode::Sink(count(args.get(1))?)),
        _ => Err(USAGE.to_string()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match parse_args(&args) {
        Ok(mode) => mode,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let (result, line_end) = match mode {
        Mode::Winch => (winch::run(), "\n"),
        Mode::Emit(count) => (transfer::emit(count), "\r\n"),
        Mode::Sink(count) => (transfer::sink(count), "\r\n"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let line = format!("{} {error}{line_end}", protocol::ERROR);
            // The console may be what failed, so stderr is the best remaining place.
            if fd::write_all(libc::STDOUT_FILENO, line.as_bytes()).is_err() {
                eprint!("{line}");
            }
            ExitCode::FAILURE
        }
    }
}
