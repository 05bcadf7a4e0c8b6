//! The injected time source of the key model.
//!
//! Expiry rules (import tokens, material expiry) are decided against a `Clock`, so tests
//! can move time without sleeping. The clock the module runs on, the only reader of the
//! system clock for those rules, is `token/clock.rs` (the coarse wall clock of
//! `os/clock.rs`, which this layer may not use). This module must not know about PKCS#11.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Seconds since the Unix epoch, as the KMS documents count them.
pub type UnixSeconds = i64;

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> UnixSeconds;
}

/// A clock that stands still until moved. For tests.
#[derive(Debug)]
pub struct FixedClock(AtomicI64);

impl FixedClock {
    pub fn new(at: UnixSeconds) -> Arc<Self> {
        Arc::new(FixedClock(AtomicI64::new(at)))
    }
    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> UnixSeconds {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_clock_moves_only_when_advanced() {
        let c = FixedClock::new(1_000);
        assert_eq!(c.now(), 1_000);
        c.advance(86_400);
        assert_eq!(c.now(), 87_400);
    }
}
