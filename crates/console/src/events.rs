//! The fds the transport loop polls for the device, and what the device does when one is ready.

use crate::backend::fd::poll_now;
use crate::backend::{PollFd, Source};
use crate::device::Console;
use crate::ratelimit::warn_limited;
use std::os::fd::AsRawFd;

/// Events that mean an fd will never become readable again.
const HANGUP: i16 = libc::POLLHUP | libc::POLLERR | libc::POLLNVAL;

impl Console {
    /// Returns the fds the transport loop must wait on now, with the events wanted.
    ///
    /// The set changes with the device's state, so call this before every poll: the input fd
    /// appears only while the input buffer has room and a reader is attached, the output fd only
    /// while output waits on a full fd, and a pty's main side never while it has no client
    /// (it reports POLLHUP constantly then).
    pub fn poll_fds(&self) -> Vec<PollFd> {
        let mut fds = Vec::with_capacity(4);
        let mut add = |source: Source, events: i16| {
            if let Some(fd) = self.backend.fd(source) {
                fds.push(PollFd {
                    fd: fd.as_raw_fd(),
                    events,
                    source,
                });
            }
        };
        if self.wants_input() {
            add(Source::Input, libc::POLLIN);
        }
        if self.output.attached && self.output.blocked && !self.output.queue.is_empty() {
            add(Source::Output, libc::POLLOUT);
        }
        if !self.resize_lost {
            add(Source::Resize, libc::POLLIN);
        }
        add(Source::Attach, libc::POLLIN);
        fds
    }

    /// Does the backend-side work for a ready `source` with the `revents` poll returned: reads
    /// input, writes buffered output, reads the new size, or re-checks the attach state. Call
    /// [`Console::process`] afterwards to move the results to and from the queues.
    pub fn handle_ready(&mut self, source: Source, revents: i16) {
        match source {
            Source::Input => self.input_ready(revents),
            Source::Output => self.flush_output(),
            Source::Resize => self.resize_ready(revents),
            Source::Attach => self.attach_ready(),
        }
    }

    fn input_ready(&mut self, revents: i16) {
        if revents & libc::POLLIN != 0 {
            self.read_input();
        }
        if revents & HANGUP != 0 && revents & libc::POLLIN == 0 {
            self.refresh_attach();
            // A terminal that hung up stays hung up, and polling it again would spin. A pty
            // whose next client attached in the meantime no longer reports the hangup.
            if self.output.attached && self.input_still_hung_up() {
                self.input.ended = true;
            }
        }
    }

    fn input_still_hung_up(&self) -> bool {
        let Some(fd) = self.backend.fd(Source::Input) else {
            return false;
        };
        poll_now(fd, libc::POLLIN).is_ok_and(|revents| revents & HANGUP != 0)
    }

    fn resize_ready(&mut self, revents: i16) {
        if let Err(err) = self.backend.drain_resize() {
            warn_limited!(
                self.warnings,
                "console: failed to read resize notifications: {err}"
            );
        }
        if revents & HANGUP != 0 && revents & libc::POLLIN == 0 {
            self.resize_lost = true;
            log::warn!(
                "console: the resize listener stopped; the guest's console size no longer \
                 follows the terminal"
            );
        }
        self.refresh_size();
    }

    fn attach_ready(&mut self) {
        if let Err(err) = self.backend.drain_attach() {
            warn_limited!(
                self.warnings,
                "console: failed to read attach events: {err}"
            );
        }
        self.refresh_attach();
        self.refresh_size();
        self.flush_output();
    }
}
