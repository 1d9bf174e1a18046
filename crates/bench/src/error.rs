//! The failures that stop a benchmark.

use std::path::PathBuf;

use ttyvm_testkit::{ExpectError, GuestError, ServerError, UmlError};

use crate::frontend::FrontendError;

/// A failure that stops a benchmark. Messages that involve a guest end with its output.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The UML guest is missing or could not be built.
    #[error(transparent)]
    Guest(#[from] GuestError),
    /// `ttyvm serve` could not be started.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// UML could not be booted.
    #[error(transparent)]
    Uml(#[from] UmlError),
    /// The bench's own vhost-user frontend failed.
    #[error(transparent)]
    Frontend(#[from] FrontendError),
    /// A step on a guest console failed.
    #[error("{step} failed on the {console} console: {source}\n{output}")]
    Console {
        /// The step that failed.
        step: String,
        /// The console name: ours or the anchor.
        console: &'static str,
        /// The failure.
        #[source]
        source: Box<ExpectError>,
        /// The output of the processes involved.
        output: String,
    },
    /// A system call or file operation failed.
    #[error("{action} failed")]
    Io {
        /// The failed action, with the value involved.
        action: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A transfer arrived with the wrong byte count or checksum.
    #[error("{what} on the {console} console: {detail}")]
    Corrupt {
        /// The transfer.
        what: &'static str,
        /// Which console.
        console: &'static str,
        /// The expected and the received values.
        detail: String,
    },
    /// A stream stopped moving part way.
    #[error(
        "{direction} on the {console} console stalled after {moved} of {count} bytes: nothing \
         moved for {timeout:?}{kick}"
    )]
    Stalled {
        /// The direction of the stream: `emit` or `sink`.
        direction: &'static str,
        /// Which console.
        console: &'static str,
        /// The bytes that moved before the stall.
        moved: u64,
        /// The bytes expected.
        count: u64,
        /// How long the bench waited for more.
        timeout: std::time::Duration,
        /// The effect of a SIGIO sent to UML by hand, or empty when none was sent.
        kick: String,
    },
    /// The `ttyvm` binary could not be built or found.
    #[error("the ttyvm binary {path} is missing and `{command}` did not build it: {detail}")]
    Binary {
        /// The path the bench looked at.
        path: PathBuf,
        /// The build command.
        command: String,
        /// The reason.
        detail: String,
    },
    /// A process the bench watches could not be found.
    #[error("{0}")]
    Process(String),
}

impl BenchError {
    /// Wraps an I/O error with the action that failed.
    pub fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
        let action = action.into();
        move |source| BenchError::Io { action, source }
    }
}
