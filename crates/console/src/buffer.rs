//! Byte FIFOs between the queues and the backend, bounded by a limit the caller passes in.

use std::collections::VecDeque;

/// A byte FIFO. The bound is an argument of each push, because the output buffer changes its
/// bound and policy when a pty client attaches or detaches.
#[derive(Debug, Default)]
pub struct ByteQueue {
    bytes: VecDeque<u8>,
}

impl ByteQueue {
    /// Creates an empty queue.
    pub fn new() -> Self {
        ByteQueue::default()
    }

    /// Number of bytes queued.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether no bytes are queued.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Room left below `limit`, in bytes.
    pub fn free(&self, limit: usize) -> usize {
        limit.saturating_sub(self.bytes.len())
    }

    /// Appends as much of `data` as fits below `limit` and returns how many bytes it took.
    pub fn push_within(&mut self, data: &[u8], limit: usize) -> usize {
        let taken = data.len().min(self.free(limit));
        self.bytes.extend(&data[..taken]);
        taken
    }

    /// Appends all of `data`, then drops the oldest bytes so at most `limit` remain. Returns the
    /// number of bytes dropped, which may include bytes of `data` itself.
    pub fn push_keeping_newest(&mut self, data: &[u8], limit: usize) -> u64 {
        let skip = data.len().saturating_sub(limit);
        let mut dropped = skip as u64;
        self.bytes.extend(&data[skip..]);
        dropped += self.trim_oldest(limit);
        dropped
    }

    /// Drops the oldest bytes so at most `limit` remain, and returns how many it dropped.
    pub fn trim_oldest(&mut self, limit: usize) -> u64 {
        let excess = self.bytes.len().saturating_sub(limit);
        self.bytes.drain(..excess);
        excess as u64
    }

    /// The oldest contiguous run of queued bytes; empty only when the queue is empty.
    pub fn front_slice(&self) -> &[u8] {
        let (front, back) = self.bytes.as_slices();
        if front.is_empty() {
            back
        } else {
            front
        }
    }

    /// Removes the `count` oldest bytes.
    pub fn consume(&mut self, count: usize) {
        let count = count.min(self.bytes.len());
        self.bytes.drain(..count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(queue: &ByteQueue) -> Vec<u8> {
        queue.bytes.iter().copied().collect()
    }

    #[test]
    fn push_within_stops_at_limit() {
        let mut queue = ByteQueue::new();
        assert_eq!(queue.push_within(b"abcdef", 4), 4);
        assert_eq!(queue.push_within(b"gh", 4), 0);
        assert_eq!(contents(&queue), b"abcd");
        assert_eq!(queue.free(4), 0);
        assert_eq!(queue.free(10), 6);
    }

    #[test]
    fn push_keeping_newest_drops_oldest() {
        let mut queue = ByteQueue::new();
        assert_eq!(queue.push_keeping_newest(b"abcd", 6), 0);
        assert_eq!(queue.push_keeping_newest(b"efgh", 6), 2);
        assert_eq!(contents(&queue), b"cdefgh");
    }

    #[test]
    fn push_keeping_newest_larger_than_limit() {
        let mut queue = ByteQueue::new();
        queue.push_within(b"xy", 10);
        assert_eq!(queue.push_keeping_newest(b"0123456789", 4), 8);
        assert_eq!(contents(&queue), b"6789");
    }

    #[test]
    fn front_slice_and_consume_preserve_order() {
        let mut queue = ByteQueue::new();
        queue.push_within(b"hello", 100);
        queue.consume(2);
        queue.push_within(b" world", 100);
        let mut out = Vec::new();
        while !queue.is_empty() {
            let chunk = queue.front_slice().to_vec();
            out.extend_from_slice(&chunk);
            queue.consume(chunk.len());
        }
        assert_eq!(out, b"llo world");
    }

    #[test]
    fn trim_oldest_counts_dropped() {
        let mut queue = ByteQueue::new();
        queue.push_within(b"abcdef", 100);
        assert_eq!(queue.trim_oldest(2), 4);
        assert_eq!(contents(&queue), b"ef");
        assert_eq!(queue.trim_oldest(10), 0);
    }
}
