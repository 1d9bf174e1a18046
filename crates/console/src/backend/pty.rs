use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ttyvm_sigwinch::ResizeListener;
use ttyvm_term::{set_window_size, window_size, Pty, Termios, WindowSize};

use super::fd::{poll_now, poll_readable, set_nonblocking};
use super::watch::AttachWatch;
use super::{spawn_listener, Backend, BackendError, Source};

/// Maximum wait in [`PtyBackend::open`] for the resize listener's helper to close its copy of
/// the subsidiary side.
const HELPER_CLOSE_WAIT: Duration = Duration::from_secs(1);

/// A console on a new pty: the device keeps the main side, and clients such as `ttyvm attach`
/// open the subsidiary side by its path.
///
/// The subsidiary side is put in raw mode (cfmakeraw: no ICRNL, no echo) once, at open; the pty
/// keeps those settings across clients. The backend keeps no fd on the subsidiary side, so the
/// main side reports POLLHUP exactly while no client has it open: [`Backend::is_attached`] polls
/// for that, and an inotify watch on the path wakes the device when a client opens or closes it.
#[derive(Debug)]
pub struct PtyBackend {
    main: File,
    path: PathBuf,
    watch: AttachWatch,
    listener: ResizeListener,
}

impl PtyBackend {
    /// Opens a new pty, sets its size to `size` unless that is `None` or unknown, and starts the
    /// resize listener on the subsidiary side.
    pub fn open(size: Option<WindowSize>) -> Result<Self, BackendError> {
        let pty = Pty::open().map_err(BackendError::OpenPty)?;
        let what = pty.path.display().to_string();
        let terminal_error = |action: &'static str| {
            let what = what.clone();
            move |source| BackendError::Terminal {
                action,
                what,
                source,
            }
        };
        if let Some(size) = size.filter(|size| !size.is_unknown()) {
            set_window_size(pty.main.as_fd(), size).map_err(terminal_error("set the size"))?;
        }

        let subsidiary = pty.subsidiary.as_fd();
        let raw = Termios::get(subsidiary)
            .map_err(terminal_error("read the termios"))?
            .raw();
        raw.set(subsidiary)
            .map_err(terminal_error("enable raw mode"))?;
        set_nonblocking(pty.main.as_fd()).map_err(terminal_error("set O_NONBLOCK"))?;

        let watch = AttachWatch::new(&pty.path).map_err(|source| BackendError::Watch {
            path: pty.path.clone(),
            source,
        })?;
        let listener = spawn_listener(subsidiary, &what)?;
        // Only clients may keep the subsidiary side open, so the backend's own fd closes now.
        let Pty {
            main,
            subsidiary,
            path,
        } = pty;
        drop(subsidiary);
        let backend = PtyBackend {
            main: File::from(main),
            path,
            watch,
            listener,
        };
        backend.wait_for_helper_close();
        Ok(backend)
    }

    /// Waits, up to [`HELPER_CLOSE_WAIT`], until the listener's helper has closed its copy of
    /// the subsidiary side, so the device starts out detached instead of seeing a client that
    /// is not there. The helper may close it after `spawn` returns.
    fn wait_for_helper_close(&self) {
        let deadline = Instant::now() + HELPER_CLOSE_WAIT;
        while !self.main_hung_up() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                // Someone else may have opened the new pty already; the watch reports changes.
                return;
            }
            // The close arrives as an inotify event, so this sleeps until it or the deadline.
            if poll_readable(self.watch.as_fd(), left).is_err() {
                return;
            }
            let _ = self.watch.drain();
        }
    }

    fn main_hung_up(&self) -> bool {
        poll_now(self.main.as_fd(), libc::POLLIN).is_ok_and(|revents| revents & libc::POLLHUP != 0)
    }

    /// Path of the subsidiary side, such as `/dev/pts/3`, for clients to open.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Backend for PtyBackend {
    fn has_size(&self) -> bool {
        true
    }

    fn window_size(&self) -> io::Result<WindowSize> {
        window_size(self.main.as_fd())
    }

    fn fd(&self, source: Source) -> Option<BorrowedFd<'_>> {
        match source {
            Source::Input | Source::Output => Some(self.main.as_fd()),
            Source::Resize => Some(self.listener.as_fd()),
            Source::Attach => Some(self.watch.as_fd()),
        }
    }

    fn read_input(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.main).read(buf)
    }

    fn write_output(&mut self, data: &[u8]) -> io::Result<usize> {
        (&self.main).write(data)
    }

    fn drain_resize(&mut self) -> io::Result<bool> {
        self.listener.drain()
    }

    fn drain_attach(&mut self) -> io::Result<()> {
        self.watch.drain().map(drop)
    }

    fn is_attached(&mut self) -> bool {
        // A failed poll (only possible on resource exhaustion here) counts as attached, which
        // keeps output instead of dropping it.
        !self.main_hung_up()
    }
}
