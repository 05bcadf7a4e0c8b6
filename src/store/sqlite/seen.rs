//! The first look of `changed_elsewhere`, taken without a lock: the WAL-index headers
//! this handle last found unchanged, and when `PRAGMA data_version` last confirmed them,
//! published as atomics under a sequence counter (a seqlock). A caller compares the live
//! headers in the `-shm` mapping with them, with no pass through the fork gate and no
//! turn at the connection's mutex (two each of the atomic read-modify-writes that made
//! up a third of the check's cost on the per-call path; docs/performance.md).
//!
//! Only a consistent read of a published value that equals the live headers and is
//! younger than the full-check period answers "unchanged"; a torn read, nothing
//! published, a difference or an old check all send the caller to the full check under
//! the lock, which publishes again. A stale value can only cause a mismatch (every commit
//! rewrites the headers, and they never return to an earlier value: the change counter
//! only grows), so this look can make the full check run more often, never less.
//! This module must not read the database or decide anything else.

use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::time::Duration;

use super::WAL_INDEX_HEADERS;
use crate::os::clock;

const WORDS: usize = WAL_INDEX_HEADERS / 8;

/// The published headers. Written only by holders of the connection's mutex (one
/// writer at a time), read by anyone.
#[derive(Debug, Default)]
pub(super) struct SeenHeaders {
    /// Even when no write is in progress; 0 until the first publication.
    sequence: AtomicU64,
    words: [AtomicU64; WORDS],
    /// When the full check confirmed `words` (`os::clock::monotonic`), in nanoseconds.
    checked_at: AtomicU64,
}

fn word(headers: &[u8; WAL_INDEX_HEADERS], i: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&headers[8 * i..8 * i + 8]);
    u64::from_ne_bytes(bytes)
}

fn nanos(at: Duration) -> u64 {
    u64::try_from(at.as_nanos()).unwrap_or(u64::MAX)
}

impl SeenHeaders {
    /// Publishes `headers` as found unchanged by the full check at `at`. The caller holds
    /// the connection's mutex, which makes it the only writer.
    pub(super) fn publish(&self, headers: &[u8; WAL_INDEX_HEADERS], at: Duration) {
        let start = self.sequence.load(Ordering::Relaxed);
        // Odd: readers that start now, or that read across this write, retry the long way.
        self.sequence.store(start | 1, Ordering::Relaxed);
        fence(Ordering::Release);
        for (i, slot) in self.words.iter().enumerate() {
            slot.store(word(headers, i), Ordering::Relaxed);
        }
        self.checked_at.store(nanos(at), Ordering::Relaxed);
        self.sequence
            .store((start | 1).wrapping_add(1), Ordering::Release);
    }

    /// Whether the live headers, word `i` of which `live(i)` reads, equal the published
    /// ones, read consistently, and their full check was at most `period` before `now`.
    pub(super) fn still(
        &self,
        live: impl Fn(usize) -> Option<u64>,
        now: Duration,
        period: Duration,
    ) -> bool {
        let before = self.sequence.load(Ordering::Acquire);
        if before == 0 || before & 1 == 1 {
            return false;
        }
        let same = self
            .words
            .iter()
            .enumerate()
            .all(|(i, slot)| live(i) == Some(slot.load(Ordering::Relaxed)));
        let checked_at = Duration::from_nanos(self.checked_at.load(Ordering::Relaxed));
        fence(Ordering::Acquire);
        let after = self.sequence.load(Ordering::Relaxed);
        same && before == after && clock::within(checked_at, now, period)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_millis(100);

    fn words(h: [u8; WAL_INDEX_HEADERS]) -> impl Fn(usize) -> Option<u64> {
        move |i| (i < WORDS).then(|| word(&h, i))
    }

    fn headers(fill: u8) -> [u8; WAL_INDEX_HEADERS] {
        let mut h = [fill; WAL_INDEX_HEADERS];
        h[WAL_INDEX_HEADERS - 1] = fill.wrapping_add(1);
        h
    }

    #[test]
    fn nothing_published_matches_nothing() {
        let seen = SeenHeaders::default();
        assert!(!seen.still(
            words([0; WAL_INDEX_HEADERS]),
            Duration::from_secs(1),
            PERIOD
        ));
    }

    #[test]
    fn only_the_published_headers_match_and_only_within_the_period() {
        let seen = SeenHeaders::default();
        let at = Duration::from_secs(50);
        seen.publish(&headers(7), at);
        assert!(seen.still(words(headers(7)), at, PERIOD));
        assert!(seen.still(words(headers(7)), at + PERIOD / 2, PERIOD));
        assert!(
            !seen.still(words(headers(7)), at + PERIOD, PERIOD),
            "period over"
        );
        assert!(
            !seen.still(words(headers(7)), Duration::ZERO, PERIOD),
            "a clock reading before the check is not within the period"
        );
        let mut one_byte_off = headers(7);
        one_byte_off[40] ^= 1;
        assert!(
            !seen.still(words(one_byte_off), at, PERIOD),
            "any byte differs"
        );
        seen.publish(&headers(8), at);
        assert!(!seen.still(words(headers(7)), at, PERIOD), "replaced");
        assert!(seen.still(words(headers(8)), at, PERIOD));
    }

    #[test]
    fn a_read_never_matches_a_mixture_of_two_publications() {
        // Two header values that differ in every word; a reader comparing against a
        // half-written publication must not see either as matching a mixture.
        let seen = std::sync::Arc::new(SeenHeaders::default());
        let (a, b) = (headers(0x11), headers(0x22));
        let mut mixed = a;
        mixed[..WAL_INDEX_HEADERS / 2].copy_from_slice(&b[..WAL_INDEX_HEADERS / 2]);
        seen.publish(&a, Duration::from_secs(1));
        let writer = {
            let seen = std::sync::Arc::clone(&seen);
            std::thread::spawn(move || {
                for i in 0..200_000u32 {
                    let h = if i % 2 == 0 { b } else { a };
                    seen.publish(&h, Duration::from_secs(1));
                }
            })
        };
        let mut matched = 0u64;
        while !writer.is_finished() {
            assert!(!seen.still(words(mixed), Duration::from_secs(1), PERIOD));
            matched += u64::from(seen.still(words(a), Duration::from_secs(1), PERIOD));
        }
        writer.join().expect("writer");
        assert!(
            seen.still(words(a), Duration::from_secs(1), PERIOD),
            "{matched}"
        );
    }
}
