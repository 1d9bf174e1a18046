//! The `ttyvm serve` command: a vhost-user virtio-console server.

use std::path::PathBuf;
use std::process::ExitCode;

/// Command-line arguments of `ttyvm serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Path of the vhost-user socket to listen on.
    #[arg(long)]
    pub socket: PathBuf,
    /// Where the console goes: pty, tty, file=PATH or null.
    #[arg(long)]
    pub console: String,
    /// Exit after the first frontend disconnects instead of waiting for the next one.
    #[arg(long)]
    pub once: bool,
}

/// Runs `ttyvm serve` and returns the process exit status.
pub fn run(_args: ServeArgs) -> ExitCode {
    ExitCode::FAILURE
}
