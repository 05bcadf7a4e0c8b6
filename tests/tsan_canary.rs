//! A deliberate data race, to show that a ThreadSanitizer build really reports races.
//!
//! `scripts/tsan.sh` runs this test (it is ignored otherwise) before the concurrency
//! suites and requires ThreadSanitizer to report it: a sanitizer run that finds nothing is
//! only evidence if the same build catches a planted race. Never run it in a normal build —
//! it is undefined behaviour on purpose, kept to two plain writes of one integer.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

use std::cell::UnsafeCell;

struct Racy(UnsafeCell<u64>);

// SAFETY: it is not; this type exists to be raced on under ThreadSanitizer.
unsafe impl Sync for Racy {}

static SHARED: Racy = Racy(UnsafeCell::new(0));

#[test]
#[ignore = "a deliberate data race for scripts/tsan.sh; undefined behaviour outside ThreadSanitizer"]
fn unsynchronised_writes_from_two_threads_are_reported() {
    let bump = || {
        // SAFETY: none — the unsynchronised write is the point of the test.
        unsafe { *SHARED.0.get() += 1 }
    };
    let other = std::thread::spawn(bump);
    bump();
    other.join().expect("the racing thread ended normally");
}
