//! The accept-and-serve loop: one frontend at a time, and one console that outlives them all.

use std::os::fd::{AsFd, AsRawFd};

use log::{error, info, warn};
use ttyvm_console::{Console, RateLimiter, Source};
use ttyvm_vhost_user::Listener;

use crate::device::ConsoleDevice;
use crate::poll::PollSet;
use crate::session::{Session, SessionEnd};
use crate::signals::{stop_self, SignalEvent, SignalName, StopSignals};

/// The reason the server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// A stop signal arrived, with its number: any signal whose default action ends the
    /// process, but for SIGIO, SIGPIPE and the fault signals.
    Signal(libc::c_int),
    /// The frontend disconnected and `--once` was given.
    Once,
}

/// The purpose of a ready fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Signals,
    Listener,
    Socket,
    Kick(usize),
    Console(Source),
}

/// The console server: a listener, the console, and the current frontend, if any.
pub struct Server {
    listener: Listener,
    console: Console,
    signals: StopSignals,
    once: bool,
    session: Option<Session>,
    connections: u64,
    warnings: RateLimiter,
}

impl Server {
    /// Creates a server that serves `console` to each frontend that connects to `listener`.
    pub fn new(listener: Listener, console: Console, signals: StopSignals, once: bool) -> Self {
        Server {
            listener,
            console,
            signals,
            once,
            session: None,
            connections: 0,
            warnings: RateLimiter::new(10, std::time::Duration::from_secs(5)),
        }
    }

    /// Serves frontends until a stop signal, or until the first disconnect with `--once`.
    pub fn run(&mut self) -> std::io::Result<Stop> {
        loop {
            let mut set = self.poll_set();
            set.wait()?;
            for (token, revents) in set.ready() {
                if let Some(stop) = self.dispatch(token, revents)? {
                    return Ok(stop);
                }
            }
            if let Some(session) = self.session.as_mut() {
                session.pump(&mut self.console);
            }
        }
    }

    fn poll_set(&self) -> PollSet<Token> {
        let mut set = PollSet::new();
        set.add(
            self.signals.as_fd().as_raw_fd(),
            libc::POLLIN,
            Token::Signals,
        );
        if let Some(session) = &self.session {
            set.add(session.socket_fd(), libc::POLLIN, Token::Socket);
            for (queue, fd) in session.kick_fds() {
                set.add(fd, libc::POLLIN, Token::Kick(queue));
            }
        }
        for entry in self.console.poll_fds() {
            set.add(entry.fd, entry.events, Token::Console(entry.source));
        }
        // Ready entries are handled in the order added. The listener comes after the current
        // frontend's socket, so when a frontend disconnects and reconnects at once, the old
        // connection's end is seen before the new one is accepted, instead of the new one being
        // rejected as a second frontend.
        set.add(self.listener.as_raw_fd(), libc::POLLIN, Token::Listener);
        set
    }

    fn dispatch(&mut self, token: Token, revents: i16) -> std::io::Result<Option<Stop>> {
        match token {
            Token::Signals => return self.take_signal(),
            Token::Listener => self.accept(),
            Token::Socket => return Ok(self.serve_request()),
            Token::Kick(queue) => return Ok(self.consume_kick(queue, revents)),
            Token::Console(source) => self.console.handle_ready(source, revents),
        }
        Ok(None)
    }

    fn take_signal(&mut self) -> std::io::Result<Option<Stop>> {
        match self.signals.take()? {
            None => {}
            Some(SignalEvent::Stop(signal)) => {
                info!("server: stopping on {}", SignalName(signal));
                return Ok(Some(Stop::Signal(signal)));
            }
            Some(SignalEvent::Suspend) => self.suspend(),
            Some(SignalEvent::Resume) => self.console.resume(),
        }
        Ok(None)
    }

    /// Gives the console's terminal back and stops for job control, then takes the terminal
    /// again. The console is resumed here as well as on the SIGCONT that ends the stop, because
    /// the kernel discards the stop in an orphaned process group and the process runs on at once.
    fn suspend(&mut self) {
        info!("server: suspending on SIGTSTP");
        self.console.suspend();
        stop_self();
        info!("server: resumed after SIGTSTP");
        self.console.resume();
    }

    fn accept(&mut self) {
        let connection = match self.listener.accept(&ConsoleDevice(&mut self.console)) {
            Ok(connection) => connection,
            Err(err) => {
                if self.warnings.check().is_some() {
                    warn!(
                        "server: accepting a frontend connection failed: {}",
                        crate::error_line(&err)
                    );
                }
                return;
            }
        };
        self.connections += 1;
        let id = self.connections;
        if let Some(current) = &self.session {
            warn!(
                "server: connection {id} rejected: already serving connection {}",
                current.id()
            );
            return;
        }
        self.session = Some(Session::new(id, connection));
    }

    fn serve_request(&mut self) -> Option<Stop> {
        let session = self.session.as_mut()?;
        let Err(end) = session.handle_request(&mut self.console) else {
            return None;
        };
        self.end_session(end)
    }

    fn consume_kick(&mut self, queue: usize, revents: i16) -> Option<Stop> {
        let session = self.session.as_mut()?;
        let Err(end) = session.consume_kick(queue, revents) else {
            return None;
        };
        self.end_session(end)
    }

    /// Logs why the session ended, drops it and resets the console for the next frontend.
    fn end_session(&mut self, end: SessionEnd) -> Option<Stop> {
        let session = self.session.as_ref()?;
        let id = session.id();
        let spoke = session.spoke();
        match end {
            SessionEnd::Disconnected if !spoke => {
                info!("server: connection {id}: closed before its first request")
            }
            SessionEnd::Disconnected => info!("server: connection {id}: frontend disconnected"),
            SessionEnd::Failed(err) => {
                error!(
                    "server: connection {id} dropped: {}",
                    crate::error_line(&err)
                )
            }
            SessionEnd::Kick(err) => {
                error!(
                    "server: connection {id} dropped: {}",
                    crate::error_line(&err)
                )
            }
        }
        self.session = None;
        self.console.reset();
        // A peer that never sent a request, such as another server probing the socket, is not
        // the frontend that `--once` waits for.
        (self.once && spoke).then_some(Stop::Once)
    }

    /// Returns the console, for a last look before shutdown.
    pub fn console(&self) -> &Console {
        &self.console
    }
}
