//! A limiter for warnings that a guest or a client can trigger at will.

use std::time::{Duration, Instant};

/// Allows at most `burst` events per `interval` and counts the ones it suppresses.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    burst: u32,
    window_start: Option<Instant>,
    allowed_in_window: u32,
    suppressed: u64,
}

impl RateLimiter {
    /// Creates a limiter allowing `burst` events per `interval`.
    pub const fn new(burst: u32, interval: Duration) -> Self {
        RateLimiter {
            interval,
            burst,
            window_start: None,
            allowed_in_window: 0,
            suppressed: 0,
        }
    }

    /// Records an event now. Returns `Some(n)` if it may be reported, where `n` is the number of
    /// events suppressed since the last reported one, and `None` if it must be suppressed.
    pub fn check(&mut self) -> Option<u64> {
        self.check_at(Instant::now())
    }

    /// Records an event at `now`; see [`RateLimiter::check`].
    pub fn check_at(&mut self, now: Instant) -> Option<u64> {
        let window_over = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= self.interval);
        if window_over {
            self.window_start = Some(now);
            self.allowed_in_window = 0;
        }
        if self.allowed_in_window >= self.burst {
            self.suppressed += 1;
            return None;
        }
        self.allowed_in_window += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// Logs a `log::warn!` through a [`RateLimiter`], noting how many earlier warnings it suppressed.
macro_rules! warn_limited {
    ($limiter:expr, $($arg:tt)+) => {
        if let Some(suppressed) = $limiter.check() {
            if suppressed == 0 {
                log::warn!($($arg)+);
            } else {
                log::warn!("{} ({} similar warnings suppressed)", format_args!($($arg)+), suppressed);
            }
        }
    };
}

pub(crate) use warn_limited;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_allows_burst_then_suppresses() {
        let mut limiter = RateLimiter::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(limiter.check_at(t0), Some(0));
        assert_eq!(limiter.check_at(t0), Some(0));
        assert_eq!(limiter.check_at(t0), Some(0));
        assert_eq!(limiter.check_at(t0), None);
        assert_eq!(limiter.check_at(t0 + Duration::from_secs(9)), None);
    }

    #[test]
    fn limiter_reports_suppressed_count_next_window() {
        let mut limiter = RateLimiter::new(1, Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(limiter.check_at(t0), Some(0));
        for _ in 0..5 {
            assert_eq!(limiter.check_at(t0 + Duration::from_secs(1)), None);
        }
        assert_eq!(limiter.check_at(t0 + Duration::from_secs(10)), Some(5));
        assert_eq!(limiter.check_at(t0 + Duration::from_secs(25)), Some(0));
    }

    #[test]
    fn limiter_with_zero_burst_suppresses_all() {
        let mut limiter = RateLimiter::new(0, Duration::from_secs(1));
        assert_eq!(limiter.check(), None);
        assert_eq!(limiter.check(), None);
    }
}
