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
        /// What the bench was doing.
        step: String,
        /// Which console: ours or the anchor.
        console: &'static str,
        /// The failure.
        #[source]
        source: Box<ExpectError>,
        /// What the processes involved printed.
        output: String,
    },
    /// A system call or file operation failed.
    #[error("{action} failed")]
    Io {
        /// What failed, with the value involved.
        action: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The `ttyvm` binary could not be built or found.
    #[error("the ttyvm binary {path} is missing and `{command}` did not build it: {detail}")]
    Binary {
        /// Where the bench looked.
        path: PathBuf,
        /// The build command.
        command: String,
        /// What went wrong.
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
