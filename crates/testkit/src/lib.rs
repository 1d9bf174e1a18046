//! Test support for ttyvm's end-to-end tests.
//!
//! - [`Guest`] finds the User-Mode Linux guest that `scripts/build-guest` builds, and
//!   [`Guest::boot`] starts it as a [`Uml`] process, either on a vhost-user socket (the guest
//!   console is the virtio console `hvc0`) or on a pty as UML's own console `tty0`.
//! - [`Expect`] reads a nonblocking descriptor, such as a pty main side, until a string arrives.
//! - [`Tmux`] runs a private tmux server for tests that look at a terminal screen.
//! - [`Server`] runs `ttyvm serve` and reads the console path it prints.
//! - [`checksum`], [`stream`] and [`protocol`] are shared with `ttyvm-responder`, the guest
//!   program, so host and guest hash and generate the same bytes.
//!
//! Every helper cleans up on drop: processes are killed and reaped, temporary folders removed.
//! Failures carry what the processes printed; [`check`] turns a failed step into a panic that
//! shows the error and the output of every process involved.

mod diagnostics;
mod expect;
mod guest;
mod process;
mod pty;
mod server;
mod tempdir;
mod tmux;
mod uml;

pub use diagnostics::{check, Captured};
pub use expect::{Expect, ExpectError, SEND_TIMEOUT};
pub use guest::{Guest, GuestError};
pub use pty::{open_pty, set_window_size, window_size, Pty, WindowSize};
pub use server::{Server, ServerError};
pub use tempdir::TempDir;
pub use tmux::{Tmux, TmuxError};
pub use ttyvm_responder::{checksum, protocol, stream};
pub use uml::{BootOptions, GuestConsole, Run, Uml, UmlError};
