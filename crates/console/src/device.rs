//! The console device: negotiated state, the size the guest has seen, and the entry points the
//! transport calls.

use std::fmt;
use std::time::Duration;

use ttyvm_term::WindowSize;
use virtio_queue::Queue;
use vm_memory::GuestMemory;

use crate::backend::Backend;
use crate::buffer::ByteQueue;
use crate::config::{self, ConfigError};
use crate::features;
use crate::ratelimit::{warn_limited, RateLimiter};
use crate::tx::PendingChain;
use crate::{NUM_QUEUES, RECEIVEQ, TRANSMITQ};

/// Bounds on the bytes the device buffers, each in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Guest output buffered while a reader is attached. When it is full the device stops taking
    /// transmitq descriptors, so the guest waits and nothing is lost. Default 64 KiB.
    pub output_buffer: usize,
    /// Most recent guest output kept while a pty has no client; older bytes are dropped and
    /// counted. Default 64 KiB.
    pub kept_output: usize,
    /// Host input buffered while the guest has no receive buffers posted. When it is full the
    /// device stops reading the input fd. Default 64 KiB.
    pub input_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            output_buffer: 64 * 1024,
            kept_output: 64 * 1024,
            input_buffer: 64 * 1024,
        }
    }
}

impl Limits {
    /// Returns these limits with every bound at least one byte, so the device can make progress.
    fn at_least_one(self) -> Self {
        Limits {
            output_buffer: self.output_buffer.max(1),
            kept_output: self.kept_output.max(1),
            input_buffer: self.input_buffer.max(1),
        }
    }
}

/// The actions the transport must take after [`Console::process`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Notify {
    /// Queues, by index, whose used ring changed and whose driver must be signalled.
    pub used: [bool; NUM_QUEUES],
    /// Raise a config-change notification now.
    pub config_changed: bool,
    /// The device is in NEEDS_RESET after a fault it cannot recover from, such as an
    /// unwritable used ring. It stays there, taking no descriptors, until [`Console::reset`].
    pub needs_reset: bool,
}

/// Warnings allowed per interval, for anything the guest or a client can trigger.
const WARNINGS_PER_INTERVAL: u32 = 10;
const WARNING_INTERVAL: Duration = Duration::from_secs(5);

/// Output the guest writes through `emerg_wr` beyond [`Limits::output_buffer`], in bytes.
const EMERGENCY_RESERVE: usize = 4096;

/// Guest output on its way to the backend.
#[derive(Debug)]
pub(crate) struct Output {
    pub queue: ByteQueue,
    /// Whether a reader is attached; when false, `queue` keeps only the newest bytes.
    pub attached: bool,
    /// Whether the last write returned `WouldBlock`, so the fd is polled for POLLOUT.
    pub blocked: bool,
    /// Bytes dropped in the current detach period.
    pub dropped_while_detached: u64,
    /// Bytes dropped since the console was created.
    pub dropped_total: u64,
}

/// Host input on its way to the guest.
#[derive(Debug)]
pub(crate) struct Input {
    pub queue: ByteQueue,
    /// Whether the input fd reported its end; it is not polled again until the next attach.
    pub ended: bool,
}

/// A virtio-console device with one port and no multiport support.
pub struct Console {
    pub(crate) backend: Box<dyn Backend>,
    pub(crate) limits: Limits,
    acked_features: u64,
    /// Last known size; 0x0 until the backend reports one.
    pub(crate) size: WindowSize,
    /// Size of the last config-change notification since the driver became ready.
    guest_size: Option<WindowSize>,
    driver_ready: bool,
    pub(crate) needs_reset: bool,
    pub(crate) output: Output,
    pub(crate) input: Input,
    pub(crate) pending_tx: Option<PendingChain>,
    pub(crate) resize_lost: bool,
    pub(crate) warnings: RateLimiter,
}

impl fmt::Debug for Console {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Console")
            .field("limits", &self.limits)
            .field(
                "acked_features",
                &format_args!("{:#x}", self.acked_features),
            )
            .field("size", &self.size)
            .field("guest_size", &self.guest_size)
            .field("driver_ready", &self.driver_ready)
            .field("needs_reset", &self.needs_reset)
            .field("output", &self.output)
            .field("input", &self.input)
            .finish_non_exhaustive()
    }
}

impl Console {
    /// Creates a console over `backend` and reads the backend's initial size and attach state.
    pub fn new(backend: Box<dyn Backend>, limits: Limits) -> Console {
        let mut console = Console {
            backend,
            limits: limits.at_least_one(),
            acked_features: 0,
            size: WindowSize::default(),
            guest_size: None,
            driver_ready: false,
            needs_reset: false,
            output: Output {
                queue: ByteQueue::new(),
                attached: true,
                blocked: false,
                dropped_while_detached: 0,
                dropped_total: 0,
            },
            input: Input {
                queue: ByteQueue::new(),
                ended: false,
            },
            pending_tx: None,
            resize_lost: false,
            warnings: RateLimiter::new(WARNINGS_PER_INTERVAL, WARNING_INTERVAL),
        };
        console.output.attached = console.backend.is_attached();
        console.refresh_size();
        console
    }

    /// Returns the features the device offers: VERSION_1 and EMERG_WRITE, plus SIZE if the
    /// backend has a size.
    pub fn device_features(&self) -> u64 {
        features::offered(self.backend.has_size())
    }

    /// Stores the features the driver accepted; bits the device did not offer are ignored.
    pub fn ack_features(&mut self, features: u64) {
        self.acked_features = features & self.device_features();
    }

    /// Returns the negotiated features.
    pub fn acked_features(&self) -> u64 {
        self.acked_features
    }

    /// Copies config space bytes at `offset` into `data`; any offset and length inside the
    /// 12 bytes works, anything reaching outside is rejected.
    pub fn read_config(&self, offset: u64, data: &mut [u8]) -> Result<(), ConfigError> {
        config::read(self.size, offset, data)
    }

    /// Handles a driver write to config space. Only `emerg_wr` is writable, and only once
    /// VIRTIO_CONSOLE_F_EMERG_WRITE is negotiated; its byte goes to the output after all
    /// output already buffered.
    pub fn write_config(&mut self, offset: u64, data: &[u8]) -> Result<(), ConfigError> {
        let byte = config::parse_write(offset, data)?;
        if self.acked_features & features::VIRTIO_CONSOLE_F_EMERG_WRITE == 0 {
            return Err(ConfigError::EmergWriteNotNegotiated);
        }
        if self.output.attached {
            let limit = self.limits.output_buffer + EMERGENCY_RESERVE;
            if self.output.queue.push_within(&[byte], limit) == 0 {
                warn_limited!(
                    self.warnings,
                    "console: dropped an emerg_wr byte because the output buffer is full"
                );
            }
        } else {
            self.push_output(&[byte]);
        }
        self.flush_output();
        Ok(())
    }

    /// Marks the driver ready (DRIVER_OK, or the transport's equivalent). The next
    /// [`Console::process`] then raises one config-change notification with the current size,
    /// because Linux's driver reads the size only on that notification.
    pub fn driver_ready(&mut self) {
        self.driver_ready = true;
        self.guest_size = None;
        self.refresh_size();
    }

    /// Returns the device to its state before feature negotiation, after a device reset or when
    /// the frontend is gone. The backend, the size and every buffered byte stay, so a next
    /// driver sees the output kept meanwhile. A transmit chain that was partly copied is
    /// forgotten; its copied bytes stay buffered.
    pub fn reset(&mut self) {
        self.acked_features = 0;
        self.driver_ready = false;
        self.guest_size = None;
        self.needs_reset = false;
        self.pending_tx = None;
    }

    /// Gives the backend's terminal back before the process stops for job control, restoring
    /// its original settings. A failure is logged, because the process stops either way.
    pub fn suspend(&mut self) {
        if let Err(err) = self.backend.suspend() {
            warn_limited!(
                self.warnings,
                "console: failed to restore the terminal before stopping: {err}"
            );
        }
    }

    /// Takes the backend's terminal again after the process continues, and reads its size,
    /// because a resize while the process was stopped reached no one. Call it on SIGCONT; a
    /// second call changes nothing.
    pub fn resume(&mut self) {
        if let Err(err) = self.backend.resume() {
            warn_limited!(
                self.warnings,
                "console: failed to put the terminal back in raw mode: {err}"
            );
        }
        self.refresh_size();
    }

    /// Last known terminal size; 0x0 until the backend has reported one.
    pub fn size(&self) -> WindowSize {
        self.size
    }

    /// Bytes of guest output buffered and not yet written to the backend.
    pub fn buffered_output(&self) -> usize {
        self.output.queue.len()
    }

    /// Bytes of host input buffered and not yet delivered to the guest.
    pub fn buffered_input(&self) -> usize {
        self.input.queue.len()
    }

    /// Bytes of guest output dropped since creation because a pty had no client.
    pub fn dropped_output(&self) -> u64 {
        self.output.dropped_total
    }

    /// Moves bytes between the queues and the buffers as far as possible, and writes buffered
    /// output to the backend. `receiveq` and `transmitq` are `None` while that ring is not
    /// ready. Call it after every kick and after every [`Console::handle_ready`].
    pub fn process<M: GuestMemory>(
        &mut self,
        mem: &M,
        receiveq: Option<&mut Queue>,
        transmitq: Option<&mut Queue>,
    ) -> Notify {
        let mut notify = Notify::default();
        if !self.needs_reset {
            if let Some(queue) = transmitq {
                notify.used[usize::from(TRANSMITQ)] = self.process_transmitq(mem, queue);
            }
            if let Some(queue) = receiveq {
                notify.used[usize::from(RECEIVEQ)] = self.process_receiveq(mem, queue);
            }
        }
        notify.config_changed = self.take_config_change();
        notify.needs_reset = self.needs_reset;
        notify
    }

    /// Reports whether the guest must be told of a size it has not seen, and records it as seen.
    fn take_config_change(&mut self) -> bool {
        let size_negotiated = self.acked_features & features::VIRTIO_CONSOLE_F_SIZE != 0;
        if !self.driver_ready || !size_negotiated || self.size.is_unknown() {
            return false;
        }
        if self.guest_size == Some(self.size) {
            return false;
        }
        self.guest_size = Some(self.size);
        true
    }

    /// Reads the backend's size; an unknown (0x0) size keeps the last known one.
    pub(crate) fn refresh_size(&mut self) {
        if !self.backend.has_size() {
            return;
        }
        match self.backend.window_size() {
            Ok(size) if !size.is_unknown() => self.size = size,
            Ok(_) => {}
            Err(err) => {
                warn_limited!(
                    self.warnings,
                    "console: failed to read the window size: {err}"
                )
            }
        }
    }

    /// Enters NEEDS_RESET after a queue fault the device cannot recover from.
    pub(crate) fn enter_needs_reset(&mut self, queue: u16, err: &dyn fmt::Display) {
        self.needs_reset = true;
        self.pending_tx = None;
        warn_limited!(
            self.warnings,
            "console: queue {queue} failed ({err}); the device needs a reset"
        );
    }
}

#[cfg(test)]
mod suspend_tests {
    use super::*;
    use std::io;
    use std::os::fd::BorrowedFd;
    use std::sync::{Arc, Mutex};

    use crate::backend::Source;

    /// What the backend below has seen: its calls in order, and the size it reports.
    #[derive(Default)]
    struct Record {
        calls: Vec<&'static str>,
        size: WindowSize,
    }

    /// A backend on a terminal that records suspend and resume calls.
    struct RecordingBackend(Arc<Mutex<Record>>);

    impl Backend for RecordingBackend {
        fn has_size(&self) -> bool {
            true
        }

        fn window_size(&self) -> io::Result<WindowSize> {
            Ok(self.0.lock().unwrap().size)
        }

        fn fd(&self, _source: Source) -> Option<BorrowedFd<'_>> {
            None
        }

        fn write_output(&mut self, data: &[u8]) -> io::Result<usize> {
            Ok(data.len())
        }

        fn suspend(&mut self) -> io::Result<()> {
            self.0.lock().unwrap().calls.push("suspend");
            Ok(())
        }

        fn resume(&mut self) -> io::Result<()> {
            self.0.lock().unwrap().calls.push("resume");
            Ok(())
        }
    }

    #[test]
    fn console_forwards_suspend_and_resume() {
        let record = Arc::new(Mutex::new(Record {
            size: WindowSize::new(24, 80),
            ..Record::default()
        }));
        let backend = RecordingBackend(record.clone());
        let mut console = Console::new(Box::new(backend), Limits::default());
        console.suspend();
        assert_eq!(record.lock().unwrap().calls, ["suspend"]);
        console.resume();
        assert_eq!(record.lock().unwrap().calls, ["suspend", "resume"]);
    }

    #[test]
    fn resume_reads_size_changed_while_stopped() {
        let record = Arc::new(Mutex::new(Record {
            size: WindowSize::new(24, 80),
            ..Record::default()
        }));
        let backend = RecordingBackend(record.clone());
        let mut console = Console::new(Box::new(backend), Limits::default());
        assert_eq!(console.size(), WindowSize::new(24, 80));
        console.suspend();
        record.lock().unwrap().size = WindowSize::new(40, 120);
        console.resume();
        assert_eq!(console.size(), WindowSize::new(40, 120));
    }
}
