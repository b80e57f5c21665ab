//! A token bucket that stays correct when many streams share it and when one read is larger
//! than the burst: a taker may go into debt and then sleeps it off, so the long-run rate is
//! exact whatever the read sizes are (the seed project failed when burst < read buffer).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::sync::lock;

pub struct RateLimiter {
    /// Bytes per second; 0 = unlimited. Can change while transfers run.
    rate: AtomicU64,
    state: Mutex<Bucket>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    pub fn new(rate: u64) -> Self {
        RateLimiter {
            rate: AtomicU64::new(rate),
            state: Mutex::new(Bucket {
                tokens: 0.0,
                at: Instant::now(),
            }),
        }
    }

    pub fn set_rate(&self, rate: u64) {
        self.rate.store(rate, Ordering::Relaxed);
    }

    /// How long the caller must wait before using `n` bytes (they are taken at once).
    pub fn reserve(&self, n: u64) -> Option<Duration> {
        let rate = self.rate.load(Ordering::Relaxed);
        if rate == 0 {
            return None;
        }
        let rate = rate as f64;
        // A tenth of a second of burst smooths scheduling noise without letting big bursts out.
        let burst = (rate / 10.0).max(16.0 * 1024.0);
        let mut b = lock(&self.state);
        let now = Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        b.tokens -= n as f64;
        if b.tokens >= 0.0 {
            None
        } else {
            Some(Duration::from_secs_f64(-b.tokens / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debt_grows_with_requests_larger_than_burst() {
        let l = RateLimiter::new(1_000_000);
        // Far more than the burst in one go: must wait about a second, not fail or pass free.
        let w = l.reserve(1_000_000).unwrap();
        assert!(
            w > Duration::from_millis(800) && w < Duration::from_millis(1100),
            "{w:?}"
        );
        let w2 = l.reserve(500_000).unwrap();
        assert!(w2 > w, "debt accumulates across takers");
        assert!(RateLimiter::new(0).reserve(u64::MAX / 2).is_none());
    }
}
