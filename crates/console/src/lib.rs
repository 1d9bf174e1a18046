//! A virtio-console device model (virtio 1.2, section 5.3) that knows nothing of its transport,
//! with the host-side backends a console server needs: a pty, the user's terminal, an
//! output-only file and null.
//!
//! The device has one port (VIRTIO_CONSOLE_F_MULTIPORT is never offered), a receiveq (index 0,
//! host to guest) and a transmitq (index 1, guest to host), and follows its backend's terminal
//! size. Linux's driver (6.1) reads `cols` and `rows` only when it gets a config-change
//! notification, so the device raises one after DRIVER_OK and after every size change.
//!
//! # How a transport drives it
//!
//! The transport owns guest memory, the rings, the kick and call eventfds and a poll(2) loop.
//! It calls, in this order:
//!
//! 1. [`Console::new`] with a [`Backend`] such as [`PtyBackend`], [`TtyBackend`],
//!    [`FileBackend`] or [`NullBackend`], and [`Limits`].
//! 2. [`Console::device_features`], then [`Console::ack_features`] with the driver's choice.
//! 3. [`Console::read_config`] and [`Console::write_config`] for config space accesses.
//! 4. [`Console::driver_ready`] on DRIVER_OK, or when the transport sees the rings start.
//! 5. In its loop: poll the fds of [`Console::poll_fds`] plus its own kick fds; pass each
//!    ready [`PollFd::source`] and its `revents` to [`Console::handle_ready`]; then, after any
//!    kick or ready source, call [`Console::process`] and act on the [`Notify`] it returns:
//!    signal the queues in `used`, send a config-change notification for `config_changed`,
//!    and report `needs_reset`.
//! 6. [`Console::reset`] on a device reset or when the driver side goes away; the backend and
//!    the buffered bytes stay for the next driver.
//!
//! # Backends
//!
//! | backend         | output                   | input | size (F_SIZE)          | resize source        |
//! |-----------------|--------------------------|-------|------------------------|----------------------|
//! | [`PtyBackend`]  | the pty's main side      | same  | TIOCGWINSZ on main     | listener on the pty  |
//! | [`TtyBackend`]  | stdout's terminal        | stdin | TIOCGWINSZ on stdout   | listener on stdin    |
//! | [`FileBackend`] | appended to a file       | none  | none                   | none                 |
//! | [`NullBackend`] | discarded                | none  | none                   | none                 |
//!
//! A pty with no client is the one case where output is dropped: the device keeps the most
//! recent [`Limits::kept_output`] bytes, counts the rest ([`Console::dropped_output`]) and
//! delivers the kept bytes first when a client opens the subsidiary side. Everywhere else a
//! full output buffer ([`Limits::output_buffer`]) stops the device from taking transmitq
//! descriptors, and a full input buffer ([`Limits::input_buffer`]) stops it from polling the
//! input fd.
//!
//! The device never blocks: every backend fd is non-blocking, and guest memory faults or
//! malformed descriptor chains are handled inside [`Console::process`] (the chain is returned
//! used with length 0, or the device enters NEEDS_RESET), with rate-limited warnings.

mod backend;
mod buffer;
mod chain;
pub mod config;
mod device;
mod events;
pub mod features;
mod input;
mod output;
mod queue;
mod ratelimit;
mod rx;
mod tx;

#[cfg(test)]
mod tests;

pub use backend::{
    Backend, BackendError, FileBackend, NullBackend, PollFd, PtyBackend, Source, TtyBackend,
};
pub use config::{ConfigError, CONFIG_SIZE};
pub use device::{Console, Limits, Notify};
pub use ratelimit::RateLimiter;

/// Index of the receiveq (host to guest).
pub const RECEIVEQ: u16 = 0;
/// Index of the transmitq (guest to host).
pub const TRANSMITQ: u16 = 1;
/// Number of queues without multiport.
pub const NUM_QUEUES: usize = 2;
