//! The lines that `ttyvm-responder` prints, so the host can find them in console output.
//!
//! Every mode first prints the ready line `TTYVM-READY MODE` once it can take input or signals.
//! - `winch` then prints `size ROWS COLS` at start and after every SIGWINCH.
//! - `emit N` switches the tty to raw mode, prints the ready line, then exactly N bytes of
//!   [`crate::stream::PseudoRandomStream`], then `\r\n` and the sum line.
//! - `sink N` switches the tty to raw mode, prints the ready line, reads exactly N bytes and
//!   prints the sum line.
//!
//! The sum line is `TTYVM-SUM count=N fnv1a64=HASH` with HASH as 16 lowercase hex digits.
//! A failure prints `TTYVM-ERROR MESSAGE`. In raw mode the responder ends lines with `\r\n`
//! itself; otherwise it writes `\n` and the tty's ONLCR adds the `\r`.

/// The prefix of the line that marks a program on the guest console as ready.
pub const READY: &str = "TTYVM-READY";
/// The prefix of the line that carries a transfer's byte count and checksum.
pub const SUM: &str = "TTYVM-SUM";
/// The prefix of the line that reports a failure in the guest.
pub const ERROR: &str = "TTYVM-ERROR";
/// The prefix of the line that the guest init prints when the console program exits.
pub const EXIT: &str = "TTYVM-EXIT";
/// The prefix of the line that `winch` prints for each window size.
pub const SIZE: &str = "size";

/// Formats the sum line without its line end, for `count` bytes hashing to `hash`.
pub fn sum_line(count: u64, hash: u64) -> String {
    format!("{SUM} count={count} fnv1a64={hash:016x}")
}

/// A parsed sum line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sum {
    /// The number of bytes that were hashed.
    pub count: u64,
    /// Their FNV-1a 64-bit hash.
    pub hash: u64,
}

/// Parses the first sum line found in `text`, or returns `None` when it has none.
pub fn parse_sum(text: &str) -> Option<Sum> {
    let start = text.find(SUM)?;
    let line = text[start..].lines().next()?;
    let mut words = line.split_whitespace().skip(1);
    let count = words.next()?.strip_prefix("count=")?.parse().ok()?;
    let hash = words.next()?.strip_prefix("fnv1a64=")?;
    let hash = u64::from_str_radix(hash.trim_end_matches('\r'), 16).ok()?;
    Some(Sum { count, hash })
}

/// Parses a `size ROWS COLS` line, with or without its line end.
pub fn parse_size(line: &str) -> Option<(u16, u16)> {
    let mut words = line.split_whitespace();
    if words.next()? != SIZE {
        return None;
    }
    let rows = words.next()?.parse().ok()?;
    let cols = words.next()?.parse().ok()?;
    Some((rows, cols))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_line_round_trips() {
        let text = format!("noise\r\n{}\r\nmore", sum_line(42, 0xab));
        assert_eq!(
            parse_sum(&text),
            Some(Sum {
                count: 42,
                hash: 0xab
            })
        );
    }

    #[test]
    fn size_line_parses() {
        assert_eq!(parse_size("size 24 80\r"), Some((24, 80)));
        assert_eq!(parse_size("sizes 24 80"), None);
        assert_eq!(parse_size("size 24"), None);
    }
}
