//! The deterministic pseudo-random byte stream that `ttyvm-responder emit` writes.

/// The seed of every stream, so host and guest produce the same bytes without exchanging one.
pub const SEED: u64 = 0x7474_7976_6d2d_656d;

/// A SplitMix64 generator whose 64-bit outputs are emitted as little-endian bytes.
///
/// Byte `i` of the stream does not depend on how callers split their [`fill`](Self::fill) calls.
#[derive(Debug, Clone)]
pub struct PseudoRandomStream {
    state: u64,
    word: [u8; 8],
    /// Index of the next unused byte of `word`; 8 means `word` is used up.
    next: usize,
}

impl PseudoRandomStream {
    /// Creates the stream at its first byte.
    pub const fn new() -> Self {
        Self {
            state: SEED,
            word: [0; 8],
            next: 8,
        }
    }

    /// Fills `buffer` with the next `buffer.len()` bytes of the stream.
    pub fn fill(&mut self, buffer: &mut [u8]) {
        for byte in buffer {
            if self.next == 8 {
                self.word = self.next_word().to_le_bytes();
                self.next = 0;
            }
            *byte = self.word[self.next];
            self.next += 1;
        }
    }

    fn next_word(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Default for PseudoRandomStream {
    fn default() -> Self {
        Self::new()
    }
}

/// Returns the first `count` bytes of the stream.
pub fn stream_bytes(count: usize) -> Vec<u8> {
    let mut bytes = vec![0; count];
    PseudoRandomStream::new().fill(&mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_independent_of_split() {
        let whole = stream_bytes(1000);
        let mut stream = PseudoRandomStream::new();
        let mut pieces = Vec::new();
        for size in [1, 3, 8, 13, 100, 875] {
            let mut piece = vec![0; size];
            stream.fill(&mut piece);
            pieces.extend_from_slice(&piece);
        }
        assert_eq!(pieces, whole);
    }

    #[test]
    fn stream_covers_all_byte_values() {
        let bytes = stream_bytes(1 << 16);
        let mut seen = [false; 256];
        for byte in bytes {
            seen[usize::from(byte)] = true;
        }
        assert!(seen.iter().all(|&value| value));
    }
}
