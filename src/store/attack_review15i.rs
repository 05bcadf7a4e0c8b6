//! An attacker's review (branch attack15i) of 6a1b467, 45aad96 and a05d3a2: numbered
//! PIN attempts (`pins.reserved`), a right PIN forgiving only the attempts reserved
//! before it, and each attempt in flight a row of its own (`pin_flights`,
//! `kmshsm_pin_flights`, the memory store's map) with its own lease. Each scenario runs
//! on the memory store, SQLite (two handles on one file) and PostgreSQL (two handles on
//! one token), asserts what docs/security.md ("PIN lockout") and the store's own
//! comments promise, and fails against a05d3a2 where its doc comment says so.
//!
//! Run with `cargo nextest run --lib -E 'test(/attack_review15i/)'`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use super::pin_scenarios::*;
use super::*;

/// Attack (a lock hidden behind a forgiven attempt): with a limit of 2, attempt 1 is
/// reserved at 100 and its process is still deriving (lease to 130). The owner logs in
/// at 101 (attempt 2, right): the count drops to the attempts reserved after it, 0, so
/// attempt 1 is forgiven and no longer counted. The attacker then tries two wrong PINs
/// (attempts 3 and 4) at 102: two consecutive wrong PINs, the limit.
///
/// docs/security.md, "PIN lockout": the PIN locks after `max_pin_failures` consecutive
/// wrong attempts, and the limit answers `CKR_PIN_LOCKED` "unless the limit is reached
/// only by attempts still in flight: one of them may be the right PIN and reset the
/// count"; a right PIN sets the count to the attempts reserved after its own.
/// `PinCount::in_flight` is "of those [the counted failures], attempts still in
/// flight", never more than counted.
///
/// What happens: the limit is reached by attempts 3 and 4, both settled wrong; attempt 1,
/// even if right, would set the count to `min(2, reserved - 1) = 2`: nothing in flight
/// can lower it, the PIN is certainly locked. Yet every store answers `Busy` (any row at
/// the current record counts, `SELECT 1 FROM pin_flights ... LIMIT 1`), so each login
/// waits out the whole lease (30 s) for nothing before `CKR_PIN_LOCKED`, and
/// `pin_counts` reports attempt 1 as one of the two counted attempts in flight, so
/// `C_GetTokenInfo` shows one wrong PIN (final try) instead of the lock. Only an attempt
/// in flight whose right settlement would bring the count below the limit (its number
/// above `reserved - limit`) may make the caller wait or be left out of the flags.
fn forgiven_attempt_hides_the_lock(first: &dyn Store, second: &dyn Store) {
    let epoch = with_so_pin(first);
    // Attempt 1: a slow derivation, alive and within its lease.
    let _slow = reserved(first, epoch, 2, 100);
    // Attempt 2: the owner's right PIN.
    let owner = reserved(second, epoch, 2, 101);
    second.settle_pin_attempt(SO, true, &owner).unwrap();
    // Attempts 3 and 4: the attacker's wrong guesses.
    for _ in 0..2 {
        let guess = reserved(second, epoch, 2, 102);
        second.settle_pin_attempt(SO, false, &guess).unwrap();
    }
    assert_eq!(
        counts(first, 103),
        PinCount {
            failures: 2,
            in_flight: 0
        },
        "both counted attempts (3 and 4) are settled wrong; attempt 1 is forgiven, not counted"
    );
    assert_eq!(
        first.reserve_pin_attempt(SO, epoch, 2, 103, 133).unwrap(),
        PinAttempt::Locked,
        "two consecutive wrong PINs and nothing in flight that could lower the count: locked"
    );
}

/// Attack (attempt numbers restarting): attempt 1 is reserved at record 1 and its
/// process stalls. The role's record is removed (`Change::RemovePin`) and a new one put
/// (`record(2)`); with a limit of 1, attempt A is reserved at the new record (the last
/// try, alive within its lease). The stalled process resumes and settles its attempt
/// (wrong).
///
/// src/store/sqlite/writes.rs (`PutPin`): "The attempts' numbering (`reserved`) goes on
/// across records"; docs/security.md, "PIN lockout": "Settling removes the attempt's own
/// row only, so an attempt that settles late never takes a live one's place". The memory
/// store keeps the numbering (`Shared::reserved` outlives the record) and holds, so this
/// scenario runs on SQLite and PostgreSQL only.
///
/// What happens on SQLite and PostgreSQL: `reserved` is a column of the PIN record's
/// row, so `RemovePin` (`DELETE FROM pins`) restarts the numbering and A is attempt 1
/// again. The late settlement deletes `WHERE role = ? AND attempt = ?` without the
/// record's KDF, i.e. A's live row: the last try is in flight nowhere, `pin_counts` shows
/// the PIN locked and a login is answered `Locked` instead of waiting for A, which may be
/// right. (A reservation meeting a live row of the same number would likewise replace it:
/// `INSERT OR REPLACE`, `ON CONFLICT ... DO UPDATE`.)
fn renumbered_attempt_loses_its_row(first: &dyn Store, second: &dyn Store) {
    let epoch = with_so_pin(first);
    let stalled = reserved(first, epoch, 0, 100);
    second.commit(vec![Change::RemovePin(SO)]).unwrap();
    second.commit(vec![Change::PutPin(SO, record(2))]).unwrap();
    let _last_try = reserved(second, epoch, 1, 101);
    first.settle_pin_attempt(SO, false, &stalled).unwrap();
    assert_eq!(
        counts(first, 102),
        PinCount {
            failures: 1,
            in_flight: 1
        },
        "the last try at record 2 is in flight until 131 (its number is not the stalled one's)"
    );
    assert_eq!(
        first.reserve_pin_attempt(SO, epoch, 1, 102, 132).unwrap(),
        PinAttempt::Busy,
        "the last try is in flight and may be right: the caller waits"
    );
}

#[test]
fn attack_review15i_memory_a_forgiven_attempt_in_flight_hides_a_certain_lock() {
    on_memory(forgiven_attempt_hides_the_lock);
}

#[test]
fn attack_review15i_sqlite_a_forgiven_attempt_in_flight_hides_a_certain_lock() {
    on_sqlite(forgiven_attempt_hides_the_lock);
}

#[test]
fn attack_review15i_postgres_a_forgiven_attempt_in_flight_hides_a_certain_lock() {
    on_postgres(forgiven_attempt_hides_the_lock);
}

#[test]
fn attack_review15i_sqlite_a_renumbered_attempt_settling_late_removes_the_live_one() {
    on_sqlite(renumbered_attempt_loses_its_row);
}

#[test]
fn attack_review15i_postgres_a_renumbered_attempt_settling_late_removes_the_live_one() {
    on_postgres(renumbered_attempt_loses_its_row);
}
