//! Guest output between the transmitq and the backend: the attach state of a pty, the bounded
//! buffer while a reader is attached and the drop-oldest buffer while none is.

use std::io;

use crate::device::Console;
use crate::ratelimit::warn_limited;

impl Console {
    /// Bytes of output the device may take from the transmitq now: bounded while a reader is
    /// attached, unbounded while none is, because the buffer then drops its oldest bytes.
    pub(crate) fn output_room(&self) -> usize {
        if self.output.attached {
            self.output.queue.free(self.limits.output_buffer)
        } else {
            usize::MAX
        }
    }

    /// Buffers guest output. While detached the oldest bytes beyond the kept bound are dropped
    /// and counted; while attached the caller must have checked [`Console::output_room`].
    pub(crate) fn push_output(&mut self, data: &[u8]) {
        if self.output.attached {
            let taken = self
                .output
                .queue
                .push_within(data, self.limits.output_buffer);
            debug_assert_eq!(taken, data.len(), "output pushed beyond output_room");
        } else {
            let dropped = self
                .output
                .queue
                .push_keeping_newest(data, self.limits.kept_output);
            self.output.dropped_while_detached += dropped;
            self.output.dropped_total += dropped;
        }
    }

    /// Asks the backend whether a reader is attached and switches the output policy on a change.
    pub(crate) fn refresh_attach(&mut self) {
        let attached = self.backend.is_attached();
        if attached == self.output.attached {
            return;
        }
        self.output.attached = attached;
        self.output.blocked = false;
        if attached {
            self.on_attach();
        } else {
            let dropped = self.output.queue.trim_oldest(self.limits.kept_output);
            self.output.dropped_while_detached += dropped;
            self.output.dropped_total += dropped;
        }
    }

    fn on_attach(&mut self) {
        self.input.ended = false;
        let dropped = std::mem::take(&mut self.output.dropped_while_detached);
        if dropped > 0 {
            warn_limited!(
                self.warnings,
                "console: dropped {dropped} bytes of output while no client was attached; \
                 the client sees the last {} bytes first",
                self.output.queue.len()
            );
        }
    }

    /// Writes buffered output to the backend until it is empty or the backend would block.
    pub(crate) fn flush_output(&mut self) {
        self.refresh_attach();
        while self.output.attached && !self.output.queue.is_empty() {
            let result = self.backend.write_output(self.output.queue.front_slice());
            match result {
                Ok(0) => {
                    self.output.blocked = true;
                    return;
                }
                Ok(written) => {
                    self.output.blocked = false;
                    self.output.queue.consume(written);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.output.blocked = true;
                    return;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => self.on_write_error(err),
            }
        }
    }

    /// Handles a failed write: a pty whose client left (EIO) switches to keeping output; any
    /// other failure discards the buffer, because waiting on a broken sink would hang the guest.
    fn on_write_error(&mut self, err: io::Error) {
        self.refresh_attach();
        if !self.output.attached {
            return;
        }
        let discarded = self.output.queue.len();
        self.output.queue.consume(discarded);
        self.output.blocked = false;
        warn_limited!(
            self.warnings,
            "console: failed to write output: {err}; discarded {discarded} buffered bytes"
        );
    }
}
