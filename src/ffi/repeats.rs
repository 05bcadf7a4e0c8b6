//! Which device errors reach the log at `warn`: each distinct error of each entry point
//! once per [`QUIET_PERIOD`], its repeats in between counted and said when it is next
//! shown (a count is lost if the error never comes back, or is forgotten among
//! [`REMEMBERED`] newer ones).
//! A store that is down fails every call the same way, and a busy host would otherwise
//! write a line per call until its disk fills.
//!
//! The repeats held back are still logged at `debug`. This module must not decide what
//! an error is or say anything of its text beyond telling two texts apart.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use parking_lot::Mutex;

/// How long a device error's repeats are held back after it was shown.
pub(super) const QUIET_PERIOD: Duration = Duration::from_secs(10);

/// The distinct errors remembered at once; an older one forgotten is shown again at its
/// next occurrence.
const REMEMBERED: usize = 8;

#[derive(Clone, Copy)]
struct Shown {
    /// Tells error texts apart (not a secret: the texts are what the log would hold).
    text: u64,
    /// When it was last shown (`os::clock::monotonic`).
    at: Duration,
    /// Its repeats held back since.
    held: u64,
}

/// The errors shown lately.
pub(super) struct Repeats {
    shown: [Option<Shown>; REMEMBERED],
}

impl Repeats {
    pub(super) const fn new() -> Repeats {
        Repeats {
            shown: [None; REMEMBERED],
        }
    }

    /// Whether the error `text`, occurring at `now`, is to be shown: `Some(held)` with
    /// the number of its repeats held back since it was last shown, or `None` for a
    /// repeat within the quiet period.
    pub(super) fn admit(&mut self, text: &str, now: Duration) -> Option<u64> {
        let mut hasher = DefaultHasher::new();
        text.hash(&mut hasher);
        let digest = hasher.finish();
        if let Some(seen) = self.shown.iter_mut().flatten().find(|s| s.text == digest) {
            if crate::os::clock::within(seen.at, now, QUIET_PERIOD) {
                seen.held += 1;
                return None;
            }
            let held = seen.held;
            *seen = Shown {
                text: digest,
                at: now,
                held: 0,
            };
            return Some(held);
        }
        // A new text takes a free place, or the one shown longest ago.
        let slot = self
            .shown
            .iter_mut()
            .min_by_key(|s| s.map(|s| s.at))
            .expect("REMEMBERED > 0"); // invariant: the array is never empty
        *slot = Some(Shown {
            text: digest,
            at: now,
            held: 0,
        });
        Some(0)
    }
}

static REPEATS: Mutex<Repeats> = Mutex::new(Repeats::new());

/// Logs the device error of entry point `name`: at `warn` when [`Repeats`] admits it,
/// at `debug` otherwise.
pub(super) fn log_device_error(name: &str, code: u64, error: &dyn std::fmt::Display) {
    let text = error.to_string();
    // One entry point's error is not held back behind another's of the same text.
    let admitted = REPEATS
        .lock()
        .admit(&format!("{name}: {text}"), crate::os::clock::monotonic());
    match admitted {
        Some(0) => log::warn!("{name} -> {code:#x}: {text}"),
        Some(held) => log::warn!(
            "{name} -> {code:#x}: {text} (and {held} times more since it was last logged at warn)"
        ),
        None => log::debug!("{name} -> {code:#x}: {text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_repeat_within_the_quiet_period_is_held_back_and_counted() {
        let mut r = Repeats::new();
        assert_eq!(r.admit("store down", 100 * S), Some(0));
        assert_eq!(r.admit("store down", 101 * S), None);
        assert_eq!(r.admit("store down", 109 * S), None);
        assert_eq!(
            r.admit("store down", 110 * S),
            Some(2),
            "shown again, with its count"
        );
        assert_eq!(r.admit("store down", 111 * S), None);
    }

    #[test]
    fn distinct_errors_are_each_shown() {
        let mut r = Repeats::new();
        assert_eq!(r.admit("a", 100 * S), Some(0));
        assert_eq!(r.admit("b", 100 * S), Some(0));
        assert_eq!(r.admit("a", 101 * S), None);
        assert_eq!(r.admit("b", 101 * S), None);
    }

    #[test]
    fn the_oldest_of_too_many_texts_is_forgotten_and_shown_again() {
        let mut r = Repeats::new();
        for n in 0..REMEMBERED {
            assert_eq!(r.admit(&format!("e{n}"), 100 * S), Some(0));
        }
        assert_eq!(r.admit("new", 101 * S), Some(0), "takes e0's place");
        assert_eq!(r.admit("e7", 102 * S), None, "still remembered");
        assert_eq!(r.admit("e0", 102 * S), Some(0), "forgotten, so shown");
    }

    #[test]
    fn a_clock_that_runs_backwards_ends_the_quiet_period() {
        let mut r = Repeats::new();
        assert_eq!(r.admit("x", 100 * S), Some(0));
        assert_eq!(
            r.admit("x", 50 * S),
            Some(0),
            "an interval that runs backwards is long"
        );
    }
}
