//! One frontend connection: its requests, its kicks, and the data the console moves through its
//! rings.

use std::os::fd::{AsRawFd, RawFd};

use log::{debug, error, info, warn};
use ttyvm_console::{Console, Notify, RateLimiter, NUM_QUEUES, RECEIVEQ, TRANSMITQ};
use ttyvm_vhost_user::{
    request_name, take_memory_faults, Connection, Error as ConnectionError, Event, KickError,
    RequestError,
};

use crate::device::ConsoleDevice;

/// Why a session ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// The frontend closed the connection, as it does when the guest halts or reboots.
    Disconnected,
    /// The connection failed and was dropped.
    Failed(ConnectionError),
    /// A kick fd hung up or reads end of file, so it would report itself ready forever.
    Kick(KickError),
}

/// A connected frontend.
pub struct Session {
    id: u64,
    connection: Connection,
    /// Whether the driver has shown it is up, by DRIVER_OK or by a ring becoming ready.
    driver_up: bool,
    /// Whether the peer has sent a request. A peer that closes without one is no frontend:
    /// another `ttyvm serve` probing whether this socket is live connects and closes at once.
    spoke: bool,
    warnings: RateLimiter,
}

impl Session {
    /// Wraps an accepted connection; `id` names it in log lines.
    pub fn new(id: u64, connection: Connection) -> Self {
        info!("server: frontend connection {id} accepted");
        Session {
            id,
            connection,
            driver_up: false,
            spoke: false,
            warnings: RateLimiter::new(10, std::time::Duration::from_secs(5)),
        }
    }

    /// Returns the connection number used in log lines.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Returns whether the peer has sent at least one request.
    pub fn spoke(&self) -> bool {
        self.spoke
    }

    /// Returns the socket fd to poll for requests.
    pub fn socket_fd(&self) -> RawFd {
        self.connection.as_raw_fd()
    }

    /// Returns the kick fds of the rings that are ready to process, with their queue index.
    pub fn kick_fds(&self) -> Vec<(usize, RawFd)> {
        (0..self.connection.num_queues())
            .filter(|&queue| self.connection.vring_ready(queue))
            .filter_map(|queue| {
                let fd = self.connection.kick_fd(queue)?;
                Some((queue, fd.as_raw_fd()))
            })
            .collect()
    }

    /// Serves one request from the frontend. `Err` ends the session.
    pub fn handle_request(&mut self, console: &mut Console) -> Result<(), SessionEnd> {
        let events = match self.connection.handle_request(&mut ConsoleDevice(console)) {
            Ok(events) => {
                self.spoke = true;
                events
            }
            Err(ConnectionError::Disconnected) => return Err(SessionEnd::Disconnected),
            Err(err) => return Err(SessionEnd::Failed(err)),
        };
        for event in events {
            self.handle_event(event, console);
        }
        Ok(())
    }

    fn handle_event(&mut self, event: Event, console: &mut Console) {
        match event {
            Event::VringReady(queue) => {
                debug!("server: connection {}: vring {queue} ready", self.id);
                self.mark_driver_up(console, "a ring became ready");
            }
            Event::DriverOk => self.mark_driver_up(console, "DRIVER_OK"),
            Event::Reset => {
                info!("server: connection {}: device reset", self.id);
                console.reset();
                self.driver_up = false;
            }
            Event::Rejected { request, error } => self.log_rejected(request, &error),
            Event::VringStopped(queue) => {
                debug!("server: connection {}: vring {queue} stopped", self.id)
            }
            Event::KickChanged(_) | Event::MemoryChanged => {}
        }
    }

    fn log_rejected(&mut self, request: u32, error: &RequestError) {
        let Some(suppressed) = self.warnings.check() else {
            return;
        };
        if suppressed > 0 {
            warn!(
                "server: connection {}: {suppressed} more warnings were not logged",
                self.id
            );
        }
        let name = request_name(request).unwrap_or_else(|| "unknown".to_string());
        warn!(
            "server: connection {}: rejected request {request} ({name}): {}",
            self.id,
            crate::error_line(error)
        );
    }

    /// Arms the console's first config-change notification, once per driver start, so the guest
    /// learns its size at boot. Frontends without the STATUS feature never send DRIVER_OK, and
    /// then the first ready ring is the sign that the driver is up.
    fn mark_driver_up(&mut self, console: &mut Console, sign: &str) {
        if !self.driver_up {
            info!("server: connection {}: driver up ({sign})", self.id);
            self.driver_up = true;
            console.driver_ready();
        }
    }

    /// Reads a pending kick of `queue`, whose kick fd poll(2) reported with `revents`.
    ///
    /// A kick fd that hung up or reads end of file would be reported ready again at once, so it
    /// ends the session instead of being polled again.
    pub fn consume_kick(&mut self, queue: usize, revents: i16) -> Result<(), SessionEnd> {
        if revents & KickError::BROKEN != 0 {
            return Err(SessionEnd::Kick(KickError::HungUp { queue, revents }));
        }
        match self.connection.consume_kick(queue) {
            Ok(_) => Ok(()),
            Err(err @ KickError::VringIndex { .. }) => {
                if self.warnings.check().is_some() {
                    warn!("server: connection {}: {err}", self.id);
                }
                Ok(())
            }
            Err(err) => Err(SessionEnd::Kick(err)),
        }
    }

    /// Lets the console move data through the rings, then signals the driver as it asks.
    pub fn pump(&mut self, console: &mut Console) {
        let Some((memory, mut queues)) = self.connection.ready_queues_mut() else {
            return;
        };
        let [receiveq, transmitq] = &mut queues[..] else {
            return;
        };
        let notify = console.process(memory, receiveq.as_deref_mut(), transmitq.as_deref_mut());
        if take_memory_faults() > 0 {
            self.drop_for_memory_fault();
            return;
        }
        self.signal(notify);
    }

    /// Ends a connection whose frontend truncated guest memory under the server: the bytes the
    /// console read from the lost pages were zeros, not what the guest wrote.
    fn drop_for_memory_fault(&mut self) {
        error!(
            "server: connection {}: guest memory vanished under the server (the frontend \
             truncated its memory file); dropping the connection",
            self.id
        );
        self.connection.shutdown();
    }

    fn signal(&mut self, notify: Notify) {
        for (queue, used) in notify.used.iter().enumerate().take(NUM_QUEUES) {
            if *used {
                if let Err(err) = self.connection.signal_used(queue) {
                    if self.warnings.check().is_some() {
                        warn!(
                            "server: connection {}: signalling vring {queue} failed: {err}",
                            self.id
                        );
                    }
                }
            }
        }
        if notify.config_changed {
            self.send_config_change();
        }
        if notify.needs_reset && self.warnings.check().is_some() {
            error!(
                "server: connection {}: the console needs a device reset after a ring fault; \
                 it takes no descriptors until the guest resets it",
                self.id
            );
        }
    }

    fn send_config_change(&mut self) {
        match self.connection.send_config_change() {
            Ok(()) => debug!("server: connection {}: config change sent", self.id),
            Err(err) => {
                if self.warnings.check().is_some() {
                    warn!(
                        "server: connection {}: the guest cannot learn the new console size: {err}",
                        self.id
                    );
                }
            }
        }
    }
}

const _: () = assert!(RECEIVEQ == 0 && TRANSMITQ == 1 && NUM_QUEUES == 2);
