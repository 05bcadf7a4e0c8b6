//! An attacker's review (branch attack15h) of 6a1b467 and 45aad96: numbered PIN attempts
//! (`pins.reserved`), a right PIN forgiving only the attempts reserved before it, and the
//! one lease per role being the newest reservation's again (`max(lease_until, new)`).
//! Each scenario runs on the memory store, SQLite (two handles on one file) and
//! PostgreSQL (two handles on one token), asserts what docs/security.md ("PIN lockout",
//! "Known limits") promises, and fails against 45aad96; its doc comment says what is
//! wrong.
//!
//! Run with `cargo nextest run --lib -E 'test(/attack_review15h/)'`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use super::pin_scenarios::*;
use super::*;

/// Attack (a stalled process): attempt A is reserved at 100 (lease to 130) and its
/// process stalls (SIGSTOP, a paused VM, a derivation swapped out) for more than the
/// lease. At 131 attempt B, the PIN's last try, is reserved by another process: A's
/// lease has ended, so the store takes A for dead and restarts the count in flight at 1
/// (B). Then A's process resumes and settles A (wrong).
///
/// docs/security.md, "PIN lockout": a process that dies mid-attempt leaves its attempt
/// in flight "only until the lease ends"; at the limit, "no attempt left" means
/// `CKR_PIN_LOCKED` "unless the limit is reached only by attempts still in flight: one
/// of them may be the right PIN ... so the caller waits". B is in flight, within its
/// own lease (to 161).
///
/// What happens: A's late settlement decrements the one shared in-flight count, which by
/// then counts B only (`inflight = inflight - 1 ... WHERE inflight > 0`, `inflight
/// .saturating_sub(1)`): B, alive and possibly the right PIN, is in flight nowhere.
/// `pin_counts` reports the PIN locked with nothing in flight (`C_GetTokenInfo`:
/// CKF_SO_PIN_LOCKED while its last try is being checked) and a login at the limit is
/// answered `Locked` (`CKR_PIN_LOCKED`) at once instead of waiting for B; when B then
/// settles right the count drops below the limit again, so that login was refused for
/// nothing. The same happens without any stall between PostgreSQL hosts whose clocks
/// differ by more than the lease (the fast host takes the slow host's live attempt for
/// dead). A settlement of an attempt whose lease had ended when it was taken for dead
/// must not take a newer attempt's place in flight.
fn stalled_attempt_hides_the_live_one(first: &dyn Store, second: &dyn Store) {
    let epoch = with_so_pin(first);
    let stalled = reserved(first, epoch, 2, 100);
    let last_try = reserved(second, epoch, 2, 131);
    // The stalled process resumes and settles its (wrong) attempt.
    first.settle_pin_attempt(SO, false, &stalled).unwrap();
    assert_eq!(
        counts(first, 133),
        PinCount {
            failures: 2,
            in_flight: 1
        },
        "the last try (reserved at 131) is in flight until 161"
    );
    assert_eq!(
        first.reserve_pin_attempt(SO, epoch, 2, 133, 163).unwrap(),
        PinAttempt::Busy,
        "the last try is in flight and may be right: the caller waits, not locked"
    );
    // (It was right: the PIN is not locked after all.)
    second.settle_pin_attempt(SO, true, &last_try).unwrap();
    assert_eq!(counts(first, 134).failures, 0);
}

/// Attack (a clock stepped back): an attempt is reserved while the host's clock (or, with
/// PostgreSQL, one host's clock) is ahead, at 10_000 (lease to 10_030), and its process
/// dies. The clock is then corrected: an attempt is reserved at 100 and settles wrong,
/// reaching the limit.
///
/// docs/security.md, "PIN lockout": a dead process's attempt stays in flight "only until
/// the lease ends" (30 s); "Known limits": one lease per role, *the newest
/// reservation's*: an attempt whose process died stays in flight "for 30 s after the
/// last reservation, not after its own".
///
/// What happens: the lease is `max(lease_until, new)` (SQLite `max`, PostgreSQL
/// `greatest`, memory `.max`), not the newest reservation's: once any reservation was
/// made with a clock ahead, the dead attempt stays in flight until that clock's time
/// is reached, here 2.7 hours after the last reservation (one host whose clock is a day
/// ahead: a day). All that time `pin_counts` shows the locked PIN as a last try in flight
/// (`C_GetTokenInfo` reports it not locked), and every login at the limit is `Busy` and
/// waits its full 30 s before `CKR_PIN_LOCKED`; the dead attempts in flight also pile
/// up (`inflight + 1` while the lease never ends).
fn clock_step_keeps_a_dead_attempt_in_flight(first: &dyn Store, second: &dyn Store) {
    let epoch = with_so_pin(first);
    // Reserved with the clock ahead; its process dies (never settled).
    let _dead = reserved(first, epoch, 2, 10_000);
    // The clock corrected: the last try, settled wrong.
    let last = reserved(second, epoch, 2, 100);
    second.settle_pin_attempt(SO, false, &last).unwrap();
    assert_eq!(
        counts(first, 131),
        PinCount {
            failures: 2,
            in_flight: 0
        },
        "30 s after the last reservation, nothing is in flight: the PIN is locked"
    );
    assert_eq!(
        first.reserve_pin_attempt(SO, epoch, 2, 131, 161).unwrap(),
        PinAttempt::Locked,
        "30 s after the last reservation, no attempt is in flight: locked"
    );
}

fn sqlite_pair() -> (tempfile::TempDir, sqlite::SqliteStore, sqlite::SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let first = sqlite::SqliteStore::create(&path, vec![]).unwrap();
    let second = sqlite::SqliteStore::open(&path).unwrap();
    (dir, first, second)
}

#[test]
fn attack_review15h_memory_a_stalled_attempt_settling_late_hides_the_live_last_try() {
    on_memory(stalled_attempt_hides_the_live_one);
}

#[test]
fn attack_review15h_sqlite_a_stalled_attempt_settling_late_hides_the_live_last_try() {
    let (_dir, first, second) = sqlite_pair();
    stalled_attempt_hides_the_live_one(&first, &second);
}

#[test]
fn attack_review15h_postgres_a_stalled_attempt_settling_late_hides_the_live_last_try() {
    on_postgres(stalled_attempt_hides_the_live_one);
}

#[test]
fn attack_review15h_memory_a_clock_stepped_back_keeps_a_dead_attempt_in_flight() {
    on_memory(clock_step_keeps_a_dead_attempt_in_flight);
}

#[test]
fn attack_review15h_sqlite_a_clock_stepped_back_keeps_a_dead_attempt_in_flight() {
    let (_dir, first, second) = sqlite_pair();
    clock_step_keeps_a_dead_attempt_in_flight(&first, &second);
}

#[test]
fn attack_review15h_postgres_a_clock_stepped_back_keeps_a_dead_attempt_in_flight() {
    on_postgres(clock_step_keeps_a_dead_attempt_in_flight);
}
