//! Finding the release `ttyvm` binary that the bench runs as the server.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::BenchError;

/// Returns the `ttyvm` binary to benchmark: `explicit` when given, otherwise the one next to
/// this executable after `cargo build --release -p ttyvm` brought it up to date.
pub fn ttyvm_binary(explicit: Option<&Path>) -> Result<PathBuf, BenchError> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let exe = std::env::current_exe().map_err(BenchError::io("finding the bench executable"))?;
    let profile_dir = exe.parent().unwrap_or(Path::new("."));
    let path = profile_dir.join("ttyvm");
    let command = "cargo build --release -p ttyvm".to_string();
    // The bench binary lives in TARGET/release, so the target folder is one level up.
    let target_dir = profile_dir.parent().unwrap_or(Path::new("."));
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--release", "-p", "ttyvm"])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status();
    let failure = match status {
        Ok(status) if status.success() => None,
        Ok(status) => Some(format!("it exited with {status}")),
        Err(error) => Some(format!("starting it failed: {error}")),
    };
    match failure {
        None if path.is_file() => Ok(path),
        None => Err(BenchError::Binary {
            path,
            command,
            detail: "the build succeeded but wrote no binary there".to_string(),
        }),
        Some(detail) if path.is_file() => {
            eprintln!("bench: `{command}` failed ({detail}); using the existing {path:?}");
            Ok(path)
        }
        Some(detail) => Err(BenchError::Binary {
            path,
            command,
            detail,
        }),
    }
}
