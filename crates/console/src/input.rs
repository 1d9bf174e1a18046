//! Host input between the backend and the receiveq, bounded so that a guest without receive
//! buffers makes the device stop reading its input fd.

use std::io;

use crate::device::Console;
use crate::ratelimit::warn_limited;

/// Bytes read from the backend per call.
const READ_CHUNK: usize = 4096;

impl Console {
    /// Whether the input fd should be polled now.
    pub(crate) fn wants_input(&self) -> bool {
        self.output.attached
            && !self.input.ended
            && self.input.queue.free(self.limits.input_buffer) > 0
    }

    /// Reads host input until the buffer is full or the backend has nothing more.
    pub(crate) fn read_input(&mut self) {
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            let room = self.input.queue.free(self.limits.input_buffer);
            if room == 0 || self.input.ended {
                return;
            }
            let len = room.min(READ_CHUNK);
            match self.backend.read_input(&mut chunk[..len]) {
                Ok(0) => self.input.ended = true,
                Ok(read) => {
                    self.input
                        .queue
                        .push_within(&chunk[..read], self.limits.input_buffer);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return self.on_read_error(err),
            }
        }
    }

    /// Handles a failed read. EIO on a pty means its client left, which is routine; anything
    /// else stops input until the next attach so a failing fd cannot make the loop spin.
    fn on_read_error(&mut self, err: io::Error) {
        self.refresh_attach();
        if !self.output.attached {
            return;
        }
        self.input.ended = true;
        warn_limited!(
            self.warnings,
            "console: failed to read input: {err}; input stops until a client attaches again"
        );
    }
}
