//! An attacker's review (branch attack15g) of the PIN attempt counters as b08a635 left
//! them: one lease per role, "the oldest attempt's in flight", not pushed out by newer
//! reservations (`reserve_pin_attempt` in all three stores), and attempts in flight
//! dropped with the PIN record they were counted in. Each test runs one scenario on the
//! memory store, SQLite (two handles on one file) and PostgreSQL (two handles on one
//! token), asserts what docs/security.md ("PIN lockout") promises, and fails against
//! b08a635; its doc comment says what is wrong.
//!
//! Run with `cargo nextest run --lib -E 'test(/attack_review15g/)'`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use super::pin_scenarios::*;
use super::*;

/// Attack: two attempts at the SO PIN overlap; the first (reserved at 600, lease to 630)
/// settles wrong at 601, the second (reserved at 629, its own lease to 659) is the PIN's
/// last try and may be the right PIN.
///
/// docs/security.md, "PIN lockout": each reservation holds a lease of 30 seconds; the
/// store keeps one lease per role, *the oldest attempt's in flight*; an attempt counts
/// as a failure before its lease ends only if its holder died; a reservation at the
/// limit while attempts are in flight is `Busy` (wait: one of them may be right), not
/// `Locked`.
///
/// What happens: the lease is set when the first attempt is reserved and kept while
/// *any* attempt is in flight, so after the first settles it is still the first's
/// (630), not the oldest in flight's (659). At 630 the second attempt, one second old,
/// is taken for dead: `pin_counts` leaves it out of the attempts in flight (the token's
/// `C_GetTokenInfo` reports the PIN locked while its last try, possibly right, is being
/// checked), and a login at the limit is answered `Locked` (`CKR_PIN_LOCKED`) instead of
/// waiting for it. Then a third reservation below the limit restarts the in-flight
/// count at 1, and the second attempt's settling takes the third's place: the third,
/// alive and within its own lease, is no longer in flight anywhere. Before b08a635 the
/// second reservation pushed the lease to 659 and none of this happened.
fn live_attempt_outlives_the_lease(first: &dyn Store, second: &dyn Store) {
    let epoch = with_so_pin(first);
    let at_first = reserved(first, epoch, 2, 600);
    let at_second = reserved(second, epoch, 2, 629);
    first.settle_pin_attempt(SO, false, &at_first).unwrap();
    assert_eq!(
        counts(first, 630),
        PinCount {
            failures: 2,
            in_flight: 1
        },
        "the attempt reserved at 629 is in flight until 659"
    );
    assert_eq!(
        first.reserve_pin_attempt(SO, epoch, 2, 631, 661).unwrap(),
        PinAttempt::Busy,
        "the last try is in flight and may reset the count: not locked"
    );
    // Below the limit (3): a third attempt at 632, while the second is in flight.
    let _third = reserved(first, epoch, 3, 632);
    second.settle_pin_attempt(SO, false, &at_second).unwrap();
    assert_eq!(
        counts(first, 633),
        PinCount {
            failures: 3,
            in_flight: 1
        },
        "the third attempt (reserved at 632) is in flight until 662"
    );
    assert_eq!(
        second.reserve_pin_attempt(SO, epoch, 3, 634, 664).unwrap(),
        PinAttempt::Busy,
        "the third attempt is the last try, in flight: not locked"
    );
}

/// Attack: an attacker keeps wrong guesses at the SO PIN in flight while the owner logs
/// in with the right PIN. The owner's attempt is reserved first (700); two guesses are
/// reserved after it and are still being derived when it settles right.
///
/// docs/security.md, "PIN lockout": a PIN locks after `max_pin_failures` *consecutive*
/// wrong attempts, and "no number of concurrent `C_Login` ... calls ... can try more
/// PINs than the limit"; attempts in flight are counted as failures from their
/// reservation until they settle.
///
/// What happens: the right settlement sets the count to 0 (`failures = 0`), wiping the
/// two guesses still in flight with it; they then settle wrong and count nowhere. After
/// the owner's right PIN, the attacker tries those two and three more: five wrong PINs in
/// a row against a limit of three, before `Locked`. Each right login of the owner gives
/// the attacker up to `limit - 1` uncounted guesses beyond the limit (the count after a
/// right PIN should be the attempts still in flight, as they are all counted as failures
/// until they settle).
fn right_pin_erases_guesses_in_flight(first: &dyn Store, second: &dyn Store) {
    let epoch = with_so_pin(first);
    let owner = reserved(first, epoch, 3, 700);
    let guesses = [
        reserved(second, epoch, 3, 700),
        reserved(second, epoch, 3, 700),
    ];
    first.settle_pin_attempt(SO, true, &owner).unwrap();
    let mut wrong_after_right = 0;
    for guess in &guesses {
        second.settle_pin_attempt(SO, false, guess).unwrap();
        wrong_after_right += 1;
    }
    for now in 701..720 {
        match second
            .reserve_pin_attempt(SO, epoch, 3, now, now + 30)
            .unwrap()
        {
            PinAttempt::Reserved { record, .. } => {
                second.settle_pin_attempt(SO, false, &record).unwrap();
                wrong_after_right += 1;
            }
            PinAttempt::Locked => break,
            other => panic!("at {now}: {other:?}"),
        }
    }
    assert_eq!(
        wrong_after_right, 3,
        "wrong PINs tried in a row after the right one, against a limit of 3"
    );
}

#[test]
fn attack_review15g_memory_a_right_pin_erases_the_guesses_in_flight() {
    on_memory(right_pin_erases_guesses_in_flight);
}

#[test]
fn attack_review15g_sqlite_a_right_pin_erases_the_guesses_in_flight() {
    on_sqlite(right_pin_erases_guesses_in_flight);
}

#[test]
fn attack_review15g_postgres_a_right_pin_erases_the_guesses_in_flight() {
    on_postgres(right_pin_erases_guesses_in_flight);
}

#[test]
fn attack_review15g_memory_a_live_attempt_is_taken_for_dead_at_its_predecessors_lease() {
    on_memory(live_attempt_outlives_the_lease);
}

#[test]
fn attack_review15g_sqlite_a_live_attempt_is_taken_for_dead_at_its_predecessors_lease() {
    on_sqlite(live_attempt_outlives_the_lease);
}

#[test]
fn attack_review15g_postgres_a_live_attempt_is_taken_for_dead_at_its_predecessors_lease() {
    on_postgres(live_attempt_outlives_the_lease);
}
