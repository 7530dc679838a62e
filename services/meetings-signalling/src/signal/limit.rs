//! The per-socket rate limit: a token bucket of `SIGNAL_EVENTS_PER_SEC` events a second with
//! bursts of twice that, and the count of consecutive refusals after which a flooding socket is
//! disconnected.

use std::time::Instant;

/// Consecutive rate-limit violations before a flooding socket is disconnected.
pub const FLOOD_STRIKES: u32 = 20;

/// A token bucket: `rate` events a second, bursts of twice that.
pub struct Bucket {
    tokens: f64,
    rate: f64,
    last: Instant,
    strikes: u32,
}

impl Bucket {
    pub fn new(rate: u32) -> Self {
        Bucket {
            tokens: rate as f64 * 2.0,
            rate: rate as f64,
            last: Instant::now(),
            strikes: 0,
        }
    }

    /// `Ok(())` to go on, `Err(strikes)` when over the limit.
    pub fn take(&mut self) -> Result<(), u32> {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate * 2.0);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.strikes = 0;
            Ok(())
        } else {
            self.strikes += 1;
            Err(self.strikes)
        }
    }
}
