//! The detach key, written in caret notation (`^]`, `^A`, `^?`).

use std::fmt;

/// The default detach key, Ctrl-] (0x1d), as `virsh console` uses.
pub const DEFAULT_ESCAPE: EscapeChar = EscapeChar(0x1d);

/// A control character that detaches the client when the user types it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EscapeChar(u8);

/// Errors from parsing an escape character.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EscapeError {
    /// The text is not `^` followed by one of `@`, a letter, `[`, `\`, `]`, `^`, `_` or `?`.
    #[error(
        "invalid escape character {0:?}: write it in caret notation, `^` followed by one of \
         @ A-Z \\ ] ^ _ ?, such as ^] or ^A"
    )]
    Invalid(String),
    /// The key is one the terminal itself sends in ordinary use, so it would detach at once.
    #[error(
        "escape character {text} cannot be used: {reason}, so it would detach at once; choose \
         another, such as ^]"
    )]
    Reserved {
        /// The key as the user wrote it.
        text: String,
        /// The terminal's own use of the key.
        reason: &'static str,
    },
}

/// Keys the user's terminal sends on its own: ESC starts the sequences of arrow and function
/// keys and of terminal replies such as a cursor position report, and Enter sends CR in raw mode.
const RESERVED: [(u8, &str); 2] = [
    (
        0x1b,
        "^[ is ESC, which begins every arrow key and terminal reply",
    ),
    (0x0d, "^M is CR, which the Enter key sends"),
];

impl EscapeChar {
    /// Parses caret notation: `^@` is NUL, `^A` (or `^a`) to `^Z` are 0x01 to 0x1a, `^[`, `^\`,
    /// `^]`, `^^`, `^_` are 0x1b to 0x1f, and `^?` is DEL (0x7f).
    pub fn parse(text: &str) -> Result<Self, EscapeError> {
        let invalid = || EscapeError::Invalid(text.to_owned());
        let &[b'^', key] = text.as_bytes() else {
            return Err(invalid());
        };
        let byte = match key.to_ascii_uppercase() {
            b'?' => 0x7f,
            upper @ b'@'..=b'_' => upper & 0x1f,
            _ => return Err(invalid()),
        };
        if let Some(&(_, reason)) = RESERVED.iter().find(|&&(reserved, _)| reserved == byte) {
            return Err(EscapeError::Reserved {
                text: text.to_owned(),
                reason,
            });
        }
        Ok(EscapeChar(byte))
    }

    /// Returns the byte the terminal sends for this key.
    pub fn byte(self) -> u8 {
        self.0
    }
}

impl fmt::Display for EscapeChar {
    /// Writes the key back in caret notation, with an upper-case letter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = if self.0 == 0x7f { b'?' } else { self.0 | 0x40 };
        write!(f, "^{}", char::from(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_caret_notation() {
        let cases: &[(&str, u8)] = &[
            ("^]", 0x1d),
            ("^@", 0x00),
            ("^A", 0x01),
            ("^a", 0x01),
            ("^Z", 0x1a),
            ("^z", 0x1a),
            ("^\\", 0x1c),
            ("^^", 0x1e),
            ("^_", 0x1f),
            ("^?", 0x7f),
        ];
        for &(text, byte) in cases {
            assert_eq!(
                EscapeChar::parse(text).map(EscapeChar::byte),
                Ok(byte),
                "{text}"
            );
        }
    }

    #[test]
    fn parse_rejects_other_text() {
        for text in [
            "", "^", "]", "a", "^]]", "^^^", "^1", "^ ", "^`", "^{", "^~", "^é", "C-]",
        ] {
            assert_eq!(
                EscapeChar::parse(text),
                Err(EscapeError::Invalid(text.to_owned())),
                "{text:?}"
            );
        }
    }

    #[test]
    fn parse_rejects_keys_the_terminal_sends() {
        for text in ["^[", "^M", "^m"] {
            let err = EscapeChar::parse(text).unwrap_err();
            assert!(
                matches!(err, EscapeError::Reserved { .. }),
                "{text}: {err:?}"
            );
            assert!(err.to_string().contains("would detach at once"), "{err}");
        }
    }

    #[test]
    fn parse_rejects_raw_control_byte() {
        assert!(EscapeChar::parse("\u{1d}").is_err());
    }

    #[test]
    fn display_round_trips() {
        let usable =
            (0x00..=0x1f).filter(|byte| RESERVED.iter().all(|&(reserved, _)| reserved != *byte));
        for byte in usable.chain([0x7f]) {
            let escape = EscapeChar(byte);
            assert_eq!(EscapeChar::parse(&escape.to_string()), Ok(escape));
        }
        assert_eq!(DEFAULT_ESCAPE.to_string(), "^]");
        assert_eq!(EscapeChar::parse("^a").unwrap().to_string(), "^A");
    }

    #[test]
    fn error_names_the_text() {
        let message = EscapeChar::parse("x").unwrap_err().to_string();
        assert!(
            message.starts_with("invalid escape character \"x\""),
            "{message}"
        );
    }
}
