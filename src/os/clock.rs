//! The coarse system clocks: the time of the kernel's last timer tick, read from the
//! vDSO page without reading the CPU's time-stamp counter. About 5 ns a read against
//! 24–30 ns for `SystemTime::now` and `Instant::now` on the benchmark machine, which
//! matters on the per-call path (two or three reads in every `C_EncryptInit` +
//! `C_Encrypt`; docs/performance.md).
//!
//! A coarse clock lags the precise one by at most one tick (1–10 ms, by the kernel's
//! HZ). Its callers decide in whole seconds (material and import-token expiry) or on a
//! period of 100 ms (the store's full change check), so the lag changes no decision by
//! more than the clock's own resolution. Only Linux has these clocks; elsewhere the
//! standard library's precise clocks answer.
//!
//! This module must not know what the time is used for.

use std::time::Duration;

/// Seconds since the Unix epoch on the coarse wall clock; `None` for a clock before 1970
/// (a broken host) or one that cannot be read.
pub(crate) fn realtime_seconds() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        read(libc::CLOCK_REALTIME_COARSE).map(|t| t.as_secs())
    }
    #[cfg(not(target_os = "linux"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs())
    }
}

/// A point on the coarse monotonic clock (the time since an unspecified start, which
/// never goes back); `Duration::ZERO` if it cannot be read, which makes every interval
/// measured from it look long (its callers then do their check early, never late).
pub(crate) fn monotonic() -> Duration {
    #[cfg(target_os = "linux")]
    {
        read(libc::CLOCK_MONOTONIC_COARSE).unwrap_or(Duration::ZERO)
    }
    #[cfg(not(target_os = "linux"))]
    {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed()
    }
}

#[cfg(target_os = "linux")]
fn read(clock: libc::clockid_t) -> Option<Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec owned by this frame; clock_gettime
    // writes only into it and has no other effect.
    let rc = unsafe { libc::clock_gettime(clock, &mut now) };
    if rc != 0 {
        return None;
    }
    let secs = u64::try_from(now.tv_sec).ok()?;
    let nanos = u32::try_from(now.tv_nsec).ok()?;
    Some(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    #[test]
    fn the_coarse_wall_clock_agrees_with_the_precise_one_to_within_a_tick() {
        let precise = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("a clock after 1970")
            .as_secs();
        let coarse = realtime_seconds().expect("a readable clock");
        // A tick is at most 10 ms; a second boundary may fall between the two reads.
        assert!(
            coarse + 1 >= precise && coarse <= precise + 1,
            "{coarse} vs {precise}"
        );
    }

    #[test]
    fn the_coarse_monotonic_clock_moves_forward() {
        let first = monotonic();
        assert!(first > Duration::ZERO);
        std::thread::sleep(Duration::from_millis(30));
        let later = monotonic();
        assert!(
            later >= first + Duration::from_millis(15),
            "{first:?} then {later:?}"
        );
    }
}
