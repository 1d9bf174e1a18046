//! Rate limit for log lines a frontend can trigger.

use std::time::{Duration, Instant};

/// Log lines allowed per window.
const BURST: u32 = 10;
/// Length of one window.
const WINDOW: Duration = Duration::from_secs(1);

/// Allows [`BURST`] log lines per [`WINDOW`] and counts the lines it suppressed.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    window_start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl RateLimiter {
    /// Returns `Some(suppressed)` when a line may be logged now, with the number of lines
    /// suppressed since the last allowed one; returns `None` when this line must be dropped.
    pub(crate) fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        let window_over = self
            .window_start
            .is_none_or(|start| now.duration_since(start) >= WINDOW);
        if window_over {
            self.window_start = Some(now);
            self.logged = 0;
        }
        if self.logged >= BURST {
            self.suppressed += 1;
            return None;
        }
        self.logged += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_allows_burst_then_counts() {
        let mut limiter = RateLimiter::default();
        for _ in 0..BURST {
            assert_eq!(limiter.allow(), Some(0));
        }
        assert_eq!(limiter.allow(), None);
        assert_eq!(limiter.allow(), None);
        assert_eq!(limiter.suppressed, 2);
    }
}
