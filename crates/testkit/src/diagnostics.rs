//! Failure reports that include what the processes under test printed.

use std::fmt::Display;

/// A process or helper whose captured output belongs in a failure message.
pub trait Captured {
    /// Returns a titled block of the output captured so far, for a failure message.
    fn captured_output(&self) -> String;
}

/// Returns the value of `result`, or panics with its error followed by the captured output of
/// every entry of `sources`.
///
/// ```no_run
/// # fn demo(uml: &ttyvm_testkit::Uml, console: &mut ttyvm_testkit::Expect) {
/// use std::time::Duration;
/// let seen = ttyvm_testkit::check(console.expect("hello", Duration::from_secs(5)), &[uml]);
/// # }
/// ```
#[track_caller]
pub fn check<T, E: Display>(result: Result<T, E>, sources: &[&dyn Captured]) -> T {
    match result {
        Ok(value) => value,
        Err(error) => {
            let mut message = format!("{error}");
            for source in sources {
                message.push_str("\n\n");
                message.push_str(&source.captured_output());
            }
            panic!("{message}");
        }
    }
}

/// Returns at most the last `max_chars` characters of `text`, marking a cut with `...`.
pub(crate) fn tail(text: &str, max_chars: usize) -> String {
    let count = text.chars().count();
    if count <= max_chars {
        return text.to_string();
    }
    let skipped: String = text.chars().skip(count - max_chars).collect();
    format!("...{skipped}")
}

/// Formats bytes as text, with control characters other than newline escaped.
pub(crate) fn escape_bytes(bytes: &[u8]) -> String {
    let mut text = String::new();
    for ch in String::from_utf8_lossy(bytes).chars() {
        match ch {
            '\n' => text.push_str("\\n\n"),
            '\r' => text.push_str("\\r"),
            '\t' => text.push('\t'),
            c if c.is_control() => text.push_str(&c.escape_default().to_string()),
            c => text.push(c),
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_short_text() {
        assert_eq!(tail("abc", 5), "abc");
    }

    #[test]
    fn tail_cuts_long_text() {
        assert_eq!(tail("abcdef", 2), "...ef");
    }

    #[test]
    fn escape_shows_line_ends() {
        assert_eq!(escape_bytes(b"a\r\nb\x1b"), "a\\r\\n\nb\\u{1b}");
    }
}
