//! A private tmux server for tests that read a terminal screen.

use std::ffi::OsStr;
use std::io;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use crate::{TempDir, WindowSize};

/// How often [`Tmux::wait_for_text`] captures the pane.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Errors of the tmux helper.
#[derive(Debug, thiserror::Error)]
pub enum TmuxError {
    /// The socket folder could not be created.
    #[error("creating the tmux socket folder failed")]
    Setup(#[source] io::Error),
    /// tmux could not be started.
    #[error("starting `tmux {command}` failed; is tmux installed (scripts/install-deps)?")]
    Spawn {
        /// The tmux arguments.
        command: String,
        /// The spawn error.
        #[source]
        source: io::Error,
    },
    /// A tmux command exited with a failure.
    #[error("`tmux {command}` failed with {status}: {stderr}")]
    Failed {
        /// The tmux arguments.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its stderr.
        stderr: String,
    },
    /// The pane did not show the text in time.
    #[error("timed out after {timeout:?} waiting for {needle:?} in tmux pane {target}; it shows:\n{screen}")]
    Timeout {
        /// The pane.
        target: String,
        /// The text that was expected.
        needle: String,
        /// The time waited.
        timeout: Duration,
        /// The last capture of the pane.
        screen: String,
    },
}

/// A tmux server on its own socket in a temporary folder, killed on drop.
///
/// The server starts with the first [`Tmux::new_session`] and reads no configuration file.
#[derive(Debug)]
pub struct Tmux {
    socket: PathBuf,
    _dir: TempDir,
}

impl Tmux {
    /// Prepares a private server; nothing runs until the first session.
    pub fn new() -> Result<Self, TmuxError> {
        let dir = TempDir::new("tmux").map_err(TmuxError::Setup)?;
        Ok(Self {
            socket: dir.path().join("socket"),
            _dir: dir,
        })
    }

    /// Runs tmux with `args` on this server and returns its stdout.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<String, TmuxError> {
        let command_text = args
            .iter()
            .map(|arg| arg.as_ref().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let output: Output = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .output()
            .map_err(|source| TmuxError::Spawn {
                command: command_text.clone(),
                source,
            })?;
        if !output.status.success() {
            return Err(TmuxError::Failed {
                command: command_text,
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Starts a detached session `name` of `size` that runs `command` (a shell command line).
    pub fn new_session(
        &self,
        name: &str,
        size: WindowSize,
        command: &str,
    ) -> Result<(), TmuxError> {
        let cols = size.cols.to_string();
        let rows = size.rows.to_string();
        self.run(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            &cols,
            "-y",
            &rows,
            command,
        ])?;
        Ok(())
    }

    /// Types `text` literally into pane `target`, without a key name lookup.
    pub fn send_text(&self, target: &str, text: &str) -> Result<(), TmuxError> {
        self.run(&["send-keys", "-t", target, "-l", text])?;
        Ok(())
    }

    /// Sends tmux key names (`Enter`, `C-c`, ...) to pane `target`.
    pub fn send_keys(&self, target: &str, keys: &[&str]) -> Result<(), TmuxError> {
        let mut args = vec!["send-keys", "-t", target];
        args.extend_from_slice(keys);
        self.run(&args)?;
        Ok(())
    }

    /// Returns the visible text of pane `target`, one line per row.
    pub fn capture_pane(&self, target: &str) -> Result<String, TmuxError> {
        self.run(&["capture-pane", "-p", "-t", target])
    }

    /// Resizes window `target` to `size`.
    pub fn resize_window(&self, target: &str, size: WindowSize) -> Result<(), TmuxError> {
        let cols = size.cols.to_string();
        let rows = size.rows.to_string();
        self.run(&["resize-window", "-t", target, "-x", &cols, "-y", &rows])?;
        Ok(())
    }

    /// Captures pane `target` until it shows `needle`, and returns that capture.
    pub fn wait_for_text(
        &self,
        target: &str,
        needle: &str,
        timeout: Duration,
    ) -> Result<String, TmuxError> {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.capture_pane(target)?;
            if screen.contains(needle) {
                return Ok(screen);
            }
            if Instant::now() >= deadline {
                return Err(TmuxError::Timeout {
                    target: target.to_string(),
                    needle: needle.to_string(),
                    timeout,
                    screen,
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Fails harmlessly when no session was ever started.
        let _ = self.run(&["kill-server"]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmux_session_resizes_and_shows_text() {
        let tmux = Tmux::new().unwrap();
        tmux.new_session("t", WindowSize { rows: 20, cols: 70 }, "sh")
            .unwrap();
        tmux.send_text("t", "stty size").unwrap();
        tmux.send_keys("t", &["Enter"]).unwrap();
        tmux.wait_for_text("t", "20 70", Duration::from_secs(10))
            .unwrap();
        tmux.resize_window("t", WindowSize { rows: 30, cols: 90 })
            .unwrap();
        tmux.send_text("t", "clear; stty size").unwrap();
        tmux.send_keys("t", &["Enter"]).unwrap();
        tmux.wait_for_text("t", "30 90", Duration::from_secs(10))
            .unwrap();
    }

    #[test]
    fn tmux_wait_times_out_with_screen() {
        let tmux = Tmux::new().unwrap();
        tmux.new_session(
            "t",
            WindowSize { rows: 10, cols: 40 },
            "echo visible; sleep 30",
        )
        .unwrap();
        tmux.wait_for_text("t", "visible", Duration::from_secs(10))
            .unwrap();
        let error = tmux
            .wait_for_text("t", "absent", Duration::from_millis(100))
            .unwrap_err();
        assert!(error.to_string().contains("visible"), "{error}");
    }
}
