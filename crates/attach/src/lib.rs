//! The `ttyvm attach` command: a terminal client for a pty console.

use std::path::PathBuf;
use std::process::ExitCode;

/// Command-line arguments of `ttyvm attach`.
#[derive(clap::Args, Debug)]
pub struct AttachArgs {
    /// Path of the pty to attach to, such as /dev/pts/3.
    pub pty: PathBuf,
}

/// Runs `ttyvm attach` and returns the process exit status.
pub fn run(_args: AttachArgs) -> ExitCode {
    ExitCode::FAILURE
}
