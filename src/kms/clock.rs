//! The injected time source. Nothing else in the crate reads the system clock.
//!
//! Expiry rules (import tokens, material expiry) are decided against a `Clock`, so tests
//! can move time without sleeping. This module must not know about PKCS#11.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, as the KMS documents count them.
pub type UnixSeconds = i64;

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> UnixSeconds;
}

/// The real clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixSeconds {
        // A clock before 1970 is a broken host; treat it as the epoch rather than fail.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
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

/// The clock the module runs on: the system clock. In debug builds only, it is shifted
/// by `KMSHSM_TEST_CLOCK_OFFSET` seconds (read at every call) so the integration tests
/// can move time without sleeping; release builds contain no such hook.
pub fn module_clock() -> Arc<dyn Clock> {
    #[cfg(debug_assertions)]
    {
        Arc::new(TestOffsetClock)
    }
    #[cfg(not(debug_assertions))]
    {
        Arc::new(SystemClock)
    }
}

/// The system clock plus the offset in `KMSHSM_TEST_CLOCK_OFFSET` (debug builds only).
#[cfg(debug_assertions)]
#[derive(Debug)]
struct TestOffsetClock;

#[cfg(debug_assertions)]
impl Clock for TestOffsetClock {
    fn now(&self) -> UnixSeconds {
        let offset = std::env::var("KMSHSM_TEST_CLOCK_OFFSET")
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(0);
        SystemClock.now().saturating_add(offset)
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

    #[test]
    fn system_clock_is_after_2024() {
        assert!(SystemClock.now() > 1_700_000_000);
    }
}
