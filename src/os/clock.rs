//! The coarse system clocks: the time of the kernel's last timer tick, read from the
//! vDSO page without reading the CPU's time-stamp counter. About 5 ns a read against
//! 24–30 ns for `SystemTime::now` and `Instant::now` on the benchmark machine, which
//! matters on the per-call path (two or three reads in every `C_EncryptInit` +
//! `C_Encrypt`; docs/performance.md).
//!
//! A coarse clock lags the precise one by at most one tick (1–10 ms, by the kernel's
//! HZ). Its callers decide in whole seconds (material and import-token expiry) or on a
//! period of 100 ms (the store's full change check), so the lag changes no decision by
//! more than the clock's own resolution. Only Linux has these clocks; elsewhere, and
//! wherever a coarse clock cannot be read, the standard library's precise clocks answer
//! (whose failure std treats as fatal: the FFI guard turns that panic into
//! `CKR_GENERAL_ERROR`), so a clock that cannot be read never reads as 1970.
//!
//! This module must not know what the time is used for.

use std::time::Duration;

/// Seconds since the Unix epoch on the coarse wall clock (the precise one where that
/// cannot be read); `None` only for a clock before 1970 (a broken host).
pub(crate) fn realtime_seconds() -> Option<u64> {
    #[cfg(target_os = "linux")]
    if let Some(now) = read(libc::CLOCK_REALTIME_COARSE) {
        return Some(now.as_secs());
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// A point on the coarse monotonic clock: the time since an unspecified start, which
/// never goes back. Where the coarse clock cannot be read, the precise monotonic clock
/// answers, counted from another start: an interval measured across the two can come
/// out negative, which callers must treat as long (`checked_sub`), never as short.
pub(crate) fn monotonic() -> Duration {
    #[cfg(target_os = "linux")]
    if let Some(now) = read(libc::CLOCK_MONOTONIC_COARSE) {
        return now;
    }
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed()
}

/// Whether at most `period` has passed from `since` to `now` (two `monotonic` readings):
/// an interval that runs backwards counts as long.
pub(crate) fn within(since: Duration, now: Duration, period: Duration) -> bool {
    now.checked_sub(since).is_some_and(|passed| passed < period)
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
    fn an_interval_that_runs_backwards_is_long() {
        let period = Duration::from_millis(100);
        let t = Duration::from_secs(50);
        assert!(within(t, t, period));
        assert!(within(t, t + period / 2, period));
        assert!(!within(t, t + period, period));
        assert!(!within(t, t - Duration::from_nanos(1), period), "backwards");
        assert!(
            !within(t, Duration::ZERO, period),
            "a reading of zero after a real one"
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
