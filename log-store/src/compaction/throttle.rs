//! The cleaner's I/O rate limit (`log.cleaner.io.max.bytes.per.second`): a token bucket on the
//! bytes it reads and writes. A cleaning that runs ahead of the rate waits, and the wait ends
//! early when the store closes.

use std::time::{Duration, Instant};

/// A token bucket refilled at `rate` bytes per second, holding at most one second's worth.
#[derive(Debug)]
pub struct Throttle {
    rate: Option<u64>,
    tokens: f64,
    last: Instant,
}

impl Throttle {
    /// `None`: unlimited.
    pub fn new(rate: Option<u64>) -> Throttle {
        Throttle {
            rate: rate.filter(|&r| r > 0),
            tokens: 0.0,
            last: Instant::now(),
        }
    }

    /// How long the caller must wait, having moved `bytes`, to stay within the rate (and takes
    /// them from the bucket).
    pub fn charge(&mut self, bytes: u64, now: Instant) -> Duration {
        let Some(rate) = self.rate else {
            return Duration::ZERO;
        };
        let rate = rate as f64;
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate).min(rate) - bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_what_the_rate_asks() {
        let start = Instant::now();
        let mut t = Throttle::new(Some(1000));
        t.last = start;
        // 500 bytes with an empty bucket: half a second of debt.
        assert_eq!(t.charge(500, start), Duration::from_millis(500));
        // After the debt is paid (0.5 s later), another 500 bytes cost another 0.5 s.
        let later = start + Duration::from_millis(500);
        assert_eq!(t.charge(500, later), Duration::from_millis(500));
        // An idle bucket fills up to one second's worth, no more.
        let idle = later + Duration::from_secs(10);
        assert_eq!(t.charge(500, idle), Duration::ZERO);
        assert_eq!(t.charge(1000, idle), Duration::from_millis(500));
        assert_eq!(Throttle::new(None).charge(u64::MAX, idle), Duration::ZERO);
    }
}
