use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where `ttyvm serve` puts the console, from `--console MODE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsoleMode {
    /// A new pty whose path is printed on stdout; clients attach to its subsidiary side.
    Pty,
    /// The terminal `ttyvm serve` runs on: stdin and stdout.
    Tty,
    /// Guest output appended to a file; no input.
    File(PathBuf),
    /// Guest output discarded; no input.
    Null,
}

/// An invalid `--console` value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModeError {
    /// The value names no known mode.
    #[error("unknown console mode {0:?}: expected pty, tty, file=PATH or null")]
    Unknown(String),
    /// `file=` came without a path.
    #[error("console mode file= needs a path, as in file=/tmp/console.log")]
    MissingPath,
}

impl FromStr for ConsoleMode {
    type Err = ModeError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "pty" => Ok(ConsoleMode::Pty),
            "tty" => Ok(ConsoleMode::Tty),
            "null" => Ok(ConsoleMode::Null),
            _ => match value.strip_prefix("file=") {
                Some("") => Err(ModeError::MissingPath),
                Some(path) => Ok(ConsoleMode::File(PathBuf::from(path))),
                None => Err(ModeError::Unknown(value.to_string())),
            },
        }
    }
}

impl fmt::Display for ConsoleMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConsoleMode::Pty => f.write_str("pty"),
            ConsoleMode::Tty => f.write_str("tty"),
            ConsoleMode::File(path) => write!(f, "file={}", path.display()),
            ConsoleMode::Null => f.write_str("null"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_parses_each_kind() {
        assert_eq!("pty".parse(), Ok(ConsoleMode::Pty));
        assert_eq!("tty".parse(), Ok(ConsoleMode::Tty));
        assert_eq!("null".parse(), Ok(ConsoleMode::Null));
        assert_eq!(
            "file=/tmp/out.log".parse(),
            Ok(ConsoleMode::File(PathBuf::from("/tmp/out.log")))
        );
    }

    #[test]
    fn mode_rejects_unknown_and_empty_path() {
        assert_eq!(
            "serial".parse::<ConsoleMode>(),
            Err(ModeError::Unknown("serial".into()))
        );
        assert_eq!("file=".parse::<ConsoleMode>(), Err(ModeError::MissingPath));
        assert_eq!(
            "PTY".parse::<ConsoleMode>(),
            Err(ModeError::Unknown("PTY".into()))
        );
    }

    #[test]
    fn mode_display_round_trips() {
        for text in ["pty", "tty", "null", "file=/var/log/guest.log"] {
            let mode: ConsoleMode = text.parse().unwrap();
            assert_eq!(mode.to_string(), text);
        }
    }
}
