//! The clock the module runs on: the coarse system wall clock (`os/clock.rs`, the time
//! of the last timer tick: a fifth of the cost of a precise read on the per-call path,
//! and at most one tick, 1–10 ms, behind it; expiry is kept in whole seconds). The key
//! model sees it only as a `kms::clock::Clock`.
//!
//! In debug builds only, the time is shifted by `KMSHSM_TEST_CLOCK_OFFSET` seconds (read
//! at every call) so the integration tests can move time without sleeping; release
//! builds contain no such hook. This module must not decide anything about the time.

use std::sync::Arc;

use crate::kms::clock::{Clock, UnixSeconds};

/// The system's wall clock.
#[derive(Debug, Default)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixSeconds {
        // A clock before 1970 is a broken host; treat it as the epoch rather than fail.
        crate::os::clock::realtime_seconds()
            .map(|s| i64::try_from(s).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// The clock for a token of this module.
pub(crate) fn module_clock() -> Arc<dyn Clock> {
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
    fn the_system_clock_is_after_2024() {
        assert!(SystemClock.now() > 1_700_000_000);
    }
}
